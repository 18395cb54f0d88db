//! The engine applications that connect attached application channels to the transport.
//!
//! [`ShmServerBridge`]: a request runs the request-side ANF chain here in the dataplane,
//! is copied into a slot of an attached server application for its service (round-robin)
//! and answered [`Answer::Deferred`]; its response is taken from the channel in `poll`,
//! runs the response-side chain and goes out with `endpoint.respond`. No application,
//! no free slot, or an application that died with the request → an immediate
//! [`status::UNAVAILABLE`] error, never a wait or an unbounded queue.
//!
//! A request an application holds longer than the hang timeout is answered
//! `UNAVAILABLE` then; its slot stays lent (the application may still write it) until
//! the late response arrives (dropped) or the application dies.
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
    /// Server: requests answered `UNAVAILABLE` because the app held them too long, and
    /// their responses that arrived after that (dropped).
    pub hung: u64,
    pub late_responses: u64,
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
        self.hung += o.hung;
        self.late_responses += o.late_responses;
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

/// A request lent to an application.
#[derive(Debug, Clone, Copy)]
struct Lent {
    req: RequestRef,
    at: u64,
    /// Already answered (`UNAVAILABLE`, the app took too long).
    answered: bool,
}

struct ServerChan {
    id: u32,
    services: Vec<u16>,
    mem: ChannelMem,
    book: SlotBook<Lent>,
}

/// How long an application may hold a request before it is answered `UNAVAILABLE`.
pub const DEFAULT_HANG_TIMEOUT_NS: u64 = 1_000_000_000;
/// How often lent requests are checked against the hang timeout.
const HANG_SCAN_NS: u64 = 1_000_000;

/// The server-side bridge: an [`App`] serving requests through attached applications.
pub struct ShmServerBridge<H: ChainHook> {
    hook: H,
    events: Receiver<ChannelEvent>,
    chans: Vec<ServerChan>,
    rr: usize,
    scratch: Vec<u8>,
    stats: BridgeStats,
    hang_timeout_ns: u64,
    scanned_at: u64,
    /// Request arrival (the pass that received it) → the application's answer handed to
    /// the transport.
    latency: crate::stats::LatencyHistogram,
}

impl<H: ChainHook> ShmServerBridge<H> {
    /// Sets how long an application may hold a request (default 1 s).
    pub fn with_hang_timeout(mut self, ns: u64) -> Self {
        self.hang_timeout_ns = ns.max(1);
        self
    }

    /// Answers `UNAVAILABLE` what applications have held longer than the hang timeout.
    fn expire_hung(&mut self, now: u64, ep: &mut Endpoint<Peer>) {
        let t = Instant::from_nanos(now);
        let limit = self.hang_timeout_ns;
        let stats = &mut self.stats;
        for c in &mut self.chans {
            c.book.for_each_lent(|l| {
                if !l.answered && now.saturating_sub(l.at) > limit {
                    l.answered = true;
                    stats.hung += 1;
                    stats.unavailable += 1;
                    let _ = ep.respond_error(t, l.req, status::UNAVAILABLE);
                }
            });
        }
    }

    /// `events` is this core's receiver from [`super::Hub::start`].
    pub fn new(hook: H, events: Receiver<ChannelEvent>) -> Self {
        ShmServerBridge {
            hook,
            events,
            chans: Vec::new(),
            rr: 0,
            scratch: vec![0; super::proto::MAX_SLOT_SIZE as usize],
            stats: BridgeStats::default(),
            hang_timeout_ns: DEFAULT_HANG_TIMEOUT_NS,
            scanned_at: 0,
            latency: crate::stats::LatencyHistogram::new(),
        }
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    pub fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }

    /// Adds the latencies recorded since the last call to `into` and forgets them (no
    /// allocation).
    pub fn drain_latency_into(&mut self, into: &mut crate::stats::LatencyHistogram) {
        if !self.latency.is_empty() {
            into.merge(&self.latency);
            self.latency.reset();
        }
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
        for l in c.book.reclaim_all() {
            self.stats.slots_reclaimed += 1;
            if !l.answered {
                self.stats.unavailable += 1;
                let _ = ep.respond_error(t, l.req, status::UNAVAILABLE);
            }
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
        let Some(lent) = c.book.take_back(d.slot, d.tag) else {
            self.stats.bad_descriptors += 1;
            return;
        };
        if lent.answered {
            self.stats.late_responses += 1;
            return;
        }
        let req = lent.req;
        self.latency.record(now.saturating_sub(lent.at));
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
            let lent = Lent {
                req,
                at: now,
                answered: false,
            };
            let Some((slot, tag)) = c.book.lend(lent) else {
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
        if now.saturating_sub(self.scanned_at) >= HANG_SCAN_NS {
            self.scanned_at = now;
            self.expire_hung(now, ep);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::hub::Attached;
    use crate::app::proto::Geometry;
    use crate::app::shm::Segment;
    use crate::app::write_header;
    use crate::transport::{TransportClass, TransportConfig};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    fn attached(id: u32, role: Role) -> (Attached, ChannelMem, Arc<Segment>) {
        let g = Geometry {
            ring_cap: 8,
            slot_size: 128,
            slot_count: 4,
        };
        let l = g.validate().expect("geometry");
        let p = std::path::PathBuf::from(format!(
            "/dev/shm/flatrpc-test-{}-bridge-{id}",
            std::process::id()
        ));
        let mut seg = Segment::create(&p, l.total).expect("segment");
        seg.unlink();
        write_header(&seg, id, &g).expect("header");
        let seg = Arc::new(seg);
        let app = open_channel(Arc::clone(&seg), &g, false).expect("app side");
        (
            Attached {
                id,
                role,
                geometry: g,
                segment: Arc::clone(&seg),
                pid: 1,
            },
            app,
            seg,
        )
    }

    fn endpoint() -> Endpoint<Peer> {
        Endpoint::new(
            TransportConfig::default(),
            ClassTable::with_default(TransportClass::Reliable),
        )
        .expect("endpoint")
    }

    fn req(rpc: u32) -> RequestRef {
        RequestRef {
            session: SessionId(1),
            rpc: RpcId(rpc),
            service: 7,
            method: 1,
            class: TransportClass::Unreliable,
        }
    }

    const PEER: Peer = Peer {
        ip: std::net::Ipv4Addr::LOCALHOST,
        port: 1,
    };

    #[test]
    fn server_bridge_lends_checks_expires_and_reclaims() {
        let (tx, rx) = crossbeam::channel::unbounded();
        let mut b = ShmServerBridge::new(NoChain, rx).with_hang_timeout(1_000_000);
        let mut ep = endpoint();
        let mut resp = [0u8; 64];
        // Nobody attached: unavailable at once.
        assert_eq!(
            b.on_request(0, req(1), PEER, &mut [1, 2, 3], &mut resp),
            Answer::Error(status::UNAVAILABLE)
        );
        let (a, mut app, seg) = attached(1, Role::Server { services: vec![7] });
        tx.send(ChannelEvent::Attached(a)).expect("send");
        b.poll(0, &mut ep);
        assert_eq!(b.stats().channels, 1);
        // Another service: unavailable.
        let mut other = req(2);
        other.service = 8;
        assert_eq!(
            b.on_request(0, other, PEER, &mut [1], &mut resp),
            Answer::Error(status::UNAVAILABLE)
        );
        // Four slots: four requests deferred, the fifth refused.
        for i in 0..4 {
            assert_eq!(
                b.on_request(0, req(10 + i), PEER, &mut [i as u8; 5], &mut resp),
                Answer::Deferred
            );
        }
        assert_eq!(
            b.on_request(0, req(20), PEER, &mut [0], &mut resp),
            Answer::Error(status::UNAVAILABLE)
        );
        let mut descs = Vec::new();
        while let Some(d) = app.consumer.pop().expect("ring") {
            let mut buf = [0u8; 5];
            app.arena.read(d.slot, d.len, &mut buf).expect("payload");
            assert_eq!(buf, [(d.aux - 10) as u8; 5]);
            descs.push(d);
        }
        assert_eq!(descs.len(), 4);
        // Hostile answers: wrong tag, slot out of range, wrong kind, length too long.
        let d0 = descs[0];
        for bad in [
            Desc {
                kind: kind::RESPONSE,
                tag: d0.tag ^ 1,
                ..d0
            },
            Desc {
                kind: kind::RESPONSE,
                slot: 1000,
                ..d0
            },
            Desc {
                kind: kind::CALL,
                ..d0
            },
        ] {
            app.producer.push(&bad).expect("push");
        }
        b.poll(1, &mut ep);
        assert_eq!(b.stats().bad_descriptors, 3);
        assert_eq!(b.stats().slots_lent, 4);
        // A proper answer; a second one with the same tag is refused.
        let ok = Desc {
            kind: kind::RESPONSE,
            len: 3,
            ..d0
        };
        app.producer.push(&ok).expect("push");
        app.producer.push(&ok).expect("push");
        let bad_len = Desc {
            kind: kind::RESPONSE,
            len: 4096,
            ..descs[1]
        };
        app.producer.push(&bad_len).expect("push");
        b.poll(2, &mut ep);
        let s = b.stats();
        assert_eq!((s.responses, s.bad_descriptors, s.slots_lent), (1, 5, 2));
        // The remaining two are held past the hang timeout: answered, slots still lent.
        b.poll(3_000_000, &mut ep);
        let s = b.stats();
        assert_eq!((s.hung, s.slots_lent), (2, 2));
        // A late answer is dropped and frees its slot.
        app.producer
            .push(&Desc {
                kind: kind::RESPONSE,
                ..descs[2]
            })
            .expect("push");
        b.poll(3_000_001, &mut ep);
        let s = b.stats();
        assert_eq!((s.late_responses, s.slots_lent), (1, 1));
        // The app corrupts its ring index: the channel is dropped, its slot reclaimed.
        let l = Geometry {
            ring_cap: 8,
            slot_size: 128,
            slot_count: 4,
        }
        .validate()
        .expect("layout");
        seg.atomic_u32(l.to_dataplane)
            .expect("head")
            .store(0x4000_0000, Ordering::Release);
        b.poll(3_000_002, &mut ep);
        let s = b.stats();
        assert_eq!(
            (
                s.corrupt_channels,
                s.channels,
                s.slots_lent,
                s.slots_reclaimed
            ),
            (1, 0, 0, 1)
        );
        // The hub's later Detached for it is harmless.
        tx.send(ChannelEvent::Detached(1)).expect("send");
        b.poll(3_000_003, &mut ep);
        assert_eq!(b.stats().detached, 1);
    }

    #[test]
    fn client_bridge_refuses_bad_calls_and_forgets_dead_apps() {
        let (tx, rx) = crossbeam::channel::unbounded();
        let mut b = ShmClientBridge::new(rx, PEER, ClassTable::new());
        let mut ep = endpoint();
        let (a, mut app, _seg) = attached(5, Role::Client);
        // A server-role channel sent to a client bridge is ignored.
        let (s, _sapp, _sseg) = attached(6, Role::Server { services: vec![7] });
        tx.send(ChannelEvent::Attached(a)).expect("send");
        tx.send(ChannelEvent::Attached(s)).expect("send");
        b.poll(0, &mut ep);
        assert_eq!(b.stats().channels, 1);
        // No session yet: the call completes UNAVAILABLE; a bad slot is refused.
        app.arena.write(0, b"hi").expect("write");
        app.producer
            .push(&Desc {
                kind: kind::CALL,
                slot: 0,
                len: 2,
                tag: 77,
                service: 7,
                method: 1,
                ..Desc::default()
            })
            .expect("push");
        app.producer
            .push(&Desc {
                kind: kind::CALL,
                slot: 99,
                len: 2,
                tag: 78,
                ..Desc::default()
            })
            .expect("push");
        b.poll(1, &mut ep);
        let c = app.consumer.pop().expect("ring").expect("a completion");
        assert_eq!(
            (c.kind, c.tag, c.status, c.slot),
            (kind::COMPLETION, 77, status::UNAVAILABLE, 0)
        );
        assert_eq!(app.consumer.pop().expect("ring"), None);
        let s = b.stats();
        assert_eq!((s.call_errors, s.bad_descriptors, s.calls), (1, 1, 0));
        // An outcome for a channel that is gone is forgotten.
        b.inflight.insert(
            (9, 9),
            InFlight {
                chan: 5,
                slot: 1,
                tag: 3,
            },
        );
        tx.send(ChannelEvent::Detached(5)).expect("send");
        b.poll(2, &mut ep);
        b.on_response(3, SessionId(9), RpcId(9), Err(RpcError::SessionClosed));
        let s = b.stats();
        assert_eq!((s.channels, s.detached, s.calls_forgotten), (0, 1, 1));
    }
}
