//! udp-echo: the kernel UDP baseline beside kv-server/kv-client (scripts/bench.sh kvlat).
//!
//!   udp-echo server --bind IP:PORT [--reply-size R] [--spin]
//!   udp-echo client --server IP:PORT [--count N] [--size B] [--reply-size R] [--warmup W]
//!                   [--spin] [--json]
//!
//! The server echoes every datagram back to its sender until SIGINT/SIGTERM; with
//! `--reply-size R` it answers with R bytes instead (the request's first R bytes,
//! zero-padded), so a request/response pair of unequal sizes, such as a KV GET, can be
//! mirrored. The client runs a closed loop with one datagram outstanding: it stamps a
//! sequence number into each B-byte payload, waits for the R-byte echo carrying the
//! same number and records the
//! round trip in an HDR histogram; a reply that does not arrive within `--reply-timeout`
//! is counted as lost and the loop moves on. `--spin` polls a non-blocking socket
//! instead of sleeping in `recv`, as flatrpc's busy-polling cores do.
//!
//! Plain std `UdpSocket` only: this measures the kernel's stack, so it must not use
//! any flatrpc code or a kernel-bypass trick.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "udp-echo",
    version,
    about = "Kernel UDP echo server and closed-loop latency client"
)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Echo datagrams back to their sender until SIGINT/SIGTERM.
    Server {
        /// Address to bind, e.g. 10.77.0.2:9000.
        #[arg(long)]
        bind: SocketAddr,
        /// Answer with this many bytes (8..=65507) instead of the request's length.
        #[arg(long)]
        reply_size: Option<usize>,
        /// Poll a non-blocking socket instead of blocking in recv.
        #[arg(long)]
        spin: bool,
    },
    /// Send N datagrams one at a time and report round-trip percentiles.
    Client {
        /// The echo server, e.g. 10.77.0.2:9000.
        #[arg(long)]
        server: SocketAddr,
        /// Round trips measured.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Round trips before measuring (not recorded).
        #[arg(long, default_value_t = 1_000)]
        warmup: u64,
        /// Payload bytes per datagram (at least 8: the sequence number).
        #[arg(long, default_value_t = 160)]
        size: usize,
        /// Bytes of the expected echo: the server's `--reply-size` (default: --size).
        #[arg(long)]
        reply_size: Option<usize>,
        /// Milliseconds to wait for one echo before counting it lost.
        #[arg(long, default_value_t = 200)]
        reply_timeout: u64,
        /// Poll a non-blocking socket instead of blocking in recv.
        #[arg(long)]
        spin: bool,
        /// Print one JSON line with the results.
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct Report {
    count: u64,
    completed: u64,
    lost: u64,
    size: usize,
    reply_size: usize,
    spin: bool,
    seconds: f64,
    rps: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// (latency µs, quantile) points, the ones `rpcbench rpc-client` writes, for CDF plots.
    cdf: Vec<(f64, f64)>,
}

/// The quantiles of `cdf` (the same as rpcbench's).
const CDF_QUANTILES: [f64; 24] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97,
    0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// Datagram sizes the client and `--reply-size` accept: room for the sequence number,
/// at most the largest UDP/IPv4 payload.
const SIZES: std::ops::RangeInclusive<usize> = 8..=65_507;

fn server(bind: SocketAddr, reply_size: Option<usize>, spin: bool) -> Result<()> {
    if let Some(r) = reply_size {
        if !SIZES.contains(&r) {
            bail!("--reply-size must be between 8 and 65507, got {r}");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    let sock = UdpSocket::bind(bind).with_context(|| format!("binding {bind}"))?;
    if spin {
        sock.set_nonblocking(true)?;
    } else {
        // Wake up now and then to notice a signal.
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    }
    let local = sock.local_addr().context("local address")?;
    eprintln!("udp-echo: serving on {local}");
    let mut buf = [0u8; 65536];
    let mut echoed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let len = reply_size.unwrap_or(n);
                if let Some(pad) = buf.get_mut(n..len) {
                    pad.fill(0);
                }
                let data = buf.get(..len).unwrap_or(&[]);
                match sock.send_to(data, from) {
                    Ok(_) => echoed += 1,
                    Err(e) if is_transient(&e) => {}
                    Err(e) => return Err(e).context("send_to"),
                }
            }
            Err(e) if is_transient(&e) => {
                if spin {
                    std::hint::spin_loop();
                }
            }
            Err(e) => return Err(e).context("recv_from"),
        }
    }
    println!("udp-echo: echoed {echoed} datagrams");
    Ok(())
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Waits for the echo of `seq`; `Ok(false)` when `timeout` passes first.
fn await_echo(
    sock: &UdpSocket,
    buf: &mut [u8],
    seq: u64,
    size: usize,
    spin: bool,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        match sock.recv(buf) {
            Ok(n) => {
                let got = buf
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_le_bytes);
                // A late echo of an earlier (lost) datagram is skipped.
                if n == size && got == Some(seq) {
                    return Ok(true);
                }
            }
            Err(e) if is_transient(&e) => {
                if spin {
                    std::hint::spin_loop();
                }
            }
            Err(e) => return Err(e).context("recv"),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

struct ClientArgs {
    server: SocketAddr,
    count: u64,
    warmup: u64,
    size: usize,
    reply_size: usize,
    reply_timeout: Duration,
    spin: bool,
}

fn client(a: &ClientArgs) -> Result<Report> {
    if !SIZES.contains(&a.size) {
        bail!("--size must be between 8 and 65507, got {}", a.size);
    }
    if !SIZES.contains(&a.reply_size) {
        bail!(
            "--reply-size must be between 8 and 65507, got {}",
            a.reply_size
        );
    }
    let local: SocketAddr = if a.server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let sock = UdpSocket::bind(local).context("binding the client socket")?;
    sock.connect(a.server)
        .with_context(|| format!("connecting to {}", a.server))?;
    if a.spin {
        sock.set_nonblocking(true)?;
    } else {
        sock.set_read_timeout(Some(a.reply_timeout))?;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut payload = vec![0u8; a.size];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut buf = vec![0u8; 65536];
    let (mut completed, mut lost) = (0u64, 0u64);
    let mut started = Instant::now();
    for seq in 0..a.warmup + a.count {
        if seq == a.warmup {
            started = Instant::now();
        }
        if let Some(head) = payload.get_mut(..8) {
            head.copy_from_slice(&seq.to_le_bytes());
        }
        let t0 = Instant::now();
        match sock.send(&payload) {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => return Err(e).context("send"),
        }
        let ok = await_echo(&sock, &mut buf, seq, a.reply_size, a.spin, a.reply_timeout)?;
        let rtt = t0.elapsed();
        if seq < a.warmup {
            continue;
        }
        if ok {
            completed += 1;
            hist.saturating_record(rtt.as_nanos().max(1) as u64);
        } else {
            lost += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    Ok(Report {
        count: a.count,
        completed,
        lost,
        size: a.size,
        reply_size: a.reply_size,
        spin: a.spin,
        seconds,
        rps: if seconds > 0.0 {
            completed as f64 / seconds
        } else {
            0.0
        },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: hist.max() as f64 / 1000.0,
        cdf: if hist.is_empty() {
            Vec::new()
        } else {
            CDF_QUANTILES.iter().map(|&p| (q(p), p)).collect()
        },
    })
}

fn run(args: Args) -> Result<()> {
    match args.mode {
        Mode::Server {
            bind,
            reply_size,
            spin,
        } => server(bind, reply_size, spin),
        Mode::Client {
            server,
            count,
            warmup,
            size,
            reply_size,
            reply_timeout,
            spin,
            json,
        } => {
            let r = client(&ClientArgs {
                server,
                count,
                warmup,
                size,
                reply_size: reply_size.unwrap_or(size),
                reply_timeout: Duration::from_millis(reply_timeout.max(1)),
                spin,
            })?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "udp-echo: {} round trips of {}/{} bytes to {server}: {} completed, {} lost",
                    r.count, r.size, r.reply_size, r.completed, r.lost
                );
                println!(
                    "  {:.0} RT/s over {:.3} s; latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                    r.rps, r.seconds, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us
                );
            }
            if r.completed == 0 {
                bail!("no echo came back from {server}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-echo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
