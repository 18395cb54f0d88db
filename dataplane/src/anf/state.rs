//! Bounded element state: [`StateMap`] (hash map with a capacity and counted
//! evictions), [`StateVec`] (vector with a capacity and counted refusals) and the
//! [`Shared`] wrapper of `@consistency(strong)` state. Must not allocate on lookups.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::hash::FastState;

/// A hash map holding at most `capacity` entries. Inserting a new key into a full map
/// first evicts an arbitrary eighth of the entries (amortised O(1) per insert) and
/// counts them in [`StateMap::evictions`].
#[derive(Debug, Clone)]
pub struct StateMap<K, V> {
    map: HashMap<K, V, FastState>,
    capacity: usize,
    evictions: u64,
}

impl<K: Eq + Hash, V> StateMap<K, V> {
    /// An empty map bounded to `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        StateMap {
            map: HashMap::with_hasher(FastState::new()),
            capacity: capacity.max(1),
            evictions: 0,
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The value of `key`, writable in place (one lookup for read-modify-write).
    #[inline]
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    /// Sets `key` to `value`; allocates an owned key only when `key` is new.
    #[inline]
    pub fn set<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(slot) = self.map.get_mut(key) {
            *slot = value;
            return;
        }
        self.make_room();
        self.map.insert(key.to_owned(), value);
    }

    /// Inserts an owned key (config loading).
    pub fn insert(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key) {
            self.make_room();
        }
        self.map.insert(key, value);
    }

    /// Removes `key`.
    #[inline]
    pub fn delete<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key);
    }

    fn make_room(&mut self) {
        if self.map.len() < self.capacity {
            return;
        }
        let mut budget = (self.capacity / 8).max(1);
        let before = self.map.len();
        self.map.retain(|_, _| {
            if budget > 0 {
                budget -= 1;
                false
            } else {
                true
            }
        });
        self.evictions += (before - self.map.len()) as u64;
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted so far to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Removes every entry (the eviction count is kept).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Iterates the entries in arbitrary order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }
}

/// A vector holding at most `capacity` items. `set(i, v)` replaces item `i`, appends
/// when `i == len` and there is room, and otherwise refuses and counts.
#[derive(Debug, Clone)]
pub struct StateVec<T> {
    items: Vec<T>,
    capacity: usize,
    refused: u64,
}

impl<T> StateVec<T> {
    /// An empty vector bounded to `capacity` items.
    pub fn new(capacity: usize) -> Self {
        StateVec {
            items: Vec::new(),
            capacity,
            refused: 0,
        }
    }

    /// Item `index` (negative or past the end: `None`).
    #[inline]
    pub fn get(&self, index: i64) -> Option<&T> {
        usize::try_from(index).ok().and_then(|i| self.items.get(i))
    }

    /// Replaces item `index`, or appends when `index == len()` and below capacity.
    pub fn set(&mut self, index: i64, value: T) {
        let Ok(i) = usize::try_from(index) else {
            self.refused += 1;
            return;
        };
        if let Some(slot) = self.items.get_mut(i) {
            *slot = value;
        } else if i == self.items.len() && i < self.capacity {
            self.items.push(value);
        } else {
            self.refused += 1;
        }
    }

    /// Appends `value` when below capacity (config loading).
    pub fn push(&mut self, value: T) {
        if self.items.len() < self.capacity {
            self.items.push(value);
        } else {
            self.refused += 1;
        }
    }

    /// Removes item `index` (later items shift down).
    pub fn delete(&mut self, index: i64) {
        if let Ok(i) = usize::try_from(index) {
            if i < self.items.len() {
                self.items.remove(i);
            }
        }
    }

    /// Number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes refused (out of range or full).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Iterates the items in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }
}

/// `@consistency(strong)` state: one instance shared by every core's pipeline. Each
/// element operation takes the lock once (read for `get`/`size`, write for
/// `set`/`delete`/assignment), so a write is visible to every core when it returns.
pub type Shared<T> = Arc<RwLock<T>>;

/// Read access to shared state; a panic on another core while it held the lock does
/// not poison it for the others (the state is plain data).
#[inline]
pub fn read_lock<T>(s: &Shared<T>) -> RwLockReadGuard<'_, T> {
    s.read().unwrap_or_else(|e| e.into_inner())
}

/// Write access to shared state (see [`read_lock`]).
#[inline]
pub fn write_lock<T>(s: &Shared<T>) -> RwLockWriteGuard<'_, T> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_bounded_with_counted_evictions() {
        let mut m: StateMap<Vec<u8>, i64> = StateMap::new(16);
        for i in 0..100u8 {
            m.set(&[i][..], i64::from(i));
            assert!(m.len() <= 16);
        }
        assert!(m.evictions() >= 84);
        assert_eq!(m.get(&[99u8][..]), Some(&99));
        m.set(&[99u8][..], 5);
        assert_eq!(m.get(&[99u8][..]), Some(&5));
        m.delete(&[99u8][..]);
        assert_eq!(m.get(&[99u8][..]), None);
    }

    #[test]
    fn vec_set_appends_and_refuses() {
        let mut v: StateVec<i64> = StateVec::new(2);
        v.set(0, 1);
        v.set(1, 2);
        v.set(2, 3);
        v.set(-1, 3);
        v.set(7, 3);
        assert_eq!(v.len(), 2);
        assert_eq!(v.refused(), 3);
        v.set(0, 9);
        assert_eq!(v.get(0), Some(&9));
        assert_eq!(v.get(-1), None);
        v.delete(0);
        assert_eq!(v.get(0), Some(&2));
    }

    #[test]
    fn shared_write_visible_to_other_threads() {
        let s: Shared<StateMap<i64, i64>> = Arc::new(RwLock::new(StateMap::new(8)));
        let s2 = Arc::clone(&s);
        std::thread::spawn(move || write_lock(&s2).set(&1, 10))
            .join()
            .ok();
        assert_eq!(read_lock(&s).get(&1), Some(&10));
    }
}
