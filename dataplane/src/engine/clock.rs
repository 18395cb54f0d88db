//! The engine's clock: nanoseconds since the engine started, read once per poll pass.
//!
//! With DPDK initialised it is the TSC (`rte_rdtsc`, a few cycles) scaled by EAL's
//! measured TSC frequency; otherwise the monotonic clock through the vDSO (~20 ns, no
//! syscall). Either way it is read once per burst, not per packet.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Source {
    Monotonic(Instant),
    #[cfg(feature = "dpdk")]
    Tsc {
        start: u64,
        mult: u64,
    },
}

/// A monotonic nanosecond clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Source);

impl Clock {
    /// The TSC when EAL is up, else the monotonic clock.
    pub fn new() -> Clock {
        #[cfg(feature = "dpdk")]
        if let Some(eal) = crate::dpdk::Eal::get() {
            let hz = eal.tsc_hz();
            if hz > 0 {
                // ns = ticks * 1e9 / hz, as ticks * mult >> 32.
                let mult = ((1_000_000_000u128 << 32) / u128::from(hz)) as u64;
                return Clock(Source::Tsc {
                    start: crate::dpdk::Eal::rdtsc(),
                    mult,
                });
            }
        }
        Clock(Source::Monotonic(Instant::now()))
    }

    /// The monotonic clock, whatever else is available.
    pub fn monotonic() -> Clock {
        Clock(Source::Monotonic(Instant::now()))
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub fn now(&self) -> u64 {
        match self.0 {
            Source::Monotonic(start) => start.elapsed().as_nanos() as u64,
            #[cfg(feature = "dpdk")]
            Source::Tsc { start, mult } => {
                let ticks = crate::dpdk::Eal::rdtsc().wrapping_sub(start);
                ((u128::from(ticks) * u128::from(mult)) >> 32) as u64
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn the_clock_advances_with_wall_time() {
        for c in [Clock::new(), Clock::monotonic()] {
            let a = c.now();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let b = c.now();
            assert!(b >= a + 15_000_000, "{a} -> {b}");
            assert!(b < a + 2_000_000_000, "{a} -> {b}");
        }
    }
}
