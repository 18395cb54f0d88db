//! Bounded element state: [`StateMap`] (hash map with a capacity and counted
//! evictions), [`StateVec`] (vector with a capacity and counted refusals) and the
//! [`Shared`] wrapper of `@consistency(strong)` state, plus [`KeyEq`], the key equality
//! `StateMap` lookups use. Must not allocate on lookups, and must not compare a short
//! byte key through an out-of-line `memcmp` call (every RPC looks up its user name in
//! several maps).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::{Equivalent, HashMap};

use super::hash::FastState;

/// Key equality as [`StateMap`] lookups compare keys: the same relation as `Eq`, but
/// byte strings of up to 16 bytes compare inline (a length check and two overlapping
/// word loads per side) instead of through `<[u8] as PartialEq>`, which calls `memcmp`.
///
/// Implemented for the key types generated code uses (`Vec<u8>` looked up by `[u8]`,
/// integers, `bool`, pairs, options) and a few more; another key type gets the `Eq`
/// comparison with an empty `impl KeyEq for MyKey {}`. An implementation must return
/// exactly what `==` returns. (The impls are listed, not a blanket `impl<Q: Eq>`: that
/// would overlap the `[u8]` one, and stable Rust has no specialisation.)
pub trait KeyEq: Eq {
    /// `self == other`.
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        self == other
    }
}

/// Whether the first `N` and the last `N` bytes of `a` and `b` (each at least `N` long)
/// are equal: two fixed-size compares per side, which the compiler does as word
/// compares, combined without a branch.
#[inline(always)]
fn ends_eq<const N: usize>(a: &[u8], b: &[u8]) -> bool {
    match (
        a.first_chunk::<N>(),
        a.last_chunk::<N>(),
        b.first_chunk::<N>(),
        b.last_chunk::<N>(),
    ) {
        (Some(af), Some(al), Some(bf), Some(bl)) => (af == bf) & (al == bl),
        _ => false,
    }
}

/// Byte-string equality without a `memcmp` call for lengths up to 16: two overlapping
/// 8-byte (8..=16 bytes), 4-byte (4..=7) or 2-byte (2..=3) loads per side cover every
/// byte; a 1-byte string is its byte. Longer strings use slice equality.
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > 16 {
        return a == b;
    }
    if n >= 8 {
        return ends_eq::<8>(a, b);
    }
    if n >= 4 {
        return ends_eq::<4>(a, b);
    }
    // 2..=3 bytes: two overlapping 2-byte loads; 0..=1: the byte itself.
    if n >= 2 {
        return ends_eq::<2>(a, b);
    }
    a.first() == b.first()
}

impl KeyEq for [u8] {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        bytes_eq(self, other)
    }
}

impl KeyEq for Vec<u8> {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        bytes_eq(self, other)
    }
}

impl KeyEq for str {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

impl KeyEq for String {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

macro_rules! key_eq_by_eq {
    ($($t:ty),* $(,)?) => { $(impl KeyEq for $t {})* };
}

key_eq_by_eq!(u8, u16, u32, u64, u128, usize);
key_eq_by_eq!(i8, i16, i32, i64, i128, isize);
key_eq_by_eq!(bool, char, ());

impl<T: KeyEq + ?Sized> KeyEq for &T {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        (**self).key_eq(*other)
    }
}

impl<T: KeyEq + ?Sized> KeyEq for Box<T> {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        (**self).key_eq(other)
    }
}

impl<T: KeyEq> KeyEq for Option<T> {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.key_eq(b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<A: KeyEq, B: KeyEq> KeyEq for (A, B) {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        self.0.key_eq(&other.0) && self.1.key_eq(&other.1)
    }
}

impl<A: KeyEq, B: KeyEq, C: KeyEq> KeyEq for (A, B, C) {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        self.0.key_eq(&other.0) && self.1.key_eq(&other.1) && self.2.key_eq(&other.2)
    }
}

impl<T: KeyEq, const N: usize> KeyEq for [T; N] {
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        self.iter().zip(other).all(|(a, b)| a.key_eq(b))
    }
}

/// A borrowed key as the hash table sees it during a lookup: it hashes exactly as `Q`
/// does, hence as the owned key `K` does (`Borrow`'s contract), and compares through
/// [`KeyEq`]. (hashbrown's blanket `Equivalent` impl would compare with `Eq`.) Public
/// for applications' own hashbrown maps keyed by byte strings (the KV store:
/// `map.get(&KeyLookup(name))`).
pub struct KeyLookup<'a, Q: ?Sized>(pub &'a Q);

impl<Q: Hash + ?Sized> Hash for KeyLookup<'_, Q> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<Q: KeyEq + ?Sized, K: Borrow<Q>> Equivalent<K> for KeyLookup<'_, Q> {
    #[inline]
    fn equivalent(&self, key: &K) -> bool {
        self.0.key_eq(key.borrow())
    }
}

