//! The [`Endpoint`] state machine: its storage, the public sans-IO API, the transmit
//! queue, the event queue, session allocation and timer dispatch. The client-role
//! protocol lives in `client.rs`, the server-role protocol in `server.rs`.
//!
//! This module must not do I/O, read a clock or allocate per packet in steady state:
//! packets are written into the caller's buffer from state, events borrow the endpoint's
//! own buffers, and every queue and table is bounded.

use std::collections::VecDeque;
use std::hash::Hash;

use super::fifo::Fifo;
use super::fragments::{MsgReceiver, MsgSender};
use super::ring::PacketRing;
use super::session::{ClientRpc, Role, ServerRpc, SessState, Session, SessionId, TagSource};
use super::{
    CallError, ClassTable, CloseReason, ConfigError, ConnectError, Event, Instant, RequestRef,
    RpcError, RpcId, RxDrop, TimerWheel, TransportClass, TransportConfig, TransportStats,
    UnknownSession,
};
use crate::wire::rpc::{
    PacketType, RpcHeader, RpcHeaderRepr, FLAG_ACK_REQ, FLAG_COMPLETE, FLAG_HELD, FLAG_RESYNC,
    HEADER_LEN,
};

/// What a timer stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Handshake retry (client), embryonic expiry or idle check (server).
    Session { idx: u32, id: SessionId },
    /// A client slot's retransmission timeout or deadline (for whatever RPC the slot
    /// holds when it fires: the entry is lazy, see `ClientSlot::due`).
    Rpc { idx: u32, id: SessionId, slot: u8 },
    /// A delayed selective ack (of a request by the server, of a response by the client).
    Sack {
        idx: u32,
        id: SessionId,
        slot: u8,
        rpc: u32,
        trigger: u16,
    },
    /// The sweep that times out fast-path unreliable calls (one for the endpoint).
    UnrelSweep,
}

/// One pending transmission. Data items point at state (and re-check it when polled);
/// control items are bounded by `max_tx_control`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TxItem<A> {
    ClientReq {
        idx: u32,
        id: SessionId,
        slot: u8,
    },
    ServerResp {
        idx: u32,
        id: SessionId,
        slot: u8,
    },
    Unrel {
        buf: u32,
    },
    Connect {
        idx: u32,
        id: SessionId,
    },
    ConnectAck {
        idx: u32,
        id: SessionId,
    },
    ReqAck {
        idx: u32,
        id: SessionId,
        slot: u8,
        rpc: u32,
        trigger: u16,
        flags: u8,
    },
    RespAck {
        idx: u32,
        id: SessionId,
        slot: u8,
        rpc: u32,
        trigger: u16,
        flags: u8,
    },
    Header {
        peer: A,
        hdr: RpcHeaderRepr,
    },
    /// A fast-path unreliable request, ready-made in the packet ring (sent only while
    /// its session is still open).
    RawReq {
        idx: u32,
        id: SessionId,
        pos: u64,
        len: u32,
    },
    /// A fast-path unreliable response, ready-made in the packet ring.
    RawResp {
        peer: A,
        pos: u64,
        len: u32,
    },
}

impl<A> TxItem<A> {
    fn is_control(&self) -> bool {
        !matches!(
            self,
            TxItem::ClientReq { .. }
                | TxItem::ServerResp { .. }
                | TxItem::Unrel { .. }
                | TxItem::RawReq { .. }
                | TxItem::RawResp { .. }
        )
    }
}

/// What the receive path did with a packet (see `Endpoint::rx`). Field-less on
/// purpose: what the caller hands out is read back from the (validated) header, so no
/// composite value travels back through the call chain (copying one, padding
/// included, stalled on store forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Took {
    /// Queued as events, or nothing for the application.
    Queued,
    /// A one-packet request deliverable now (inline only): the request is the
    /// header's (its `session` is this side's id), the payload the packet's.
    Request,
    /// A one-packet answer ended a call (inline only): the call is the header's
    /// (`session`, `rpc_id`); a `Response` carries the payload, an `Error` its code.
    Response,
    /// Dropped (in-place receive only; the reason is in `Endpoint::last_drop`).
    Dropped,
}

