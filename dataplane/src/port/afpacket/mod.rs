//! AF_PACKET backend: memory-mapped RX/TX rings (TPACKET_V3 or TPACKET_V2), no DPDK.
//!
//! [`AfPacket::open`] makes one `SOCK_RAW` packet socket per queue, each with an RX
//! ring and a TX frame ring mapped in one region, bound to the interface. The RX ring
//! is chosen by [`RxRing`]: a V3 block ring (with a retire timeout; best throughput) or
//! a V2 frame ring (each frame handed over at once; lowest latency at low load). The
//! TX ring follows the socket's version. With several queues the sockets join one
//! `PACKET_FANOUT` group (`PACKET_FANOUT_HASH`, a kernel-chosen unique id) so a flow
//! always lands on the same queue. Outgoing frames are never received back
//! (`PACKET_IGNORE_OUTGOING` and the fanout flag of the same name).
//!
//! The data path makes no syscall on receive and one `sendto` per transmit burst, and
//! allocates nothing: frames are copied between the rings and [`PoolBuf`]s of the
//! port's [`BufPool`]. This module owns the socket set-up and the per-burst logic; the
//! ring layout is in `ring`, the libc calls in `sys` (shared with `tap`).

mod ring;
pub(crate) mod sys;

use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapOptions;

pub use ring::{RxRing, TX2_DATA_OFFSET, TX_DATA_OFFSET};
pub use sys::{PortError, MAX_IFNAME_LEN};

use super::{BufPool, ChecksumStatus, PacketBuf, PoolBuf, Port, PortStats, RxChecksum};
use crate::wire::MacAddr;
use ring::{Geometry, Rings};

const ETH_HEADER_LEN: usize = 14;

/// How to open an AF_PACKET port set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Sockets (queues) to open; more than one joins them in a fanout group.
    pub queues: usize,
    /// RX ring layout (and socket version): V3 blocks (default) or V2 frames.
    pub rx_ring: RxRing,
    /// Bytes per ring block: a multiple of the page size and of `frame_size`.
    pub block_size: usize,
    /// Blocks per ring (the RX and the TX ring each have this many).
    pub block_count: usize,
    /// Frame slot size (TX, and RX in V2): a multiple of 16. The largest frame either
    /// way is `frame_size - 48` bytes with V3, `frame_size - 66` with V2 (its RX slots
    /// hold a 32-byte header and the kernel's link-header padding).
    pub frame_size: usize,
    /// Send straight to the driver, skipping the qdisc layer (`PACKET_QDISC_BYPASS`).
    pub qdisc_bypass: bool,
    /// Receive frames for any destination MAC (`PACKET_MR_PROMISC`).
    pub promiscuous: bool,
    /// Buffers in each queue's pool.
    pub pool_bufs: usize,
    /// Milliseconds after which the kernel hands over a partly filled RX block (V3
    /// only; V2 hands every frame over at once).
    pub retire_timeout_ms: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            queues: 1,
            rx_ring: RxRing::V3,
            block_size: 1 << 16,
            block_count: 64,
            frame_size: 2048,
            qdisc_bypass: false,
            promiscuous: true,
            pool_bufs: 4096,
            retire_timeout_ms: 1,
        }
    }
}

impl AfPacketConfig {
    fn validate(&self, iface: &str) -> Result<Geometry, PortError> {
        let bad = |reason: String| {
            Err(PortError::Config {
                iface: iface.to_string(),
                reason,
            })
        };
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if self.queues == 0 || self.queues > 64 {
            return bad(format!("queues must be 1..=64, got {}", self.queues));
        }
        if self.block_size == 0 || !self.block_size.is_multiple_of(page) {
            return bad(format!(
                "block_size {} is not a positive multiple of the page size {page}",
                self.block_size
            ));
        }
        let geo = Geometry {
            ring: self.rx_ring,
            block_size: self.block_size,
            block_count: self.block_count,
            frame_size: self.frame_size,
        };
        if geo.max_frame() <= ETH_HEADER_LEN
            || !self.frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
        {
            return bad(format!(
                "frame_size {} must be a multiple of 16 above {} for {:?}",
                self.frame_size,
                self.rx_ring.slot_overhead() + ETH_HEADER_LEN,
                self.rx_ring
            ));
        }
        if !self.block_size.is_multiple_of(self.frame_size) {
            return bad(format!(
                "block_size {} is not a multiple of frame_size {}",
                self.block_size, self.frame_size
            ));
        }
        if self.block_count == 0 {
            return bad("block_count must be at least 1".into());
        }
        if u32::try_from(geo.tx_frames()).is_err() || u32::try_from(geo.block_size).is_err() {
            return bad("ring geometry overflows the kernel's 32-bit fields".into());
        }
        if self.pool_bufs == 0 {
            return bad("pool_bufs must be at least 1".into());
        }
        Ok(geo)
    }
}

