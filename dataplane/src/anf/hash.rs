//! Fast, seeded, non-SipHash hashing for state containers (an Fx-style multiply-rotate
//! hash with a per-map random seed, so keys chosen by a remote peer cannot be
//! precomputed to collide). Must not be used for anything cryptographic.

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The hasher of [`FastState`].
#[derive(Debug, Clone, Copy)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.h = (self.h.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so the low bits (hashbrown's bucket index) depend on all input.
        let h = self.h ^ (self.h >> 32);
        h.wrapping_mul(K) ^ (h >> 29)
    }
}

/// `BuildHasher` of [`FastHasher`] with a random per-instance seed.
#[derive(Debug, Clone, Copy)]
pub struct FastState {
    seed: u64,
}

impl FastState {
    /// A state seeded from the process's random source.
    pub fn new() -> Self {
        // RandomState draws fresh OS randomness per process (and varies per instance).
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        FastState { seed }
    }

    /// A state with a fixed seed (tests, reproducible benchmarks).
    pub fn with_seed(seed: u64) -> Self {
        FastState { seed }
    }
}

impl Default for FastState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_seeds_differ() {
        let a = FastState::with_seed(1);
        let b = FastState::with_seed(2);
        assert_eq!(
            a.hash_one(b"alice".as_slice()),
            a.hash_one(b"alice".as_slice())
        );
        assert_ne!(
            a.hash_one(b"alice".as_slice()),
            a.hash_one(b"alicf".as_slice())
        );
        assert_ne!(
            a.hash_one(b"alice".as_slice()),
            b.hash_one(b"alice".as_slice())
        );
        // Trailing zero bytes change the hash (length is mixed in).
        assert_ne!(a.hash_one(b"ab".as_slice()), a.hash_one(b"ab\0".as_slice()));
    }
}
