//! The `dpdk` port backend: one receive/transmit queue pair of a started [`EthDev`],
//! moving [`Mbuf`]s with `rte_eth_rx_burst` / `rte_eth_tx_burst`.
//!
//! Owns the per-queue fast path and its counters. It must not allocate, lock or touch
//! atomics per packet or per burst (DPDK's own mempool/ring operations aside), and it
//! must not configure devices (that is `crate::dpdk::ethdev`).
//!
//! UDP checksum offload: after [`DpdkPort::enable_tx_udp_checksum_offload`] (on a device
//! that offers it), every option-less IPv4/UDP frame transmitted is flagged for the
//! device to finish its UDP checksum, so the frames must carry the pseudo-header sum
//! there (`wire::UdpChecksum::Offload`); other frames (ARP) are sent as they are.
//!
//! Threading: a `DpdkPort` is `Send`; move it to its polling thread, pin the thread, then
//! call [`crate::dpdk::Eal::register_thread`] there so mbuf alloc/free use the per-lcore
//! mempool cache. Each queue pair is handed out once, so two threads never poll one
//! queue.
//!
//! Counters: rx/tx packets and bytes, multi-segment frames dropped (`rx_errors`), frames
//! refused by `tx_burst` (`tx_dropped`, counted on each refusal, so a frame refused and
//! retried twice counts twice) and allocation failures are kept per queue by the port
//! itself, without atomics. Device-wide counters that DPDK does not split by queue
//! (`imissed` → `rx_dropped`, `rx_nombuf` → `alloc_failed`, `ierrors` → `rx_errors`,
//! `oerrors` → `tx_errors`) are folded into queue 0's [`Port::stats`], so summing the
//! stats of all queues of a device counts them once.

use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::rte_mbuf;

use super::{PacketBuf, Port, PortStats, MAX_BURST};
use crate::dpdk::{DpdkError, EthConfig, EthDev, Mbuf, Mempool, QueueClaim};
use crate::wire::MacAddr;

/// One queue pair of a DPDK device.
#[derive(Debug)]
pub struct DpdkPort {
    port_id: u16,
    queue: u16,
    mac: MacAddr,
    pool: Arc<Mempool>,
    stats: PortStats,
    claim: QueueClaim,
    tx_udp_cksum: bool,
}

/// Whether `frame` is Ethernet + option-less IPv4 + UDP (what checksum offload is
/// requested for).
#[inline]
fn is_plain_udp_ipv4(frame: &[u8]) -> bool {
    matches!(frame.get(12..24), Some(h) if h[..3] == [0x08, 0x00, 0x45] && h[11] == 17)
}

impl DpdkPort {
    /// The port for queue pair `queue` (rx queue `queue` and tx queue `queue`) of `dev`.
    /// Fails if the queue does not exist or another `DpdkPort` already has it.
    pub fn new(dev: &EthDev, queue: u16) -> Result<DpdkPort, DpdkError> {
        let claim = dev.claim_queue(queue)?;
        Ok(DpdkPort {
            port_id: dev.port_id(),
            queue,
            mac: dev.mac(),
            pool: Arc::clone(dev.mempool()),
            stats: PortStats::default(),
            claim,
            tx_udp_cksum: false,
        })
    }

    /// Lets the device finish the UDP checksum of every IPv4/UDP frame this port sends
    /// (see the module comment). Returns false, changing nothing, when the device does
    /// not offer `RTE_ETH_TX_OFFLOAD_UDP_CKSUM`.
    pub fn enable_tx_udp_checksum_offload(&mut self) -> bool {
        self.tx_udp_cksum = self.claim.dev().tx_udp_checksum_offload();
        self.tx_udp_cksum
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue pair index.
    pub fn queue(&self) -> u16 {
        self.claim.queue()
    }

    /// The device this queue belongs to.
    pub fn dev(&self) -> &EthDev {
        self.claim.dev()
    }

    /// The mempool `alloc` draws from.
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.pool
    }
}

/// Configures and starts the device named `device` (`net_null0`, a PCI address...) as
/// `cfg` says, and returns one port per queue pair (`min(rx_queues, tx_queues)` of them),
/// in queue order. The EAL must already be initialised.
pub fn open_ports(device: &str, cfg: &EthConfig) -> Result<Vec<DpdkPort>, DpdkError> {
    let dev = EthDev::open(device, cfg)?;
    (0..dev.rx_queues().min(dev.tx_queues()))
        .map(|q| DpdkPort::new(&dev, q))
        .collect()
}

