//! Verdicts of element handlers, the per-method transport class, and the counters a
//! pipeline keeps per element. Must not depend on anything but core types.

/// What an element (or a whole chain) decided for one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Continue: next element, then the transport / application.
    Forward,
    /// Discard silently (the caller will see a timeout).
    Drop,
    /// Answer the caller with an error instead of forwarding (`send(err('..'), Up)`).
    Reply(ErrorReply),
}

impl Verdict {
    /// `true` for [`Verdict::Forward`].
    #[inline]
    pub fn is_forward(&self) -> bool {
        matches!(self, Verdict::Forward)
    }
}

/// The error an element answers with. The message is a literal of the element source
/// (`err('denied')`) or one of the runtime's own (e.g. [`ErrorReply::DOES_NOT_FIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply {
    /// Short human-readable reason, sent back to the caller.
    pub message: &'static str,
}

impl ErrorReply {
    /// Reply used when `set(rpc, 'f', v)` cannot rewrite the field in place.
    pub const DOES_NOT_FIT: ErrorReply = ErrorReply {
        message: "set(rpc): value does not fit the field's space",
    };

    /// An error reply with `message`.
    pub const fn new(message: &'static str) -> Self {
        ErrorReply { message }
    }
}

/// Delivery class of a method, from the spec's transport table (`unreliable()`,
/// `reliable()`, `reliable() -> ordered()`). One type with the transport's, so a
/// generated transport table feeds [`crate::transport::ClassTable`] directly.
pub use crate::transport::TransportClass;

/// Verdict counts of one element in one pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElementCounters {
    /// RPCs the element forwarded.
    pub forwarded: u64,
    /// RPCs the element dropped.
    pub dropped: u64,
    /// RPCs the element answered with an error.
    pub replied: u64,
}

impl ElementCounters {
    /// Counts `v`.
    #[inline]
    pub fn record(&mut self, v: &Verdict) {
        match v {
            Verdict::Forward => self.forwarded += 1,
            Verdict::Drop => self.dropped += 1,
            Verdict::Reply(_) => self.replied += 1,
        }
    }
}

/// Counts of RPCs a pipeline refused before any element ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineCounters {
    /// Payload failed its view's `new_checked` (dropped).
    pub malformed: u64,
    /// Method id not in the service (dropped).
    pub unknown_method: u64,
}
