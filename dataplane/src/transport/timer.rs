//! A hashed timer wheel with O(1) insert and cancel, driven by the caller's `now`.
//!
//! This module owns timer bookkeeping only: it stores a value with a deadline and hands
//! it back once `now` has passed the deadline. It must not read a clock or know what the
//! values mean.
//!
//! Layout: `slots` buckets of `tick_ns` each (both powers of two, so bucket arithmetic
//! is shifts and masks, no division on the fast path); a timer lives in
//! bucket `(deadline / tick) % slots` on an intrusive doubly linked list of indices into
//! one node slab, so insert and cancel are O(1) and allocate nothing once the slab has
//! grown to the peak number of live timers. Deadlines further than one revolution ahead
//! share a bucket with nearer ones and are simply skipped until their time comes.
//! An occupancy bitmap makes finding the next non-empty bucket cheap.

use super::Instant;

const NIL: u32 = u32::MAX;

/// Identifies one inserted timer, to cancel it. Stale handles (fired or cancelled) are
/// recognised by their generation and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    idx: u32,
    gen: u32,
}

#[derive(Debug)]
struct Node<T> {
    deadline: u64,
    prev: u32,
    next: u32,
    gen: u32,
    bucket: u32,
    value: Option<T>,
}

/// The wheel. `T` is what a timer carries back when it fires.
#[derive(Debug)]
pub struct TimerWheel<T> {
    tick_shift: u32,
    mask: u64,
    heads: Vec<u32>,
    occupied: Vec<u64>,
    nodes: Vec<Node<T>>,
    free: u32,
    /// Every bucket for ticks `< cursor` has been expired.
    cursor: u64,
    len: usize,
    /// A lower bound of the earliest deadline, or `None` if unknown (recompute).
    next_hint: Option<u64>,
}

impl<T> TimerWheel<T> {
    /// A wheel of `slots` buckets (rounded up to a power of two, at least 64) of
    /// `tick_ns` nanoseconds each (rounded down to a power of two, at least 1).
    pub fn new(tick_ns: u64, slots: usize) -> Self {
        let slots = slots.max(64).next_power_of_two();
        TimerWheel {
            tick_shift: 63 - tick_ns.max(1).leading_zeros(),
            mask: slots as u64 - 1,
            heads: vec![NIL; slots],
            occupied: vec![0; slots / 64],
            nodes: Vec::new(),
            free: NIL,
            cursor: 0,
            len: 0,
            next_hint: None,
        }
    }

    /// Live timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the wheel's own storage (for memory accounting).
    pub fn memory_bytes(&self) -> usize {
        self.heads.capacity() * 4
            + self.occupied.capacity() * 8
            + self.nodes.capacity() * core::mem::size_of::<Node<T>>()
    }

    fn bucket_of_tick(&self, tick: u64) -> u32 {
        (tick & self.mask) as u32
    }

    /// Schedules `value` for `deadline`. A deadline already past fires at the next
    /// [`expire`](Self::expire).
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerHandle {
        let deadline = deadline.as_nanos();
        let tick = (deadline >> self.tick_shift).max(self.cursor);
        let bucket = self.bucket_of_tick(tick);
        let idx = if self.free != NIL {
            let idx = self.free;
            let n = &mut self.nodes[idx as usize];
            self.free = n.next;
            n.deadline = deadline;
            n.bucket = bucket;
            n.value = Some(value);
            idx
        } else {
            self.nodes.push(Node {
                deadline,
                prev: NIL,
                next: NIL,
                gen: 0,
                bucket,
                value: Some(value),
            });
            (self.nodes.len() - 1) as u32
        };
        // Link at the head of the bucket.
        let head = self.heads[bucket as usize];
        {
            let n = &mut self.nodes[idx as usize];
            n.prev = NIL;
            n.next = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev = idx;
        }
        self.heads[bucket as usize] = idx;
        self.occupied[(bucket / 64) as usize] |= 1 << (bucket % 64);
        self.len += 1;
        if let Some(h) = self.next_hint {
            if deadline < h {
                self.next_hint = Some(deadline);
            }
        }
        TimerHandle {
            idx,
            gen: self.nodes[idx as usize].gen,
        }
    }

    fn unlink(&mut self, idx: u32) -> Option<T> {
        let (prev, next, bucket) = {
            let n = &self.nodes[idx as usize];
            (n.prev, n.next, n.bucket)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[bucket as usize] = next;
            if next == NIL {
                self.occupied[(bucket / 64) as usize] &= !(1 << (bucket % 64));
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[idx as usize];
        n.gen = n.gen.wrapping_add(1);
        n.next = self.free;
        n.prev = NIL;
        let v = n.value.take();
        self.free = idx;
        self.len -= 1;
        v
    }

    /// Cancels a timer; returns its value if it was still pending.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let n = self.nodes.get(handle.idx as usize)?;
        if n.gen != handle.gen || n.value.is_none() {
            return None;
        }
        let deadline = n.deadline;
        if self.next_hint == Some(deadline) {
            self.next_hint = None;
        }
        self.unlink(handle.idx)
    }

    /// Moves every timer whose deadline is `≤ now` into `out` (in no particular order).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let now = now.as_nanos();
        let now_tick = now >> self.tick_shift;
        if self.len == 0 {
            self.cursor = self.cursor.max(now_tick);
            return;
        }
        let slots = self.mask + 1;
        // Visit buckets of ticks cursor..=now_tick (at most one full revolution).
        let span = (now_tick.saturating_sub(self.cursor) + 1).min(slots);
        for t in 0..span {
            let bucket = self.bucket_of_tick(self.cursor + t);
            let mut idx = self.heads[bucket as usize];
            while idx != NIL {
                let (next, deadline) = {
                    let n = &self.nodes[idx as usize];
                    (n.next, n.deadline)
                };
                if deadline <= now {
                    if let Some(v) = self.unlink(idx) {
                        out.push(v);
                    }
                }
                idx = next;
            }
        }
        // Ticks before now_tick are done; now_tick's bucket may still get timers for
        // later in this tick, so it stays the cursor.
        self.cursor = self.cursor.max(now_tick);
        self.next_hint = None;
    }

