//! `rpcbench rpc-server` / `rpcbench rpc-client`: RPC benchmarks through a generated
//! service (the KV example: firewall → session tracker chain) on any backend the
//! dataplane config names.
//!
//! The client opens S sessions and keeps W RPCs outstanding on each (S = W = 1 is the
//! closed-loop latency mode), fills the keys first when measuring GETs, runs a warm-up,
//! then measures for a fixed time: p50/p90/p99/p99.9 from an HdrHistogram, Mrps, and
//! CPU time per RPC from getrusage. It must not hide failures: every RPC without a
//! response is counted by reason, and a run with no completed RPC is an error.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use dataplane::anf::InitCtx;
use dataplane::config::Config;
use dataplane::engine::{anf_error_code, tables_from_config, App, Engine, Peer, SessionEvent};
use dataplane::stats::process_cpu_seconds;
use dataplane::transport::{CallError, Endpoint, Instant, RpcError, RpcId, SessionId};
use hdrhistogram::Histogram;
use kv_example::client::{value_of, Op};
use kv_example::kv;
use kv_example::server::{KvServer, ServerStats, Store};

/// Largest value the size sweep uses (64 KiB).
pub const MAX_SIZE: usize = 64 * 1024;

/// Quantiles written to the JSON `cdf` (value at each), for latency CDF plots.
pub const CDF_QUANTILES: [f64; 24] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97,
    0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

fn install_stop() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    Ok(stop)
}

fn non_negative(s: f64, what: &str) -> Result<f64> {
    if !s.is_finite() || s < 0.0 {
        bail!("--{what} must be a non-negative number of seconds, got {s}");
    }
    Ok(s)
}

/// `rpcbench rpc-server`.
#[derive(Args, Debug)]
pub struct RpcServerArgs {
    /// Dataplane configuration (TOML): cores, [port], [net], [tables.firewall].
    #[arg(long)]
    pub config: PathBuf,
    /// Seconds to serve; 0 serves until SIGINT/SIGTERM.
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Print the final counters as one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct ServerReport {
    rpcs: u64,
    seconds: f64,
    cpu_s: f64,
    cpu_us_per_rpc: f64,
    server: ServerStats,
    rx_packets: u64,
    tx_packets: u64,
    wire_drops: u64,
}

pub fn server(args: &RpcServerArgs) -> Result<()> {
    let duration = non_negative(args.duration, "duration")?;
    let cfg = Config::load(&args.config)?;
    let tables: kv::Tables =
        tables_from_config(&cfg.tables).map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    let stop = install_stop()?;
    let shared = kv::ServerShared::default();
    let store = Store::default();
    let started = WallInstant::now();
    let cpu0 = process_cpu_seconds();
    let engine = Engine::start(&cfg, &kv_example::engine_spec(), Arc::clone(&stop), |i| {
        let init = InitCtx {
            now: 0,
            seed: 0x7262 ^ i as u64,
        };
        KvServer::new(
            kv::ServerPipeline::new(&shared, &tables, &init),
            Arc::clone(&store),
        )
    })?;
    eprintln!(
        "rpcbench: rpc-server serving {} on {}:{} ({} core(s))",
        kv::SERVICE_NAME,
        cfg.net.ip,
        cfg.net.udp_port,
        cfg.cores.len()
    );
    let deadline = (duration > 0.0).then(|| started + Duration::from_secs_f64(duration));
    while !stop.load(Ordering::Relaxed)
        && !engine.finished()
        && deadline.is_none_or(|d| WallInstant::now() < d)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cores: Vec<_> = engine
        .stop_and_join()?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let cpu_s = process_cpu_seconds() - cpu0;
    let mut total = ServerStats::default();
    let (mut rx, mut tx, mut drops) = (0, 0, 0);
    for c in &cores {
        total.gets += c.app.gets;
        total.sets += c.app.sets;
        total.allowed += c.app.allowed;
        total.denied += c.app.denied;
        total.dropped += c.app.dropped;
        total.sessions += c.app.sessions;
        total.app_errors += c.app.app_errors;
        total.set_duplicates += c.app.set_duplicates;
        total.set_out_of_order += c.app.set_out_of_order;
        rx += c.port.rx_packets;
        tx += c.port.tx_packets;
        drops += c.net.dropped();
    }
    let rpcs = total.gets + total.sets + total.denied;
    let r = ServerReport {
        rpcs,
        seconds: started.elapsed().as_secs_f64(),
        cpu_s,
        cpu_us_per_rpc: if rpcs > 0 {
            cpu_s * 1e6 / rpcs as f64
        } else {
            0.0
        },
        server: total,
        rx_packets: rx,
        tx_packets: tx,
        wire_drops: drops,
    };
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "rpc-server: {} RPCs ({} GET, {} SET, {} denied) in {:.2} s; CPU {:.3} s = {:.2} us/RPC; rx {} tx {} frames, {} wire drops",
            r.rpcs, r.server.gets, r.server.sets, r.server.denied, r.seconds, r.cpu_s, r.cpu_us_per_rpc, rx, tx, drops
        );
    }
    Ok(())
}

