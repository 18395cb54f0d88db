//! Server-role protocol of the [`Endpoint`]: the `Connect` handshake with embryonic
//! sessions, request reassembly and dedup per (session, rpc id) in window slots, the
//! ordered-delivery reorder buffer, the response cache and its acknowledgement, and
//! the `respond` / `respond_error` API.
//!
//! This module must not keep per-RPC state for unreliable methods (beyond transient
//! reassembly of a multi-fragment request), and must never hand a reliable request to
//! the handler twice.

use std::hash::Hash;

use super::endpoint::{newer, EventDesc, ReqSrc, Took, TxItem, UnrelUse};
use super::session::{Role, ServerRpc, SessState};
use super::{
    error_code, Endpoint, Instant, RequestRef, RespondError, RpcId, RxDrop, TransportClass,
};
use crate::wire::rpc::{
    PacketType, RpcHeader, RpcHeaderRepr, AUX_PROBE, FLAG_ACK_REQ, FLAG_COMPLETE, FLAG_HELD,
    FLAG_RESYNC, HEADER_LEN,
};

impl<A: Copy + Eq + Hash> Endpoint<A> {
    /// Server: answers a request delivered by [`Event::Request`](super::Event::Request).
    pub fn respond(
        &mut self,
        now: Instant,
        req: RequestRef,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        self.release_pending();
        self.answer(now, req, PacketType::Response, 0, payload, false)
            .map(|_| ())
    }

    /// Server: answers a request with an application error code (below
    /// [`ERROR_CODE_TRANSPORT_BASE`](super::ERROR_CODE_TRANSPORT_BASE) by convention).
    pub fn respond_error(
        &mut self,
        now: Instant,
        req: RequestRef,
        code: u16,
    ) -> Result<(), RespondError> {
        self.release_pending();
        self.answer(now, req, PacketType::Error, code, &[], false)
            .map(|_| ())
    }

    /// Answers a request. With `direct`, a response kept for a reliable request is not
    /// queued and `Some((index, slot))` says where it is: the caller sends its first
    /// packet itself (see `respond_in_place`); unreliable ones are always queued.
    #[inline]
    pub(crate) fn answer(
        &mut self,
        _now: Instant,
        req: RequestRef,
        ty: PacketType,
        code: u16,
        payload: &[u8],
        direct: bool,
    ) -> Result<Option<(u32, u8)>, RespondError> {
        if payload.len() > self.cfg.max_message_size {
            return Err(RespondError::TooLarge {
                len: payload.len(),
                max: self.cfg.max_message_size,
            });
        }
        let (peer, remote) = self.answer_route(&req)?;
        let mut hdr = Self::answer_header(&req, remote, ty, code);
        let idx = req.session.index();
        let s = &mut self.sessions[idx];
        if req.class == TransportClass::Unreliable {
            if !direct && payload.len() <= self.cfg.mtu_payload {
                // Fast path: the response is written once, header in place, and the
                // server keeps nothing about the RPC.
                if let Some(pos) = self.ring_packet(&mut hdr, payload) {
                    self.tx.push_back(TxItem::RawResp {
                        peer,
                        pos,
                        len: (HEADER_LEN + payload.len()) as u32,
                    });
                    self.stats.fast_responses += 1;
                    return Ok(None);
                }
            }
            return self
                .send_unrel(peer, hdr, payload)
                .map(|()| None)
                .map_err(|()| RespondError::Busy);
        }
        let slot = (req.rpc.0 & (u32::from(s.window) - 1)) as usize;
        let x = &mut s.server_slots[slot];
        if x.rpc_id != req.rpc.0 || x.state != ServerRpc::Executing {
            return Err(RespondError::UnknownRequest);
        }
        let len = payload.len();
        if self.cache_bytes + len > self.cfg.max_response_cache_bytes {
            self.send_unrel(peer, hdr, payload)
                .map_err(|()| RespondError::Busy)?;
            self.sessions[idx].server_slots[slot].state = ServerRpc::ResponseDropped;
            self.stats.responses_uncached += 1;
            return Ok(None);
        }
        x.resp.load(payload, self.cfg.mtu_payload);
        x.resp_type = ty;
        x.error_code = code;
        x.cached_bytes = len;
        x.state = ServerRpc::Responded;
        self.cache_bytes += len;
        if direct {
            return Ok(Some((idx as u32, slot as u8)));
        }
        if !x.resp.queued {
            x.resp.queued = true;
            self.tx.push_back(TxItem::ServerResp {
                idx: idx as u32,
                id: req.session,
                slot: slot as u8,
            });
        }
        Ok(None)
    }

