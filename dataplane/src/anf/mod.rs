//! The runtime API that `specgen`-generated code depends on (and nothing else of the
//! dataplane): verdicts, the per-RPC context, bounded state containers, counters, the
//! wire helpers of generated message views and the errors of generated codecs.
//!
//! # How the engine drives a generated pipeline
//!
//! ```text
//! let shared = kv::ServerShared::default();          // once per process (strong state)
//! let mut p = kv::ServerPipeline::new(&shared, &tables, &InitCtx { now, seed: core_id });
//! let mut ctx = RpcCtx::default();                   // once per core, reused
//! loop {
//!     ctx.reset(header_fields, now);                 // per RPC: no memset, no allocation
//!     match p.on_request(method_id, &mut ctx, payload) {
//!         Verdict::Forward => { /* deliver / transmit */ }
//!         Verdict::Drop => { /* count, free */ }
//!         Verdict::Reply(e) => { /* answer the caller with e.message */ }
//!     }
//! }
//! ```
//!
//! * State is **per core** by default: each core builds its own pipeline and nothing is
//!   shared. State declared `@consistency(strong)` lives in a [`Shared`] container
//!   (`Arc<RwLock<_>>`) created once in the generated `*Shared` struct and cloned into
//!   every core's pipeline: each access takes the lock for that one operation, so every
//!   write is visible to all cores as soon as it returns (linearizable per container),
//!   but two operations in one handler are not atomic together.
//! * Containers are bounded ([`StateMap`], [`StateVec`]); what did not fit is counted.
//! * Nothing here allocates per RPC except inserting a new key into a `StateMap` whose
//!   key type owns bytes.
//!
//! This module must not know about ports, the RPC header layout or the transport.

mod ctx;
mod errors;
mod hash;
mod rng;
mod state;
mod verdict;
pub mod wire;

pub use ctx::{
    InitCtx, Metadata, RpcCtx, RpcHeader, METADATA_ENTRIES, METADATA_KEY_MAX, METADATA_VALUE_MAX,
};
pub use errors::{AppError, DecodeError, DispatchError, EncodeError, SetError, ViewError};
pub use hash::{FastHasher, FastState};
pub use rng::FastRng;
pub use state::{read_lock, write_lock, Shared, StateMap, StateVec};
pub use state::{KeyEq, KeyLookup};
pub use verdict::{ElementCounters, ErrorReply, PipelineCounters, TransportClass, Verdict};

/// Re-exported so generated `Tables` structs can derive `Deserialize` while naming only
/// `dataplane`.
pub use serde;
