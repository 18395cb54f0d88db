//! The in-process KV server on two polling cores (two queues) over a veth pair: the
//! pure-Rust AF_PACKET backend (`PACKET_FANOUT_HASH`) and DPDK's `net_af_packet` PMD
//! with two queue pairs (`qpairs=2`, which joins its sockets in a fanout group too).
//!
//! Several single-core client engines, each on its own UDP source port (so each is its
//! own flow), run rounds of reliable-ordered SETs and unreliable GETs at the same time.
//! From the server's final per-core counters the test checks that every RPC completed,
//! that no packet reached a core that does not own its session (the transport's
//! `rx_unknown_session` stays 0: a session that moved would show up there), and that the
//! sessions the cores opened sum to the sessions the clients opened. Which core a flow
//! lands on is the kernel's (seeded) flow hash, so the test keeps adding flows, in
//! rounds, until both cores have served at least one session (each extra flow halves the
//! chance they all landed on one core; the cap makes that 2^-23), and prints the split.
//! Root needed (skips outside CI when not root); unique namespaces, removed on drop.

mod harness;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dataplane::config::Config;
use dataplane::engine::CoreSnapshot;
use harness::{require_root, run_client, start_server, stop_server, Backend, NetnsPair, Run};
use kv_example::client::Op;
use kv_example::server::{KvServer, ServerStats};

/// Client engines started at once in each round.
const CLIENTS_PER_ROUND: usize = 4;
/// Rounds before giving up on seeing both cores used (24 flows).
const MAX_ROUNDS: usize = 6;
/// Rounds always run, however early both cores are seen (8 flows).
const MIN_ROUNDS: usize = 2;
/// RPCs per client.
const RPCS: u64 = 60;

/// The server's config: two cores (two queues), idle cores yield (the machine is small
/// and the clients share it).
fn server_config(backend: &Backend, iface: &str) -> Result<Config> {
    let port = match backend {
        Backend::Afpacket => format!("backend = \"afpacket\"\niface = \"{iface}\""),
        Backend::Dpdk(dev) => {
            format!("backend = \"dpdk\"\ndevice = \"{dev}\"\neal = \"(initialised by the test)\"")
        }
    };
    let text = format!(
        "cores = [0, 1]\n[port]\n{port}\n[net]\nip = \"{}\"\nudp_port = 7000\n\
         [engine]\nidle = \"yield\"\n[transport]\nunreliable_timeout_us = 500000\n{}\n",
        harness::SERVER_IP,
        harness::RULES
    );
    Ok(Config::parse(&text, "multi-core server config")?)
}

/// One client engine's config: one core, its own UDP port (its own flow).
fn client_config(iface: &str, core: usize, udp_port: u16) -> Result<Config> {
    let text = format!(
        "cores = [{core}]\n[port]\nbackend = \"afpacket\"\niface = \"{iface}\"\n[net]\n\
         ip = \"{}\"\nudp_port = {udp_port}\n[engine]\nidle = \"yield\"\n\
         [transport]\nunreliable_timeout_us = 500000\n[client]\nserver = \"{}:7000\"\n",
        harness::CLIENT_IP,
        harness::SERVER_IP
    );
    Ok(Config::parse(&text, "multi-core client config")?)
}

/// Sessions each server core has opened, from its latest published counters.
fn sessions_per_core(snaps: &[CoreSnapshot<ServerStats>]) -> Vec<u64> {
    snaps.iter().map(|s| s.transport.sessions_opened).collect()
}

