//! Client-role protocol of the [`Endpoint`]: issuing calls into window slots,
//! handshake completion, response reassembly, selective acks of requests, RTO with
//! exponential backoff, fast retransmit, and failing RPCs (exactly one answer each).
//!
//! This module must not touch server-role state, and must never leave an accepted call
//! without a path to an answer: every active slot has a timer or an answer queued.

use std::hash::Hash;

use super::endpoint::{newer, EventDesc, Timer, Took, TxItem};
use super::session::{ClientRpc, Role, SessState, SessionId, NIL_SLOT};
use super::{
    error_code, CallError, CloseReason, Endpoint, Instant, RpcError, RpcId, RxDrop, TransportClass,
};
use crate::wire::rpc::{
    PacketType, RpcHeader, RpcHeaderRepr, AUX_PROBE, FLAG_ACK_REQ, FLAG_COMPLETE, FLAG_HELD,
    HEADER_LEN,
};

/// Held-acks naming the same missing ordered request before it is re-sent early.
const ORDER_GAP_THRESHOLD: u8 = 3;

impl<A: Copy + Eq + Hash> Endpoint<A> {
    /// Starts a call. With `direct`, the caller sends the first packet itself (see
    /// `call_in_place`): no ring packet and no transmit item.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn client_call(
        &mut self,
        now: Instant,
        session: SessionId,
        service: u16,
        method: u16,
        class: TransportClass,
        payload: &[u8],
        direct: bool,
    ) -> Result<RpcId, CallError> {
        if payload.len() > self.cfg.max_message_size {
            return Err(CallError::TooLarge {
                len: payload.len(),
                max: self.cfg.max_message_size,
            });
        }
        let (idx, rpc, slot) = self.claim_slot(session)?;
        if !direct && class == TransportClass::Unreliable && payload.len() <= self.cfg.mtu_payload {
            let remote = self.sessions[idx].remote;
            let mut hdr = Self::request_header(remote, rpc, service, method, class);
            if let Some(pos) = self.ring_packet(&mut hdr, payload) {
                let raw = Some((pos, (HEADER_LEN + payload.len()) as u32));
                self.fast_call(now, idx as u32, slot as u8, rpc, service, method, raw);
                return Ok(RpcId(rpc));
            }
        }
        let s = &mut self.sessions[idx];
        s.next_rpc = rpc.wrapping_add(1);
        let rto = session_rto(s.srtt, s.rttvar, &self.cfg);
        let (order_seq, resync) = if class == TransportClass::ReliableOrdered {
            let seq = s.next_order_seq;
            s.next_order_seq = seq.wrapping_add(1);
            let r = s.resync_pending;
            s.resync_pending = false;
            (seq, r)
        } else {
            (0, false)
        };
        let issue_seq = s.issue_counter;
        s.issue_counter += 1;
        s.active_mask |= 1 << slot;
        let deadline = now
            + if class.is_reliable() {
                self.cfg.rpc_deadline_ns
            } else {
                self.cfg.unreliable_timeout_ns
            };
        let sid = s.id;
        let c = &mut s.client_slots[slot];
        c.state = ClientRpc::Active;
        c.fast = false;
        c.rpc_id = rpc;
        c.class = class;
        c.service = service;
        c.method = method;
        c.order_seq = order_seq;
        c.resync = resync;
        c.issue_seq = issue_seq;
        c.req.load(payload, self.cfg.mtu_payload);
        c.req_complete = false;
        c.held = false;
        c.server_ns = 0;
        if c.resp.is_active() {
            c.resp.clear();
        }
        c.result = Ok(());
        c.retries = 0;
        c.rto = rto;
        c.first_sent = now;
        c.retransmitted = false;
        c.deadline = deadline;
        c.later_answers = 0;
        c.suspect = false;
        // Joins the sent-order list when it is first transmitted.
        c.last_sent = now;
        let first = if class.is_reliable() {
            (now + rto).min(deadline)
        } else {
            deadline
        };
        // The slot's timer (see `set_slot_timer`) and the transmit item, without looking
        // the slot up again.
        let (idx, slot) = (idx as u32, slot as u8);
        c.due = Some(first);
        if c.timer.is_none() || c.timer_at > first {
            if let Some(h) = c.timer {
                self.timers.cancel(h);
            }
            let t = Timer::Rpc { idx, id: sid, slot };
            c.timer = Some(self.timers.insert(first, t));
            c.timer_at = first;
        }
        if !c.req.queued && !direct {
            c.req.queued = true;
            self.tx.push_back(TxItem::ClientReq { idx, id: sid, slot });
        }
        self.stats.calls += 1;
        Ok(RpcId(rpc))
    }

    /// The header of a one-packet request `rpc`, addressed to the server's session id
    /// `remote` (the caller sets `msg_len`, or the ring does).
    #[inline]
    pub(crate) fn request_header(
        remote: u64,
        rpc: u32,
        service: u16,
        method: u16,
        class: TransportClass,
    ) -> RpcHeaderRepr {
        let mut hdr = RpcHeaderRepr::new(PacketType::Request);
        hdr.class = class.to_wire();
        hdr.service = service;
        hdr.method = method;
        hdr.session = remote;
        hdr.rpc_id = rpc;
        hdr
    }

    /// Checks that `session` can take a call and picks its slot: `(index, rpc id, slot)`.
    #[inline]
    pub(crate) fn claim_slot(&self, session: SessionId) -> Result<(usize, u32, usize), CallError> {
        let idx = session.index();
        let s = match self.sessions.get(idx) {
            Some(s) if s.id == session && s.state != SessState::Free => s,
            _ => return Err(CallError::UnknownSession),
        };
        if s.role != Role::Client {
            return Err(CallError::WrongRole);
        }
        if s.state != SessState::Open {
            return Err(CallError::NotConnected);
        }
        let w = u32::from(s.window);
        for k in 0..w {
            let r = s.next_rpc.wrapping_add(k);
            let slot = (r & (w - 1)) as usize;
            if s.client_slots[slot].state == ClientRpc::Free {
                return Ok((idx, r, slot));
            }
        }
        Err(CallError::WindowFull)
    }

    /// The rest of a fast-path call whose request is already written: in the ring at
    /// `raw` (position, length), queued here, or in the caller's buffer (`None`). The
    /// slot keeps only what matching the response and timing the call out need.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn fast_call(
        &mut self,
        now: Instant,
        idx: u32,
        slot: u8,
        rpc: u32,
        service: u16,
        method: u16,
        raw: Option<(u64, u32)>,
    ) {
        let deadline = now + self.cfg.unreliable_timeout_ns;
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        s.next_rpc = rpc.wrapping_add(1);
        s.issue_counter += 1;
        let bit = 1u64 << slot;
        s.active_mask |= bit;
        s.unrel_mask |= bit;
        let c = &mut s.client_slots[usize::from(slot)];
        c.state = ClientRpc::Active;
        c.fast = true;
        c.rpc_id = rpc;
        c.class = TransportClass::Unreliable;
        c.service = service;
        c.method = method;
        if c.req.count != 0 {
            c.req.clear();
        }
        if c.resp.is_active() {
            c.resp.clear();
        }
        c.req_complete = false;
        c.result = Ok(());
        c.retries = 0;
        c.retransmitted = false;
        c.first_sent = now;
        c.last_sent = now;
        c.deadline = deadline;
        if !s.in_unrel_list {
            s.in_unrel_list = true;
            self.unrel_sessions.push(idx);
        }
        match self.sweep {
            Some((_, at)) if at <= deadline => {}
            other => {
                if let Some((h, _)) = other {
                    self.timers.cancel(h);
                }
                let h = self.timers.insert(deadline, Timer::UnrelSweep);
                self.sweep = Some((h, deadline));
            }
        }
        if let Some((pos, len)) = raw {
            self.tx.push_back(TxItem::RawReq { idx, id, pos, len });
        }
        self.stats.calls += 1;
        self.stats.fast_calls += 1;
    }

    /// Times out the fast-path unreliable calls whose deadline has passed and re-arms
    /// itself for the earliest remaining one. One timer for the whole endpoint instead
    /// of one per call.
    pub(crate) fn on_unrel_sweep(&mut self, now: Instant) {
        self.sweep = None;
        self.stats.unreliable_sweeps += 1;
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while let Some(&idx) = self.unrel_sessions.get(i) {
            let Some(s) = self.sessions.get(idx as usize) else {
                self.unrel_sessions.swap_remove(i);
                continue;
            };
            let mut mask = s.unrel_mask;
            while mask != 0 {
                let j = mask.trailing_zeros() as u8;
                mask &= mask - 1;
                let Some(c) = self.sessions[idx as usize].client_slots.get(usize::from(j)) else {
                    continue;
                };
                if c.state != ClientRpc::Active {
                    self.sessions[idx as usize].unrel_mask &= !(1 << j);
                } else if c.deadline <= now {
                    self.finish(now, idx, j, Err(RpcError::Timeout { retries: 0 }));
                } else {
                    next = Some(next.map_or(c.deadline, |n| n.min(c.deadline)));
                }
            }
            let s = &mut self.sessions[idx as usize];
            if s.unrel_mask == 0 {
                s.in_unrel_list = false;
                self.unrel_sessions.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if let Some(at) = next {
            let h = self.timers.insert(at, Timer::UnrelSweep);
            self.sweep = Some((h, at));
        }
    }

    pub(crate) fn client_on_connect_ack(
        &mut self,
        now: Instant,
        idx: u32,
        h: &RpcHeader<&[u8]>,
    ) -> Result<(), RxDrop> {
        let s = &mut self.sessions[idx as usize];
        if s.state != SessState::Connecting {
            // A duplicate (the server made one embryonic session per Connect copy).
            return Err(RxDrop::Stale);
        }
        let Ok(remote) = <[u8; 8]>::try_from(h.payload()) else {
            return Err(RxDrop::Unexpected);
        };
        let remote = u64::from_le_bytes(remote);
        if remote == 0 || h.credits() == 0 {
            return Err(RxDrop::Unexpected);
        }
        s.remote = remote;
        // Windows are powers of two (slot = rpc id & (window - 1)).
        s.window = pow2_floor(s.window.min(h.credits()));
        s.state = SessState::Open;
        s.last_activity = now;
        let id = s.id;
        if let Some(t) = s.timer.take() {
            self.timers.cancel(t);
        }
        self.events.push_back(EventDesc::Connected(id));
        // Confirm, so the server's embryonic session becomes established.
        self.push_tx(TxItem::ConnectAck { idx, id });
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn client_on_response(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
        inline: bool,
    ) -> Result<Took, RxDrop> {
        let idx = match self.lookup(h.session(), peer, Role::Client) {
            Ok(i) => i,
            Err(RxDrop::UnknownSession)
                if h.packet_type() == PacketType::Error
                    && h.aux() == error_code::UNKNOWN_SESSION =>
            {
                return self.client_on_peer_forgot(peer, h).map(|()| Took::Queued);
            }
            Err(e) => return Err(e),
        };
        let s = &mut self.sessions[idx as usize];
        if s.state != SessState::Open {
            return Err(RxDrop::Unexpected);
        }
        s.last_activity = now;
        let rpc = h.rpc_id();
        let slot = (rpc & (u32::from(s.window) - 1)) as usize;
        let c = &mut s.client_slots[slot];
        if c.state != ClientRpc::Active || c.rpc_id != rpc {
            if c.rpc_id == rpc || newer(c.rpc_id, rpc) {
                self.stats.late_responses += 1;
            }
            return Err(RxDrop::Stale);
        }
        c.req_complete = true;
        if h.frag_count() == 1 && !c.resp.is_active() {
            let is_error = h.packet_type() == PacketType::Error;
            if inline {
                // One-packet answer handed to the caller: the slot is free at once.
                let code = if is_error {
                    Some(h.aux())
                } else {
                    c.server_ns = u64::from(h.aux()) * 1_000;
                    None
                };
                self.finish_fast(now, idx, slot as u8, code);
                return Ok(Took::Response);
            }
            // One-packet answer: straight to the event arena, the slot is free at once.
            let p = h.payload();
            if !is_error && self.arena.len() + p.len() <= self.cfg.event_arena_bytes {
                c.server_ns = u64::from(h.aux()) * 1_000;
                self.finish_in_arena(now, idx, slot as u8, p);
                return Ok(Took::Queued);
            }
        }
        if h.packet_type() == PacketType::Error {
            self.finish(
                now,
                idx,
                slot as u8,
                Err(RpcError::Remote { code: h.aux() }),
            );
            return Ok(Took::Queued);
        }
        let (count, len) = (h.frag_count(), h.msg_len());
        if !c.resp.is_active() {
            if len as usize > self.cfg.max_message_size {
                return Err(RxDrop::TooLarge);
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
                c.resp.charged = need;
            }
            c.resp.begin(count, len);
        }
        c.resp.accept(h.frag_index(), count, len, h.payload())?;
        c.server_ns = u64::from(h.aux()) * 1_000;
        if c.resp.is_complete() {
            if count > 1 {
                let (id, rpc) = (s.id, c.rpc_id);
                self.push_tx(TxItem::RespAck {
                    idx,
                    id,
                    slot: slot as u8,
                    rpc,
                    trigger: AUX_PROBE,
                    flags: FLAG_COMPLETE,
                });
            }
            self.finish(now, idx, slot as u8, Ok(()));
            return Ok(Took::Queued);
        }
        // Progress on a multi-fragment response.
        c.retries = 0;
        c.rto = session_rto(s.srtt, s.rttvar, &self.cfg);
        if h.flags() & FLAG_ACK_REQ != 0 {
            let rpc = c.rpc_id;
            self.schedule_sack(now, idx, slot as u8, rpc, h.frag_index());
        }
        self.rearm_rto(now, idx, slot as u8);
        Ok(Took::Queued)
    }

    /// The server says it has no session with the id we use for it: fail everything.
    fn client_on_peer_forgot(&mut self, peer: A, h: &RpcHeader<&[u8]>) -> Result<(), RxDrop> {
        let remote = h.session();
        let found = self.sessions.iter().position(|s| {
            s.role == Role::Client
                && s.state == SessState::Open
                && s.remote == remote
                && s.peer == Some(peer)
        });
        let Some(idx) = found else {
            return Err(RxDrop::UnknownSession);
        };
        let s = &self.sessions[idx];
        let rpc = h.rpc_id();
        let slot = (rpc & (u32::from(s.window) - 1)) as usize;
        let c = &s.client_slots[slot];
        if c.state != ClientRpc::Active || c.rpc_id != rpc {
            return Err(RxDrop::Stale);
        }
        let id = s.id;
        self.fail_all(idx as u32, RpcError::SessionClosed);
        self.events
            .push_back(EventDesc::Closed(id, CloseReason::PeerForgot));
        self.free_session(idx as u32);
        self.stats.sessions_closed += 1;
        Ok(())
    }

    pub(crate) fn client_on_request_ack(
        &mut self,
        now: Instant,
        peer: A,
        h: &RpcHeader<&[u8]>,
    ) -> Result<(), RxDrop> {
        let idx = self.lookup(h.session(), peer, Role::Client)?;
        let s = &mut self.sessions[idx as usize];
        if s.state != SessState::Open {
            return Err(RxDrop::Unexpected);
        }
        s.last_activity = now;
        let rpc = h.rpc_id();
        let slot = (rpc & (u32::from(s.window) - 1)) as usize;
        let c = &mut s.client_slots[slot];
        if c.state != ClientRpc::Active || c.rpc_id != rpc {
            return Err(RxDrop::Stale);
        }
        c.retries = 0;
        c.suspect = false;
        // The server is alive and answering: drop the backoff.
        c.rto = session_rto(s.srtt, s.rttvar, &self.cfg);
        if h.flags() & FLAG_COMPLETE != 0 {
            c.req_complete = true;
            c.req.ack_all();
            c.held = h.flags() & FLAG_HELD != 0;
            if c.held {
                // The server holds this one and waits for sequence `aux`.
                self.note_order_gap(now, idx, h.aux());
            }
        } else {
            c.req.ack_bitmap(h.payload());
            if c.req.all_acked() {
                c.req_complete = true;
            } else if h.aux() != AUX_PROBE {
                let n = c.req.requeue_lost_before(h.aux());
                if n > 0 {
                    c.retransmitted = true;
                    self.stats.retransmissions += u64::from(n);
                    self.queue_client_req(idx, slot as u8);
                }
            }
        }
        self.rearm_rto(now, idx, slot as u8);
        Ok(())
    }

    /// Restarts a slot's RTO timer from `now` (progress was made).
    fn rearm_rto(&mut self, now: Instant, idx: u32, slot: u8) {
        let rto = self.sessions[idx as usize].client_slots[usize::from(slot)].rto;
        self.arm_rpc_timer(idx, slot, now + rto);
    }

    /// (Re)arms a reliable RPC's timer for `at` (capped by its deadline).
    fn arm_rpc_timer(&mut self, idx: u32, slot: u8, at: Instant) {
        let c = &self.sessions[idx as usize].client_slots[usize::from(slot)];
        if !c.class.is_reliable() {
            return;
        }
        let at = at.min(c.deadline);
        self.set_slot_timer(idx, slot, at);
    }

    /// Wants the slot's timer at `at`. A live wheel entry due no later is kept (it
    /// re-arms itself for `due` when it fires early); otherwise it is replaced.
    #[inline]
    fn set_slot_timer(&mut self, idx: u32, slot: u8, at: Instant) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let c = &mut s.client_slots[usize::from(slot)];
        c.due = Some(at);
        if let Some(h) = c.timer {
            if c.timer_at <= at {
                return;
            }
            self.timers.cancel(h);
        }
        c.timer = Some(self.timers.insert(at, Timer::Rpc { idx, id, slot }));
        c.timer_at = at;
    }

    pub(crate) fn on_rpc_timer(&mut self, now: Instant, idx: u32, id: SessionId, slot: u8) {
        let Some(s) = self.sessions.get_mut(idx as usize) else {
            return;
        };
        if s.id != id {
            return;
        }
        let Some(c) = s.client_slots.get_mut(usize::from(slot)) else {
            return;
        };
        // The slot's (lazy) entry fired: it serves whatever RPC the slot holds now.
        c.timer = None;
        let Some(due) = c.due else {
            return;
        };
        if c.state != ClientRpc::Active {
            c.due = None;
            return;
        }
        if due > now {
            // Moved later since the entry was inserted: sleep again.
            c.timer = Some(self.timers.insert(due, Timer::Rpc { idx, id, slot }));
            c.timer_at = due;
            return;
        }
        c.due = None;
        if c.suspect && now < c.deadline {
            // The reorder window passed and no answer came: it was lost.
            c.suspect = false;
            if !c.resp.is_active() {
                c.retransmitted = true;
                self.stats.fast_retransmits += 1;
                self.retransmit(now, idx, slot);
            }
            self.rearm_rto(now, idx, slot);
            return;
        }
        if !c.class.is_reliable() || now >= c.deadline {
            let retries = c.retries;
            self.finish(now, idx, slot, Err(RpcError::Timeout { retries }));
            return;
        }
        c.retries += 1;
        if c.retries > self.cfg.max_retries {
            let retries = c.retries - 1;
            self.finish(now, idx, slot, Err(RpcError::Timeout { retries }));
            return;
        }
        c.rto = (c.rto * 2).min(self.cfg.rto_max_ns);
        c.retransmitted = true;
        c.later_answers = 0;
        self.retransmit(now, idx, slot);
        self.rearm_rto(now, idx, slot);
    }

    /// Re-sends what an RPC needs: missing request fragments, or a probe for the
    /// response once the server has the whole request.
    fn retransmit(&mut self, now: Instant, idx: u32, slot: u8) {
        let burst = self.cfg.retransmit_burst;
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        s.sent_touch(slot, now);
        let c = &mut s.client_slots[usize::from(slot)];
        if !c.req_complete {
            // One fragment: re-send it. Several: re-send the last unacknowledged one as a
            // probe whose selective ack says what is missing; after an unanswered
            // probe, a burst.
            let n = if c.req.count <= 1 || c.retries <= 1 {
                c.req.requeue_probe()
            } else {
                c.req.requeue_unacked(burst)
            };
            self.stats.retransmissions += u64::from(n);
            self.queue_client_req(idx, slot);
        } else {
            let rpc = c.rpc_id;
            self.stats.retransmissions += 1;
            self.push_tx(TxItem::RespAck {
                idx,
                id,
                slot,
                rpc,
                trigger: AUX_PROBE,
                flags: 0,
            });
        }
    }

    /// An RPC whose request was last sent at `sent` was answered (RACK): every
    /// outstanding reliable RPC last sent more than a reordering window (`srtt / 4`)
    /// before it should have been answered too, unless it merely waits in the server's
    /// reorder buffer (known held and the answered RPC is not an ordered one) or its
    /// response is already arriving. It becomes suspect: if no answer comes within the
    /// reordering window it is re-sent (see `on_rpc_timer`). A retransmission moves
    /// `last_sent`, so answers to requests sent before it do not trigger it again.
    #[inline]
    fn note_later_answer(&mut self, now: Instant, idx: u32, sent: Instant, ordered: bool) {
        let s = &self.sessions[idx as usize];
        let reo = (s.srtt / 4).max(1_000);
        // Common case: even the oldest outstanding RPC was sent within the window.
        match s.client_slots.get(usize::from(s.sent_head)) {
            Some(o) if o.last_sent + reo <= sent => {
                self.note_later_answer_walk(now, idx, sent, ordered)
            }
            _ => {}
        }
    }

    #[inline(never)]
    fn note_later_answer_walk(&mut self, now: Instant, idx: u32, sent: Instant, ordered: bool) {
        let s = &mut self.sessions[idx as usize];
        let reo = (s.srtt / 4).max(1_000);
        let mut due: u64 = 0;
        // The list is ordered by last send: stop at the first RPC sent too recently.
        let mut j = s.sent_head;
        while let Some(o) = s.client_slots.get_mut(usize::from(j)) {
            if o.last_sent + reo > sent {
                break;
            }
            let next = o.sent_next;
            if o.state == ClientRpc::Active
                && o.class.is_reliable()
                && (!o.held || ordered)
                && !o.resp.is_active()
                && !o.req.has_due()
                && !o.suspect
            {
                o.suspect = true;
                due |= 1 << j;
            }
            j = next;
        }
        while due != 0 {
            let j = due.trailing_zeros() as u8;
            due &= due - 1;
            self.arm_rpc_timer(idx, j, now + reo);
        }
    }

    /// The server's reorder buffer holds a later request and waits for order sequence
    /// `expect`: after [`ORDER_GAP_THRESHOLD`] such acks (a dup-ack count, tolerating
    /// reordering) the RPC with that sequence is re-sent, at most once per `srtt / 2`.
    fn note_order_gap(&mut self, now: Instant, idx: u32, expect: u16) {
        let s = &mut self.sessions[idx as usize];
        let guard = s.srtt / 2;
        let mut mask = s.active_mask;
        let mut due: u64 = 0;
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(o) = s.client_slots.get_mut(j) else {
                continue;
            };
            if o.state == ClientRpc::Active
                && o.class == TransportClass::ReliableOrdered
                && o.order_seq == expect
                && !o.req_complete
            {
                o.later_answers = o.later_answers.saturating_add(1);
                if o.later_answers >= ORDER_GAP_THRESHOLD && now - o.last_sent >= guard {
                    o.later_answers = 0;
                    due |= 1 << j;
                }
                break;
            }
        }
        self.fast_retransmit(now, idx, due);
    }

    fn fast_retransmit(&mut self, now: Instant, idx: u32, mut due: u64) {
        while due != 0 {
            let j = due.trailing_zeros() as u8;
            due &= due - 1;
            self.stats.fast_retransmits += 1;
            self.sessions[idx as usize].client_slots[usize::from(j)].retransmitted = true;
            self.retransmit(now, idx, j);
        }
    }

    /// Ends an RPC answered by one packet (any class): the payload goes to the event
    /// arena and the slot is free at once (no `Done` state, nothing to release when the
    /// event is consumed). Same bookkeeping as [`finish`](Self::finish) with `Ok`.
    #[inline]
    fn finish_in_arena(&mut self, now: Instant, idx: u32, slot: u8, payload: &[u8]) {
        let (session, rpc) = self.finish_fast(now, idx, slot, None);
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(payload);
        self.events.push_back(EventDesc::ArenaResponse {
            session,
            rpc: rpc.0,
            off,
            len: payload.len() as u32,
        });
    }

    /// The bookkeeping of an RPC ended by one packet (any class), whose answer the
    /// caller hands out itself: an answer (`code` None) or a remote error. Frees the
    /// slot at once. Same bookkeeping as [`finish`](Self::finish).
    #[inline(always)]
    pub(crate) fn finish_fast(
        &mut self,
        now: Instant,
        idx: u32,
        slot: u8,
        code: Option<u16>,
    ) -> (SessionId, RpcId) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        let bit = 1u64 << slot;
        s.active_mask &= !bit;
        s.unrel_mask &= !bit;
        s.sent_unlink(slot);
        let c = &mut s.client_slots[usize::from(slot)];
        c.due = None;
        c.state = ClientRpc::Free;
        let (rpc, sent, was_retransmitted) = (c.rpc_id, c.last_sent, c.retransmitted);
        let ordered = c.class == TransportClass::ReliableOrdered;
        if c.req.count > 1 {
            // A one-packet request stays until the slot's next call overwrites it.
            c.req.clear();
        }
        if code.is_none() && c.class.is_reliable() && !c.retransmitted {
            let sample = (now - c.first_sent).saturating_sub(c.server_ns).max(1);
            s.rtt_sample(sample);
        }
        if code.is_none() {
            self.stats.rpcs_completed += 1;
        } else {
            self.stats.rpcs_failed += 1;
        }
        if !was_retransmitted && self.sessions[idx as usize].sent_head != NIL_SLOT {
            // An answer is a loss signal for reliable RPCs sent before this one.
            self.note_later_answer(now, idx, sent, ordered);
        }
        (id, RpcId(rpc))
    }

    /// Ends an RPC with `result`: the answer is queued as an event, the slot freed once
    /// the event is consumed.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        idx: u32,
        slot: u8,
        result: Result<(), RpcError>,
    ) {
        let s = &mut self.sessions[idx as usize];
        let id = s.id;
        s.sent_unlink(slot);
        let c = &mut s.client_slots[usize::from(slot)];
        c.due = None;
        c.state = ClientRpc::Done;
        let rpc = c.rpc_id;
        let sent = c.last_sent;
        let was_retransmitted = c.retransmitted;
        let ordered = c.class == TransportClass::ReliableOrdered;
        s.active_mask &= !(1 << slot);
        s.unrel_mask &= !(1 << slot);
        let ok = result.is_ok();
        // Karn: no sample from a retransmitted RPC. The time the request spent in the
        // server (reorder wait, handler) is not network round trip: subtract it.
        if ok && c.class.is_reliable() && !c.retransmitted {
            let sample = (now - c.first_sent).saturating_sub(c.server_ns).max(1);
            s.rtt_sample(sample);
        }
        let timed_out = matches!(result, Err(RpcError::Timeout { .. }));
        if timed_out {
            self.stats.rpc_timeouts += 1;
        }
        let c = &mut self.sessions[idx as usize].client_slots[usize::from(slot)];
        c.result = result;
        if ok {
            self.stats.rpcs_completed += 1;
        } else {
            self.stats.rpcs_failed += 1;
        }
        self.events.push_back(EventDesc::Response {
            session: id,
            idx,
            slot,
            rpc,
        });
        // Only answers to never-retransmitted RPCs are loss signals: a duplicate is
        // answered from the server's cache, skipping its queue, so it says nothing
        // about requests queued before it.
        if !was_retransmitted && (ok || matches!(c.result, Err(RpcError::Remote { .. }))) {
            self.note_later_answer(now, idx, sent, ordered);
        }
        if ordered && timed_out {
            // The server may wait forever for this one: give up on the session's other
            // ordered RPCs and restart the order sequence with the next one.
            let s = &mut self.sessions[idx as usize];
            s.resync_pending = true;
            let mut mask = s.active_mask;
            while mask != 0 {
                let j = mask.trailing_zeros() as u8;
                mask &= mask - 1;
                let class = self.sessions[idx as usize].client_slots[usize::from(j)].class;
                if class == TransportClass::ReliableOrdered {
                    self.finish(now, idx, j, Err(RpcError::OrderBroken));
                }
            }
        }
    }

    /// Fails every outstanding client RPC of a session (which is about to be freed).
    pub(crate) fn fail_all(&mut self, idx: u32, err: RpcError) {
        let s = &mut self.sessions[idx as usize];
        if s.role != Role::Client {
            return;
        }
        let id = s.id;
        let mut mask = s.active_mask;
        s.active_mask = 0;
        s.unrel_mask = 0;
        s.sent_head = super::session::NIL_SLOT;
        s.sent_tail = super::session::NIL_SLOT;
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let c = &mut s.client_slots[j];
            c.in_sent_list = false;
            if c.state != ClientRpc::Active {
                continue;
            }
            c.due = None;
            c.state = ClientRpc::Free;
            self.stats.rpcs_failed += 1;
            self.events.push_back(EventDesc::Failed {
                session: id,
                rpc: RpcId(c.rpc_id),
                err,
            });
        }
    }
}

/// The largest power of two `<= w` (w ≥ 1).
pub(crate) fn pow2_floor(w: u8) -> u8 {
    1 << (7 - w.max(1).leading_zeros())
}

/// Current retransmission timeout of a session (RFC 6298 style).
fn session_rto(srtt: u64, rttvar: u64, cfg: &super::TransportConfig) -> u64 {
    if srtt == 0 {
        cfg.rto_initial_ns.clamp(cfg.rto_min_ns, cfg.rto_max_ns)
    } else {
        (srtt + 4 * rttvar).clamp(cfg.rto_min_ns, cfg.rto_max_ns)
    }
}
