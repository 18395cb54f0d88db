//! Deterministic simulation of a client and a server [`Endpoint`] over a
//! [`SimLink`](crate::port::sim::SimLink) with a virtual clock: the driver behind
//! `rpcbench sim-transport` and the transport tests.
//!
//! This module owns the simulated application (a client issuing `rpcs` calls as fast as
//! its window allows; a single-threaded server handler that takes `server_ns_per_rpc`
//! of virtual time per request, in delivery order, and answers each with a transform of
//! it — the handler is the bottleneck that makes goodput meaningful: with a free
//! handler and no link rate, goodput would only be window / RTT)
//! and the bookkeeping that checks the transport's promises: executions per call,
//! handler order for ordered methods, response integrity, no hang. It must not reach
//! into the endpoints' internals: it uses only the public sans-IO API, like the engine.

use std::collections::{HashMap, VecDeque};

use super::{
    ClassTable, Endpoint, Event, Instant, Received, RequestRef, RpcError, RpcId, SessionId,
    TransportClass, TransportConfig, TransportStats,
};
use crate::port::sim::{
    BadImpairment, ImpairStats, Impairment, SimClock, SimLink, SimLinkConfig, SimPort,
};
use crate::port::{PacketBuf, PoolBuf, Port, MAX_BURST};
use crate::wire::rpc::HEADER_LEN;

/// Peer address of the client as the server sees it.
const CLIENT: u8 = 1;
/// Peer address of the server as the client sees it.
const SERVER: u8 = 2;
const SERVICE: u16 = 1;
const METHOD: u16 = 1;

/// One simulation run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SimConfig {
    /// Calls to make.
    pub rpcs: u64,
    pub class: TransportClass,
    /// Impairment of each direction of the link.
    pub impairment: Impairment,
    /// Request and response payload size (at least 8: the call index travels in it).
    pub msg_size: usize,
    pub seed: u64,
    pub transport: TransportConfig,
    /// Handler time per request (virtual ns); 0 answers instantly.
    pub server_ns_per_rpc: u64,
    /// Simulated time after which the run is declared hung.
    pub max_sim_ns: u64,
    /// Drive the endpoints through the in-place API (`call_in_place`, `receive`,
    /// `respond_in_place`) instead of `call` / `handle_packet` / `respond`.
    pub in_place: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            rpcs: 1000,
            class: TransportClass::Reliable,
            impairment: Impairment::delay(10_000),
            msg_size: 64,
            seed: 1,
            transport: TransportConfig::default(),
            server_ns_per_rpc: 1_000,
            max_sim_ns: 600_000_000_000,
            in_place: false,
        }
    }
}

/// What a run did. `executed` counts handler invocations; for reliable classes it must
/// equal the number of distinct calls executed, i.e. `duplicate_executions == 0`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimReport {
    pub class: TransportClass,
    pub msg_size: usize,
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    /// Failures by kind.
    pub timeouts: u64,
    pub other_failures: u64,
    pub executed: u64,
    pub duplicate_executions: u64,
    /// Calls whose handler ran although the client was told they failed (allowed:
    /// a failure means "outcome unknown"); reported for information.
    pub executed_but_failed: u64,
    /// Completed calls whose handler never ran (must be 0).
    pub completed_not_executed: u64,
    /// Ordered class: handler invocations for a call issued before an already executed one.
    pub out_of_order_deliveries: u64,
    /// Responses whose bytes were not the server's answer to that call (must be 0).
    pub corrupted_responses: u64,
    /// Calls answered more than once (must be 0).
    pub duplicate_answers: u64,
    pub retransmissions: u64,
    pub fast_retransmits: u64,
    pub sim_seconds: f64,
    pub goodput_rps: f64,
    /// Request + response payload bytes of completed calls per simulated second.
    pub goodput_bytes_per_sec: f64,
    /// The run hit `max_sim_ns` or stalled with work left (must be false).
    pub hung: bool,
    pub client_packets: u64,
    pub server_packets: u64,
    pub link_client_to_server: ImpairStats,
    pub link_server_to_client: ImpairStats,
    pub client: TransportStats,
    pub server: TransportStats,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Impairment(#[from] BadImpairment),
    #[error(transparent)]
    Transport(#[from] super::ConfigError),
    #[error("msg_size {0} is below the 8 bytes the call index needs")]
    MessageTooSmall(usize),
    #[error("rpcs must be at least 1")]
    NoRpcs,
}

/// The server's answer to a request: every byte XOR 0x5a, so it is checkable.
fn answer_of(req: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(req.iter().map(|b| b ^ 0x5a));
}

/// The request of call `index`.
fn request_of(index: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&index.to_le_bytes());
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
}