    /// The peer and the client's session id of the open server session `req` belongs
    /// to: where an answer goes.
    #[inline]
    pub(crate) fn answer_route(&self, req: &RequestRef) -> Result<(A, u64), RespondError> {
        match self.sessions.get(req.session.index()) {
            Some(s)
                if s.id == req.session && s.state == SessState::Open && s.role == Role::Server =>
            {
                s.peer
                    .map(|p| (p, s.remote))
                    .ok_or(RespondError::UnknownSession)
            }
            _ => Err(RespondError::UnknownSession),
        }
    }

    /// The header of an answer of type `ty` (`code` in `aux`) to `req`, addressed to the
    /// client's session id `remote`.
    #[inline]
    pub(crate) fn answer_header(
        req: &RequestRef,
        remote: u64,
        ty: PacketType,
        code: u16,
    ) -> RpcHeaderRepr {
        let mut hdr = RpcHeaderRepr::new(ty);
        hdr.session = remote;
        hdr.rpc_id = req.rpc.0;
        hdr.service = req.service;
        hdr.method = req.method;
        hdr.aux = code;
        hdr
    }

    pub(crate) fn server_on_connect(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
    ) -> Result<(), RxDrop> {
        let client_id = h.session();
        if client_id == 0 || h.credits() == 0 || !h.payload().is_empty() {
            return Err(RxDrop::Unexpected);
        }
        let window = super::client::pow2_floor(h.credits().min(self.cfg.window));
        let idx = self
            .alloc_session(now, peer, Role::Server, window)
            .ok_or(RxDrop::TableFull)?;
        let s = &mut self.sessions[idx as usize];
        s.state = SessState::Embryonic;
        s.remote = client_id;
        s.ensure_server_slots();
        let id = s.id;
        self.embryonic_count += 1;
        if self.embryonic.len() >= 2 * self.cfg.max_embryonic.max(1) {
            // Drop entries of sessions that were established or freed meanwhile.
            let sessions = &self.sessions;
            self.embryonic.retain(|e| {
                sessions
                    .get(e.index())
                    .is_some_and(|s| s.id == *e && s.state == SessState::Embryonic)
            });
        }
        self.embryonic.push_back(id);
        self.arm_session_timer(idx, now + self.cfg.embryonic_timeout_ns);
        self.push_tx(TxItem::ConnectAck { idx, id });
        Ok(())
    }

    /// The client used the session: it is no longer embryonic.
    pub(crate) fn establish(&mut self, now: Instant, idx: u32) {
        let s = &mut self.sessions[idx as usize];
        if s.state != SessState::Embryonic {
            return;
        }
        s.state = SessState::Open;
        s.last_activity = now;
        self.embryonic_count -= 1;
        self.stats.sessions_opened += 1;
        self.arm_session_timer(idx, now + self.cfg.idle_timeout_ns);
    }

    /// Finds the server session of a packet, establishing an embryonic one.
    fn server_session(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
    ) -> Result<u32, RxDrop> {
        let idx = self.lookup(h.session(), peer, Role::Server)?;
        if self.sessions[idx as usize].state == SessState::Embryonic {
            self.establish(now, idx);
        }
        self.sessions[idx as usize].last_activity = now;
        Ok(idx)
    }

    /// An error header to the client of session `idx` about the request in `h`.
    fn error_to_client(&mut self, idx: u32, h: &RpcHeader<&[u8]>, code: u16) {
        let s = &self.sessions[idx as usize];
        let Some(peer) = s.peer else {
            return;
        };
        let mut r = Self::reply_header(h, PacketType::Error);
        r.session = s.remote;
        r.aux = code;
        self.push_header(peer, r);
    }

