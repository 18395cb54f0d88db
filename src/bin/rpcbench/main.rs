//! rpcbench: a testpmd-style benchmark for flatrpc's packet backends, plus the
//! transport simulator, and RPC benchmarks through the generated KV service.
//!
//!   rpcbench --backend dpdk --eal "--no-huge -m 256 --no-pci --vdev=net_null0,copy=1" --mode macswap
//!   rpcbench --backend afpacket --iface veth0 --iface veth1 --mode io --cores 1
//!   rpcbench sim-transport --rpcs 10000 --class reliable-ordered --loss 0.1 --json
//!   rpcbench impair --a NAME-ma --b NAME-mb --loss 0.01 --delay-us 500 --seed 7
//!   rpcbench rpc-server --config server.toml --json
//!   rpcbench rpc-client --config client.toml --sessions 4 --window 16 --size 64 --json

mod backends;
mod cores;
mod impair;
mod rpc;
mod run;
mod sim_transport;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataplane::forward::Mode;

#[derive(Parser)]
#[command(
    name = "rpcbench",
    version,
    about = "testpmd-style packet benchmark for flatrpc's backends, and the transport simulator",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    fwd: FwdArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a client and a server transport over the simulated link and print one JSON line.
    SimTransport(sim_transport::SimTransportArgs),
    /// Relay frames between two interfaces with seeded loss, reordering, duplication
    /// and delay (L2: ARP and everything else is impaired alike).
    Impair(impair::ImpairArgs),
    /// Serve the generated KV service (firewall -> session tracker) for RPC benchmarks.
    RpcServer(rpc::RpcServerArgs),
    /// Load a KV server: S sessions x W outstanding RPCs; latency percentiles, Mrps, CPU/RPC.
    RpcClient(rpc::RpcClientArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Any DPDK ethdev, physical or virtual (--eal gives the EAL arguments).
    Dpdk,
    /// Pure-Rust AF_PACKET with TPACKET_V3 rings (--iface, repeatable).
    Afpacket,
    /// Pure-Rust TAP device (--iface names the tap, created if absent).
    Tap,
}

/// Packet forwarding options (testpmd's vocabulary).
#[derive(Args, Debug)]
pub struct FwdArgs {
    /// Packet backend.
    #[arg(long, value_enum, default_value = "dpdk")]
    pub backend: Backend,
    /// EAL arguments for the DPDK backend, as one string.
    #[arg(long, allow_hyphen_values = true)]
    pub eal: Option<String>,
    /// Interface for afpacket/tap; repeat for several ports (paired 0-1, 2-3, ...).
    #[arg(long = "iface")]
    pub ifaces: Vec<String>,
    /// Forwarding mode: io, macswap, txonly or rxonly.
    #[arg(long, default_value = "io")]
    pub mode: Mode,
    /// afpacket receive ring: v3 (block ring, throughput) or v2 (frame ring, latency).
    #[arg(long, value_enum, default_value = "v3")]
    pub rx_ring: dataplane::config::RxRingKind,
    /// Frames per burst (1..=32).
    #[arg(long, default_value_t = 32)]
    pub burst: usize,
    /// Polling cores, one queue of every port each: "0", "0,1", "1-3".
    #[arg(long, default_value = "0")]
    pub cores: String,
    /// Seconds to run; 0 runs until SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds between Rx-pps/Tx-pps lines; 0 turns them off.
    #[arg(long, default_value_t = 1.0)]
    pub stats_period: f64,
    /// Print one final JSON line instead of tables.
    #[arg(long)]
    pub json: bool,
    /// txonly: frame size in bytes, Ethernet header to end of payload (no FCS).
    #[arg(long, default_value_t = 64)]
    pub pkt_size: usize,
    /// txonly: number of distinct UDP 5-tuples (source ports) to cycle through.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
    /// txonly: destination MAC (default broadcast).
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
    pub dst_mac: dataplane::wire::MacAddr,
    /// txonly: source and destination IPv4 addresses.
    #[arg(long, default_value = "198.18.0.1")]
    pub src_ip: std::net::Ipv4Addr,
    #[arg(long, default_value = "198.18.0.2")]
    pub dst_ip: std::net::Ipv4Addr,
}

fn seconds(s: f64, what: &str) -> Result<Option<Duration>> {
    if !s.is_finite() || s < 0.0 {
        bail!("--{what} must be a non-negative number of seconds, got {s}");
    }
    Ok((s > 0.0).then(|| Duration::from_secs_f64(s)))
}

fn forward(args: &FwdArgs) -> Result<()> {
    let cores = cores::parse_core_list(&args.cores).map_err(anyhow::Error::msg)?;
    let available_cores = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(c) = cores
        .iter()
        .find(|&&c| !available_cores.iter().any(|a| a.id == c))
    {
        bail!("core {c} is not available to this process");
    }
    let opts = run::RunOpts {
        backend: match args.backend {
            Backend::Dpdk => "dpdk",
            Backend::Afpacket => "afpacket",
            Backend::Tap => "tap",
        },
        mode: args.mode,
        burst: args.burst,
        duration: seconds(args.duration, "duration")?,
        stats_period: seconds(args.stats_period, "stats-period")?,
        json: args.json,
        templates: Vec::new(),
        available_cores,
    };
    if args.mode == Mode::Txonly {
        backends::check_txonly_args(args)?;
    }
    if opts.burst == 0 || opts.burst > dataplane::port::MAX_BURST {
        bail!(
            "--burst must be between 1 and {}, got {}",
            dataplane::port::MAX_BURST,
            opts.burst
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    backends::run(args, &cores, opts, stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::SimTransport(a)) => sim_transport::run(a),
        Some(Command::Impair(a)) => impair::run(a),
        Some(Command::RpcServer(a)) => rpc::server(a),
        Some(Command::RpcClient(a)) => rpc::client(a),
        None => forward(&cli.fwd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpcbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