/// Opens AF_PACKET port sets.
pub struct AfPacket;

impl AfPacket {
    /// Opens `cfg.queues` sockets on `iface` (in the calling thread's network
    /// namespace). Needs CAP_NET_RAW.
    pub fn open(iface: &str, cfg: &AfPacketConfig) -> Result<Vec<AfPacketPort>, PortError> {
        let geo = cfg.validate(iface)?;
        let ifindex = sys::ifindex(iface)?;
        let mut ports = Vec::with_capacity(cfg.queues);
        let mut fanout_id: Option<u16> = None;
        for _ in 0..cfg.queues {
            let port = open_queue(iface, ifindex, cfg, geo)?;
            if cfg.queues > 1 {
                fanout_id = Some(join_fanout(&port.fd, iface, fanout_id)?);
            }
            ports.push(port);
        }
        Ok(ports)
    }
}

fn open_queue(
    iface: &str,
    ifindex: libc::c_int,
    cfg: &AfPacketConfig,
    geo: Geometry,
) -> Result<AfPacketPort, PortError> {
    use libc::{c_int, SOL_PACKET};
    // Protocol 0: the socket receives nothing until it is bound to our interface.
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0, iface)?;
    // The version applies to both rings of the socket, so it is set before either.
    let version = cfg.rx_ring.packet_version();
    sys::setsockopt(
        &fd,
        SOL_PACKET,
        libc::PACKET_VERSION,
        &version,
        "setsockopt(PACKET_VERSION)",
        iface,
    )?;
    // Skip malformed TX frames instead of stalling the ring on TP_STATUS_WRONG_FORMAT.
    let one: c_int = 1;
    sys::setsockopt(
        &fd,
        SOL_PACKET,
        libc::PACKET_LOSS,
        &one,
        "setsockopt(PACKET_LOSS)",
        iface,
    )?;
    sys::setsockopt(
        &fd,
        SOL_PACKET,
        libc::PACKET_IGNORE_OUTGOING,
        &one,
        "setsockopt(PACKET_IGNORE_OUTGOING)",
        iface,
    )?;
    if cfg.qdisc_bypass {
        sys::setsockopt(
            &fd,
            SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one,
            "setsockopt(PACKET_QDISC_BYPASS)",
            iface,
        )?;
    }
    set_rings(&fd, iface, cfg, geo)?;
    let map = MmapOptions::new()
        .len(geo.map_bytes())
        .map_raw(fd.as_raw_fd())
        .map_err(|e| PortError::os("mmap(rx+tx rings)", iface, e))?;
    let rings = Rings::new(map, geo).ok_or_else(|| PortError::Config {
        iface: iface.to_string(),
        reason: "ring mapping smaller than requested".into(),
    })?;

    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(PortError::last_os("bind", iface));
    }
    if cfg.promiscuous {
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        sys::setsockopt(
            &fd,
            SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "setsockopt(PACKET_ADD_MEMBERSHIP)",
            iface,
        )?;
    }
    sys::set_nonblocking(&fd, iface)?;
    let mac = sys::hwaddr(&fd, iface)?;
    let mtu = sys::mtu(&fd, iface)?;
    // Start from zero: drop the counters the kernel kept before we were ready.
    let _ = sys::getsockopt::<libc::tpacket_stats>(&fd, SOL_PACKET, libc::PACKET_STATISTICS);

    let max_frame = geo
        .max_frame()
        .min(mtu.saturating_add(ETH_HEADER_LEN).max(ETH_HEADER_LEN));
    Ok(AfPacketPort {
        rings,
        fd,
        pool: BufPool::new(cfg.pool_bufs, geo.tx_max_frame()),
        mac,
        max_frame,
        rx: match cfg.rx_ring {
            RxRing::V3 => RxCursor::Block {
                block: 0,
                inside: false,
                left: 0,
                offset: 0,
            },
            RxRing::V2 => RxCursor::Frame { slot: 0 },
        },
        tx_slot: 0,
        tx_kick_pending: false,
        stats: PortStats::default(),
        kernel_drops: Cell::new(0),
    })
}