/// A hash map holding at most `capacity` entries. Inserting a new key into a full map
/// first evicts an arbitrary eighth of the entries (amortised O(1) per insert) and
/// counts them in [`StateMap::evictions`]. Lookups by a borrowed key compare through
/// [`KeyEq`].
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
        Q: Hash + KeyEq + ?Sized,
    {
        self.map.get(&KeyLookup(key))
    }

    /// The value of `key`, writable in place (one lookup for read-modify-write).
    #[inline]
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + KeyEq + ?Sized,
    {
        self.map.get_mut(&KeyLookup(key))
    }

    /// `true` when `key` has a value.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + KeyEq + ?Sized,
    {
        self.map.contains_key(&KeyLookup(key))
    }

    /// Sets `key` to `value`; allocates an owned key only when `key` is new.
    #[inline]
    pub fn set<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: Hash + KeyEq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(slot) = self.map.get_mut(&KeyLookup(key)) {
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
        Q: Hash + KeyEq + ?Sized,
    {
        self.map.remove(&KeyLookup(key));
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
    use proptest::prelude::*;

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

    /// A key of `n` distinct, non-zero bytes.
    fn base_key(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    #[test]
    fn short_compare_matches_slice_eq_at_every_length_and_position() {
        for n in 0..=40usize {
            let a = base_key(n);
            let same = a.clone();
            assert!(a[..].key_eq(&same[..]), "len {n} equal");
            assert!(a.key_eq(&same), "len {n} equal (Vec)");
            // A difference in each single byte, including the ones both overlapping
            // loads read, with low, high and all bits flipped.
            for i in 0..n {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut b = a.clone();
                    b[i] ^= flip;
                    assert_eq!(a[..].key_eq(&b[..]), a == b, "len {n} byte {i}");
                    assert!(!a[..].key_eq(&b[..]), "len {n} byte {i} flip {flip:#x}");
                    assert!(!b.key_eq(&a), "len {n} byte {i} flip {flip:#x} (Vec)");
                }
            }
            // Same bytes, different lengths (a trailing zero, a dropped last byte).
            let mut longer = a.clone();
            longer.push(0);
            assert!(!a[..].key_eq(&longer[..]), "len {n} vs {}", n + 1);
            assert!(!longer[..].key_eq(&a[..]), "len {} vs {n}", n + 1);
            if let Some((_, shorter)) = a.split_last() {
                assert!(!a[..].key_eq(shorter), "len {n} vs {}", n - 1);
            }
        }
    }

    #[test]
    fn map_lookups_see_every_single_byte_difference() {
        let mut m: StateMap<Vec<u8>, usize> = StateMap::new(1 << 12);
        for n in 0..=40usize {
            m.set(&base_key(n)[..], n);
        }
        for n in 0..=40usize {
            let a = base_key(n);
            assert_eq!(m.get(&a[..]), Some(&n));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert_eq!(m.get(&b[..]), None, "len {n} byte {i}");
                assert_eq!(m.get_mut(&b[..]), None, "len {n} byte {i}");
                assert!(!m.contains_key(&b[..]), "len {n} byte {i}");
            }
        }
        assert_eq!(m.len(), 41);
    }

    #[test]
    fn lookup_hashes_as_the_owned_key() {
        use std::hash::BuildHasher;
        let state = FastState::with_seed(7);
        for n in 0..=40usize {
            let owned = base_key(n);
            assert_eq!(
                state.hash_one(KeyLookup(&owned[..])),
                state.hash_one(&owned),
                "len {n}"
            );
        }
        let pair = (b"alice".to_vec(), 3i64);
        assert_eq!(state.hash_one(KeyLookup(&pair)), state.hash_one(&pair));
        assert_eq!(state.hash_one(KeyLookup(&5u64)), state.hash_one(5u64));
    }

    #[test]
    fn key_eq_agrees_with_eq_for_composite_keys() {
        let k = |s: &str, i: i64| (s.as_bytes().to_vec(), i);
        assert!(k("alice", 1).key_eq(&k("alice", 1)));
        assert!(!k("alice", 1).key_eq(&k("alicf", 1)));
        assert!(!k("alice", 1).key_eq(&k("alice", 2)));
        assert!(Some(3u64).key_eq(&Some(3)));
        assert!(!Some(3u64).key_eq(&None));
        assert!(None::<u64>.key_eq(&None));
        assert!("bob".key_eq("bob"));
        assert!(!String::from("bob").key_eq(&String::from("bobby")));
        assert!(!(1u8, true, 'x').key_eq(&(1u8, true, 'y')));
        assert!([1u32, 2].key_eq(&[1, 2]));
        let (x, y): (&[u32; 2], &[u32; 2]) = (&[1, 2], &[1, 3]);
        assert!(!<&[u32; 2] as KeyEq>::key_eq(&x, &y));
        assert!(<&[u32; 2] as KeyEq>::key_eq(&x, &x));
    }

    /// `b` is `a` with a few bytes changed, or an unrelated string (often equal when short).
    fn key_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let near = (
            proptest::collection::vec(any::<u8>(), 0..=40),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        )
            .prop_map(|(a, edits)| {
                let mut b = a.clone();
                for (at, x) in edits {
                    if let Some(byte) = b.get_mut(at % a.len().max(1)) {
                        *byte ^= x;
                    }
                }
                (a, b)
            });
        let far = (
            proptest::collection::vec(0u8..2, 0..=20),
            proptest::collection::vec(0u8..2, 0..=20),
        );
        prop_oneof![near, far]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(Vec<u8>),
        GetMut(Vec<u8>, u64),
        Set(Vec<u8>, u64),
        Delete(Vec<u8>),
    }

    /// Short keys over a small alphabet, so that sequences revisit keys often.
    fn short_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(0u8..3, 0..=3),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 4..=16),
            proptest::collection::vec(any::<u8>(), 0..=24),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            short_key().prop_map(Op::Get),
            (short_key(), any::<u64>()).prop_map(|(k, v)| Op::GetMut(k, v)),
            (short_key(), any::<u64>()).prop_map(|(k, v)| Op::Set(k, v)),
            short_key().prop_map(Op::Delete),
        ]
    }

    proptest! {
        #[test]
        fn short_compare_is_slice_eq((a, b) in key_pair()) {
            prop_assert_eq!(a[..].key_eq(&b[..]), a == b);
            prop_assert_eq!(b.key_eq(&a), a == b);
        }

        #[test]
        fn map_behaves_like_std_hashmap(ops in proptest::collection::vec(op(), 0..300)) {
            let mut m: StateMap<Vec<u8>, u64> = StateMap::new(1024);
            let mut model: std::collections::HashMap<Vec<u8>, u64> = Default::default();
            for op in ops {
                match op {
                    Op::Get(k) => prop_assert_eq!(m.get(&k[..]), model.get(&k)),
                    Op::GetMut(k, v) => {
                        let got = m.get_mut(&k[..]).map(|slot| {
                            let old = *slot;
                            *slot = v;
                            old
                        });
                        let want = model.get_mut(&k).map(|slot| std::mem::replace(slot, v));
                        prop_assert_eq!(got, want);
                    }
                    Op::Set(k, v) => {
                        m.set(&k[..], v);
                        model.insert(k, v);
                    }
                    Op::Delete(k) => {
                        m.delete(&k[..]);
                        model.remove(&k);
                    }
                }
                prop_assert_eq!(m.len(), model.len());
            }
            prop_assert_eq!(m.evictions(), 0);
            let mut got: Vec<(Vec<u8>, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let mut want: Vec<(Vec<u8>, u64)> = model.into_iter().collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn map_bounded_and_evictions_counted(
            capacity in 1usize..24,
            ops in proptest::collection::vec((short_key(), any::<u64>(), 0u8..8), 0..300),
        ) {
            let mut m: StateMap<Vec<u8>, u64> = StateMap::new(capacity);
            // Every key set and not deleted since, with its last value: the map holds a
            // subset of it (the rest was evicted).
            let mut model: std::collections::HashMap<Vec<u8>, u64> = Default::default();
            for (k, v, kind) in ops {
                let (len, evictions) = (m.len(), m.evictions());
                if kind == 0 {
                    let present = m.contains_key(&k[..]);
                    m.delete(&k[..]);
                    model.remove(&k);
                    prop_assert_eq!(m.len(), len - usize::from(present));
                    prop_assert_eq!(m.get(&k[..]), None);
                    prop_assert_eq!(m.evictions(), evictions);
                } else {
                    let new = !m.contains_key(&k[..]);
                    m.set(&k[..], v);
                    model.insert(k.clone(), v);
                    // A new key into a full map evicts exactly an eighth (at least one).
                    let evicted = if new && len == capacity { (capacity / 8).max(1) } else { 0 };
                    prop_assert_eq!(m.evictions() - evictions, evicted as u64);
                    prop_assert_eq!(m.len(), len + usize::from(new) - evicted);
                    prop_assert_eq!(m.get(&k[..]), Some(&v));
                }
                prop_assert!(m.len() <= capacity);
                for (mk, mv) in m.iter() {
                    prop_assert_eq!(model.get(mk), Some(mv));
                }
            }
        }
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
