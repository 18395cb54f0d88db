//! grpc-kv: the layered baseline for the RPC benchmarks — the KV service of
//! examples/kv/kv.proto over gRPC (tonic, HTTP/2, TCP, the kernel).
//!
//!   grpc-kv server --listen IP:PORT [--deny USER]... [--threads N] [--json]
//!   grpc-kv client --server http://IP:PORT --op get|set --size B --sessions S --window W \
//!                  --duration SECS [--warmup SECS] [--user NAME] [--json]
//!   grpc-kv sidecar-config --listen IP:PORT --upstream IP:PORT [--deny USER]...  (HAProxy)
//!
//! The user travels in the `x-user` request header (where a sidecar's header ACL reads
//! it) and in the message. The server applies the same chain as flatrpc's KV server —
//! a firewall (users given with `--deny` are refused with PERMISSION_DENIED) and a
//! session tracker (requests counted per user) — unless `--no-firewall` leaves the
//! firewall to a sidecar proxy in front of it. The client is rpcbench rpc-client's
//! twin: S HTTP/2 connections × W RPCs in flight on each, a key fill before GETs, a
//! warm-up, then a measured period; its JSON line has the same fields.
//! This crate must not use any flatrpc code: it measures the layered stack.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataplane::stats::process_cpu_seconds;
use hdrhistogram::Histogram;
use tonic::{Request, Response, Status};

pub mod pb {
    tonic::include_proto!("kv");
}

use pb::kv_service_client::KvServiceClient;
use pb::kv_service_server::{KvService, KvServiceServer};

/// Largest value the size sweep uses (64 KiB), as for rpcbench.
const MAX_SIZE: usize = 64 * 1024;

/// Quantiles written to the JSON `cdf` (the same points rpcbench writes).
const CDF_QUANTILES: [f64; 24] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97,
    0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

#[derive(Parser)]
#[command(
    name = "grpc-kv",
    version,
    about = "The KV service over gRPC (tonic): the layered baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the KV service until SIGINT/SIGTERM (or --duration).
    Server(ServerArgs),
    /// Load a server and print latency percentiles, Mrps and CPU/RPC.
    Client(ClientArgs),
    /// Print an HAProxy configuration for one HTTP/2 (gRPC) sidecar.
    SidecarConfig(SidecarArgs),
}

#[derive(Args, Debug)]
struct SidecarArgs {
    /// Where the sidecar listens (cleartext HTTP/2, prior knowledge).
    #[arg(long)]
    listen: SocketAddr,
    /// Where it forwards to (an HTTP/2 server: the app or the next sidecar).
    #[arg(long)]
    upstream: SocketAddr,
    /// Users the sidecar's header ACL refuses with PERMISSION_DENIED (the server-side
    /// sidecar's firewall).
    #[arg(long)]
    deny: Vec<String>,
}

/// An HAProxy configuration: one frontend in HTTP/2 mode that answers requests whose
/// `x-user` is in `deny` itself, with a gRPC PERMISSION_DENIED (status 7, a
/// trailers-only response: a bare HTTP 403 reaches a gRPC client as a protocol error
/// rather than a gRPC status), and passes
/// everything else to `upstream` over HTTP/2. One thread, no logging.
fn sidecar_config(a: &SidecarArgs) -> Result<String> {
    let mut acl = String::new();
    for user in &a.deny {
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("--deny {user:?}: only letters, digits, '-' and '_' fit a header ACL here");
        }
        acl.push_str(&format!("  http-request return status 200 content-type application/grpc hdr grpc-status 7 hdr grpc-message denied if {{ req.hdr(x-user) -m str {user} }}\n"));
    }
    Ok(format!(
        "global\n  nbthread 1\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n\nfrontend sidecar\n  bind {}:{} proto h2\n{acl}  default_backend upstream\n\nbackend upstream\n  server up {}:{} proto h2\n",
        a.listen.ip(), a.listen.port(), a.upstream.ip(), a.upstream.port()
    ))
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Address to listen on (port 0 picks one; the "serving on" line says which).
    #[arg(long)]
    listen: SocketAddr,
    /// Users the firewall refuses (the `x-user` header).
    #[arg(long)]
    deny: Vec<String>,
    /// Leave the firewall to a sidecar: accept every user.
    #[arg(long)]
    no_firewall: bool,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds to serve; 0 serves until SIGINT/SIGTERM.
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Print the final counters as one JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Get,
    Set,
}