/// Sets up the RX and TX rings (PACKET_RX_RING, PACKET_TX_RING) in the socket's
/// version, which must already be set.
fn set_rings(
    fd: &OwnedFd,
    iface: &str,
    cfg: &AfPacketConfig,
    geo: Geometry,
) -> Result<(), PortError> {
    use libc::SOL_PACKET;
    // `validate` checked that these fit the kernel's 32-bit fields.
    let frames = geo.tx_frames() as u32;
    match cfg.rx_ring {
        RxRing::V3 => {
            let rx_req = libc::tpacket_req3 {
                tp_block_size: geo.block_size as u32,
                tp_block_nr: geo.block_count as u32,
                tp_frame_size: geo.frame_size as u32,
                tp_frame_nr: frames,
                tp_retire_blk_tov: cfg.retire_timeout_ms,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            sys::setsockopt(
                fd,
                SOL_PACKET,
                libc::PACKET_RX_RING,
                &rx_req,
                "setsockopt(PACKET_RX_RING)",
                iface,
            )?;
            // The TX ring of a V3 socket takes no timeout, private area or feature word.
            let tx_req = libc::tpacket_req3 {
                tp_retire_blk_tov: 0,
                ..rx_req
            };
            sys::setsockopt(
                fd,
                SOL_PACKET,
                libc::PACKET_TX_RING,
                &tx_req,
                "setsockopt(PACKET_TX_RING)",
                iface,
            )
        }
        RxRing::V2 => {
            // Same memory for both rings; frames are packed in blocks, so frame_nr is
            // frames per block times blocks (the kernel checks it).
            let req = libc::tpacket_req {
                tp_block_size: geo.block_size as u32,
                tp_block_nr: geo.block_count as u32,
                tp_frame_size: geo.frame_size as u32,
                tp_frame_nr: frames,
            };
            sys::setsockopt(
                fd,
                SOL_PACKET,
                libc::PACKET_RX_RING,
                &req,
                "setsockopt(PACKET_RX_RING)",
                iface,
            )?;
            sys::setsockopt(
                fd,
                SOL_PACKET,
                libc::PACKET_TX_RING,
                &req,
                "setsockopt(PACKET_TX_RING)",
                iface,
            )
        }
    }
}

/// Joins `fd` to the fanout group `id`, or creates a new group with a kernel-chosen
/// unique id when `id` is `None`. Returns the group id.
fn join_fanout(fd: &OwnedFd, iface: &str, id: Option<u16>) -> Result<u16, PortError> {
    let flags = libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    let arg: u32 = match id {
        None => (libc::PACKET_FANOUT_HASH | flags | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        Some(id) => ((libc::PACKET_FANOUT_HASH | flags) << 16) | u32::from(id),
    };
    sys::setsockopt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        &arg,
        "setsockopt(PACKET_FANOUT)",
        iface,
    )?;
    match id {
        Some(id) => Ok(id),
        None => {
            let got: u32 = sys::getsockopt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT)
                .map_err(|e| PortError::os("getsockopt(PACKET_FANOUT)", iface, e))?;
            Ok((got & 0xffff) as u16)
        }
    }
}

/// A unique number per call in this process, used for locally administered MACs.
pub(crate) fn next_local_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(std::process::id()) << 24) ^ (n << 8) ^ u64::from(nanos)
}

/// Where the next received frame is, per ring layout.
#[derive(Debug, Clone, Copy)]
enum RxCursor {
    /// V3: the current block, whether we are inside it, packets left, next offset.
    Block {
        block: usize,
        inside: bool,
        left: u32,
        offset: usize,
    },
    /// V2: the next frame slot to look at.
    Frame { slot: usize },
}

/// What a received frame's `tp_status` says about its checksums.
///
/// - `TP_STATUS_CSUMNOTREADY` (the skb is `CHECKSUM_PARTIAL`): a frame generated on this
///   host — e.g. by a kernel UDP socket on the peer end of a veth — whose L4 checksum
///   field holds only the pseudo-header sum, left for a device that will never finish
///   it. Its bytes never crossed a wire, so the L4 checksum counts as good; verifying it
///   in software would wrongly drop the frame.
/// - `TP_STATUS_CSUM_VALID` (`CHECKSUM_UNNECESSARY`): the driver verified the L4
///   checksum.
///
/// The kernel reports nothing about the IPv4 header checksum (it always verifies it in
/// software itself), so that stays [`ChecksumStatus::Unknown`] and is checked by us.
pub fn rx_checksum_of_status(status: u32) -> RxChecksum {
    let l4 = if status & (libc::TP_STATUS_CSUMNOTREADY | libc::TP_STATUS_CSUM_VALID) != 0 {
        ChecksumStatus::Good
    } else {
        ChecksumStatus::Unknown
    };
    RxChecksum {
        ipv4: ChecksumStatus::Unknown,
        l4,
    }
}

