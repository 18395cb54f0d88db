//! Fragment bookkeeping of one message: the sending side ([`MsgSender`]: which
//! fragments are acknowledged, which are due, when each was last sent) and the
//! receiving side ([`MsgReceiver`]: reassembly with a received-bitmap).
//!
//! This module owns fragment arithmetic and the selective-ack bitmap format (bit `k` of
//! byte `j` is fragment `8j + k`). It must not decide *when* to send or acknowledge,
//! nor charge memory budgets (the endpoint does both).

use super::{Instant, RxDrop};

/// Buffers above this capacity are freed when the message is done, so a slot that once
/// carried a big message does not pin its memory.
const SHRINK_ABOVE: usize = 64 << 10;

/// A set of fragment indexes, inline for messages of ≤ 64 fragments.
#[derive(Debug, Default)]
pub(crate) struct FragSet {
    small: u64,
    big: Vec<u64>,
    count: u16,
    ones: u16,
}

impl FragSet {
    #[inline]
    fn words(&self) -> usize {
        usize::from(self.count).div_ceil(64)
    }
    #[inline]
    fn is_small(&self) -> bool {
        self.count <= 64
    }
    /// Empties the set and sizes it for `count` fragments.
    #[inline]
    pub fn reset(&mut self, count: u16) {
        self.count = count;
        self.ones = 0;
        self.small = 0;
        if !self.is_small() {
            let w = self.words();
            self.big.clear();
            self.big.resize(w, 0);
        }
    }
    /// Makes the set `{0}` of a one-fragment message (`full`) or the empty set of one.
    #[inline]
    pub fn reset_single(&mut self, full: bool) {
        self.count = 1;
        self.ones = u16::from(full);
        self.small = u64::from(full);
    }
    /// Fills the set with `0..count`.
    #[inline]
    pub fn fill(&mut self) {
        let c = self.count;
        if self.is_small() {
            self.small = if c == 64 { u64::MAX } else { (1u64 << c) - 1 };
        } else {
            for (i, w) in self.big.iter_mut().enumerate() {
                let lo = i * 64;
                let n = (usize::from(c) - lo).min(64);
                *w = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            }
        }
        self.ones = c;
    }
    #[inline]
    fn word_mut(&mut self, i: u16) -> Option<&mut u64> {
        if i >= self.count {
            return None;
        }
        if self.is_small() {
            Some(&mut self.small)
        } else {
            self.big.get_mut(usize::from(i / 64))
        }
    }
    #[inline]
    pub fn contains(&self, i: u16) -> bool {
        if i >= self.count {
            return false;
        }
        let w = if self.is_small() {
            self.small
        } else {
            self.big.get(usize::from(i / 64)).copied().unwrap_or(0)
        };
        w & (1 << (i % 64)) != 0
    }
    /// Adds `i`; returns true if it was not there.
    #[inline]
    pub fn insert(&mut self, i: u16) -> bool {
        let Some(w) = self.word_mut(i) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.ones += 1;
        true
    }
    /// Removes `i`; returns true if it was there.
    #[inline]
    pub fn remove(&mut self, i: u16) -> bool {
        let Some(w) = self.word_mut(i) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        if *w & bit == 0 {
            return false;
        }
        *w &= !bit;
        self.ones -= 1;
        true
    }
    #[inline]
    pub fn len(&self) -> u16 {
        self.ones
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.ones == self.count
    }
    /// Smallest member `≥ from`.
    #[inline]
    pub fn first_from(&self, from: u16) -> Option<u16> {
        if from >= self.count || self.ones == 0 {
            return None;
        }
        if self.is_small() {
            let w = self.small >> from;
            return (w != 0).then(|| from + w.trailing_zeros() as u16);
        }
        let mut wi = usize::from(from / 64);
        let mut w = self.big.get(wi).copied().unwrap_or(0) >> (from % 64) << (from % 64);
        loop {
            if w != 0 {
                return Some((wi * 64) as u16 + w.trailing_zeros() as u16);
            }
            wi += 1;
            w = *self.big.get(wi)?;
        }
    }
    /// Writes the set as a bitmap (bit k of byte j = fragment 8j+k); returns bytes written.
    pub fn write_bitmap(&self, out: &mut [u8]) -> usize {
        let n = usize::from(self.count).div_ceil(8).min(out.len());
        for (j, b) in out.iter_mut().take(n).enumerate() {
            let word = if self.is_small() {
                self.small
            } else {
                self.big.get(j / 8).copied().unwrap_or(0)
            };
            *b = (word >> ((j % 8) * 8)) as u8;
        }
        n
    }
    fn memory_bytes(&self) -> usize {
        self.big.capacity() * 8
    }
}

