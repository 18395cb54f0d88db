//! Runs kv-server and kv-client engines in-process, each inside its own network
//! namespace (see the root `tests/common`): sockets and DPDK vdevs are opened on a thread
//! that entered the namespace, after which the engine's cores may run anywhere.
#![allow(dead_code)]

#[path = "../../../../tests/common/mod.rs"]
pub mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::anf::InitCtx;
use dataplane::config::Config;
use dataplane::engine::{tables_from_config, CoreSnapshot, Engine};
use kv_example::client::{ClientSpec, ClientStats, KvClient, Op};
use kv_example::kv;
use kv_example::server::{KvServer, ServerStats, Store};

pub use common::{in_netns, require_root, NetnsPair};

/// The dataplane's own addresses: not the kernel's (10.77.0.x), so it stays out of the way.
pub const CLIENT_IP: &str = "10.77.1.1";
pub const SERVER_IP: &str = "10.77.1.2";

/// How one side reaches its veth.
#[derive(Debug, Clone)]
pub enum Backend {
    Afpacket,
    /// DPDK's `net_af_packet` PMD on the side's veth, as vdev `name` (created in the
    /// side's namespace, in this process's EAL, whenever an engine starts: a vdev goes
    /// away when the engine that used it stops).
    Dpdk(String),
}