impl Port for DpdkPort {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let want = max.min(MAX_BURST);
        if want == 0 {
            return 0;
        }
        let mut raw = [std::ptr::null_mut::<rte_mbuf>(); MAX_BURST];
        // SAFETY: this port holds the only claim on (port_id, queue), so no other thread
        // polls the queue; raw has room for want ≤ MAX_BURST pointers; the device is
        // started and stays so while the claim lives.
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(self.port_id, self.queue, raw.as_mut_ptr(), want as u16)
        };
        let n = usize::from(n).min(want);
        out.reserve(n);
        let mut pushed = 0usize;
        let mut bytes = 0u64;
        for &m in &raw[..n] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: the PMD handed us this mbuf: a valid, direct, refcnt-1 mbuf from the
            // device's pool (which outlives it, see Mempool), now owned by nobody else.
            let mbuf = unsafe { Mbuf::from_raw(m) };
            if mbuf.nb_segs() != 1 {
                // Only possible with scatter offload or undersized mbufs: drop, count.
                self.stats.rx_errors += 1;
                drop(mbuf);
                continue;
            }
            bytes += mbuf.len() as u64;
            out.push(mbuf);
            pushed += 1;
        }
        self.stats.rx_packets += pushed as u64;
        self.stats.rx_bytes += bytes;
        pushed
    }

    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<Mbuf>) -> usize {
        let total = bufs.len();
        if total == 0 {
            return 0;
        }
        // Buffers may be reused received ones: drop their receive flags.
        for b in bufs.iter_mut() {
            b.clear_ol_flags();
            if self.tx_udp_cksum && is_plain_udp_ipv4(b.data()) {
                b.request_tx_udp_checksum(14, 20);
            }
        }
        let base = bufs.as_mut_ptr();
        // SAFETY: from here until the Vec is fixed up below, the Vec claims no elements,
        // so a panic would leak mbufs rather than free ones the PMD already owns.
        unsafe { bufs.set_len(0) };
        let mut sent = 0usize;
        let mut bytes = 0u64;
        while sent < total {
            let chunk = (total - sent).min(MAX_BURST);
            // SAFETY: elements sent..sent+chunk are initialised Mbufs we still own.
            let pending = unsafe { std::slice::from_raw_parts(base.add(sent), chunk) };
            let mut lens = [0u32; MAX_BURST];
            for (l, b) in lens.iter_mut().zip(pending) {
                *l = b.len() as u32;
            }
            // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the chunk is an
            // array of `chunk` valid mbuf pointers; this port holds the only claim on the
            // tx queue; the PMD takes ownership of the first n it returns.
            let n = unsafe {
                dpdk_sys::rte_eth_tx_burst(
                    self.port_id,
                    self.queue,
                    base.add(sent).cast::<*mut rte_mbuf>(),
                    chunk as u16,
                )
            };
            let n = usize::from(n).min(chunk);
            bytes += lens[..n].iter().map(|&l| u64::from(l)).sum::<u64>();
            sent += n;
            if n < chunk {
                break;
            }
        }
        let left = total - sent;
        // SAFETY: the first `sent` Mbufs now belong to the PMD and must not be dropped:
        // move the `left` untransmitted ones (still ours) to the front and give the Vec
        // exactly those.
        unsafe {
            std::ptr::copy(base.add(sent), base, left);
            bufs.set_len(left);
        }
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes;
        self.stats.tx_dropped += left as u64;
        sent
    }

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        let m = self.pool.alloc();
        if m.is_none() {
            self.stats.alloc_failed += 1;
        }
        m
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        if self.claim.queue() == 0 {
            if let Ok(dev) = self.claim.dev().stats() {
                s.rx_dropped += dev.imissed;
                s.alloc_failed += dev.rx_nombuf;
                s.rx_errors += dev.ierrors;
                s.tx_errors += dev.oerrors;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn ports_and_mbufs_can_move_to_their_core() {
        assert_send::<DpdkPort>();
        assert_send::<Mbuf>();
        assert_send::<EthDev>();
    }

    #[test]
    fn only_plain_udp_ipv4_frames_are_flagged_for_offload() {
        let h = crate::wire::UdpIpv4Header {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: std::net::Ipv4Addr::new(10, 0, 0, 2),
            src_port: 1,
            dst_port: 2,
            ttl: 64,
            ip_id: 1,
        };
        let mut f = [0u8; 60];
        crate::wire::build_udp_ipv4(&mut f, &h, 10).unwrap();
        assert!(is_plain_udp_ipv4(&f));
        assert!(!is_plain_udp_ipv4(&f[..23]));
        let mut tcp = f;
        tcp[23] = 6;
        assert!(!is_plain_udp_ipv4(&tcp));
        let mut opts = f;
        opts[14] = 0x46;
        assert!(!is_plain_udp_ipv4(&opts));
        let mut arp = f;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!is_plain_udp_ipv4(&arp));
    }

    #[test]
    fn mbuf_is_a_bare_pointer() {
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut rte_mbuf>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Mbuf>>(),
            std::mem::size_of::<*mut rte_mbuf>()
        );
    }
}
