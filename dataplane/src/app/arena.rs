//! The payload arena: `count` fixed-size slots in the channel segment, and the
//! dataplane's own record of which slots it has lent to the application.
//!
//! A descriptor names a slot; who may touch the slot follows from which ring the
//! descriptor is in. The arena only copies bytes in and out with bounds checks; it must
//! not trust a slot number or length read from shared memory (callers pass them through
//! [`Arena::read`] / [`Arena::write`], which check them) and never hands out references
//! into the shared bytes.

use std::sync::Arc;

use super::shm::Segment;

/// Why a slot access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    #[error("slot {0} out of range")]
    BadSlot(u32),
    #[error("length {len} exceeds the slot size {max}")]
    TooLong { len: usize, max: usize },
    #[error("arena outside the segment")]
    Layout,
}

/// The slots of one channel.
pub struct Arena {
    seg: Arc<Segment>,
    base: usize,
    slot_size: usize,
    count: u32,
}

impl Arena {
    pub fn new(
        seg: Arc<Segment>,
        base: usize,
        slot_size: u32,
        count: u32,
    ) -> Result<Arena, ArenaError> {
        let end = (slot_size as usize)
            .checked_mul(count as usize)
            .and_then(|n| n.checked_add(base))
            .ok_or(ArenaError::Layout)?;
        if end > seg.len() {
            return Err(ArenaError::Layout);
        }
        Ok(Arena {
            seg,
            base,
            slot_size: slot_size as usize,
            count,
        })
    }

    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    fn offset(&self, slot: u32, len: usize) -> Result<usize, ArenaError> {
        if slot >= self.count {
            return Err(ArenaError::BadSlot(slot));
        }
        if len > self.slot_size {
            return Err(ArenaError::TooLong {
                len,
                max: self.slot_size,
            });
        }
        Ok(self.base + slot as usize * self.slot_size)
    }

    /// Copies `data` into `slot`.
    pub fn write(&self, slot: u32, data: &[u8]) -> Result<(), ArenaError> {
        let at = self.offset(slot, data.len())?;
        self.seg.write(at, data).ok_or(ArenaError::Layout)
    }

    /// Copies the first `len` bytes of `slot` into `out` (which must hold them); returns
    /// `len`. `slot` and `len` may come from the peer: both are checked.
    pub fn read(&self, slot: u32, len: u32, out: &mut [u8]) -> Result<usize, ArenaError> {
        let len = len as usize;
        let at = self.offset(slot, len)?;
        let max = out.len();
        let dst = out.get_mut(..len).ok_or(ArenaError::TooLong { len, max })?;
        self.seg.read(at, dst).ok_or(ArenaError::Layout)?;
        Ok(len)
    }
}

/// The dataplane's record of the slots of one channel: free ones, and for each lent one
/// what it was lent for. When the application dies, everything lent is taken back.
#[derive(Debug)]
pub struct SlotBook<T> {
    free: Vec<u32>,
    lent: Vec<Option<(u64, T)>>,
    next_tag: u64,
}

impl<T> SlotBook<T> {
    /// All `count` slots free.
    pub fn new(count: u32) -> Self {
        SlotBook {
            free: (0..count).rev().collect(),
            lent: (0..count).map(|_| None).collect(),
            next_tag: 1,
        }
    }

    /// Slots lent out now.
    pub fn lent_count(&self) -> usize {
        self.lent.len() - self.free.len()
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Lends a free slot for `what`; returns the slot and the tag the peer must echo.
    pub fn lend(&mut self, what: T) -> Option<(u32, u64)> {
        let slot = self.free.pop()?;
        let tag = (self.next_tag << 24) | u64::from(slot);
        self.next_tag = self.next_tag.wrapping_add(1);
        if let Some(e) = self.lent.get_mut(slot as usize) {
            *e = Some((tag, what));
        }
        Some((slot, tag))
    }

    /// Takes back `slot` if it is lent with `tag` (both from the peer: anything else is
    /// refused and changes nothing).
    pub fn take_back(&mut self, slot: u32, tag: u64) -> Option<T> {
        let e = self.lent.get_mut(slot as usize)?;
        match e {
            Some((t, _)) if *t == tag => {}
            _ => return None,
        }
        let (_, what) = e.take()?;
        self.free.push(slot);
        Some(what)
    }

    /// Visits what every lent slot was lent for.
    pub fn for_each_lent(&mut self, mut f: impl FnMut(&mut T)) {
        for (_, what) in self.lent.iter_mut().flatten() {
            f(what);
        }
    }

    /// Takes back every lent slot (the application is gone).
    pub fn reclaim_all(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        for (slot, e) in self.lent.iter_mut().enumerate() {
            if let Some((_, what)) = e.take() {
                out.push(what);
                self.free.push(slot as u32);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(len: usize) -> Arc<Segment> {
        let p = std::path::PathBuf::from(format!(
            "/dev/shm/flatrpc-test-{}-arena",
            std::process::id()
        ));
        let mut s = Segment::create(&p, len).expect("segment");
        s.unlink();
        Arc::new(s)
    }

    #[test]
    fn slots_are_bounds_checked() {
        let seg = segment(4096);
        assert!(Arena::new(Arc::clone(&seg), 0, 1024, 5).is_err());
        assert!(Arena::new(Arc::clone(&seg), usize::MAX, 1, 1).is_err());
        let a = Arena::new(seg, 1024, 512, 6).expect("arena");
        a.write(5, &[7; 512]).expect("last slot");
        assert_eq!(a.write(6, &[1]), Err(ArenaError::BadSlot(6)));
        assert!(matches!(
            a.write(0, &[0; 513]),
            Err(ArenaError::TooLong { .. })
        ));
        let mut out = [0u8; 600];
        assert_eq!(a.read(5, 512, &mut out), Ok(512));
        assert!(out[..512].iter().all(|&b| b == 7));
        assert_eq!(
            a.read(u32::MAX, 1, &mut out),
            Err(ArenaError::BadSlot(u32::MAX))
        );
        assert!(a.read(0, u32::MAX, &mut out).is_err());
        let mut small = [0u8; 8];
        assert!(a.read(0, 9, &mut small).is_err());
    }

    #[test]
    fn book_lends_checks_tags_and_reclaims() {
        let mut b: SlotBook<&str> = SlotBook::new(3);
        let (s1, t1) = b.lend("a").expect("free");
        let (s2, t2) = b.lend("b").expect("free");
        let (s3, t3) = b.lend("c").expect("free");
        assert!(b.lend("d").is_none());
        assert_eq!(b.lent_count(), 3);
        // Wrong tag, wrong slot, out of range: refused, nothing changes.
        assert_eq!(b.take_back(s1, t2), None);
        assert_eq!(b.take_back(99, t1), None);
        assert_eq!(b.lent_count(), 3);
        assert_eq!(b.take_back(s1, t1), Some("a"));
        // Twice: refused.
        assert_eq!(b.take_back(s1, t1), None);
        // The slot comes back with a new tag.
        let (s4, t4) = b.lend("e").expect("free");
        assert_eq!(s4, s1);
        assert_ne!(t4, t1);
        assert_eq!(b.take_back(s4, t1), None);
        let mut all = b.reclaim_all();
        all.sort();
        assert_eq!(all, vec!["b", "c", "e"]);
        assert_eq!(b.lent_count(), 0);
        let _ = (s2, s3, t3);
        assert!(b.has_free());
    }
}
