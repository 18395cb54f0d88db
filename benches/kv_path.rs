//! The KV server path with the handler in-process vs behind the shared-memory channel
//! (harness = false): issue 6's "channel overhead vs the in-process mode on the same
//! path", measured without the network and without more busy threads than cores.
//!
//! One polling thread (pinned to CPU 0) runs two engine cores back to back: a KV client
//! core (`KvClient`, the same app as `kv-client`) and a KV server core, joined by an
//! in-memory link (`SimLink`, no impairment, real clock). Both use the real engine code:
//! net stack (Ethernet/IPv4/UDP with checksums), transport, the generated firewall →
//! session-tracker chain. The server core's application is either
//! - in-process: `KvServer` (chain + handler on the core), or
//! - attached: `ShmServerBridge<KvChain>` (chain on the core) handing each request over
//!   a real hub channel to an attached `serve_attached` application thread pinned to
//!   CPU 1 (a thread of this process standing in for the app process: the memory path
//!   is the same).
//!
//! Figures: GET round trip p50/p99 with one call outstanding, SET throughput with 16
//! outstanding; what the channel adds to the median and the throughput ratio (targets
//! ≤ 1.5 µs and ≥ 0.7). Two busy threads on two CPUs: on a shared machine the figures
//! move with the load.
//!
//! Run: `cargo bench -p flatrpc --no-default-features --bench kv_path`

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dataplane::anf::InitCtx;
use dataplane::app::{BridgeStats, ChannelEvent, Geometry, Hub, HubConfig, ShmServerBridge};
use dataplane::engine::{tables_from_config, App, Clock, Core, NetStack, Peer};
use dataplane::port::sim::{SimClock, SimLink, SimLinkConfig, SimPort};
use dataplane::port::Port;
use dataplane::transport::Endpoint;
use dataplane::wire::MacAddr;
use kv_example::attach::{serve_attached, KvChain};
use kv_example::client::{ClientSpec, ClientStats, KvClient, Op};
use kv_example::kv;
use kv_example::server::{KvServer, Store};

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const GETS: u64 = 50_000;
const SETS: u64 = 200_000;
const KEYS: u64 = 64;

