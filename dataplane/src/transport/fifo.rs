//! [`Fifo`]: the growable ring behind the endpoint's transmit and event queues.
//!
//! `VecDeque::push_back` is not always inlined, and then the item is built on the
//! caller's stack field by field and re-read whole by the out-of-line push: a
//! store-forwarding stall on every packet. Here the push is always inlined, so an item
//! is written straight into its slot. This module must stay a plain FIFO in safe code,
//! allocating only when it grows.

/// A first-in first-out queue of `Copy` items in a power-of-two ring.
#[derive(Debug, Clone)]
pub(crate) struct Fifo<T> {
    buf: Vec<T>,
    head: usize,
    len: usize,
    /// What a slot holds before its first item.
    fill: T,
}

impl<T> Fifo<T> {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

impl<T: Copy> Fifo<T> {
    /// An empty queue with room for `capacity` items (rounded up to a power of two)
    /// before it grows; `fill` occupies the free slots.
    pub fn with_capacity(capacity: usize, fill: T) -> Self {
        let cap = capacity.max(1).next_power_of_two();
        Fifo {
            buf: vec![fill; cap],
            head: 0,
            len: 0,
            fill,
        }
    }

    #[inline(always)]
    pub fn push_back(&mut self, item: T) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let i = (self.head + self.len) & (self.buf.len() - 1);
        if let Some(slot) = self.buf.get_mut(i) {
            *slot = item;
            self.len += 1;
        }
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = *self.buf.get(self.head)?;
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        Some(item)
    }

    /// Doubles the ring, keeping the order.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let cap = self.buf.len();
        let mut buf = Vec::with_capacity(cap * 2);
        for k in 0..self.len {
            buf.push(self.buf[(self.head + k) & (cap - 1)]);
        }
        buf.resize(cap * 2, self.fill);
        self.buf = buf;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Fifo;
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;

    #[test]
    fn behaves_like_a_vecdeque_through_growth_and_wrap() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
        let mut f = Fifo::with_capacity(3, 0u32);
        assert_eq!(f.capacity(), 4);
        let mut model = VecDeque::new();
        let mut next = 1u32;
        for _ in 0..20_000 {
            if rng.gen_bool(0.55) {
                f.push_back(next);
                model.push_back(next);
                next += 1;
            } else {
                assert_eq!(f.pop_front(), model.pop_front());
            }
            assert_eq!(f.len(), model.len());
            assert_eq!(f.is_empty(), model.is_empty());
            assert!(f.capacity() >= f.len() && f.capacity().is_power_of_two());
        }
        while let Some(x) = model.pop_front() {
            assert_eq!(f.pop_front(), Some(x));
        }
        assert_eq!(f.pop_front(), None);
    }
}
