//! The per-RPC context handed to element handlers: the RPC header fields the engine
//! parsed, a small fixed-capacity metadata map and the engine's clock. One `RpcCtx`
//! lives per core and is [`RpcCtx::reset`] for each RPC (no memset, no allocation).
//! Must not parse packets itself: the engine fills it.

/// Maximum number of metadata entries per RPC.
pub const METADATA_ENTRIES: usize = 8;
/// Maximum metadata key length in bytes.
pub const METADATA_KEY_MAX: usize = 24;
/// Maximum metadata value length in bytes.
pub const METADATA_VALUE_MAX: usize = 56;

/// The RPC header fields elements may read (`get_rpc_header('rpc_id')`). `priority`
/// and `deadline_ns` are also writable (`set_rpc_header`); the engine writes them back
/// into the outgoing header when the chain forwards the RPC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcHeader {
    /// Service id (generated `SERVICE_ID`).
    pub service_id: u16,
    /// Method id (generated `Method::id`).
    pub method_id: u16,
    /// Per-session RPC sequence id.
    pub rpc_id: u64,
    /// Session (client connection) id.
    pub session_id: u64,
    /// Scheduling priority, writable by elements.
    pub priority: u8,
    /// Absolute deadline in ns of the engine clock (0 = none), writable by elements.
    pub deadline_ns: u64,
}

impl RpcHeader {
    /// The header of a request the transport delivered (no priority, no deadline yet).
    pub fn of_request(req: &crate::transport::RequestRef) -> RpcHeader {
        RpcHeader {
            service_id: req.service,
            method_id: req.method,
            rpc_id: u64::from(req.rpc.0),
            session_id: req.session.0,
            priority: 0,
            deadline_ns: 0,
        }
    }
}

#[derive(Clone, Copy)]
struct MetaEntry {
    key_len: u8,
    value_len: u8,
    key: [u8; METADATA_KEY_MAX],
    value: [u8; METADATA_VALUE_MAX],
}

const EMPTY_ENTRY: MetaEntry = MetaEntry {
    key_len: 0,
    value_len: 0,
    key: [0; METADATA_KEY_MAX],
    value: [0; METADATA_VALUE_MAX],
};

/// Per-RPC key/value metadata (`get_metadata` / `set_metadata`), inline, bounded:
/// [`METADATA_ENTRIES`] entries, keys up to [`METADATA_KEY_MAX`] bytes, values up to
/// [`METADATA_VALUE_MAX`]. Writes that do not fit are refused and counted.
#[derive(Clone)]
pub struct Metadata {
    len: usize,
    entries: [MetaEntry; METADATA_ENTRIES],
    /// Writes refused because the map was full or a key/value too long.
    pub overflows: u64,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            len: 0,
            entries: [EMPTY_ENTRY; METADATA_ENTRIES],
            overflows: 0,
        }
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Metadata {
    /// Removes every entry (O(1)).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`; returns `false` (and counts an overflow) when it does not fit.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> bool {
        if key.len() > METADATA_KEY_MAX || value.len() > METADATA_VALUE_MAX {
            self.overflows += 1;
            return false;
        }
        let live = self.len.min(METADATA_ENTRIES);
        let slot = match self.entries[..live]
            .iter()
            .position(|e| e.key.get(..usize::from(e.key_len)) == Some(key))
        {
            Some(i) => i,
            None if live < METADATA_ENTRIES => {
                self.len = live + 1;
                live
            }
            None => {
                self.overflows += 1;
                return false;
            }
        };
        let Some(e) = self.entries.get_mut(slot) else {
            return false;
        };
        e.key[..key.len()].copy_from_slice(key);
        e.key_len = key.len() as u8;
        e.value[..value.len()].copy_from_slice(value);
        e.value_len = value.len() as u8;
        true
    }

    /// Iterates `(key, value)` in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries[..self.len.min(METADATA_ENTRIES)]
            .iter()
            .map(|e| {
                (
                    e.key.get(..usize::from(e.key_len)).unwrap_or_default(),
                    e.value.get(..usize::from(e.value_len)).unwrap_or_default(),
                )
            })
    }
}

/// Everything an element handler sees besides the message and its own state.
#[derive(Debug, Clone, Default)]
pub struct RpcCtx {
    /// Header fields of this RPC.
    pub header: RpcHeader,
    /// Engine clock, ns (monotonic; `current_time()`).
    pub now: u64,
    /// Per-RPC metadata.
    pub metadata: Metadata,
}

impl RpcCtx {
    /// A context for one RPC.
    pub fn new(header: RpcHeader, now: u64) -> Self {
        RpcCtx {
            header,
            now,
            metadata: Metadata::default(),
        }
    }

    /// Reuses this context for the next RPC: new header and clock, metadata emptied.
    #[inline]
    pub fn reset(&mut self, header: RpcHeader, now: u64) {
        self.header = header;
        self.now = now;
        self.metadata.clear();
    }
}

/// What `init()` sees when a pipeline is built: the clock and the core's RNG seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitCtx {
    /// Engine clock, ns.
    pub now: u64,
    /// Seed of the pipeline's [`super::FastRng`] (use a different one per core).
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_set_get_overwrite_and_bounds() {
        let mut m = Metadata::default();
        assert!(m.set(b"k", b"v1"));
        assert!(m.set(b"k", b"v22"));
        assert_eq!(m.get(b"k"), Some(&b"v22"[..]));
        assert_eq!(m.len(), 1);
        assert!(!m.set(&[b'x'; METADATA_KEY_MAX + 1], b"v"));
        assert!(!m.set(b"k2", &[0; METADATA_VALUE_MAX + 1]));
        for i in 0..METADATA_ENTRIES - 1 {
            assert!(m.set(&[b'a' + i as u8], b"x"));
        }
        assert!(!m.set(b"full", b"x"));
        assert_eq!(m.overflows, 3);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get(b"k"), None);
    }
}
