//! `rpcbench impair`: the seeded impairment relay (`dataplane::impair`) between two
//! interfaces of the namespace rpcbench runs in, e.g. the middle namespace of
//! `scripts/netns.sh up-impaired NAME`:
//!
//!   ip netns exec NAME-m rpcbench impair --a NAME-ma --b NAME-mb \
//!       --loss 0.01 --reorder 0.05 --dup 0.01 --delay-us 500 --seed 7
//!
//! It is an L2 relay: ARP and everything else crosses it, impaired alike.
//! This module owns only the flags, their checks and the output; the relay loop is in
//! the library. Every bad argument is reported as one line before any port is opened.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::impair::{open_afpacket, LaneStats, RelayConfig, RelayHandle, DEFAULT_QUEUE_LIMIT};
use dataplane::port::sim::Impairment;
use dataplane::port::PortStats;

/// The longest delay or jitter accepted (10 s): more is surely a unit mistake.
const MAX_DELAY_US: u64 = 10_000_000;

/// Flags of `rpcbench impair`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImpairArgs {
    /// Interface of side a (in the current network namespace).
    #[arg(long = "a", value_name = "IFACE")]
    pub a: Option<String>,
    /// Interface of side b (in the current network namespace).
    #[arg(long = "b", value_name = "IFACE")]
    pub b: Option<String>,
    /// Loss probability per frame and direction, 0..=1.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub loss: f64,
    /// Reordering probability per frame and direction, 0..=1.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub reorder: f64,
    /// Duplication probability per frame and direction, 0..=1.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub dup: f64,
    /// One-way delay added to every frame, in microseconds.
    #[arg(long = "delay-us", value_name = "D", default_value_t = 0)]
    pub delay_us: u64,
    /// Extra delay drawn uniformly from [0, J] microseconds per frame (reorders too).
    #[arg(long = "jitter-us", value_name = "J", default_value_t = 0)]
    pub jitter_us: u64,
    /// Seed of the random streams (one per direction, derived from it); required so
    /// that every run names the seed that replays it.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Seconds to run; 0 (the default) runs until SIGINT/SIGTERM.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub duration: f64,
    /// Core to pin the polling thread to (default: the first this process may use).
    #[arg(long, value_name = "C")]
    pub core: Option<usize>,
    /// Frames in flight per direction before new ones are dropped as overflow.
    #[arg(long = "queue-limit", value_name = "N", default_value_t = DEFAULT_QUEUE_LIMIT)]
    pub queue_limit: usize,
    /// Spin when idle instead of yielding the CPU (lowest latency, one full core).
    #[arg(long)]
    pub spin: bool,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The checked form of the flags.
#[derive(Debug, Clone, PartialEq)]
struct Checked {
    a: String,
    b: String,
    cfg: RelayConfig,
    duration: Option<Duration>,
    core: usize,
}

fn check(args: &ImpairArgs, available: &[usize]) -> Result<Checked> {
    let (Some(a), Some(b)) = (&args.a, &args.b) else {
        bail!("impair needs two interfaces: --a IFACE --b IFACE");
    };
    if a.is_empty() || b.is_empty() {
        bail!("--a and --b must name interfaces, got {a:?} and {b:?}");
    }
    if a == b {
        bail!("--a and --b are both {a:?}: the relay needs two different interfaces");
    }
    for (name, p) in [
        ("loss", args.loss),
        ("reorder", args.reorder),
        ("dup", args.dup),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("--{name} must be a probability between 0 and 1, got {p}");
        }
    }
    for (name, us) in [("delay-us", args.delay_us), ("jitter-us", args.jitter_us)] {
        if us > MAX_DELAY_US {
            bail!("--{name} must be at most {MAX_DELAY_US} (10 s), got {us}");
        }
    }
    let Some(seed) = args.seed else {
        bail!("impair needs --seed S (the seed that replays this run's impairments)");
    };
    if !args.duration.is_finite() || args.duration < 0.0 {
        bail!(
            "--duration must be a non-negative number of seconds, got {}",
            args.duration
        );
    }
    if args.queue_limit == 0 || args.queue_limit > 1 << 20 {
        bail!(
            "--queue-limit must be between 1 and {}, got {}",
            1 << 20,
            args.queue_limit
        );
    }
    let core = match args.core {
        Some(c) if !available.contains(&c) => {
            bail!("--core {c} is not available to this process (available: {available:?})")
        }
        Some(c) => c,
        None => match available.first() {
            Some(&c) => c,
            None => bail!("no core available to pin the relay to"),
        },
    };
    Ok(Checked {
        a: a.clone(),
        b: b.clone(),
        cfg: RelayConfig {
            impairment: Impairment {
                loss: args.loss,
                reorder: args.reorder,
                dup: args.dup,
                delay_ns: args.delay_us * 1_000,
                jitter_ns: args.jitter_us * 1_000,
            },
            seed,
            queue_limit: args.queue_limit,
            burst: dataplane::port::MAX_BURST,
            yield_when_idle: !args.spin,
        },
        duration: (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration)),
        core,
    })
}

#[derive(serde::Serialize)]
struct Report<'a> {
    a: &'a str,
    b: &'a str,
    seed: u64,
    impairment: Impairment,
    core: usize,
    duration_s: f64,
    a_to_b: LaneStats,
    b_to_a: LaneStats,
    port_a: PortStats,
    port_b: PortStats,
}