/// Starts this test process's EAL (no hugepages, no PCI, a file prefix unique to the
/// process): what every DPDK-backed test here needs before it creates vdevs.
#[cfg(feature = "dpdk")]
pub fn init_eal(prefix: &str) -> Result<()> {
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        "--log-level=lib.eal:error",
        &format!("--file-prefix={prefix}-{}", std::process::id()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    dataplane::dpdk::Eal::init(&args)?;
    Ok(())
}

/// Makes sure the vdev of a DPDK side exists, creating it inside `ns`.
#[cfg(feature = "dpdk")]
fn ensure_vdev(backend: &Backend, ns: &str, iface: &str) -> Result<()> {
    use dataplane::dpdk::EthDev;
    let Backend::Dpdk(name) = backend else {
        return Ok(());
    };
    if EthDev::port_by_name(name).is_ok() {
        return Ok(());
    }
    // A vdev whose port an earlier engine closed is still on the bus: take it off first.
    let _ = EthDev::remove_vdev(name);
    let (n, args) = (name.clone(), format!("iface={iface}"));
    in_netns(ns, move || EthDev::create_vdev(&n, &args))?
        .with_context(|| format!("creating {name} on {iface}"))?;
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn ensure_vdev(_: &Backend, _: &str, _: &str) -> Result<()> {
    Ok(())
}

/// A config for one side; `extra` is appended (tables, client section...).
pub fn config(
    backend: &Backend,
    iface: &str,
    core: usize,
    ip: &str,
    port: u16,
    extra: &str,
) -> Result<Config> {
    let port_section = match backend {
        Backend::Afpacket => format!("backend = \"afpacket\"\niface = \"{iface}\""),
        Backend::Dpdk(dev) => {
            format!("backend = \"dpdk\"\ndevice = \"{dev}\"\neal = \"(initialised by the test)\"")
        }
    };
    let text = format!(
        "cores = [{core}]\n[port]\n{port_section}\n[net]\nip = \"{ip}\"\nudp_port = {port}\n\
         [transport]\nunreliable_timeout_us = 500000\n{extra}\n"
    );
    Ok(Config::parse(&text, "test config")?)
}

pub const RULES: &str = "[tables.firewall]\nrules = { alice = \"allow\", bob = \"deny\" }";

/// Starts a KV server engine inside `ns` (on `iface` for a DPDK backend).
pub fn start_server(
    ns: &str,
    backend: &Backend,
    iface: &str,
    cfg: Config,
) -> Result<Engine<KvServer>> {
    Ok(start_server_with_store(ns, backend, iface, cfg)?.0)
}

/// A one-core kv-server on the AF_PACKET backend on the server side of `net`, with the
/// default rules.
pub fn start_afpacket_server(net: &NetnsPair) -> Result<Engine<KvServer>> {
    let scfg = config(&Backend::Afpacket, &net.veth_b, 1, SERVER_IP, 7000, RULES)?;
    start_server(&net.ns_b, &Backend::Afpacket, &net.veth_b, scfg)
}

/// As [`start_server`], also returning the server's store (to check what was written).
pub fn start_server_with_store(
    ns: &str,
    backend: &Backend,
    iface: &str,
    cfg: Config,
) -> Result<(Engine<KvServer>, Store)> {
    ensure_vdev(backend, ns, iface)?;
    let store = Store::default();
    let server_store = Arc::clone(&store);
    let engine = in_netns(ns, move || -> Result<_> {
        let tables: kv::Tables = tables_from_config(&cfg.tables).map_err(anyhow::Error::msg)?;
        let shared = kv::ServerShared::default();
        let stop = Arc::new(AtomicBool::new(false));
        Engine::start(&cfg, &kv_example::engine_spec(), stop, |i| {
            let init = InitCtx {
                now: 0,
                seed: i as u64,
            };
            KvServer::new(
                kv::ServerPipeline::new(&shared, &tables, &init),
                Arc::clone(&server_store),
            )
        })
    })??;
    Ok((engine, store))
}

/// What a client run asks for.
pub struct Run {
    pub op: Op,
    pub count: u64,
    pub user: &'static str,
    pub concurrency: usize,
    pub value_size: usize,
    pub keys: u64,
}

impl Run {
    pub fn new(op: Op, count: u64, user: &'static str) -> Run {
        Run {
            op,
            count,
            user,
            concurrency: 8,
            value_size: 64,
            keys: 50,
        }
    }
}

/// Runs a KV client engine inside `ns` until its RPCs all have an outcome (or `limit`).
pub fn run_client(
    ns: &str,
    backend: &Backend,
    iface: &str,
    cfg: &Config,
    run: Run,
    limit: Duration,
) -> Result<ClientStats> {
    ensure_vdev(backend, ns, iface)?;
    let server = format!("{SERVER_IP}:7000").parse()?;
    let spec = ClientSpec {
        server,
        op: run.op,
        count: run.count,
        user: run.user.to_string(),
        value_size: run.value_size,
        keys: run.keys,
        concurrency: run.concurrency,
    };
    let cfg = cfg.clone();
    let engine = in_netns(ns, move || {
        Engine::start(
            &cfg,
            &kv_example::engine_spec(),
            Arc::new(AtomicBool::new(false)),
            |_| KvClient::new(spec.clone()),
        )
    })??;
    let deadline = Instant::now() + limit;
    while !engine.finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let finished = engine.finished();
    let mut results = engine.stop_and_join()?;
    let (_, snap) = results.pop().context("no client core")?;
    if !finished {
        bail!(
            "client still running after {limit:?}: {} completed, {} errors of {}",
            snap.app.completed,
            snap.app.errors,
            run.count
        );
    }
    Ok(snap.app)
}

/// Stops a server and returns its apps and final counters.
pub fn stop_server(engine: Engine<KvServer>) -> Result<Vec<(KvServer, CoreSnapshot<ServerStats>)>> {
    engine.stop_and_join()
}

/// The scenario every backend pairing runs: SET then GET returns the values; alice is
/// answered, bob (denied by a rule) and mallory (not listed) get "denied" error replies,
/// not timeouts; the session tracker counted exactly alice's requests.
pub fn kv_scenario(net: &NetnsPair, server: &Backend, client: &Backend) -> Result<()> {
    let scfg = config(server, &net.veth_b, 1, SERVER_IP, 7000, RULES)?;
    let ccfg = config(
        client,
        &net.veth_a,
        0,
        CLIENT_IP,
        7001,
        &format!("[client]\nserver = \"{SERVER_IP}:7000\""),
    )?;
    let engine = start_server(&net.ns_b, server, &net.veth_b, scfg)?;
    let run_client = |r: Run, limit| run_client(&net.ns_a, client, &net.veth_a, &ccfg, r, limit);
    let limit = Duration::from_secs(20);
    let result = (|| -> Result<()> {
        let set = run_client(Run::new(Op::Set, 500, "alice"), limit)?;
        anyhow::ensure!(set.completed == 500 && set.errors == 0, "SETs: {set:?}");
        let get = run_client(Run::new(Op::Get, 500, "alice"), limit)?;
        anyhow::ensure!(get.completed == 500, "GETs: {get:?}");
        anyhow::ensure!(
            get.gets_found == 500 && get.mismatches == 0,
            "GETs read back: {get:?}"
        );
        for user in ["bob", "mallory"] {
            let r = run_client(Run::new(Op::Get, 50, user), limit)?;
            anyhow::ensure!(
                r.completed == 0 && r.denied == 50,
                "{user}: want 50 denied, got {r:?}"
            );
            anyhow::ensure!(
                r.timeouts == 0,
                "{user}: denials must be replies, not timeouts: {r:?}"
            );
        }
        Ok(())
    })();
    let cores = stop_server(engine)?;
    result?;
    let (app, snap) = cores.first().context("no server core")?;
    let s = &snap.app;
    anyhow::ensure!(s.sets == 500 && s.gets == 500, "server executed: {s:?}");
    anyhow::ensure!(s.allowed == 1000 && s.denied == 100, "firewall: {s:?}");
    anyhow::ensure!(
        s.set_duplicates == 0 && s.set_out_of_order == 0,
        "ordering: {s:?}"
    );
    // The session tracker saw alice only (the firewall stopped the others first), once
    // per allowed request; four client sessions were opened to get there.
    anyhow::ensure!(s.sessions == 1, "session tracker users: {s:?}");
    let tracked = app
        .pipeline()
        .session_tracker
        .requests
        .get(&b"alice".to_vec())
        .copied();
    anyhow::ensure!(
        tracked == Some(1000),
        "session tracker requests of alice: {tracked:?}"
    );
    anyhow::ensure!(
        snap.transport.sessions_opened == 4,
        "sessions opened: {}",
        snap.transport.sessions_opened
    );
    Ok(())
}
