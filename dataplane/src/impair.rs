//! `impair`: a seeded userspace impairment relay between two ports.
//!
//! This kernel has no `sch_netem`, so loss, reordering, duplication and delay on a real
//! link come from here: a [`Relay`] owns two ports `a` and `b` and forwards every frame
//! received on one out of the other through one [`ImpairedQueue`] per direction, driven
//! by a monotonic clock. It is an **L2 relay**: it does not look at the frames, so ARP,
//! IPv4, anything else crosses it — and is impaired alike (a lost ARP request delays the
//! first packet of a flow by the kernel's ARP retry time, exactly as on a lossy wire).
//!
//! Each direction draws from its own seeded random stream ([`direction_seed`]), so a
//! run is replayable in the sense of the impairment model: the same sequence of frames
//! into a direction meets the same fate. (On a real link the arrival of frames depends
//! on the kernel, so end-to-end runs are statistically, not bit-for-bit, reproducible.)
//!
//! The data path allocates nothing per frame once the queues have grown to their
//! working size: frames live in the receiving port's buffer pool while delayed,
//! duplicates are copied into a buffer of that pool, and the burst vectors are reserved
//! once. Frames the destination port cannot take yet stay in a per-direction staging
//! burst and are retried on the next pass; when the delay queue is full new frames are
//! dropped and counted as `overflow`.
//!
//! This module owns the relay loop, its counters and its thread; it must not implement
//! a second impairment model (the model is `port::sim`'s) nor parse frames.
//!
//! Sparse traffic: a frame picked for reordering waits for the next frame to overtake
//! it, at most `port::sim::REORDER_HOLD_NS` (100 µs) past its due time; when none comes
//! (a lone ping) it is simply delivered that much later.
//!
//! AF_PACKET note: a TPACKET_V3 receive block is handed over when full or after its
//! retire timeout (1 ms), so at low rates the relay itself adds up to ~1 ms per
//! direction on top of the configured delay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::port::afpacket::{AfPacket, AfPacketConfig, AfPacketPort, PortError};
use crate::port::sim::{BadImpairment, ImpairStats, ImpairedQueue, Impairment};
use crate::port::{PacketBuf, Port, PortStats, MAX_BURST};

/// Frames in flight per direction before new ones overflow (default).
pub const DEFAULT_QUEUE_LIMIT: usize = 8192;

/// How a [`Relay`] impairs and batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayConfig {
    /// Applied to both directions, each with its own random stream.
    pub impairment: Impairment,
    /// Seed of both streams (see [`direction_seed`]).
    pub seed: u64,
    /// Frames in flight per direction (the delay line, duplicates included).
    pub queue_limit: usize,
    /// Frames per receive/transmit burst, `1..=MAX_BURST`.
    pub burst: usize,
    /// Call `sched_yield` on passes where the relay is completely idle (nothing received,
    /// nothing in flight). Frames in flight are always waited for by spinning, so the
    /// delay stays precise; turn this off for a pure busy-polling core.
    pub yield_when_idle: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            impairment: Impairment::default(),
            seed: 0,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            burst: MAX_BURST,
            yield_when_idle: true,
        }
    }
}

/// One direction of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    AToB,
    BToA,
}

/// The seed of `dir`'s random stream, derived from the relay seed (splitmix64 of the
/// seed mixed with a per-direction constant), so the two directions are independent.
pub fn direction_seed(seed: u64, dir: Direction) -> u64 {
    let salt = match dir {
        Direction::AToB => 0xa2b0_5eed_0000_0001,
        Direction::BToA => 0xb2a0_5eed_0000_0002,
    };
    splitmix64(seed ^ salt)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a relay could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Impairment(#[from] BadImpairment),
    #[error("burst {0} out of range 1..={MAX_BURST}")]
    BadBurst(usize),
    #[error("queue limit must be at least 1")]
    BadQueueLimit,
    #[error("both sides of the relay name interface {0:?}: it needs two different interfaces")]
    SameInterface(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("core {0} is not available to this process")]
    BadCore(usize),
    #[error("could not pin the relay thread to core {0}")]
    Pin(usize),
    #[error("spawning the relay thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the relay thread panicked")]
    Panicked,
}

/// Counters of one direction.
///
/// Every frame is accounted for:
/// `received + duplicated = dropped + overflow + forwarded + in_flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LaneStats {
    /// Frames received from the source port.
    pub received: u64,
    /// Frames (copies included) the destination port accepted.
    pub forwarded: u64,
    /// Frames lost on purpose (the `loss` probability).
    pub dropped: u64,
    /// Extra copies made (the `dup` probability).
    pub duplicated: u64,
    /// Frames held back to be overtaken (the `reorder` probability).
    pub reordered: u64,
    /// Frames dropped because the delay queue was full.
    pub overflow: u64,
    /// Duplicates not made because the buffer pool was empty.
    pub dup_failed: u64,
    /// Frames still queued or waiting for the destination port.
    pub in_flight: u64,
}

/// Counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayStats {
    pub a_to_b: LaneStats,
    pub b_to_a: LaneStats,
}

/// One direction: the delay queue, the staging burst towards the destination port,
/// and the counters the queue does not keep.
struct Lane<B> {
    queue: ImpairedQueue<B>,
    /// Due frames the destination port has not taken yet (at most one burst).
    pending: Vec<B>,
    received: u64,
    forwarded: u64,
    dup_failed: u64,
}

impl<B: PacketBuf> Lane<B> {
    fn new(cfg: &RelayConfig, dir: Direction) -> Result<Self, BadImpairment> {
        Ok(Lane {
            queue: ImpairedQueue::new(
                cfg.impairment,
                direction_seed(cfg.seed, dir),
                cfg.queue_limit,
            )?,
            pending: Vec::with_capacity(MAX_BURST),
            received: 0,
            forwarded: 0,
            dup_failed: 0,
        })
    }

    fn stats(&self) -> LaneStats {
        let q: ImpairStats = self.queue.stats();
        LaneStats {
            received: self.received,
            forwarded: self.forwarded,
            dropped: q.dropped,
            duplicated: q.duplicated,
            reordered: q.reordered,
            overflow: q.overflow,
            dup_failed: self.dup_failed,
            in_flight: (self.queue.len() + self.pending.len()) as u64,
        }
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.pending.is_empty()
    }

    /// Receives a burst from `src` into the queue, then sends what is due to `dst`.
    /// The clock is read after the receive, so a frame is never stamped earlier than
    /// it arrived (which would shorten its delay). Returns frames received plus sent.
    #[inline]
    fn step<P: Port<Buf = B>>(
        &mut self,
        src: &mut P,
        dst: &mut P,
        rx: &mut Vec<B>,
        burst: usize,
        clock: &mut impl FnMut() -> u64,
    ) -> usize {
        let got = src.rx_burst(rx, burst);
        self.received += got as u64;
        let now = clock();
        for buf in rx.drain(..) {
            let dup_failed = &mut self.dup_failed;
            let pushed = self.queue.push_with(now, buf, |orig| {
                let copy = src.alloc().and_then(|mut c| {
                    c.fill_from(orig.data()).ok()?;
                    Some(c)
                });
                if copy.is_none() {
                    *dup_failed += 1;
                }
                copy
            });
            // On Err the queue was full: it counted the overflow, and dropping the
            // returned frame gives its buffer back to the pool.
            drop(pushed);
        }
        while self.pending.len() < burst {
            match self.queue.pop(now) {
                Some(b) => self.pending.push(b),
                None => break,
            }
        }
        let mut sent = 0;
        if !self.pending.is_empty() {
            sent = dst.tx_burst(&mut self.pending);
            self.forwarded += sent as u64;
        }
        got + sent
    }
}

/// The relay: two ports and one impaired lane per direction.
pub struct Relay<P: Port> {
    a: P,
    b: P,
    a_to_b: Lane<P::Buf>,
    b_to_a: Lane<P::Buf>,
    rx: Vec<P::Buf>,
    burst: usize,
    yield_when_idle: bool,
}

