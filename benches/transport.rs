//! Transport benchmarks (harness = false): per-packet cost of each class on one core and
//! the simulated goodput of reliable-ordered delivery under 1% loss.
//!
//! Per-packet cost: a client and a server endpoint back to back in one thread; each
//! round issues 32 calls, moves the 32 requests, runs the server side (events, respond),
//! moves the 32 responses and consumes the answers. Everything both endpoints do is
//! timed; the figure is total time / packets (2 per RPC). Heap allocations during the
//! timed rounds are counted too (the steady state should make none).
//!
//! Run: `cargo bench -p flatrpc --no-default-features --bench transport`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant as WallClock;

use dataplane::port::sim::Impairment;
use dataplane::transport::sim::{run, LoopbackPair, SimConfig, LOOPBACK_CLIENT, LOOPBACK_SERVER};
use dataplane::transport::{ClassTable, Event, RequestRef, TransportClass, TransportConfig};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 32;

struct Bench {
    p: LoopbackPair,
    class: TransportClass,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    reqs: Vec<RequestRef>,
    payload: Vec<u8>,
}

impl Bench {
    fn new(class: TransportClass) -> Self {
        let cfg = TransportConfig {
            window: BATCH as u8,
            ..TransportConfig::default()
        };
        let p = LoopbackPair::connected(&cfg, ClassTable::with_default(class), 1)
            .expect("loopback pair");
        Bench {
            p,
            class,
            bufs: vec![vec![0u8; cfg.max_packet_len()]; BATCH],
            lens: vec![0; BATCH],
            reqs: Vec::with_capacity(BATCH),
            payload: vec![0xab; 64],
        }
    }

    /// One round of 32 RPCs; returns packets moved.
    fn round(&mut self) -> usize {
        let p = &mut self.p;
        let s = p.session;
        for _ in 0..BATCH {
            if p.client
                .call(p.now, s, 1, 1, self.class, &self.payload)
                .is_err()
            {
                break;
            }
        }
        let mut n = 0;
        while n < BATCH {
            let Some((_, len)) = p.client.poll_transmit(p.now, &mut self.bufs[n]) else {
                break;
            };
            self.lens[n] = len;
            n += 1;
        }
        for j in 0..n {
            let _ = p
                .server
                .handle_packet(p.now, LOOPBACK_CLIENT, &self.bufs[j][..self.lens[j]]);
        }
        self.reqs.clear();
        while let Some(ev) = p.server.poll_event() {
            if let Event::Request { req, payload, .. } = ev {
                black_box(payload);
                self.reqs.push(req);
            }
        }
        for &req in &self.reqs {
            let _ = p.server.respond(p.now, req, &self.payload);
        }
        let mut m = 0;
        while m < BATCH {
            let Some((_, len)) = p.server.poll_transmit(p.now, &mut self.bufs[m]) else {
                break;
            };
            self.lens[m] = len;
            m += 1;
        }
        for j in 0..m {
            let _ = p
                .client
                .handle_packet(p.now, LOOPBACK_SERVER, &self.bufs[j][..self.lens[j]]);
        }
        while let Some(ev) = p.client.poll_event() {
            black_box(&ev);
        }
        p.now = p.now + 1_000;
        p.client.handle_timeout(p.now);
        p.server.handle_timeout(p.now);
        n + m
    }
}

fn per_packet(class: TransportClass, rounds: usize) -> (f64, f64) {
    let mut b = Bench::new(class);
    for _ in 0..2_000 {
        b.round();
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = WallClock::now();
    let mut packets = 0usize;
    for _ in 0..rounds {
        packets += b.round();
    }
    let ns = t0.elapsed().as_nanos() as f64 / packets as f64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / packets as f64;
    assert_eq!(
        b.p.client.stats().rpcs_completed,
        b.p.client.stats().calls,
        "every RPC completed"
    );
    (ns, allocs)
}

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // ONLY=unreliable|reliable|reliable-ordered|goodput runs one part.
    let only = std::env::var("ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!("transport per-packet cost (1 core, 32-RPC batches, 64 B payloads, request + response handling both sides)");
    for (name, class, target) in [
        ("unreliable", TransportClass::Unreliable, 15.0),
        ("reliable", TransportClass::Reliable, 60.0),
        ("reliable-ordered", TransportClass::ReliableOrdered, 60.0),
    ] {
        if !wanted(name) {
            continue;
        }
        // Best of 3 to damp noise from the shared machine.
        let mut best = (f64::MAX, 0.0);
        for _ in 0..3 {
            let r = per_packet(class, rounds);
            if r.0 < best.0 {
                best = r;
            }
        }
        println!(
            "  {name:<17} {:>6.1} ns/packet  (target <= {target} ns)  heap allocations/packet {:.4}",
            best.0, best.1
        );
    }

    if !wanted("goodput") {
        return;
    }
    println!(
        "simulated goodput, reliable-ordered, 20000 RPCs, 64 B, 10 us delay, 2 us jitter, seed 7"
    );
    for cost in [1_000u64, 0] {
        let go = |loss: f64| {
            let cfg = SimConfig {
                rpcs: 20_000,
                class: TransportClass::ReliableOrdered,
                impairment: Impairment {
                    loss,
                    reorder: 0.0,
                    dup: 0.0,
                    delay_ns: 10_000,
                    jitter_ns: 2_000,
                },
                msg_size: 64,
                seed: 7,
                server_ns_per_rpc: cost,
                ..SimConfig::default()
            };
            run(&cfg).expect("simulation")
        };
        let clean = go(0.0);
        let lossy = go(0.01);
        println!(
            "  handler {cost:>4} ns/RPC: loss-free {:>9.0} RPC/s, 1% loss {:>9.0} RPC/s, ratio {:.3} (target >= 0.8), retransmissions {}",
            clean.goodput_rps,
            lossy.goodput_rps,
            lossy.goodput_rps / clean.goodput_rps,
            lossy.retransmissions
        );
    }
}