/// What became of one received frame.
enum Taken {
    /// Copied into a buffer and pushed.
    Delivered,
    /// Counted as an error; its slot can be released.
    Dropped,
    /// The pool is empty: leave the frame in the ring for a later burst.
    NoBuffer,
}

/// Copies one frame from the ring into a buffer of `pool`, counting it.
fn take_frame(
    pkt: &ring::RxPacket<'_>,
    max_frame: usize,
    pool: &BufPool,
    stats: &mut PortStats,
    out: &mut Vec<PoolBuf>,
) -> Taken {
    if pkt.data.len() != pkt.wire_len || pkt.data.len() > max_frame {
        // Truncated by the ring or larger than our buffers.
        stats.rx_errors += 1;
        return Taken::Dropped;
    }
    let Some(mut buf) = pool.alloc() else {
        // Leave the frame in the ring; the caller gets buffers back later.
        stats.alloc_failed += 1;
        return Taken::NoBuffer;
    };
    if buf.fill_from(pkt.data).is_err() {
        stats.rx_errors += 1;
        return Taken::Dropped;
    }
    buf.set_rx_checksum(rx_checksum_of_status(pkt.status));
    stats.rx_packets += 1;
    stats.rx_bytes += pkt.data.len() as u64;
    out.push(buf);
    Taken::Delivered
}

/// One AF_PACKET queue: an RX and a TX ring on one socket.
pub struct AfPacketPort {
    // Field order matters for drop: unmap the rings before closing the socket.
    rings: Rings,
    fd: OwnedFd,
    pool: BufPool,
    mac: MacAddr,
    /// Largest frame we accept either way (interface MTU + 14, capped by the slot).
    max_frame: usize,
    rx: RxCursor,
    // TX cursor: the next slot to fill, and whether a kick failed and must be retried.
    tx_slot: usize,
    tx_kick_pending: bool,
    stats: PortStats,
    /// Drops reported by PACKET_STATISTICS (which resets on read), accumulated.
    kernel_drops: Cell<u64>,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("fd", &self.fd.as_raw_fd())
            .field("mac", &self.mac)
            .field("geometry", &self.rings.geometry())
            .field("rx", &self.rx)
            .finish()
    }
}

