//! CPU time of this process, for "CPU per RPC" figures (rpcbench, the gRPC baseline).
//! Safe: nix wraps getrusage(2). Must not be called on a core's fast path (a syscall).

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeValLike;

/// CPU seconds (user + system) this process has used so far; 0.0 if getrusage fails.
pub fn process_cpu_seconds() -> f64 {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as f64 / 1e6
        }
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_work() {
        let before = process_cpu_seconds();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = process_cpu_seconds();
        assert!(before >= 0.0 && after > before, "{before} -> {after}");
    }
}
