//! DPDK's `net_af_packet` PMD on one end of a veth pair talking to the pure-Rust
//! `afpacket` backend on the other, in fresh namespaces: 1000 sequenced frames each way,
//! bytes compared. Needs root and DPDK (skips with a reason otherwise; fails under CI).
#![cfg(feature = "dpdk")]

mod common;

use anyhow::{Context, Result};
use common::frames::one_way;
use common::{in_netns, require_root, NetnsPair};
use dataplane::dpdk::{Eal, EthConfig};
use dataplane::port::afpacket::{AfPacket, AfPacketConfig};
use dataplane::port::dpdk::open_ports;
use dataplane::port::Port;
use dataplane::wire::UdpIpv4Header;

#[test]
fn dpdk_af_packet_and_rust_afpacket_exchange_1000_frames_each_way() -> Result<()> {
    if !require_root("dpdk_af_packet_and_rust_afpacket_exchange_1000_frames_each_way") {
        return Ok(());
    }
    let net = NetnsPair::new("dpaf")?;
    // EAL probes net_af_packet, which opens its socket in the namespace of the thread
    // calling rte_eal_init: do that inside namespace a.
    let eal_args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        "--log-level=lib.eal:error",
        &format!("--file-prefix=flatrpc-dpaf-{}", std::process::id()),
        &format!("--vdev=net_af_packet0,iface={}", net.veth_a),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut dpdk = in_netns(&net.ns_a, move || -> Result<_> {
        Eal::init(&eal_args).context("EAL init")?;
        let mut ports = open_ports("net_af_packet0", &EthConfig::default())?;
        ports.pop().context("no queue")
    })??;
    let iface = net.veth_b.clone();
    let mut rust = in_netns(&net.ns_b, move || {
        AfPacket::open(&iface, &AfPacketConfig::default())
    })??
    .pop()
    .context("no queue")?;

    let hdr = |src_mac, dst_mac, src_ip, dst_ip| UdpIpv4Header {
        src_mac,
        dst_mac,
        src_ip,
        dst_ip,
        src_port: 4000,
        dst_port: common::frames::TEST_PORT,
        ttl: 64,
        ip_id: 0,
    };
    let to_rust = hdr(dpdk.mac(), rust.mac(), net.ip_a, net.ip_b);
    let to_dpdk = hdr(rust.mac(), dpdk.mac(), net.ip_b, net.ip_a);
    one_way(&mut dpdk, &mut rust, to_rust, 1000, 200).context("DPDK -> afpacket")?;
    one_way(&mut rust, &mut dpdk, to_dpdk, 1000, 1000).context("afpacket -> DPDK")?;
    let (ds, rs) = (dpdk.stats(), rust.stats());
    assert!(ds.tx_packets >= 1000 && ds.rx_packets >= 1000, "{ds:?}");
    assert!(rs.tx_packets >= 1000 && rs.rx_packets >= 1000, "{rs:?}");
    Ok(())
}
