//! The TPACKET memory layouts: one `mmap` holding the RX ring followed by the TX frame
//! ring, and the ownership hand-off with the kernel through status words. Two RX
//! layouts exist, chosen per socket by [`RxRing`] (`PACKET_VERSION` is per socket, so the
//! TX ring follows the same version):
//!
//! - V3 RX (blocks): a block belongs to user space while its `block_status` has
//!   `TP_STATUS_USER`; its packets are then read through a plain `&[u8]` of the block
//!   (the kernel does not touch a block it handed over) and parsed with bounds checks by
//!   [`BlockView`], so a corrupt offset cannot read outside the block. Writing
//!   `TP_STATUS_KERNEL` returns it.
//! - V2 RX (frames): each fixed-size frame slot has its own `tpacket2_hdr`; a slot is
//!   ours while its `tp_status` has `TP_STATUS_USER`, read through [`FrameView`] (bounds
//!   checked against the slot) and returned with `TP_STATUS_KERNEL`.
//! - TX (both): a frame slot is ours while its `tp_status` is `TP_STATUS_AVAILABLE`; we
//!   write the frame after the version's header and publish it with
//!   `TP_STATUS_SEND_REQUEST`.
//!
//! Status words are accessed atomically (acquire on load, release on store). This
//! module owns the pointer arithmetic; it must not make syscalls or count stats.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapRaw;

/// Which TPACKET version (and so which RX ring layout) a socket uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RxRing {
    /// TPACKET_V3 block ring: the kernel packs many frames into a block and hands the
    /// block over when it is full or when its retire timeout fires (at least 1 ms, one
    /// jiffy or more in practice). Fewest cache misses and status-word writes per
    /// frame: best throughput, but a lightly loaded port waits for the timeout.
    #[default]
    V3,
    /// TPACKET_V2 frame ring: each frame is handed over as soon as it is written, as
    /// DPDK's `net_af_packet` does. Lowest latency at low load; one status word per
    /// frame. The ring holds `block_size / frame_size * block_count` frames whatever
    /// their length (2048 with the default geometry, where V3 packs tens of thousands
    /// of small frames into the same memory), so raise `block_count` when the receiver
    /// may fall behind bursts.
    V2,
}

/// Where a TPACKET_V3 TX frame's data starts in its slot:
/// `TPACKET3_HDRLEN - sizeof(sockaddr_ll)`, which is what the kernel uses when
/// `PACKET_TX_HAS_OFF` is not set.
pub const TX_DATA_OFFSET: usize = libc::TPACKET3_HDRLEN - size_of::<libc::sockaddr_ll>();

/// The same for TPACKET_V2: `TPACKET2_HDRLEN - sizeof(sockaddr_ll)`.
pub const TX2_DATA_OFFSET: usize = libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>();

/// Where the kernel puts an Ethernet frame in a V2 RX slot (`tp_mac`): the header and
/// its `sockaddr_ll`, plus room for a 16-byte link header, aligned, minus the 14 bytes
/// of the Ethernet header. A slot of `frame_size` holds `frame_size - this` bytes.
pub const RX2_MAC_OFFSET: usize =
    (libc::TPACKET2_HDRLEN + 16).div_ceil(libc::TPACKET_ALIGNMENT) * libc::TPACKET_ALIGNMENT - 14;

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
const PKT2_STATUS: usize = offset_of!(libc::tpacket2_hdr, tp_status);
const PKT2_LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
const PKT2_SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
const PKT2_MAC: usize = offset_of!(libc::tpacket2_hdr, tp_mac);

/// The fields of a frame header this module writes or polls, per version.
struct FrameHeader {
    status: usize,
    len: usize,
    snaplen: usize,
    /// `tp_next_offset`, which V3 TX requires to be zero; V2 has none.
    next: Option<usize>,
    data: usize,
}

impl RxRing {
    /// Where a TX frame's data starts in its slot.
    pub fn tx_data_offset(self) -> usize {
        match self {
            RxRing::V3 => TX_DATA_OFFSET,
            RxRing::V2 => TX2_DATA_OFFSET,
        }
    }

