//! `sim`: an in-memory link with seeded loss, reordering, duplication and delay.
//!
//! This module owns (a) the reusable impairment model — [`Impairment`] and
//! [`ImpairedQueue`], driven by a caller-supplied `now` so the veth impairment relay can
//! reuse it with wall time —, (b) the [`SimClock`] (virtual, advanced by hand, or real),
//! and (c) [`SimLink::pair`], two [`SimPort`]s implementing [`Port`] whose frames cross
//! in memory through one impaired queue per direction. It must not know about RPCs or
//! parse frames; everything random comes from seeded `rand_pcg`, so a run replays.
//!
//! Semantics per frame pushed into an [`ImpairedQueue`]:
//! - lost with probability `loss`;
//! - otherwise delivered at `now + delay_ns + U[0, jitter_ns]`;
//! - with probability `dup`, a second copy is delivered with its own delay sample;
//! - with probability `reorder`, the frame is held back and delivered just after the
//!   next frame pushed that is not itself held back (so that one overtakes it); if no
//!   frame follows within [`REORDER_HOLD_NS`] past its own delivery time, it is
//!   delivered then.
//!   (Jitter larger than the spacing of frames reorders too.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use super::{BufPool, PacketBuf, PoolBuf, Port, PortStats};
use crate::wire::MacAddr;

/// How long past its own delivery time a reordered frame waits for a successor.
pub const REORDER_HOLD_NS: u64 = 100_000;

/// Link impairments (probabilities in `[0, 1]`, times in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Impairment {
    pub loss: f64,
    pub reorder: f64,
    pub dup: f64,
    pub delay_ns: u64,
    pub jitter_ns: u64,
}

/// An impairment that is not a valid distribution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("impairment {field} = {value} is not a probability in [0, 1]")]
pub struct BadImpairment {
    pub field: &'static str,
    pub value: f64,
}

impl Impairment {
    /// A perfect link with a fixed delay.
    pub fn delay(delay_ns: u64) -> Self {
        Impairment {
            delay_ns,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), BadImpairment> {
        for (field, value) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("dup", self.dup),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(BadImpairment { field, value });
            }
        }
        Ok(())
    }
}

/// Counters of one impaired queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImpairStats {
    pub pushed: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delivered: u64,
    /// Frames refused because the queue was at its limit.
    pub overflow: u64,
}

struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A queue that applies an [`Impairment`] to what passes through it.
pub struct ImpairedQueue<T> {
    imp: Impairment,
    rng: Pcg64,
    heap: BinaryHeap<Entry<T>>,
    held: std::collections::VecDeque<Entry<T>>,
    seq: u64,
    limit: usize,
    stats: ImpairStats,
}