    #[inline(always)]
    pub(crate) fn server_on_request(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
        inline: bool,
    ) -> Result<Took, RxDrop> {
        let idx = match self.server_session(now, peer, h) {
            Ok(i) => i,
            Err(RxDrop::UnknownSession) => {
                if self.take_error_token(now) {
                    let mut r = Self::reply_header(h, PacketType::Error);
                    r.aux = error_code::UNKNOWN_SESSION;
                    self.push_header(peer, r);
                }
                return Err(RxDrop::UnknownSession);
            }
            Err(e) => return Err(e),
        };
        let Some(class) = self.classes.get(h.service(), h.method()) else {
            self.error_to_client(idx, h, error_code::UNKNOWN_METHOD);
            return Err(RxDrop::UnknownMethod);
        };
        if !Self::class_matches(h, class) {
            self.error_to_client(idx, h, error_code::CLASS_MISMATCH);
            return Err(RxDrop::ClassMismatch);
        }
        if h.msg_len() as usize > self.cfg.max_message_size {
            self.error_to_client(idx, h, error_code::TOO_LARGE);
            return Err(RxDrop::TooLarge);
        }
        if class == TransportClass::Unreliable {
            self.server_unreliable(now, idx, peer, h, inline)
        } else {
            self.server_reliable(now, idx, peer, class, h, inline)
        }
    }

    #[inline(always)]
    fn server_unreliable(
        &mut self,
        now: Instant,
        idx: u32,
        peer: A,
        h: &RpcHeader<&[u8]>,
        inline: bool,
    ) -> Result<Took, RxDrop> {
        let id = self.sessions[idx as usize].id;
        let req = RequestRef {
            session: id,
            rpc: RpcId(h.rpc_id()),
            service: h.service(),
            method: h.method(),
            class: TransportClass::Unreliable,
        };
        let payload = h.payload();
        if h.frag_count() == 1 {
            if inline {
                self.stats.requests_delivered += 1;
                return Ok(Took::Request);
            }
            if self.arena.len() + payload.len() > self.cfg.event_arena_bytes {
                return Err(RxDrop::EventArenaFull);
            }
            self.queue_in_arena(req, peer, payload);
            self.stats.requests_delivered += 1;
            return Ok(Took::Queued);
        }
        self.server_unreliable_fragment(now, idx, peer, h, req)
    }

    /// A fragment of a multi-fragment unreliable request: transient reassembly.
    #[inline(never)]
    fn server_unreliable_fragment(
        &mut self,
        now: Instant,
        idx: u32,
        peer: A,
        h: &RpcHeader<&[u8]>,
        req: RequestRef,
    ) -> Result<Took, RxDrop> {
        let id = req.session;
        let payload = h.payload();
        let owner = (idx, id, h.rpc_id());
        let existing = self
            .unrel
            .iter()
            .position(|u| u.use_ == UnrelUse::Reassembling && u.owner == owner);
        let buf = match existing {
            Some(b) => b as u32,
            None => {
                let need = h.msg_len() as usize;
                if self.reasm_bytes + need > self.cfg.max_reassembly_bytes {
                    return Err(RxDrop::ReassemblyBudget);
                }
                let buf = match self.alloc_unrel() {
                    Some(b) => b,
                    None => {
                        // Evict the oldest partial unreliable request, if any.
                        let oldest = self
                            .unrel
                            .iter()
                            .enumerate()
                            .filter(|(_, u)| u.use_ == UnrelUse::Reassembling)
                            .min_by_key(|(_, u)| u.started)
                            .map(|(i, _)| i as u32);
                        let Some(b) = oldest else {
                            self.stats.unreliable_buffers_exhausted += 1;
                            return Err(RxDrop::ReassemblyBudget);
                        };
                        self.free_unrel(b);
                        self.stats.unreliable_reassembly_evicted += 1;
                        // free_unrel put it on the free list last: take it back.
                        self.unrel_free.pop().unwrap_or(b)
                    }
                };
                let u = &mut self.unrel[buf as usize];
                u.use_ = UnrelUse::Reassembling;
                u.owner = owner;
                u.started = now;
                u.peer = Some(peer);
                u.recv.begin(h.frag_count(), h.msg_len());
                u.recv.charged = need;
                self.reasm_bytes += need;
                buf
            }
        };
        let u = &mut self.unrel[buf as usize];
        u.recv
            .accept(h.frag_index(), h.frag_count(), h.msg_len(), payload)?;
        if u.recv.is_complete() {
            u.use_ = UnrelUse::Delivering;
            self.events.push_back(EventDesc::Request {
                req,
                peer,
                src: ReqSrc::Unrel { buf },
            });
            self.stats.requests_delivered += 1;
        }
        Ok(Took::Queued)
    }

