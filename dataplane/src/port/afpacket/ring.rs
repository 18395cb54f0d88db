//! The TPACKET_V3 memory layout: one `mmap` holding the RX block ring followed by the
//! TX frame ring, and the ownership hand-off with the kernel through status words.
//!
//! RX: a block belongs to user space while its `block_status` has `TP_STATUS_USER`;
//! its packets are then read through a plain `&[u8]` of the block (the kernel does not
//! touch a block it handed over) and parsed with bounds checks by [`BlockView`], so a
//! corrupt offset cannot read outside the block. Writing `TP_STATUS_KERNEL` returns it.
//! TX: a frame slot is ours while its `tp_status` is `TP_STATUS_AVAILABLE`; we write
//! the frame and publish it with `TP_STATUS_SEND_REQUEST`.
//!
//! Status words are accessed atomically (acquire on load, release on store). This
//! module owns the pointer arithmetic; it must not make syscalls or count stats.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapRaw;

/// Where a TX frame's data starts in its slot: `TPACKET3_HDRLEN - sizeof(sockaddr_ll)`,
/// which is what the kernel uses when `PACKET_TX_HAS_OFF` is not set.
pub const TX_DATA_OFFSET: usize = libc::TPACKET3_HDRLEN - size_of::<libc::sockaddr_ll>();

const BLOCK_STATUS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, block_status);
const BLOCK_NUM_PKTS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST_PKT: usize = offset_of!(libc::tpacket_block_desc, hdr)
    + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
const PKT_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const PKT_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const PKT_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const PKT_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const PKT_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);

fn ne_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn ne_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// One packet found in an RX block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPacket<'a> {
    /// The captured bytes (`tp_snaplen` of them).
    pub data: &'a [u8],
    /// The frame's length on the wire (`tp_len`); larger than `data` when truncated.
    pub wire_len: usize,
    /// `tp_status` flags (e.g. `TP_STATUS_CSUMNOTREADY`).
    pub status: u32,
    /// Offset from this packet to the next (`tp_next_offset`).
    pub next_offset: usize,
}

/// Bounds-checked reading of a user-owned TPACKET_V3 block.
#[derive(Debug, Clone, Copy)]
pub struct BlockView<'a> {
    block: &'a [u8],
}

impl<'a> BlockView<'a> {
    pub fn new(block: &'a [u8]) -> Self {
        BlockView { block }
    }

    /// Number of packets in the block.
    pub fn num_pkts(&self) -> u32 {
        ne_u32(self.block, BLOCK_NUM_PKTS).unwrap_or(0)
    }

    /// Offset of the first packet header.
    pub fn first_offset(&self) -> usize {
        ne_u32(self.block, BLOCK_FIRST_PKT).unwrap_or(0) as usize
    }

    /// The packet whose `tpacket3_hdr` starts at `offset`, or `None` when the header or
    /// its data would lie outside the block.
    pub fn packet_at(&self, offset: usize) -> Option<RxPacket<'a>> {
        let b = self.block;
        let hdr_end = offset.checked_add(size_of::<libc::tpacket3_hdr>())?;
        if hdr_end > b.len() {
            return None;
        }
        let snaplen = ne_u32(b, offset + PKT_SNAPLEN)? as usize;
        let mac = usize::from(ne_u16(b, offset + PKT_MAC)?);
        let start = offset.checked_add(mac)?;
        let data = b.get(start..start.checked_add(snaplen)?)?;
        Some(RxPacket {
            data,
            wire_len: ne_u32(b, offset + PKT_LEN)? as usize,
            status: ne_u32(b, offset + PKT_STATUS)?,
            next_offset: ne_u32(b, offset + PKT_NEXT)? as usize,
        })
    }
}

/// Geometry of the mapped rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub block_size: usize,
    pub block_count: usize,
    pub frame_size: usize,
}