#[derive(Args, Debug, Clone)]
struct ClientArgs {
    /// Server URL, e.g. http://10.77.0.2:8000.
    #[arg(long)]
    server: String,
    #[arg(long, value_enum, default_value = "get")]
    op: Op,
    /// Value bytes per RPC.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// RPCs in flight per connection.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Distinct keys, SET once each before GETs are measured.
    #[arg(long, default_value_t = 64)]
    keys: u64,
    /// The user (the `x-user` header and the message field).
    #[arg(long, default_value = "alice")]
    user: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Print one JSON line with the results.
    #[arg(long)]
    json: bool,
}

fn check_seconds(s: f64, what: &str) -> Result<f64> {
    if !s.is_finite() || s < 0.0 {
        bail!("--{what} must be a non-negative number of seconds, got {s}");
    }
    Ok(s)
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    if threads == 0 || threads > 64 {
        bail!("--threads must be between 1 and 64, got {threads}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

// ---------------------------------------------------------------- server

#[derive(Default)]
struct Counters {
    gets: u64,
    sets: u64,
    denied: u64,
    /// The session tracker: requests per user.
    per_user: HashMap<String, u64>,
}

struct Kv {
    store: Mutex<HashMap<String, Vec<u8>>>,
    counters: Mutex<Counters>,
    deny: Vec<String>,
    firewall: bool,
}

impl Kv {
    /// The chain: firewall on `x-user`, then the session tracker.
    fn admit<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let user = req
            .metadata()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut c = self
            .counters
            .lock()
            .map_err(|_| Status::internal("counters poisoned"))?;
        if self.firewall && (user.is_empty() || self.deny.iter().any(|d| d == user)) {
            c.denied += 1;
            return Err(Status::permission_denied("denied"));
        }
        *c.per_user.entry(user.to_string()).or_default() += 1;
        Ok(())
    }
}

#[tonic::async_trait]
impl KvService for Kv {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.admit(&req)?;
        let store = self
            .store
            .lock()
            .map_err(|_| Status::internal("store poisoned"))?;
        let value = store.get(&req.get_ref().name).cloned();
        drop(store);
        if let Ok(mut c) = self.counters.lock() {
            c.gets += 1;
        }
        Ok(Response::new(pb::GetResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        self.admit(&req)?;
        let r = req.into_inner();
        self.store
            .lock()
            .map_err(|_| Status::internal("store poisoned"))?
            .insert(r.name, r.value);
        if let Ok(mut c) = self.counters.lock() {
            c.sets += 1;
        }
        Ok(Response::new(pb::SetResponse { ok: true }))
    }
}

#[derive(serde::Serialize)]
struct ServerReport {
    rpcs: u64,
    gets: u64,
    sets: u64,
    denied: u64,
    users: u64,
    seconds: f64,
    cpu_s: f64,
    cpu_us_per_rpc: f64,
}

fn server(args: &ServerArgs) -> Result<()> {
    let duration = check_seconds(args.duration, "duration")?;
    let rt = runtime(args.threads)?;
    let kv = Arc::new(Kv {
        store: Mutex::new(HashMap::new()),
        counters: Mutex::new(Counters::default()),
        deny: args.deny.clone(),
        firewall: !args.no_firewall,
    });
    let started = Instant::now();
    let cpu0 = process_cpu_seconds();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let local = listener.local_addr()?;
        eprintln!("grpc-kv: serving on {local}");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            let limit = async {
                if duration > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(duration)).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
                _ = limit => {}
            }
        };
        tonic::transport::Server::builder()
            .add_service(KvServiceServer::from_arc(Arc::clone(&kv)))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("serving")
    })?;
    let cpu_s = process_cpu_seconds() - cpu0;
    let c = kv
        .counters
        .lock()
        .map_err(|_| anyhow::anyhow!("counters poisoned"))?;
    let rpcs = c.gets + c.sets + c.denied;
    let r = ServerReport {
        rpcs,
        gets: c.gets,
        sets: c.sets,
        denied: c.denied,
        users: c.per_user.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        cpu_s,
        cpu_us_per_rpc: if rpcs > 0 {
            cpu_s * 1e6 / rpcs as f64
        } else {
            0.0
        },
    };
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "grpc-kv server: {} RPCs ({} GET, {} SET, {} denied) in {:.2} s; CPU {:.3} s = {:.2} us/RPC",
            r.rpcs, r.gets, r.sets, r.denied, r.seconds, r.cpu_s, r.cpu_us_per_rpc
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- client

