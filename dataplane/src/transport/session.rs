//! Session identifiers and the bounded session table (a slab with tagged ids).
//!
//! This module owns id allocation, lookup and freeing of table slots, with the embryonic
//! bookkeeping the server needs to resist `Connect` sprays. It must not know what the
//! per-session protocol state means (that is `client.rs` / `server.rs`).

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::fragments::{MsgReceiver, MsgSender};
use super::{Instant, RpcError, TimerHandle, TransportClass};
use crate::wire::rpc::PacketType;

const INDEX_BITS: u32 = 24;
/// "No slot" in the intrusive sent-order list.
pub(crate) const NIL_SLOT: u8 = u8::MAX;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// A session id: slot index in the low 24 bits, a random non-zero 40-bit tag above.
/// Unpredictable, so a forged packet cannot address another peer's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SessionId(pub u64);

impl SessionId {
    pub(crate) fn new(index: u32, tag: u64) -> Self {
        SessionId((tag << INDEX_BITS) | (u64::from(index) & INDEX_MASK))
    }
    /// The table slot this id points at.
    pub fn index(self) -> usize {
        (self.0 & INDEX_MASK) as usize
    }
}

/// Where the session-id tags come from: a CSPRNG (ChaCha), seeded from the OS in
/// production or from a fixed seed in simulation.
pub(crate) struct TagSource(StdRng);

