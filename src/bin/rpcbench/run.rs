//! Runs forwarding cores, prints periodic and final statistics (testpmd style).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dataplane::forward::{CoreCounters, Forwarder, FwdTotals, Mode};
use dataplane::port::{Port, PortStats};

/// What a forwarding run is asked to do.
pub struct RunOpts {
    pub backend: &'static str,
    pub mode: Mode,
    pub burst: usize,
    pub duration: Option<Duration>,
    pub stats_period: Option<Duration>,
    pub json: bool,
    pub templates: Vec<Vec<u8>>,
    /// The CPUs this process may run on, read at start-up (EAL initialisation later pins
    /// the main thread, which would hide the others).
    pub available_cores: Vec<core_affinity::CoreId>,
}

#[derive(serde::Serialize)]
struct FinalReport<'a> {
    backend: &'a str,
    mode: Mode,
    cores: usize,
    burst: usize,
    duration_s: f64,
    rx_packets: u64,
    tx_packets: u64,
    dropped: u64,
    rx_pps: f64,
    tx_pps: f64,
    ports: Vec<PortStats>,
}

/// Runs one forwarding core per entry of `per_core` (core id, that core's queue of every
/// port) until `duration` ends or `stop` is set (SIGINT/SIGTERM), then prints the final
/// statistics. `thread_init` runs on each core thread after pinning (DPDK registers the
/// thread with EAL there); what it returns is kept until the thread ends.
pub fn run_forwarding<P, F, G>(
    per_core: Vec<(usize, Vec<P>)>,
    opts: &RunOpts,
    stop: Arc<AtomicBool>,
    thread_init: F,
) -> Result<()>
where
    P: Port + 'static,
    F: Fn() -> Result<G> + Send + Sync + Clone + 'static,
{
    let nports = per_core.first().map(|(_, p)| p.len()).unwrap_or(0);
    let mut threads = Vec::new();
    let mut counters = Vec::new();
    for (core, ports) in per_core {
        let core_id = opts
            .available_cores
            .iter()
            .copied()
            .find(|c| c.id == core)
            .ok_or_else(|| anyhow!("core {core} is not available to this process"))?;
        let mut fwd = Forwarder::new(ports, opts.mode, opts.burst, opts.templates.clone())?;
        let c = Arc::new(CoreCounters::default());
        counters.push(Arc::clone(&c));
        let stop = Arc::clone(&stop);
        let init = thread_init.clone();
        let t = std::thread::Builder::new()
            .name(format!("fwd-core{core}"))
            .spawn(move || -> Result<Forwarder<P>> {
                if !core_affinity::set_for_current(core_id) {
                    bail!("could not pin the forwarding thread to core {core}");
                }
                // Held for the thread's life (DPDK: the EAL lcore registration).
                let _registration = init()?;
                fwd.run(&stop, &c);
                Ok(fwd)
            })
            .context("spawning a forwarding thread")?;
        threads.push(t);
    }

    let total = |cs: &[Arc<CoreCounters>]| {
        let mut t = FwdTotals::default();
        for c in cs {
            t += c.snapshot();
        }
        t
    };
    let start = Instant::now();
    let mut last = (start, FwdTotals::default());
    let deadline = opts.duration.map(|d| start + d);
    let mut next_report = opts.stats_period.map(|p| start + p);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) || threads.iter().any(|t| t.is_finished()) {
            break;
        }
        if let (Some(at), Some(period)) = (next_report, opts.stats_period) {
            if now >= at {
                let t = total(&counters);
                let secs = now.duration_since(last.0).as_secs_f64();
                let rate = |a: u64, b: u64| (a - b) as f64 / secs;
                if !opts.json {
                    println!(
                        "  Rx-pps: {:>12.0}  Tx-pps: {:>12.0}  Drop-pps: {:>10.0}  (total rx {} tx {} dropped {})",
                        rate(t.rx_packets, last.1.rx_packets),
                        rate(t.tx_packets, last.1.tx_packets),
                        rate(t.dropped, last.1.dropped),
                        t.rx_packets,
                        t.tx_packets,
                        t.dropped
                    );
                }
                last = (now, t);
                next_report = Some(at + period);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let mut ports = vec![PortStats::default(); nports];
    for t in threads {
        let fwd = t
            .join()
            .map_err(|_| anyhow!("a forwarding thread panicked"))??;
        for (i, p) in fwd.ports().iter().enumerate() {
            ports[i] += p.stats();
        }
    }
    // After the joins: the cores' last passes are counted too.
    let totals = total(&counters);
    let report = FinalReport {
        backend: opts.backend,
        mode: opts.mode,
        cores: counters.len(),
        burst: opts.burst,
        duration_s: elapsed,
        rx_packets: totals.rx_packets,
        tx_packets: totals.tx_packets,
        dropped: totals.dropped,
        rx_pps: totals.rx_packets as f64 / elapsed,
        tx_pps: totals.tx_packets as f64 / elapsed,
        ports,
    };
    if opts.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "  ---------------------- Forward statistics ({:.2} s) ----------------------",
            elapsed
        );
        for (i, p) in report.ports.iter().enumerate() {
            println!(
                "  port {i}: RX-packets: {:<12} RX-dropped: {:<10} TX-packets: {:<12} TX-dropped: {:<10}",
                p.rx_packets, p.rx_dropped, p.tx_packets, p.tx_dropped
            );
        }
        println!(
            "  total:  RX-packets: {:<12} TX-packets: {:<12} Dropped: {}",
            report.rx_packets, report.tx_packets, report.dropped
        );
        println!(
            "  Rx-pps: {:.0}  Tx-pps: {:.0}  ({} core(s), {} mode, burst {})",
            report.rx_pps,
            report.tx_pps,
            report.cores,
            serde_json::to_string(&report.mode)?.trim_matches('"'),
            report.burst
        );
    }
    Ok(())
}
