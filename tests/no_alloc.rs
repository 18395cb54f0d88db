//! No heap allocation per packet in steady state: a counting global allocator (per
//! thread, so parallel tests don't disturb each other) watches forwarding cores after a
//! warm-up. Covers the AF_PACKET backend over a veth pair (txonly → rxonly, and io
//! forwarding back) and DPDK over net_null (macswap).

mod common;
mod counting_alloc;

use counting_alloc::allocs;

use anyhow::{ensure, Context, Result};
use dataplane::forward::{CoreCounters, Forwarder, Mode};
use dataplane::port::Port;

/// The two tests run one after the other: DPDK's EAL initialisation (which remaps memory
/// and starts threads) racing the other test's `ip` child spawns failed that spawn with
/// EFAULT under load.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls the forwarders `warmup` rounds, then `rounds` more while counting this thread's
/// allocations. Returns (allocations, frames moved by the last forwarder while counted).
fn steady_state<P: Port>(fwds: &mut [Forwarder<P>], warmup: usize, rounds: usize) -> (u64, u64) {
    let counters: Vec<CoreCounters> = fwds.iter().map(|_| CoreCounters::default()).collect();
    for _ in 0..warmup {
        for (f, c) in fwds.iter_mut().zip(&counters) {
            f.poll_once(c);
        }
    }
    let before_frames = counters
        .last()
        .map(|c| c.snapshot().rx_packets)
        .unwrap_or(0);
    let before = allocs();
    for _ in 0..rounds {
        for (f, c) in fwds.iter_mut().zip(&counters) {
            f.poll_once(c);
        }
    }
    let n = allocs() - before;
    let frames = counters
        .last()
        .map(|c| c.snapshot().rx_packets)
        .unwrap_or(0)
        - before_frames;
    (n, frames)
}

#[test]
fn afpacket_forwarding_allocates_nothing_per_packet() -> Result<()> {
    let _serial = serial();
    use dataplane::port::afpacket::{AfPacket, AfPacketConfig};
    if !common::require_root("afpacket_forwarding_allocates_nothing_per_packet") {
        return Ok(());
    }
    let net = common::NetnsPair::new("noal")?;
    let open = |ns: &str, iface: &str| -> Result<_> {
        let iface = iface.to_string();
        common::in_netns(ns, move || {
            AfPacket::open(&iface, &AfPacketConfig::default())
        })??
        .pop()
        .context("no queue")
    };
    let (a, b) = (open(&net.ns_a, &net.veth_a)?, open(&net.ns_b, &net.veth_b)?);
    let template = {
        let mut f = vec![0u8; 64];
        dataplane::wire::build_udp_ipv4(
            &mut f,
            &dataplane::wire::UdpIpv4Header {
                src_mac: a.mac(),
                dst_mac: b.mac(),
                src_ip: net.ip_a,
                dst_ip: net.ip_b,
                src_port: 1,
                dst_port: 9,
                ttl: 64,
                ip_id: 0,
            },
            64 - dataplane::wire::frame::PAYLOAD_OFFSET,
        )?;
        f
    };
    let mut fwds = vec![
        Forwarder::new(vec![a], Mode::Txonly, 32, vec![template])?,
        Forwarder::new(vec![b], Mode::Rxonly, 32, Vec::new())?,
    ];
    let (n, frames) = steady_state(&mut fwds, 2_000, 20_000);
    ensure!(
        frames > 10_000,
        "only {frames} frames crossed; the test measured nothing"
    );
    ensure!(
        n == 0,
        "{n} heap allocations while forwarding {frames} frames"
    );
    Ok(())
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_forwarding_allocates_nothing_per_packet() -> Result<()> {
    let _serial = serial();
    use dataplane::dpdk::{Eal, EthConfig};
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        "--log-level=lib.eal:error",
        &format!("--file-prefix=flatrpc-noalloc-{}", std::process::id()),
        "--vdev=net_null0,copy=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args)?;
    let _lcore = eal.register_thread()?;
    let port = dataplane::port::dpdk::open_ports("net_null0", &EthConfig::default())?
        .pop()
        .context("no queue")?;
    let mut fwds = vec![Forwarder::new(vec![port], Mode::Macswap, 32, Vec::new())?];
    let (n, frames) = steady_state(&mut fwds, 1_000, 20_000);
    ensure!(
        frames > 100_000,
        "only {frames} frames; the test measured nothing"
    );
    ensure!(
        n == 0,
        "{n} heap allocations while forwarding {frames} frames"
    );
    Ok(())
}