/// Runs the client rounds against a two-core server on `server` and checks the split.
fn two_core_scenario(net: &NetnsPair, server: &Backend) -> Result<()> {
    let scfg = server_config(server, &net.veth_b)?;
    let engine = start_server(&net.ns_b, server, &net.veth_b, scfg)?;
    let mut flows = 0u64;
    let result = (|| -> Result<()> {
        for round in 0..MAX_ROUNDS {
            let outcomes = std::thread::scope(|s| {
                let handles: Vec<_> = (0..CLIENTS_PER_ROUND)
                    .map(|i| {
                        let n = round * CLIENTS_PER_ROUND + i;
                        let udp_port = 7001 + n as u16;
                        s.spawn(move || -> Result<_> {
                            let ccfg = client_config(&net.veth_a, n % 2, udp_port)?;
                            let run = Run {
                                concurrency: 4,
                                keys: 20,
                                ..Run::new(Op::Mixed, RPCS, "alice")
                            };
                            let stats = run_client(
                                &net.ns_a,
                                &Backend::Afpacket,
                                &net.veth_a,
                                &ccfg,
                                run,
                                Duration::from_secs(15),
                            )
                            .with_context(|| format!("client on UDP port {udp_port}"))?;
                            Ok((udp_port, stats))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
                    })
                    .collect::<Vec<_>>()
            });
            for outcome in outcomes {
                let (port, c) = outcome?;
                ensure!(
                    c.completed == RPCS && c.errors == 0 && c.mismatches == 0,
                    "client on UDP port {port}: {c:?}"
                );
                flows += 1;
            }
            // Counters are published every 100 ms; wait for a fresh set.
            std::thread::sleep(Duration::from_millis(250));
            let split = sessions_per_core(&engine.snapshots());
            eprintln!("after round {round}: {flows} flows, sessions per server core {split:?}");
            if round + 1 >= MIN_ROUNDS && split.iter().all(|&n| n > 0) {
                break;
            }
        }
        Ok(())
    })();
    let cores = stop_server(engine)?;
    result?;

    ensure!(
        cores.len() == 2,
        "want two server cores, got {}",
        cores.len()
    );
    let split: Vec<u64> = cores
        .iter()
        .map(|(_, s)| s.transport.sessions_opened)
        .collect();
    eprintln!("{server:?}: {flows} client sessions, server cores opened {split:?}");
    ensure!(
        split.iter().sum::<u64>() == flows,
        "sessions opened per core {split:?} do not sum to the {flows} client sessions"
    );
    ensure!(
        split.iter().all(|&n| n > 0),
        "one core served every one of {flows} flows: {split:?}"
    );
    let mut sets = 0;
    let mut gets = 0;
    for (app, snap) in &cores {
        let t = &snap.transport;
        ensure!(
            t.rx_unknown_session == 0 && t.rx_wrong_peer == 0,
            "core {}: packets for sessions it does not own (a session moved core): {t:?}",
            snap.core
        );
        let s: &ServerStats = &snap.app;
        ensure!(
            s.set_duplicates == 0 && s.set_out_of_order == 0 && s.app_errors == 0,
            "core {}: {s:?}",
            snap.core
        );
        ensure!(
            s.allowed == s.sets + s.gets && s.denied == 0,
            "core {}: firewall {s:?}",
            snap.core
        );
        // Each core's session tracker saw alice once per request it served.
        let tracked = tracked_requests(app);
        ensure!(
            tracked == s.sets + s.gets,
            "core {}: tracker counted {tracked} of {} requests",
            snap.core,
            s.sets + s.gets
        );
        sets += s.sets;
        gets += s.gets;
    }
    ensure!(
        sets + gets == flows * RPCS,
        "server cores executed {sets} SETs + {gets} GETs, want {}",
        flows * RPCS
    );
    Ok(())
}

fn tracked_requests(app: &KvServer) -> u64 {
    app.pipeline()
        .session_tracker
        .requests
        .get(&b"alice".to_vec())
        .copied()
        .unwrap_or(0)
}

#[test]
fn two_server_cores_over_afpacket_fanout() -> Result<()> {
    if !require_root("two_server_cores_over_afpacket_fanout") {
        return Ok(());
    }
    let net = NetnsPair::new("kvmc")?;
    two_core_scenario(&net, &Backend::Afpacket)
}

#[cfg(feature = "dpdk")]
#[test]
fn two_server_cores_over_dpdk_af_packet_qpairs() -> Result<()> {
    use dataplane::dpdk::EthDev;
    if !require_root("two_server_cores_over_dpdk_af_packet_qpairs") {
        return Ok(());
    }
    harness::init_eal("flatrpc-kvmc")?;
    let net = NetnsPair::new("kvmd")?;
    // Two queue pairs: the PMD opens one socket per pair, joined in a PACKET_FANOUT_HASH
    // group. Made here (in the server's namespace) so the harness finds it by name.
    let name = "net_af_packet20".to_string();
    let vdev_args = format!("iface={},qpairs=2", net.veth_b);
    let n = name.clone();
    harness::in_netns(&net.ns_b, move || EthDev::create_vdev(&n, &vdev_args))?
        .with_context(|| format!("creating {name} with two queue pairs"))?;
    two_core_scenario(&net, &Backend::Dpdk(name))
}
