//! The DPDK layer and the `dpdk` port over `net_null` devices: EAL once per process,
//! receive from `net_null,copy=1`, counters, RSS on 2 queues (DPDK 22.11's net_null
//! reports RSS hash types; the fallback for devices without RSS is in `dpdk_ring`),
//! queue and port ownership, mbufs and mempool accounting, lcore registration.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use std::sync::Arc;

use dataplane::dpdk::{DpdkError, Eal, EthConfig, EthDev, Mbuf, Mempool, MBUF_HEADROOM};
use dataplane::port::dpdk::{open_ports, DpdkPort};
use dataplane::port::{BufTooSmall, PacketBuf, Port, MAX_BURST};

const VDEVS: &[&str] = &[
    "net_null0,copy=1",
    "net_null1,copy=1",
    "net_null2",
    "net_null3",
    "net_null4",
    "net_null5",
    "net_null6",
    // Never configured, so it stays listed while other tests close theirs.
    "net_null7",
];

fn eal() -> Eal {
    dpdk_common::eal("null", VDEVS)
}

fn small() -> EthConfig {
    EthConfig {
        rx_desc: 256,
        tx_desc: 256,
        mbuf_cache: 32,
        ..EthConfig::default()
    }
}

#[test]
fn eal_is_initialised_once_per_process() {
    let e = eal();
    assert!(Eal::get().is_some());
    let again = Eal::init(&dpdk_common::eal_args("null-again", &[]));
    assert_eq!(again.err(), Some(DpdkError::AlreadyInitialised));
    assert!(e.tsc_hz() > 1_000_000, "tsc_hz {}", e.tsc_hz());
    let t0 = Eal::rdtsc();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(Eal::rdtsc() > t0);
    let ports = EthDev::ports();
    let listed = ports.iter().find(|p| p.name == "net_null7");
    let by_name = EthDev::port_by_name("net_null7").expect("net_null7 probed");
    assert_eq!(listed.map(|p| p.port_id), Some(by_name));
    assert!(EthDev::count_avail() >= 1);
}

#[test]
fn null_copy_rx_gives_frames_and_stats_count_them() {
    eal();
    let mut ports = open_ports("net_null0", &small()).expect("open net_null0");
    assert_eq!(ports.len(), 1);
    let mut port = ports.pop().expect("one port");
    let size = port.mempool().size();
    let mut bufs = Vec::with_capacity(MAX_BURST);
    let mut total = 0u64;
    for _ in 0..100 {
        let n = port.rx_burst(&mut bufs, MAX_BURST);
        assert_eq!(n, bufs.len());
        total += n as u64;
        for b in &bufs {
            // net_null's default frame size.
            assert_eq!(b.len(), 64);
            assert_eq!(b.nb_segs(), 1);
            assert!(b.capacity() >= 1500);
        }
        // net_null accepts (and frees) everything.
        assert_eq!(port.tx_burst(&mut bufs), n);
        assert!(bufs.is_empty());
    }
    assert!(total >= 100, "net_null gave only {total} frames");
    let s = port.stats();
    assert_eq!(s.rx_packets, total);
    assert_eq!(s.rx_bytes, total * 64);
    assert_eq!(s.tx_packets, total);
    assert_eq!(s.tx_bytes, total * 64);
    assert_eq!(s.tx_dropped, 0);
    assert_eq!(s.rx_errors, 0);
    let dev = port.dev().stats().expect("device stats");
    assert_eq!(dev.ipackets, total);
    assert_eq!(dev.opackets, total);
    // Every mbuf came back: none held by us, net_null keeps none.
    assert_eq!(port.mempool().avail_count(), size);
    assert_eq!(port.mempool().in_use_count(), 0);
    let link = port.dev().link().expect("link");
    assert!(link.up);
}

#[test]
fn rss_stays_off_with_one_queue_or_when_not_asked() {
    eal();
    let cfg = EthConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss: false,
        ..small()
    };
    let ports = open_ports("net_null6", &cfg).expect("2 queues, RSS not asked for");
    assert_eq!(ports.len(), 2);
    assert!(!ports[0].dev().rss_enabled());
    assert_eq!(ports[0].dev().rss_hash_functions(), 0);
}