fn pin(cpu: usize) {
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

fn tables() -> Result<kv::Tables> {
    let t: BTreeMap<String, toml::Value> =
        toml::from_str("[firewall]\nrules = { alice = \"allow\" }")?;
    tables_from_config(&t).map_err(anyhow::Error::msg)
}

fn pipeline(shared: &kv::ServerShared) -> Result<kv::ServerPipeline> {
    Ok(kv::ServerPipeline::new(
        shared,
        &tables()?,
        &InitCtx { now: 0, seed: 1 },
    ))
}

fn endpoint() -> Result<Endpoint<Peer>> {
    let spec = kv_example::engine_spec();
    Endpoint::new(spec.transport, spec.classes).context("transport configuration")
}

/// The two ends of the in-memory link and the server's net stack (knowing the client).
fn link() -> Result<(SimPort, SimPort, NetStack)> {
    let (c, s) = SimLink::pair(
        SimLinkConfig {
            clock: SimClock::real(),
            ..SimLinkConfig::default()
        },
        1,
    )?;
    let snet = NetStack::new(s.mac(), SERVER_IP, 7000, &[(CLIENT_IP, c.mac())]);
    Ok((c, s, snet))
}

fn client_core(
    port: SimPort,
    server_mac: MacAddr,
    op: Op,
    count: u64,
    window: usize,
) -> Result<Core<SimPort, KvClient>> {
    let net = NetStack::new(port.mac(), CLIENT_IP, 7001, &[(SERVER_IP, server_mac)]);
    let spec = ClientSpec {
        server: SocketAddrV4::new(SERVER_IP, 7000),
        op,
        count,
        user: "alice".into(),
        value_size: 128,
        keys: KEYS,
        concurrency: window,
    };
    Ok(Core::new(
        0,
        port,
        endpoint()?,
        net,
        KvClient::new(spec),
        Clock::new(),
    ))
}

/// Runs one client load against `server` on this thread; returns its stats, seconds and
/// the client's port (for the next load).
fn drive<S: App>(
    server: &mut Core<SimPort, S>,
    server_mac: MacAddr,
    port: SimPort,
    op: Op,
    count: u64,
    window: usize,
) -> Result<(ClientStats, f64, SimPort)> {
    let mut client = client_core(port, server_mac, op, count, window)?;
    let t0 = Instant::now();
    let limit = t0 + Duration::from_secs(120);
    while client.poll_once() {
        server.poll_once();
        if Instant::now() > limit {
            bail!("the load did not finish in time");
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let st = client.app().stats();
    ensure!(
        st.completed == count && st.errors == 0,
        "{} of {count} completed, {} errors",
        st.completed,
        st.errors
    );
    Ok((st, secs, client.into_port()))
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    sets_per_s: f64,
}

/// Fills the store, then times GETs one at a time and SETs 16 at a time.
fn measure<S: App>(
    server: &mut Core<SimPort, S>,
    server_mac: MacAddr,
    port: SimPort,
) -> Result<Figures> {
    let (_, _, port) = drive(server, server_mac, port, Op::Set, KEYS, 1)?;
    let (gets, _, port) = drive(server, server_mac, port, Op::Get, GETS, 1)?;
    let (_, secs, _) = drive(server, server_mac, port, Op::Set, SETS, 16)?;
    Ok(Figures {
        p50_us: gets.latency_ns.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: gets.latency_ns.value_at_quantile(0.99) as f64 / 1e3,
        sets_per_s: SETS as f64 / secs,
    })
}

fn in_process() -> Result<Figures> {
    let (cport, sport, snet) = link()?;
    let smac = sport.mac();
    let shared = kv::ServerShared::default();
    let app = KvServer::new(pipeline(&shared)?, Store::default());
    let mut server = Core::new(1, sport, endpoint()?, snet, app, Clock::new());
    measure(&mut server, smac, cport)
}

fn attached() -> Result<Figures> {
    let socket =
        std::env::temp_dir().join(format!("flatrpc-bench-kvpath-{}.sock", std::process::id()));
    let (hub, rxs) = Hub::start(HubConfig {
        socket: socket.clone(),
        max_geometry: Geometry::default(),
        allow_uids: vec![],
        allow_gids: vec![],
        server_services: vec![kv::SERVICE_ID],
        clients: false,
        cores: 1,
    })?;
    let rx: crossbeam::channel::Receiver<ChannelEvent> =
        rxs.into_iter().next().context("a receiver per core")?;
    let stop = Arc::new(AtomicBool::new(false));
    let app = {
        let (stop, socket) = (Arc::clone(&stop), socket.clone());
        std::thread::spawn(move || {
            pin(1);
            serve_attached(&socket, &Store::default(), &stop, |_| {})
        })
    };
    let (cport, sport, snet) = link()?;
    let smac = sport.mac();
    let shared = kv::ServerShared::default();
    let bridge = ShmServerBridge::new(KvChain::new(pipeline(&shared)?), rx);
    let mut server = Core::new(1, sport, endpoint()?, snet, bridge, Clock::new());
    // Wait (bounded) for the application's channel to reach the core.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.app().stats().channels == 0 {
        ensure!(Instant::now() < deadline, "the application did not attach");
        server.poll_once();
    }
    let r = measure(&mut server, smac, cport);
    let bs: BridgeStats = server.app().stats();
    stop.store(true, Ordering::Relaxed);
    drop(hub);
    let _ = app.join();
    let r = r?;
    ensure!(
        bs.unavailable == 0 && bs.bad_descriptors == 0,
        "bridge: {bs:?}"
    );
    Ok(r)
}

fn main() -> Result<()> {
    pin(0);
    println!(
        "KV server path, handler in-process vs attached over shared memory (one polling thread on CPU 0 running client and server cores over an in-memory link; attached app on CPU 1)"
    );
    println!(
        "  {:<28} {:>8} {:>8} {:>12}",
        "mode", "p50 us", "p99 us", "SET/s (16)"
    );
    let a = in_process()?;
    let b = attached()?;
    for (name, f) in [("in-process handler", &a), ("attached application", &b)] {
        println!(
            "  {name:<28} {:>8.2} {:>8.2} {:>12.0}",
            f.p50_us, f.p99_us, f.sets_per_s
        );
    }
    let added = b.p50_us - a.p50_us;
    let ratio = b.sets_per_s / a.sets_per_s;
    println!(
        "  added to the median: {added:.2} us ({} target <= 1.5 us)",
        if added <= 1.5 { "meets" } else { "BELOW" }
    );
    println!(
        "  throughput ratio: {ratio:.2} ({} target >= 0.7)",
        if ratio >= 0.7 { "meets" } else { "BELOW" }
    );
    Ok(())
}