    /// A lower bound of the earliest pending deadline (exact unless timers more than one
    /// revolution ahead share the first non-empty bucket), or `None` when empty.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        if let Some(h) = self.next_hint {
            return Some(Instant::from_nanos(h));
        }
        let slots = self.mask + 1;
        let horizon_end = (self.cursor + slots) << self.tick_shift;
        let mut best = u64::MAX;
        // First occupied bucket at or after the cursor, wrapping once.
        let start = self.bucket_of_tick(self.cursor) as u64;
        let mut off = 0u64;
        while off < slots {
            let b = ((start + off) & self.mask) as u32;
            let word = self.occupied[(b / 64) as usize] >> (b % 64);
            if word == 0 {
                // Skip to the next word boundary.
                off += 64 - u64::from(b % 64);
                continue;
            }
            let skip = u64::from(word.trailing_zeros());
            let b = ((start + off + skip) & self.mask) as u32;
            let mut idx = self.heads[b as usize];
            while idx != NIL {
                let n = &self.nodes[idx as usize];
                if n.deadline < horizon_end {
                    best = best.min(n.deadline);
                }
                idx = n.next;
            }
            if best != u64::MAX {
                break;
            }
            off += skip + 1;
        }
        if best == u64::MAX {
            // Every timer is beyond one revolution: scan them all.
            for n in &self.nodes {
                if n.value.is_some() {
                    best = best.min(n.deadline);
                }
            }
        }
        self.next_hint = Some(best);
        Some(Instant::from_nanos(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn at(ns: u64) -> Instant {
        Instant::from_nanos(ns)
    }

    #[test]
    fn fires_in_time_and_cancel_works() {
        let mut w = TimerWheel::new(1000, 64);
        let a = w.insert(at(5_000), 'a');
        let _b = w.insert(at(2_000), 'b');
        let _c = w.insert(at(10_000_000), 'c'); // many revolutions ahead
        assert_eq!(w.next_deadline(), Some(at(2_000)));
        let mut out = Vec::new();
        w.expire(at(1_999), &mut out);
        assert!(out.is_empty());
        w.expire(at(2_000), &mut out);
        assert_eq!(out, vec!['b']);
        assert_eq!(w.cancel(a), Some('a'));
        assert_eq!(w.cancel(a), None, "double cancel is a no-op");
        assert_eq!(w.next_deadline(), Some(at(10_000_000)));
        out.clear();
        w.expire(at(9_999_999), &mut out);
        assert!(out.is_empty());
        w.expire(at(10_000_000), &mut out);
        assert_eq!(out, vec!['c']);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn past_deadlines_fire_at_next_expire() {
        let mut w = TimerWheel::new(100, 64);
        let mut out = Vec::new();
        w.expire(at(1_000_000), &mut out);
        w.insert(at(5), 1u32);
        w.expire(at(1_000_001), &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn matches_a_reference_model_under_random_operations() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
        let mut w = TimerWheel::new(100, 128);
        let mut live: Vec<(TimerHandle, u64, u32)> = Vec::new();
        let mut now = 0u64;
        let mut out = Vec::new();
        for id in 0..20_000u32 {
            match rng.gen_range(0..10) {
                0..=4 => {
                    let d = now + rng.gen_range(0..40_000);
                    let h = w.insert(at(d), id);
                    live.push((h, d, id));
                }
                5 | 6 if !live.is_empty() => {
                    let i = rng.gen_range(0..live.len());
                    let (h, _, v) = live.swap_remove(i);
                    assert_eq!(w.cancel(h), Some(v));
                }
                _ => {
                    if let Some(next) = w.next_deadline() {
                        let true_min = live.iter().map(|x| x.1).min().unwrap();
                        assert!(next.as_nanos() <= true_min, "hint must not be late");
                    }
                    now += rng.gen_range(0..3_000);
                    out.clear();
                    w.expire(at(now), &mut out);
                    let mut want: Vec<u32> =
                        live.iter().filter(|x| x.1 <= now).map(|x| x.2).collect();
                    live.retain(|x| x.1 > now);
                    want.sort_unstable();
                    out.sort_unstable();
                    assert_eq!(out, want);
                }
            }
            assert_eq!(w.len(), live.len());
        }
    }
}
