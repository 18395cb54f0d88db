//! A small, fast, seeded per-core RNG (wyrand) for `randomf`. Deterministic for a seed,
//! so element behaviour under tests is reproducible. Not cryptographic.

/// wyrand: one 64-bit state, one multiply per draw.
#[derive(Debug, Clone)]
pub struct FastRng {
    state: u64,
}

impl FastRng {
    /// An RNG seeded with `seed` (use a different seed per core).
    pub fn new(seed: u64) -> Self {
        FastRng {
            state: seed ^ 0x2d35_8dcc_aa6c_78a5,
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)` (`randomf(lo, hi)`); `lo` when the range is empty.
    #[inline]
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        if hi > lo {
            lo + (hi - lo) * self.next_f64()
        } else {
            lo
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = FastRng::new(7);
        let mut b = FastRng::new(7);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = a.range_f64(2.0, 4.0);
            assert_eq!(x, b.range_f64(2.0, 4.0));
            assert!((2.0..4.0).contains(&x));
            sum += x;
        }
        let mean = sum / 10_000.0;
        assert!((mean - 3.0).abs() < 0.05, "mean {mean}");
        assert_eq!(a.range_f64(5.0, 5.0), 5.0);
    }
}
