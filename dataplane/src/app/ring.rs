//! Lock-free single-producer / single-consumer rings of fixed-size descriptors inside a
//! channel segment, and the descriptor format.
//!
//! A ring is `head` (written only by the producer) and `tail` (written only by the
//! consumer), each on its own cache line, followed by `cap` descriptors of
//! [`DESC_LEN`] bytes; `cap` is a power of two and indices run freely (wrapping u32).
//! Each side keeps its own index locally and never re-reads it from shared memory; the
//! other side's index is hostile: a distance above `cap` is reported as
//! [`RingError::Corrupt`], never used. Descriptors are copied in and out as bytes; their
//! fields are validated by the users (bridge, application), not here.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::shm::Segment;

/// Bytes of one descriptor.
pub const DESC_LEN: usize = 32;
/// Bytes before the descriptors: head and tail on separate 64-byte lines.
pub const RING_HEADER: usize = 128;

/// The bytes a ring of `cap` descriptors occupies.
pub const fn ring_bytes(cap: u32) -> usize {
    RING_HEADER + cap as usize * DESC_LEN
}

/// What a descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    pub kind: u8,
    pub status: u16,
    pub service: u16,
    pub method: u16,
    pub slot: u32,
    pub len: u32,
    /// Matches a response to its request (chosen by the side that starts the exchange).
    pub tag: u64,
    pub aux: u64,
}

/// Descriptor kinds.
pub mod kind {
    /// Dataplane → server app: a request to serve.
    pub const REQUEST: u8 = 1;
    /// Server app → dataplane: the answer to a request (same slot and tag).
    pub const RESPONSE: u8 = 2;
    /// Client app → dataplane: a call to make.
    pub const CALL: u8 = 3;
    /// Dataplane → client app: a call's outcome (same slot and tag).
    pub const COMPLETION: u8 = 4;
}

impl Desc {
    pub fn encode(&self) -> [u8; DESC_LEN] {
        let mut b = [0u8; DESC_LEN];
        b[0] = self.kind;
        b[2..4].copy_from_slice(&self.status.to_le_bytes());
        b[4..6].copy_from_slice(&self.service.to_le_bytes());
        b[6..8].copy_from_slice(&self.method.to_le_bytes());
        b[8..12].copy_from_slice(&self.slot.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.tag.to_le_bytes());
        b[24..32].copy_from_slice(&self.aux.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; DESC_LEN]) -> Desc {
        let u16at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        Desc {
            kind: b[0],
            status: u16at(2),
            service: u16at(4),
            method: u16at(6),
            slot: u32at(8),
            len: u32at(12),
            tag: u64at(16),
            aux: u64at(24),
        }
    }
}

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("ring full")]
    Full,
    #[error("the peer's ring index is impossible (corrupt or hostile peer)")]
    Corrupt,
    #[error("ring outside the segment or bad capacity")]
    Layout,
}

struct RingRef {
    seg: Arc<Segment>,
    head: usize,
    tail: usize,
    descs: usize,
    cap: u32,
}

impl RingRef {
    fn new(seg: Arc<Segment>, base: usize, cap: u32) -> Result<RingRef, RingError> {
        if !cap.is_power_of_two() || !base.is_multiple_of(64) {
            return Err(RingError::Layout);
        }
        let end = base.checked_add(ring_bytes(cap)).ok_or(RingError::Layout)?;
        if end > seg.len() {
            return Err(RingError::Layout);
        }
        Ok(RingRef {
            seg,
            head: base,
            tail: base + 64,
            descs: base + RING_HEADER,
            cap,
        })
    }

    fn load(&self, at: usize) -> u32 {
        // Offsets were checked against the segment in `new`.
        self.seg
            .atomic_u32(at)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    fn store(&self, at: usize, v: u32) {
        if let Some(a) = self.seg.atomic_u32(at) {
            a.store(v, Ordering::Release);
        }
    }

    fn slot_offset(&self, index: u32) -> usize {
        self.descs + (index & (self.cap - 1)) as usize * DESC_LEN
    }
}

/// The producing end of a ring.
pub struct Producer {
    ring: RingRef,
    head: u32,
    cached_tail: u32,
}

impl Producer {
    /// The producer of the ring at `base` (starting from the index in shared memory,
    /// which is zero in a fresh segment).
    pub fn new(seg: Arc<Segment>, base: usize, cap: u32) -> Result<Producer, RingError> {
        let ring = RingRef::new(seg, base, cap)?;
        let head = ring.load(ring.head);
        let tail = ring.load(ring.tail);
        Ok(Producer {
            ring,
            head,
            cached_tail: tail,
        })
    }

    /// Descriptors pushed and not yet consumed, as last seen.
    pub fn in_flight(&self) -> u32 {
        self.head.wrapping_sub(self.cached_tail)
    }

    /// Pushes one descriptor.
    pub fn push(&mut self, d: &Desc) -> Result<(), RingError> {
        if self.head.wrapping_sub(self.cached_tail) >= self.ring.cap {
            let tail = self.ring.load(self.ring.tail);
            let used = self.head.wrapping_sub(tail);
            if used > self.ring.cap {
                return Err(RingError::Corrupt);
            }
            self.cached_tail = tail;
            if used == self.ring.cap {
                return Err(RingError::Full);
            }
        }
        let at = self.ring.slot_offset(self.head);
        self.ring
            .seg
            .write(at, &d.encode())
            .ok_or(RingError::Layout)?;
        self.head = self.head.wrapping_add(1);
        self.ring.store(self.ring.head, self.head);
        Ok(())
    }
}

/// The consuming end of a ring.
pub struct Consumer {
    ring: RingRef,
    tail: u32,
    cached_head: u32,
}

impl Consumer {
    pub fn new(seg: Arc<Segment>, base: usize, cap: u32) -> Result<Consumer, RingError> {
        let ring = RingRef::new(seg, base, cap)?;
        let tail = ring.load(ring.tail);
        Ok(Consumer {
            cached_head: tail,
            ring,
            tail,
        })
    }