impl<P: Port> std::fmt::Debug for Relay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("a", &self.a.mac())
            .field("b", &self.b.mac())
            .field("impairment", self.a_to_b.queue.impairment())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<P: Port> Relay<P> {
    /// A relay between `a` and `b`. Each port's buffer pool must hold at least
    /// `queue_limit + 2 * burst + 1` buffers, or the pool, not the queue, becomes the
    /// limit (frames then wait in the kernel ring instead of overflowing here).
    pub fn new(a: P, b: P, cfg: &RelayConfig) -> Result<Self, RelayError> {
        if cfg.burst == 0 || cfg.burst > MAX_BURST {
            return Err(RelayError::BadBurst(cfg.burst));
        }
        if cfg.queue_limit == 0 {
            return Err(RelayError::BadQueueLimit);
        }
        Ok(Relay {
            a,
            b,
            a_to_b: Lane::new(cfg, Direction::AToB)?,
            b_to_a: Lane::new(cfg, Direction::BToA)?,
            rx: Vec::with_capacity(MAX_BURST),
            burst: cfg.burst,
            yield_when_idle: cfg.yield_when_idle,
        })
    }

    /// One pass at the fixed time `now_ns` (any monotonic nanosecond clock; never
    /// decreasing between calls): a→b then b→a. Returns frames received plus frames
    /// sent (0: an idle pass). For a virtual clock; on a real one use
    /// [`poll_with`](Self::poll_with), which reads the clock after each receive.
    #[inline]
    pub fn poll(&mut self, now_ns: u64) -> usize {
        self.poll_with(|| now_ns)
    }

    /// One pass, reading the time from `clock` (monotonic nanoseconds) right after
    /// each direction's receive burst.
    #[inline]
    pub fn poll_with(&mut self, mut clock: impl FnMut() -> u64) -> usize {
        let burst = self.burst;
        let n = self
            .a_to_b
            .step(&mut self.a, &mut self.b, &mut self.rx, burst, &mut clock);
        n + self
            .b_to_a
            .step(&mut self.b, &mut self.a, &mut self.rx, burst, &mut clock)
    }

    /// Polls on the monotonic clock until `stop` is set (checked once per pass).
    pub fn run(&mut self, stop: &AtomicBool) {
        let start = Instant::now();
        let clock = || u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        while !stop.load(Ordering::Relaxed) {
            if self.poll_with(clock) == 0 && self.yield_when_idle && self.is_idle() {
                std::thread::yield_now();
            }
        }
    }

    /// Whether no frame is in flight in either direction.
    pub fn is_idle(&self) -> bool {
        self.a_to_b.is_idle() && self.b_to_a.is_idle()
    }

    /// When the next delayed frame becomes due, if any is queued.
    pub fn next_due(&self) -> Option<u64> {
        match (self.a_to_b.queue.next_due(), self.b_to_a.queue.next_due()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            a_to_b: self.a_to_b.stats(),
            b_to_a: self.b_to_a.stats(),
        }
    }

    /// Counters of the two ports (a, b).
    pub fn port_stats(&self) -> (PortStats, PortStats) {
        (self.a.stats(), self.b.stats())
    }

    pub fn impairment(&self) -> &Impairment {
        self.a_to_b.queue.impairment()
    }

    /// The ports (a, b).
    pub fn ports(&self) -> (&P, &P) {
        (&self.a, &self.b)
    }

    /// Gives the ports back (frames in flight are dropped).
    pub fn into_ports(self) -> (P, P) {
        (self.a, self.b)
    }
}

/// The AF_PACKET configuration the relay opens each interface with: the default rings,
/// promiscuous (the relay forwards frames for any MAC), and a pool large enough that
/// the delay queue, not the pool, is the limit.
pub fn afpacket_config(cfg: &RelayConfig) -> AfPacketConfig {
    AfPacketConfig {
        queues: 1,
        promiscuous: true,
        // The frame ring hands each frame over at once (V3 would hold a lightly loaded
        // block for its 1 ms retire timeout, adding that to every crossing).
        rx_ring: crate::port::afpacket::RxRing::V2,
        block_count: 512,
        pool_bufs: cfg
            .queue_limit
            .saturating_add(2 * cfg.burst.max(MAX_BURST))
            .saturating_add(64),
        ..AfPacketConfig::default()
    }
}

/// Opens an AF_PACKET port on each of `a` and `b` (in the calling thread's network
/// namespace) and builds a relay between them.
pub fn open_afpacket(
    a: &str,
    b: &str,
    cfg: &RelayConfig,
) -> Result<Relay<AfPacketPort>, RelayError> {
    if a == b {
        return Err(RelayError::SameInterface(a.to_string()));
    }
    // Validate before any socket is opened.
    cfg.impairment.validate()?;
    let pcfg = afpacket_config(cfg);
    let open = |iface: &str| -> Result<AfPacketPort, RelayError> {
        AfPacket::open(iface, &pcfg)?.pop().ok_or_else(|| {
            RelayError::Port(PortError::Config {
                iface: iface.to_string(),
                reason: "no queue was opened".into(),
            })
        })
    };
    let pa = open(a)?;
    let pb = open(b)?;
    Relay::new(pa, pb, cfg)
}

