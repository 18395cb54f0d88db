//! Transport benchmarks (harness = false): per-packet cost of each class on one core and
//! the simulated goodput of reliable-ordered delivery under 1% loss.
//!
//! Per-packet cost: a client and a server endpoint back to back in one thread; each
//! round issues 32 calls, moves the 32 requests, runs the server side (events, respond),
//! moves the 32 responses and consumes the answers. Everything both endpoints do is
//! timed; the figure is total time / packets (2 per RPC). Heap allocations during the
//! timed rounds are counted too (the steady state should make none).
//!
//! Each class is measured through both APIs: the queued one (`call`, `poll_transmit`,
//! `handle_packet`, `poll_event`, `respond`) and the in-place one the engine uses
//! (`call_in_place`, `receive`, `respond_in_place`: payloads written and read in the
//! packet buffers).
//!
//! Run: `cargo bench -p flatrpc --no-default-features --bench transport`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant as WallClock;

use dataplane::port::sim::Impairment;
use dataplane::transport::sim::{run, LoopbackPair, SimConfig, LOOPBACK_CLIENT, LOOPBACK_SERVER};
use dataplane::transport::{
    ClassTable, Event, Received, RequestRef, TransportClass, TransportConfig,
};
use dataplane::wire::rpc::HEADER_LEN;

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
    resp_bufs: Vec<Vec<u8>>,
    resp_lens: Vec<usize>,
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
            resp_bufs: vec![vec![0u8; cfg.max_packet_len()]; BATCH],
            resp_lens: vec![0; BATCH],
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

    /// One round of 32 RPCs through the in-place API, as the engine drives it: the
    /// client writes each request into its own transmit buffer and the transport adds
    /// the header; the server gets each request borrowing the received buffer and
    /// writes the answer into a transmit buffer; the client gets each answer borrowing
    /// the received buffer. Returns packets moved.
    fn round_in_place(&mut self) -> usize {
        let p = &mut self.p;
        let s = p.session;
        let plen = self.payload.len();
        let mut n = 0;
        while n < BATCH {
            let out = &mut self.bufs[n];
            out[HEADER_LEN..HEADER_LEN + plen].copy_from_slice(&self.payload);
            match p
                .client
                .call_in_place(p.now, s, 1, 1, self.class, out, plen)
            {
                Ok((_, Some((_, len)))) => {
                    self.lens[n] = len;
                    n += 1;
                }
                _ => break,
            }
        }
        let mut m = 0;
        for j in 0..n {
            let rx = &mut self.bufs[j][..self.lens[j]];
            let Ok(Received::Request { req, payload, .. }) =
                p.server.receive(p.now, LOOPBACK_CLIENT, rx)
            else {
                continue;
            };
            // The handler: reads the request, writes an answer of the same size.
            let out = &mut self.resp_bufs[m];
            let plen = payload.len();
            out[HEADER_LEN..HEADER_LEN + plen].copy_from_slice(payload);
            if let Ok(Some((_, len))) = p.server.respond_in_place(p.now, req, out, plen) {
                self.resp_lens[m] = len;
                m += 1;
            }
        }
        for j in 0..m {
            let rx = &mut self.resp_bufs[j][..self.resp_lens[j]];
            if let Ok(Received::Response { result, .. }) =
                p.client.receive(p.now, LOOPBACK_SERVER, rx)
            {
                black_box(result.ok());
            }
        }
        p.now = p.now + 1_000;
        p.client.handle_timeout(p.now);
        p.server.handle_timeout(p.now);
        n + m
    }

    /// The reference for `round_in_place`: the application's share of it alone (the
    /// same payload writes and reads in the same buffers, no transport). Returns the
    /// packets the round stands for.
    fn round_app_only(&mut self) -> usize {
        let plen = self.payload.len();
        for out in &mut self.bufs {
            out[HEADER_LEN..HEADER_LEN + plen].copy_from_slice(&self.payload);
            black_box(&mut out[..]);
        }
        for (rx, out) in self.bufs.iter_mut().zip(&mut self.resp_bufs) {
            let payload = black_box(&rx[HEADER_LEN..HEADER_LEN + plen]);
            out[HEADER_LEN..HEADER_LEN + plen].copy_from_slice(payload);
            black_box(&mut out[..]);
        }
        for rx in &mut self.resp_bufs {
            black_box(&rx[HEADER_LEN..HEADER_LEN + plen]);
        }
        2 * BATCH
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Queued,
    InPlace,
    /// The application's payload work of `InPlace` alone (the reference).
    AppOnly,
}

fn per_packet(class: TransportClass, rounds: usize, api: Api) -> (f64, f64) {
    let mut b = Bench::new(class);
    let round = match api {
        Api::Queued => Bench::round,
        Api::InPlace => Bench::round_in_place,
        Api::AppOnly => Bench::round_app_only,
    };
    for _ in 0..2_000 {
        round(&mut b);
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = WallClock::now();
    let mut packets = 0usize;
    for _ in 0..rounds {
        packets += round(&mut b);
    }
    let ns = t0.elapsed().as_nanos() as f64 / packets as f64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / packets as f64;
    if api == Api::AppOnly {
        return (ns, allocs);
    }
    assert_eq!(
        b.p.client.stats().rpcs_completed,
        b.p.client.stats().calls,
        "every RPC completed"
    );
    if api == Api::InPlace {
        let (c, sv) = (b.p.client.stats(), b.p.server.stats());
        assert_eq!(
            c.answers_in_place, c.calls,
            "every answer handed out in place"
        );
        assert_eq!(
            sv.requests_in_place, c.calls,
            "every request handed out in place"
        );
    }
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
        // API=queued|in-place runs one API.
        let api_only = std::env::var("API").ok();
        let best_of_3 = |api: Api| {
            // Best of 3 to damp noise from the shared machine.
            let mut best = (f64::MAX, 0.0);
            for _ in 0..3 {
                let r = per_packet(class, rounds, api);
                if r.0 < best.0 {
                    best = r;
                }
            }
            best
        };
        for (label, api) in [("queued", Api::Queued), ("in-place", Api::InPlace)] {
            if api_only.as_deref().is_some_and(|a| a != label) {
                continue;
            }
            let (ns, allocs) = best_of_3(api);
            print!(
                "  {name:<17} {label:<8} {ns:>6.1} ns/packet  (target <= {target} ns)  heap allocations/packet {allocs:.4}"
            );
            if api == Api::InPlace {
                // The application's payload writes and reads, measured alone.
                let (app, _) = best_of_3(Api::AppOnly);
                print!(
                    "  [of which application payload work {app:.1} ns: transport {:.1} ns]",
                    ns - app
                );
            }
            println!();
        }
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