impl<T> std::fmt::Debug for ImpairedQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImpairedQueue")
            .field("imp", &self.imp)
            .field("queued", &self.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<T> ImpairedQueue<T> {
    /// A queue holding at most `limit` frames in flight, seeded with `seed`.
    pub fn new(imp: Impairment, seed: u64, limit: usize) -> Result<Self, BadImpairment> {
        imp.validate()?;
        Ok(ImpairedQueue {
            imp,
            rng: Pcg64::seed_from_u64(seed),
            heap: BinaryHeap::new(),
            held: std::collections::VecDeque::new(),
            seq: 0,
            limit: limit.max(1),
            stats: ImpairStats::default(),
        })
    }

    pub fn impairment(&self) -> &Impairment {
        &self.imp
    }

    pub fn stats(&self) -> ImpairStats {
        self.stats
    }

    /// Frames in flight (held one included).
    pub fn len(&self) -> usize {
        self.heap.len() + self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether another frame fits.
    pub fn has_room(&self) -> bool {
        self.len() < self.limit
    }

    fn delay_sample(&mut self, now: u64) -> u64 {
        let j = if self.imp.jitter_ns > 0 {
            self.rng.gen_range(0..=self.imp.jitter_ns)
        } else {
            0
        };
        now.saturating_add(self.imp.delay_ns).saturating_add(j)
    }

    fn enqueue(&mut self, at: u64, item: T) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            item,
        });
    }

    /// Pushes a frame sent at `now`; `dup` makes the copy when the frame is duplicated
    /// (returning `None` skips the duplicate). Returns `Err(item)` when the queue is full.
    pub fn push_with(
        &mut self,
        now: u64,
        item: T,
        dup: impl FnOnce(&T) -> Option<T>,
    ) -> Result<(), T> {
        if !self.has_room() {
            self.stats.overflow += 1;
            return Err(item);
        }
        self.stats.pushed += 1;
        if self.rng.gen_bool(self.imp.loss) {
            self.stats.dropped += 1;
            return Ok(());
        }
        let at = self.delay_sample(now);
        let copy = if self.rng.gen_bool(self.imp.dup) {
            dup(&item)
        } else {
            None
        };
        if self.rng.gen_bool(self.imp.reorder) {
            self.stats.reordered += 1;
            self.seq += 1;
            self.held.push_back(Entry {
                at,
                seq: self.seq,
                item,
            });
        } else {
            self.enqueue(at, item);
            // This frame overtakes the ones held back before it.
            let mut k = 1;
            while let Some(mut h) = self.held.pop_front() {
                h.at = h.at.max(at) + k;
                k += 1;
                self.heap.push(h);
            }
        }
        if let Some(c) = copy {
            self.stats.duplicated += 1;
            let at2 = self.delay_sample(now);
            self.enqueue(at2, c);
        }
        Ok(())
    }

    /// Pops a frame due at `now`, if any.
    pub fn pop(&mut self, now: u64) -> Option<T> {
        while self
            .held
            .front()
            .is_some_and(|h| now >= h.at.saturating_add(REORDER_HOLD_NS))
        {
            if let Some(mut h) = self.held.pop_front() {
                h.at = h.at.saturating_add(REORDER_HOLD_NS);
                self.heap.push(h);
            }
        }
        if self.heap.peek().is_some_and(|e| e.at <= now) {
            self.stats.delivered += 1;
            return self.heap.pop().map(|e| e.item);
        }
        None
    }

    /// When the next frame becomes due, if any is in flight.
    pub fn next_due(&self) -> Option<u64> {
        let h = self
            .held
            .iter()
            .map(|h| h.at.saturating_add(REORDER_HOLD_NS))
            .min();
        let q = self.heap.peek().map(|e| e.at);
        match (h, q) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<T: Clone> ImpairedQueue<T> {
    /// [`push_with`](Self::push_with) duplicating by `Clone`.
    pub fn push(&mut self, now: u64, item: T) -> Result<(), T> {
        self.push_with(now, item, |t| Some(t.clone()))
    }
}

enum ClockKind {
    Virtual(AtomicU64),
    Real(std::time::Instant),
}

/// A shared clock in nanoseconds: virtual (advanced by hand) or real (monotonic).
#[derive(Clone)]
pub struct SimClock(Arc<ClockKind>);

impl std::fmt::Debug for SimClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            ClockKind::Virtual(_) => write!(f, "SimClock::Virtual({})", self.now_ns()),
            ClockKind::Real(_) => write!(f, "SimClock::Real({})", self.now_ns()),
        }
    }
}

impl SimClock {
    /// A virtual clock at 0.
    pub fn virtual_clock() -> Self {
        SimClock(Arc::new(ClockKind::Virtual(AtomicU64::new(0))))
    }
    /// Wall time since this call.
    pub fn real() -> Self {
        SimClock(Arc::new(ClockKind::Real(std::time::Instant::now())))
    }
    pub fn now_ns(&self) -> u64 {
        match &*self.0 {
            ClockKind::Virtual(t) => t.load(AtomicOrdering::Acquire),
            ClockKind::Real(start) => start.elapsed().as_nanos() as u64,
        }
    }
    pub fn is_virtual(&self) -> bool {
        matches!(&*self.0, ClockKind::Virtual(_))
    }
    /// Moves a virtual clock forward to `t` (never backwards); no-op on a real clock.
    pub fn advance_to(&self, t: u64) {
        if let ClockKind::Virtual(v) = &*self.0 {
            v.fetch_max(t, AtomicOrdering::AcqRel);
        }
    }
    /// Moves a virtual clock forward by `ns`; no-op on a real clock.
    pub fn advance(&self, ns: u64) {
        if let ClockKind::Virtual(v) = &*self.0 {
            v.fetch_add(ns, AtomicOrdering::AcqRel);
        }
    }
}