impl AfPacketPort {
    /// The pool this port allocates receive buffers from.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// Largest frame this port receives or sends; longer ones are dropped and counted
    /// in `rx_errors` / `tx_errors`.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame
    }

    /// Receives from a V3 block ring, walking the packets of each user-owned block.
    fn rx_blocks(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let RxCursor::Block {
            mut block,
            mut inside,
            mut left,
            mut offset,
        } = self.rx
        else {
            return 0;
        };
        let blocks = self.rings.geometry().block_count;
        // Hands the current block back to the kernel; returns the next one's index.
        let release = |rings: &mut Rings, block: usize| {
            rings.rx_block_release(block);
            (block + 1) % blocks
        };
        let mut got = 0;
        while got < max {
            if !inside {
                if !self.rings.rx_block_ready(block) {
                    break;
                }
                let view = self.rings.rx_block(block);
                left = view.num_pkts();
                offset = view.first_offset();
                inside = true;
                if left == 0 {
                    block = release(&mut self.rings, block);
                    inside = false;
                    continue;
                }
            }
            let Some(pkt) = self.rings.rx_block(block).packet_at(offset) else {
                // A header pointing outside the block: give up on the rest of it.
                self.stats.rx_errors += u64::from(left);
                block = release(&mut self.rings, block);
                inside = false;
                continue;
            };
            let next_offset = pkt.next_offset;
            match take_frame(&pkt, self.max_frame, &self.pool, &mut self.stats, out) {
                Taken::NoBuffer => break,
                Taken::Delivered => got += 1,
                Taken::Dropped => {}
            }
            left -= 1;
            if left == 0 {
                block = release(&mut self.rings, block);
                inside = false;
            } else if next_offset == 0 {
                self.stats.rx_errors += u64::from(left);
                block = release(&mut self.rings, block);
                inside = false;
            } else {
                offset = offset.saturating_add(next_offset);
            }
        }
        self.rx = RxCursor::Block {
            block,
            inside,
            left,
            offset,
        };
        got
    }

    /// Receives from a V2 frame ring: each user-owned slot in ring order, handed back
    /// as soon as it is copied.
    fn rx_frames(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let RxCursor::Frame { mut slot } = self.rx else {
            return 0;
        };
        let slots = self.rings.geometry().tx_frames();
        let mut got = 0;
        // The kernel fills slots in ring order; one not yet ours ends the burst (a later
        // one may already be, while another CPU is still copying into this one).
        while got < max && self.rings.rx_frame_ready(slot) {
            let taken = match self.rings.rx_frame(slot).packet() {
                Some(pkt) => take_frame(&pkt, self.max_frame, &self.pool, &mut self.stats, out),
                None => {
                    // A header pointing outside its slot.
                    self.stats.rx_errors += 1;
                    Taken::Dropped
                }
            };
            match taken {
                Taken::NoBuffer => break,
                Taken::Delivered => got += 1,
                Taken::Dropped => {}
            }
            self.rings.rx_frame_release(slot);
            slot = (slot + 1) % slots;
        }
        self.rx = RxCursor::Frame { slot };
        got
    }

    /// Asks the kernel to send every frame marked SEND_REQUEST.
    fn kick(&mut self) {
        // SAFETY: a zero-length sendto with null buffer and address is how a TX ring
        // is flushed; no memory is passed to the kernel.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error().raw_os_error();
            // Busy device or full qdisc is transient; anything else (link down...) is
            // counted. Either way the frames stay queued in the ring, so kick again on
            // the next burst even if it brings no new frame.
            if !matches!(
                err,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR)
            ) {
                self.stats.tx_errors += 1;
            }
            self.tx_kick_pending = true;
            return;
        }
        self.tx_kick_pending = false;
    }
}

