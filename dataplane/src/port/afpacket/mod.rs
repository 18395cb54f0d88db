//! AF_PACKET backend: TPACKET_V3 memory-mapped RX/TX rings, no DPDK.
//!
//! [`AfPacket::open`] makes one `SOCK_RAW` packet socket per queue, each with an RX
//! block ring (with a retire timeout) and a TX frame ring mapped in one region, bound
//! to the interface. With several queues the sockets join one `PACKET_FANOUT` group
//! (`PACKET_FANOUT_HASH`, a kernel-chosen unique id) so a flow always lands on the same
//! queue. Outgoing frames are never received back (`PACKET_IGNORE_OUTGOING` and the
//! fanout flag of the same name).
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

pub use ring::TX_DATA_OFFSET;
pub use sys::{PortError, MAX_IFNAME_LEN};

use super::{BufPool, PacketBuf, PoolBuf, Port, PortStats};
use crate::wire::MacAddr;
use ring::{Geometry, Rings};

const ETH_HEADER_LEN: usize = 14;

/// How to open an AF_PACKET port set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Sockets (queues) to open; more than one joins them in a fanout group.
    pub queues: usize,
    /// Bytes per ring block: a multiple of the page size and of `frame_size`.
    pub block_size: usize,
    /// Blocks per ring (the RX and the TX ring each have this many).
    pub block_count: usize,
    /// TX slot size: a multiple of 16, more than 48 (its header); the largest frame
    /// either way is `frame_size - 48` bytes.
    pub frame_size: usize,
    /// Send straight to the driver, skipping the qdisc layer (`PACKET_QDISC_BYPASS`).
    pub qdisc_bypass: bool,
    /// Receive frames for any destination MAC (`PACKET_MR_PROMISC`).
    pub promiscuous: bool,
    /// Buffers in each queue's pool.
    pub pool_bufs: usize,
    /// Milliseconds after which the kernel hands over a partly filled RX block.
    pub retire_timeout_ms: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            queues: 1,
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
        if self.frame_size <= TX_DATA_OFFSET + ETH_HEADER_LEN
            || !self.frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
        {
            return bad(format!(
                "frame_size {} must be a multiple of 16 above {}",
                self.frame_size,
                TX_DATA_OFFSET + ETH_HEADER_LEN
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
        let geo = Geometry {
            block_size: self.block_size,
            block_count: self.block_count,
            frame_size: self.frame_size,
        };
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
    let version = libc::tpacket_versions::TPACKET_V3 as c_int;
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
    let frames = geo.tx_frames() as u32;
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
        &fd,
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
        &fd,
        SOL_PACKET,
        libc::PACKET_TX_RING,
        &tx_req,
        "setsockopt(PACKET_TX_RING)",
        iface,
    )?;
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
    let _ = sys::getsockopt::<libc::tpacket_stats_v3>(&fd, SOL_PACKET, libc::PACKET_STATISTICS);

    let max_frame = geo
        .tx_max_frame()
        .min(mtu.saturating_add(ETH_HEADER_LEN).max(ETH_HEADER_LEN));
    Ok(AfPacketPort {
        rings,
        fd,
        pool: BufPool::new(cfg.pool_bufs, geo.tx_max_frame()),
        mac,
        max_frame,
        rx_block: 0,
        rx_in_block: false,
        rx_left: 0,
        rx_offset: 0,
        tx_slot: 0,
        tx_kick_pending: false,
        stats: PortStats::default(),
        kernel_drops: Cell::new(0),
    })
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

/// One AF_PACKET queue: an RX and a TX ring on one socket.
pub struct AfPacketPort {
    // Field order matters for drop: unmap the rings before closing the socket.
    rings: Rings,
    fd: OwnedFd,
    pool: BufPool,
    mac: MacAddr,
    /// Largest frame we accept either way (interface MTU + 14, capped by the slot).
    max_frame: usize,
    // RX cursor: the current block, whether we are inside it, packets left, next offset.
    rx_block: usize,
    rx_in_block: bool,
    rx_left: u32,
    rx_offset: usize,
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

    /// Hands the current RX block back to the kernel and moves to the next.
    fn finish_block(&mut self) {
        self.rings.rx_block_release(self.rx_block);
        self.rx_block = (self.rx_block + 1) % self.rings.geometry().block_count;
        self.rx_in_block = false;
        self.rx_left = 0;
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
        let mut got = 0;
        while got < max {
            if !self.rx_in_block {
                if !self.rings.rx_block_ready(self.rx_block) {
                    break;
                }
                let view = self.rings.rx_block(self.rx_block);
                self.rx_left = view.num_pkts();
                self.rx_offset = view.first_offset();
                self.rx_in_block = true;
                if self.rx_left == 0 {
                    self.finish_block();
                    continue;
                }
            }
            let Some(pkt) = self.rings.rx_block(self.rx_block).packet_at(self.rx_offset) else {
                // A header pointing outside the block: give up on the rest of it.
                self.stats.rx_errors += u64::from(self.rx_left);
                self.finish_block();
                continue;
            };
            if pkt.data.len() != pkt.wire_len || pkt.data.len() > self.max_frame {
                // Truncated by the ring or larger than our buffers.
                self.stats.rx_errors += 1;
            } else {
                let Some(mut buf) = self.pool.alloc() else {
                    // Leave the frame in the ring; the caller gets buffers back later.
                    self.stats.alloc_failed += 1;
                    break;
                };
                if buf.fill_from(pkt.data).is_ok() {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += pkt.data.len() as u64;
                    out.push(buf);
                    got += 1;
                } else {
                    self.stats.rx_errors += 1;
                }
            }
            self.rx_left -= 1;
            if self.rx_left == 0 {
                self.finish_block();
            } else if pkt.next_offset == 0 {
                self.stats.rx_errors += u64::from(self.rx_left);
                self.finish_block();
            } else {
                self.rx_offset += pkt.next_offset;
            }
        }
        got
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
        let b = self.pool.alloc();
        if b.is_none() {
            self.stats.alloc_failed += 1;
        }
        b
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn stats(&self) -> PortStats {
        if let Ok(s) = sys::getsockopt::<libc::tpacket_stats_v3>(
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

    #[test]
    fn loopback_port_sends_and_receives_its_frames_once() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        let cfg = AfPacketConfig {
            block_count: 4,
            pool_bufs: 64,
            ..AfPacketConfig::default()
        };
        // Two sockets on the lo of a private network namespace (no host traffic): what
        // `tx` sends, `rx` sees once, as the incoming copy lo loops back (the outgoing
        // copy is ignored: PACKET_IGNORE_OUTGOING).
        let (mut tx, mut rx) = std::thread::spawn(move || {
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
        .unwrap();
        let marker = next_local_seed().to_be_bytes();
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&[0; 6]);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental
        frame[14..22].copy_from_slice(&marker);
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
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
        let s = tx.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (10, 600));
        assert!(rx.stats().rx_packets >= 10);
    }

    #[test]
    fn a_full_tx_ring_leaves_frames_with_the_caller_and_recovers() {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, CAP_NET_RAW)");
            return;
        }
        // One 4 KiB block of 2 KiB slots: a TX ring of 2 frames.
        let cfg = AfPacketConfig {
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
            let mut rx = AfPacket::open("lo", &cfg).unwrap().remove(0);
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
            assert_eq!(seen, [0, 1, 2, 3, 4]);
            assert!(bufs.is_empty());
        })
        .join()
        .unwrap();
    }
}
