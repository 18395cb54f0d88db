//! The in-place API of the [`Endpoint`], for callers that own packet buffers (the
//! engine, with its mbufs): a request or an answer is written by the application
//! straight into the transmit buffer, after room for the RPC header, and the transport
//! only writes the header in front of it; a one-packet request deliverable now, or a
//! one-packet answer that ends a call, is handed out borrowing the receive buffer.
//! Nothing is copied for unreliable traffic, and reliable traffic is copied once, into
//! the state that retransmission and the response cache need.
//!
//! Everything else (fragments, held ordered requests, acks, handshakes) takes the
//! queued paths of `poll_event` / `poll_transmit`, and the protocol is the same: this
//! module must not keep state of its own or change what goes on the wire.

use std::hash::Hash;

use super::endpoint::{Took, TxItem};
use super::session::SessionId;
use super::{
    CallError, Endpoint, Instant, RequestRef, RespondError, RpcError, RpcId, RxDrop, TransportClass,
};
use crate::wire::rpc::{PacketType, RpcHeader, HEADER_LEN};

/// What [`Endpoint::receive`] made of a packet.
#[derive(Debug)]
pub enum Received<'p, A> {
    /// Server: a one-packet request for the handler, with the packet's payload. Answer
    /// it like an [`Event::Request`](super::Event::Request).
    Request {
        req: RequestRef,
        peer: A,
        payload: &'p mut [u8],
    },
    /// Client: the answer to a call (exactly one per accepted call, as with
    /// [`Event::Response`](super::Event::Response)), with the packet's payload.
    Response {
        session: SessionId,
        rpc: RpcId,
        result: Result<&'p mut [u8], RpcError>,
    },
    /// Taken by the queued path: whatever it produced comes from `poll_event`.
    Queued,
}

