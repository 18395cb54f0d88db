//! `rpcbench sim-transport`: runs a client and a server transport over the simulated
//! impaired link (`dataplane::transport::sim`) and prints one JSON line with what
//! happened. This module owns only the flags and the output; the simulation is in the
//! library. It must not do network I/O.

use anyhow::Context;
use dataplane::port::sim::Impairment;
use dataplane::transport::sim::{run as run_sim, SimConfig};
use dataplane::transport::TransportClass;

/// Flags of `rpcbench sim-transport`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimTransportArgs {
    /// Calls to make.
    #[arg(long, default_value_t = 10_000)]
    pub rpcs: u64,
    /// unreliable | reliable | reliable-ordered
    #[arg(long, default_value = "reliable")]
    pub class: TransportClass,
    /// Loss probability per packet and direction, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Reordering probability per packet and direction, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Duplication probability per packet and direction, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub dup: f64,
    /// One-way link delay in microseconds.
    #[arg(long = "delay-us", default_value_t = 10)]
    pub delay_us: u64,
    /// Request and response payload size in bytes (at least 8).
    #[arg(long = "msg-size", default_value_t = 64)]
    pub msg_size: usize,
    /// Seed of every random choice (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Drive both endpoints through the in-place API (calls and answers written in the
    /// packet buffer, one-packet messages handed out borrowing it), as the engine does.
    #[arg(long = "in-place")]
    pub in_place: bool,
    /// Print the full report as one JSON line (the default output is the same JSON;
    /// the flag is accepted for scripts that pass it explicitly).
    #[arg(long)]
    pub json: bool,
}

/// Runs the simulation and prints one JSON line.
pub fn run(args: &SimTransportArgs) -> anyhow::Result<()> {
    let cfg = SimConfig {
        rpcs: args.rpcs,
        class: args.class,
        impairment: Impairment {
            loss: args.loss,
            reorder: args.reorder,
            dup: args.dup,
            delay_ns: args.delay_us.saturating_mul(1_000),
            jitter_ns: 0,
        },
        msg_size: args.msg_size,
        seed: args.seed,
        in_place: args.in_place,
        ..SimConfig::default()
    };
    let report = run_sim(&cfg).context("sim-transport: invalid parameters")?;
    let line = serde_json::to_string(&report).context("serialising the report")?;
    println!("{line}");
    if report.hung {
        anyhow::bail!(
            "simulation did not finish within {} s of simulated time",
            cfg.max_sim_ns / 1_000_000_000
        );
    }
    Ok(())
}