impl Port for AfPacketPort {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        match self.rx {
            RxCursor::Block { .. } => self.rx_blocks(out, max),
            RxCursor::Frame { .. } => self.rx_frames(out, max),
        }
    }

    fn tx_burst(&mut self, bufs: &mut Vec<PoolBuf>) -> usize {
        let slots = self.rings.geometry().tx_frames();
        let mut taken = 0;
        let mut queued = 0;
        for buf in bufs.iter() {
            let frame = buf.data();
            if frame.len() > self.max_frame || frame.len() < ETH_HEADER_LEN {
                // Can never be sent: consume and count it rather than block the queue.
                self.stats.tx_errors += 1;
                taken += 1;
                continue;
            }
            if !self.rings.tx_slot_send(self.tx_slot, frame) {
                break;
            }
            self.tx_slot = (self.tx_slot + 1) % slots;
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += frame.len() as u64;
            taken += 1;
            queued += 1;
        }
        self.stats.tx_dropped += (bufs.len() - taken) as u64;
        bufs.drain(..taken);
        // Kick for new frames, after a failed kick, and when the ring is full (frames
        // still waiting for a slot) so queued frames are flushed.
        if queued > 0 || self.tx_kick_pending || !bufs.is_empty() {
            self.kick();
        }
        taken
    }

    fn alloc(&mut self) -> Option<PoolBuf> {
        self.pool.alloc_counted(&mut self.stats)
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn stats(&self) -> PortStats {
        // `tpacket_stats` is the common prefix of the V2 and V3 answers (the kernel
        // copies at most the length asked for), and holds `tp_drops`.
        if let Ok(s) = sys::getsockopt::<libc::tpacket_stats>(
            &self.fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
        ) {
            self.kernel_drops
                .set(self.kernel_drops.get() + u64::from(s.tp_drops));
        }
        PortStats {
            rx_dropped: self.stats.rx_dropped + self.kernel_drops.get(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated_before_any_syscall() {
        let base = AfPacketConfig::default();
        let cases = [
            AfPacketConfig {
                queues: 0,
                ..base.clone()
            },
            AfPacketConfig {
                block_size: 5000,
                ..base.clone()
            },
            AfPacketConfig {
                frame_size: 2000,
                ..base.clone()
            },
            AfPacketConfig {
                frame_size: 48,
                ..base.clone()
            },
            AfPacketConfig {
                frame_size: 4096 * 3,
                block_size: 4096 * 4,
                ..base.clone()
            },
            AfPacketConfig {
                block_count: 0,
                ..base.clone()
            },
            AfPacketConfig {
                pool_bufs: 0,
                ..base.clone()
            },
            // Room for a frame after the V3 header (48), not after the V2 RX one (66).
            AfPacketConfig {
                rx_ring: RxRing::V2,
                frame_size: 64,
                block_size: 4096,
                ..base.clone()
            },
        ];
        for cfg in cases {
            let err = AfPacket::open("lo", &cfg).unwrap_err();
            assert!(matches!(err, PortError::Config { .. }), "{cfg:?}: {err}");
        }
    }

    #[test]
    fn missing_interface_is_reported() {
        let err = AfPacket::open("nosuchif0", &AfPacketConfig::default()).unwrap_err();
        assert!(matches!(err, PortError::NoSuchInterface { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "network interface \"nosuchif0\" does not exist in this network namespace"
        );
    }

    /// Whether the test may run: root, or a skip (outside CI) / failure (under CI).
    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() == 0 };
        assert!(
            root || std::env::var_os("CI").is_none(),
            "CI must run as root"
        );
        root
    }

    /// Two ports (tx, rx) on `lo` of a private, fresh network namespace with lo up, so
    /// the tests see no host traffic.
    fn lo_pair(cfg: AfPacketConfig) -> (AfPacketPort, AfPacketPort) {
        std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) moves only this short-lived thread into a
            // new, empty network namespace; no memory is passed.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0, "lo").unwrap();
            sys::set_up(&ctl, "lo").unwrap();
            let tx = AfPacket::open("lo", &cfg).unwrap().remove(0);
            let rx = AfPacket::open("lo", &cfg).unwrap().remove(0);
            (tx, rx)
        })
        .join()
        .unwrap()
    }

    #[test]
    fn tp_status_maps_to_checksum_verdicts() {
        use ChecksumStatus::{Good, Unknown};
        let cases = [
            (libc::TP_STATUS_USER, Unknown),
            (libc::TP_STATUS_USER | libc::TP_STATUS_CSUMNOTREADY, Good),
            (libc::TP_STATUS_USER | libc::TP_STATUS_CSUM_VALID, Good),
            (libc::TP_STATUS_USER | libc::TP_STATUS_LOSING, Unknown),
        ];
        for (status, l4) in cases {
            let c = rx_checksum_of_status(status);
            assert_eq!(c, RxChecksum { ipv4: Unknown, l4 }, "status {status:#x}");
        }
    }

    /// A kernel UDP datagram on lo arrives `CHECKSUM_PARTIAL` (`TP_STATUS_CSUMNOTREADY`:
    /// its checksum field holds only the pseudo-header sum) and is reported as an L4
    /// checksum the kernel vouches for; a frame sent raw through a packet socket has no
    /// such status, and its checksums are left to software.
    #[test]
    fn kernel_udp_frames_carry_the_checksum_verdict() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        let cfg = AfPacketConfig {
            block_count: 4,
            pool_bufs: 64,
            rx_ring: RxRing::V2,
            ..AfPacketConfig::default()
        };
        let marker = next_local_seed().to_be_bytes();
        let (mut tx, mut rx) = std::thread::spawn(move || {
            // SAFETY: as in lo_pair: only this thread moves to a new network namespace.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0, "lo").unwrap();
            sys::set_up(&ctl, "lo").unwrap();
            let tx = AfPacket::open("lo", &cfg).unwrap().remove(0);
            let rx = AfPacket::open("lo", &cfg).unwrap().remove(0);
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            udp.send_to(&marker, "127.0.0.1:9").unwrap();
            (tx, rx)
        })
        .join()
        .unwrap();
        let mut raw = tx.alloc().unwrap();
        raw.fill_from(&marked_frame(marker)).unwrap();
        assert_eq!(tx.tx_burst(&mut vec![raw]), 1);

        let (mut kernel, mut ours) = (None, None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut out = Vec::with_capacity(32);
        while (kernel.is_none() || ours.is_none()) && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut out, 32);
            for b in out.drain(..) {
                let d = b.data();
                // IPv4/UDP to port 9 with the marker as its payload (42 = 14 + 20 + 8).
                if d.get(12..14) == Some(&[0x08, 0x00]) && d.get(42..50) == Some(&marker[..]) {
                    kernel = Some(b.rx_checksum());
                } else if d.get(14..22) == Some(&marker[..]) {
                    ours = Some(b.rx_checksum());
                }
            }
        }
        let good_l4 = RxChecksum {
            ipv4: ChecksumStatus::Unknown,
            l4: ChecksumStatus::Good,
        };
        assert_eq!(kernel, Some(good_l4), "the kernel's UDP datagram");
        assert_eq!(ours, Some(RxChecksum::UNKNOWN), "our raw frame");
    }

    /// A 60-byte frame of the local experimental ethertype carrying `marker` at 14..22.
    fn marked_frame(marker: [u8; 8]) -> [u8; 60] {
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        frame[14..22].copy_from_slice(&marker);
        frame
    }

    #[test]
    fn loopback_port_sends_and_receives_its_frames_once() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        for ring in [RxRing::V3, RxRing::V2] {
            loopback_sends_and_receives_once(ring);
        }
    }

    fn loopback_sends_and_receives_once(rx_ring: RxRing) {
        let cfg = AfPacketConfig {
            rx_ring,
            block_count: 4,
            pool_bufs: 64,
            ..AfPacketConfig::default()
        };
        // Two sockets on the lo of a private network namespace (no host traffic): what
        // `tx` sends, `rx` sees once, as the incoming copy lo loops back (the outgoing
        // copy is ignored: PACKET_IGNORE_OUTGOING).
        let (mut tx, mut rx) = lo_pair(cfg);
        let marker = next_local_seed().to_be_bytes();
        let mut frame = marked_frame(marker);
        let mut bufs = Vec::new();
        for i in 0..10u8 {
            let mut b = tx.alloc().unwrap();
            frame[22] = i;
            b.fill_from(&frame).unwrap();
            bufs.push(b);
        }
        assert_eq!(tx.tx_burst(&mut bufs), 10);
        assert!(bufs.is_empty());
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut out = Vec::with_capacity(32);
        while seen.len() < 10 && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut out, 32);
            for b in out.drain(..) {
                if b.data().get(14..22) == Some(&marker[..]) {
                    seen.push(b.data()[22]);
                }
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<u8>>(), "{rx_ring:?}");
        let s = tx.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (10, 600));
        assert!(rx.stats().rx_packets >= 10);
    }

    #[test]
    fn an_empty_pool_leaves_frames_in_the_ring_until_buffers_return() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        for ring in [RxRing::V3, RxRing::V2] {
            empty_pool_leaves_frames_in_the_ring(ring);
        }
    }

    fn empty_pool_leaves_frames_in_the_ring(rx_ring: RxRing) {
        let cfg = AfPacketConfig {
            rx_ring,
            block_count: 4,
            pool_bufs: 4,
            ..AfPacketConfig::default()
        };
        let (mut tx, mut rx) = lo_pair(cfg);
        let marker = next_local_seed().to_be_bytes();
        let mut frame = marked_frame(marker);
        let mut seen = Vec::new();
        for i in 0..10u8 {
            let mut b = tx.alloc().unwrap();
            frame[22] = i;
            b.fill_from(&frame).unwrap();
            let mut bufs = vec![b];
            assert_eq!(tx.tx_burst(&mut bufs), 1);
        }
        // Hold every buffer: after 4 frames the pool is empty and the rest must stay in
        // the ring, then arrive in order once the buffers come back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut held = Vec::with_capacity(32);
        while seen.len() < 10 && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut held, 32);
            if held.len() == 4 {
                // With V3 the rest may sit in a block the kernel has not retired yet:
                // poll until a frame is visible and its allocation fails, receiving
                // nothing meanwhile.
                while rx.stats().alloc_failed == 0 && std::time::Instant::now() < deadline {
                    assert_eq!(rx.rx_burst(&mut held, 32), 0, "{rx_ring:?}: pool is empty");
                }
                assert!(rx.stats().alloc_failed >= 1, "{rx_ring:?}");
            }
            if held.len() == 4 || seen.len() + held.len() == 10 {
                for b in held.drain(..) {
                    if b.data().get(14..22) == Some(&marker[..]) {
                        seen.push(b.data()[22]);
                    }
                }
            }
        }
        seen.extend(
            held.drain(..)
                .filter(|b| b.data().get(14..22) == Some(&marker[..]))
                .map(|b| b.data()[22]),
        );
        assert_eq!(seen, (0..10).collect::<Vec<u8>>(), "{rx_ring:?}");
        assert_eq!(rx.stats().rx_dropped, 0, "{rx_ring:?}");
    }

    #[test]
    fn a_full_rx_ring_counts_the_kernels_drops() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        for ring in [RxRing::V3, RxRing::V2] {
            full_rx_ring_counts_drops(ring);
        }
    }

    fn full_rx_ring_counts_drops(rx_ring: RxRing) {
        // One 4 KiB block: 2 frame slots in V2, a few dozen small frames in V3.
        let cfg = AfPacketConfig {
            rx_ring,
            block_size: 4096,
            block_count: 1,
            frame_size: 2048,
            pool_bufs: 256,
            ..AfPacketConfig::default()
        };
        let (mut tx, mut rx) = lo_pair(cfg);
        const SENT: u64 = 100;
        let mut frame = marked_frame([0; 8]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut bufs = Vec::new();
        for i in 0..SENT {
            frame[14..22].copy_from_slice(&i.to_be_bytes());
            let mut b = tx.alloc().unwrap();
            b.fill_from(&frame).unwrap();
            bufs.push(b);
            // The TX ring has 2 slots too: retry until the kernel took the frame.
            while !bufs.is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{rx_ring:?}: TX stuck"
                );
                tx.tx_burst(&mut bufs);
            }
        }
        // Nothing was read while sending: the ring filled and the kernel dropped the rest.
        let mut received = 0u64;
        let mut out = Vec::new();
        while received + rx.stats().rx_dropped < SENT && std::time::Instant::now() < deadline {
            received += rx.rx_burst(&mut out, 32) as u64;
            out.clear();
        }
        let s = rx.stats();
        assert!(s.rx_dropped > 0, "{rx_ring:?}: {s:?}");
        assert_eq!(received + s.rx_dropped, SENT, "{rx_ring:?}: {s:?}");
        // PACKET_STATISTICS resets on read: the port keeps the sum, counted once.
        assert_eq!(rx.stats().rx_dropped, s.rx_dropped, "{rx_ring:?}");
    }

    #[test]
    fn a_full_tx_ring_leaves_frames_with_the_caller_and_recovers() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        for ring in [RxRing::V3, RxRing::V2] {
            full_tx_ring_recovers(ring);
        }
    }

    fn full_tx_ring_recovers(rx_ring: RxRing) {
        // One 4 KiB block of 2 KiB slots: a TX ring of 2 frames.
        let cfg = AfPacketConfig {
            rx_ring,
            block_size: 4096,
            block_count: 1,
            frame_size: 2048,
            pool_bufs: 16,
            ..AfPacketConfig::default()
        };
        std::thread::spawn(move || {
            // SAFETY: as above, only this thread enters a new network namespace, in
            // which lo starts down.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let mut tx = AfPacket::open("lo", &cfg).unwrap().remove(0);
            // The receiver gets a ring of its own size: with one block, a frame arriving
            // while the block is with us would be dropped, and this test is about TX.
            let rx_cfg = AfPacketConfig {
                rx_ring,
                ..AfPacketConfig::default()
            };
            let mut rx = AfPacket::open("lo", &rx_cfg).unwrap().remove(0);
            let mut bufs = Vec::new();
            for i in 0..5u8 {
                let mut b = tx.alloc().unwrap();
                b.fill_from(&[i; 60]).unwrap();
                bufs.push(b);
            }
            // Link down: the 2 slots fill and stay queued; 3 frames stay with us.
            assert_eq!(tx.tx_burst(&mut bufs), 2);
            assert_eq!(bufs.len(), 3);
            assert_eq!(
                bufs[0].data()[0],
                2,
                "the frames left are the last ones, in order"
            );
            let s = tx.stats();
            assert_eq!((s.tx_dropped, s.tx_packets), (3, 2));
            assert!(s.tx_errors >= 1, "the failed kick is counted: {s:?}");
            assert_eq!(tx.tx_burst(&mut bufs), 0);
            // Link up: the next burst flushes the queued frames, then takes the rest.
            let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0, "lo").unwrap();
            sys::set_up(&ctl, "lo").unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut seen = Vec::new();
            let mut out = Vec::new();
            while seen.len() < 5 && std::time::Instant::now() < deadline {
                tx.tx_burst(&mut bufs);
                rx.rx_burst(&mut out, 32);
                seen.extend(out.drain(..).filter(|b| b.len() == 60).map(|b| b.data()[0]));
            }
            assert_eq!(seen, [0, 1, 2, 3, 4], "{rx_ring:?}: {:?}", rx.stats());
            assert!(bufs.is_empty());
        })
        .join()
        .unwrap();
    }
}
