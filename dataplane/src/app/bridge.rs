//! The engine applications that connect attached application channels to the transport.
//!
//! [`ShmServerBridge`]: a request runs the request-side ANF chain here in the dataplane,
//! is copied into a slot of an attached server application for its service (round-robin)
//! and answered [`Answer::Deferred`]; its response is taken from the channel in `poll`,
//! runs the response-side chain and goes out with `endpoint.respond`. No application,
//! no free slot, or an application that died with the request → an immediate
//! [`status::UNAVAILABLE`] error, never a wait or an unbounded queue.
//!
//! [`ShmClientBridge`]: calls from attached client applications become `endpoint.call`s
//! on one session to the configured server; outcomes are written back to the caller's
//! slot. A dead application's outstanding calls are forgotten when they complete.
//!
//! Everything taken from a channel (descriptors, slot numbers, lengths, tags) is checked
//! against the bridge's own records before use; payloads are copied out of shared memory
//! before the chain or the transport sees them. No syscall, lock or allocation per RPC
//! except the client's in-flight map entry.

use crossbeam::channel::Receiver;
use std::collections::HashMap;

use crate::anf::Verdict;
use crate::engine::{anf_error_code, Answer, App, Peer, SessionEvent};
use crate::transport::{
    CallError, ClassTable, Endpoint, Instant, RequestRef, RpcError, RpcId, SessionId,
};

use super::arena::SlotBook;
use super::hub::ChannelEvent;
use super::proto::Role;
use super::ring::{kind, Desc, RingError};
use super::{open_channel, status, ChannelMem};

/// The request- and response-side ANF chains the server bridge runs around the
/// application (implemented for a generated pipeline by its service).
pub trait ChainHook: Send {
    fn request(&mut self, now: u64, req: &RequestRef, payload: &mut [u8]) -> Verdict;
    fn response(&mut self, now: u64, req: &RequestRef, resp: &mut [u8]) -> Verdict;
}

/// No ANFs: everything is forwarded.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChain;

impl ChainHook for NoChain {
    fn request(&mut self, _: u64, _: &RequestRef, _: &mut [u8]) -> Verdict {
        Verdict::Forward
    }
    fn response(&mut self, _: u64, _: &RequestRef, _: &mut [u8]) -> Verdict {
        Verdict::Forward
    }
}

/// The bridges' counters (one struct for both roles).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BridgeStats {
    /// Channels attached to this core now, and ever attached / detached.
    pub channels: u64,
    pub attached: u64,
    pub detached: u64,
    /// Server: requests handed to applications, responses sent back.
    pub requests: u64,
    pub responses: u64,
    /// Server: requests answered `UNAVAILABLE` (no app, no slot, app died).
    pub unavailable: u64,
    /// Server: request/response-side chain verdicts other than forward.
    pub chain_dropped: u64,
    pub chain_replied: u64,
    /// Slots lent to applications now, and taken back from dead ones.
    pub slots_lent: u64,
    pub slots_reclaimed: u64,
    /// Descriptors refused (unknown slot/tag/kind, bad length), and channels dropped
    /// because their ring indices were impossible.
    pub bad_descriptors: u64,
    pub corrupt_channels: u64,
    /// Client: calls started, outcomes delivered, outcomes of dead apps' calls dropped,
    /// calls failed before reaching the transport.
    pub calls: u64,
    pub completions: u64,
    pub calls_forgotten: u64,
    pub call_errors: u64,
}

impl BridgeStats {
    /// Adds another core's counters.
    pub fn add(&mut self, o: &BridgeStats) {
        self.channels += o.channels;
        self.attached += o.attached;
        self.detached += o.detached;
        self.requests += o.requests;
        self.responses += o.responses;
        self.unavailable += o.unavailable;
        self.chain_dropped += o.chain_dropped;
        self.chain_replied += o.chain_replied;
        self.slots_lent += o.slots_lent;
        self.slots_reclaimed += o.slots_reclaimed;
        self.bad_descriptors += o.bad_descriptors;
        self.corrupt_channels += o.corrupt_channels;
        self.calls += o.calls;
        self.completions += o.completions;
        self.calls_forgotten += o.calls_forgotten;
        self.call_errors += o.call_errors;
    }
}

/// Descriptors taken from one channel per pass, so one application cannot starve others.
const BATCH: usize = 32;

struct ServerChan {
    id: u32,
    services: Vec<u16>,
    mem: ChannelMem,
    book: SlotBook<RequestRef>,
}

/// The server-side bridge: an [`App`] serving requests through attached applications.
pub struct ShmServerBridge<H: ChainHook> {
    hook: H,
    events: Receiver<ChannelEvent>,
    chans: Vec<ServerChan>,
    rr: usize,
    scratch: Vec<u8>,
    stats: BridgeStats,
}

