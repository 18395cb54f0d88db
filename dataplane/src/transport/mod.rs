//! sans-IO per-RPC reliability: the transport that replaces TCP.
//!
//! An [`Endpoint`] is a deterministic state machine, like quinn-proto: it is fed packets
//! ([`Endpoint::handle_packet`]) and the time ([`Endpoint::handle_timeout`]), and it
//! emits packets ([`Endpoint::poll_transmit`] writes the RPC header and payload into a
//! caller buffer, the engine puts Ethernet/IPv4/UDP in front), the next timer deadline
//! ([`Endpoint::poll_timeout`]) and events ([`Endpoint::poll_event`]: requests for the
//! server's handler, responses or errors for the client's callers). It owns no socket,
//! thread or clock, and it never trusts a byte from the wire.
//!
//! One endpoint can be client and server at once; every session has one role.
//!
//! # Sessions
//! A client opens a session with a two-way handshake: `Connect` (carrying the client's
//! own session id and the window it wants) → `ConnectAck` (carrying the server's id and
//! the window granted). Each side addresses packets with the *receiver's* id. An id is
//! 64 bits: the slot index in the session table (low 24 bits) and a tag from a CSPRNG
//! (high 40 bits), so a lookup is one index plus a compare (no hashing), and a forged
//! or stale packet that does not carry the exact id, from the session's own peer, is
//! dropped and counted.
//!
//! A spray of forged `Connect`s cannot make the server hold unbounded state: a session
//! created by `Connect` is *embryonic* until the client's first packet with the server's
//! id arrives (which a spoofed source never sees); at most `max_embryonic` of them exist,
//! the oldest is evicted (counted) when a new one needs room, and they expire after the
//! handshake timeout. Established sessions are never evicted by new ones; when the table
//! is full of them a `Connect` is refused (counted). Established sessions close
//! explicitly ([`Endpoint::close`]) or after `idle_timeout` without a valid packet.
//!
//! # Classes (per method, from the [`ClassTable`])
//! - `Unreliable`: one datagram (or one train of fragments) each way; the server keeps
//!   no per-RPC state; the client reports [`RpcError::Timeout`] after its deadline.
//!   A message that fits one packet takes the fast path: `call` and `respond` write the
//!   packet once (header in place) into a byte ring that `poll_transmit` copies out,
//!   the client's window slot holds only the rpc id and deadline, and one endpoint-wide
//!   sweep timer (re-armed for the earliest outstanding deadline) times calls out
//!   instead of a timer per call. When the ring is full (`fast_tx_bytes`) or the
//!   message needs fragments, the general path below is used.
//! - `Reliable`: at-most-once execution, exactly one answer. RPC `r` of a session uses
//!   slot `r & (window - 1)` on both sides (the window is the credit count: a client has at
//!   most `window` RPCs outstanding per session, [`CallError::WindowFull`] otherwise).
//!   The server's slot remembers the RPC id and caches its response until the client
//!   acknowledges it (explicitly for multi-fragment responses, implicitly by reusing the
//!   slot for a newer RPC), so a duplicate is answered from the cache and never
//!   re-executed. The client retransmits on an RTO (adaptive, exponential backoff, retry
//!   limit and overall deadline → error, never a hang) and fast-retransmits an RPC
//!   when three later RPCs of the session have been answered.
//! - `ReliableOrdered`: reliable, and the session's ordered requests reach the handler
//!   in issue order (a per-session order sequence number; out-of-order arrivals wait in
//!   the slots, so the reorder buffer is bounded by the window). When the client gives
//!   up on an ordered RPC it fails the session's other outstanding ordered RPCs too and
//!   marks the next ordered request `RESYNC`, so the server does not wait forever.
//!
//! One-packet answers (any class) and one-packet requests that can be delivered at
//! once are copied into the event arena, so their slots need no release when the event
//! is consumed. A client slot's RPC timer is lazy: finishing an RPC or moving its timer
//! later leaves the wheel entry in place, and the entry re-arms itself (or does nothing)
//! when it fires, so back-to-back calls on a slot cost no wheel operation.
//!
//! # Fragmentation
//! Messages larger than `mtu_payload` are split into equal chunks (the last shorter),
//! up to `max_message_size`. The receiver acknowledges fragments selectively (a bitmap)
//! when the sender marks the last fragment of a round `ACK_REQ`; the sender re-sends
//! only the fragments sent before the one that triggered the ack and still missing.
//! Reassembly memory is bounded per session and globally (drops counted).