    fn server_reliable(
        &mut self,
        now: Instant,
        idx: u32,
        peer: A,
        class: TransportClass,
        h: &RpcHeader<&[u8]>,
        inline: bool,
    ) -> Result<Took, RxDrop> {
        let rpc = h.rpc_id();
        let ack_req = h.flags() & FLAG_ACK_REQ != 0;
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let slot = (rpc & (u32::from(s.window) - 1)) as usize;
        let x = &mut s.server_slots[slot];
        let is_new = x.state == ServerRpc::Free || newer(rpc, x.rpc_id);
        if !is_new && rpc != x.rpc_id {
            return Err(RxDrop::Stale);
        }
        if is_new {
            // A newer RPC in the slot acknowledges the previous occupant.
            if x.state == ServerRpc::Held {
                s.held -= 1;
            }
            if x.state == ServerRpc::Responded {
                self.stats.response_cache_freed += 1;
            }
            self.cache_bytes -= x.cached_bytes.min(self.cache_bytes);
            x.cached_bytes = 0;
            if x.req.is_active() {
                let charged = x.req.charged;
                s.reasm_bytes -= charged.min(s.reasm_bytes);
                self.reasm_bytes -= charged.min(self.reasm_bytes);
                x.req.clear();
            }
            x.resp.clear();
            x.state = ServerRpc::Free;
            x.rpc_id = rpc;
            x.class = class;
            x.service = h.service();
            x.method = h.method();
            x.order_seq = h.aux();
            x.resync = h.flags() & FLAG_RESYNC != 0;
            let (count, len) = (h.frag_count(), h.msg_len());
            if count == 1 {
                let seq = x.order_seq;
                let in_order = class == TransportClass::Reliable
                    || (seq == s.expect_order_seq && h.flags() & FLAG_RESYNC == 0);
                let p = h.payload();
                if in_order && (inline || self.arena.len() + p.len() <= self.cfg.event_arena_bytes)
                {
                    // One packet, deliverable now: the request goes straight to the
                    // caller (inline) or the event arena; the slot keeps only what
                    // dedup and the response cache need.
                    x.state = ServerRpc::Executing;
                    x.completed_at = now;
                    let req = RequestRef {
                        session: id,
                        rpc: RpcId(rpc),
                        service: x.service,
                        method: x.method,
                        class,
                    };
                    let ordered = class == TransportClass::ReliableOrdered;
                    if ordered {
                        s.expect_order_seq = seq.wrapping_add(1);
                    }
                    self.stats.requests_delivered += 1;
                    if inline {
                        // Held successors (now next in order) queue behind it.
                        if ordered {
                            self.drain_held(idx, peer);
                        }
                        return Ok(Took::Request);
                    }
                    self.queue_in_arena(req, peer, p);
                    if ordered {
                        self.drain_held(idx, peer);
                    }
                    return Ok(Took::Queued);
                }
            }
            if count > 1 {
                let need = len as usize;
                if s.reasm_bytes + need > self.cfg.max_session_reassembly_bytes
                    || self.reasm_bytes + need > self.cfg.max_reassembly_bytes
                {
                    return Err(RxDrop::ReassemblyBudget);
                }
                s.reasm_bytes += need;
                self.reasm_bytes += need;
                x.req.charged = need;
            }
            x.req.begin(count, len);
            x.state = ServerRpc::Receiving;
        } else {
            let dup_reply = match x.state {
                ServerRpc::Receiving => None,
                ServerRpc::Held => Some(FLAG_COMPLETE | FLAG_HELD),
                ServerRpc::Executing => Some(FLAG_COMPLETE),
                ServerRpc::Responded => {
                    self.stats.duplicate_requests += 1;
                    if ack_req {
                        // The client lacks (part of) the response: re-send it if it is
                        // one packet, else probe with its last unacknowledged fragment
                        // so the client's selective ack says what is missing.
                        let n = x.resp.requeue_probe();
                        self.stats.retransmissions += u64::from(n);
                        self.stats.responses_resent += 1;
                        self.queue_server_resp(idx, slot as u8);
                    }
                    return Ok(Took::Queued);
                }
                ServerRpc::ResponseDropped => {
                    self.stats.duplicate_requests += 1;
                    if ack_req {
                        self.error_to_client(idx, h, error_code::RESPONSE_LOST);
                    }
                    return Ok(Took::Queued);
                }
                ServerRpc::Acked | ServerRpc::Abandoned | ServerRpc::Free => {
                    return Err(RxDrop::Stale);
                }
            };
            if let Some(flags) = dup_reply {
                self.stats.duplicate_requests += 1;
                if ack_req {
                    self.push_tx(TxItem::ReqAck {
                        idx,
                        id,
                        slot: slot as u8,
                        rpc,
                        trigger: AUX_PROBE,
                        flags,
                    });
                }
                return Ok(Took::Queued);
            }
        }
        let x = &mut self.sessions[idx as usize].server_slots[slot];
        x.req
            .accept(h.frag_index(), h.frag_count(), h.msg_len(), h.payload())?;
        if x.req.is_complete() {
            self.request_complete(now, idx, slot as u8, peer)
                .map(|()| Took::Queued)
        } else {
            if ack_req {
                self.schedule_sack(now, idx, slot as u8, rpc, h.frag_index());
            }
            Ok(Took::Queued)
        }
    }