impl TagSource {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        TagSource(match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        })
    }
    /// A non-zero 40-bit tag.
    pub(crate) fn next_tag(&mut self) -> u64 {
        loop {
            let t = self.0.next_u64() >> INDEX_BITS;
            if t != 0 {
                return t;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessState {
    Free,
    /// Client: `Connect` sent, waiting for `ConnectAck`.
    Connecting,
    /// Server: `Connect` seen, the client has not used the session yet.
    Embryonic,
    /// Both: usable.
    Open,
}

/// A client RPC slot's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientRpc {
    Free,
    Active,
    /// Finished: the response (or error) waits in the event queue; freed when popped.
    Done,
}

#[derive(Debug)]
pub(crate) struct ClientSlot {
    pub state: ClientRpc,
    pub rpc_id: u32,
    pub class: TransportClass,
    pub service: u16,
    pub method: u16,
    pub order_seq: u16,
    pub resync: bool,
    /// Issue order within the session (for fast retransmit).
    pub issue_seq: u64,
    pub req: MsgSender,
    /// The server has the whole request (an ack said so, or a response fragment came).
    pub req_complete: bool,
    /// The server said the request waits in its reorder buffer.
    pub held: bool,
    /// Time the server says the request spent in it (from the response's `aux`).
    pub server_ns: u64,
    pub resp: MsgReceiver,
    pub result: Result<(), RpcError>,
    pub retries: u32,
    pub rto: u64,
    pub first_sent: Instant,
    pub last_sent: Instant,
    pub retransmitted: bool,
    pub deadline: Instant,
    /// The slot's wheel entry and its deadline. It is lazy: when the RPC ends or the
    /// timer moves later, the entry stays and re-arms itself for `due` when it fires
    /// (or does nothing), so a call costs no wheel operation while an entry is live.
    pub timer: Option<TimerHandle>,
    pub timer_at: Instant,
    /// When the RPC's timer should really fire; `None` when it wants none.
    pub due: Option<Instant>,
    pub later_answers: u8,
    /// RACK: an answer to a later-sent RPC came first; re-send when the reorder
    /// window (the RPC timer, shortened) expires without an answer.
    pub suspect: bool,
    /// Links of the session's list of active RPCs ordered by `last_sent`.
    pub sent_prev: u8,
    pub sent_next: u8,
    pub in_sent_list: bool,
    /// A single-fragment unreliable call on the fast path: its request went out through
    /// the packet ring (`req` is empty) and its deadline is watched by the endpoint's
    /// unreliable sweep, not by a timer of its own.
    pub fast: bool,
}

impl ClientSlot {
    fn new() -> Self {
        ClientSlot {
            state: ClientRpc::Free,
            rpc_id: 0,
            class: TransportClass::Unreliable,
            service: 0,
            method: 0,
            order_seq: 0,
            resync: false,
            issue_seq: 0,
            req: MsgSender::new(),
            req_complete: false,
            held: false,
            server_ns: 0,
            resp: MsgReceiver::new(),
            result: Ok(()),
            retries: 0,
            rto: 0,
            first_sent: Instant::ZERO,
            last_sent: Instant::ZERO,
            retransmitted: false,
            deadline: Instant::ZERO,
            timer: None,
            timer_at: Instant::ZERO,
            due: None,
            later_answers: 0,
            suspect: false,
            sent_prev: NIL_SLOT,
            sent_next: NIL_SLOT,
            in_sent_list: false,
            fast: false,
        }
    }
}

/// A server RPC slot's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerRpc {
    Free,
    /// Some fragments of a multi-fragment request arrived.
    Receiving,
    /// Complete, ordered, waiting for an earlier request (the reorder buffer).
    Held,
    /// Delivered to the handler (or queued for it), no answer yet.
    Executing,
    /// Answered; the response is cached for retransmission.
    Responded,
    /// Answered, but the response could not be cached.
    ResponseDropped,
    /// Answered and acknowledged (cache freed); duplicates are ignored.
    Acked,
    /// Never to be executed (order resync passed it); duplicates are ignored.
    Abandoned,
}

#[derive(Debug)]
pub(crate) struct ServerSlot {
    pub state: ServerRpc,
    pub rpc_id: u32,
    pub class: TransportClass,
    pub service: u16,
    pub method: u16,
    pub order_seq: u16,
    pub resync: bool,
    pub req: MsgReceiver,
    pub resp: MsgSender,
    pub resp_type: PacketType,
    pub error_code: u16,
    /// Bytes of this slot's response counted in the global cache budget.
    pub cached_bytes: usize,
    /// When the whole request had arrived (its server time starts here).
    pub completed_at: Instant,
}

impl ServerSlot {
    fn new() -> Self {
        ServerSlot {
            state: ServerRpc::Free,
            rpc_id: 0,
            class: TransportClass::Reliable,
            service: 0,
            method: 0,
            order_seq: 0,
            resync: false,
            req: MsgReceiver::new(),
            resp: MsgSender::new(),
            resp_type: PacketType::Response,
            error_code: 0,
            cached_bytes: 0,
            completed_at: Instant::ZERO,
        }
    }
}

/// One entry of the session table. Slot vectors are allocated on first use and kept
/// (cleared) when the entry is reused, so steady state allocates nothing.
#[derive(Debug)]
pub(crate) struct Session<A> {
    pub id: SessionId,
    pub state: SessState,
    pub role: Role,
    pub peer: Option<A>,
    /// The peer's id for this session (what we put in packets to it).
    pub remote: u64,
    pub window: u8,
    pub last_activity: Instant,
    pub timer: Option<TimerHandle>,
    pub attempts: u32,
    // Client side.
    pub next_rpc: u32,
    pub next_order_seq: u16,
    pub resync_pending: bool,
    pub issue_counter: u64,
    pub active_mask: u64,
    /// Oldest / newest active client RPC by `last_sent` (an intrusive list through the
    /// slots), so loss detection walks only the RPCs older than an answered one.
    pub sent_head: u8,
    pub sent_tail: u8,
    pub srtt: u64,
    pub rttvar: u64,
    pub client_slots: Vec<ClientSlot>,
    /// Client slots holding fast-path unreliable calls (watched by the sweep).
    pub unrel_mask: u64,
    /// The entry is on the endpoint's list of sessions the sweep visits (kept across
    /// reuse of the entry: the list is cleaned lazily by the sweep).
    pub in_unrel_list: bool,
    // Server side.
    pub expect_order_seq: u16,
    pub held: u32,
    pub server_slots: Vec<ServerSlot>,
    /// Reassembly bytes this session holds (budgeted per session).
    pub reasm_bytes: usize,
}

impl<A> Session<A> {
    pub(crate) fn empty() -> Self {
        Session {
            id: SessionId(0),
            state: SessState::Free,
            role: Role::Server,
            peer: None,
            remote: 0,
            window: 1,
            last_activity: Instant::ZERO,
            timer: None,
            attempts: 0,
            next_rpc: 0,
            next_order_seq: 0,
            resync_pending: false,
            issue_counter: 0,
            active_mask: 0,
            sent_head: NIL_SLOT,
            sent_tail: NIL_SLOT,
            srtt: 0,
            rttvar: 0,
            client_slots: Vec::new(),
            unrel_mask: 0,
            in_unrel_list: false,
            expect_order_seq: 0,
            held: 0,
            server_slots: Vec::new(),
            reasm_bytes: 0,
        }
    }

    /// Resets the entry for a new session, keeping slot allocations.
    pub(crate) fn reset(&mut self, id: SessionId, role: Role, peer: A, window: u8, now: Instant) {
        self.id = id;
        self.role = role;
        self.peer = Some(peer);
        self.remote = 0;
        self.window = window;
        self.last_activity = now;
        self.timer = None;
        self.attempts = 0;
        self.next_rpc = 0;
        self.next_order_seq = 0;
        self.resync_pending = false;
        self.issue_counter = 0;
        self.active_mask = 0;
        self.unrel_mask = 0;
        self.sent_head = NIL_SLOT;
        self.sent_tail = NIL_SLOT;
        self.srtt = 0;
        self.rttvar = 0;
        self.expect_order_seq = 0;
        self.held = 0;
        self.reasm_bytes = 0;
        let w = usize::from(window);
        match role {
            Role::Client => {
                while self.client_slots.len() < w {
                    self.client_slots.push(ClientSlot::new());
                }
                for s in &mut self.client_slots {
                    s.in_sent_list = false;
                    s.state = ClientRpc::Free;
                    s.timer = None;
                    s.due = None;
                    s.req.clear();
                    s.resp.clear();
                }
            }
            Role::Server => {
                while self.server_slots.len() < w {
                    self.server_slots.push(ServerSlot::new());
                }
                for s in &mut self.server_slots {
                    s.state = ServerRpc::Free;
                    s.rpc_id = 0;
                    s.cached_bytes = 0;
                    s.req.clear();
                    s.resp.clear();
                }
            }
        }
    }

    /// Client: records that `slot` sent something at `now` (moves it to the list tail).
    pub(crate) fn sent_touch(&mut self, slot: u8, now: Instant) {
        self.sent_unlink(slot);
        let tail = self.sent_tail;
        if let Some(c) = self.client_slots.get_mut(usize::from(slot)) {
            c.last_sent = now;
            c.sent_prev = tail;
            c.sent_next = NIL_SLOT;
            c.in_sent_list = true;
        } else {
            return;
        }
        match self.client_slots.get_mut(usize::from(tail)) {
            Some(t) => t.sent_next = slot,
            None => self.sent_head = slot,
        }
        self.sent_tail = slot;
    }

    /// Client: takes `slot` out of the sent-order list (no-op if not in it, the case of
    /// every fast-path unreliable call: checked inline).
    #[inline]
    pub(crate) fn sent_unlink(&mut self, slot: u8) {
        if self
            .client_slots
            .get(usize::from(slot))
            .is_some_and(|c| c.in_sent_list)
        {
            self.sent_unlink_slow(slot);
        }
    }

    #[inline(never)]
    fn sent_unlink_slow(&mut self, slot: u8) {
        let Some(c) = self.client_slots.get_mut(usize::from(slot)) else {
            return;
        };
        c.in_sent_list = false;
        let (prev, next) = (c.sent_prev, c.sent_next);
        match self.client_slots.get_mut(usize::from(prev)) {
            Some(p) => p.sent_next = next,
            None => self.sent_head = next,
        }
        match self.client_slots.get_mut(usize::from(next)) {
            Some(n) => n.sent_prev = prev,
            None => self.sent_tail = prev,
        }
    }

    /// Client: folds one round-trip sample into the smoothed RTT (RFC 6298).
    #[inline]
    pub(crate) fn rtt_sample(&mut self, sample: u64) {
        if self.srtt == 0 {
            self.srtt = sample;
            self.rttvar = sample / 2;
        } else {
            let d = self.srtt.abs_diff(sample);
            self.rttvar = (3 * self.rttvar + d) / 4;
            self.srtt = (7 * self.srtt + sample) / 8;
        }
    }

    /// Server: grows the slot vector when the granted window is known.
    pub(crate) fn ensure_server_slots(&mut self) {
        while self.server_slots.len() < usize::from(self.window) {
            self.server_slots.push(ServerSlot::new());
        }
    }

    /// Bytes held by this entry's slot storage (for memory accounting).
    pub(crate) fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self
                .client_slots
                .iter()
                .map(|s| {
                    core::mem::size_of::<ClientSlot>()
                        + s.req.memory_bytes()
                        + s.resp.memory_bytes()
                })
                .sum::<usize>()
            + self
                .server_slots
                .iter()
                .map(|s| {
                    core::mem::size_of::<ServerSlot>()
                        + s.req.memory_bytes()
                        + s.resp.memory_bytes()
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_index_and_distinct_tags() {
        let mut t = TagSource::new(Some(1));
        let a = SessionId::new(5, t.next_tag());
        let b = SessionId::new(5, t.next_tag());
        assert_eq!(a.index(), 5);
        assert_eq!(b.index(), 5);
        assert_ne!(a, b);
        assert_ne!(a.0 >> 24, 0);
        let big = SessionId::new((1 << 24) - 1, (1 << 40) - 1);
        assert_eq!(big.index(), (1 << 24) - 1);
        assert_eq!(big.0, u64::MAX);
    }
}
