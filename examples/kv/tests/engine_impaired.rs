//! The KV service through a lossy, reordering, duplicating link: the seeded userspace
//! impairment relay (`dataplane::impair`, the library behind `rpcbench impair`) bridges
//! two veth pairs through a middle namespace, since this kernel has no netem.
//!
//! - 10% loss, 25% reordering, 5% duplication: 10,000 reliable-ordered SETs all complete,
//!   each executed exactly once and in issue order; unreliable GETs complete or time out
//!   cleanly (never hang, never another error).
//! - 5% loss: a 1 MiB value crosses in one reliable SET and lands byte for byte.
//!
//! Root needed (skips outside CI when not root); every wait is bounded.

mod harness;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dataplane::impair::{open_afpacket, RelayConfig, RelayHandle};
use dataplane::port::sim::Impairment;
use harness::common::NetnsTriple;
use harness::{
    config, in_netns, require_root, run_client, start_server_with_store, Backend, Run, RULES,
};
use kv_example::client::{value_of, Op};

fn relay(
    t: &NetnsTriple,
    impairment: Impairment,
    seed: u64,
) -> Result<RelayHandle<dataplane::port::afpacket::AfPacketPort>> {
    let cfg = RelayConfig {
        impairment,
        seed,
        ..RelayConfig::default()
    };
    let (ma, mb) = (t.veth_ma.clone(), t.veth_mb.clone());
    let relay = in_netns(&t.ns_m, move || open_afpacket(&ma, &mb, &cfg))??;
    Ok(RelayHandle::spawn(relay, None)?)
}

fn client_cfg(t: &NetnsTriple) -> Result<dataplane::config::Config> {
    config(
        &Backend::Afpacket,
        &t.veth_a,
        0,
        harness::CLIENT_IP,
        7001,
        &format!("[client]\nserver = \"{}:7000\"", harness::SERVER_IP),
    )
}

#[test]
fn reliable_sets_survive_loss_reordering_and_duplication() -> Result<()> {
    if !require_root("reliable_sets_survive_loss_reordering_and_duplication") {
        return Ok(());
    }
    let t = NetnsTriple::new("kvim")?;
    let _relay = relay(
        &t,
        Impairment {
            loss: 0.10,
            reorder: 0.25,
            dup: 0.05,
            delay_ns: 20_000,
            jitter_ns: 0,
        },
        7,
    )?;
    let scfg = config(
        &Backend::Afpacket,
        &t.veth_b,
        1,
        harness::SERVER_IP,
        7000,
        RULES,
    )?;
    let (server, _store) = start_server_with_store(&t.ns_b, &Backend::Afpacket, &t.veth_b, scfg)?;
    let ccfg = client_cfg(&t)?;
    let result = (|| -> Result<()> {
        let mut run = Run::new(Op::Set, 10_000, "alice");
        run.concurrency = 16;
        let sets = run_client(
            &t.ns_a,
            &Backend::Afpacket,
            &t.veth_a,
            &ccfg,
            run,
            Duration::from_secs(120),
        )?;
        ensure!(
            sets.completed == 10_000 && sets.errors == 0,
            "reliable SETs: {sets:?}"
        );
        let mut run = Run::new(Op::Get, 2_000, "alice");
        run.concurrency = 16;
        let gets = run_client(
            &t.ns_a,
            &Backend::Afpacket,
            &t.veth_a,
            &ccfg,
            run,
            Duration::from_secs(60),
        )?;
        ensure!(
            gets.completed + gets.timeouts == 2_000 && gets.errors == gets.timeouts,
            "unreliable GETs complete or time out: {gets:?}"
        );
        ensure!(
            gets.completed > 1_000 && gets.mismatches == 0,
            "GETs: {gets:?}"
        );
        Ok(())
    })();
    let cores = server.stop_and_join()?;
    result?;
    let (_, snap) = cores.first().context("no server core")?;
    let s = &snap.app;
    ensure!(s.sets == 10_000, "each SET executed exactly once: {s:?}");
    ensure!(
        s.set_duplicates == 0 && s.set_out_of_order == 0,
        "ordering: {s:?}"
    );
    ensure!(
        snap.transport.duplicate_requests > 0
            && snap.transport.retransmissions + snap.transport.responses_resent > 0,
        "the link did impair: {:?}",
        snap.transport
    );
    Ok(())
}

#[test]
fn a_1mib_value_crosses_a_lossy_link() -> Result<()> {
    if !require_root("a_1mib_value_crosses_a_lossy_link") {
        return Ok(());
    }
    let t = NetnsTriple::new("kvmb")?;
    let _relay = relay(
        &t,
        Impairment {
            loss: 0.05,
            ..Impairment::default()
        },
        11,
    )?;
    // A 1 MiB value plus the request's other fields needs a larger message limit.
    let mut scfg = config(
        &Backend::Afpacket,
        &t.veth_b,
        1,
        harness::SERVER_IP,
        7000,
        RULES,
    )?;
    scfg.transport.max_message = Some(2 << 20);
    let (server, store) = start_server_with_store(&t.ns_b, &Backend::Afpacket, &t.veth_b, scfg)?;
    let mut ccfg = client_cfg(&t)?;
    ccfg.transport.max_message = Some(2 << 20);
    let result = (|| -> Result<()> {
        let mut run = Run::new(Op::Set, 3, "alice");
        run.concurrency = 1;
        run.value_size = 1 << 20;
        run.keys = 1;
        let r = run_client(
            &t.ns_a,
            &Backend::Afpacket,
            &t.veth_a,
            &ccfg,
            run,
            Duration::from_secs(60),
        )?;
        ensure!(r.completed == 3 && r.errors == 0, "1 MiB SETs: {r:?}");
        Ok(())
    })();
    let cores = server.stop_and_join()?;
    result?;
    let stored = store.read().get(&b"key-0".to_vec()).cloned();
    ensure!(
        stored.as_deref() == Some(value_of(0, 1 << 20).as_slice()),
        "the stored value differs"
    );
    let snap = &cores.first().context("no server core")?.1;
    ensure!(snap.app.sets == 3, "{:?}", snap.app);
    Ok(())
}
