//! Application channels: application processes attach to a running dataplane over a
//! Unix socket and exchange RPCs with it through shared memory (one segment per
//! channel: two SPSC descriptor rings and a payload arena). The ANF chains stay in the
//! dataplane; the application only runs its handlers or makes calls.
//!
//! - [`shm`]: the segment (/dev/shm file, memmap2) and descriptor passing — with
//!   [`ring`] the only `unsafe` of this module;
//! - [`ring`]: lock-free SPSC rings of fixed-size descriptors;
//! - [`arena`]: payload slots and the dataplane's record of lent slots;
//! - [`proto`]: the attach protocol (Hello / Welcome / Refused) and the segment layout;
//! - [`hub`]: the dataplane's control thread accepting and watching applications;
//! - [`bridge`]: the engine `App`s that connect channels to the transport;
//! - [`client`], [`server`]: the application side ([`AppChannel`]).
//!
//! Everything read from shared memory or the socket is hostile input on both sides.

pub mod arena;
pub mod bridge;
pub mod client;
pub mod hub;
pub mod proto;
pub mod ring;
pub mod server;
pub mod shm;

use std::sync::Arc;

pub use bridge::{BridgeStats, ChainHook, NoChain, ShmClientBridge, ShmServerBridge};
pub use client::{AppChannel, AttachError, CallError, Completion};
pub use hub::{ChannelEvent, Hub, HubConfig, HubError, HubStats};
pub use proto::{Geometry, Role};

/// Status codes in descriptors and the error codes the bridges answer with.
pub mod status {
    /// Success.
    pub const OK: u16 = 0;
    /// No application is attached for the service, its slots are all in use, or it died
    /// with the request outstanding. In the application-error range (below the ANF and
    /// transport ranges), so it travels to the remote caller as an ordinary error.
    pub const UNAVAILABLE: u16 = 0x0002;
    /// The handler failed (as in-process: `engine::APP_ERROR_CODE`).
    pub const APP_ERROR: u16 = crate::engine::APP_ERROR_CODE;
    /// Client side only (never on the wire): the call timed out in the transport.
    pub const TIMEOUT: u16 = 0xfe01;
    /// Client side only: the dataplane's session to the server closed.
    pub const SESSION_CLOSED: u16 = 0xfe02;
    /// Client side only: an earlier ordered call failed.
    pub const ORDER_BROKEN: u16 = 0xfe03;
    /// The message does not fit a slot or the transport's limit.
    pub const TOO_LARGE: u16 = crate::transport::error_code::TOO_LARGE;
    /// The dataplane knows no transport class for the method.
    pub const UNKNOWN_METHOD: u16 = crate::transport::error_code::UNKNOWN_METHOD;
}

/// The rings and arena of one channel, seen from one side (the bridges and
/// [`AppChannel`] are the normal users; public for benchmarks and tests).
pub struct ChannelMem {
    pub producer: ring::Producer,
    pub consumer: ring::Consumer,
    pub arena: arena::Arena,
}

/// Opens the channel's rings: the dataplane produces into the to-app ring and consumes
/// the to-dataplane one; the application the reverse.
pub fn open_channel(
    seg: Arc<shm::Segment>,
    g: &Geometry,
    dataplane_side: bool,
) -> Result<ChannelMem, ChannelLayoutError> {
    let l = g.validate()?;
    let (out, inn) = if dataplane_side {
        (l.to_app, l.to_dataplane)
    } else {
        (l.to_dataplane, l.to_app)
    };
    Ok(ChannelMem {
        producer: ring::Producer::new(Arc::clone(&seg), out, g.ring_cap)?,
        consumer: ring::Consumer::new(Arc::clone(&seg), inn, g.ring_cap)?,
        arena: arena::Arena::new(seg, l.arena, g.slot_size, g.slot_count)?,
    })
}

/// Why a channel's memory could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelLayoutError {
    #[error(transparent)]
    Proto(#[from] proto::ProtoError),
    #[error(transparent)]
    Ring(#[from] ring::RingError),
    #[error(transparent)]
    Arena(#[from] arena::ArenaError),
    #[error("segment header does not match")]
    Header,
}

/// Writes the segment header (dataplane side).
pub(crate) fn write_header(seg: &shm::Segment, channel: u32, g: &Geometry) -> Option<()> {
    seg.write(0, &proto::SEGMENT_MAGIC.to_le_bytes())?;
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&channel.to_le_bytes());
    b[4..8].copy_from_slice(&g.ring_cap.to_le_bytes());
    b[8..12].copy_from_slice(&g.slot_size.to_le_bytes());
    b[12..16].copy_from_slice(&g.slot_count.to_le_bytes());
    seg.write(8, &b)
}

/// Checks the segment header against the Welcome (application side).
pub(crate) fn check_header(
    seg: &shm::Segment,
    channel: u32,
    g: &Geometry,
) -> Result<(), ChannelLayoutError> {
    let mut b = [0u8; 24];
    seg.read(0, &mut b).ok_or(ChannelLayoutError::Header)?;
    let mut want = [0u8; 24];
    want[0..8].copy_from_slice(&proto::SEGMENT_MAGIC.to_le_bytes());
    want[8..12].copy_from_slice(&channel.to_le_bytes());
    want[12..16].copy_from_slice(&g.ring_cap.to_le_bytes());
    want[16..20].copy_from_slice(&g.slot_size.to_le_bytes());
    want[20..24].copy_from_slice(&g.slot_count.to_le_bytes());
    if b == want {
        Ok(())
    } else {
        Err(ChannelLayoutError::Header)
    }
}
