//! Packet ports: the one interface every backend implements.
//!
//! A [`Port`] is one receive/transmit queue pair owned by one polling core. A backend
//! that offers several queues (DPDK with RSS, AF_PACKET with `PACKET_FANOUT`) is opened
//! once and hands out one `Port` per queue; each is `Send` so it can move to its core,
//! but is never shared between cores.
//!
//! Bursts are passed in caller-owned `Vec`s whose capacity the caller reserves once
//! (e.g. [`MAX_BURST`]); `rx_burst` pushes and `tx_burst` drains, so the steady state
//! allocates nothing.
//!
//! This module owns the trait and the shared buffer pool; it must not know about RPCs.

pub mod afpacket;
pub mod buf;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod replay;
pub mod sim;
pub mod tap;

pub use buf::{BufPool, PoolBuf};

use crate::wire::MacAddr;

/// The largest burst any backend handles in one call (as DPDK's usual 32).
pub const MAX_BURST: usize = 32;

/// A buffer was asked to hold more bytes than it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer too small: asked for {wanted} bytes, capacity is {capacity}")]
pub struct BufTooSmall {
    pub wanted: usize,
    pub capacity: usize,
}

/// What the device (or kernel) says about one checksum of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ChecksumStatus {
    /// Not checked by the device: verify in software.
    #[default]
    Unknown,
    /// The device vouches for the bytes: verified, or (DPDK's `*_CKSUM_NONE`, the
    /// kernel's `TP_STATUS_CSUMNOTREADY`) the field is not filled in but the data never
    /// left trusted memory. Software verification is skipped.
    Good,
    /// The device found the checksum wrong: drop the frame.
    Bad,
}

/// The device's verdict on a received frame's IPv4 header checksum and its L4 (UDP)
/// checksum, read from `ol_flags` (DPDK) or `tp_status` (AF_PACKET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RxChecksum {
    pub ipv4: ChecksumStatus,
    pub l4: ChecksumStatus,
}

impl RxChecksum {
    /// Nothing known: both checksums are verified in software.
    pub const UNKNOWN: RxChecksum = RxChecksum {
        ipv4: ChecksumStatus::Unknown,
        l4: ChecksumStatus::Unknown,
    };
}

/// One packet's bytes, owned. Dropping it returns the memory to where it came from
/// (mempool, buffer pool).
pub trait PacketBuf: Send {
    /// The frame's bytes (`len()` of them).
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Largest frame this buffer can hold.
    fn capacity(&self) -> usize;
    /// Sets the frame length. Bytes newly exposed hold unspecified (but initialised) data.
    fn set_len(&mut self, len: usize) -> Result<(), BufTooSmall>;

    fn len(&self) -> usize {
        self.data().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// What the device said about the checksums of this frame as received
    /// ([`RxChecksum::UNKNOWN`] for backends that do not know, and for built frames).
    fn rx_checksum(&self) -> RxChecksum {
        RxChecksum::UNKNOWN
    }
    /// Replaces the contents with `bytes`.
    fn fill_from(&mut self, bytes: &[u8]) -> Result<(), BufTooSmall> {
        self.set_len(bytes.len())?;
        self.data_mut().copy_from_slice(bytes);
        Ok(())
    }
}

/// Counters of one port (queue), monotonically increasing since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Frames the device or kernel dropped before we saw them (ring full, imissed).
    pub rx_dropped: u64,
    /// Frames handed to `tx_burst` that the port could not take.
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Buffer allocation failures (pool or mempool empty).
    pub alloc_failed: u64,
}

impl std::ops::AddAssign for PortStats {
    fn add_assign(&mut self, o: Self) {
        self.rx_packets += o.rx_packets;
        self.tx_packets += o.tx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_bytes += o.tx_bytes;
        self.rx_dropped += o.rx_dropped;
        self.tx_dropped += o.tx_dropped;
        self.rx_errors += o.rx_errors;
        self.tx_errors += o.tx_errors;
        self.alloc_failed += o.alloc_failed;
    }
}

/// One receive/transmit queue pair of a packet backend.
pub trait Port: Send {
    type Buf: PacketBuf;

    /// Receives up to `max` frames without blocking, pushing them onto `out`.
    /// Returns how many were pushed.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;

    /// Transmits frames from the front of `bufs`. Those the port accepted are removed
    /// (ownership passed to the port); those it could not take stay in `bufs`, in order,
    /// for the caller to retry or drop. Returns how many were accepted.
    fn tx_burst(&mut self, bufs: &mut Vec<Self::Buf>) -> usize;

    /// An empty (len 0) buffer to build a frame in, or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<Self::Buf>;

    /// The port's Ethernet address.
    fn mac(&self) -> MacAddr;

    /// Counters since the port was opened.
    fn stats(&self) -> PortStats;

    /// Whether a finite source (a replay with a round limit) has nothing more to hand
    /// out: the core polling it then stops. A device or a link never is.
    fn exhausted(&self) -> bool {
        false
    }
}