/// Configuration of a [`SimLink`].
#[derive(Debug, Clone)]
pub struct SimLinkConfig {
    /// Applied to each direction (each with its own random stream).
    pub impairment: Impairment,
    pub clock: SimClock,
    /// Buffers shared by both ends (frames in flight hold one each).
    pub pool_buffers: usize,
    pub buf_size: usize,
    /// Frames in flight per direction before `tx_burst` refuses more.
    pub queue_limit: usize,
}

impl Default for SimLinkConfig {
    fn default() -> Self {
        SimLinkConfig {
            impairment: Impairment::default(),
            clock: SimClock::virtual_clock(),
            pool_buffers: 8192,
            buf_size: super::buf::DEFAULT_BUF_SIZE,
            queue_limit: 8192,
        }
    }
}

type Queue = Arc<Mutex<ImpairedQueue<PoolBuf>>>;

/// Namespace of the link constructor.
#[derive(Debug)]
pub struct SimLink;

impl SimLink {
    /// Two connected ports: frames sent on one arrive on the other, impaired.
    pub fn pair(cfg: SimLinkConfig, seed: u64) -> Result<(SimPort, SimPort), BadImpairment> {
        let pool = BufPool::new(cfg.pool_buffers, cfg.buf_size);
        let a_to_b: Queue = Arc::new(Mutex::new(ImpairedQueue::new(
            cfg.impairment,
            seed ^ 0x5eed_a2b0,
            cfg.queue_limit,
        )?));
        let b_to_a: Queue = Arc::new(Mutex::new(ImpairedQueue::new(
            cfg.impairment,
            seed ^ 0x5eed_b2a0,
            cfg.queue_limit,
        )?));
        let a = SimPort {
            mac: MacAddr::local(seed.wrapping_mul(2).wrapping_add(1)),
            tx: Arc::clone(&a_to_b),
            rx: Arc::clone(&b_to_a),
            pool: pool.clone(),
            clock: cfg.clock.clone(),
            stats: PortStats::default(),
        };
        let b = SimPort {
            mac: MacAddr::local(seed.wrapping_mul(2).wrapping_add(2)),
            tx: b_to_a,
            rx: a_to_b,
            pool,
            clock: cfg.clock,
            stats: PortStats::default(),
        };
        Ok((a, b))
    }
}

/// One end of a [`SimLink`].
pub struct SimPort {
    mac: MacAddr,
    tx: Queue,
    rx: Queue,
    pool: BufPool,
    clock: SimClock,
    stats: PortStats,
}

impl std::fmt::Debug for SimPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPort").field("mac", &self.mac).finish()
    }
}

impl SimPort {
    /// When the next frame for this port becomes due, if any is in flight.
    pub fn next_rx_due(&self) -> Option<u64> {
        self.rx.lock().ok().and_then(|q| q.next_due())
    }
    /// Impairment counters of the direction this port sends into.
    pub fn tx_impair_stats(&self) -> ImpairStats {
        self.tx.lock().map(|q| q.stats()).unwrap_or_default()
    }
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }
}