impl<A: Copy + Eq + Hash> Endpoint<A> {
    /// [`handle_packet`](Self::handle_packet) that hands a one-packet request or answer
    /// straight back, borrowing `bytes`, instead of queueing an event. While events are
    /// queued it queues too, so events keep their order (poll them after this).
    ///
    /// Inlined, so that what it hands out is built in the caller's registers.
    #[inline(always)]
    pub fn receive<'p>(
        &mut self,
        now: Instant,
        peer: A,
        bytes: &'p mut [u8],
    ) -> Result<Received<'p, A>, RxDrop> {
        let took = self.rx_in_place(now, peer, bytes);
        if took == Took::Queued {
            return Ok(Received::Queued);
        }
        if took == Took::Dropped {
            return Err(self.last_drop);
        }
        // `rx` validated the header and matched it to the session (its id is ours).
        let h = RpcHeader::new_unchecked(&bytes[..]);
        let (session, rpc) = (SessionId(h.session()), RpcId(h.rpc_id()));
        let (is_error, code) = (h.packet_type() == PacketType::Error, h.aux());
        let (service, method, class) = (h.service(), h.method(), h.class());
        let payload = bytes.get_mut(HEADER_LEN..).unwrap_or_default();
        if took == Took::Request {
            self.stats.requests_in_place += 1;
            let req = RequestRef {
                session,
                rpc,
                service,
                method,
                class: TransportClass::from_wire(class),
            };
            return Ok(Received::Request { req, peer, payload });
        }
        self.stats.answers_in_place += 1;
        let result = if is_error {
            Err(RpcError::Remote { code })
        } else {
            Ok(payload)
        };
        Ok(Received::Response {
            session,
            rpc,
            result,
        })
    }

    /// The receive path of [`receive`](Self::receive): frees what the last event
    /// borrowed and runs [`rx`](Self::rx), which returns a one-byte outcome. Inlined: as
    /// a call, its register saves and restores were 18 instructions per packet
    /// (callgrind).
    #[inline(always)]
    fn rx_in_place(&mut self, now: Instant, peer: A, bytes: &[u8]) -> Took {
        self.release_pending();
        let inline = self.events.is_empty();
        self.rx(now, peer, bytes, inline)
    }

    /// Client: [`call`](Self::call) with the request's `len` payload bytes already in
    /// `out[HEADER_LEN..]`. Writes the RPC header in front of them and returns the
    /// destination and length of the packet to send now; `None` when the call's first
    /// packet went to the transmit queue instead. A reliable request is copied for
    /// retransmission; a message larger than one packet leaves its first fragment in
    /// `out` and queues the rest.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn call_in_place(
        &mut self,
        now: Instant,
        session: SessionId,
        service: u16,
        method: u16,
        class: TransportClass,
        out: &mut [u8],
        len: usize,
    ) -> Result<(RpcId, Option<(A, usize)>), CallError> {
        self.release_pending();
        let cap = out.len().saturating_sub(HEADER_LEN);
        if len > cap {
            return Err(CallError::BufferTooSmall { len, cap });
        }
        if class == TransportClass::Unreliable && len <= self.cfg.mtu_payload {
            let (idx, rpc, slot) = self.claim_slot(session)?;
            let s = &self.sessions[idx];
            let Some(peer) = s.peer else {
                return Err(CallError::NotConnected);
            };
            let mut hdr = Self::request_header(s.remote, rpc, service, method, class);
            hdr.msg_len = len as u32;
            super::hdr::write(&hdr, out).ok_or(CallError::BufferTooSmall { len, cap })?;
            self.fast_call(now, idx as u32, slot as u8, rpc, service, method, None);
            return Ok((RpcId(rpc), Some(self.sent(peer, HEADER_LEN + len))));
        }
        let payload = &out[HEADER_LEN..HEADER_LEN + len];
        let rpc = self.client_call(now, session, service, method, class, payload, true)?;
        let idx = session.index() as u32;
        let s = &self.sessions[idx as usize];
        let slot = (rpc.0 & (u32::from(s.window) - 1)) as u8;
        let item = TxItem::ClientReq {
            idx,
            id: session,
            slot,
        };
        let first = self.emit_counted(now, item, out);
        if first.is_none() {
            self.queue_client_req(idx, slot);
        }
        Ok((rpc, first))
    }

    /// Server: [`respond`](Self::respond) with the response's `len` payload bytes
    /// already in `out[HEADER_LEN..]`. Writes the RPC header in front of them and
    /// returns the destination and length of the packet to send now; `None` when the
    /// answer went to the transmit queue instead. A reliable response is copied into the
    /// response cache; a message larger than one packet leaves its first fragment in
    /// `out` (reliable) or is queued whole (unreliable).
    #[inline]
    pub fn respond_in_place(
        &mut self,
        now: Instant,
        req: RequestRef,
        out: &mut [u8],
        len: usize,
    ) -> Result<Option<(A, usize)>, RespondError> {
        self.release_pending();
        let cap = out.len().saturating_sub(HEADER_LEN);
        if len > cap {
            return Err(RespondError::BufferTooSmall { len, cap });
        }
        if req.class == TransportClass::Unreliable && len <= self.cfg.mtu_payload {
            // The server keeps nothing about an unreliable RPC: check the session and
            // write the header.
            let (peer, remote) = self.answer_route(&req)?;
            let mut hdr = Self::answer_header(&req, remote, PacketType::Response, 0);
            hdr.msg_len = len as u32;
            super::hdr::write(&hdr, out).ok_or(RespondError::BufferTooSmall { len, cap })?;
            self.stats.fast_responses += 1;
            return Ok(Some(self.sent(peer, HEADER_LEN + len)));
        }
        let payload = &out[HEADER_LEN..HEADER_LEN + len];
        let Some((idx, slot)) = self.answer(now, req, PacketType::Response, 0, payload, true)?
        else {
            return Ok(None);
        };
        let item = TxItem::ServerResp {
            idx,
            id: req.session,
            slot,
        };
        let first = self.emit_counted(now, item, out);
        if first.is_none() {
            self.queue_server_resp(idx, slot);
        }
        Ok(first)
    }

    /// Counts a packet the caller sends itself.
    #[inline]
    fn sent(&mut self, peer: A, len: usize) -> (A, usize) {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        self.stats.sent_in_place += 1;
        (peer, len)
    }

    /// Writes the first due packet of a data item into `out`, counted as sent.
    #[inline]
    fn emit_counted(
        &mut self,
        now: Instant,
        item: TxItem<A>,
        out: &mut [u8],
    ) -> Option<(A, usize)> {
        let (peer, len) = self.emit(now, item, out)?;
        Some(self.sent(peer, len))
    }
}
