//! One polling core: a port queue, a transport endpoint, the network layer and the
//! application, run to completion in a busy loop (as eRPC does).
//!
//! A pass: receive a burst → classify each frame (ARP answered, junk counted) → feed RPC
//! packets to the transport's in-place receive: a one-packet request is handed to the
//! application in the received buffer (the ANF chain may rewrite it there) and answered
//! on the spot, run-to-completion, its answer copied once from the application's
//! response buffer into a transmit buffer where the headers are written in front of it;
//! a one-packet answer goes to the application in the received buffer → hand the
//! transport's queued events (fragmented messages, held ordered requests, session
//! events) to the application through the core's scratch buffer → fire due timers → let
//! the application issue calls → drain the transport's queued packets into frames and
//! transmit one burst. Nothing allocates per packet. Received buffers, once handled, are
//! kept (up to a burst of them) and reused for the next frames sent, as a forwarder
//! would, instead of being freed to the pool and allocated again.

use std::sync::{Arc, Mutex};

use crate::config::IdlePolicy;
use crate::port::{PacketBuf, Port, PortStats, MAX_BURST};
use crate::transport::{
    CloseReason, Endpoint, Event, Instant, Received, RequestRef, RpcError, RpcId, SessionId,
    TransportStats,
};
use crate::wire::rpc::HEADER_LEN;

use super::clock::Clock;
use super::net::{NetCounters, NetStack, Peer, Rx, RPC_OFFSET};

/// How a server application answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Send the first `n` bytes of the response buffer.
    Respond(usize),
    /// Send an error with this code (below `transport::ERROR_CODE_TRANSPORT_BASE`).
    Error(u16),
    /// Send nothing (an ANF dropped the request); the caller times out.
    Silent,
    /// Send nothing now: the application answers later through the endpoint
    /// (`respond` / `respond_error`, e.g. from [`App::poll`]), as the shared-memory
    /// bridge does once an attached application has served the request.
    Deferred,
}

/// Session life-cycle events, for applications that open sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    Connected(SessionId),
    ConnectFailed(SessionId),
    Closed(SessionId, CloseReason),
}

/// What runs on a polling core above the transport: a server's handlers, a client's
/// call loop, or both. Every method runs on the core, between bursts; keep them short.
pub trait App: Send {
    /// Application counters published with the core's statistics.
    type Stats: serde::Serialize + Clone + Default + Send + 'static;

    /// Server side: answer `req`. `payload` may be rewritten in place (by the ANF chain);
    /// the answer goes into `resp`.
    fn on_request(
        &mut self,
        _now: u64,
        _req: RequestRef,
        _peer: Peer,
        _payload: &mut [u8],
        _resp: &mut [u8],
    ) -> Answer {
        Answer::Error(crate::transport::error_code::UNKNOWN_METHOD)
    }

    /// Client side: the single outcome of a call.
    fn on_response(
        &mut self,
        _now: u64,
        _session: SessionId,
        _rpc: RpcId,
        _result: Result<&mut [u8], RpcError>,
    ) {
    }

    /// A session opened, failed to open, or closed.
    fn on_session(&mut self, _now: u64, _event: SessionEvent) {}

    /// Once per pass: connect, issue calls. Return `false` when finished: the core stops.
    fn poll(&mut self, _now: u64, _endpoint: &mut Endpoint<Peer>) -> bool {
        true
    }

    fn stats(&self) -> Self::Stats;
}

/// A core's counters, published a few times a second and at the end.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CoreSnapshot<S> {
    pub core: usize,
    /// Engine time of the snapshot, ns.
    pub at_ns: u64,
    pub port: PortStats,
    pub net: NetCounters,
    pub transport: TransportStats,
    pub app: S,
    /// Polling passes, and those that found work.
    pub passes: u64,
    pub busy_passes: u64,
    /// Frames the port refused and that were dropped after waiting a pass.
    pub tx_dropped: u64,
    /// Times an idle core yielded the CPU (`[engine] idle = "yield"`).
    pub idle_yields: u64,
}

/// How often a core publishes its snapshot.
pub const PUBLISH_EVERY_NS: u64 = 100_000_000;