impl Port for SimPort {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let now = self.clock.now_ns();
        let Ok(mut q) = self.rx.lock() else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let Some(b) = q.pop(now) else {
                break;
            };
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += b.len() as u64;
            out.push(b);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, bufs: &mut Vec<PoolBuf>) -> usize {
        let now = self.clock.now_ns();
        let Ok(mut q) = self.tx.lock() else {
            return 0;
        };
        let mut accepted = 0;
        let mut rest = bufs.drain(..);
        let mut refused = Vec::new();
        for b in rest.by_ref() {
            let len = b.len() as u64;
            let pool = &self.pool;
            match q.push_with(now, b, |orig| {
                let mut c = pool.alloc()?;
                c.fill_from(orig.data()).ok()?;
                Some(c)
            }) {
                Ok(()) => {
                    accepted += 1;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += len;
                }
                Err(b) => {
                    refused.push(b);
                    break;
                }
            }
        }
        refused.extend(rest);
        drop(q);
        *bufs = refused;
        accepted
    }

    fn alloc(&mut self) -> Option<PoolBuf> {
        self.pool.alloc_counted(&mut self.stats)
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `n` numbered frames 1 µs apart and drains them; returns
    /// (delivered sequence numbers in arrival order, stats).
    fn run(imp: Impairment, seed: u64, n: u64) -> (Vec<u64>, ImpairStats) {
        let mut q = ImpairedQueue::new(imp, seed, usize::MAX).unwrap();
        let mut got = Vec::new();
        let mut now = 0;
        for i in 0..n {
            q.push(now, i).unwrap();
            now += 1_000;
            while let Some(x) = q.pop(now) {
                got.push(x);
            }
        }
        now += 10_000_000;
        while let Some(x) = q.pop(now) {
            got.push(x);
        }
        assert!(q.is_empty());
        (got, q.stats())
    }

    fn close(measured: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (measured - want).abs() <= tol,
            "{what}: measured {measured:.4}, configured {want:.4}"
        );
    }

    #[test]
    fn measured_rates_match_configuration() {
        let imp = Impairment {
            loss: 0.10,
            reorder: 0.25,
            dup: 0.05,
            delay_ns: 20_000,
            jitter_ns: 0,
        };
        let n = 100_000u64;
        let (got, st) = run(imp, 42, n);
        let loss = 1.0 - {
            let mut u = got.clone();
            u.sort_unstable();
            u.dedup();
            u.len() as f64 / n as f64
        };
        close(loss, 0.10, 0.01, "loss");
        let dups = got.len() as f64 - (n as f64 * (1.0 - loss));
        close(dups / (n as f64 * (1.0 - loss)), 0.05, 0.01, "dup");
        // A frame is reordered if a frame sent after it arrived before it.
        let mut max_seen = None;
        let mut late = 0u64;
        let mut firsts = 0u64;
        let mut seen = std::collections::HashSet::new();
        for &x in &got {
            if !seen.insert(x) {
                continue;
            }
            firsts += 1;
            if max_seen.is_some_and(|m| x < m) {
                late += 1;
            }
            max_seen = Some(max_seen.map_or(x, |m: u64| m.max(x)));
        }
        close(late as f64 / firsts as f64, 0.25, 0.015, "reorder");
        assert_eq!(st.pushed, n);
        assert_eq!(st.delivered, got.len() as u64);
    }

    #[test]
    fn same_seed_same_run_and_delay_is_applied() {
        let imp = Impairment {
            loss: 0.2,
            reorder: 0.2,
            dup: 0.2,
            delay_ns: 5_000,
            jitter_ns: 3_000,
        };
        assert_eq!(run(imp, 7, 5_000).0, run(imp, 7, 5_000).0);
        assert_ne!(run(imp, 7, 5_000).0, run(imp, 8, 5_000).0);
        let mut q = ImpairedQueue::new(Impairment::delay(5_000), 1, 10).unwrap();
        q.push(100, 'x').unwrap();
        assert_eq!(q.pop(5_099), None);
        assert_eq!(q.next_due(), Some(5_100));
        assert_eq!(q.pop(5_100), Some('x'));
    }

    #[test]
    fn bad_probabilities_are_refused() {
        let imp = Impairment {
            loss: 1.5,
            ..Impairment::default()
        };
        assert!(ImpairedQueue::<u8>::new(imp, 0, 1).is_err());
    }

    #[test]
    fn sim_ports_carry_frames_with_delay_and_limits() {
        let clock = SimClock::virtual_clock();
        let cfg = SimLinkConfig {
            impairment: Impairment::delay(1_000),
            clock: clock.clone(),
            pool_buffers: 8,
            buf_size: 256,
            queue_limit: 4,
        };
        let (mut a, mut b) = SimLink::pair(cfg, 3).unwrap();
        let mut out = Vec::new();
        for i in 0..6u8 {
            let mut buf = a.alloc().unwrap();
            buf.fill_from(&[i; 10]).unwrap();
            out.push(buf);
        }
        assert_eq!(a.tx_burst(&mut out), 4, "queue limit");
        assert_eq!(out.len(), 2);
        out.clear();
        let mut rx = Vec::new();
        assert_eq!(b.rx_burst(&mut rx, 32), 0, "not due yet");
        assert_eq!(b.next_rx_due(), Some(1_000));
        clock.advance(1_000);
        assert_eq!(b.rx_burst(&mut rx, 32), 4);
        assert_eq!(rx[3].data(), &[3u8; 10]);
        assert_eq!(b.stats().rx_packets, 4);
        assert_eq!(a.stats().tx_packets, 4);
        rx.clear();
        assert_eq!(a.pool().available(), 8, "buffers return to the pool");
    }
}
