//! kv-host: a small host dataplane for the KV service's host mode (and its tests) —
//! the engine with a shared-memory bridge, application processes attach to it.
//!
//!   kv-host --config FILE --socket PATH --role server|client [--stats FILE]
//!           [--allow-uid UID]...
//!
//! `server`: requests for the KV service run the firewall → session tracker chain here
//! and are served by attached `kv-server --attach PATH` processes. `client`: attached
//! `kv-client --attach PATH` processes' calls go to `[client] server` of the config.
//! `--stats FILE` is rewritten (atomically) every 100 ms with the bridge, hub and
//! transport counters as JSON. Runs until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use dataplane::anf::InitCtx;
use dataplane::app::hub::HubSnapshot;
use dataplane::app::{BridgeStats, Geometry, Hub, HubConfig, ShmClientBridge, ShmServerBridge};
use dataplane::config::Config;
use dataplane::engine::{tables_from_config, App, CoreSnapshot, Engine, Peer};
use dataplane::transport::TransportStats;
use kv_example::attach::KvChain;
use kv_example::kv;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HostRole {
    Server,
    Client,
}

#[derive(Parser)]
#[command(
    name = "kv-host",
    version,
    about = "Host dataplane for attached KV applications"
)]
struct Args {
    #[arg(long)]
    config: PathBuf,
    /// The Unix socket applications attach to.
    #[arg(long)]
    socket: PathBuf,
    #[arg(long, value_enum)]
    role: HostRole,
    /// Rewrite this file with counters (JSON) every 100 ms.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Another uid allowed to attach (besides this process's and root).
    #[arg(long)]
    allow_uid: Vec<u32>,
}

#[derive(serde::Serialize)]
struct HostStats {
    pid: u32,
    hub: HubSnapshot,
    bridge: BridgeStats,
    transport: Vec<TransportStats>,
}

fn sum(cores: &[CoreSnapshot<BridgeStats>]) -> BridgeStats {
    let mut t = BridgeStats::default();
    for c in cores {
        t.add(&c.app);
    }
    t
}

fn write_stats(path: &Path, hub: &Hub, cores: &[CoreSnapshot<BridgeStats>]) -> Result<()> {
    let s = HostStats {
        pid: std::process::id(),
        hub: hub.stats(),
        bridge: sum(cores),
        transport: cores.iter().map(|c| c.transport.clone()).collect(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&s)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn supervise<A: App<Stats = BridgeStats> + 'static>(
    args: &Args,
    hub: &Hub,
    engine: Engine<A>,
    stop: &AtomicBool,
) -> Result<()> {
    eprintln!(
        "kv-host: listening on {} (pid {})",
        args.socket.display(),
        std::process::id()
    );
    while !stop.load(Ordering::Relaxed) && !engine.finished() {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(p) = &args.stats {
            write_stats(p, hub, &engine.snapshots())?;
        }
    }
    let cores: Vec<_> = engine
        .stop_and_join()?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    if let Some(p) = &args.stats {
        write_stats(p, hub, &cores)?;
    }
    eprintln!("kv-host: final {}", serde_json::to_string(&sum(&cores))?);
    Ok(())
}

fn run(args: Args) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let hub_cfg = HubConfig {
        socket: args.socket.clone(),
        max_geometry: Geometry::default(),
        allow_uids: args.allow_uid.clone(),
        allow_gids: Vec::new(),
        server_services: if args.role == HostRole::Server {
            vec![kv::SERVICE_ID]
        } else {
            Vec::new()
        },
        clients: args.role == HostRole::Client,
        cores: cfg.cores.len(),
    };
    let (hub, rxs) = Hub::start(hub_cfg)?;
    let spec = kv_example::engine_spec();
    match args.role {
        HostRole::Server => {
            let tables: kv::Tables = tables_from_config(&cfg.tables)
                .map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
            let shared = kv::ServerShared::default();
            let engine = Engine::start(&cfg, &spec, Arc::clone(&stop), |i| {
                let init = InitCtx {
                    now: 0,
                    seed: 0x6b76 ^ i as u64,
                };
                let chain = KvChain::new(kv::ServerPipeline::new(&shared, &tables, &init));
                ShmServerBridge::new(chain, rxs[i].clone())
            })?;
            supervise(&args, &hub, engine, &stop)
        }
        HostRole::Client => {
            let server = cfg
                .client
                .as_ref()
                .ok_or_else(|| anyhow!("{}: needs a [client] section", args.config.display()))?
                .server;
            let peer = Peer {
                ip: *server.ip(),
                port: server.port(),
            };
            let engine = Engine::start(&cfg, &spec, Arc::clone(&stop), |i| {
                ShmClientBridge::new(rxs[i].clone(), peer, spec.classes.clone())
            })?;
            supervise(&args, &hub, engine, &stop)
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