#[derive(Debug, serde::Serialize)]
struct ClientReport {
    op: Op,
    size: usize,
    sessions: usize,
    window: usize,
    completed: u64,
    errors: u64,
    denied: u64,
    timeouts: u64,
    completed_total: u64,
    seconds: f64,
    rps: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    cpu_s: f64,
    cpu_total_s: f64,
    client_cpu_us_per_rpc: f64,
    cdf: Vec<(f64, f64)>,
}

#[derive(Default)]
struct TaskResult {
    completed: u64,
    completed_total: u64,
    errors: u64,
    denied: u64,
    latency_ns: Option<Histogram<u64>>,
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).context("histogram bounds")
}

fn request<T>(msg: T, user: &str) -> Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "x-user",
        user.parse().context("--user is not a valid header value")?,
    );
    Ok(r)
}

/// One of a connection's W closed loops: issue, wait, repeat until `end`.
async fn closed_loop(
    mut client: KvServiceClient<tonic::transport::Channel>,
    args: Arc<ClientArgs>,
    task: u64,
    measure_from: Instant,
    end: Instant,
) -> Result<TaskResult> {
    let mut out = TaskResult {
        latency_ns: Some(histogram()?),
        ..TaskResult::default()
    };
    let value = vec![0x5a_u8; args.size];
    let mut i = task;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let name = format!("key-{}", i % args.keys);
        i = i.wrapping_add(7919);
        let result = match args.op {
            Op::Get => client
                .get(request(
                    pb::GetRequest {
                        name,
                        user: args.user.clone(),
                    },
                    &args.user,
                )?)
                .await
                .map(|_| ()),
            Op::Set => client
                .set(request(
                    pb::SetRequest {
                        name,
                        user: args.user.clone(),
                        value: value.clone(),
                    },
                    &args.user,
                )?)
                .await
                .map(|_| ()),
        };
        let measured = started >= measure_from;
        match result {
            Ok(()) => {
                out.completed_total += 1;
                if measured {
                    out.completed += 1;
                    if let Some(h) = out.latency_ns.as_mut() {
                        let _ = h.record((started.elapsed().as_nanos() as u64).max(1));
                    }
                }
            }
            Err(s) => {
                if measured {
                    out.errors += 1;
                    if s.code() == tonic::Code::PermissionDenied {
                        out.denied += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn client(args: ClientArgs) -> Result<()> {
    if args.size == 0 || args.size > MAX_SIZE {
        bail!(
            "--size must be between 1 and {MAX_SIZE} bytes, got {}",
            args.size
        );
    }
    if args.sessions == 0 || args.sessions > 64 || args.window == 0 || args.window > 256 {
        bail!("--sessions must be 1..=64 and --window 1..=256");
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let duration = check_seconds(args.duration, "duration")?;
    let warmup = check_seconds(args.warmup, "warmup")?;
    check_seconds(args.timeout, "timeout")?;
    let rt = runtime(args.threads)?;
    let cpu0 = process_cpu_seconds();
    let args = Arc::new(args);
    let (results, measured) = rt.block_on(async {
        let work = async {
            let mut channels = Vec::new();
            for _ in 0..args.sessions {
                // One TCP connection (one HTTP/2 session) per channel.
                let ch = tonic::transport::Endpoint::from_shared(args.server.clone())
                    .context("--server is not a URL")?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {}", args.server))?;
                channels.push(ch);
            }
            let first = channels.first().cloned().context("no connection")?;
            if args.op == Op::Get {
                let mut c = KvServiceClient::new(first)
                    .max_decoding_message_size(2 * MAX_SIZE)
                    .max_encoding_message_size(2 * MAX_SIZE);
                let value = vec![0x5a_u8; args.size];
                for k in 0..args.keys {
                    c.set(request(
                        pb::SetRequest {
                            name: format!("key-{k}"),
                            user: args.user.clone(),
                            value: value.clone(),
                        },
                        &args.user,
                    )?)
                    .await
                    .with_context(|| format!("filling key-{k}"))?;
                }
            }
            let measure_from = Instant::now() + Duration::from_secs_f64(warmup);
            let end = measure_from + Duration::from_secs_f64(duration);
            let cpu_start = tokio::spawn(async move {
                tokio::time::sleep_until(measure_from.into()).await;
                process_cpu_seconds()
            });
            let cpu_end = tokio::spawn(async move {
                tokio::time::sleep_until(end.into()).await;
                process_cpu_seconds()
            });
            let mut tasks = Vec::new();
            for (ci, ch) in channels.iter().enumerate() {
                for w in 0..args.window {
                    let c = KvServiceClient::new(ch.clone())
                        .max_decoding_message_size(2 * MAX_SIZE)
                        .max_encoding_message_size(2 * MAX_SIZE);
                    let task = (ci * args.window + w) as u64;
                    tasks.push(tokio::spawn(closed_loop(
                        c,
                        Arc::clone(&args),
                        task,
                        measure_from,
                        end,
                    )));
                }
            }
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.context("a client task failed")??);
            }
            let cpu = (cpu_start.await.unwrap_or(0.0), cpu_end.await.unwrap_or(0.0));
            Ok::<_, anyhow::Error>((results, (cpu, end.duration_since(measure_from))))
        };
        tokio::time::timeout(Duration::from_secs_f64(args.timeout), work)
            .await
            .map_err(|_| anyhow::anyhow!("gave up after {} s", args.timeout))?
    })?;
    let ((cpu_at_start, cpu_at_end), period) = measured;
    let mut h = histogram()?;
    let mut t = TaskResult::default();
    for r in results {
        t.completed += r.completed;
        t.completed_total += r.completed_total;
        t.errors += r.errors;
        t.denied += r.denied;
        if let Some(rh) = r.latency_ns {
            h.add(rh).context("merging histograms")?;
        }
    }
    let seconds = period.as_secs_f64();
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let cpu_s = (cpu_at_end - cpu_at_start).max(0.0);
    let r = ClientReport {
        op: args.op,
        size: args.size,
        sessions: args.sessions,
        window: args.window,
        completed: t.completed,
        errors: t.errors,
        denied: t.denied,
        timeouts: 0,
        completed_total: t.completed_total,
        seconds,
        rps: if seconds > 0.0 {
            t.completed as f64 / seconds
        } else {
            0.0
        },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: h.max() as f64 / 1000.0,
        cpu_s,
        cpu_total_s: process_cpu_seconds() - cpu0,
        client_cpu_us_per_rpc: if t.completed > 0 {
            cpu_s * 1e6 / t.completed as f64
        } else {
            0.0
        },
        cdf: if h.is_empty() {
            Vec::new()
        } else {
            CDF_QUANTILES.iter().map(|&p| (q(p), p)).collect()
        },
    };
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "grpc-kv client: {:?} {} B, {} connection(s) x {} in flight: {} RPCs in {:.3} s = {:.3} Mrps, {} errors ({} denied)",
            r.op, r.size, r.sessions, r.window, r.completed, r.seconds, r.rps / 1e6, r.errors, r.denied
        );
        println!(
            "  latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}; client CPU {:.3} s = {:.2} us/RPC",
            r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us, r.cpu_s, r.client_cpu_us_per_rpc
        );
    }
    if r.completed == 0 {
        bail!(
            "no RPC completed in the measured period ({} errors, {} denied)",
            r.errors,
            r.denied
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Server(a) => server(&a),
        Command::Client(a) => client(a),
        Command::SidecarConfig(a) => sidecar_config(&a).map(|c| print!("{c}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grpc-kv: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