impl<H: ChainHook> ShmServerBridge<H> {
    /// `events` is this core's receiver from [`super::Hub::start`].
    pub fn new(hook: H, events: Receiver<ChannelEvent>) -> Self {
        ShmServerBridge {
            hook,
            events,
            chans: Vec::new(),
            rr: 0,
            scratch: vec![0; super::proto::MAX_SLOT_SIZE as usize],
            stats: BridgeStats::default(),
        }
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    pub fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }

    fn lent(&self) -> u64 {
        self.chans.iter().map(|c| c.book.lent_count() as u64).sum()
    }

    fn take_events(&mut self, t: Instant, ep: &mut Endpoint<Peer>) {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                ChannelEvent::Attached(a) => {
                    let Role::Server { services } = a.role else {
                        continue;
                    };
                    let Ok(mem) = open_channel(a.segment, &a.geometry, true) else {
                        self.stats.corrupt_channels += 1;
                        continue;
                    };
                    self.stats.attached += 1;
                    self.chans.push(ServerChan {
                        id: a.id,
                        services,
                        book: SlotBook::new(mem.arena.count()),
                        mem,
                    });
                }
                ChannelEvent::Detached(id) => {
                    if let Some(i) = self.chans.iter().position(|c| c.id == id) {
                        self.drop_chan(i, t, ep);
                    }
                }
            }
        }
        self.stats.channels = self.chans.len() as u64;
    }

    /// Forgets a channel: every request it held is answered `UNAVAILABLE` and its slots
    /// are reclaimed (the segment is unmapped when the last reference goes).
    fn drop_chan(&mut self, i: usize, t: Instant, ep: &mut Endpoint<Peer>) {
        let mut c = self.chans.swap_remove(i);
        for req in c.book.reclaim_all() {
            self.stats.slots_reclaimed += 1;
            self.stats.unavailable += 1;
            let _ = ep.respond_error(t, req, status::UNAVAILABLE);
        }
        self.stats.detached += 1;
        self.stats.channels = self.chans.len() as u64;
    }

    fn drain_responses(&mut self, now: u64, ep: &mut Endpoint<Peer>) {
        let t = Instant::from_nanos(now);
        let mut i = 0;
        while i < self.chans.len() {
            let mut corrupt = false;
            for _ in 0..BATCH {
                let d = match self.chans[i].mem.consumer.pop() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        corrupt = true;
                        break;
                    }
                };
                self.on_response_desc(now, t, i, &d, ep);
            }
            if corrupt {
                self.stats.corrupt_channels += 1;
                self.drop_chan(i, t, ep);
            } else {
                i += 1;
            }
        }
    }

    fn on_response_desc(
        &mut self,
        now: u64,
        t: Instant,
        i: usize,
        d: &Desc,
        ep: &mut Endpoint<Peer>,
    ) {
        let c = &mut self.chans[i];
        if d.kind != kind::RESPONSE {
            self.stats.bad_descriptors += 1;
            return;
        }
        let Some(req) = c.book.take_back(d.slot, d.tag) else {
            self.stats.bad_descriptors += 1;
            return;
        };
        if d.status != status::OK {
            let code = if d.status < crate::transport::ERROR_CODE_TRANSPORT_BASE {
                d.status
            } else {
                status::APP_ERROR
            };
            self.stats.responses += 1;
            let _ = ep.respond_error(t, req, code);
            return;
        }
        let n = match c.mem.arena.read(d.slot, d.len, &mut self.scratch) {
            Ok(n) => n,
            Err(_) => {
                self.stats.bad_descriptors += 1;
                let _ = ep.respond_error(t, req, status::APP_ERROR);
                return;
            }
        };
        let resp = &mut self.scratch[..n];
        match self.hook.response(now, &req, resp) {
            Verdict::Forward => {
                self.stats.responses += 1;
                let _ = ep.respond(t, req, resp);
            }
            Verdict::Drop => self.stats.chain_dropped += 1,
            Verdict::Reply(e) => {
                self.stats.chain_replied += 1;
                let _ = ep.respond_error(t, req, anf_error_code(e.message));
            }
        }
    }
}

impl<H: ChainHook> App for ShmServerBridge<H> {
    type Stats = BridgeStats;

