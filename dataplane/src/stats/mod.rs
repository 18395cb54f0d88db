//! Observability building blocks that do not know the service or the host process:
//!
//! - [`latency`]: HdrHistogram latency recording (per core) and merging (control thread);
//! - [`prometheus`]: the Prometheus text exposition format, written and parsed;
//! - [`cpu`]: this process's CPU time (getrusage);
//! - [`pcap`]: a [`Port`](crate::port::Port) wrapper copying frames to a pcap writer thread.
//!
//! Nothing here locks on a core's fast path.

pub mod cpu;
pub mod latency;
pub mod pcap;
pub mod prometheus;

pub use cpu::process_cpu_seconds;
pub use latency::{LatencyHistogram, LatencySummary};
pub use pcap::{Capture, CapturePort, CaptureStats, PcapSink};