/// One polling core.
pub struct Core<P: Port, A: App> {
    pub(crate) index: usize,
    port: P,
    endpoint: Endpoint<Peer>,
    net: NetStack,
    app: A,
    clock: Clock,
    rx: Vec<P::Buf>,
    tx: Vec<P::Buf>,
    /// Handled receive buffers, reused for transmission (at most `MAX_BURST`).
    spare: Vec<P::Buf>,
    /// Capacity a spare needs to hold any packet the transport may emit.
    spare_min_capacity: usize,
    scratch: Vec<u8>,
    resp: Vec<u8>,
    passes: u64,
    busy_passes: u64,
    tx_dropped: u64,
    published_at: u64,
    shared: Arc<Mutex<CoreSnapshot<A::Stats>>>,
    idle: IdlePolicy,
    idle_yields: u64,
}

/// Empty passes in a row before a core with [`IdlePolicy::Yield`] starts yielding.
pub const IDLE_PASSES_BEFORE_YIELD: u32 = 64;

impl<P: Port, A: App> Core<P, A> {
    pub fn new(
        index: usize,
        port: P,
        endpoint: Endpoint<Peer>,
        net: NetStack,
        app: A,
        clock: Clock,
    ) -> Self {
        let max = endpoint.config().max_message_size;
        let spare_min_capacity = RPC_OFFSET + endpoint.config().max_packet_len();
        Core {
            index,
            port,
            endpoint,
            net,
            app,
            clock,
            rx: Vec::with_capacity(MAX_BURST),
            tx: Vec::with_capacity(MAX_BURST),
            spare: Vec::with_capacity(MAX_BURST),
            spare_min_capacity,
            scratch: vec![0; max],
            resp: vec![0; max],
            passes: 0,
            busy_passes: 0,
            tx_dropped: 0,
            published_at: 0,
            shared: Arc::new(Mutex::new(CoreSnapshot {
                core: index,
                ..CoreSnapshot::default()
            })),
            idle: IdlePolicy::Spin,
            idle_yields: 0,
        }
    }

    /// What the core does when a pass finds no work (spin by default).
    pub fn with_idle(mut self, idle: IdlePolicy) -> Self {
        self.idle = idle;
        self
    }

