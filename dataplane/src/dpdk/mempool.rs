//! Packet mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! Owns the lifetime of one `rte_mempool`. It must not hand out mbufs except as owning
//! [`Mbuf`]s.
//!
//! # When is the pool freed?
//! An [`Mbuf`] is a bare pointer (no per-packet reference count), so the pool cannot
//! know from its handles alone whether mbufs are still out. Users share the pool as an
//! `Arc<Mempool>` (each `EthDev` and each port keeps a clone), and when the last clone
//! drops, `Drop` checks `rte_mempool_full`: only if every mbuf is back is the pool freed.
//! Otherwise (the application still holds mbufs, or a device such as `net_ring` still
//! has some queued) the pool is deliberately leaked, so those mbufs stay valid; the leak
//! is counted in [`Mempool::leaked_pools`].

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk_sys::rte_mempool;

use super::{DpdkError, Eal, Mbuf};

/// Makes pool names unique in the process (DPDK requires it).
static POOL_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Pools not freed because mbufs were still out when they were dropped.
static LEAKED_POOLS: AtomicU64 = AtomicU64::new(0);

/// A pool of packet mbufs.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: the pool uses DPDK's default multi-producer/multi-consumer ring ops
// (ring_mp_mc), so get/put and the counters are thread-safe; per-lcore caches are indexed
// by the calling thread's lcore id, so concurrent users never share a cache.
unsafe impl Send for Mempool {}
// SAFETY: as above; `&Mempool` only allows thread-safe operations.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `n` mbufs with `data_room` bytes of buffer each (headroom included, so
    /// use at least `RTE_PKTMBUF_HEADROOM` + the largest frame, e.g.
    /// `RTE_MBUF_DEFAULT_BUF_SIZE` = 2176) and a per-lcore cache of `cache` mbufs
    /// (≤ 512 and ≤ n / 1.5). `name` is a prefix: a process-wide counter is appended so
    /// names never collide. The memory may come from any NUMA socket.
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
    ) -> Result<Arc<Mempool>, DpdkError> {
        Self::new_pktmbuf_on_socket(name, n, cache, data_room, None)
    }

    /// [`Mempool::new_pktmbuf`] on NUMA socket `socket` (`None`: any).
    pub fn new_pktmbuf_on_socket(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Arc<Mempool>, DpdkError> {
        Eal::require()?;
        if n == 0 {
            return Err(DpdkError::Invalid(
                "a mempool needs at least one mbuf".into(),
            ));
        }
        if cache > dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE || u64::from(cache) * 3 > u64::from(n) * 2 {
            return Err(DpdkError::Invalid(format!(
                "mempool cache {cache} too large for {n} mbufs (max {} and n / 1.5)",
                dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE
            )));
        }
        let headroom = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
        if data_room <= headroom {
            return Err(DpdkError::Invalid(format!(
                "mbuf data room {data_room} leaves no space after the {headroom}-byte headroom"
            )));
        }
        let unique = unique_name(name, POOL_COUNTER.fetch_add(1, Ordering::Relaxed));
        let c_name = CString::new(unique.clone())
            .map_err(|_| DpdkError::Invalid(format!("mempool name {name:?} contains NUL")))?;
        let socket_id = match socket {
            Some(s) => {
                i32::try_from(s).map_err(|_| DpdkError::Invalid(format!("bad NUMA socket {s}")))?
            }
            None => dpdk_sys::FLATRPC_SOCKET_ID_ANY,
        };
        // SAFETY: the EAL is initialised (checked above); c_name is a valid C string that
        // DPDK copies; the numeric arguments were validated.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), n, cache, 0, data_room, socket_id)
        };
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| DpdkError::rte_errno("rte_pktmbuf_pool_create", None))?;
        Ok(Arc::new(Mempool {
            ptr,
            name: unique,
            size: n,
        }))
    }

    /// The raw pool, for `rte_eth_rx_queue_setup` and the port's alloc fast path.
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }

    /// The unique name DPDK knows the pool by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was made with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently free (in the pool's ring and in every lcore cache).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime; the count only reads it.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs currently out of the pool.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: as `avail_count`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Bytes of buffer per mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is a valid pktmbuf pool for self's lifetime.
        unsafe { dpdk_sys::rte_pktmbuf_data_room_size(self.ptr.as_ptr()) }
    }

    /// One empty (len 0, default headroom) mbuf, or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; the returned mbuf (if any) is freshly reset,
        // single-segment and owned by nobody else, so Mbuf may own it.
        unsafe {
            let m = dpdk_sys::rte_pktmbuf_alloc(self.ptr.as_ptr());
            NonNull::new(m).map(|m| Mbuf::from_raw(m))
        }
    }

    /// Appends `n` (≤ `MAX_BURST`) empty mbufs to `out`, all or nothing. Returns whether
    /// it did.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let n = n.min(crate::port::MAX_BURST);
        let mut raw = [std::ptr::null_mut::<dpdk_sys::rte_mbuf>(); crate::port::MAX_BURST];
        // SAFETY: raw has room for n ≥ 0 pointers; the pool is valid. On success all n
        // entries are fresh, reset, single-segment mbufs owned by nobody else.
        let rc = unsafe {
            dpdk_sys::rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), raw.as_mut_ptr(), n as u32)
        };
        if rc != 0 {
            return false;
        }
        out.reserve(n);
        for m in raw.iter().take(n) {
            if let Some(m) = NonNull::new(*m) {
                // SAFETY: see above: a fresh mbuf we now own.
                out.push(unsafe { Mbuf::from_raw(m) });
            }
        }
        true
    }

    /// Pools that were dropped with mbufs still out and therefore never freed.
    pub fn leaked_pools() -> u64 {
        LEAKED_POOLS.load(Ordering::Relaxed)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is valid until freed here; `rte_mempool_full` only counts.
        let full = unsafe { dpdk_sys::rte_mempool_full(self.ptr.as_ptr()) } != 0;
        if full {
            // SAFETY: this is the last handle (Drop of the only owner) and every mbuf is
            // back in the pool, so no Mbuf and no device still points into it.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            LEAKED_POOLS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `prefix` reduced to `[A-Za-z0-9_]` and cut so that `prefix_counter` fits DPDK's
/// mempool name limit.
fn unique_name(prefix: &str, counter: u64) -> String {
    let suffix = format!("_{counter}");
    let max = (dpdk_sys::FLATRPC_MEMPOOL_NAMESIZE as usize).saturating_sub(1);
    let keep = max.saturating_sub(suffix.len());
    let mut name: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(keep)
        .collect();
    if name.is_empty() {
        name.push('p');
    }
    name.push_str(&suffix);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_dpdk_and_differ() {
        let max = dpdk_sys::FLATRPC_MEMPOOL_NAMESIZE as usize - 1;
        let a = unique_name("a very long pool name with spaces and ünïcode", 1);
        let b = unique_name("a very long pool name with spaces and ünïcode", 12345678901);
        assert!(a.len() <= max && b.len() <= max, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(unique_name("", 7), "p_7");
        assert_eq!(unique_name("rx", 0), "rx_0");
    }

    #[test]
    fn pools_need_the_eal() {
        if Eal::get().is_none() {
            assert_eq!(
                Mempool::new_pktmbuf("x", 64, 0, 2176).err(),
                Some(DpdkError::NotInitialised)
            );
        }
    }
}
