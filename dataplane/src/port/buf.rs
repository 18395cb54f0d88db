//! A fixed-size, lock-free pool of packet buffers for the backends that copy frames
//! (AF_PACKET, TAP, sim). Buffers are allocated once when the pool is made; a
//! [`PoolBuf`] returns its memory to the pool on drop, so the steady state allocates
//! nothing. The pool is `Arc`-shared so a buffer may be dropped on any thread.

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::{BufTooSmall, PacketBuf, RxChecksum};

/// Default buffer size: a 1500-byte MTU frame plus headroom, rounded as DPDK's 2 KiB.
pub const DEFAULT_BUF_SIZE: usize = 2048;

/// A pool of equally sized buffers.
#[derive(Clone)]
pub struct BufPool {
    free: Arc<ArrayQueue<Box<[u8]>>>,
    buf_size: usize,
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("free", &self.free.len())
            .field("capacity", &self.free.capacity())
            .field("buf_size", &self.buf_size)
            .finish()
    }
}

impl BufPool {
    /// A pool of `count` buffers of `buf_size` bytes each (`count` ≥ 1).
    pub fn new(count: usize, buf_size: usize) -> Self {
        let count = count.max(1);
        let free = ArrayQueue::new(count);
        for _ in 0..count {
            // The queue has exactly `count` slots, so this push cannot fail.
            let _ = free.push(vec![0u8; buf_size].into_boxed_slice());
        }
        BufPool {
            free: Arc::new(free),
            buf_size,
        }
    }

    /// An empty buffer, or `None` when every buffer is in use.
    pub fn alloc(&self) -> Option<PoolBuf> {
        self.free.pop().map(|mem| PoolBuf {
            mem: Some(mem),
            len: 0,
            rx_csum: RxChecksum::UNKNOWN,
            pool: Arc::clone(&self.free),
        })
    }

    /// As [`BufPool::alloc`], counting a failure in `stats.alloc_failed` (what every
    /// copying backend's `Port::alloc` does).
    pub fn alloc_counted(&self, stats: &mut super::PortStats) -> Option<PoolBuf> {
        let b = self.alloc();
        if b.is_none() {
            stats.alloc_failed += 1;
        }
        b
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Buffers currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers in the pool in all.
    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }
}

/// A buffer on loan from a [`BufPool`].
pub struct PoolBuf {
    // `Some` until drop hands the memory back.
    mem: Option<Box<[u8]>>,
    len: usize,
    /// The receiving backend's checksum verdict; reset by `set_len` (new contents).
    rx_csum: RxChecksum,
    pool: Arc<ArrayQueue<Box<[u8]>>>,
}

impl std::fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuf").field("len", &self.len).finish()
    }
}

impl PoolBuf {
    fn mem(&self) -> &[u8] {
        self.mem.as_deref().unwrap_or(&[])
    }

    /// Records what the receiving device said about the frame's checksums (after the
    /// frame is in place: [`PacketBuf::set_len`] forgets it).
    pub fn set_rx_checksum(&mut self, c: RxChecksum) {
        self.rx_csum = c;
    }
}

impl PacketBuf for PoolBuf {
    fn data(&self) -> &[u8] {
        &self.mem()[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        match self.mem.as_deref_mut() {
            Some(m) => &mut m[..len],
            None => &mut [],
        }
    }
    fn capacity(&self) -> usize {
        self.mem().len()
    }
    fn set_len(&mut self, len: usize) -> Result<(), BufTooSmall> {
        let capacity = self.capacity();
        if len > capacity {
            return Err(BufTooSmall {
                wanted: len,
                capacity,
            });
        }
        self.len = len;
        self.rx_csum = RxChecksum::UNKNOWN;
        Ok(())
    }
    fn rx_checksum(&self) -> RxChecksum {
        self.rx_csum
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            // The pool has a slot for every buffer it made, so this cannot fail.
            let _ = self.pool.push(mem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_the_pool_on_drop() {
        let pool = BufPool::new(2, 64);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        drop(a);
        assert_eq!(pool.available(), 1);
        drop(b);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn set_len_is_bounded_by_capacity() {
        let pool = BufPool::new(1, 64);
        let mut b = pool.alloc().unwrap();
        assert!(b.is_empty());
        b.fill_from(&[1, 2, 3]).unwrap();
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!(
            b.set_len(65),
            Err(BufTooSmall {
                wanted: 65,
                capacity: 64
            })
        );
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn the_checksum_verdict_lasts_until_the_contents_change() {
        use crate::port::ChecksumStatus;
        let pool = BufPool::new(1, 64);
        let mut b = pool.alloc().unwrap();
        assert_eq!(b.rx_checksum(), RxChecksum::UNKNOWN);
        b.fill_from(&[1, 2, 3]).unwrap();
        let good = RxChecksum {
            ipv4: ChecksumStatus::Unknown,
            l4: ChecksumStatus::Good,
        };
        b.set_rx_checksum(good);
        assert_eq!(b.rx_checksum(), good);
        b.set_len(2).unwrap();
        assert_eq!(b.rx_checksum(), RxChecksum::UNKNOWN);
        b.set_rx_checksum(good);
        drop(b);
        assert_eq!(pool.alloc().unwrap().rx_checksum(), RxChecksum::UNKNOWN);
    }

    #[test]
    fn a_buffer_dropped_on_another_thread_comes_back() {
        let pool = BufPool::new(1, 64);
        let b = pool.alloc().unwrap();
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert!(pool.alloc().is_some());
    }
}