#[doc(hidden)]
pub mod fuzzing;
pub mod sim;

mod client;
mod direct;
mod endpoint;
#[cfg(test)]
mod fastpath_tests;
mod fifo;
mod fragments;
mod hdr;
mod ring;
mod server;
mod session;
mod timer;

use std::ops::{Add, Sub};

pub use direct::Received;
pub use endpoint::Endpoint;
pub use session::SessionId;
pub use timer::{TimerHandle, TimerWheel};

use crate::wire::rpc::{HeaderError, WireClass, HEADER_LEN};

/// A point in time in nanoseconds since an arbitrary epoch (the engine feeds it from
/// the TSC, the simulator from its virtual clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<u64> for Instant {
    type Output = Instant;
    fn add(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
}

impl Sub<Instant> for Instant {
    type Output = u64;
    fn sub(self, o: Instant) -> u64 {
        self.0.saturating_sub(o.0)
    }
}

/// Delivery class of a method (the spec's `unreliable()`, `reliable()`,
/// `reliable() -> ordered()`). Generated code names it `dataplane::anf::TransportClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TransportClass {
    Unreliable,
    Reliable,
    ReliableOrdered,
}

impl TransportClass {
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportClass::Unreliable)
    }
    /// The class bits carried in a request header.
    pub fn to_wire(self) -> WireClass {
        match self {
            TransportClass::Unreliable => WireClass::Unreliable,
            TransportClass::Reliable => WireClass::Reliable,
            TransportClass::ReliableOrdered => WireClass::ReliableOrdered,
        }
    }
    /// The class a request header declares.
    pub fn from_wire(w: WireClass) -> Self {
        match w {
            WireClass::Unreliable => TransportClass::Unreliable,
            WireClass::Reliable => TransportClass::Reliable,
            WireClass::ReliableOrdered => TransportClass::ReliableOrdered,
        }
    }
}

impl std::str::FromStr for TransportClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unreliable" => Ok(Self::Unreliable),
            "reliable" => Ok(Self::Reliable),
            "reliable-ordered" | "ordered" => Ok(Self::ReliableOrdered),
            _ => Err(format!(
                "unknown class {s:?}: expected unreliable, reliable or reliable-ordered"
            )),
        }
    }
}

/// The per-method class table the engine passes in (generated from the spec): a dense
/// table indexed by service then method, so a lookup is two bounds-checked indexes.
#[derive(Debug, Clone, Default)]
pub struct ClassTable {
    services: Vec<Vec<Option<TransportClass>>>,
    default: Option<TransportClass>,
}

impl ClassTable {
    /// An empty table: every method is unknown.
    pub fn new() -> Self {
        Self::default()
    }
    /// A table where every method not set explicitly has class `class`.
    pub fn with_default(class: TransportClass) -> Self {
        ClassTable {
            services: Vec::new(),
            default: Some(class),
        }
    }
    /// Sets the class of one method.
    pub fn set(&mut self, service: u16, method: u16, class: TransportClass) -> &mut Self {
        let (s, m) = (usize::from(service), usize::from(method));
        if self.services.len() <= s {
            self.services.resize(s + 1, Vec::new());
        }
        let methods = &mut self.services[s];
        if methods.len() <= m {
            methods.resize(m + 1, None);
        }
        methods[m] = Some(class);
        self
    }
    /// The class of a method, `None` if the method is unknown.
    #[inline]
    pub fn get(&self, service: u16, method: u16) -> Option<TransportClass> {
        self.services
            .get(usize::from(service))
            .and_then(|m| m.get(usize::from(method)))
            .copied()
            .flatten()
            .or(self.default)
    }
}

/// Per-session RPC id (increasing, wrapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RpcId(pub u32);