/// A relay running on its own thread; dropping the handle stops and joins it.
pub struct RelayHandle<P: Port + 'static> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Relay<P>, RelayError>>>,
}

impl<P: Port + 'static> std::fmt::Debug for RelayHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("stopping", &self.stop.load(Ordering::Relaxed))
            .finish()
    }
}

impl<P: Port + 'static> RelayHandle<P> {
    /// Runs `relay` on a new thread named `impair-relay`, pinned to `core` when given.
    pub fn spawn(mut relay: Relay<P>, core: Option<usize>) -> Result<Self, RelayError> {
        let core_id = match core {
            None => None,
            Some(c) => Some(
                core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|id| id.id == c)
                    .ok_or(RelayError::BadCore(c))?,
            ),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || {
                if let Some(id) = core_id {
                    if !core_affinity::set_for_current(id) {
                        return Err(RelayError::Pin(id.id));
                    }
                }
                relay.run(&flag);
                Ok(relay)
            })
            .map_err(RelayError::Spawn)?;
        Ok(RelayHandle {
            stop,
            thread: Some(thread),
        })
    }

    /// The flag that stops the relay (e.g. to register with a signal handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether the relay thread has ended (stopped, or failed to pin).
    pub fn is_finished(&self) -> bool {
        match &self.thread {
            Some(t) => t.is_finished(),
            None => true,
        }
    }

    /// Stops the relay, joins its thread and gives the relay back (for its counters).
    pub fn stop(mut self) -> Result<Relay<P>, RelayError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| RelayError::Panicked)?,
            None => Err(RelayError::Panicked),
        }
    }
}