    /// Queues a one-packet request for the handler, its payload copied into the event
    /// arena (the caller checked the arena's room).
    fn queue_in_arena(&mut self, req: RequestRef, peer: A, payload: &[u8]) {
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(payload);
        self.events.push_back(EventDesc::Request {
            req,
            peer,
            src: ReqSrc::Arena {
                off,
                len: payload.len() as u32,
            },
        });
    }

    /// A reliable request is complete: deliver it, or hold it for order.
    fn request_complete(
        &mut self,
        now: Instant,
        idx: u32,
        slot: u8,
        peer: A,
    ) -> Result<(), RxDrop> {
        let s = &mut self.sessions[idx as usize];
        let x = &mut s.server_slots[usize::from(slot)];
        x.completed_at = now;
        if x.class != TransportClass::ReliableOrdered {
            self.deliver(idx, slot, peer);
            return Ok(());
        }
        let seq = x.order_seq;
        if x.resync && seq.wrapping_sub(s.expect_order_seq) < 0x8000 {
            // Requests before `seq` were given up by the client: never run them.
            let expect = s.expect_order_seq;
            let span = seq.wrapping_sub(expect);
            let mut dropped = 0;
            for (j, o) in s.server_slots.iter_mut().enumerate() {
                if j != usize::from(slot)
                    && o.state == ServerRpc::Held
                    && o.order_seq.wrapping_sub(expect) < span
                {
                    o.state = ServerRpc::Abandoned;
                    dropped += 1;
                }
            }
            s.held -= dropped;
            s.expect_order_seq = seq;
            self.stats.ordered_resyncs += 1;
        }
        let s = &mut self.sessions[idx as usize];
        let d = seq.wrapping_sub(s.expect_order_seq);
        if d == 0 {
            s.expect_order_seq = seq.wrapping_add(1);
            self.deliver(idx, slot, peer);
            self.drain_held(idx, peer);
            Ok(())
        } else if d < u16::from(s.window) {
            s.server_slots[usize::from(slot)].state = ServerRpc::Held;
            s.held += 1;
            self.stats.reorder_held += 1;
            // Tell the client (it fast-retransmits the missing one), after the reorder
            // window: if the gap closes meanwhile, there is nothing to say.
            let rpc = s.server_slots[usize::from(slot)].rpc_id;
            self.schedule_sack(now, idx, slot, rpc, AUX_PROBE);
            Ok(())
        } else {
            // Behind the sequence (before a resync) or impossibly far ahead.
            s.server_slots[usize::from(slot)].state = ServerRpc::Abandoned;
            Err(RxDrop::Stale)
        }
    }

