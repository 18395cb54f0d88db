//! A FIFO byte ring of ready-made packets (RPC header already written in place, payload
//! behind it) for the single-fragment unreliable fast path: `call` and `respond` write
//! the packet once, `poll_transmit` copies it out. Fixed capacity, allocated once.
//!
//! This module owns only the byte positions. It must not know what a packet means,
//! and it relies on its user releasing packets in the order they were reserved (the
//! endpoint's transmit queue is FIFO).

/// The ring. Positions are monotonically increasing `u64`s; a packet never wraps (the
/// space before the end is skipped instead), so every packet is one contiguous slice.
/// The capacity is a power of two, so a position's offset is a mask, not a division.
#[derive(Debug)]
pub(crate) struct PacketRing {
    buf: Vec<u8>,
    mask: u64,
    head: u64,
    tail: u64,
}

impl PacketRing {
    /// A ring of `capacity` bytes rounded down to a power of two (0 stays 0: a ring
    /// that refuses everything).
    pub fn new(capacity: usize) -> Self {
        let cap = if capacity == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - capacity.leading_zeros())
        };
        PacketRing {
            buf: vec![0; cap],
            mask: (cap as u64).wrapping_sub(1),
            head: 0,
            tail: 0,
        }
    }

    /// Room for one packet of `len` bytes: its position and its bytes, or `None` if
    /// the ring is full (the caller takes the general path).
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Option<(u64, &mut [u8])> {
        let cap = self.buf.len() as u64;
        let len64 = len as u64;
        if len64 > cap {
            return None;
        }
        let off = self.tail & self.mask;
        let start = if off + len64 > cap {
            self.tail + (cap - off)
        } else {
            self.tail
        };
        if start + len64 - self.head > cap {
            return None;
        }
        self.tail = start + len64;
        let o = (start & self.mask) as usize;
        let bytes = self.buf.get_mut(o..o + len)?;
        Some((start, bytes))
    }

    /// The packet reserved at `pos` (empty if the position is not live).
    #[inline]
    pub fn get(&self, pos: u64, len: usize) -> &[u8] {
        if pos < self.head || pos + len as u64 > self.tail {
            return &[];
        }
        let o = (pos & self.mask) as usize;
        self.buf.get(o..o + len).unwrap_or(&[])
    }

    /// The packet at `pos` (the oldest live one) is done with: its bytes, and any space
    /// skipped before it, become free.
    #[inline]
    pub fn release(&mut self, pos: u64, len: usize) {
        let end = pos + len as u64;
        if end > self.head && end <= self.tail {
            self.head = end;
        }
        if self.head == self.tail {
            // Empty: start over at the front so the hot bytes stay in cache.
            self.head = 0;
            self.tail = 0;
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_wraps_without_splitting_packets() {
        let r = PacketRing::new(100);
        assert_eq!(r.buf.len(), 64);
        let mut r = PacketRing::new(128);
        // 128 bytes; packets of 50: two fit, the 28 left at the end are skipped.
        let (a, ba) = r.reserve(50).expect("room");
        ba.fill(1);
        let (b, bb) = r.reserve(50).expect("room");
        bb.fill(2);
        assert!(r.reserve(50).is_none(), "only 28 bytes left at the end");
        r.release(a, 50);
        let (c, bc) = r.reserve(40).expect("room after release");
        bc.fill(3);
        assert_eq!(c % 128, 0);
        assert!(r.get(b, 50).iter().all(|&x| x == 2));
        assert!(r.get(c, 40).iter().all(|&x| x == 3));
        assert!(r.reserve(20).is_none(), "front is used up to b");
        r.release(b, 50);
        r.release(c, 40);
        assert_eq!((r.head, r.tail), (0, 0), "empty ring restarts at the front");
        assert!(r.reserve(129).is_none());
        assert!(r.reserve(128).is_some());
    }

    #[test]
    fn stale_positions_read_empty() {
        let mut r = PacketRing::new(64);
        let (a, _) = r.reserve(10).expect("room");
        r.release(a, 10);
        assert!(r.get(a, 10).is_empty());
        let mut z = PacketRing::new(0);
        assert!(z.reserve(1).is_none());
    }
}
