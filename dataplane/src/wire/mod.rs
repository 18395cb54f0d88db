//! Wire formats: checked views over borrowed bytes (smoltcp style). A view's
//! `new_checked` validates lengths once; after that every accessor is infallible and
//! never panics. Nothing here allocates.

mod mac;

pub mod arp;
pub mod checksum;
mod error;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod udp;

pub use error::WireError;
pub use frame::{
    build_udp_ipv4, parse_udp_ipv4, UdpChecksum, UdpIpv4, UdpIpv4Header, UdpIpv4Template,
};
pub use mac::MacAddr;
pub mod rpc;
