//! [`Mbuf`]: an owning handle to one `rte_mbuf`; dropping it frees the mbuf back to its
//! mempool.
//!
//! Owns the per-packet view of DPDK memory. It must not allocate, take locks or touch
//! atomics beyond DPDK's own free path: it is on the per-packet fast path.
//!
//! Mbufs are single-segment: the data is `buf_addr + data_off .. + data_len`. The `dpdk`
//! port drops (and counts) multi-segment mbufs a device returns, which cannot happen with
//! the default configuration (no scatter offload, data room ≥ the frame size). If an
//! `Mbuf` made with [`Mbuf::from_raw`] is a chain, only the first segment is visible and
//! `set_len` frees the rest of the chain first.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::port::{BufTooSmall, ChecksumStatus, PacketBuf, RxChecksum};

/// Bytes DPDK reserves in front of the data of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const MBUF_HEADROOM: usize = dpdk_sys::RTE_PKTMBUF_HEADROOM as usize;

/// The usual mbuf data room: 2048 bytes of data after the headroom
/// (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_MBUF_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// What a received mbuf's `ol_flags` say about its checksums. `*_CKSUM_NONE` (the
/// checksum field is not valid in the data but the device verified the data's integrity,
/// e.g. virtio's partial checksums) counts as [`ChecksumStatus::Good`].
#[inline(always)]
pub fn rx_checksum_of_ol_flags(flags: u64) -> RxChecksum {
    use dpdk_sys::{
        RTE_MBUF_F_RX_IP_CKSUM_BAD as IP_BAD, RTE_MBUF_F_RX_IP_CKSUM_GOOD as IP_GOOD,
        RTE_MBUF_F_RX_IP_CKSUM_MASK as IP_MASK, RTE_MBUF_F_RX_IP_CKSUM_NONE as IP_NONE,
        RTE_MBUF_F_RX_L4_CKSUM_BAD as L4_BAD, RTE_MBUF_F_RX_L4_CKSUM_GOOD as L4_GOOD,
        RTE_MBUF_F_RX_L4_CKSUM_MASK as L4_MASK, RTE_MBUF_F_RX_L4_CKSUM_NONE as L4_NONE,
    };
    let state = |bits: u64, good: u32, bad: u32, none: u32| match bits {
        b if b == u64::from(good) || b == u64::from(none) => ChecksumStatus::Good,
        b if b == u64::from(bad) => ChecksumStatus::Bad,
        _ => ChecksumStatus::Unknown,
    };
    RxChecksum {
        ipv4: state(flags & u64::from(IP_MASK), IP_GOOD, IP_BAD, IP_NONE),
        l4: state(flags & u64::from(L4_MASK), L4_GOOD, L4_BAD, L4_NONE),
    }
}