/// `rpcbench rpc-client`.
#[derive(Args, Debug, Clone)]
pub struct RpcClientArgs {
    /// Dataplane configuration (TOML) with a [client] section naming the server.
    #[arg(long)]
    pub config: PathBuf,
    /// GET (response carries --size bytes) or SET (request carries --size bytes).
    #[arg(long, value_enum, default_value = "get")]
    pub op: Op,
    /// Value bytes per RPC (64 B .. 64 KiB in the sweep; the transport fragments).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Sessions opened to the server.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Outstanding RPCs per session (1 with one session is the latency mode).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Seconds measured (after the fill and the warm-up).
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 0.3)]
    pub warmup: f64,
    /// Distinct keys (`key-0` ...), SET once each before GETs are measured.
    #[arg(long, default_value_t = 64)]
    pub keys: u64,
    /// The `user` field the firewall decides on.
    #[arg(long, default_value = "alice")]
    pub user: String,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Print one JSON line with the results.
    #[arg(long)]
    pub json: bool,
}

impl RpcClientArgs {
    fn check(&self) -> Result<()> {
        if self.size == 0 || self.size > MAX_SIZE {
            bail!(
                "--size must be between 1 and {MAX_SIZE} bytes, got {}",
                self.size
            );
        }
        if self.sessions == 0 || self.sessions > 64 {
            bail!("--sessions must be between 1 and 64, got {}", self.sessions);
        }
        if self.window == 0 || self.window > 255 {
            bail!("--window must be between 1 and 255, got {}", self.window);
        }
        if self.keys == 0 || self.keys > 1 << 20 {
            bail!("--keys must be between 1 and 1048576, got {}", self.keys);
        }
        non_negative(self.warmup, "warmup")?;
        non_negative(self.timeout, "timeout")?;
        if non_negative(self.duration, "duration")? == 0.0 {
            bail!("--duration must be above 0 seconds");
        }
        Ok(())
    }
}

/// What the client core counts.
#[derive(Clone, serde::Serialize)]
pub struct LoadStats {
    /// Every RPC with a response, fill and warm-up included.
    pub completed_total: u64,
    /// Measured RPCs with a response, and those that failed, by reason.
    pub completed: u64,
    pub errors: u64,
    pub denied: u64,
    pub timeouts: u64,
    pub remote_errors: u64,
    pub other_errors: u64,
    pub connect_failed: bool,
    pub sessions_open: u64,
    /// Start and end of the measured period, engine ns; CPU seconds at each.
    pub measure_start_ns: u64,
    pub measure_end_ns: u64,
    pub cpu_at_start: f64,
    pub cpu_at_end: f64,
    pub finished: bool,
    #[serde(skip)]
    pub latency_ns: Histogram<u64>,
}

