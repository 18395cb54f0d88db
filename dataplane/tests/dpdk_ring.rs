//! Round trips over DPDK's ring PMD: two ports joined back to back by a ring pair
//! (`EthDev::ring_pair`, i.e. `rte_eth_from_rings`) and the `net_ring0` vdev, whose tx
//! ring is its own rx ring. Frames come out byte for byte; refused frames stay with the
//! caller and every mbuf finds its way back to the pool. `net_ring` reports no RSS, so
//! it also covers the RSS fallback.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use dataplane::dpdk::{EthConfig, EthDev};
use dataplane::port::dpdk::{open_ports, DpdkPort};
use dataplane::port::{PacketBuf, Port, MAX_BURST};

fn eal() {
    dpdk_common::eal("ring", &["net_ring0", "net_ring1"]);
}

fn cfg(queues: u16) -> EthConfig {
    EthConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: 256,
        tx_desc: 256,
        mbufs: 4095,
        mbuf_cache: 32,
        ..EthConfig::default()
    }
}

/// Opens both ends of a fresh ring pair with `queues` queue pairs each.
fn pair(name: &str, queues: u16) -> (Vec<DpdkPort>, Vec<DpdkPort>) {
    eal();
    let (a, b) = EthDev::ring_pair(name, queues).expect("ring pair");
    let a = EthDev::configure(a, &cfg(queues)).expect("configure a");
    let b = EthDev::configure(b, &cfg(queues)).expect("configure b");
    let pa = (0..queues)
        .map(|q| DpdkPort::new(&a, q).expect("port a"))
        .collect();
    let pb = (0..queues)
        .map(|q| DpdkPort::new(&b, q).expect("port b"))
        .collect();
    (pa, pb)
}

/// Sends `frames` from `tx` and collects as many from `rx` (bounded polling).
fn send_and_receive(tx: &mut DpdkPort, rx: &mut DpdkPort, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(MAX_BURST);
    for f in frames {
        let mut m = tx.alloc().expect("mbuf");
        m.fill_from(f).expect("frame fits");
        out.push(m);
        if out.len() == MAX_BURST {
            assert_eq!(tx.tx_burst(&mut out), MAX_BURST);
        }
    }
    let n = out.len();
    assert_eq!(tx.tx_burst(&mut out), n);
    let mut got = Vec::new();
    let mut bufs = Vec::with_capacity(MAX_BURST);
    for _ in 0..10_000 {
        if got.len() >= frames.len() {
            break;
        }
        rx.rx_burst(&mut bufs, MAX_BURST);
        got.extend(bufs.drain(..).map(|b| b.data().to_vec()));
    }
    got
}

#[test]
fn frames_cross_a_ring_pair_unchanged_both_ways() {
    let (mut a, mut b) = pair("rt", 1);
    let (a, b) = (&mut a[0], &mut b[0]);
    assert_ne!(a.port_id(), b.port_id());
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| dpdk_common::frame(14 + (i * 37) % 1500, i as u32))
        .collect();
    let got = send_and_receive(a, b, &frames);
    assert_eq!(got, frames, "a -> b");
    let back: Vec<Vec<u8>> = frames.iter().rev().cloned().collect();
    let got = send_and_receive(b, a, &back);
    assert_eq!(got, back, "b -> a");

    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.tx_packets, sa.tx_bytes), (200, bytes));
    assert_eq!((sb.rx_packets, sb.rx_bytes), (200, bytes));
    assert_eq!((sb.tx_packets, sa.rx_packets), (200, 200));
    // Nothing is left anywhere: both pools are full again.
    for p in [&*a, &*b] {
        assert_eq!(p.mempool().in_use_count(), 0, "{}", p.mempool().name());
    }
}

