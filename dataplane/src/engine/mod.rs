//! The dataplane engine: per-core busy-poll loops binding a port queue, the network
//! layer (Ethernet/ARP/IPv4/UDP), the sans-IO transport and an application (generated
//! pipeline + handlers, or a client's call loop).
//!
//! - [`net`]: addresses, neighbour table, frame classification and drop counters;
//! - [`core`]: one core's run-to-completion loop and the [`App`] trait;
//! - [`launch`]: opening the configured backend and running one pinned core per queue;
//! - [`clock`]: the nanosecond clock (TSC under DPDK);
//! - [`tables`]: config tables → a generated service's `Tables`.
//!
//! Cores share nothing; counters are published through a mutex a few times a second.

pub mod clock;
pub mod core;
pub mod launch;
pub mod net;
pub mod tables;

pub use self::core::{Answer, App, Core, CoreSnapshot, SessionEvent};
pub use clock::Clock;
pub use launch::{Engine, EngineSpec};
pub use net::{NetCounters, NetDrop, NetStack, Peer};
pub use tables::tables_from_config;

/// The error code an ANF's `send(err('MESSAGE'), Up)` travels as: a stable 12-bit hash of
/// the message in `0x1000..=0x1fff`, so client and server agree without a registry.
pub fn anf_error_code(message: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in message.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    0x1000 | ((h ^ (h >> 12) ^ (h >> 24)) & 0x0fff) as u16
}

/// The error code of a handler that failed (`AppError`).
pub const APP_ERROR_CODE: u16 = 0x0001;

#[cfg(test)]
mod tests {
    #[test]
    fn anf_error_codes_are_stable_and_in_range() {
        let d = super::anf_error_code("denied");
        assert_eq!(d, super::anf_error_code("denied"));
        assert_ne!(d, super::anf_error_code("rate limited"));
        for m in ["", "denied", "x", "does not fit"] {
            let c = super::anf_error_code(m);
            assert!((0x1000..=0x1fff).contains(&c));
            assert!(c < crate::transport::ERROR_CODE_TRANSPORT_BASE);
        }
    }
}