    /// Bytes of a frame slot that are not frame data, on the tighter of the two rings:
    /// the TX header for V3 (which packs received frames into larger blocks), the RX
    /// header and padding ([`RX2_MAC_OFFSET`]) for V2.
    pub fn slot_overhead(self) -> usize {
        match self {
            RxRing::V3 => TX_DATA_OFFSET,
            RxRing::V2 => RX2_MAC_OFFSET.max(TX2_DATA_OFFSET),
        }
    }

    /// The value for `setsockopt(PACKET_VERSION)`.
    pub fn packet_version(self) -> libc::c_int {
        let v = match self {
            RxRing::V3 => libc::tpacket_versions::TPACKET_V3,
            RxRing::V2 => libc::tpacket_versions::TPACKET_V2,
        };
        v as libc::c_int
    }

    fn tx_header(self) -> FrameHeader {
        match self {
            RxRing::V3 => FrameHeader {
                status: PKT_STATUS,
                len: PKT_LEN,
                snaplen: PKT_SNAPLEN,
                next: Some(PKT_NEXT),
                data: TX_DATA_OFFSET,
            },
            RxRing::V2 => FrameHeader {
                status: PKT2_STATUS,
                len: PKT2_LEN,
                snaplen: PKT2_SNAPLEN,
                next: None,
                data: TX2_DATA_OFFSET,
            },
        }
    }
}

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

/// Bounds-checked reading of a user-owned TPACKET_V2 RX frame slot.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    frame: &'a [u8],
}

impl<'a> FrameView<'a> {
    pub fn new(frame: &'a [u8]) -> Self {
        FrameView { frame }
    }

    /// The packet in the slot, or `None` when the header or its data would lie outside
    /// the slot.
    pub fn packet(&self) -> Option<RxPacket<'a>> {
        let f = self.frame;
        if f.len() < size_of::<libc::tpacket2_hdr>() {
            return None;
        }
        let snaplen = ne_u32(f, PKT2_SNAPLEN)? as usize;
        let mac = usize::from(ne_u16(f, PKT2_MAC)?);
        let data = f.get(mac..mac.checked_add(snaplen)?)?;
        Some(RxPacket {
            data,
            wire_len: ne_u32(f, PKT2_LEN)? as usize,
            status: ne_u32(f, PKT2_STATUS)?,
            next_offset: 0,
        })
    }
}

/// Geometry of the mapped rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub ring: RxRing,
    pub block_size: usize,
    pub block_count: usize,
    pub frame_size: usize,
}