#[test]
fn each_queue_of_a_ring_pair_is_its_own_link() {
    let (mut a, mut b) = pair("mq", 2);
    let f0 = vec![dpdk_common::frame(100, 1)];
    let f1 = vec![dpdk_common::frame(200, 2)];
    assert_eq!(send_and_receive(&mut a[0], &mut b[0], &f0), f0);
    assert_eq!(send_and_receive(&mut a[1], &mut b[1], &f1), f1);
    // Queue 0 saw nothing of queue 1's frame.
    let mut bufs = Vec::new();
    assert_eq!(b[0].rx_burst(&mut bufs, MAX_BURST), 0);
    // Ring devices report no RSS: two queues with RSS asked for fall back silently.
    let dev = a[0].dev();
    assert_eq!(dev.rss_hash_functions_supported(), 0);
    assert!(!dev.rss_enabled());
}

#[test]
fn net_ring_vdev_loops_tx_back_to_rx() {
    eal();
    let mut ports = open_ports("net_ring0", &cfg(1)).expect("net_ring0");
    let p = &mut ports[0];
    let frames: Vec<Vec<u8>> = (0..40)
        .map(|i| dpdk_common::frame(64 + i, i as u32))
        .collect();
    let mut out = Vec::new();
    for f in &frames {
        let mut m = p.alloc().expect("mbuf");
        m.fill_from(f).expect("fits");
        out.push(m);
    }
    assert_eq!(p.tx_burst(&mut out), 40);
    let mut bufs = Vec::new();
    while p.rx_burst(&mut bufs, MAX_BURST) > 0 {}
    let got: Vec<Vec<u8>> = bufs.iter().map(|b| b.data().to_vec()).collect();
    assert_eq!(got, frames);
}

#[test]
fn refused_frames_stay_with_the_caller_and_every_mbuf_comes_back() {
    let (mut a, mut b) = pair("full", 1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let size = a.mempool().size();
    // The ring holds 1023 frames; offer 1100 without receiving.
    let mut accepted = 0;
    let mut leftover = Vec::new();
    for i in 0..(1100 / 50) {
        let mut burst = Vec::new();
        for j in 0..50 {
            let mut m = a.alloc().expect("mbuf");
            m.fill_from(&dpdk_common::frame(60, (i * 50 + j) as u32))
                .expect("fits");
            burst.push(m);
        }
        accepted += a.tx_burst(&mut burst);
        // What was refused is still ours, in order, untouched.
        for m in &burst {
            assert_eq!(m.len(), 60);
        }
        leftover.append(&mut burst);
    }
    assert_eq!(accepted, 1023);
    assert_eq!(leftover.len(), 1100 - 1023);
    let s = a.stats();
    assert_eq!(s.tx_packets, 1023);
    assert_eq!(s.tx_dropped, 1100 - 1023);
    // The first refused frame is the 1024th offered.
    assert_eq!(leftover[0].data(), &dpdk_common::frame(60, 1023)[..]);
    assert_eq!(a.mempool().in_use_count(), 1100);

    drop(leftover);
    assert_eq!(a.mempool().in_use_count(), 1023);
    let mut bufs = Vec::with_capacity(MAX_BURST);
    let mut received = 0;
    while b.rx_burst(&mut bufs, MAX_BURST) > 0 {
        received += bufs.len();
        bufs.clear();
    }
    assert_eq!(received, 1023);
    assert_eq!(a.mempool().avail_count(), size);
}

#[test]
fn a_second_vdev_can_be_hot_plugged() {
    eal();
    let id = EthDev::create_vdev("net_ring_hot", "").expect("hot-plug net_ring");
    assert_eq!(EthDev::port_by_name("net_ring_hot").ok(), Some(id));
    let dev = EthDev::configure(id, &cfg(1)).expect("configure");
    assert_eq!(dev.driver(), "net_ring");
    assert!(dev.link().expect("link").up);
    // A duplicate name is an error with DPDK's text, not a crash.
    let e = EthDev::create_vdev("net_ring_hot", "").expect_err("duplicate");
    assert!(e.to_string().contains("rte_vdev_init failed"), "{e}");
}
