//! Thin safe layer over `dpdk-sys`: EAL, mempools, mbufs and ethdevs.
//!
//! This is the only place (with `port::dpdk`) where DPDK is called; every `unsafe` block
//! carries a `// SAFETY:` line. Everything above it (the `dpdk` port backend, the
//! engine) is safe code. It owns the lifetime rules that keep DPDK memory valid:
//! - the EAL is initialised once per process and never torn down ([`Eal`]);
//! - a [`Mempool`] is freed only when every mbuf is back in it, otherwise it is
//!   deliberately leaked (see [`Mempool`]);
//! - an [`EthDev`] is stopped and closed when its last handle (including every
//!   per-queue port made from it) is dropped, and each queue is handed out at most
//!   once, so no two threads ever poll the same queue.
//!
//! It must not know about RPCs, wire formats or the engine.

mod eal;
mod error;
mod ethdev;
mod mbuf;
mod mempool;

pub use eal::{Eal, LcoreRegistration};
pub use error::DpdkError;
pub(crate) use ethdev::QueueClaim;
pub use ethdev::{EthConfig, EthDev, EthStats, Link, PortInfo};
pub use mbuf::{Mbuf, DEFAULT_MBUF_DATA_ROOM, MBUF_HEADROOM};
pub use mempool::Mempool;