    fn on_request(
        &mut self,
        now: u64,
        req: RequestRef,
        _peer: Peer,
        payload: &mut [u8],
        _resp: &mut [u8],
    ) -> Answer {
        match self.hook.request(now, &req, payload) {
            Verdict::Forward => {}
            Verdict::Drop => {
                self.stats.chain_dropped += 1;
                return Answer::Silent;
            }
            Verdict::Reply(e) => {
                self.stats.chain_replied += 1;
                return Answer::Error(anf_error_code(e.message));
            }
        }
        let n = self.chans.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            let c = &mut self.chans[i];
            if !c.services.contains(&req.service) || !c.book.has_free() {
                continue;
            }
            let Some((slot, tag)) = c.book.lend(req) else {
                continue;
            };
            let pushed = c.mem.arena.write(slot, payload).is_ok()
                && c.mem
                    .producer
                    .push(&Desc {
                        kind: kind::REQUEST,
                        status: status::OK,
                        service: req.service,
                        method: req.method,
                        slot,
                        len: payload.len() as u32,
                        tag,
                        aux: u64::from(req.rpc.0),
                    })
                    .is_ok();
            if !pushed {
                let _ = c.book.take_back(slot, tag);
                continue;
            }
            self.rr = i + 1;
            self.stats.requests += 1;
            self.stats.slots_lent = self.lent();
            return Answer::Deferred;
        }
        self.stats.unavailable += 1;
        Answer::Error(status::UNAVAILABLE)
    }

    fn poll(&mut self, now: u64, ep: &mut Endpoint<Peer>) -> bool {
        let t = Instant::from_nanos(now);
        if !self.events.is_empty() {
            self.take_events(t, ep);
        }
        self.drain_responses(now, ep);
        self.stats.slots_lent = self.lent();
        true
    }

    fn stats(&self) -> BridgeStats {
        self.stats.clone()
    }
}

struct ClientChan {
    id: u32,
    mem: ChannelMem,
    /// Slots whose call is in the dataplane's hands.
    held: Vec<bool>,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    chan: u32,
    slot: u32,
    tag: u64,
}

/// The client-side bridge: an [`App`] making attached applications' calls.
pub struct ShmClientBridge {
    events: Receiver<ChannelEvent>,
    chans: Vec<ClientChan>,
    server: Peer,
    classes: ClassTable,
    session: Option<SessionId>,
    connecting: bool,
    retry_at: u64,
    inflight: HashMap<(u64, u32), InFlight>,
    scratch: Vec<u8>,
    stats: BridgeStats,
}

/// Wait before reconnecting after a failed connect, ns.
const RECONNECT_NS: u64 = 100_000_000;

impl ShmClientBridge {
    /// Calls go to `server`; `classes` gives each method's transport class.
    pub fn new(events: Receiver<ChannelEvent>, server: Peer, classes: ClassTable) -> Self {
        ShmClientBridge {
            events,
            chans: Vec::new(),
            server,
            classes,
            session: None,
            connecting: false,
            retry_at: 0,
            inflight: HashMap::new(),
            scratch: vec![0; super::proto::MAX_SLOT_SIZE as usize],
            stats: BridgeStats::default(),
        }
    }