/// One packet buffer owned by us. `#[repr(transparent)]`, so a `[Mbuf]` is an array of
/// `rte_mbuf` pointers that can go straight to `rte_eth_tx_burst`.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its mbuf (no clones, refcnt 1), so moving it to
// another thread moves the whole buffer; freeing from any thread is thread-safe (the
// mempool's put path handles threads without an lcore id).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must point to a valid `rte_mbuf` from a pktmbuf pool that nobody else will use
    /// or free (we free it on drop), whose data buffer is not shared (a direct mbuf with
    /// refcnt 1, as PMDs and `rte_pktmbuf_alloc` return), and whose pool outlives it (see
    /// `Mempool`: pools with mbufs out are never freed).
    #[inline(always)]
    pub unsafe fn from_raw(m: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership without freeing; the caller must free or transmit it.
    #[inline(always)]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let m = self.0;
        std::mem::forget(self);
        m
    }

    /// The raw mbuf, still owned by `self`.
    #[inline(always)]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    #[inline(always)]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for self's lifetime (from_raw contract) and nobody
        // else accesses it while we hold it.
        unsafe { self.0.as_ref() }
    }

    /// Bytes free in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Bytes free after the data (in this segment).
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off) + usize::from(m.data_len))
    }

    /// Number of segments (1 for every mbuf the `dpdk` port hands out).
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Input port id set by the PMD on receive.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Clears the offload flags (e.g. those a PMD set on receive, before the mbuf is
    /// reused for transmission). Every mbuf handled here is direct, so no
    /// `RTE_MBUF_F_INDIRECT`/`EXTERNAL` bit is lost.
    #[inline]
    pub fn clear_ol_flags(&mut self) {
        // SAFETY: we own a valid mbuf (from_raw contract); ol_flags is a plain integer.
        unsafe { self.0.as_mut() }.ol_flags = 0;
    }

    /// Asks the device to compute the UDP checksum of this IPv4 frame on transmit
    /// (`RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM`, with the header lengths); the
    /// UDP checksum field must hold the pseudo-header sum. Only for a device with
    /// `RTE_ETH_TX_OFFLOAD_UDP_CKSUM` enabled.
    #[inline]
    pub fn request_tx_udp_checksum(&mut self, l2_len: u8, l3_len: u8) {
        // SAFETY: we own a valid mbuf (from_raw contract) and nobody else touches it while
        // we hold it; ol_flags and the tx_offload bitfields are plain integers.
        let m = unsafe { self.0.as_mut() };
        m.ol_flags |= dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_UDP_CKSUM;
        // SAFETY: the tx_offload union's bitfield view is plain integers too.
        unsafe {
            m.__bindgen_anon_3
                .__bindgen_anon_1
                .set_l2_len(u64::from(l2_len));
            m.__bindgen_anon_3
                .__bindgen_anon_1
                .set_l3_len(u64::from(l3_len));
        }
    }

    /// Packet type (`RTE_PTYPE_*`) the PMD recognised, 0 if unknown.
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: reading the u32 view of a union of plain integers is always defined.
        unsafe { self.raw().__bindgen_anon_1.packet_type }
    }

    /// The RSS hash the device computed, if it set one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: the flag says the rss member of the hash union is valid; it is a
            // plain u32 either way.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Frees every mbuf in `bufs` with one `rte_pktmbuf_free_bulk` call and empties it.
    pub fn free_bulk(bufs: &mut Vec<Mbuf>) {
        let n = bufs.len();
        if n == 0 {
            return;
        }
        // SAFETY: Mbuf is repr(transparent) over a non-null rte_mbuf pointer, so the Vec's
        // buffer is n valid mbuf pointers that we own. set_len(0) first so that nothing is
        // freed twice even if the call unwinds (it cannot: it is C).
        unsafe {
            bufs.set_len(0);
            dpdk_sys::rte_pktmbuf_free_bulk(bufs.as_mut_ptr().cast::<*mut rte_mbuf>(), n as u32);
        }
    }

    /// Frees every segment after the first and makes the mbuf single-segment.
    #[cold]
    fn drop_tail_segments(&mut self) {
        let m = self.0.as_ptr();
        // SAFETY: we own the whole chain; the tail segments are freed exactly once (the
        // head no longer links to them), and the head's counters are made consistent.
        unsafe {
            let next = (*m).next;
            (*m).next = std::ptr::null_mut();
            (*m).nb_segs = 1;
            (*m).pkt_len = u32::from((*m).data_len);
            if !next.is_null() {
                dpdk_sys::rte_pktmbuf_free(next);
            }
        }
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (DPDK's
        // invariant, kept by set_len); the bytes are initialised (written by the device or
        // by us, or the pool's zeroed memory) and owned by us.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.0.as_ptr();
        // SAFETY: as `data`, and `&mut self` gives exclusive access to a buffer nobody else
        // shares (from_raw contract: direct mbuf, refcnt 1).
        unsafe {
            std::slice::from_raw_parts_mut(
                (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
                usize::from((*m).data_len),
            )
        }
    }

    /// Largest frame: the segment's buffer after the headroom.
    #[inline(always)]
    fn capacity(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off))
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> Result<(), BufTooSmall> {
        let capacity = self.capacity();
        if len > capacity {
            return Err(BufTooSmall {
                wanted: len,
                capacity,
            });
        }
        if self.raw().nb_segs != 1 {
            self.drop_tail_segments();
        }
        let m = self.0.as_ptr();
        // SAFETY: len ≤ buf_len - data_off ≤ u16::MAX, so the new data stays inside the
        // buffer; the bytes exposed are initialised pool memory (DPDK zeroes pools at
        // creation and mbufs are only ever written with initialised data).
        unsafe {
            (*m).data_len = len as u16;
            (*m).pkt_len = len as u32;
        }
        Ok(())
    }

    /// From the RX checksum bits of `ol_flags` (see [`rx_checksum_of_ol_flags`]). Only
    /// meaningful on a received mbuf: a fresh one has no flags (unknown).
    #[inline(always)]
    fn rx_checksum(&self) -> RxChecksum {
        rx_checksum_of_ol_flags(self.raw().ol_flags)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (from_raw contract) and it is freed exactly once, here.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.raw();
        f.debug_struct("Mbuf")
            .field("data_off", &m.data_off)
            .field("data_len", &m.data_len)
            .field("pkt_len", &m.pkt_len)
            .field("nb_segs", &m.nb_segs)
            .field("port", &m.port)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ol_flags_map_to_checksum_verdicts() {
        use dpdk_sys::*;
        use ChecksumStatus::{Bad, Good, Unknown};
        let f = |ip: u32, l4: u32| u64::from(ip) | u64::from(l4);
        let cases = [
            (0, Unknown, Unknown),
            (
                f(RTE_MBUF_F_RX_IP_CKSUM_GOOD, RTE_MBUF_F_RX_L4_CKSUM_GOOD),
                Good,
                Good,
            ),
            (
                f(RTE_MBUF_F_RX_IP_CKSUM_BAD, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN),
                Bad,
                Unknown,
            ),
            (
                f(RTE_MBUF_F_RX_IP_CKSUM_GOOD, RTE_MBUF_F_RX_L4_CKSUM_BAD),
                Good,
                Bad,
            ),
            (
                f(RTE_MBUF_F_RX_IP_CKSUM_NONE, RTE_MBUF_F_RX_L4_CKSUM_NONE),
                Good,
                Good,
            ),
            // Other flags (RSS hash, VLAN...) change nothing.
            (
                u64::from(RTE_MBUF_F_RX_RSS_HASH) | u64::from(RTE_MBUF_F_RX_L4_CKSUM_BAD),
                Unknown,
                Bad,
            ),
        ];
        for (flags, ipv4, l4) in cases {
            assert_eq!(
                rx_checksum_of_ol_flags(flags),
                RxChecksum { ipv4, l4 },
                "ol_flags {flags:#x}"
            );
        }
    }
}
