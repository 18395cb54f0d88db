//! The KV service end to end over a veth pair with DPDK's `net_af_packet` PMD: DPDK on
//! both ends, then DPDK server with the pure-Rust AF_PACKET client, then the reverse.
//! One EAL per process: each vdev is hot-plugged from a thread inside its namespace (by
//! the harness), so its socket lives there. Root and DPDK needed (skips outside CI when not root).
#![cfg(feature = "dpdk")]

mod harness;

use anyhow::{Context, Result};
use harness::{kv_scenario, require_root, Backend, NetnsPair};

#[test]
fn kv_over_dpdk_and_mixed_backends() -> Result<()> {
    if !require_root("kv_over_dpdk_and_mixed_backends") {
        return Ok(());
    }
    harness::init_eal("flatrpc-kvdpdk")?;

    // (b) DPDK net_af_packet on both ends.
    let net = NetnsPair::new("kvdd")?;
    let (server, client) = (
        Backend::Dpdk("net_af_packet10".into()),
        Backend::Dpdk("net_af_packet11".into()),
    );
    kv_scenario(&net, &server, &client).context("DPDK <-> DPDK")?;
    drop(net);

    // (c) mixed: DPDK server, pure-Rust client ...
    let net = NetnsPair::new("kvdm")?;
    let server = Backend::Dpdk("net_af_packet12".into());
    kv_scenario(&net, &server, &Backend::Afpacket).context("DPDK server, afpacket client")?;
    drop(net);

    // ... and the reverse.
    let net = NetnsPair::new("kvmd")?;
    let client = Backend::Dpdk("net_af_packet13".into());
    kv_scenario(&net, &Backend::Afpacket, &client).context("afpacket server, DPDK client")?;
    Ok(())
}