#[test]
fn rx_respects_max() {
    eal();
    let mut port = open_ports("net_null3", &small())
        .expect("open net_null3")
        .pop()
        .expect("one port");
    // One queue: RSS asked for (the default) but nothing to spread.
    assert!(!port.dev().rss_enabled());
    let mut bufs = Vec::new();
    assert_eq!(port.rx_burst(&mut bufs, 0), 0);
    assert_eq!(port.rx_burst(&mut bufs, 5), 5);
    assert_eq!(port.rx_burst(&mut bufs, 1000), MAX_BURST);
    assert_eq!(bufs.len(), 5 + MAX_BURST);
    assert_eq!(port.stats().rx_packets, (5 + MAX_BURST) as u64);
}

#[test]
fn tx_of_more_than_a_burst_is_chunked() {
    eal();
    let mut port = open_ports("net_null2", &small())
        .expect("open net_null2")
        .pop()
        .expect("one port");
    let mut bufs = Vec::new();
    for i in 0..(3 * MAX_BURST + 7) {
        let mut m = port.alloc().expect("mbuf");
        m.fill_from(&dpdk_common::frame(60 + i, i as u32))
            .expect("fits");
        bufs.push(m);
    }
    let bytes: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let n = bufs.len();
    assert_eq!(port.tx_burst(&mut bufs), n);
    assert!(bufs.is_empty());
    let s = port.stats();
    assert_eq!(s.tx_packets, n as u64);
    assert_eq!(s.tx_bytes, bytes);
    assert_eq!(port.mempool().in_use_count(), 0);
}

#[test]
fn rss_on_two_queues_of_a_device_that_reports_it() {
    eal();
    let cfg = EthConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss: true,
        ..small()
    };
    let ports = open_ports("net_null1", &cfg).expect("2 queues with RSS");
    assert_eq!(ports.len(), 2);
    let dev = ports[0].dev().clone();
    assert_eq!(dev.driver(), "net_null");
    let supported = dev.rss_hash_functions_supported();
    assert_ne!(
        supported, 0,
        "net_null of DPDK 22.11 reports RSS hash types"
    );
    assert!(dev.rss_enabled());
    // What we ask for (IP, UDP, TCP), masked by what the device reports.
    assert_ne!(dev.rss_hash_functions(), 0);
    assert_eq!(dev.rss_hash_functions() & !supported, 0);
    assert_eq!((dev.rx_queues(), dev.tx_queues()), (2, 2));
    // Each queue moves to its own thread and receives there.
    let handles: Vec<_> = ports
        .into_iter()
        .map(|mut p| {
            std::thread::spawn(move || {
                let reg = Eal::get().expect("eal").register_thread().expect("lcore");
                let mut bufs = Vec::with_capacity(MAX_BURST);
                let n = p.rx_burst(&mut bufs, MAX_BURST);
                drop(bufs);
                drop(reg);
                (p.queue(), n, p.stats())
            })
        })
        .collect();
    for h in handles {
        let (q, n, s) = h.join().expect("queue thread");
        assert!(n > 0, "queue {q} received nothing");
        assert_eq!(s.rx_packets, n as u64);
    }
}

#[test]
fn queues_and_ports_are_handed_out_once() {
    eal();
    let dev = EthDev::open("net_null4", &small()).expect("open net_null4");
    let p0 = DpdkPort::new(&dev, 0).expect("queue 0");
    assert!(matches!(DpdkPort::new(&dev, 0), Err(DpdkError::Invalid(_))));
    assert!(matches!(DpdkPort::new(&dev, 1), Err(DpdkError::Invalid(_))));
    // The port id cannot be configured again while the device is live.
    assert!(matches!(
        EthDev::configure(dev.port_id(), &small()),
        Err(DpdkError::Invalid(_))
    ));
    drop(p0);
    let p0 = DpdkPort::new(&dev, 0).expect("queue 0 again after release");
    assert_eq!(p0.port_id(), dev.port_id());
    assert_eq!(p0.mac(), dev.mac());
}

#[test]
fn unknown_devices_and_bad_configs_are_errors() {
    eal();
    assert_eq!(
        open_ports("net_nope9", &small()).err(),
        Some(DpdkError::NoSuchDevice("net_nope9".into()))
    );
    let too_many = EthConfig {
        rx_queues: 4096,
        ..small()
    };
    assert!(matches!(
        open_ports("net_null5", &too_many),
        Err(DpdkError::Invalid(_))
    ));
    // The failed configuration left the device usable.
    let ports = open_ports("net_null5", &small()).expect("net_null5 after a bad config");
    assert_eq!(ports.len(), 1);
    assert!(matches!(
        Mempool::new_pktmbuf("x", 64, 600, 2176),
        Err(DpdkError::Invalid(_))
    ));
    assert!(matches!(
        Mempool::new_pktmbuf("x", 64, 0, 100),
        Err(DpdkError::Invalid(_))
    ));
}