    fn take_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                ChannelEvent::Attached(a) => {
                    if a.role != Role::Client {
                        continue;
                    }
                    let Ok(mem) = open_channel(a.segment, &a.geometry, true) else {
                        self.stats.corrupt_channels += 1;
                        continue;
                    };
                    self.stats.attached += 1;
                    self.chans.push(ClientChan {
                        id: a.id,
                        held: vec![false; mem.arena.count() as usize],
                        mem,
                    });
                }
                ChannelEvent::Detached(id) => self.drop_chan(id),
            }
        }
        self.stats.channels = self.chans.len() as u64;
    }

    fn drop_chan(&mut self, id: u32) {
        if let Some(i) = self.chans.iter().position(|c| c.id == id) {
            let c = self.chans.swap_remove(i);
            self.stats.slots_reclaimed += c.held.iter().filter(|&&h| h).count() as u64;
            self.stats.detached += 1;
        }
        self.stats.channels = self.chans.len() as u64;
    }

    /// Writes an outcome to the app; `payload` goes into the slot when the status is OK.
    fn complete(
        c: &mut ClientChan,
        stats: &mut BridgeStats,
        slot: u32,
        tag: u64,
        st: u16,
        payload: &[u8],
    ) -> Result<(), RingError> {
        let (st, len) = if st == status::OK {
            match c.mem.arena.write(slot, payload) {
                Ok(()) => (status::OK, payload.len() as u32),
                Err(_) => (status::TOO_LARGE, 0),
            }
        } else {
            (st, 0)
        };
        if let Some(h) = c.held.get_mut(slot as usize) {
            *h = false;
        }
        stats.completions += 1;
        c.mem.producer.push(&Desc {
            kind: kind::COMPLETION,
            status: st,
            slot,
            len,
            tag,
            ..Desc::default()
        })
    }

    fn take_calls(&mut self, now: u64, ep: &mut Endpoint<Peer>) {
        let t = Instant::from_nanos(now);
        let session = self.session.filter(|&s| ep.is_open(s));
        let mut i = 0;
        while i < self.chans.len() {
            let mut corrupt = false;
            for _ in 0..BATCH {
                let c = &mut self.chans[i];
                let d = match c.mem.consumer.peek() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        corrupt = true;
                        break;
                    }
                };
                let valid = d.kind == kind::CALL && c.held.get(d.slot as usize) == Some(&false);
                if !valid {
                    c.mem.consumer.advance();
                    self.stats.bad_descriptors += 1;
                    continue;
                }
                let fail = |c: &mut ClientChan, stats: &mut BridgeStats, st| {
                    c.mem.consumer.advance();
                    stats.call_errors += 1;
                    Self::complete(c, stats, d.slot, d.tag, st, &[])
                };
                let Some(session) = session else {
                    corrupt |= fail(c, &mut self.stats, status::UNAVAILABLE).is_err();
                    continue;
                };
                let Some(class) = self.classes.get(d.service, d.method) else {
                    corrupt |= fail(c, &mut self.stats, status::UNKNOWN_METHOD).is_err();
                    continue;
                };
                let Ok(n) = c.mem.arena.read(d.slot, d.len, &mut self.scratch) else {
                    corrupt |= fail(c, &mut self.stats, status::TOO_LARGE).is_err();
                    continue;
                };
                match ep.call(t, session, d.service, d.method, class, &self.scratch[..n]) {
                    Ok(rpc) => {
                        c.mem.consumer.advance();
                        if let Some(h) = c.held.get_mut(d.slot as usize) {
                            *h = true;
                        }
                        self.stats.calls += 1;
                        self.inflight.insert(
                            (session.0, rpc.0),
                            InFlight {
                                chan: c.id,
                                slot: d.slot,
                                tag: d.tag,
                            },
                        );
                    }
                    // Left in the ring: retried next pass, when credits are back.
                    Err(CallError::WindowFull) | Err(CallError::NotConnected) => break,
                    Err(CallError::TooLarge { .. }) => {
                        corrupt |= fail(c, &mut self.stats, status::TOO_LARGE).is_err();
                    }
                    Err(_) => {
                        corrupt |= fail(c, &mut self.stats, status::UNAVAILABLE).is_err();
                    }
                }
                if corrupt {
                    break;
                }
            }
            if corrupt {
                self.stats.corrupt_channels += 1;
                let id = self.chans[i].id;
                self.drop_chan(id);
            } else {
                i += 1;
            }
        }
    }
}

impl App for ShmClientBridge {
    type Stats = BridgeStats;

    fn poll(&mut self, now: u64, ep: &mut Endpoint<Peer>) -> bool {
        if !self.events.is_empty() {
            self.take_events();
        }
        if self.session.is_none() && !self.connecting && now >= self.retry_at {
            match ep.connect(Instant::from_nanos(now), self.server) {
                Ok(_) => self.connecting = true,
                Err(_) => self.retry_at = now + RECONNECT_NS,
            }
        }
        self.take_calls(now, ep);
        self.stats.slots_lent = self
            .chans
            .iter()
            .map(|c| c.held.iter().filter(|&&h| h).count() as u64)
            .sum();
        true
    }

    fn on_session(&mut self, now: u64, event: SessionEvent) {
        match event {
            SessionEvent::Connected(s) => {
                self.session = Some(s);
                self.connecting = false;
            }
            SessionEvent::ConnectFailed(_) => {
                self.connecting = false;
                self.retry_at = now + RECONNECT_NS;
            }
            SessionEvent::Closed(s, _) => {
                if self.session == Some(s) {
                    self.session = None;
                    self.retry_at = now + RECONNECT_NS;
                }
            }
        }
    }

    fn on_response(
        &mut self,
        _now: u64,
        session: SessionId,
        rpc: RpcId,
        result: Result<&mut [u8], RpcError>,
    ) {
        let Some(f) = self.inflight.remove(&(session.0, rpc.0)) else {
            return;
        };
        let Some(c) = self.chans.iter_mut().find(|c| c.id == f.chan) else {
            self.stats.calls_forgotten += 1;
            return;
        };
        let (st, payload): (u16, &[u8]) = match &result {
            Ok(p) => (status::OK, p),
            Err(RpcError::Remote { code }) => (*code, &[]),
            Err(RpcError::Timeout { .. }) => (status::TIMEOUT, &[]),
            Err(RpcError::SessionClosed) => (status::SESSION_CLOSED, &[]),
            Err(RpcError::OrderBroken) => (status::ORDER_BROKEN, &[]),
        };
        if Self::complete(c, &mut self.stats, f.slot, f.tag, st, payload).is_err() {
            self.stats.corrupt_channels += 1;
            self.drop_chan(f.chan);
        }
    }

    fn stats(&self) -> BridgeStats {
        self.stats.clone()
    }
}
