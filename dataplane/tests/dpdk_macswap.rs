//! testpmd-style macswap forwarding over `net_null,copy=1` with the `dpdk` port: the
//! throughput figure compared with `dpdk-testpmd --forward-mode=macswap` on the same
//! device. By default a short run checks that the loop forwards and swaps; for a
//! measurement run it in release on an idle machine:
//!
//! ```text
//! FLATRPC_MACSWAP_SECS=10 cargo test --release -p dataplane --test dpdk_macswap -- --nocapture
//! ```
//!
//! The loop runs on the thread that initialised the EAL, i.e. the main lcore (pinned by
//! EAL to its core, with mempool caches), like testpmd's forwarding lcore.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use std::time::{Duration, Instant};

use dataplane::dpdk::{Eal, EthConfig};
use dataplane::port::dpdk::open_ports;
use dataplane::port::{PacketBuf, Port, MAX_BURST};

/// Swaps the destination and source MAC addresses of an Ethernet frame.
#[inline(always)]
fn macswap(frame: &mut [u8]) {
    if let Some(hdr) = frame.get_mut(..12) {
        let (dst, src) = hdr.split_at_mut(6);
        dst.swap_with_slice(src);
    }
}

#[test]
fn macswap_over_net_null_forwards_every_frame() {
    let secs: f64 = std::env::var("FLATRPC_MACSWAP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.3);
    let eal = dpdk_common::eal("macswap", &["net_null0,copy=1"]);
    assert_eq!(Eal::lcore_id(), Some(0), "the loop runs on the main lcore");
    let cfg = EthConfig {
        rx_desc: 1024,
        tx_desc: 1024,
        ..EthConfig::default()
    };
    let mut port = open_ports("net_null0", &cfg)
        .expect("net_null0")
        .pop()
        .expect("one port");

    // Functional check on one burst: the swap happens in the mbuf's own bytes.
    let mut bufs = Vec::with_capacity(MAX_BURST);
    let n = port.rx_burst(&mut bufs, MAX_BURST);
    assert!(n > 0);
    for b in bufs.iter_mut() {
        b.data_mut()[..12].copy_from_slice(&[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
        macswap(b.data_mut());
        assert_eq!(&b.data()[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    }
    port.tx_burst(&mut bufs);
    bufs.clear();
    let base = port.stats();

    let hz = eal.tsc_hz();
    let deadline = Eal::rdtsc() + (secs * hz as f64) as u64;
    let start = Instant::now();
    let mut loops = 0u64;
    loop {
        let n = port.rx_burst(&mut bufs, MAX_BURST);
        for b in bufs.iter_mut() {
            macswap(b.data_mut());
        }
        if n > 0 {
            port.tx_burst(&mut bufs);
            // Frames the device refused are dropped (freed) here, as testpmd does.
            bufs.clear();
        }
        loops += 1;
        if loops & 1023 == 0 && Eal::rdtsc() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    let s = port.stats();
    let rx = s.rx_packets - base.rx_packets;
    let tx = s.tx_packets - base.tx_packets;
    let mpps = tx as f64 / elapsed.as_secs_f64() / 1e6;
    println!(
        "macswap net_null0,copy=1: {tx} frames forwarded in {:.2} s = {mpps:.2} Mpps \
         (rx {rx}, tx refused {})",
        elapsed.as_secs_f64(),
        s.tx_dropped - base.tx_dropped
    );
    assert!(rx > 0);
    assert_eq!(tx + (s.tx_dropped - base.tx_dropped), rx);
    // Every mbuf is back in the pool (net_null keeps none).
    assert_eq!(port.mempool().in_use_count(), 0);
}