/// The sending side of one message.
#[derive(Debug, Default)]
pub(crate) struct MsgSender {
    pub buf: Vec<u8>,
    pub count: u16,
    chunk: usize,
    acked: FragSet,
    to_send: FragSet,
    cursor: u16,
    /// Time each fragment was last sent (messages of more than one fragment only).
    sent_at: Vec<u64>,
    /// A transmit item for this sender is in the endpoint's queue.
    pub queued: bool,
}

impl MsgSender {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a copy of `payload`, split in `chunk`-byte fragments; every fragment due.
    pub fn load(&mut self, payload: &[u8], chunk: usize) {
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        self.chunk = chunk.max(1);
        self.cursor = 0;
        if payload.len() <= self.chunk {
            // One fragment (the common case): due, not acknowledged, no send times.
            self.count = 1;
            self.acked.reset_single(false);
            self.to_send.reset_single(true);
            return;
        }
        self.count = if payload.len() <= self.chunk {
            1
        } else {
            payload.len().div_ceil(self.chunk) as u16
        };
        self.acked.reset(self.count);
        self.to_send.reset(self.count);
        self.to_send.fill();
        self.cursor = 0;
        if self.count > 1 {
            self.sent_at.clear();
            self.sent_at.resize(usize::from(self.count), 0);
        }
    }

    /// Forgets the message (frees the buffer if it was big).
    pub fn clear(&mut self) {
        if self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
            self.sent_at = Vec::new();
        }
        self.buf.clear();
        self.count = 0;
        self.acked.reset(0);
        self.to_send.reset(0);
        self.queued = false;
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of fragment `i`.
    #[inline]
    pub fn fragment(&self, i: u16) -> &[u8] {
        let start = usize::from(i) * self.chunk;
        let end = (start + self.chunk).min(self.buf.len());
        self.buf.get(start..end).unwrap_or(&[])
    }

    /// Whether any fragment is due.
    #[inline]
    pub fn has_due(&self) -> bool {
        self.to_send.len() > 0
    }

    /// Takes the next due fragment: `(index, last_of_round)`, where `last_of_round` means
    /// nothing else is due after it (the packet should ask for an ack).
    #[inline]
    pub fn next_due(&mut self, now: Instant) -> Option<(u16, bool)> {
        if self.count == 1 {
            // One fragment: no cursor, no send times (those serve multi-fragment acks).
            return self.to_send.remove(0).then_some((0, true));
        }
        let i = self
            .to_send
            .first_from(self.cursor)
            .or_else(|| self.to_send.first_from(0))?;
        self.to_send.remove(i);
        self.cursor = i + 1;
        if let Some(t) = self.sent_at.get_mut(usize::from(i)) {
            *t = now.as_nanos();
        }
        Some((i, !self.has_due()))
    }

    /// Marks the fragments set in `bitmap` as acknowledged.
    pub fn ack_bitmap(&mut self, bitmap: &[u8]) {
        for (j, &b) in bitmap.iter().enumerate() {
            let mut bits = b;
            while bits != 0 {
                let k = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Ok(i) = u16::try_from(j * 8 + k) else {
                    return;
                };
                if i >= self.count {
                    return;
                }
                if self.acked.insert(i) {
                    self.to_send.remove(i);
                }
            }
        }
    }

    /// Everything acknowledged.
    pub fn ack_all(&mut self) {
        self.acked.fill();
        self.to_send.reset(self.count);
    }

    #[inline]
    pub fn all_acked(&self) -> bool {
        self.count > 0 && self.acked.is_full()
    }

    /// After an ack triggered by fragment `trigger`: every fragment sent no later than
    /// the trigger and still unacknowledged is presumed lost and made due again.
    /// Returns how many became due.
    pub fn requeue_lost_before(&mut self, trigger: u16) -> u16 {
        let Some(&t) = self.sent_at.get(usize::from(trigger)) else {
            return 0;
        };
        let mut n = 0;
        for i in 0..self.count {
            let sent = self.sent_at.get(usize::from(i)).copied().unwrap_or(0);
            if sent != 0 && sent <= t && !self.acked.contains(i) && self.to_send.insert(i) {
                n += 1;
            }
        }
        if n > 0 {
            self.cursor = 0;
        }
        n
    }