/// Runs the relay until the duration ends or SIGINT/SIGTERM, then prints its counters.
pub fn run(args: &ImpairArgs) -> Result<()> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let c = check(args, &available)?;
    let relay = open_afpacket(&c.a, &c.b, &c.cfg)?;
    let handle = RelayHandle::spawn(relay, Some(c.core))?;
    let stop = handle.stop_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    if !args.json {
        let i = &c.cfg.impairment;
        println!(
            "impair: relaying {} <-> {} on core {}: loss {} reorder {} dup {} delay {} us jitter {} us, seed {}{}",
            c.a,
            c.b,
            c.core,
            i.loss,
            i.reorder,
            i.dup,
            args.delay_us,
            args.jitter_us,
            c.cfg.seed,
            if c.duration.is_some() { "" } else { " (Ctrl-C to stop)" }
        );
    }
    let start = Instant::now();
    let deadline = c.duration.map(|d| start + d);
    while !stop.load(Ordering::Relaxed)
        && !handle.is_finished()
        && deadline.is_none_or(|d| Instant::now() < d)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let relay = handle.stop()?;
    let stats = relay.stats();
    let (port_a, port_b) = relay.port_stats();
    let report = Report {
        a: &c.a,
        b: &c.b,
        seed: c.cfg.seed,
        impairment: c.cfg.impairment,
        core: c.core,
        duration_s: elapsed,
        a_to_b: stats.a_to_b,
        b_to_a: stats.b_to_a,
        port_a,
        port_b,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report<'_>) {
    println!(
        "  ------------------ impairment relay statistics ({:.2} s, seed {}) ------------------",
        r.duration_s, r.seed
    );
    println!(
        "  {:<10} {:>12} {:>12} {:>10} {:>11} {:>10} {:>9} {:>10} {:>10}",
        "direction",
        "received",
        "forwarded",
        "dropped",
        "duplicated",
        "reordered",
        "overflow",
        "dup-nobuf",
        "in-flight"
    );
    for (name, s) in [("a->b", &r.a_to_b), ("b->a", &r.b_to_a)] {
        println!(
            "  {:<10} {:>12} {:>12} {:>10} {:>11} {:>10} {:>9} {:>10} {:>10}",
            name,
            s.received,
            s.forwarded,
            s.dropped,
            s.duplicated,
            s.reordered,
            s.overflow,
            s.dup_failed,
            s.in_flight
        );
    }
    for (name, iface, p) in [("a", r.a, &r.port_a), ("b", r.b, &r.port_b)] {
        println!(
            "  port {name} ({iface}): rx {} rx-dropped(kernel) {} rx-errors {} tx {} tx-errors {}",
            p.rx_packets, p.rx_dropped, p.rx_errors, p.tx_packets, p.tx_errors
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ImpairArgs,
    }

    fn parse(line: &[&str]) -> Result<Checked> {
        let cli = Cli::try_parse_from(std::iter::once("impair").chain(line.iter().copied()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        check(&cli.args, &[0, 1])
    }

    fn err(line: &[&str]) -> String {
        match parse(line) {
            Ok(c) => panic!("{line:?} was accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_flags_make_the_relay_configuration() {
        let c = parse(&[
            "--a",
            "x-ma",
            "--b",
            "x-mb",
            "--loss",
            "0.1",
            "--reorder",
            "0.25",
            "--dup",
            "0.05",
            "--delay-us",
            "2000",
            "--jitter-us",
            "10",
            "--seed",
            "7",
            "--duration",
            "1.5",
            "--core",
            "1",
        ])
        .unwrap();
        assert_eq!((c.a.as_str(), c.b.as_str(), c.core), ("x-ma", "x-mb", 1));
        assert_eq!(
            c.cfg.impairment,
            Impairment {
                loss: 0.1,
                reorder: 0.25,
                dup: 0.05,
                delay_ns: 2_000_000,
                jitter_ns: 10_000
            }
        );
        assert_eq!(c.cfg.seed, 7);
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        let d = parse(&["--a", "p", "--b", "q", "--seed", "1"]).unwrap();
        assert_eq!(
            (d.core, d.duration),
            (0, None),
            "first core, until a signal"
        );
        assert_eq!(d.cfg.impairment, Impairment::default());
    }

    #[test]
    fn bad_flags_give_one_clear_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["--b", "q", "--seed", "1"], "needs two interfaces"),
            (&["--a", "p", "--seed", "1"], "needs two interfaces"),
            (
                &["--a", "p", "--b", "p", "--seed", "1"],
                "two different interfaces",
            ),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--loss", "1.5"],
                "--loss must be a probability",
            ),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--dup", "-0.1"],
                "--dup must be a probability",
            ),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--reorder", "NaN"],
                "--reorder must be a probability",
            ),
            (&["--a", "p", "--b", "q"], "needs --seed"),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--core", "9"],
                "--core 9 is not available",
            ),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--duration", "-1"],
                "--duration",
            ),
            (
                &[
                    "--a",
                    "p",
                    "--b",
                    "q",
                    "--seed",
                    "1",
                    "--delay-us",
                    "99999999",
                ],
                "--delay-us must be at most",
            ),
            (
                &["--a", "p", "--b", "q", "--seed", "1", "--queue-limit", "0"],
                "--queue-limit",
            ),
        ];
        for (line, want) in cases {
            let e = err(line);
            assert!(e.contains(want), "{line:?}: {e:?} lacks {want:?}");
            assert!(!e.contains('\n'), "{line:?}: not one line: {e:?}");
        }
    }
}