fn index_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Moves every packet an endpoint has to send onto its port; returns how many.
fn flush(ep: &mut Endpoint<u8>, port: &mut SimPort, now: Instant, batch: &mut Vec<PoolBuf>) -> u64 {
    let mut n = 0;
    loop {
        let Some(mut buf) = port.alloc() else {
            break;
        };
        let cap = buf.capacity();
        if buf.set_len(cap).is_err() {
            break;
        }
        let Some((_, len)) = ep.poll_transmit(now, buf.data_mut()) else {
            break;
        };
        if buf.set_len(len).is_err() {
            continue;
        }
        batch.push(buf);
        n += 1;
        if batch.len() == MAX_BURST {
            port.tx_burst(batch);
            // Frames the link refused are dropped (counted by the port).
            batch.clear();
        }
    }
    if !batch.is_empty() {
        port.tx_burst(batch);
        batch.clear();
    }
    n
}

/// A request or an answer the in-place API handed out while receiving.
enum Inline {
    Request(RequestRef, Vec<u8>),
    Response(SessionId, RpcId, Result<Vec<u8>, RpcError>),
}

/// Feeds every due frame of a port to an endpoint; returns how many. With `inline`
/// (the in-place API), what `receive` hands out goes there, in order.
fn receive(
    ep: &mut Endpoint<u8>,
    port: &mut SimPort,
    from: u8,
    now: Instant,
    batch: &mut Vec<PoolBuf>,
    mut inline: Option<&mut Vec<Inline>>,
) -> u64 {
    let mut n = 0;
    loop {
        let got = port.rx_burst(batch, MAX_BURST);
        if got == 0 {
            return n;
        }
        for mut b in batch.drain(..) {
            n += 1;
            let Some(out) = inline.as_deref_mut() else {
                // Drops are counted in the endpoint's stats.
                let _ = ep.handle_packet(now, from, b.data());
                continue;
            };
            match ep.receive(now, from, b.data_mut()) {
                Ok(Received::Request { req, payload, .. }) => {
                    out.push(Inline::Request(req, payload.to_vec()))
                }
                Ok(Received::Response {
                    session,
                    rpc,
                    result,
                }) => out.push(Inline::Response(session, rpc, result.map(|p| p.to_vec()))),
                Ok(Received::Queued) | Err(_) => {}
            }
        }
    }
}