impl Default for LoadStats {
    fn default() -> Self {
        LoadStats {
            completed_total: 0,
            completed: 0,
            errors: 0,
            denied: 0,
            timeouts: 0,
            remote_errors: 0,
            other_errors: 0,
            connect_failed: false,
            sessions_open: 0,
            measure_start_ns: 0,
            measure_end_ns: 0,
            cpu_at_start: 0.0,
            cpu_at_end: 0.0,
            finished: false,
            latency_ns: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .expect("constant histogram bounds (1 ns .. 100 s, 3 digits) are valid"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    /// SET every key once (GET runs only).
    Fill,
    Warmup,
    Measure,
    Drain,
}

#[derive(Clone, Copy)]
struct Pending {
    session: usize,
    started: u64,
    measured: bool,
}

/// One core's load generator: S sessions × W outstanding RPCs.
pub struct RpcLoad {
    args: RpcClientArgs,
    server: SocketAddrV4,
    phase: Phase,
    sessions: Vec<SessionId>,
    connecting: usize,
    per_session: Vec<usize>,
    pending: std::collections::HashMap<(u64, u32), Pending>,
    filled: u64,
    issued: u64,
    buf: Vec<u8>,
    names: Vec<String>,
    value: Vec<u8>,
    warmup_ns: u64,
    duration_ns: u64,
    phase_end: u64,
    denied_code: u16,
    stats: LoadStats,
}

impl RpcLoad {
    pub fn new(args: RpcClientArgs, server: SocketAddrV4) -> Self {
        RpcLoad {
            buf: vec![0; args.size + args.user.len() + 256],
            names: (0..args.keys).map(|k| format!("key-{k}")).collect(),
            value: value_of(7, args.size),
            warmup_ns: (args.warmup * 1e9) as u64,
            duration_ns: (args.duration * 1e9) as u64,
            per_session: Vec::new(),
            args,
            server,
            phase: Phase::Connect,
            sessions: Vec::new(),
            connecting: 0,
            pending: std::collections::HashMap::new(),
            filled: 0,
            issued: 0,
            phase_end: 0,
            denied_code: anf_error_code("denied"),
            stats: LoadStats::default(),
        }
    }

    /// Issues one RPC on session `s`; false when the transport has no room.
    fn issue(&mut self, now: u64, ep: &mut Endpoint<Peer>, s: usize, set: bool) -> bool {
        let Some(&session) = self.sessions.get(s) else {
            return false;
        };
        let key = (self.issued % self.args.keys) as usize;
        let name = self.names.get(key).cloned().unwrap_or_default();
        let (method, len) = if set {
            let req = kv::SetRequest {
                name,
                user: self.args.user.clone(),
                value: self.value.clone(),
            };
            (kv::Method::Set, kv::client::encode_set(&req, &mut self.buf))
        } else {
            let req = kv::GetRequest {
                name,
                user: self.args.user.clone(),
            };
            (kv::Method::Get, kv::client::encode_get(&req, &mut self.buf))
        };
        let (Ok(len), Some(class)) = (len, kv::transport(method.id())) else {
            self.stats.other_errors += 1;
            return false;
        };
        let payload = self.buf.get(..len).unwrap_or_default();
        match ep.call(
            Instant::from_nanos(now),
            session,
            kv::SERVICE_ID,
            method.id(),
            class,
            payload,
        ) {
            Ok(rpc) => {
                self.issued += 1;
                if let Some(n) = self.per_session.get_mut(s) {
                    *n += 1;
                }
                self.pending.insert(
                    (session.0, rpc.0),
                    Pending {
                        session: s,
                        started: now,
                        measured: self.phase == Phase::Measure,
                    },
                );
                true
            }
            Err(CallError::WindowFull) => false,
            Err(_) => {
                self.stats.other_errors += 1;
                false
            }
        }
    }

    fn advance(&mut self, now: u64) {
        match self.phase {
            Phase::Fill if self.filled >= self.args.keys && self.pending.is_empty() => {
                self.phase = Phase::Warmup;
                self.phase_end = now + self.warmup_ns;
            }
            Phase::Warmup if now >= self.phase_end => {
                self.phase = Phase::Measure;
                self.phase_end = now + self.duration_ns;
                self.stats.measure_start_ns = now;
                self.stats.cpu_at_start = process_cpu_seconds();
            }
            Phase::Measure if now >= self.phase_end => {
                self.phase = Phase::Drain;
                self.stats.measure_end_ns = now;
                self.stats.cpu_at_end = process_cpu_seconds();
            }
            _ => {}
        }
    }
}

impl App for RpcLoad {
    type Stats = LoadStats;

    fn poll(&mut self, now: u64, ep: &mut Endpoint<Peer>) -> bool {
        if self.stats.connect_failed {
            return false;
        }
        if self.phase == Phase::Connect {
            if self.sessions.len() + self.connecting < self.args.sessions {
                let peer = Peer {
                    ip: *self.server.ip(),
                    port: self.server.port(),
                };
                match ep.connect(Instant::from_nanos(now), peer) {
                    Ok(_) => self.connecting += 1,
                    Err(_) => self.stats.connect_failed = true,
                }
            }
            return true;
        }
        self.advance(now);
        match self.phase {
            Phase::Connect => {}
            Phase::Fill => {
                while self.filled < self.args.keys
                    && self
                        .per_session
                        .first()
                        .is_some_and(|&n| n < self.args.window)
                {
                    // The key of a fill SET is its issue number.
                    if !self.issue(now, ep, 0, true) {
                        break;
                    }
                    self.filled += 1;
                }
            }
            Phase::Warmup | Phase::Measure => {
                let set =
                    self.args.op == Op::Set || (self.args.op == Op::Mixed && self.issued & 1 == 0);
                for s in 0..self.sessions.len() {
                    while self
                        .per_session
                        .get(s)
                        .is_some_and(|&n| n < self.args.window)
                    {
                        if !self.issue(now, ep, s, set) {
                            break;
                        }
                    }
                }
            }
            Phase::Drain => {
                if self.pending.is_empty() {
                    self.stats.finished = true;
                    return false;
                }
            }
        }
        true
    }

    fn on_session(&mut self, now: u64, event: SessionEvent) {
        match event {
            SessionEvent::Connected(s) => {
                self.connecting = self.connecting.saturating_sub(1);
                self.sessions.push(s);
                self.per_session.push(0);
                self.stats.sessions_open = self.sessions.len() as u64;
                if self.sessions.len() == self.args.sessions {
                    if self.args.op == Op::Set {
                        self.phase = Phase::Warmup;
                        self.phase_end = now + self.warmup_ns;
                    } else {
                        self.phase = Phase::Fill;
                    }
                }
            }
            SessionEvent::ConnectFailed(_) => self.stats.connect_failed = true,
            SessionEvent::Closed(s, _) => {
                if self.phase == Phase::Connect || self.sessions.contains(&s) {
                    // A benchmark session closing mid-run spoils the run.
                    self.stats.connect_failed = true;
                }
            }
        }
    }

    fn on_response(
        &mut self,
        now: u64,
        session: SessionId,
        rpc: RpcId,
        result: Result<&mut [u8], RpcError>,
    ) {
        let Some(p) = self.pending.remove(&(session.0, rpc.0)) else {
            return;
        };
        if let Some(n) = self.per_session.get_mut(p.session) {
            *n = n.saturating_sub(1);
        }
        let ok = result.is_ok();
        if ok {
            self.stats.completed_total += 1;
        }
        if !p.measured {
            return;
        }
        match result {
            Ok(_) => {
                self.stats.completed += 1;
                let _ = self
                    .stats
                    .latency_ns
                    .record(now.saturating_sub(p.started).max(1));
            }
            Err(e) => {
                self.stats.errors += 1;
                match e {
                    RpcError::Remote { code } if code == self.denied_code => self.stats.denied += 1,
                    RpcError::Remote { .. } => self.stats.remote_errors += 1,
                    RpcError::Timeout { .. } => self.stats.timeouts += 1,
                    _ => self.stats.other_errors += 1,
                }
            }
        }
    }

    fn stats(&self) -> LoadStats {
        self.stats.clone()
    }
}

/// The client's JSON line (the format grpc-kv's client prints too).
#[derive(Debug, serde::Serialize)]
pub struct ClientReport {
    pub op: Op,
    pub size: usize,
    pub sessions: usize,
    pub window: usize,
    pub completed: u64,
    pub errors: u64,
    pub denied: u64,
    pub timeouts: u64,
    pub completed_total: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// CPU seconds of this process in the measured period, and for the whole run.
    pub cpu_s: f64,
    pub cpu_total_s: f64,
    pub client_cpu_us_per_rpc: f64,
    /// (latency µs, quantile) points of the measured latency distribution.
    pub cdf: Vec<(f64, f64)>,
}

pub fn report(args: &RpcClientArgs, s: &LoadStats, cpu_total_s: f64) -> ClientReport {
    let q = |p: f64| s.latency_ns.value_at_quantile(p) as f64 / 1000.0;
    let seconds = s.measure_end_ns.saturating_sub(s.measure_start_ns) as f64 / 1e9;
    let cpu_s = (s.cpu_at_end - s.cpu_at_start).max(0.0);
    ClientReport {
        op: args.op,
        size: args.size,
        sessions: args.sessions,
        window: args.window,
        completed: s.completed,
        errors: s.errors,
        denied: s.denied,
        timeouts: s.timeouts,
        completed_total: s.completed_total,
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
        cpu_s,
        cpu_total_s,
        client_cpu_us_per_rpc: if s.completed > 0 {
            cpu_s * 1e6 / s.completed as f64
        } else {
            0.0
        },
        cdf: if s.latency_ns.is_empty() {
            Vec::new()
        } else {
            CDF_QUANTILES.iter().map(|&p| (q(p), p)).collect()
        },
    }
}

pub fn client(args: &RpcClientArgs) -> Result<()> {
    args.check()?;
    let cfg = Config::load(&args.config)?;
    let server = cfg
        .client
        .as_ref()
        .ok_or_else(|| {
            anyhow!(
                "{}: needs a [client] section with `server = \"IP:PORT\"`",
                args.config.display()
            )
        })?
        .server;
    if cfg.cores.len() != 1 {
        bail!("rpc-client runs on one core: give one entry in `cores`");
    }
    let stop = install_stop()?;
    let cpu0 = process_cpu_seconds();
    let engine = Engine::start(&cfg, &kv_example::engine_spec(), Arc::clone(&stop), |_| {
        RpcLoad::new(args.clone(), server)
    })?;
    let deadline = WallInstant::now() + Duration::from_secs_f64(args.timeout);
    while !stop.load(Ordering::Relaxed) && !engine.finished() && WallInstant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let results = engine.stop_and_join()?;
    let (_, snap) = results.first().ok_or_else(|| anyhow!("no core ran"))?;
    let s = &snap.app;
    let r = report(args, s, process_cpu_seconds() - cpu0);
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "rpc-client: {:?} {} B, {} session(s) x {} outstanding: {} RPCs in {:.3} s = {:.3} Mrps, {} errors ({} denied, {} timeouts)",
            r.op, r.size, r.sessions, r.window, r.completed, r.seconds, r.rps / 1e6, r.errors, r.denied, r.timeouts
        );
        println!(
            "  latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}; client CPU {:.3} s = {:.2} us/RPC",
            r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us, r.cpu_s, r.client_cpu_us_per_rpc
        );
    }
    if s.connect_failed {
        bail!(
            "could not open {} session(s) to {server} (or one closed)",
            args.sessions
        );
    }
    if !s.finished {
        bail!(
            "gave up after {} s (phase not finished; {} RPCs completed)",
            args.timeout,
            s.completed_total
        );
    }
    if r.completed == 0 {
        bail!(
            "no RPC completed in the measured period ({} errors)",
            r.errors
        );
    }
    Ok(())
}
