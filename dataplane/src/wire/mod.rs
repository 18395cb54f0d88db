//! Wire formats: checked views over borrowed bytes (smoltcp style). A view's
//! `new_checked` validates lengths once; after that every accessor is infallible and
//! never panics. Nothing here allocates.

mod mac;

pub use mac::MacAddr;
pub mod rpc;