    /// The next descriptor without consuming it.
    pub fn peek(&mut self) -> Result<Option<Desc>, RingError> {
        if self.tail == self.cached_head {
            let head = self.ring.load(self.ring.head);
            if head.wrapping_sub(self.tail) > self.ring.cap {
                return Err(RingError::Corrupt);
            }
            self.cached_head = head;
            if head == self.tail {
                return Ok(None);
            }
        }
        let mut b = [0u8; DESC_LEN];
        self.ring
            .seg
            .read(self.ring.slot_offset(self.tail), &mut b)
            .ok_or(RingError::Layout)?;
        Ok(Some(Desc::decode(&b)))
    }

    /// Consumes the descriptor [`peek`](Self::peek) returned.
    pub fn advance(&mut self) {
        if self.tail != self.cached_head {
            self.tail = self.tail.wrapping_add(1);
            self.ring.store(self.ring.tail, self.tail);
        }
    }

    /// Takes the next descriptor.
    pub fn pop(&mut self) -> Result<Option<Desc>, RingError> {
        let d = self.peek()?;
        if d.is_some() {
            self.advance();
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(tag: &str, len: usize) -> Arc<Segment> {
        let p = std::path::PathBuf::from(format!(
            "/dev/shm/flatrpc-test-{}-ring-{tag}",
            std::process::id()
        ));
        let mut s = Segment::create(&p, len).expect("segment");
        s.unlink();
        Arc::new(s)
    }

    fn d(i: u64) -> Desc {
        Desc {
            kind: kind::REQUEST,
            status: i as u16,
            service: 7,
            method: 2,
            slot: i as u32,
            len: 3,
            tag: i,
            aux: !i,
        }
    }

    #[test]
    fn desc_round_trip() {
        let x = d(0xdead_beef_1234);
        assert_eq!(Desc::decode(&x.encode()), x);
    }

    #[test]
    fn full_empty_and_wraparound() {
        let seg = segment("wrap", 4096);
        let mut p = Producer::new(Arc::clone(&seg), 0, 8).expect("p");
        let mut c = Consumer::new(Arc::clone(&seg), 0, 8).expect("c");
        assert_eq!(c.pop(), Ok(None));
        let mut next = 0u64;
        let mut want = 0u64;
        // Many laps with varying fill levels.
        for round in 0..200u64 {
            let n = round % 9;
            for _ in 0..n {
                match p.push(&d(next)) {
                    Ok(()) => next += 1,
                    Err(RingError::Full) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            for _ in 0..(round * 7 % 9) {
                match c.pop().expect("pop") {
                    Some(x) => {
                        assert_eq!(x, d(want));
                        want += 1;
                    }
                    None => break,
                }
            }
        }
        while let Some(x) = c.pop().expect("pop") {
            assert_eq!(x, d(want));
            want += 1;
        }
        assert_eq!(want, next);
        assert!(next > 100);
        for i in 0..8 {
            p.push(&d(i)).expect("room");
        }
        assert_eq!(p.push(&d(9)), Err(RingError::Full));
        assert_eq!(p.in_flight(), 8);
    }

    #[test]
    fn indices_wrap_at_u32_max() {
        let seg = segment("u32", 4096);
        // Both indices start near the end of the u32 range.
        for at in [0usize, 64] {
            seg.atomic_u32(at)
                .expect("index")
                .store(u32::MAX - 2, Ordering::Relaxed);
        }
        let mut p = Producer::new(Arc::clone(&seg), 0, 4).expect("p");
        let mut c = Consumer::new(Arc::clone(&seg), 0, 4).expect("c");
        for i in 0..20 {
            p.push(&d(i)).expect("push");
            assert_eq!(c.pop().expect("pop"), Some(d(i)));
        }
    }

    #[test]
    fn hostile_indices_are_reported_not_used() {
        let seg = segment("hostile", 4096);
        let mut p = Producer::new(Arc::clone(&seg), 0, 4).expect("p");
        let mut c = Consumer::new(Arc::clone(&seg), 0, 4).expect("c");
        // A producer claiming more than `cap` entries.
        seg.atomic_u32(0)
            .expect("head")
            .store(1000, Ordering::Release);
        assert_eq!(c.pop(), Err(RingError::Corrupt));
        // A consumer claiming to have consumed what was never produced.
        seg.atomic_u32(0).expect("head").store(0, Ordering::Release);
        for i in 0..4 {
            p.push(&d(i)).expect("push");
        }
        seg.atomic_u32(64)
            .expect("tail")
            .store(0x8000_0000, Ordering::Release);
        assert_eq!(p.push(&d(5)), Err(RingError::Corrupt));
        // Descriptor contents are arbitrary bytes; decoding never fails.
        seg.write(RING_HEADER, &[0xff; DESC_LEN]).expect("write");
        let x = Desc::decode(&[0xff; DESC_LEN]);
        assert_eq!(x.slot, u32::MAX);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let seg = segment("layout", 4096);
        assert!(matches!(
            Producer::new(Arc::clone(&seg), 0, 3),
            Err(RingError::Layout)
        ));
        assert!(matches!(
            Consumer::new(Arc::clone(&seg), 32, 4),
            Err(RingError::Layout)
        ));
        assert!(matches!(
            Consumer::new(Arc::clone(&seg), 0, 1 << 10),
            Err(RingError::Layout)
        ));
        assert!(matches!(
            Producer::new(seg, usize::MAX - 63, 4),
            Err(RingError::Layout)
        ));
    }
}