/// What the server's handler needs to answer a request. Small and `Copy`: pass it back
/// to [`Endpoint::respond`] / [`Endpoint::respond_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestRef {
    pub session: SessionId,
    pub rpc: RpcId,
    pub service: u16,
    pub method: u16,
    pub class: TransportClass,
}

/// Error codes the transport itself puts in `Error` packets (application codes should
/// stay below [`ERROR_CODE_TRANSPORT_BASE`]).
pub mod error_code {
    /// The server has no such method.
    pub const UNKNOWN_METHOD: u16 = 0xff01;
    /// Client and server disagree on the method's class.
    pub const CLASS_MISMATCH: u16 = 0xff02;
    /// The server has no such session (closed, idle-timed-out or never existed).
    pub const UNKNOWN_SESSION: u16 = 0xff03;
    /// The request was executed but its response could not be kept for a retransmission.
    pub const RESPONSE_LOST: u16 = 0xff04;
    /// The request is larger than the server accepts.
    pub const TOO_LARGE: u16 = 0xff05;
}
/// First error code reserved for the transport.
pub const ERROR_CODE_TRANSPORT_BASE: u16 = 0xff00;

/// Why an RPC ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum RpcError {
    #[error("timed out (deadline, or retry limit after {retries} retransmissions)")]
    Timeout { retries: u32 },
    #[error("server answered with error code {code:#06x}")]
    Remote { code: u16 },
    #[error("session closed")]
    SessionClosed,
    #[error("given up because an earlier ordered RPC of the session failed")]
    OrderBroken,
}

/// Why [`Endpoint::call`] refused an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no such session")]
    UnknownSession,
    #[error("the session is not connected yet")]
    NotConnected,
    #[error("the session's window of outstanding RPCs is full")]
    WindowFull,
    #[error("message of {len} bytes exceeds the maximum {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the session is a server session")]
    WrongRole,
    #[error("a {len}-byte payload does not fit the buffer's {cap} bytes after the header")]
    BufferTooSmall { len: usize, cap: usize },
}

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("session table full")]
    TableFull,
}

/// Why [`Endpoint::respond`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    #[error("no such session (closed or expired)")]
    UnknownSession,
    #[error("no such request awaiting a response (already answered, or superseded)")]
    UnknownRequest,
    #[error("response of {len} bytes exceeds the maximum {max}")]
    TooLarge { len: usize, max: usize },
    #[error("no room to queue the response of an unreliable request")]
    Busy,
    #[error("a {len}-byte payload does not fit the buffer's {cap} bytes after the header")]
    BufferTooSmall { len: usize, cap: usize },
}

/// Why [`Endpoint::close`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no such session")]
pub struct UnknownSession;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CloseReason {
    /// This side called [`Endpoint::close`].
    Local,
    /// The peer sent `Close`.
    Peer,
    /// No valid packet for `idle_timeout`.
    Idle,
    /// The server said it does not know the session.
    PeerForgot,
}

/// Why a packet was dropped (also counted in [`TransportStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RxDrop {
    #[error("malformed header: {0}")]
    Malformed(#[from] HeaderError),
    #[error("unknown or forged session id")]
    UnknownSession,
    #[error("session id from the wrong peer")]
    WrongPeer,
    #[error("packet type not valid for this session's role or state")]
    Unexpected,
    #[error("stale or duplicate packet")]
    Stale,
    #[error("fragment inconsistent with the message's other fragments")]
    BadFragment,
    #[error("message larger than the configured maximum")]
    TooLarge,
    #[error("reassembly memory budget exhausted")]
    ReassemblyBudget,
    #[error("event arena full (the application is not draining events)")]
    EventArenaFull,
    #[error("method unknown to the class table")]
    UnknownMethod,
    #[error("client and server disagree on the method's class")]
    ClassMismatch,
    #[error("session table full of established sessions")]
    TableFull,
}

