//! The KV service end to end over a veth pair with the pure-Rust AF_PACKET backend on
//! both ends (root; skips with a reason otherwise, fails under CI).

mod harness;

use harness::{kv_scenario, require_root, Backend, NetnsPair};

#[test]
fn kv_over_afpacket_both_ends() -> anyhow::Result<()> {
    if !require_root("kv_over_afpacket_both_ends") {
        return Ok(());
    }
    let net = NetnsPair::new("kvaf")?;
    kv_scenario(&net, &Backend::Afpacket, &Backend::Afpacket)
}