/// Writes `payload` after the header room of a fresh buffer of `port` and has `write`
/// add the header; queues the packet in `batch` when `write` says it goes now.
/// Returns `write`'s result, or `None` when the port has no buffer.
fn send_in_place<T>(
    port: &mut SimPort,
    batch: &mut Vec<PoolBuf>,
    payload: &[u8],
    write: impl FnOnce(&mut [u8], usize) -> (T, Option<usize>),
) -> Option<T> {
    let mut buf = port.alloc()?;
    let cap = buf.capacity();
    buf.set_len(cap).ok()?;
    let body = buf
        .data_mut()
        .get_mut(HEADER_LEN..HEADER_LEN + payload.len())?;
    body.copy_from_slice(payload);
    let (r, len) = write(buf.data_mut(), payload.len());
    if let Some(len) = len {
        if buf.set_len(len).is_ok() {
            batch.push(buf);
            if batch.len() == MAX_BURST {
                port.tx_burst(batch);
                batch.clear();
            }
        }
    }
    Some(r)
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimError> {
    if cfg.msg_size < 8 {
        return Err(SimError::MessageTooSmall(cfg.msg_size));
    }
    if cfg.rpcs == 0 {
        return Err(SimError::NoRpcs);
    }
    let clock = SimClock::virtual_clock();
    let link = SimLinkConfig {
        impairment: cfg.impairment,
        clock: clock.clone(),
        pool_buffers: 16_384,
        buf_size: crate::port::buf::DEFAULT_BUF_SIZE.max(cfg.transport.max_packet_len()),
        queue_limit: 16_384,
    };
    let (mut cport, mut sport) = SimLink::pair(link, cfg.seed)?;
    let mut ccfg = cfg.transport.clone();
    ccfg.tag_seed = Some(cfg.seed ^ 0xc11e);
    let mut scfg = cfg.transport.clone();
    scfg.tag_seed = Some(cfg.seed ^ 0x5e7e);
    let mut classes = ClassTable::new();
    classes.set(SERVICE, METHOD, cfg.class);
    let mut client: Endpoint<u8> = Endpoint::new(ccfg, ClassTable::new())?;
    let mut server: Endpoint<u8> = Endpoint::new(scfg, classes)?;

    let n = cfg.rpcs;
    let mut executed = vec![0u32; n as usize];
    let mut answered = vec![0u8; n as usize];
    let mut failed_calls = vec![false; n as usize];
    let mut inflight: HashMap<(SessionId, RpcId), u64> = HashMap::new();
    let mut last_ordered: Option<u64> = None;
    let mut rep = SimReport {
        class: cfg.class,
        msg_size: cfg.msg_size,
        sent: 0,
        completed: 0,
        failed: 0,
        timeouts: 0,
        other_failures: 0,
        executed: 0,
        duplicate_executions: 0,
        executed_but_failed: 0,
        completed_not_executed: 0,
        out_of_order_deliveries: 0,
        corrupted_responses: 0,
        duplicate_answers: 0,
        retransmissions: 0,
        fast_retransmits: 0,
        sim_seconds: 0.0,
        goodput_rps: 0.0,
        goodput_bytes_per_sec: 0.0,
        hung: false,
        client_packets: 0,
        server_packets: 0,
        link_client_to_server: ImpairStats::default(),
        link_server_to_client: ImpairStats::default(),
        client: TransportStats::default(),
        server: TransportStats::default(),
    };

    let mut session = Some(
        client
            .connect(Instant::ZERO, SERVER)
            .map_err(|_| SimError::NoRpcs)?,
    );
    let mut connected = false;
    let mut batch: Vec<PoolBuf> = Vec::with_capacity(MAX_BURST);
    let mut req_buf = Vec::with_capacity(cfg.msg_size);
    let mut resp_buf = Vec::with_capacity(cfg.msg_size);
    let mut app_queue: VecDeque<(super::RequestRef, Vec<u8>)> = VecDeque::new();
    let mut running: Option<(super::RequestRef, Vec<u8>, u64)> = None;
    let mut expect = Vec::with_capacity(cfg.msg_size);
    let mut inline: Vec<Inline> = Vec::new();

    loop {
        let now = Instant::from_nanos(clock.now_ns());
        let mut progress = 0u64;
        // Timers first, so what they queue (retransmissions, failures) is handled below
        // before virtual time moves on.
        client.handle_timeout(now);
        server.handle_timeout(now);

        // Client application: issue calls while the window has credits.
        if let (true, Some(sid)) = (connected, session) {
            while rep.sent < n && client.credits(sid) > 0 {
                request_of(rep.sent, cfg.msg_size, &mut req_buf);
                // In place while the message fits one packet's buffer.
                let called = if cfg.in_place && req_buf.len() <= cfg.transport.mtu_payload {
                    let r =
                        send_in_place(&mut cport, &mut batch, &req_buf, |out, len| {
                            match client
                                .call_in_place(now, sid, SERVICE, METHOD, cfg.class, out, len)
                            {
                                Ok((rpc, first)) => (Ok(rpc), first.map(|f| f.1)),
                                Err(e) => (Err(e), None),
                            }
                        });
                    let Some(r) = r else { break };
                    if r.is_ok() {
                        rep.client_packets += 1;
                    }
                    r
                } else {
                    client.call(now, sid, SERVICE, METHOD, cfg.class, &req_buf)
                };
                match called {
                    Ok(rpc) => {
                        inflight.insert((sid, rpc), rep.sent);
                        rep.sent += 1;
                        progress += 1;
                    }
                    Err(_) => break,
                }
            }
        }

        let c = flush(&mut client, &mut cport, now, &mut batch);
        let s = flush(&mut server, &mut sport, now, &mut batch);
        rep.client_packets += c;
        rep.server_packets += s;
        progress += c + s;
        if !batch.is_empty() {
            // In-place calls not sent yet (the port takes bursts).
            cport.tx_burst(&mut batch);
            batch.clear();
        }
        let use_inline = cfg.in_place.then_some(&mut inline);
        progress += receive(&mut server, &mut sport, CLIENT, now, &mut batch, use_inline);
        // Requests handed out in place come before the events queued after them.
        for it in inline.drain(..) {
            if let Inline::Request(req, payload) = it {
                app_queue.push_back((req, payload));
            }
        }
        let use_inline = cfg.in_place.then_some(&mut inline);
        progress += receive(&mut client, &mut cport, SERVER, now, &mut batch, use_inline);

        // Server application: one handler, requests in delivery order.
        while let Some(ev) = server.poll_event() {
            progress += 1;
            if let Event::Request { req, payload, .. } = ev {
                app_queue.push_back((req, payload.to_vec()));
            }
        }
        loop {
            if let Some((req, answer, done_at)) = &running {
                if now.as_nanos() < *done_at {
                    break;
                }
                // A refusal (no room) surfaces to the client as a timeout.
                if cfg.in_place && answer.len() <= cfg.transport.mtu_payload {
                    let sent = send_in_place(&mut sport, &mut batch, answer, |out, len| {
                        let first = server.respond_in_place(now, *req, out, len);
                        ((), first.ok().flatten().map(|f| f.1))
                    });
                    if sent.is_some() {
                        rep.server_packets += 1;
                    }
                } else {
                    let _ = server.respond(now, *req, answer);
                }
                running = None;
                progress += 1;
            }
            let Some((req, payload)) = app_queue.pop_front() else {
                break;
            };
            rep.executed += 1;
            if let Some(i) = index_of(&payload).filter(|&i| i < n) {
                executed[i as usize] += 1;
                if cfg.class == TransportClass::ReliableOrdered {
                    if last_ordered.is_some_and(|l| i < l) {
                        rep.out_of_order_deliveries += 1;
                    }
                    last_ordered = Some(last_ordered.map_or(i, |l| l.max(i)));
                }
            }
            answer_of(&payload, &mut resp_buf);
            running = Some((
                req,
                resp_buf.clone(),
                now.as_nanos() + cfg.server_ns_per_rpc,
            ));
            progress += 1;
        }

        if !batch.is_empty() {
            // In-place answers not sent yet.
            sport.tx_burst(&mut batch);
            batch.clear();
        }

        // Client application: collect answers (those handed out in place first).
        let mut answers = std::mem::take(&mut inline);
        while let Some(ev) = client.poll_event() {
            progress += 1;
            match ev {
                Event::Connected { .. } => connected = true,
                Event::ConnectFailed { .. } | Event::SessionClosed { .. } => {
                    connected = false;
                    session = client.connect(now, SERVER).ok();
                }
                Event::Response {
                    session: sid,
                    rpc,
                    result,
                } => answers.push(Inline::Response(sid, rpc, result.map(|p| p.to_vec()))),
                Event::Request { .. } => {}
            }
        }
        for it in answers.drain(..) {
            let Inline::Response(sid, rpc, result) = it else {
                continue;
            };
            progress += 1;
            let Some(i) = inflight.remove(&(sid, rpc)) else {
                rep.duplicate_answers += 1;
                continue;
            };
            answered[i as usize] += 1;
            match result {
                Ok(bytes) => {
                    request_of(i, cfg.msg_size, &mut req_buf);
                    answer_of(&req_buf, &mut expect);
                    if bytes != expect {
                        rep.corrupted_responses += 1;
                    }
                    rep.completed += 1;
                }
                Err(e) => {
                    failed_calls[i as usize] = true;
                    if matches!(e, RpcError::Timeout { .. }) {
                        rep.timeouts += 1;
                    } else {
                        rep.other_failures += 1;
                    }
                    rep.failed += 1;
                }
            }
        }
        inline = answers;

        if rep.completed + rep.failed >= n && rep.sent >= n {
            break;
        }
        if now.as_nanos() > cfg.max_sim_ns {
            rep.hung = true;
            break;
        }
        if progress == 0 {
            // Nothing to do now: jump to the next event in virtual time.
            let next = [
                cport.next_rx_due(),
                sport.next_rx_due(),
                client.poll_timeout().map(|t| t.as_nanos()),
                server.poll_timeout().map(|t| t.as_nanos()),
                running.as_ref().map(|r| r.2),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t > now.as_nanos() => clock.advance_to(t),
                Some(_) => clock.advance(1),
                None => {
                    rep.hung = true;
                    break;
                }
            }
        }
    }

    for i in 0..n as usize {
        if executed[i] > 1 {
            rep.duplicate_executions += u64::from(executed[i] - 1);
        }
        if executed[i] > 0 && failed_calls[i] {
            rep.executed_but_failed += 1;
        }
        if executed[i] == 0 && answered[i] > 0 && !failed_calls[i] {
            rep.completed_not_executed += 1;
        }
        if answered[i] > 1 {
            rep.duplicate_answers += u64::from(answered[i] - 1);
        }
    }
    let secs = clock.now_ns() as f64 / 1e9;
    rep.sim_seconds = secs;
    if secs > 0.0 {
        rep.goodput_rps = rep.completed as f64 / secs;
        rep.goodput_bytes_per_sec = (rep.completed * 2 * cfg.msg_size as u64) as f64 / secs;
    }
    rep.client = client.stats().clone();
    rep.server = server.stats().clone();
    rep.retransmissions = rep.client.retransmissions + rep.server.retransmissions;
    rep.fast_retransmits = rep.client.fast_retransmits;
    rep.link_client_to_server = cport.tx_impair_stats();
    rep.link_server_to_client = sport.tx_impair_stats();
    Ok(rep)
}

/// A client and a server endpoint wired back to back (no link, no loss): packets move
/// when [`pump`](Self::pump) is called. For tests, the fuzz harness and benchmarks.
pub struct LoopbackPair {
    pub client: Endpoint<u8>,
    pub server: Endpoint<u8>,
    pub session: SessionId,
    pub now: Instant,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LoopbackPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackPair")
            .field("session", &self.session)
            .field("now", &self.now)
            .finish()
    }
}