    /// Delivers held ordered requests that are now next in sequence.
    fn drain_held(&mut self, idx: u32, peer: A) {
        loop {
            let s = &mut self.sessions[idx as usize];
            if s.held == 0 {
                return;
            }
            let expect = s.expect_order_seq;
            let Some(j) = s
                .server_slots
                .iter()
                .position(|o| o.state == ServerRpc::Held && o.order_seq == expect)
            else {
                return;
            };
            s.held -= 1;
            s.expect_order_seq = expect.wrapping_add(1);
            self.deliver(idx, j as u8, peer);
        }
    }

    fn deliver(&mut self, idx: u32, slot: u8, peer: A) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let x = &mut s.server_slots[usize::from(slot)];
        x.state = ServerRpc::Executing;
        let req = RequestRef {
            session: id,
            rpc: RpcId(x.rpc_id),
            service: x.service,
            method: x.method,
            class: x.class,
        };
        self.events.push_back(EventDesc::Request {
            req,
            peer,
            src: ReqSrc::Slot { idx, slot },
        });
        self.stats.requests_delivered += 1;
    }

    pub(crate) fn server_on_response_ack(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
    ) -> Result<(), RxDrop> {
        let idx = self.server_session(now, peer, h)?;
        let rpc = h.rpc_id();
        let burst = self.cfg.retransmit_burst;
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let slot = (rpc & (u32::from(s.window) - 1)) as usize;
        let x = &mut s.server_slots[slot];
        if x.rpc_id != rpc {
            return Err(RxDrop::Stale);
        }
        let reply = match x.state {
            ServerRpc::Responded => {
                if h.flags() & FLAG_COMPLETE == 0 {
                    x.resp.ack_bitmap(h.payload());
                }
                if h.flags() & FLAG_COMPLETE != 0 || x.resp.all_acked() {
                    self.cache_bytes -= x.cached_bytes.min(self.cache_bytes);
                    x.cached_bytes = 0;
                    x.resp.clear();
                    x.state = ServerRpc::Acked;
                    self.stats.response_cache_freed += 1;
                    return Ok(());
                }
                let n = if h.aux() != AUX_PROBE {
                    x.resp.requeue_lost_before(h.aux())
                } else {
                    self.stats.responses_resent += 1;
                    x.resp.requeue_unacked(burst)
                };
                self.stats.retransmissions += u64::from(n);
                self.queue_server_resp(idx, slot as u8);
                return Ok(());
            }
            _ if h.flags() & FLAG_COMPLETE != 0 => return Err(RxDrop::Stale),
            ServerRpc::Executing => FLAG_COMPLETE,
            ServerRpc::Held => FLAG_COMPLETE | FLAG_HELD,
            ServerRpc::Receiving => 0,
            ServerRpc::ResponseDropped => {
                self.error_to_client(idx, h, error_code::RESPONSE_LOST);
                return Ok(());
            }
            ServerRpc::Acked | ServerRpc::Abandoned | ServerRpc::Free => return Err(RxDrop::Stale),
        };
        self.push_tx(TxItem::ReqAck {
            idx,
            id,
            slot: slot as u8,
            rpc,
            trigger: AUX_PROBE,
            flags: reply,
        });
        Ok(())
    }
}