/// Where a request event's payload is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReqSrc {
    Arena { off: u32, len: u32 },
    Slot { idx: u32, slot: u8 },
    Unrel { buf: u32 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum EventDesc<A> {
    Connected(SessionId),
    ConnectFailed(SessionId),
    Closed(SessionId, CloseReason),
    Request {
        req: RequestRef,
        peer: A,
        src: ReqSrc,
    },
    /// The result sits in the client slot.
    Response {
        session: SessionId,
        idx: u32,
        slot: u8,
        rpc: u32,
    },
    /// A single-fragment response copied into the event arena (the slot is free
    /// already).
    ArenaResponse {
        session: SessionId,
        rpc: u32,
        off: u32,
        len: u32,
    },
    /// The slot is gone (session closed): the result travels in the event.
    Failed {
        session: SessionId,
        rpc: RpcId,
        err: RpcError,
    },
}

/// What the last event handed out borrows, released at the next `&mut` call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Release {
    None,
    ClientSlot {
        idx: u32,
        id: SessionId,
        slot: u8,
    },
    ServerReq {
        idx: u32,
        id: SessionId,
        slot: u8,
        rpc: u32,
    },
    Unrel {
        buf: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnrelUse {
    Free,
    /// An unreliable response (or an uncached reliable one) being sent once.
    Sending,
    /// Fragments of an unreliable request arriving.
    Reassembling,
    /// A complete unreliable request waiting in the event queue.
    Delivering,
}

/// A buffer for unreliable traffic the server keeps no per-RPC state for.
#[derive(Debug)]
pub(crate) struct UnrelBuf<A> {
    pub use_: UnrelUse,
    pub peer: Option<A>,
    pub hdr: RpcHeaderRepr,
    pub sender: MsgSender,
    pub recv: MsgReceiver,
    pub owner: (u32, SessionId, u32),
    pub started: Instant,
}

/// A sans-IO transport endpoint (client and/or server), generic over the peer address.
pub struct Endpoint<A> {
    pub(crate) cfg: TransportConfig,
    pub(crate) classes: ClassTable,
    pub(crate) sessions: Vec<Session<A>>,
    pub(crate) free: Vec<u32>,
    pub(crate) embryonic: VecDeque<SessionId>,
    pub(crate) embryonic_count: usize,
    pub(crate) tags: TagSource,
    pub(crate) timers: TimerWheel<Timer>,
    pub(crate) expired: Vec<Timer>,
    pub(crate) tx: Fifo<TxItem<A>>,
    pub(crate) tx_control: usize,
    pub(crate) events: Fifo<EventDesc<A>>,
    pub(crate) arena: Vec<u8>,
    pub(crate) release: Release,
    /// An event was handed out since the last `&mut` call: what it borrowed (the
    /// `release`, the event arena) may be freed now. One flag for the fast check.
    pub(crate) handed_out: bool,
    pub(crate) unrel: Vec<UnrelBuf<A>>,
    pub(crate) unrel_free: Vec<u32>,
    /// Ready-made packets of the single-fragment unreliable fast path.
    pub(crate) ring: PacketRing,
    /// Sessions with fast-path unreliable calls outstanding (the sweep's work list).
    pub(crate) unrel_sessions: Vec<u32>,
    /// The armed unreliable sweep and its deadline.
    pub(crate) sweep: Option<(super::TimerHandle, Instant)>,
    pub(crate) reasm_bytes: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) error_tokens: u32,
    pub(crate) error_epoch_ms: u64,
    /// Why the last packet of an in-place receive was dropped.
    pub(crate) last_drop: RxDrop,
    pub(crate) stats: TransportStats,
}

impl<A> std::fmt::Debug for Endpoint<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sessions", &(self.sessions.len() - self.free.len()))
            .field("tx_queue", &self.tx.len())
            .field("events", &self.events.len())
            .finish()
    }
}