/// What the transport reports to its user.
#[derive(Debug)]
pub enum Event<'a, A> {
    /// Client: the handshake completed; calls may be made.
    Connected { session: SessionId },
    /// Client: the server never answered the handshake.
    ConnectFailed { session: SessionId },
    /// Either side: a session ended (its outstanding RPCs were failed first).
    SessionClosed {
        session: SessionId,
        reason: CloseReason,
    },
    /// Server: a request for the handler. Answer with `respond` / `respond_error`.
    Request {
        req: RequestRef,
        peer: A,
        payload: &'a [u8],
    },
    /// Client: the answer to `call` (exactly one per accepted call).
    Response {
        session: SessionId,
        rpc: RpcId,
        result: Result<&'a [u8], RpcError>,
    },
}

/// Configuration of an [`Endpoint`]. Times in nanoseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TransportConfig {
    /// Largest RPC payload per packet. Default 1440 = 1500 (MTU) − 20 (IPv4) − 8 (UDP)
    /// − 32 (RPC header).
    pub mtu_payload: usize,
    /// Largest message (request or response). Default 1 MiB.
    pub max_message_size: usize,
    /// Session table size (client and server sessions together), ≤ 2^24.
    pub max_sessions: usize,
    /// Sessions opened by `Connect` but not yet confirmed by the client.
    pub max_embryonic: usize,
    /// Outstanding RPCs per session (credits): a power of two in 1..=64 (RPC `r` uses
    /// slot `r & (window - 1)`); the server grants at most its own.
    pub window: u8,
    pub rto_initial_ns: u64,
    pub rto_min_ns: u64,
    pub rto_max_ns: u64,
    /// Consecutive RTOs without progress before a reliable RPC fails.
    pub max_retries: u32,
    /// Overall deadline of a reliable RPC.
    pub rpc_deadline_ns: u64,
    /// Deadline of an unreliable RPC.
    pub unreliable_timeout_ns: u64,
    pub idle_timeout_ns: u64,
    /// Handshake retransmission interval (doubled per retry).
    pub handshake_timeout_ns: u64,
    /// How long a server keeps an embryonic session (a `Connect` not yet confirmed by the
    /// client's first packet). Their number is bounded by `max_embryonic` with eviction,
    /// so this can be generous: a client descheduled for a few milliseconds between its
    /// handshake and its first call must not find its session gone.
    pub embryonic_timeout_ns: u64,
    /// Handshake retransmissions before the connect fails. With the doubling interval the
    /// default (9 after 5 ms) gives a server about 5 s to answer: enough for one that is
    /// still starting or descheduled on a loaded host, short enough to report an error.
    pub connect_retries: u32,
    /// Reassembly memory, all sessions together.
    pub max_reassembly_bytes: usize,
    /// Reassembly memory of one session.
    pub max_session_reassembly_bytes: usize,
    /// Response-cache memory, all sessions together; beyond it responses are sent once
    /// uncached (a lost one is answered with `RESPONSE_LOST`).
    pub max_response_cache_bytes: usize,
    /// Bytes for copies of single-packet unreliable requests awaiting `poll_event`.
    pub event_arena_bytes: usize,
    /// Control packets (acks, handshake, errors) waiting for `poll_transmit`.
    pub max_tx_control: usize,
    /// Fragments re-sent per RTO of one message (after an unanswered probe).
    pub retransmit_burst: u16,
    /// How long a receiver waits before sending a selective ack that reports gaps, so
    /// that fragments merely reordered by the network are not re-sent (a reorder window).
    pub sack_delay_ns: u64,
    /// Error replies to packets of unknown sessions, per millisecond.
    pub error_replies_per_ms: u32,
    /// Unreliable responses (and unreliable multi-fragment requests) in flight.
    pub max_unreliable_buffers: usize,
    /// Bytes of the packet ring of the single-fragment unreliable fast path (requests
    /// and responses written once, header in place, until `poll_transmit`). When it is
    /// full the general path takes over; 0 disables the fast path.
    pub fast_tx_bytes: usize,
    /// Timer-wheel granularity (rounded down to a power of two).
    pub timer_tick_ns: u64,
    pub timer_slots: usize,
    /// Seed for the session-id tag generator; `None` draws it from the OS (production).
    pub tag_seed: Option<u64>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            mtu_payload: 1500 - 20 - 8 - HEADER_LEN,
            max_message_size: 1 << 20,
            max_sessions: 1024,
            max_embryonic: 256,
            window: 32,
            rto_initial_ns: 1_000_000,
            rto_min_ns: 200_000,
            rto_max_ns: 100_000_000,
            max_retries: 12,
            rpc_deadline_ns: 10_000_000_000,
            unreliable_timeout_ns: 5_000_000,
            idle_timeout_ns: 30_000_000_000,
            handshake_timeout_ns: 5_000_000,
            embryonic_timeout_ns: 1_000_000_000,
            connect_retries: 9,
            max_reassembly_bytes: 64 << 20,
            max_session_reassembly_bytes: 8 << 20,
            max_response_cache_bytes: 64 << 20,
            event_arena_bytes: 256 << 10,
            max_tx_control: 4096,
            retransmit_burst: 64,
            sack_delay_ns: 5_000,
            error_replies_per_ms: 64,
            max_unreliable_buffers: 256,
            fast_tx_bytes: 256 << 10,
            timer_tick_ns: 4_096,
            timer_slots: 4096,
            tag_seed: None,
        }
    }
}