    /// Where this core publishes its snapshots.
    pub fn shared(&self) -> Arc<Mutex<CoreSnapshot<A::Stats>>> {
        Arc::clone(&self.shared)
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    pub fn endpoint(&self) -> &Endpoint<Peer> {
        &self.endpoint
    }

    /// The port back from a core that is done (e.g. to run another load over it).
    pub fn into_port(self) -> P {
        self.port
    }

    /// One pass. Returns whether to go on: the application wants to, and the port has
    /// more to receive.
    #[inline]
    pub fn poll_once(&mut self) -> bool {
        let now = self.clock.now();
        let t = Instant::from_nanos(now);
        self.passes += 1;
        let received = self.receive(now);
        self.drain_events(now);
        if self.endpoint.poll_timeout().is_some_and(|d| d <= t) {
            self.endpoint.handle_timeout(t);
            self.drain_events(now);
        }
        let go_on = self.app.poll(now, &mut self.endpoint);
        let sent = self.transmit(now);
        if received + sent > 0 {
            self.busy_passes += 1;
        }
        if now.saturating_sub(self.published_at) >= PUBLISH_EVERY_NS {
            self.publish(now);
        }
        go_on && !self.port.exhausted()
    }

    fn receive(&mut self, now: u64) -> usize {
        let t = Instant::from_nanos(now);
        let mut rx = std::mem::take(&mut self.rx);
        let n = self.port.rx_burst(&mut rx, MAX_BURST);
        // ARP replies are written here; only the bytes `receive` reports are sent.
        let mut reply = [0u8; 64];
        for mut buf in rx.drain(..) {
            let csum = buf.rx_checksum();
            match self.net.receive_with(buf.data(), csum, &mut reply) {
                Rx::Rpc { peer, offset } => {
                    let bytes = buf.data_mut().get_mut(offset..).unwrap_or_default();
                    // In place: a one-packet request is served, and a one-packet answer
                    // delivered, straight from the received buffer. Drops are counted
                    // by reason in the transport's stats.
                    match self.endpoint.receive(t, peer, bytes) {
                        Ok(Received::Request { req, peer, payload }) => {
                            self.serve(now, req, peer, payload)
                        }
                        Ok(Received::Response {
                            session,
                            rpc,
                            result,
                        }) => self.app.on_response(now, session, rpc, result),
                        // Handle what was queued now, so that the next packets of the
                        // burst can be taken in place again.
                        Ok(Received::Queued) if self.endpoint.has_events() => {
                            self.drain_events(now)
                        }
                        Ok(Received::Queued) | Err(_) => {}
                    }
                }
                Rx::Reply { len } => {
                    if let Some(mut out) = self.port.alloc() {
                        if out.fill_from(&reply[..len]).is_ok() {
                            self.queue_frame(out);
                        }
                    }
                }
                Rx::Consumed | Rx::Dropped(_) => {}
            }
            if buf.capacity() >= self.spare_min_capacity {
                self.keep_spare(buf);
            }
        }
        self.rx = rx;
        n
    }

    /// Runs the application on a request handed out in place, and sends a one-packet
    /// answer at once: copied from the application's response buffer into a transmit
    /// buffer, behind room for the headers, where the transport writes the RPC header
    /// and the net layer the rest. Anything else is answered through the queue.
    fn serve(&mut self, now: u64, req: RequestRef, peer: Peer, payload: &mut [u8]) {
        let t = Instant::from_nanos(now);
        let len = match self.app.on_request(now, req, peer, payload, &mut self.resp) {
            Answer::Respond(len) => len.min(self.resp.len()),
            Answer::Error(code) => {
                let _ = self.endpoint.respond_error(t, req, code);
                return;
            }
            Answer::Silent | Answer::Deferred => return,
        };
        // One packet leaves from a transmit buffer at once; a longer answer (or one with
        // no buffer at hand) goes through the transport's queue.
        let buf = if len <= self.endpoint.config().mtu_payload {
            self.tx_buf()
        } else {
            None
        };
        let body = &self.resp[..len];
        let Some(mut buf) = buf else {
            let _ = self.endpoint.respond(t, req, body);
            return;
        };
        let cap = buf.capacity();
        let out = match buf.set_len(cap) {
            Ok(()) => buf.data_mut().get_mut(RPC_OFFSET..),
            Err(_) => None,
        };
        let Some(dst) = out.and_then(|o| o.get_mut(HEADER_LEN..HEADER_LEN + len)) else {
            let _ = self.endpoint.respond(t, req, body);
            self.keep_spare(buf);
            return;
        };
        dst.copy_from_slice(body);
        let rpc = &mut buf.data_mut()[RPC_OFFSET..];
        match self.endpoint.respond_in_place(t, req, rpc, len) {
            Ok(Some((peer, plen))) => self.emit_frame(now, buf, peer, plen),
            // Queued (or refused: the client times out), the buffer is still spare.
            Ok(None) | Err(_) => self.keep_spare(buf),
        }
    }

    /// Keeps a buffer for the next frames sent (up to a burst of them; beyond that it
    /// goes back to its pool).
    #[inline]
    fn keep_spare(&mut self, buf: P::Buf) {
        if self.spare.len() < MAX_BURST {
            self.spare.push(buf);
        }
    }

    /// Completes a frame whose RPC packet (`len` bytes at `RPC_OFFSET`) is written and
    /// queues it for the next burst (an ARP request instead while the peer's address
    /// is being resolved).
    fn emit_frame(&mut self, now: u64, mut buf: P::Buf, peer: Peer, len: usize) {
        let flen = match self.net.emit(now, peer, buf.data_mut(), len) {
            Ok(flen) => flen,
            Err(Some(arp_len)) => arp_len,
            Err(None) => {
                self.keep_spare(buf);
                return;
            }
        };
        if buf.set_len(flen).is_ok() {
            self.queue_frame(buf);
        }
    }

    /// Queues a frame for transmission, sending a full burst first.
    fn queue_frame(&mut self, buf: P::Buf) {
        if self.tx.len() >= MAX_BURST {
            self.flush();
        }
        if self.tx.len() < MAX_BURST {
            self.tx.push(buf);
        } else {
            self.tx_dropped += 1;
        }
    }

    /// A buffer to send from: a spare received one, else a fresh one from the port.
    #[inline]
    fn tx_buf(&mut self) -> Option<P::Buf> {
        self.spare.pop().or_else(|| self.port.alloc())
    }

    fn drain_events(&mut self, now: u64) {
        let t = Instant::from_nanos(now);
        let Core {
            endpoint,
            app,
            scratch,
            resp,
            ..
        } = self;
        while let Some(ev) = endpoint.poll_event() {
            match ev {
                Event::Request { req, peer, payload } => {
                    let n = payload.len().min(scratch.len());
                    scratch[..n].copy_from_slice(&payload[..n]);
                    match app.on_request(now, req, peer, &mut scratch[..n], resp) {
                        Answer::Respond(len) => {
                            let len = len.min(resp.len());
                            let _ = endpoint.respond(t, req, &resp[..len]);
                        }
                        Answer::Error(code) => {
                            let _ = endpoint.respond_error(t, req, code);
                        }
                        Answer::Silent | Answer::Deferred => {}
                    }
                }
                Event::Response {
                    session,
                    rpc,
                    result,
                } => match result {
                    Ok(payload) => {
                        let n = payload.len().min(scratch.len());
                        scratch[..n].copy_from_slice(&payload[..n]);
                        app.on_response(now, session, rpc, Ok(&mut scratch[..n]));
                    }
                    Err(e) => app.on_response(now, session, rpc, Err(e)),
                },
                Event::Connected { session } => {
                    app.on_session(now, SessionEvent::Connected(session))
                }
                Event::ConnectFailed { session } => {
                    app.on_session(now, SessionEvent::ConnectFailed(session))
                }
                Event::SessionClosed { session, reason } => {
                    app.on_session(now, SessionEvent::Closed(session, reason))
                }
            }
        }
    }

    fn transmit(&mut self, now: u64) -> usize {
        let t = Instant::from_nanos(now);
        while self.tx.len() < MAX_BURST && self.endpoint.has_transmit() {
            let Some(mut buf) = self.tx_buf() else {
                break;
            };
            let cap = buf.capacity();
            if buf.set_len(cap).is_err() {
                break;
            }
            let Some(rpc) = buf.data_mut().get_mut(RPC_OFFSET..) else {
                break;
            };
            let Some((peer, len)) = self.endpoint.poll_transmit(t, rpc) else {
                self.keep_spare(buf);
                break;
            };
            self.emit_frame(now, buf, peer, len);
        }
        self.flush()
    }

    /// Sends the queued frames as one burst; returns how many the port took.
    fn flush(&mut self) -> usize {
        if self.tx.is_empty() {
            return 0;
        }
        let queued = self.tx.len();
        let sent = self.port.tx_burst(&mut self.tx);
        // What the port refused gets one more pass; if it is still full after that, the
        // frames are dropped (the transport recovers reliable RPCs).
        if sent == 0 && queued == MAX_BURST {
            self.tx_dropped += self.tx.len() as u64;
            self.tx.clear();
        }
        sent
    }

    /// Publishes the current counters for readers on other threads.
    pub fn publish(&mut self, now: u64) {
        self.published_at = now;
        let snap = CoreSnapshot {
            core: self.index,
            at_ns: now,
            port: self.port.stats(),
            net: self.net.counters,
            transport: self.endpoint.stats().clone(),
            app: self.app.stats(),
            passes: self.passes,
            busy_passes: self.busy_passes,
            tx_dropped: self.tx_dropped,
            idle_yields: self.idle_yields,
        };
        if let Ok(mut s) = self.shared.lock() {
            *s = snap;
        }
    }

    /// Polls until `stop` is set or the application is finished; returns the application
    /// and the final snapshot.
    pub fn run(mut self, stop: &std::sync::atomic::AtomicBool) -> (A, CoreSnapshot<A::Stats>) {
        use std::sync::atomic::Ordering;
        let mut empty = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let busy = self.busy_passes;
            if !self.poll_once() {
                break;
            }
            if self.idle == IdlePolicy::Yield {
                if self.busy_passes != busy {
                    empty = 0;
                } else if empty < IDLE_PASSES_BEFORE_YIELD {
                    empty += 1;
                } else {
                    self.idle_yields += 1;
                    std::thread::yield_now();
                }
            }
        }
        // Give queued frames (e.g. last responses, Close) a chance to leave.
        for _ in 0..64 {
            if self.transmit(self.clock.now()) == 0 && self.tx.is_empty() {
                break;
            }
        }
        self.publish(self.clock.now());
        let snap = self.shared.lock().map(|s| s.clone()).unwrap_or_default();
        (self.app, snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sim::{SimLink, SimLinkConfig};
    use crate::transport::{ClassTable, TransportClass, TransportConfig};
    use std::sync::atomic::AtomicBool;

    struct Idle;
    impl App for Idle {
        type Stats = ();
        fn stats(&self) {}
    }

    /// Runs a core with nothing to do for a while under `idle`; returns its snapshot.
    fn idle_core(idle: IdlePolicy) -> CoreSnapshot<()> {
        let (port, _peer) = SimLink::pair(SimLinkConfig::default(), 1).unwrap();
        let endpoint = Endpoint::new(TransportConfig::default(), ClassTable::new()).unwrap();
        let net = NetStack::new(
            crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            7000,
            &[],
        );
        let core = Core::new(0, port, endpoint, net, Idle, Clock::new()).with_idle(idle);
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let t = std::thread::spawn(move || core.run(&st));
        std::thread::sleep(std::time::Duration::from_millis(30));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap().1
    }

    const SERVICE: u16 = 9;
    /// Methods of the test service, one per class, and one the handler refuses.
    const METHODS: [(u16, TransportClass); 3] = [
        (1, TransportClass::Unreliable),
        (2, TransportClass::Reliable),
        (3, TransportClass::ReliableOrdered),
    ];
    const REFUSED: u16 = 4;
    const REFUSAL_CODE: u16 = 77;

    /// Answers every request with its bytes reversed; refuses method `REFUSED`.
    #[derive(Default)]
    struct Reverse {
        served: u64,
    }
    impl App for Reverse {
        type Stats = ();
        fn stats(&self) {}
        fn on_request(
            &mut self,
            _now: u64,
            req: RequestRef,
            _peer: Peer,
            payload: &mut [u8],
            resp: &mut [u8],
        ) -> Answer {
            self.served += 1;
            if req.method == REFUSED {
                return Answer::Error(REFUSAL_CODE);
            }
            let n = payload.len();
            for (o, i) in resp[..n].iter_mut().zip(payload.iter().rev()) {
                *o = *i;
            }
            Answer::Respond(n)
        }
    }

    /// Calls every method with payloads of the given sizes, one at a time per method,
    /// and checks each answer.
    struct Caller {
        server: Peer,
        session: Option<SessionId>,
        connected: bool,
        sizes: Vec<usize>,
        next: usize,
        outstanding: std::collections::HashMap<RpcId, (u16, Vec<u8>)>,
        answered: u64,
        refused: u64,
        wrong: u64,
    }
    impl Caller {
        fn payload(i: usize, size: usize) -> Vec<u8> {
            (0..size).map(|k| (i * 31 + k * 7) as u8).collect()
        }
    }
    impl App for Caller {
        type Stats = ();
        fn stats(&self) {}
        fn on_session(&mut self, _now: u64, ev: SessionEvent) {
            self.connected = matches!(ev, SessionEvent::Connected(_));
        }
        fn on_response(
            &mut self,
            _now: u64,
            _session: SessionId,
            rpc: RpcId,
            result: Result<&mut [u8], RpcError>,
        ) {
            let Some((method, sent)) = self.outstanding.remove(&rpc) else {
                self.wrong += 1;
                return;
            };
            match result {
                Ok(b) if method != REFUSED && b.iter().eq(sent.iter().rev()) => self.answered += 1,
                Err(RpcError::Remote { code }) if method == REFUSED && code == REFUSAL_CODE => {
                    self.refused += 1
                }
                _ => self.wrong += 1,
            }
        }
        fn poll(&mut self, now: u64, ep: &mut Endpoint<Peer>) -> bool {
            let t = Instant::from_nanos(now);
            let Some(s) = self.session else {
                self.session = ep.connect(t, self.server).ok();
                return true;
            };
            if !self.connected || !self.outstanding.is_empty() {
                return true;
            }
            let Some(&size) = self.sizes.get(self.next / 4) else {
                return false;
            };
            // One call of each method per size, issued together.
            for (k, (method, class)) in METHODS
                .iter()
                .copied()
                .chain([(REFUSED, TransportClass::Reliable)])
                .enumerate()
            {
                let p = Self::payload(self.next + k, size);
                if let Ok(rpc) = ep.call(t, s, SERVICE, method, class, &p) {
                    self.outstanding.insert(rpc, (method, p));
                }
            }
            self.next += 4;
            true
        }
    }

    #[test]
    fn one_packet_rpcs_are_served_and_answered_in_place_and_the_rest_through_the_queue() {
        let (cport, sport) = SimLink::pair(SimLinkConfig::default(), 3).unwrap();
        let cip = std::net::Ipv4Addr::new(10, 9, 0, 1);
        let sip = std::net::Ipv4Addr::new(10, 9, 0, 2);
        let cnet = NetStack::new(cport.mac(), cip, 7001, &[(sip, sport.mac())]);
        let snet = NetStack::new(sport.mac(), sip, 7000, &[(cip, cport.mac())]);
        let mut classes = ClassTable::new();
        for (m, c) in METHODS {
            classes.set(SERVICE, m, c);
        }
        classes.set(SERVICE, REFUSED, TransportClass::Reliable);
        let cfg = TransportConfig::default();
        let mtu = cfg.mtu_payload;
        let sizes = vec![0, 1, 64, mtu, mtu + 1, 5000, 64, 300];
        let big = sizes.iter().filter(|&&s| s > mtu).count() as u64;
        let caller = Caller {
            server: Peer {
                ip: sip,
                port: 7000,
            },
            session: None,
            connected: false,
            sizes: sizes.clone(),
            next: 0,
            outstanding: Default::default(),
            answered: 0,
            refused: 0,
            wrong: 0,
        };
        let cep = Endpoint::new(cfg.clone(), ClassTable::new()).unwrap();
        let sep = Endpoint::new(cfg, classes).unwrap();
        let mut client = Core::new(0, cport, cep, cnet, caller, Clock::new());
        let mut server = Core::new(1, sport, sep, snet, Reverse::default(), Clock::new());
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while client.poll_once() {
            server.poll_once();
            assert!(
                std::time::Instant::now() < limit,
                "the calls did not finish"
            );
        }
        let n = sizes.len() as u64;
        let app = client.app();
        assert_eq!((app.answered, app.refused, app.wrong), (3 * n, n, 0));
        assert_eq!(server.app().served, 4 * n);
        let (c, s) = (client.endpoint().stats(), server.endpoint().stats());
        // Requests of one packet reach the handler in the received buffer; the big ones
        // (several fragments) through the queue.
        assert_eq!(s.requests_in_place, 4 * (n - big), "{s:?}");
        assert_eq!(s.requests_delivered, 4 * n);
        // One-packet answers are written in place (errors go through the queue) and
        // delivered in place, refusals included (those of big requests too).
        assert_eq!(s.sent_in_place, 3 * (n - big), "{s:?}");
        assert_eq!(c.answers_in_place, 4 * (n - big) + big, "{c:?}");
        assert_eq!(c.rpcs_completed, 3 * n);
    }

    #[test]
    fn an_idle_core_yields_only_when_told_to() {
        let spin = idle_core(IdlePolicy::Spin);
        assert!(spin.passes > IDLE_PASSES_BEFORE_YIELD as u64, "{spin:?}");
        assert_eq!(spin.idle_yields, 0);
        let y = idle_core(IdlePolicy::Yield);
        // The first run of empty passes does not yield.
        assert!(y.idle_yields > 0, "{y:?}");
        assert!(
            y.idle_yields <= y.passes - IDLE_PASSES_BEFORE_YIELD as u64,
            "{y:?}"
        );
    }
}