    /// Makes only the last unacknowledged fragment due: a probe whose ack (it ends the
    /// round, so it asks for one) tells exactly which fragments are missing. Returns
    /// how many became due (0 or 1).
    pub fn requeue_probe(&mut self) -> u16 {
        let Some(last) = (0..self.count).rev().find(|&i| !self.acked.contains(i)) else {
            return 0;
        };
        self.cursor = 0;
        u16::from(self.to_send.insert(last))
    }

    /// Makes up to `burst` unacknowledged fragments due (lowest first); the last
    /// unacknowledged fragment is always among them so the round ends with an ack
    /// request. Returns how many became due.
    pub fn requeue_unacked(&mut self, burst: u16) -> u16 {
        let mut n = 0;
        let mut last_unacked = None;
        for i in 0..self.count {
            if !self.acked.contains(i) {
                last_unacked = Some(i);
                if n < burst.saturating_sub(1).max(1) && self.to_send.insert(i) {
                    n += 1;
                }
            }
        }
        if let Some(i) = last_unacked {
            if self.to_send.insert(i) {
                n += 1;
            }
        }
        self.cursor = 0;
        n
    }

    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity()
            + self.sent_at.capacity() * 8
            + self.acked.memory_bytes()
            + self.to_send.memory_bytes()
    }
}

/// What [`MsgReceiver::accept`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    New,
    Duplicate,
}

/// The receiving side of one message.
#[derive(Debug, Default)]
pub(crate) struct MsgReceiver {
    pub buf: Vec<u8>,
    len: u32,
    count: u16,
    chunk: u32,
    got: FragSet,
    active: bool,
    /// Bytes charged to the reassembly budgets for this message (the endpoint sets it).
    pub charged: usize,
}