impl<P: Port + 'static> Drop for RelayHandle<P> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sim::{SimClock, SimLink, SimLinkConfig, SimPort};

    /// host_a ⇄ (sim link) ⇄ relay ⇄ (sim link) ⇄ host_b, perfect links, one virtual
    /// clock; the relay is polled at the clock's time.
    struct Bench {
        clock: SimClock,
        host_a: SimPort,
        host_b: SimPort,
        relay: Relay<SimPort>,
    }

    fn bench(cfg: RelayConfig, link_limit: usize) -> Bench {
        let clock = SimClock::virtual_clock();
        let link = SimLinkConfig {
            clock: clock.clone(),
            queue_limit: link_limit,
            pool_buffers: 40_000,
            ..SimLinkConfig::default()
        };
        let (host_a, ra) = SimLink::pair(link.clone(), 1).unwrap();
        let (rb, host_b) = SimLink::pair(link, 2).unwrap();
        Bench {
            clock,
            host_a,
            host_b,
            relay: Relay::new(ra, rb, &cfg).unwrap(),
        }
    }

    fn numbered(p: &mut SimPort, seq: u32) -> PoolBufOf {
        let mut b = p.alloc().unwrap();
        let mut f = [0u8; 60];
        f[..4].copy_from_slice(&seq.to_be_bytes());
        b.fill_from(&f).unwrap();
        b
    }
    type PoolBufOf = <SimPort as Port>::Buf;

    fn seq_of(b: &PoolBufOf) -> u32 {
        u32::from_be_bytes([b.data()[0], b.data()[1], b.data()[2], b.data()[3]])
    }

    impl Bench {
        fn poll(&mut self) {
            self.relay.poll(self.clock.now_ns());
        }
        /// Sends `n` numbered frames from host a, one every `gap_ns`, polling the
        /// relay and collecting host b's arrivals; then drains for 10 ms.
        fn a_to_b(&mut self, n: u32, gap_ns: u64) -> Vec<(u32, u64)> {
            let mut got = Vec::new();
            let mut out = Vec::new();
            let mut collect = |b: &mut SimPort, now: u64, got: &mut Vec<(u32, u64)>| {
                b.rx_burst(&mut out, MAX_BURST);
                got.extend(out.drain(..).map(|f| (seq_of(&f), now)));
            };
            for i in 0..n {
                let mut burst = vec![numbered(&mut self.host_a, i)];
                assert_eq!(self.host_a.tx_burst(&mut burst), 1);
                self.poll();
                collect(&mut self.host_b, self.clock.now_ns(), &mut got);
                self.clock.advance(gap_ns);
            }
            for _ in 0..10_000 {
                self.poll();
                collect(&mut self.host_b, self.clock.now_ns(), &mut got);
                self.clock.advance(1_000);
            }
            got
        }
    }

    fn assert_accounted(s: &LaneStats) {
        assert_eq!(
            s.received + s.duplicated,
            s.dropped + s.overflow + s.forwarded + s.in_flight,
            "{s:?}"
        );
    }

    #[test]
    fn a_perfect_relay_forwards_both_ways_in_order() {
        let mut t = bench(RelayConfig::default(), 8192);
        let got = t.a_to_b(1000, 500);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..1000).collect::<Vec<_>>()
        );
        // And back: b → a.
        let mut burst: Vec<_> = (0..5).map(|i| numbered(&mut t.host_b, i)).collect();
        assert_eq!(t.host_b.tx_burst(&mut burst), 5);
        t.poll();
        let mut out = Vec::new();
        t.host_a.rx_burst(&mut out, MAX_BURST);
        assert_eq!(out.iter().map(seq_of).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        let s = t.relay.stats();
        assert_eq!((s.a_to_b.received, s.a_to_b.forwarded), (1000, 1000));
        assert_eq!((s.b_to_a.received, s.b_to_a.forwarded), (5, 5));
        assert_accounted(&s.a_to_b);
        assert_accounted(&s.b_to_a);
        assert!(t.relay.is_idle());
    }

    #[test]
    fn delay_and_jitter_hold_every_frame_at_least_the_delay() {
        let imp = Impairment {
            delay_ns: 2_000_000,
            jitter_ns: 500_000,
            ..Impairment::default()
        };
        let mut t = bench(
            RelayConfig {
                impairment: imp,
                ..RelayConfig::default()
            },
            8192,
        );
        let sent_at = |seq: u32| u64::from(seq) * 10_000;
        let got = t.a_to_b(300, 10_000);
        assert_eq!(got.len(), 300);
        for &(seq, at) in &got {
            let one_way = at - sent_at(seq);
            assert!(
                (2_000_000..=2_501_000).contains(&one_way),
                "frame {seq}: {one_way} ns"
            );
        }
    }

    #[test]
    fn measured_rates_follow_the_configuration_and_replay_by_seed() {
        let imp = Impairment {
            loss: 0.10,
            reorder: 0.25,
            dup: 0.05,
            ..Impairment::default()
        };
        let cfg = RelayConfig {
            impairment: imp,
            seed: 99,
            ..RelayConfig::default()
        };
        let run = |cfg: RelayConfig| {
            let mut t = bench(cfg, 8192);
            let got: Vec<u32> = t.a_to_b(20_000, 1_000).into_iter().map(|g| g.0).collect();
            (got, t.relay.stats())
        };
        let (got, s) = run(cfg);
        let n = 20_000.0;
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        let loss = 1.0 - unique.len() as f64 / n;
        let dup = (got.len() - unique.len()) as f64 / unique.len() as f64;
        let (mut late, mut max) = (0u32, None::<u32>);
        let mut seen = std::collections::HashSet::new();
        for &x in &got {
            if seen.insert(x) {
                late += u32::from(max.is_some_and(|m| x < m));
                max = Some(max.map_or(x, |m| m.max(x)));
            }
        }
        let reorder = f64::from(late) / unique.len() as f64;
        assert!((loss - 0.10).abs() < 0.01, "loss {loss}");
        assert!((dup - 0.05).abs() < 0.01, "dup {dup}");
        assert!((reorder - 0.25).abs() < 0.02, "reorder {reorder}");
        assert_eq!(s.a_to_b.received, 20_000);
        assert_eq!(s.a_to_b.forwarded, got.len() as u64);
        assert_accounted(&s.a_to_b);
        // Same seed, same fates; another seed, other fates.
        assert_eq!(run(cfg).0, got);
        assert_ne!(run(RelayConfig { seed: 100, ..cfg }).0, got);
    }

    #[test]
    fn directions_draw_from_different_streams() {
        assert_ne!(
            direction_seed(5, Direction::AToB),
            direction_seed(5, Direction::BToA)
        );
        assert_ne!(
            direction_seed(5, Direction::AToB),
            direction_seed(6, Direction::AToB)
        );
    }

    #[test]
    fn a_full_delay_queue_overflows_and_counts() {
        let cfg = RelayConfig {
            impairment: Impairment::delay(1_000_000),
            queue_limit: 10,
            ..RelayConfig::default()
        };
        let mut t = bench(cfg, 8192);
        let mut burst: Vec<_> = (0..25).map(|i| numbered(&mut t.host_a, i)).collect();
        assert_eq!(t.host_a.tx_burst(&mut burst), 25);
        t.poll();
        let s = t.relay.stats().a_to_b;
        assert_eq!((s.received, s.overflow, s.in_flight), (25, 15, 10));
        t.clock.advance(1_000_000);
        t.poll();
        let mut out = Vec::new();
        t.host_b.rx_burst(&mut out, MAX_BURST);
        assert_eq!(
            out.iter().map(seq_of).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_accounted(&t.relay.stats().a_to_b);
    }

    #[test]
    fn frames_the_destination_refuses_are_retried_in_order() {
        // The relay→b link takes 4 frames in flight; b drains it between passes.
        let mut t = bench(RelayConfig::default(), 4);
        let mut burst: Vec<_> = (0..20).map(|i| numbered(&mut t.host_a, i)).collect();
        // The a→relay link also holds only 4: send in fours.
        let mut got = Vec::new();
        let mut out = Vec::new();
        for _ in 0..50 {
            if !burst.is_empty() {
                t.host_a.tx_burst(&mut burst);
            }
            t.poll();
            t.host_b.rx_burst(&mut out, 2);
            got.extend(out.drain(..).map(|f| seq_of(&f)));
        }
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        let s = t.relay.stats().a_to_b;
        assert_eq!((s.received, s.forwarded, s.in_flight), (20, 20, 0));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mk = |cfg: RelayConfig| {
            let (a, b) = SimLink::pair(SimLinkConfig::default(), 1).unwrap();
            Relay::new(a, b, &cfg).err()
        };
        let bad_p = RelayConfig {
            impairment: Impairment {
                dup: -0.1,
                ..Impairment::default()
            },
            ..RelayConfig::default()
        };
        assert!(matches!(mk(bad_p), Some(RelayError::Impairment(_))));
        let nan = RelayConfig {
            impairment: Impairment {
                loss: f64::NAN,
                ..Impairment::default()
            },
            ..RelayConfig::default()
        };
        assert!(matches!(mk(nan), Some(RelayError::Impairment(_))));
        for burst in [0, MAX_BURST + 1] {
            let cfg = RelayConfig {
                burst,
                ..RelayConfig::default()
            };
            assert!(matches!(mk(cfg), Some(RelayError::BadBurst(_))));
        }
        let cfg = RelayConfig {
            queue_limit: 0,
            ..RelayConfig::default()
        };
        assert!(matches!(mk(cfg), Some(RelayError::BadQueueLimit)));
        assert!(matches!(
            open_afpacket("veth0", "veth0", &RelayConfig::default()),
            Err(RelayError::SameInterface(_))
        ));
        assert!(matches!(
            open_afpacket("nosuchif0", "nosuchif1", &RelayConfig::default()),
            Err(RelayError::Port(PortError::NoSuchInterface { .. }))
        ));
    }

    #[test]
    fn a_spawned_relay_runs_on_the_real_clock_and_stops() {
        let link = SimLinkConfig {
            clock: SimClock::real(),
            ..SimLinkConfig::default()
        };
        let (mut host_a, ra) = SimLink::pair(link.clone(), 1).unwrap();
        let (rb, mut host_b) = SimLink::pair(link, 2).unwrap();
        let cfg = RelayConfig {
            impairment: Impairment::delay(2_000_000),
            ..RelayConfig::default()
        };
        let h = RelayHandle::spawn(Relay::new(ra, rb, &cfg).unwrap(), None).unwrap();
        let t0 = Instant::now();
        let mut burst = vec![numbered(&mut host_a, 7)];
        assert_eq!(host_a.tx_burst(&mut burst), 1);
        let mut out = Vec::new();
        while out.is_empty() && t0.elapsed() < std::time::Duration::from_secs(5) {
            host_b.rx_burst(&mut out, MAX_BURST);
            std::thread::yield_now();
        }
        assert!(t0.elapsed() >= std::time::Duration::from_millis(2));
        assert_eq!(out.iter().map(seq_of).collect::<Vec<_>>(), [7]);
        assert!(!h.is_finished());
        let relay = h.stop().unwrap();
        assert_eq!(relay.stats().a_to_b.forwarded, 1);
        assert!(matches!(
            RelayHandle::spawn(Relay::new(host_a, host_b, &cfg).unwrap(), Some(usize::MAX)),
            Err(RelayError::BadCore(_))
        ));
    }
}
