//! kv-client: drives the KV service through the flatrpc dataplane.
//!
//!   kv-client --config client.toml --op get|set|mixed --count N --user NAME \
//!             --value-size B [--concurrency C] [--keys K] [--json]
//!
//! Opens one session to `[client] server` from the config, keeps C RPCs outstanding
//! until N have an outcome, and prints throughput, latency percentiles and outcomes;
//! `--json` ends with one JSON line.
//!
//!   kv-client --attach SOCKET --op ... (same options, no --config)
//!
//! With `--attach`, kv-client is an application process of a host dataplane
//! (`dataplane run` with `[host.apps] role = "client"`) and issues the same RPCs over the
//! shared-memory channel, reattaching if the dataplane restarts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use dataplane::config::Config;
use dataplane::engine::Engine;
use kv_example::client::{ClientSpec, ClientStats, KvClient, Op};

#[derive(Parser)]
#[command(
    name = "kv-client",
    version,
    about = "Drives the KV service through the flatrpc dataplane"
)]
struct Args {
    /// Dataplane configuration (TOML) with a [client] section naming the server.
    #[arg(long, required_unless_present = "attach")]
    config: Option<PathBuf>,
    /// Call through the host dataplane listening on this Unix socket instead.
    #[arg(long, conflicts_with = "config")]
    attach: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "get")]
    op: Op,
    /// RPCs to issue.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// The `user` field (the firewall decides on it).
    #[arg(long, default_value = "alice")]
    user: String,
    /// Bytes of each SET value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Outstanding RPCs (at most the transport window, 32 by default).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Distinct keys cycled through (`key-0` ...).
    #[arg(long, default_value_t = 100)]
    keys: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Print one JSON line with the results.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    op: Op,
    count: u64,
    completed: u64,
    errors: u64,
    denied: u64,
    timeouts: u64,
    remote_errors: u64,
    other_errors: u64,
    gets_found: u64,
    gets_not_found: u64,
    mismatches: u64,
    connect_failed: bool,
    seconds: f64,
    rps: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

fn report(args: &Args, s: &ClientStats) -> Report {
    let q = |p: f64| s.latency_ns.value_at_quantile(p) as f64 / 1000.0;
    let seconds = s.last_outcome_ns.saturating_sub(s.first_call_ns) as f64 / 1e9;
    Report {
        op: args.op,
        count: args.count,
        completed: s.completed,
        errors: s.errors,
        denied: s.denied,
        timeouts: s.timeouts,
        remote_errors: s.remote_errors,
        other_errors: s.other_errors,
        gets_found: s.gets_found,
        gets_not_found: s.gets_not_found,
        mismatches: s.mismatches,
        connect_failed: s.connect_failed,
        seconds,
        rps: if seconds > 0.0 {
            s.completed as f64 / seconds
        } else {
            0.0
        },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: s.latency_ns.max() as f64 / 1000.0,
    }
}

fn check_concurrency(args: &Args) -> Result<()> {
    if args.concurrency == 0 || args.concurrency > 64 {
        bail!(
            "--concurrency must be between 1 and 64, got {}",
            args.concurrency
        );
    }
    Ok(())
}

fn run(args: Args) -> Result<bool> {
    if let Some(socket) = &args.attach {
        check_concurrency(&args)?;
        return run_attached(&args, socket);
    }
    let config = args
        .config
        .clone()
        .context("--config or --attach is needed")?;
    let cfg = Config::load(&config)?;
    let server = cfg
        .client
        .as_ref()
        .ok_or_else(|| {
            anyhow!(
                "{}: needs a [client] section with `server = \"IP:PORT\"`",
                config.display()
            )
        })?
        .server;
    check_concurrency(&args)?;
    if cfg.cores.len() != 1 {
        bail!("kv-client runs on one core: give one entry in `cores`");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let spec = ClientSpec {
        server,
        op: args.op,
        count: args.count,
        user: args.user.clone(),
        value_size: args.value_size,
        keys: args.keys,
        concurrency: args.concurrency,
    };
    let engine = Engine::start(&cfg, &kv_example::engine_spec(), Arc::clone(&stop), |_| {
        KvClient::new(spec.clone())
    })?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    while !stop.load(Ordering::Relaxed) && !engine.finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let timed_out = !engine.finished();
    let results = engine.stop_and_join()?;
    let (_, snap) = results.first().ok_or_else(|| anyhow!("no core ran"))?;
    let r = report(&args, &snap.app);
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let op = serde_json::to_string(&r.op)?;
        print_text(
            &format!(
                "kv-client: {} {} RPCs to {server}",
                r.count,
                op.trim_matches('"')
            ),
            "",
            &r,
        );
    }
    if r.connect_failed {
        bail!("could not open a session to {server}");
    }
    if timed_out {
        bail!(
            "gave up after {} s with {} of {} RPCs finished",
            args.timeout,
            r.completed + r.errors,
            r.count
        );
    }
    Ok(true)
}

/// The human-readable outcome: `head: N completed, ...tail`, rate and latency, and the
/// GETs' read-back check.
fn print_text(head: &str, tail: &str, r: &Report) {
    println!(
        "{head}: {} completed, {} errors ({} denied, {} timeouts, {} other remote, {} other){tail}",
        r.completed, r.errors, r.denied, r.timeouts, r.remote_errors, r.other_errors
    );
    if r.completed > 0 {
        println!(
            "  {:.0} RPC/s over {:.3} s; latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
            r.rps, r.seconds, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us
        );
    }
    if r.gets_found + r.gets_not_found > 0 {
        println!(
            "  GETs: {} found, {} not found, {} mismatched values",
            r.gets_found, r.gets_not_found, r.mismatches
        );
    }
}

fn run_attached(args: &Args, socket: &std::path::Path) -> Result<bool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let spec = ClientSpec {
        // Unused over a channel: the host dataplane's config names the server.
        server: std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
        op: args.op,
        count: args.count,
        user: args.user.clone(),
        value_size: args.value_size,
        keys: args.keys,
        concurrency: args.concurrency,
    };
    let (s, reattaches) = kv_example::attach::run_attached_client(
        socket,
        &spec,
        Duration::from_secs_f64(args.timeout.max(0.0)),
        &stop,
        |e| eprintln!("kv-client: {e}"),
    )?;
    let r = report(args, &s);
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("reattaches".into(), reattaches.into());
        }
        println!("{v}");
    } else {
        print_text(
            "kv-client (attached)",
            &format!(", {reattaches} reattaches"),
            &r,
        );
    }
    Ok(true)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-client: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