impl MsgReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Starts a message of `count` fragments and `len` bytes.
    pub fn begin(&mut self, count: u16, len: u32) {
        self.active = true;
        self.len = len;
        self.count = count;
        self.chunk = 0;
        self.got.reset(count);
        self.buf.clear();
        if count > 1 {
            self.buf.resize(len as usize, 0);
        }
    }

    /// Forgets the message (frees the buffer if it was big).
    pub fn clear(&mut self) {
        if self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        }
        self.buf.clear();
        self.active = false;
        self.charged = 0;
        self.count = 0;
        self.got.reset(0);
    }

    /// Stores fragment `index`. The header view already guaranteed `index < count`, a
    /// non-empty payload no longer than `len`; here the fragment must agree with the
    /// message begun and with the chunk size of the fragments seen before.
    pub fn accept(
        &mut self,
        index: u16,
        count: u16,
        len: u32,
        payload: &[u8],
    ) -> Result<Accepted, RxDrop> {
        if !self.active || count != self.count || len != self.len {
            return Err(RxDrop::BadFragment);
        }
        if self.got.contains(index) {
            return Ok(Accepted::Duplicate);
        }
        if count == 1 {
            // The header check guaranteed payload.len() == len.
            self.buf.clear();
            self.buf.extend_from_slice(payload);
            self.got.insert(0);
            return Ok(Accepted::New);
        }
        let plen = payload.len() as u64;
        let len64 = u64::from(len);
        let others = u64::from(count - 1);
        let chunk = if index + 1 < count {
            plen
        } else {
            let rest = len64 - plen;
            if !rest.is_multiple_of(others) {
                return Err(RxDrop::BadFragment);
            }
            rest / others
        };
        // Equal chunks except a shorter (or equal), non-empty last one.
        if chunk == 0 || chunk * others >= len64 || chunk * (others + 1) < len64 {
            return Err(RxDrop::BadFragment);
        }
        if self.chunk != 0 && u64::from(self.chunk) != chunk {
            return Err(RxDrop::BadFragment);
        }
        self.chunk = chunk as u32;
        let start = (u64::from(index) * chunk) as usize;
        let Some(dst) = self.buf.get_mut(start..start + payload.len()) else {
            return Err(RxDrop::BadFragment);
        };
        dst.copy_from_slice(payload);
        self.got.insert(index);
        Ok(Accepted::New)
    }

    #[inline]
    pub fn is_complete(&self) -> bool {
        self.active && self.got.is_full()
    }

    /// The received-bitmap, for a selective ack.
    pub fn write_bitmap(&self, out: &mut [u8]) -> usize {
        self.got.write_bitmap(out)
    }

    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity() + self.got.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_fragment_sets_match_the_general_reset() {
        for full in [false, true] {
            let mut a = FragSet::default();
            a.reset(200);
            a.fill();
            a.reset_single(full);
            let mut b = FragSet::default();
            b.reset(1);
            if full {
                b.fill();
            }
            assert_eq!((a.count, a.ones, a.small), (b.count, b.ones, b.small));
            assert_eq!(a.contains(0), full);
            assert_eq!(a.first_from(0), full.then_some(0));
        }
        let mut tx = MsgSender::new();
        tx.load(&[1; 3000], 1440);
        tx.load(b"one", 1440);
        assert_eq!((tx.count, tx.len(), tx.fragment(0)), (1, 3, &b"one"[..]));
        assert_eq!(tx.next_due(Instant::from_nanos(1)), Some((0, true)));
        assert!(!tx.has_due() && !tx.all_acked());
        tx.ack_bitmap(&[1]);
        assert!(tx.all_acked());
    }

    #[test]
    fn fragset_small_and_big() {
        for count in [1u16, 7, 64, 65, 200, 729] {
            let mut s = FragSet::default();
            s.reset(count);
            assert_eq!(s.first_from(0), None);
            s.fill();
            assert!(s.is_full());
            assert_eq!(s.first_from(0), Some(0));
            assert_eq!(s.first_from(count - 1), Some(count - 1));
            assert!(s.remove(count - 1));
            assert!(!s.remove(count - 1));
            assert_eq!(s.first_from(count - 1), None);
            assert!(!s.insert(count), "out of range is ignored");
            let mut bm = vec![0u8; usize::from(count).div_ceil(8)];
            assert_eq!(s.write_bitmap(&mut bm), bm.len());
            let ones: u32 = bm.iter().map(|b| b.count_ones()).sum();
            assert_eq!(ones, u32::from(count) - 1);
        }
    }

    #[test]
    fn split_and_reassemble_out_of_order() {
        let msg: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut tx = MsgSender::new();
        tx.load(&msg, 1440);
        assert_eq!(tx.count, 7);
        let mut rx = MsgReceiver::new();
        rx.begin(tx.count, msg.len() as u32);
        // Last first, then the rest backwards, with a duplicate.
        for i in (0..tx.count).rev() {
            assert_eq!(
                rx.accept(i, tx.count, msg.len() as u32, tx.fragment(i)),
                Ok(Accepted::New)
            );
        }
        assert_eq!(
            rx.accept(3, tx.count, msg.len() as u32, tx.fragment(3)),
            Ok(Accepted::Duplicate)
        );
        assert!(rx.is_complete());
        assert_eq!(rx.buf, msg);
    }

    #[test]
    fn inconsistent_fragments_are_rejected() {
        let mut rx = MsgReceiver::new();
        rx.begin(3, 2500);
        assert_eq!(rx.accept(0, 3, 2500, &[1; 1000]), Ok(Accepted::New));
        // Different chunk size.
        assert_eq!(rx.accept(1, 3, 2500, &[1; 999]), Err(RxDrop::BadFragment));
        // Last fragment implying a different chunk.
        assert_eq!(rx.accept(2, 3, 2500, &[1; 600]), Err(RxDrop::BadFragment));
        // Different message shape.
        assert_eq!(rx.accept(1, 4, 2500, &[1; 1000]), Err(RxDrop::BadFragment));
        assert_eq!(rx.accept(2, 3, 2500, &[1; 500]), Ok(Accepted::New));
        // Chunk so big the message would need fewer fragments.
        let mut rx = MsgReceiver::new();
        rx.begin(3, 2500);
        assert_eq!(rx.accept(0, 3, 2500, &[1; 1300]), Err(RxDrop::BadFragment));
    }

    #[test]
    fn selective_retransmission() {
        let msg = vec![9u8; 1440 * 10];
        let mut tx = MsgSender::new();
        tx.load(&msg, 1440);
        let mut sent = Vec::new();
        let mut t = 1;
        while let Some((i, last)) = tx.next_due(Instant::from_nanos(t)) {
            sent.push((i, last));
            t += 1;
        }
        assert_eq!(sent.len(), 10);
        assert!(sent[9].1 && !sent[8].1);
        // Receiver got all but 2 and 5; ack triggered by fragment 9.
        let bitmap = [0b1101_1011u8, 0b11];
        tx.ack_bitmap(&bitmap);
        assert_eq!(tx.requeue_lost_before(9), 2);
        assert_eq!(tx.next_due(Instant::from_nanos(100)), Some((2, false)));
        assert_eq!(tx.next_due(Instant::from_nanos(101)), Some((5, true)));
        assert_eq!(tx.next_due(Instant::from_nanos(102)), None);
        tx.ack_bitmap(&[0xff, 0xff]);
        assert!(tx.all_acked());
        assert_eq!(tx.requeue_unacked(64), 0);
    }
}
