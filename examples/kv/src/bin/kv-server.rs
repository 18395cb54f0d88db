//! kv-server: the seed's KV service on the flatrpc dataplane.
//!
//!   kv-server --config server.toml [--stats-period 1] [--json] [--preload N [--preload-value-size B]]
//!   kv-server --attach SOCKET [--threads N] [--json]
//!
//! With `--attach`, kv-server is an application process of a host dataplane
//! (`dataplane run` with `[host.apps] role = "server"`): it serves the store over the
//! shared-memory channel and the dataplane runs the ANF chain; it reattaches when the
//! dataplane restarts.
//!
//! Runs one polling core per `cores` entry until SIGINT/SIGTERM, then prints final
//! counters (port, wire drops by reason, transport, firewall/session ANFs, store).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use dataplane::anf::InitCtx;
use dataplane::config::Config;
use dataplane::engine::{tables_from_config, CoreSnapshot, Engine};
use kv_example::attach::AttachedServerStats;
use kv_example::kv;
use kv_example::server::{KvServer, ServerStats, Store};

#[derive(Parser)]
#[command(
    name = "kv-server",
    version,
    about = "The KV service on the flatrpc dataplane"
)]
struct Args {
    /// Dataplane configuration (TOML).
    #[arg(long, required_unless_present = "attach")]
    config: Option<PathBuf>,
    /// Serve through the host dataplane listening on this Unix socket instead.
    #[arg(long, conflicts_with = "config")]
    attach: Option<PathBuf>,
    /// With --attach: serving threads, each with its own channel (the dataplane gives
    /// each core one in turn: use as many as the dataplane has cores).
    #[arg(long, default_value_t = 1, requires = "attach", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Seconds between counter lines; 0 for none.
    #[arg(long, default_value_t = 0.0)]
    stats_period: f64,
    /// Print the final counters as one JSON line.
    #[arg(long)]
    json: bool,
    /// Start with keys `key-0 ..` (as kv-pcap and kv-client name them) already stored,
    /// e.g. so that a replayed GET recording hits.
    #[arg(long, default_value_t = 0)]
    preload: usize,
    /// Value size of the preloaded keys, bytes.
    #[arg(long, default_value_t = 32, requires = "preload")]
    preload_value_size: usize,
}

#[derive(serde::Serialize)]
struct Final {
    server: ServerStats,
    cores: Vec<CoreSnapshot<ServerStats>>,
}

fn sum(cores: &[CoreSnapshot<ServerStats>]) -> ServerStats {
    let mut t = ServerStats::default();
    for c in cores {
        let s = &c.app;
        t.gets += s.gets;
        t.sets += s.sets;
        t.allowed += s.allowed;
        t.denied += s.denied;
        t.dropped += s.dropped;
        t.sessions += s.sessions;
        t.app_errors += s.app_errors;
        t.set_duplicates += s.set_duplicates;
        t.set_out_of_order += s.set_out_of_order;
    }
    t
}

fn run_attached(socket: &std::path::Path, threads: u16, json: bool, store: Store) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let results: Vec<Result<AttachedServerStats>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (store, stop) = (&store, &*stop);
                s.spawn(move || {
                    let r = kv_example::attach::serve_attached(socket, store, stop, |e| {
                        eprintln!("kv-server[{t}]: {e}")
                    });
                    // One thread failing (e.g. the dataplane did not come back) ends all.
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a serving thread panicked")))
            })
            .collect()
    });
    let mut st = AttachedServerStats::default();
    for r in results {
        let r = r?;
        st.gets += r.gets;
        st.sets += r.sets;
        st.app_errors += r.app_errors;
        st.reattaches += r.reattaches;
    }
    if json {
        println!("{}", serde_json::to_string(&st)?);
    } else {
        println!(
            "kv-server (attached) final counters: gets {} sets {} app errors {} reattaches {}",
            st.gets, st.sets, st.app_errors, st.reattaches
        );
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    let store = Store::default();
    kv_example::replay::preload(&store, args.preload, args.preload_value_size);
    if let Some(socket) = &args.attach {
        return run_attached(socket, args.threads, args.json, store);
    }
    let config = args
        .config
        .clone()
        .context("--config or --attach is needed")?;
    let cfg = Config::load(&config)?;
    let tables: kv::Tables = tables_from_config(&cfg.tables)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let shared = kv::ServerShared::default();
    let engine = Engine::start(&cfg, &kv_example::engine_spec(), Arc::clone(&stop), |i| {
        let init = InitCtx {
            now: 0,
            seed: 0x6b76 ^ i as u64,
        };
        KvServer::new(
            kv::ServerPipeline::new(&shared, &tables, &init),
            Arc::clone(&store),
        )
    })?;
    eprintln!(
        "kv-server: serving {} on {}:{} ({} core(s), mac {})",
        kv::SERVICE_NAME,
        cfg.net.ip,
        cfg.net.udp_port,
        cfg.cores.len(),
        engine.mac
    );
    let period = (args.stats_period > 0.0).then(|| Duration::from_secs_f64(args.stats_period));
    let mut next = period.map(|p| Instant::now() + p);
    // RPCs run by the handler and frames sent at the previous counter line, for rates.
    let mut last = (Instant::now(), 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && !engine.finished() {
        std::thread::sleep(Duration::from_millis(20));
        if let (Some(at), Some(p)) = (next, period) {
            let t = Instant::now();
            if t >= at {
                let snaps = engine.snapshots();
                let s = sum(&snaps);
                let tx: u64 = snaps.iter().map(|c| c.port.tx_packets).sum();
                let secs = t.duration_since(last.0).as_secs_f64().max(1e-9);
                let rps = (s.gets + s.sets).saturating_sub(last.1) as f64 / secs;
                let tx_pps = tx.saturating_sub(last.2) as f64 / secs;
                eprintln!(
                    "kv-server: gets {} sets {} allowed {} denied {} sessions {} rps {:.0} tx_pps {:.0}",
                    s.gets, s.sets, s.allowed, s.denied, s.sessions, rps, tx_pps
                );
                last = (t, s.gets + s.sets, tx);
                next = Some(at + p);
            }
        }
    }
    let cores: Vec<_> = engine
        .stop_and_join()?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let total = sum(&cores);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&Final {
                server: total,
                cores
            })?
        );
    } else {
        println!("kv-server final counters");
        println!(
            "  rpcs: gets {}  sets {}  app errors {}  ordered-set violations {} dup / {} reordered",
            total.gets, total.sets, total.app_errors, total.set_duplicates, total.set_out_of_order
        );
        println!(
            "  ANFs: firewall allowed {}  denied {}  dropped {}  session tracker users {}",
            total.allowed, total.denied, total.dropped, total.sessions
        );
        for c in &cores {
            println!(
                "  core {}: rx {} tx {} frames, wire drops {}, transport rx {} tx {} retransmissions {} duplicates {} sessions opened {}",
                c.core,
                c.port.rx_packets,
                c.port.tx_packets,
                c.net.dropped(),
                c.transport.rx_packets,
                c.transport.tx_packets,
                c.transport.retransmissions,
                c.transport.duplicate_requests,
                c.transport.sessions_opened
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