/// A configuration the transport cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transport configuration: {0}")]
pub struct ConfigError(pub String);

impl TransportConfig {
    /// Largest packet `poll_transmit` writes (header + payload): the size `out` needs.
    pub fn max_packet_len(&self) -> usize {
        HEADER_LEN + self.mtu_payload
    }

    /// Fragments of a message of `len` bytes.
    pub fn fragments_of(&self, len: usize) -> usize {
        len.div_ceil(self.mtu_payload).max(1)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: &str| Err(ConfigError(s.to_string()));
        if self.mtu_payload < 64 || self.mtu_payload > 65_000 {
            return bad("mtu_payload must be in 64..=65000");
        }
        if self.fragments_of(self.max_message_size) > usize::from(u16::MAX) {
            return bad("max_message_size needs more than 65535 fragments");
        }
        // A selective ack carries one bit per fragment in one packet.
        if self.fragments_of(self.max_message_size) > self.mtu_payload * 8 {
            return bad("max_message_size has more fragments than one ack bitmap can cover");
        }
        if self.max_message_size > u32::MAX as usize {
            return bad("max_message_size must fit in 32 bits");
        }
        if self.max_sessions == 0 || self.max_sessions > (1 << 24) {
            return bad("max_sessions must be in 1..=2^24");
        }
        if !(1..=64).contains(&self.window) || !self.window.is_power_of_two() {
            return bad("window must be a power of two in 1..=64");
        }
        if self.rto_min_ns == 0 || self.rto_min_ns > self.rto_max_ns {
            return bad("need 0 < rto_min_ns <= rto_max_ns");
        }
        if self.retransmit_burst == 0 {
            return bad("retransmit_burst must be at least 1");
        }
        if self.timer_tick_ns == 0 {
            return bad("timer_tick_ns must be at least 1");
        }
        Ok(())
    }
}

/// Counters of one endpoint since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransportStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Malformed headers, by reason (`HeaderError::reason`).
    pub rx_malformed: MalformedCounts,
    pub rx_unknown_session: u64,
    pub rx_wrong_peer: u64,
    pub rx_unexpected: u64,
    pub rx_stale: u64,
    pub rx_bad_fragment: u64,
    pub rx_too_large: u64,
    pub rx_reassembly_budget: u64,
    pub rx_event_arena_full: u64,
    pub rx_unknown_method: u64,
    pub rx_class_mismatch: u64,
    pub tx_control_dropped: u64,
    pub tx_buffer_too_small: u64,
    pub error_replies: u64,
    pub error_replies_suppressed: u64,
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    pub sessions_idle_closed: u64,
    pub embryonic_evicted: u64,
    pub embryonic_expired: u64,
    pub connect_refused: u64,
    pub connect_failed: u64,
    pub requests_delivered: u64,
    pub duplicate_requests: u64,
    pub responses_resent: u64,
    pub responses_uncached: u64,
    pub response_cache_freed: u64,
    pub reorder_held: u64,
    pub ordered_resyncs: u64,
    pub calls: u64,
    pub rpcs_completed: u64,
    pub rpcs_failed: u64,
    pub rpc_timeouts: u64,
    /// Fragments (requests, responses) and response probes sent again.
    pub retransmissions: u64,
    pub connect_retries: u64,
    pub fast_retransmits: u64,
    pub unreliable_buffers_exhausted: u64,
    pub unreliable_reassembly_evicted: u64,
    /// Single-fragment unreliable calls that took the fast path (client).
    pub fast_calls: u64,
    /// Single-fragment unreliable responses sent on the fast path (server).
    pub fast_responses: u64,
    /// Responses for calls that already ended (timed out, or answered before): dropped
    /// (also counted in `rx_stale`).
    pub late_responses: u64,
    /// Runs of the sweep that times out fast-path unreliable calls.
    pub unreliable_sweeps: u64,
    /// Requests (server) and answers (client) handed out in place by `receive`,
    /// borrowing the packet (also counted in `requests_delivered` / `rpcs_completed`).
    pub requests_in_place: u64,
    pub answers_in_place: u64,
    /// Packets written in place by `call_in_place` / `respond_in_place` (also counted
    /// in `tx_packets`).
    pub sent_in_place: u64,
}