/// The loopback pair's peer address of the client (as the server sees it).
pub const LOOPBACK_CLIENT: u8 = CLIENT;
/// The loopback pair's peer address of the server (as the client sees it).
pub const LOOPBACK_SERVER: u8 = SERVER;

impl LoopbackPair {
    /// Two endpoints with `cfg` (tags seeded from `seed`), the server's methods in
    /// `classes`, already connected (the handshake is pumped through).
    pub fn connected(
        cfg: &TransportConfig,
        classes: ClassTable,
        seed: u64,
    ) -> Result<Self, super::ConfigError> {
        let mut ccfg = cfg.clone();
        ccfg.tag_seed = Some(seed ^ 0xc11e);
        let mut scfg = cfg.clone();
        scfg.tag_seed = Some(seed ^ 0x5e7e);
        let mut client = Endpoint::new(ccfg, ClassTable::new())?;
        let server = Endpoint::new(scfg, classes)?;
        let session = client
            .connect(Instant::ZERO, SERVER)
            .map_err(|e| super::ConfigError(e.to_string()))?;
        let mut p = LoopbackPair {
            client,
            server,
            session,
            now: Instant::ZERO,
            buf: vec![0; cfg.max_packet_len()],
        };
        p.pump();
        while p.client.poll_event().is_some() {}
        if !p.client.is_open(session) {
            return Err(super::ConfigError("loopback handshake failed".into()));
        }
        Ok(p)
    }