/// Wrapping "a is newer than b" for RPC ids.
#[inline]
pub(crate) fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl<A: Copy + Eq + Hash> Endpoint<A> {
    /// An endpoint with `config` and the server-side method classes `classes`.
    pub fn new(config: TransportConfig, classes: ClassTable) -> Result<Self, ConfigError> {
        config.validate()?;
        let tags = TagSource::new(config.tag_seed);
        Ok(Endpoint {
            timers: TimerWheel::new(config.timer_tick_ns, config.timer_slots),
            sessions: Vec::with_capacity(config.max_sessions.min(1 << 16)),
            free: Vec::new(),
            embryonic: VecDeque::with_capacity(config.max_embryonic),
            embryonic_count: 0,
            tags,
            expired: Vec::with_capacity(64),
            tx: Fifo::with_capacity(256, TxItem::Unrel { buf: u32::MAX }),
            tx_control: 0,
            events: Fifo::with_capacity(256, EventDesc::Connected(SessionId(0))),
            arena: Vec::with_capacity(config.event_arena_bytes),
            release: Release::None,
            handed_out: false,
            unrel: Vec::new(),
            unrel_free: Vec::new(),
            ring: PacketRing::new(config.fast_tx_bytes),
            unrel_sessions: Vec::new(),
            sweep: None,
            reasm_bytes: 0,
            cache_bytes: 0,
            error_tokens: config.error_replies_per_ms,
            error_epoch_ms: 0,
            last_drop: RxDrop::Stale,
            stats: TransportStats::default(),
            classes,
            cfg: config,
        })
    }

    pub fn config(&self) -> &TransportConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Sessions in use (any role, any state).
    pub fn session_count(&self) -> usize {
        self.sessions.len() - self.free.len()
    }

    /// Server sessions not yet confirmed by their client.
    pub fn embryonic_count(&self) -> usize {
        self.embryonic_count
    }

    /// Reassembly and response-cache bytes currently charged to the budgets.
    pub fn buffered_bytes(&self) -> (usize, usize) {
        (self.reasm_bytes, self.cache_bytes)
    }

    /// Bytes of heap the endpoint's own structures hold (capacities, not lengths).
    pub fn memory_bytes(&self) -> usize {
        self.sessions.capacity() * core::mem::size_of::<Session<A>>()
            + self
                .sessions
                .iter()
                .map(|s| s.memory_bytes() - core::mem::size_of::<Session<A>>())
                .sum::<usize>()
            + self.free.capacity() * 4
            + self.embryonic.capacity() * 8
            + self.timers.memory_bytes()
            + self.expired.capacity() * core::mem::size_of::<Timer>()
            + self.tx.capacity() * core::mem::size_of::<TxItem<A>>()
            + self.events.capacity() * core::mem::size_of::<EventDesc<A>>()
            + self.arena.capacity()
            + self.ring.memory_bytes()
            + self.unrel_sessions.capacity() * 4
            + self
                .unrel
                .iter()
                .map(|u| {
                    core::mem::size_of::<UnrelBuf<A>>()
                        + u.sender.memory_bytes()
                        + u.recv.memory_bytes()
                })
                .sum::<usize>()
    }

    /// Whether a session id names a live, usable session.
    pub fn is_open(&self, session: SessionId) -> bool {
        self.sessions
            .get(session.index())
            .is_some_and(|s| s.id == session && s.state == SessState::Open)
    }

    /// The peer of a live session.
    pub fn peer_of(&self, session: SessionId) -> Option<A> {
        self.sessions
            .get(session.index())
            .filter(|s| s.id == session && s.state != SessState::Free)
            .and_then(|s| s.peer)
    }

    /// The peer's id for a live session (what this side's packets to it carry).
    pub fn remote_of(&self, session: SessionId) -> Option<SessionId> {
        self.sessions
            .get(session.index())
            .filter(|s| s.id == session && s.state == SessState::Open)
            .map(|s| SessionId(s.remote))
    }

    /// Free client slots (credits left) of a session; 0 if unknown or not connected.
    pub fn credits(&self, session: SessionId) -> usize {
        match self.sessions.get(session.index()) {
            Some(s) if s.id == session && s.state == SessState::Open && s.role == Role::Client => s
                .client_slots
                .iter()
                .take(usize::from(s.window))
                .filter(|c| c.state == ClientRpc::Free)
                .count(),
            _ => 0,
        }
    }

    // ---------------------------------------------------------------- public API

    /// Client: opens a session to `peer`. Completes with [`Event::Connected`] (or
    /// [`Event::ConnectFailed`]).
    pub fn connect(&mut self, now: Instant, peer: A) -> Result<SessionId, ConnectError> {
        self.release_pending();
        let idx = self
            .alloc_session(now, peer, Role::Client, self.cfg.window)
            .ok_or(ConnectError::TableFull)?;
        let s = &mut self.sessions[idx as usize];
        s.state = SessState::Connecting;
        let id = s.id;
        self.arm_session_timer(idx, now + self.cfg.handshake_timeout_ns);
        self.push_tx(TxItem::Connect { idx, id });
        Ok(id)
    }

    /// Closes a session (either role): outstanding client RPCs fail with
    /// [`RpcError::SessionClosed`], the peer is told, the state is freed.
    pub fn close(&mut self, now: Instant, session: SessionId) -> Result<(), UnknownSession> {
        self.release_pending();
        let _ = now;
        let idx = session.index();
        match self.sessions.get(idx) {
            Some(s) if s.id == session && s.state != SessState::Free => {}
            _ => return Err(UnknownSession),
        }
        self.send_close(idx as u32);
        self.fail_all(idx as u32, RpcError::SessionClosed);
        self.free_session(idx as u32);
        self.stats.sessions_closed += 1;
        Ok(())
    }

    /// Client: starts an RPC on `session`. The answer comes as exactly one
    /// [`Event::Response`] with the returned id.
    pub fn call(
        &mut self,
        now: Instant,
        session: SessionId,
        service: u16,
        method: u16,
        class: TransportClass,
        payload: &[u8],
    ) -> Result<RpcId, CallError> {
        self.release_pending();
        self.client_call(now, session, service, method, class, payload, false)
    }

    /// Feeds one received packet (the RPC header and payload, after UDP) from `peer`.
    /// An `Err` says why it was dropped (also counted in [`stats`](Self::stats)).
    pub fn handle_packet(&mut self, now: Instant, peer: A, bytes: &[u8]) -> Result<(), RxDrop> {
        self.release_pending();
        match self.rx(now, peer, bytes, false) {
            Took::Dropped => Err(self.last_drop),
            _ => Ok(()),
        }
    }

    /// The receive path. With `inline`, a one-packet request deliverable now and a
    /// one-packet answer that ends a call are not queued: they are returned, their
    /// payload being the packet's (see `receive`). A drop returns [`Took::Dropped`],
    /// its reason counted and left in `last_drop` by the cold [`dropped`](Self::dropped)
    /// (a `Result` carrying the reason out of here was a wide value moved through
    /// every arm, 10 instructions per packet by callgrind).
    #[inline(always)]
    pub(crate) fn rx(&mut self, now: Instant, peer: A, bytes: &[u8], inline: bool) -> Took {
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += bytes.len() as u64;
        let h = match RpcHeader::new_checked(bytes) {
            Ok(h) => h,
            Err(e) => return self.dropped(RxDrop::Malformed(e)),
        };
        let r = match h.packet_type() {
            PacketType::Request => self.server_on_request(now, peer, &h, inline),
            PacketType::Response | PacketType::Error => {
                self.client_on_response(now, peer, &h, inline)
            }
            PacketType::ResponseAck => self
                .server_on_response_ack(now, peer, &h)
                .map(|()| Took::Queued),
            PacketType::Connect => self.server_on_connect(now, peer, &h).map(|()| Took::Queued),
            PacketType::RequestAck => self
                .client_on_request_ack(now, peer, &h)
                .map(|()| Took::Queued),
            PacketType::ConnectAck => self.on_connect_ack(now, peer, &h).map(|()| Took::Queued),
            PacketType::Close => self.on_close(peer, &h).map(|()| Took::Queued),
        };
        match r {
            Ok(t) => t,
            Err(d) => self.dropped(d),
        }
    }

    /// Counts a dropped packet and keeps its reason for the caller.
    #[cold]
    #[inline(never)]
    fn dropped(&mut self, d: RxDrop) -> Took {
        self.stats.count_drop(&d);
        self.last_drop = d;
        Took::Dropped
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work (a lower
    /// bound: calling it earlier is harmless), or `None` with no timer pending.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now`: retransmissions, RPC deadlines, handshake
    /// retries, idle and embryonic expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release_pending();
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        self.timers.expire(now, &mut expired);
        for t in expired.drain(..) {
            match t {
                Timer::Session { idx, id } => self.on_session_timer(now, idx, id),
                Timer::Rpc { idx, id, slot } => self.on_rpc_timer(now, idx, id, slot),
                Timer::Sack {
                    idx,
                    id,
                    slot,
                    rpc,
                    trigger,
                } => self.on_sack_timer(idx, id, slot, rpc, trigger),
                Timer::UnrelSweep => self.on_unrel_sweep(now),
            }
        }
        self.expired = expired;
    }

    /// Writes the next packet (RPC header + payload) into `out`, which must hold
    /// [`TransportConfig::max_packet_len`] bytes; returns the destination and length.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(A, usize)> {
        self.release_pending();
        while let Some(item) = self.tx.pop_front() {
            let sent = match item {
                TxItem::RawReq { idx, id, pos, len } => {
                    let peer = self
                        .sessions
                        .get(idx as usize)
                        .filter(|s| s.id == id && s.state == SessState::Open)
                        .and_then(|s| s.peer);
                    let r = peer.and_then(|p| self.emit_raw(p, pos, len, out));
                    self.ring.release(pos, len as usize);
                    r
                }
                TxItem::RawResp { peer, pos, len } => {
                    let r = self.emit_raw(peer, pos, len, out);
                    self.ring.release(pos, len as usize);
                    r
                }
                _ => {
                    if item.is_control() {
                        self.tx_control -= 1;
                    }
                    self.emit(now, item, out)
                }
            };
            if let Some((peer, len)) = sent {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += len as u64;
                return Some((peer, len));
            }
        }
        None
    }

    /// Packets waiting for `poll_transmit` (items; a multi-fragment message counts once).
    pub fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    /// Events waiting for `poll_event` (while there are, `receive` queues too).
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event. Its payload borrows the endpoint until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_, A>> {
        self.release_pending();
        loop {
            let desc = self.events.pop_front()?;
            self.handed_out = true;
            match desc {
                EventDesc::Connected(session) => return Some(Event::Connected { session }),
                EventDesc::ConnectFailed(session) => return Some(Event::ConnectFailed { session }),
                EventDesc::Closed(session, reason) => {
                    return Some(Event::SessionClosed { session, reason })
                }
                EventDesc::ArenaResponse {
                    session,
                    rpc,
                    off,
                    len,
                } => {
                    let (o, l) = (off as usize, len as usize);
                    let payload = self.arena.get(o..o + l).unwrap_or(&[]);
                    return Some(Event::Response {
                        session,
                        rpc: RpcId(rpc),
                        result: Ok(payload),
                    });
                }
                EventDesc::Failed { session, rpc, err } => {
                    return Some(Event::Response {
                        session,
                        rpc,
                        result: Err(err),
                    })
                }
                EventDesc::Request { req, peer, src } => match src {
                    ReqSrc::Arena { off, len } => {
                        let (o, l) = (off as usize, len as usize);
                        let payload = self.arena.get(o..o + l).unwrap_or(&[]);
                        return Some(Event::Request { req, peer, payload });
                    }
                    ReqSrc::Slot { idx, slot } => {
                        let live = self.sessions.get(idx as usize).is_some_and(|s| {
                            s.id == req.session
                                && s.server_slots.get(usize::from(slot)).is_some_and(|x| {
                                    x.rpc_id == req.rpc.0 && x.state != ServerRpc::Free
                                })
                        });
                        if !live {
                            continue;
                        }
                        self.release = Release::ServerReq {
                            idx,
                            id: req.session,
                            slot,
                            rpc: req.rpc.0,
                        };
                        let payload = &self.sessions[idx as usize].server_slots[usize::from(slot)]
                            .req
                            .buf;
                        return Some(Event::Request { req, peer, payload });
                    }
                    ReqSrc::Unrel { buf } => {
                        self.release = Release::Unrel { buf };
                        let payload = self
                            .unrel
                            .get(buf as usize)
                            .map(|u| &u.recv.buf[..])
                            .unwrap_or(&[]);
                        return Some(Event::Request { req, peer, payload });
                    }
                },
                EventDesc::Response {
                    session,
                    idx,
                    slot,
                    rpc,
                } => {
                    let live = self.sessions.get(idx as usize).is_some_and(|s| {
                        s.id == session
                            && s.client_slots
                                .get(usize::from(slot))
                                .is_some_and(|c| c.rpc_id == rpc && c.state == ClientRpc::Done)
                    });
                    if !live {
                        return Some(Event::Response {
                            session,
                            rpc: RpcId(rpc),
                            result: Err(RpcError::SessionClosed),
                        });
                    }
                    self.release = Release::ClientSlot {
                        idx,
                        id: session,
                        slot,
                    };
                    let c = &self.sessions[idx as usize].client_slots[usize::from(slot)];
                    let result = match &c.result {
                        Ok(()) => Ok(&c.resp.buf[..]),
                        Err(e) => Err(*e),
                    };
                    return Some(Event::Response {
                        session,
                        rpc: RpcId(rpc),
                        result,
                    });
                }
            }
        }
    }

    // ---------------------------------------------------------------- internals

    /// Frees what the last event borrowed; resets the arena when no event needs it.
    /// Runs at the start of every `&mut` API call, so the common case (no event
    /// handed out since the last call) is one inlined flag test.
    #[inline(always)]
    pub(crate) fn release_pending(&mut self) {
        if self.handed_out {
            self.release_pending_slow();
        }
    }

    #[inline(never)]
    fn release_pending_slow(&mut self) {
        self.handed_out = false;
        match std::mem::replace(&mut self.release, Release::None) {
            Release::None => {}
            Release::ClientSlot { idx, id, slot } => {
                let mut freed = 0;
                if let Some(s) = self.sessions.get_mut(idx as usize) {
                    if s.id == id {
                        if let Some(c) = s.client_slots.get_mut(usize::from(slot)) {
                            if c.state == ClientRpc::Done {
                                c.state = ClientRpc::Free;
                                freed = c.resp.charged;
                                c.resp.clear();
                                c.req.clear();
                            }
                        }
                        s.reasm_bytes -= freed.min(s.reasm_bytes);
                    }
                }
                self.reasm_bytes -= freed.min(self.reasm_bytes);
            }
            Release::ServerReq { idx, id, slot, rpc } => {
                let mut freed = 0;
                if let Some(s) = self.sessions.get_mut(idx as usize) {
                    if s.id == id {
                        if let Some(x) = s.server_slots.get_mut(usize::from(slot)) {
                            if x.rpc_id == rpc
                                && !matches!(x.state, ServerRpc::Receiving | ServerRpc::Held)
                            {
                                freed = x.req.charged;
                                x.req.clear();
                            }
                        }
                        s.reasm_bytes -= freed.min(s.reasm_bytes);
                    }
                }
                self.reasm_bytes -= freed.min(self.reasm_bytes);
            }
            Release::Unrel { buf } => self.free_unrel(buf),
        }
        if self.events.is_empty() && !self.arena.is_empty() {
            self.arena.clear();
        }
    }

    pub(crate) fn push_tx(&mut self, item: TxItem<A>) {
        if item.is_control() {
            if self.tx_control >= self.cfg.max_tx_control {
                self.stats.tx_control_dropped += 1;
                return;
            }
            self.tx_control += 1;
        }
        self.tx.push_back(item);
    }

    /// Queues a control packet that is only a header, to `peer`.
    pub(crate) fn push_header(&mut self, peer: A, hdr: RpcHeaderRepr) {
        self.push_tx(TxItem::Header { peer, hdr });
    }

    /// Queues the client request of a slot unless it is already queued.
    #[inline]
    pub(crate) fn queue_client_req(&mut self, idx: u32, slot: u8) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let c = &mut s.client_slots[usize::from(slot)];
        if !c.req.queued && c.req.has_due() {
            c.req.queued = true;
            self.tx.push_back(TxItem::ClientReq { idx, id, slot });
        }
    }

    /// Queues the server response of a slot unless it is already queued.
    #[inline]
    pub(crate) fn queue_server_resp(&mut self, idx: u32, slot: u8) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let x = &mut s.server_slots[usize::from(slot)];
        if !x.resp.queued && x.resp.has_due() {
            x.resp.queued = true;
            self.tx.push_back(TxItem::ServerResp { idx, id, slot });
        }
    }

    /// Sends a selective ack for `trigger` after the reorder window (now if it is 0).
    pub(crate) fn schedule_sack(
        &mut self,
        now: Instant,
        idx: u32,
        slot: u8,
        rpc: u32,
        trigger: u16,
    ) {
        let id = self.sessions[idx as usize].id;
        if self.cfg.sack_delay_ns == 0 {
            self.on_sack_timer(idx, id, slot, rpc, trigger);
            return;
        }
        self.timers.insert(
            now + self.cfg.sack_delay_ns,
            Timer::Sack {
                idx,
                id,
                slot,
                rpc,
                trigger,
            },
        );
    }

    fn on_sack_timer(&mut self, idx: u32, id: SessionId, slot: u8, rpc: u32, trigger: u16) {
        let Some(s) = self.sessions.get(idx as usize) else {
            return;
        };
        if s.id != id {
            return;
        }
        let item = match s.role {
            Role::Server => match s.server_slots.get(usize::from(slot)) {
                Some(x) if x.rpc_id == rpc && x.state == ServerRpc::Receiving => TxItem::ReqAck {
                    idx,
                    id,
                    slot,
                    rpc,
                    trigger,
                    flags: 0,
                },
                // Still waiting in the reorder buffer: a held-ack naming the gap.
                Some(x) if x.rpc_id == rpc && x.state == ServerRpc::Held => TxItem::ReqAck {
                    idx,
                    id,
                    slot,
                    rpc,
                    trigger,
                    flags: FLAG_COMPLETE | FLAG_HELD,
                },
                _ => return,
            },
            Role::Client => match s.client_slots.get(usize::from(slot)) {
                Some(c)
                    if c.rpc_id == rpc
                        && c.state == ClientRpc::Active
                        && c.resp.is_active()
                        && !c.resp.is_complete() =>
                {
                    TxItem::RespAck {
                        idx,
                        id,
                        slot,
                        rpc,
                        trigger,
                        flags: 0,
                    }
                }
                _ => return,
            },
        };
        self.push_tx(item);
    }

    /// Finds the live session `id` from `peer` with `role`.
    pub(crate) fn lookup(&self, id: u64, peer: A, role: Role) -> Result<u32, RxDrop> {
        let sid = SessionId(id);
        let idx = sid.index();
        let s = self.sessions.get(idx).ok_or(RxDrop::UnknownSession)?;
        if s.id != sid || s.state == SessState::Free {
            return Err(RxDrop::UnknownSession);
        }
        if s.peer != Some(peer) {
            return Err(RxDrop::WrongPeer);
        }
        if s.role != role {
            return Err(RxDrop::Unexpected);
        }
        Ok(idx as u32)
    }

    /// Takes a table entry for a new session; `None` when the table is full. Evicts the
    /// oldest embryonic session when needed (server sessions only).
    pub(crate) fn alloc_session(
        &mut self,
        now: Instant,
        peer: A,
        role: Role,
        window: u8,
    ) -> Option<u32> {
        if role == Role::Server && self.embryonic_count >= self.cfg.max_embryonic {
            self.evict_oldest_embryonic();
        }
        if self.free.is_empty() && self.sessions.len() < self.cfg.max_sessions {
            self.sessions.push(Session::empty());
            self.free.push((self.sessions.len() - 1) as u32);
        }
        if self.free.is_empty() && role == Role::Server && self.embryonic_count > 0 {
            self.evict_oldest_embryonic();
        }
        let idx = self.free.pop()?;
        let id = SessionId::new(idx, self.tags.next_tag());
        self.sessions[idx as usize].reset(id, role, peer, window, now);
        Some(idx)
    }

    fn evict_oldest_embryonic(&mut self) {
        while let Some(id) = self.embryonic.pop_front() {
            let idx = id.index();
            if self
                .sessions
                .get(idx)
                .is_some_and(|s| s.id == id && s.state == SessState::Embryonic)
            {
                self.free_session(idx as u32);
                self.stats.embryonic_evicted += 1;
                return;
            }
        }
    }

    /// Returns a session's entry to the free list, releasing its budgets and timers.
    pub(crate) fn free_session(&mut self, idx: u32) {
        let Some(s) = self.sessions.get_mut(idx as usize) else {
            return;
        };
        if s.state == SessState::Free {
            return;
        }
        if s.state == SessState::Embryonic {
            self.embryonic_count -= 1;
        }
        if let Some(t) = s.timer.take() {
            self.timers.cancel(t);
        }
        for c in &mut s.client_slots {
            if let Some(t) = c.timer.take() {
                self.timers.cancel(t);
            }
            self.reasm_bytes -= c.resp.charged.min(self.reasm_bytes);
            c.state = ClientRpc::Free;
            c.req.clear();
            c.resp.clear();
        }
        for x in &mut s.server_slots {
            self.reasm_bytes -= x.req.charged.min(self.reasm_bytes);
            self.cache_bytes -= x.cached_bytes.min(self.cache_bytes);
            x.cached_bytes = 0;
            x.state = ServerRpc::Free;
            x.req.clear();
            x.resp.clear();
        }
        s.state = SessState::Free;
        s.id = SessionId(0);
        s.peer = None;
        s.reasm_bytes = 0;
        s.unrel_mask = 0;
        self.free.push(idx);
    }

    pub(crate) fn arm_session_timer(&mut self, idx: u32, at: Instant) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        if let Some(t) = s.timer.take() {
            self.timers.cancel(t);
        }
        let h = self.timers.insert(at, Timer::Session { idx, id });
        self.sessions[idx as usize].timer = Some(h);
    }

    fn on_session_timer(&mut self, now: Instant, idx: u32, id: SessionId) {
        let Some(s) = self.sessions.get_mut(idx as usize) else {
            return;
        };
        if s.id != id {
            return;
        }
        s.timer = None;
        match (s.role, s.state) {
            (Role::Client, SessState::Connecting) => {
                s.attempts += 1;
                if s.attempts > self.cfg.connect_retries {
                    self.events.push_back(EventDesc::ConnectFailed(id));
                    self.stats.connect_failed += 1;
                    self.free_session(idx);
                } else {
                    let backoff = self.cfg.handshake_timeout_ns << s.attempts.min(16);
                    self.stats.connect_retries += 1;
                    self.push_tx(TxItem::Connect { idx, id });
                    self.arm_session_timer(idx, now + backoff);
                }
            }
            (Role::Server, SessState::Embryonic) => {
                self.free_session(idx);
                self.stats.embryonic_expired += 1;
            }
            (Role::Server, SessState::Open) => {
                let due = s.last_activity + self.cfg.idle_timeout_ns;
                if now >= due {
                    self.events
                        .push_back(EventDesc::Closed(id, CloseReason::Idle));
                    self.free_session(idx);
                    self.stats.sessions_idle_closed += 1;
                } else {
                    self.arm_session_timer(idx, due);
                }
            }
            _ => {}
        }
    }

    /// Queues a `Close` to the peer of a session, if it has one to tell.
    fn send_close(&mut self, idx: u32) {
        let s = &self.sessions[idx as usize];
        let tell = match s.role {
            Role::Client => s.state == SessState::Open,
            Role::Server => true,
        };
        if let (true, Some(peer)) = (tell, s.peer) {
            let mut hdr = RpcHeaderRepr::new(PacketType::Close);
            hdr.session = s.remote;
            self.push_header(peer, hdr);
        }
    }

    fn on_close(&mut self, peer: A, h: &RpcHeader<&[u8]>) -> Result<(), RxDrop> {
        let sid = SessionId(h.session());
        let idx = sid.index();
        let s = self.sessions.get(idx).ok_or(RxDrop::UnknownSession)?;
        if s.id != sid || s.state == SessState::Free {
            return Err(RxDrop::UnknownSession);
        }
        if s.peer != Some(peer) {
            return Err(RxDrop::WrongPeer);
        }
        if s.state == SessState::Open {
            self.events
                .push_back(EventDesc::Closed(sid, CloseReason::Peer));
        }
        self.fail_all(idx as u32, RpcError::SessionClosed);
        self.free_session(idx as u32);
        self.stats.sessions_closed += 1;
        Ok(())
    }

    /// `ConnectAck` server → client accepts a session; client → server confirms it.
    fn on_connect_ack(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
    ) -> Result<(), RxDrop> {
        let sid = SessionId(h.session());
        let idx = sid.index();
        let s = self.sessions.get(idx).ok_or(RxDrop::UnknownSession)?;
        if s.id != sid || s.state == SessState::Free {
            return Err(RxDrop::UnknownSession);
        }
        if s.peer != Some(peer) {
            return Err(RxDrop::WrongPeer);
        }
        match s.role {
            Role::Client => self.client_on_connect_ack(now, idx as u32, h),
            Role::Server => {
                if s.state == SessState::Embryonic {
                    self.establish(now, idx as u32);
                }
                Ok(())
            }
        }
    }

    /// Copies a ready-made packet of the ring into `out`.
    #[inline]
    fn emit_raw(&mut self, peer: A, pos: u64, len: u32, out: &mut [u8]) -> Option<(A, usize)> {
        if out.len() < HEADER_LEN + self.cfg.mtu_payload {
            self.stats.tx_buffer_too_small += 1;
            return None;
        }
        let len = len as usize;
        let bytes = self.ring.get(pos, len);
        if bytes.len() != len {
            return None;
        }
        out.get_mut(..len)?.copy_from_slice(bytes);
        Some((peer, len))
    }

    /// Writes one packet for `item` into `out`, or `None` if the item is stale.
    pub(crate) fn emit(
        &mut self,
        now: Instant,
        item: TxItem<A>,
        out: &mut [u8],
    ) -> Option<(A, usize)> {
        let mtu = self.cfg.mtu_payload;
        if out.len() < HEADER_LEN + mtu {
            self.stats.tx_buffer_too_small += 1;
            return None;
        }
        match item {
            TxItem::ClientReq { idx, id, slot } => {
                let s = self.sessions.get_mut(idx as usize)?;
                if s.id != id || s.state != SessState::Open {
                    return None;
                }
                let (peer, remote) = (s.peer?, s.remote);
                let c = s.client_slots.get_mut(usize::from(slot))?;
                c.req.queued = false;
                if c.state != ClientRpc::Active {
                    return None;
                }
                let (i, last) = c.req.next_due(now)?;
                let mut hdr = RpcHeaderRepr::new(PacketType::Request);
                hdr.class = c.class.to_wire();
                if last && c.class.is_reliable() {
                    hdr.flags |= FLAG_ACK_REQ;
                }
                if c.class == TransportClass::ReliableOrdered {
                    hdr.aux = c.order_seq;
                    if c.resync {
                        hdr.flags |= FLAG_RESYNC;
                    }
                }
                hdr.service = c.service;
                hdr.method = c.method;
                hdr.frag_index = i;
                hdr.frag_count = c.req.count;
                hdr.session = remote;
                hdr.rpc_id = c.rpc_id;
                hdr.msg_len = c.req.len() as u32;
                let len = write_packet(out, &hdr, c.req.fragment(i))?;
                let more = c.req.has_due();
                c.req.queued = more;
                s.sent_touch(slot, now);
                if more {
                    self.tx.push_back(item);
                }
                Some((peer, len))
            }
            TxItem::ServerResp { idx, id, slot } => {
                let s = self.sessions.get_mut(idx as usize)?;
                if s.id != id {
                    return None;
                }
                let (peer, remote) = (s.peer?, s.remote);
                let x = s.server_slots.get_mut(usize::from(slot))?;
                x.resp.queued = false;
                if x.state != ServerRpc::Responded {
                    return None;
                }
                let (i, last) = x.resp.next_due(now)?;
                let mut hdr = RpcHeaderRepr::new(x.resp_type);
                if last && x.resp.count > 1 {
                    hdr.flags |= FLAG_ACK_REQ;
                }
                hdr.aux = if x.resp_type == PacketType::Error {
                    x.error_code
                } else {
                    ((now - x.completed_at) / 1_000).min(u64::from(u16::MAX)) as u16
                };
                hdr.service = x.service;
                hdr.method = x.method;
                hdr.frag_index = i;
                hdr.frag_count = x.resp.count;
                hdr.session = remote;
                hdr.rpc_id = x.rpc_id;
                hdr.msg_len = x.resp.len() as u32;
                let len = write_packet(out, &hdr, x.resp.fragment(i))?;
                if x.resp.has_due() {
                    x.resp.queued = true;
                    self.tx.push_back(item);
                }
                Some((peer, len))
            }
            other => self.emit_other(now, other, out),
        }
    }

    /// [`emit`](Self::emit) for everything but the per-RPC data items: kept out of line
    /// so the hot path stays small.
    #[inline(never)]
    fn emit_other(&mut self, now: Instant, item: TxItem<A>, out: &mut [u8]) -> Option<(A, usize)> {
        let mtu = self.cfg.mtu_payload;
        match item {
            TxItem::ClientReq { .. } | TxItem::ServerResp { .. } => None,
            TxItem::Unrel { buf } => {
                let u = self.unrel.get_mut(buf as usize)?;
                if u.use_ != UnrelUse::Sending {
                    return None;
                }
                let peer = u.peer?;
                let Some((i, _)) = u.sender.next_due(now) else {
                    self.free_unrel(buf);
                    return None;
                };
                let mut hdr = u.hdr;
                hdr.frag_index = i;
                hdr.frag_count = u.sender.count;
                hdr.msg_len = u.sender.len() as u32;
                let len = write_packet(out, &hdr, u.sender.fragment(i))?;
                if u.sender.has_due() {
                    self.tx.push_back(item);
                } else {
                    self.free_unrel(buf);
                }
                Some((peer, len))
            }
            TxItem::Connect { idx, id } => {
                let s = self.sessions.get(idx as usize)?;
                if s.id != id || s.state != SessState::Connecting {
                    return None;
                }
                let mut hdr = RpcHeaderRepr::new(PacketType::Connect);
                hdr.session = id.0;
                hdr.credits = s.window;
                Some((s.peer?, write_packet(out, &hdr, &[])?))
            }
            TxItem::ConnectAck { idx, id } => {
                let s = self.sessions.get(idx as usize)?;
                if s.id != id || s.state == SessState::Free {
                    return None;
                }
                let mut hdr = RpcHeaderRepr::new(PacketType::ConnectAck);
                hdr.session = s.remote;
                hdr.credits = s.window;
                hdr.msg_len = 8;
                Some((s.peer?, write_packet(out, &hdr, &id.0.to_le_bytes())?))
            }
            TxItem::ReqAck {
                idx,
                id,
                slot,
                rpc,
                trigger,
                flags,
            } => {
                let s = self.sessions.get(idx as usize)?;
                if s.id != id {
                    return None;
                }
                let x = s.server_slots.get(usize::from(slot))?;
                if x.rpc_id != rpc {
                    return None;
                }
                let mut hdr = RpcHeaderRepr::new(PacketType::RequestAck);
                hdr.session = s.remote;
                hdr.rpc_id = rpc;
                hdr.service = x.service;
                hdr.method = x.method;
                hdr.aux = if flags & FLAG_HELD != 0 {
                    // What the reorder buffer waits for: the client's dup-ack signal.
                    s.expect_order_seq
                } else {
                    trigger
                };
                hdr.flags = flags;
                let peer = s.peer?;
                if flags & FLAG_COMPLETE != 0 || x.state != ServerRpc::Receiving {
                    hdr.flags |= FLAG_COMPLETE;
                    return Some((peer, write_packet(out, &hdr, &[])?));
                }
                let n = x.req.write_bitmap(&mut out[HEADER_LEN..HEADER_LEN + mtu]);
                hdr.msg_len = n as u32;
                hdr.emit(out).ok()?;
                Some((peer, HEADER_LEN + n))
            }
            TxItem::RespAck {
                idx,
                id,
                slot,
                rpc,
                trigger,
                flags,
            } => {
                let s = self.sessions.get_mut(idx as usize)?;
                if s.id != id || s.state != SessState::Open {
                    return None;
                }
                let (peer, remote) = (s.peer?, s.remote);
                let c = s.client_slots.get_mut(usize::from(slot))?;
                if c.rpc_id != rpc {
                    return None;
                }
                let mut hdr = RpcHeaderRepr::new(PacketType::ResponseAck);
                hdr.session = remote;
                hdr.rpc_id = rpc;
                hdr.service = c.service;
                hdr.method = c.method;
                hdr.aux = trigger;
                hdr.flags = flags;
                if flags & FLAG_COMPLETE != 0 {
                    return Some((peer, write_packet(out, &hdr, &[])?));
                }
                if c.state != ClientRpc::Active {
                    return None;
                }
                let n = if c.resp.is_active() {
                    c.resp.write_bitmap(&mut out[HEADER_LEN..HEADER_LEN + mtu])
                } else {
                    0
                };
                hdr.msg_len = n as u32;
                hdr.emit(out).ok()?;
                s.sent_touch(slot, now);
                Some((peer, HEADER_LEN + n))
            }
            TxItem::Header { peer, hdr } => Some((peer, write_packet(out, &hdr, &[])?)),
            // Handled by `poll_transmit` (they release ring space).
            TxItem::RawReq { .. } | TxItem::RawResp { .. } => None,
        }
    }

    // ------------------------------------------------------- unreliable buffers

    /// A free unreliable buffer, growing the pool up to `max_unreliable_buffers`.
    pub(crate) fn alloc_unrel(&mut self) -> Option<u32> {
        if let Some(i) = self.unrel_free.pop() {
            return Some(i);
        }
        if self.unrel.len() < self.cfg.max_unreliable_buffers {
            self.unrel.push(UnrelBuf {
                use_: UnrelUse::Free,
                peer: None,
                hdr: RpcHeaderRepr::new(PacketType::Response),
                sender: MsgSender::new(),
                recv: MsgReceiver::new(),
                owner: (0, SessionId(0), 0),
                started: Instant::ZERO,
            });
            return Some((self.unrel.len() - 1) as u32);
        }
        None
    }

    pub(crate) fn free_unrel(&mut self, buf: u32) {
        if let Some(u) = self.unrel.get_mut(buf as usize) {
            if u.use_ == UnrelUse::Free {
                return;
            }
            self.unrel_free.push(buf);
            self.reasm_bytes -= u.recv.charged.min(self.reasm_bytes);
            u.use_ = UnrelUse::Free;
            u.peer = None;
            u.sender.clear();
            u.recv.clear();
        }
    }

    /// Sends `payload` once, uncached, as `hdr` (with its fragment fields filled in).
    pub(crate) fn send_unrel(
        &mut self,
        peer: A,
        hdr: RpcHeaderRepr,
        payload: &[u8],
    ) -> Result<(), ()> {
        let Some(buf) = self.alloc_unrel() else {
            self.stats.unreliable_buffers_exhausted += 1;
            return Err(());
        };
        let mtu = self.cfg.mtu_payload;
        let u = &mut self.unrel[buf as usize];
        u.use_ = UnrelUse::Sending;
        u.peer = Some(peer);
        u.hdr = hdr;
        u.sender.load(payload, mtu);
        self.tx.push_back(TxItem::Unrel { buf });
        Ok(())
    }

    /// Writes `hdr` (one fragment, `msg_len` set here) and `payload` as one ready-made
    /// packet into the fast-path ring; its position, or `None` when the ring is full.
    #[inline]
    pub(crate) fn ring_packet(&mut self, hdr: &mut RpcHeaderRepr, payload: &[u8]) -> Option<u64> {
        let len = HEADER_LEN + payload.len();
        let (pos, bytes) = self.ring.reserve(len)?;
        hdr.frag_index = 0;
        hdr.frag_count = 1;
        hdr.msg_len = payload.len() as u32;
        let (head, body) = bytes.split_at_mut(HEADER_LEN);
        super::hdr::write(hdr, head)?;
        body.copy_from_slice(payload);
        Some(pos)
    }

    /// Token bucket for replies to packets of unknown sessions.
    pub(crate) fn take_error_token(&mut self, now: Instant) -> bool {
        let ms = now.as_nanos() / 1_000_000;
        if ms != self.error_epoch_ms {
            self.error_epoch_ms = ms;
            self.error_tokens = self.cfg.error_replies_per_ms;
        }
        if self.error_tokens == 0 {
            self.stats.error_replies_suppressed += 1;
            return false;
        }
        self.error_tokens -= 1;
        self.stats.error_replies += 1;
        true
    }

    /// A reply header addressed back at the sender of `h` (same session field, rpc,
    /// service, method).
    pub(crate) fn reply_header(h: &RpcHeader<&[u8]>, ty: PacketType) -> RpcHeaderRepr {
        let mut r = RpcHeaderRepr::new(ty);
        r.session = h.session();
        r.rpc_id = h.rpc_id();
        r.service = h.service();
        r.method = h.method();
        r
    }

    /// Whether `h` carries the wire class of `class`.
    pub(crate) fn class_matches(h: &RpcHeader<&[u8]>, class: TransportClass) -> bool {
        h.class() == class.to_wire()
    }
}

/// Writes header + payload; `None` if `out` is too small (checked by the caller).
#[inline(always)]
fn write_packet(out: &mut [u8], hdr: &RpcHeaderRepr, payload: &[u8]) -> Option<usize> {
    let mut hdr = *hdr;
    if hdr.frag_count <= 1 {
        hdr.msg_len = payload.len() as u32;
    }
    super::hdr::write(&hdr, out)?;
    let end = HEADER_LEN + payload.len();
    out.get_mut(HEADER_LEN..end)?.copy_from_slice(payload);
    Some(end)
}