#[test]
fn mbufs_bound_their_length_and_return_to_the_pool() {
    eal();
    let pool = Mempool::new_pktmbuf("mbuf test", 63, 0, 2176).expect("pool");
    assert_eq!(pool.size(), 63);
    assert_eq!(pool.avail_count(), 63);
    assert_eq!(pool.data_room(), 2176);
    let mut m = pool.alloc().expect("mbuf");
    assert!(m.is_empty());
    let cap = m.capacity();
    assert_eq!(cap, 2176 - MBUF_HEADROOM);
    assert_eq!(m.headroom(), MBUF_HEADROOM);
    assert_eq!(
        m.set_len(cap + 1),
        Err(BufTooSmall {
            wanted: cap + 1,
            capacity: cap
        })
    );
    let f = dpdk_common::frame(1500, 7);
    m.fill_from(&f).expect("fits");
    assert_eq!(m.data(), &f[..]);
    assert_eq!(m.tailroom(), cap - 1500);
    m.data_mut()[0] = 0xab;
    assert_eq!(m.data()[0], 0xab);
    m.set_len(cap).expect("full capacity");
    assert_eq!(m.len(), cap);
    assert_eq!(pool.in_use_count(), 1);

    let mut bulk = Vec::new();
    assert!(pool.alloc_bulk(&mut bulk, 20));
    assert_eq!(bulk.len(), 20);
    assert_eq!(pool.avail_count(), 63 - 21);
    Mbuf::free_bulk(&mut bulk);
    assert!(bulk.is_empty());
    assert_eq!(pool.avail_count(), 63 - 1);

    // Raw round trip.
    let raw = m.into_raw();
    assert_eq!(pool.in_use_count(), 1);
    // SAFETY: `raw` came from into_raw just above and nobody else has it.
    let m = unsafe { Mbuf::from_raw(raw) };
    drop(m);
    assert_eq!(pool.avail_count(), 63);

    // Exhaustion is None, not a crash.
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), 63);
    assert!(!pool.alloc_bulk(&mut all, 1));
    drop(all);
    assert_eq!(pool.avail_count(), 63);
}

#[test]
fn a_pool_with_mbufs_out_is_leaked_not_freed() {
    eal();
    let pool = Mempool::new_pktmbuf("leak test", 31, 0, 2176).expect("pool");
    let full = Mempool::new_pktmbuf("free test", 31, 0, 2176).expect("pool");
    let mut m = pool.alloc().expect("mbuf");
    let before = Mempool::leaked_pools();
    drop(full);
    assert_eq!(Mempool::leaked_pools(), before);
    drop(pool);
    assert_eq!(Mempool::leaked_pools(), before + 1);
    // The mbuf is still valid memory.
    m.fill_from(b"still here").expect("fits");
    assert_eq!(m.data(), b"still here");
    drop(m);
}

#[test]
fn threads_we_pin_get_an_lcore_id() {
    let e = eal();
    let pool: Arc<Mempool> = Mempool::new_pktmbuf("lcore test", 1023, 64, 2176).expect("pool");
    std::thread::spawn(move || {
        assert_eq!(Eal::lcore_id(), None);
        let reg = e.register_thread().expect("register");
        assert_eq!(Eal::lcore_id(), Some(reg.lcore_id()));
        assert_ne!(reg.lcore_id(), 0, "lcore 0 is the main lcore");
        // With an lcore id, frees go to this lcore's cache and still count as available.
        let bufs: Vec<_> = (0..10).filter_map(|_| pool.alloc()).collect();
        assert_eq!(bufs.len(), 10);
        drop(bufs);
        assert_eq!(pool.avail_count(), 1023);
        // A second registration on the same thread is the same lcore, not a new one.
        let again = e.register_thread().expect("again");
        assert_eq!(again.lcore_id(), reg.lcore_id());
        drop(again);
        assert_eq!(Eal::lcore_id(), Some(reg.lcore_id()));
        drop(reg);
        assert_eq!(Eal::lcore_id(), None);
    })
    .join()
    .expect("thread");
}