    /// Moves packets both ways until neither endpoint has anything to send; returns
    /// how many moved. Events stay queued.
    pub fn pump(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut moved = false;
            while let Some((_, len)) = self.client.poll_transmit(self.now, &mut self.buf) {
                let _ =
                    self.server
                        .handle_packet(self.now, CLIENT, self.buf.get(..len).unwrap_or(&[]));
                n += 1;
                moved = true;
            }
            while let Some((_, len)) = self.server.poll_transmit(self.now, &mut self.buf) {
                let _ =
                    self.client
                        .handle_packet(self.now, SERVER, self.buf.get(..len).unwrap_or(&[]));
                n += 1;
                moved = true;
            }
            if !moved {
                return n;
            }
        }
    }

    /// The server's session id (what the client's packets carry).
    pub fn server_session(&self) -> Option<SessionId> {
        self.client.remote_of(self.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_free_reliable_run_is_exact() {
        let cfg = SimConfig {
            rpcs: 200,
            ..SimConfig::default()
        };
        let r = run(&cfg).unwrap();
        assert!(!r.hung);
        assert_eq!(r.completed, 200);
        assert_eq!(r.executed, 200);
        assert_eq!(r.retransmissions, 0);
        assert_eq!(r.corrupted_responses, 0);
    }
}