impl Geometry {
    pub fn frames_per_block(&self) -> usize {
        self.block_size / self.frame_size
    }
    /// Frame slots of the TX ring (and of the RX ring in V2).
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
        self.frame_size.saturating_sub(self.ring.tx_data_offset())
    }
    /// Largest frame both rings carry whole: see [`RxRing::slot_overhead`].
    pub fn max_frame(&self) -> usize {
        self.frame_size.saturating_sub(self.ring.slot_overhead())
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
        (map.len() >= geo.map_bytes() && geo.frame_size > geo.ring.tx_data_offset())
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

    /// Offset of frame slot `slot` in the ring starting at `ring_base`: slots are packed
    /// in blocks (`block_size` is a multiple of `frame_size`).
    fn slot_start(&self, ring_base: usize, slot: usize) -> usize {
        let fpb = self.geo.frames_per_block();
        let slot = slot % self.geo.tx_frames();
        ring_base + (slot / fpb) * self.geo.block_size + (slot % fpb) * self.geo.frame_size
    }

    fn tx_slot_start(&self, slot: usize) -> usize {
        self.slot_start(self.geo.ring_bytes(), slot)
    }

    fn rx_frame_start(&self, slot: usize) -> usize {
        self.slot_start(0, slot)
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

    /// Whether user space owns V2 RX frame slot `slot`. Only for a V2 ring.
    pub fn rx_frame_ready(&self, slot: usize) -> bool {
        debug_assert_eq!(self.geo.ring, RxRing::V2);
        let status = self.status_word(self.rx_frame_start(slot) + PKT2_STATUS);
        status.load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Reads a user-owned V2 RX frame slot. Only call after [`rx_frame_ready`]
    /// returned true and before [`rx_frame_release`].
    ///
    /// [`rx_frame_ready`]: Self::rx_frame_ready
    /// [`rx_frame_release`]: Self::rx_frame_release
    pub fn rx_frame(&self, slot: usize) -> FrameView<'_> {
        let start = self.rx_frame_start(slot);
        // SAFETY: the range is one frame slot inside the RX ring of the mapping. The
        // slot is owned by user space (TP_STATUS_USER was observed with acquire
        // ordering), so the kernel does not write to it until `rx_frame_release`, which
        // takes `&mut self` and so cannot run while this shared borrow is alive.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(start), self.geo.frame_size)
        };
        FrameView::new(bytes)
    }

    /// Hands V2 RX frame slot `slot` back to the kernel.
    pub fn rx_frame_release(&mut self, slot: usize) {
        let status = self.status_word(self.rx_frame_start(slot) + PKT2_STATUS);
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The TX slot's status word value.
    pub fn tx_slot_status(&self, slot: usize) -> u32 {
        let status = self.geo.ring.tx_header().status;
        self.status_word(self.tx_slot_start(slot) + status)
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
        let fields = self.geo.ring.tx_header();
        let start = self.tx_slot_start(slot);
        {
            // SAFETY: the slot `[start, start + frame_size)` lies inside the TX ring of
            // the mapping and `fields.data + frame.len() <= frame_size` (checked above);
            // it is AVAILABLE, i.e. owned by user space: the kernel does not read or
            // write it until we store SEND_REQUEST below, after this borrow ends.
            // `&mut self` guarantees no other borrow of the mapping is alive.
            let slot_bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    self.map.as_mut_ptr().add(start),
                    fields.data + frame.len(),
                )
            };
            let (hdr, data) = slot_bytes.split_at_mut(fields.data);
            data.copy_from_slice(frame);
            if let Some(next) = fields.next {
                hdr[next..next + 4].copy_from_slice(&0u32.to_ne_bytes());
            }
            let len = (frame.len() as u32).to_ne_bytes();
            hdr[fields.len..fields.len + 4].copy_from_slice(&len);
            hdr[fields.snaplen..fields.snaplen + 4].copy_from_slice(&len);
        }
        self.status_word(start + fields.status)
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
        assert_eq!(size_of::<libc::tpacket2_hdr>(), 32);
        assert_eq!(TX2_DATA_OFFSET, 32);
        assert_eq!(RX2_MAC_OFFSET, 66);
        assert_eq!(
            (PKT2_STATUS, PKT2_LEN, PKT2_SNAPLEN, PKT2_MAC),
            (0, 4, 8, 12)
        );
    }

    /// Builds a fake V2 RX slot holding `frame` at `mac`, as the kernel does.
    fn slot_with(frame: &[u8], mac: usize, slot_size: usize) -> Vec<u8> {
        let mut s = vec![0u8; slot_size];
        let len = (frame.len() as u32).to_ne_bytes();
        s[PKT2_STATUS..PKT2_STATUS + 4].copy_from_slice(&libc::TP_STATUS_USER.to_ne_bytes());
        s[PKT2_LEN..PKT2_LEN + 4].copy_from_slice(&len);
        s[PKT2_SNAPLEN..PKT2_SNAPLEN + 4].copy_from_slice(&len);
        s[PKT2_MAC..PKT2_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
        s[mac..mac + frame.len()].copy_from_slice(frame);
        s
    }

    #[test]
    fn reads_the_packet_of_a_v2_slot() {
        for frame in [&b"x"[..], &[9u8; 60], &[1u8; 2048 - RX2_MAC_OFFSET]] {
            let s = slot_with(frame, RX2_MAC_OFFSET, 2048);
            let p = FrameView::new(&s).packet().unwrap();
            assert_eq!(p.data, frame);
            assert_eq!(p.wire_len, frame.len());
            assert_eq!(p.status, libc::TP_STATUS_USER);
            assert_eq!(p.next_offset, 0);
        }
    }

    #[test]
    fn corrupt_v2_headers_stay_inside_the_slot() {
        let good = slot_with(b"hello", RX2_MAC_OFFSET, 256);
        // Shorter than the header.
        assert!(FrameView::new(&good[..31]).packet().is_none());
        assert!(FrameView::new(&[]).packet().is_none());
        // A snaplen running past the slot end (and one that overflows).
        for snap in [256 - RX2_MAC_OFFSET as u32 + 1, 10_000, u32::MAX] {
            let mut s = good.clone();
            s[PKT2_SNAPLEN..PKT2_SNAPLEN + 4].copy_from_slice(&snap.to_ne_bytes());
            assert!(FrameView::new(&s).packet().is_none(), "snaplen {snap}");
        }
        // A tp_mac pointing past the slot end.
        let mut s = good.clone();
        s[PKT2_MAC..PKT2_MAC + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(FrameView::new(&s).packet().is_none());
        // Truncated by the kernel: tp_len larger than the captured bytes is reported.
        let mut s = good;
        s[PKT2_LEN..PKT2_LEN + 4].copy_from_slice(&9000u32.to_ne_bytes());
        let p = FrameView::new(&s).packet().unwrap();
        assert_eq!((p.data.len(), p.wire_len), (5, 9000));
    }

    /// The same checks the parsers promise, over seeded random headers: never a panic,
    /// and a packet is returned exactly when its header and data fit.
    #[test]
    fn random_ring_headers_never_read_outside() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0xaf23);
        for i in 0..5000 {
            let len = rng.gen_range(0..600usize);
            let mut b = vec![0u8; len];
            rng.fill(&mut b[..]);
            // Small header values half the time, so some inputs are valid.
            if i % 2 == 0 && len >= 32 {
                let mac = rng.gen_range(0..len as u16 + 8);
                let snap = rng.gen_range(0..len as u32 + 8);
                b[PKT2_MAC..PKT2_MAC + 2].copy_from_slice(&mac.to_ne_bytes());
                b[PKT2_SNAPLEN..PKT2_SNAPLEN + 4].copy_from_slice(&snap.to_ne_bytes());
            }
            let f = FrameView::new(&b);
            let fits = len >= 32 && {
                let mac = usize::from(ne_u16(&b, PKT2_MAC).unwrap());
                let snap = ne_u32(&b, PKT2_SNAPLEN).unwrap() as usize;
                mac + snap <= len
            };
            assert_eq!(f.packet().is_some(), fits, "input {i}");
            if let Some(p) = f.packet() {
                assert_eq!(p.data.len(), ne_u32(&b, PKT2_SNAPLEN).unwrap() as usize);
            }

            let v = BlockView::new(&b);
            let mut off = v.first_offset();
            for _ in 0..v.num_pkts().min(64) {
                match v.packet_at(off) {
                    Some(p) if p.next_offset > 0 => off = off.saturating_add(p.next_offset),
                    _ => break,
                }
            }
            let off = rng.gen_range(0..len + 64);
            if let Some(p) = v.packet_at(off) {
                assert!(off + size_of::<libc::tpacket3_hdr>() <= len);
                assert!(p.data.len() <= len);
            }
        }
    }

    #[test]
    fn geometry_limits_follow_the_version() {
        let v3 = Geometry {
            ring: RxRing::V3,
            block_size: 4096,
            block_count: 2,
            frame_size: 2048,
        };
        assert_eq!((v3.tx_max_frame(), v3.max_frame()), (2000, 2000));
        let v2 = Geometry {
            ring: RxRing::V2,
            ..v3
        };
        assert_eq!((v2.tx_max_frame(), v2.max_frame()), (2016, 2048 - 66));
        assert_eq!(v2.tx_frames(), 4);
        assert_eq!(RxRing::default(), RxRing::V3);
    }
}