/// Malformed-header drops by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MalformedCounts {
    pub truncated: u64,
    pub bad_magic: u64,
    pub bad_version: u64,
    pub unknown_type: u64,
    pub reserved_flags: u64,
    pub bad_class: u64,
    pub zero_fragment_count: u64,
    pub fragment_index_out_of_range: u64,
    pub length_mismatch: u64,
    pub fragment_longer_than_message: u64,
    pub empty_fragment: u64,
    pub length_lies: u64,
}

impl MalformedCounts {
    pub fn total(&self) -> u64 {
        self.truncated
            + self.bad_magic
            + self.bad_version
            + self.unknown_type
            + self.reserved_flags
            + self.bad_class
            + self.zero_fragment_count
            + self.fragment_index_out_of_range
            + self.length_mismatch
            + self.fragment_longer_than_message
            + self.empty_fragment
            + self.length_lies
    }
    fn count(&mut self, e: &HeaderError) {
        let c = match e {
            HeaderError::Truncated { .. } => &mut self.truncated,
            HeaderError::BadMagic(_) => &mut self.bad_magic,
            HeaderError::BadVersion(_) => &mut self.bad_version,
            HeaderError::UnknownType(_) => &mut self.unknown_type,
            HeaderError::ReservedFlags(_) => &mut self.reserved_flags,
            HeaderError::BadClass(_) => &mut self.bad_class,
            HeaderError::ZeroFragmentCount => &mut self.zero_fragment_count,
            HeaderError::FragmentIndexOutOfRange { .. } => &mut self.fragment_index_out_of_range,
            HeaderError::LengthMismatch { .. } => &mut self.length_mismatch,
            HeaderError::FragmentLongerThanMessage { .. } => &mut self.fragment_longer_than_message,
            HeaderError::EmptyFragment { .. } => &mut self.empty_fragment,
            HeaderError::LengthLies { .. } => &mut self.length_lies,
        };
        *c += 1;
    }
}

impl TransportStats {
    fn count_drop(&mut self, d: &RxDrop) {
        match d {
            RxDrop::Malformed(e) => self.rx_malformed.count(e),
            RxDrop::UnknownSession => self.rx_unknown_session += 1,
            RxDrop::WrongPeer => self.rx_wrong_peer += 1,
            RxDrop::Unexpected => self.rx_unexpected += 1,
            RxDrop::Stale => self.rx_stale += 1,
            RxDrop::BadFragment => self.rx_bad_fragment += 1,
            RxDrop::TooLarge => self.rx_too_large += 1,
            RxDrop::ReassemblyBudget => self.rx_reassembly_budget += 1,
            RxDrop::EventArenaFull => self.rx_event_arena_full += 1,
            RxDrop::UnknownMethod => self.rx_unknown_method += 1,
            RxDrop::ClassMismatch => self.rx_class_mismatch += 1,
            RxDrop::TableFull => self.connect_refused += 1,
        }
    }
}