impl Geometry {
    pub fn frames_per_block(&self) -> usize {
        self.block_size / self.frame_size
    }
    pub fn tx_frames(&self) -> usize {
        self.frames_per_block() * self.block_count
    }
    pub fn ring_bytes(&self) -> usize {
        self.block_size * self.block_count
    }
    /// Bytes of the whole mapping (RX ring then TX ring).
    pub fn map_bytes(&self) -> usize {
        2 * self.ring_bytes()
    }
    /// Largest frame a TX slot holds.
    pub fn tx_max_frame(&self) -> usize {
        self.frame_size - TX_DATA_OFFSET
    }
}

/// The mapped RX and TX rings of one socket.
pub struct Rings {
    map: MmapRaw,
    geo: Geometry,
}

impl Rings {
    /// Takes a mapping of `geo.map_bytes()` bytes set up by PACKET_RX_RING/TX_RING.
    pub fn new(map: MmapRaw, geo: Geometry) -> Option<Rings> {
        (map.len() >= geo.map_bytes() && geo.frame_size > TX_DATA_OFFSET)
            .then_some(Rings { map, geo })
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    fn status_word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= self.geo.map_bytes() && offset.is_multiple_of(4));
        // SAFETY: `offset` is a status word inside the mapping (callers pass block or
        // slot starts plus a field offset, both within `map_bytes`), 4-byte aligned
        // (blocks are page aligned, slots TPACKET_ALIGNMENT aligned, fields at 4-byte
        // multiples), and the mapping lives as long as `self`. The kernel accesses the
        // same word concurrently, which is why it is only touched atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    fn rx_block_start(&self, block: usize) -> usize {
        (block % self.geo.block_count) * self.geo.block_size
    }

    fn tx_slot_start(&self, slot: usize) -> usize {
        let fpb = self.geo.frames_per_block();
        let slot = slot % self.geo.tx_frames();
        self.geo.ring_bytes()
            + (slot / fpb) * self.geo.block_size
            + (slot % fpb) * self.geo.frame_size
    }

    /// Whether user space owns RX block `block`.
    pub fn rx_block_ready(&self, block: usize) -> bool {
        let status = self.status_word(self.rx_block_start(block) + BLOCK_STATUS);
        status.load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Reads a user-owned RX block. Only call after [`rx_block_ready`] returned true
    /// and before [`rx_block_release`].
    ///
    /// [`rx_block_ready`]: Self::rx_block_ready
    /// [`rx_block_release`]: Self::rx_block_release
    pub fn rx_block(&self, block: usize) -> BlockView<'_> {
        let start = self.rx_block_start(block);
        // SAFETY: the range is one block inside the mapping. The block is owned by user
        // space (TP_STATUS_USER was observed with acquire ordering), so the kernel does
        // not write to it until `rx_block_release`, which takes `&mut self` and so
        // cannot run while this shared borrow is alive.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(start), self.geo.block_size)
        };
        BlockView::new(bytes)
    }

    /// Hands RX block `block` back to the kernel.
    pub fn rx_block_release(&mut self, block: usize) {
        let status = self.status_word(self.rx_block_start(block) + BLOCK_STATUS);
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The TX slot's status word value.
    pub fn tx_slot_status(&self, slot: usize) -> u32 {
        self.status_word(self.tx_slot_start(slot) + PKT_STATUS)
            .load(Ordering::Acquire)
    }

    /// Copies `frame` into TX slot `slot` and publishes it for sending. The slot must
    /// be `TP_STATUS_AVAILABLE` and `frame` at most [`Geometry::tx_max_frame`] bytes;
    /// returns false (writing nothing) otherwise.
    pub fn tx_slot_send(&mut self, slot: usize, frame: &[u8]) -> bool {
        if frame.len() > self.geo.tx_max_frame()
            || self.tx_slot_status(slot) != libc::TP_STATUS_AVAILABLE
        {
            return false;
        }
        let start = self.tx_slot_start(slot);
        {
            // SAFETY: the slot `[start, start + frame_size)` lies inside the TX ring of
            // the mapping; it is AVAILABLE, i.e. owned by user space: the kernel does not
            // read or write it until we store SEND_REQUEST below, after this borrow ends.
            // `&mut self` guarantees no other borrow of the mapping is alive.
            let slot_bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    self.map.as_mut_ptr().add(start),
                    TX_DATA_OFFSET + frame.len(),
                )
            };
            let (hdr, data) = slot_bytes.split_at_mut(TX_DATA_OFFSET);
            data.copy_from_slice(frame);
            hdr[PKT_NEXT..PKT_NEXT + 4].copy_from_slice(&0u32.to_ne_bytes());
            let len = (frame.len() as u32).to_ne_bytes();
            hdr[PKT_LEN..PKT_LEN + 4].copy_from_slice(&len);
            hdr[PKT_SNAPLEN..PKT_SNAPLEN + 4].copy_from_slice(&len);
        }
        self.status_word(start + PKT_STATUS)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a fake V3 block holding `frames`, laid out as the kernel does.
    fn block_with(frames: &[&[u8]], block_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; block_size];
        let first = 48usize;
        b[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&(first as u32).to_ne_bytes());
        let mut off = first;
        for (i, f) in frames.iter().enumerate() {
            let mac = 82usize; // TPACKET_ALIGN(48) + 16 + 2 (the kernel's usual macoff)
            let total = (mac + f.len()).div_ceil(16) * 16;
            let next = if i + 1 == frames.len() { 0 } else { total };
            b[off + PKT_NEXT..off + PKT_NEXT + 4].copy_from_slice(&(next as u32).to_ne_bytes());
            b[off + PKT_SNAPLEN..off + PKT_SNAPLEN + 4]
                .copy_from_slice(&(f.len() as u32).to_ne_bytes());
            b[off + PKT_LEN..off + PKT_LEN + 4].copy_from_slice(&(f.len() as u32).to_ne_bytes());
            b[off + PKT_MAC..off + PKT_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[off + mac..off + mac + f.len()].copy_from_slice(f);
            off += total;
        }
        b
    }

    #[test]
    fn walks_packets_of_a_block() {
        let frames: [&[u8]; 3] = [b"first frame", &[7u8; 60], b"x"];
        let b = block_with(&frames, 4096);
        let v = BlockView::new(&b);
        assert_eq!(v.num_pkts(), 3);
        let mut off = v.first_offset();
        for f in frames {
            let p = v.packet_at(off).unwrap();
            assert_eq!(p.data, f);
            assert_eq!(p.wire_len, f.len());
            off += p.next_offset;
        }
    }

    #[test]
    fn corrupt_offsets_stay_inside_the_block() {
        let mut b = block_with(&[b"hello"], 256);
        let v = BlockView::new(&b);
        assert!(v.packet_at(250).is_none());
        assert!(v.packet_at(usize::MAX - 3).is_none());
        // A snaplen running past the block end.
        let off = v.first_offset();
        b[off + PKT_SNAPLEN..off + PKT_SNAPLEN + 4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(BlockView::new(&b).packet_at(off).is_none());
        // A tp_mac pointing past the block end.
        let mut b = block_with(&[b"hello"], 256);
        b[off + PKT_MAC..off + PKT_MAC + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(BlockView::new(&b).packet_at(off).is_none());
        assert_eq!(BlockView::new(&[]).num_pkts(), 0);
    }

    #[test]
    fn layout_constants_match_the_kernel_abi() {
        assert_eq!(size_of::<libc::tpacket3_hdr>(), 48);
        assert_eq!(TX_DATA_OFFSET, 48);
        assert_eq!(BLOCK_STATUS, 8);
        assert_eq!(BLOCK_NUM_PKTS, 12);
        assert_eq!(BLOCK_FIRST_PKT, 16);
        assert_eq!(PKT_STATUS, 20);
        assert_eq!(PKT_MAC, 24);
    }
}
