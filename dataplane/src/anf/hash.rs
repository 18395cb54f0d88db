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
        // Overlapping fixed-size loads instead of a byte loop or a variable-length copy:
        // short keys (user names, ids) hash in a handful of instructions.
        let n = bytes.len();
        let len_tag = (n as u64) << 56;
        if n <= 8 {
            let w = if n >= 4 {
                (u64::from(le32(bytes, 0)) << 32) | u64::from(le32(bytes, n - 4))
            } else if n > 0 {
                let a = bytes.first().copied().unwrap_or(0);
                let b = bytes.get(n / 2).copied().unwrap_or(0);
                let c = bytes.get(n - 1).copied().unwrap_or(0);
                (u64::from(a) << 16) | (u64::from(b) << 8) | u64::from(c)
            } else {
                0
            };
            self.add(w ^ len_tag);
            return;
        }
        let mut i = 0;
        while i + 8 < n {
            self.add(le64(bytes, i));
            i += 8;
        }
        self.add(le64(bytes, n - 8) ^ len_tag);
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

#[inline(always)]
fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |a| u32::from_le_bytes(*a))
}

#[inline(always)]
fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |a| u64::from_le_bytes(*a))
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
        // Every length class, and a difference in any byte.
        let base: Vec<u8> = (0..40u8).collect();
        for n in 0..base.len() {
            for i in 0..n {
                let mut other = base[..n].to_vec();
                other[i] ^= 1;
                assert_ne!(
                    a.hash_one(&base[..n]),
                    a.hash_one(&other[..]),
                    "len {n} byte {i}"
                );
            }
        }
    }
}
