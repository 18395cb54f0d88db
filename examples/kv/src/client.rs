//! The KV client application on a polling core: opens a session to the server and keeps
//! up to `concurrency` RPCs outstanding until `count` have an outcome, timing each one
//! in an HdrHistogram.
//!
//! Values are a pattern derived from the key, so a GET can check what it read: `found`
//! with the wrong bytes is a `mismatch`. Key i of `keys` is `key-i`.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use dataplane::engine::{anf_error_code, App, Peer, SessionEvent};
use dataplane::transport::{CallError, Endpoint, Instant, RpcError, RpcId, SessionId};
use hdrhistogram::Histogram;

use crate::kv;

/// Which RPCs the client issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Set,
    /// Alternately SET and GET.
    Mixed,
}

/// What the client is asked to do.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub server: SocketAddrV4,
    pub op: Op,
    pub count: u64,
    pub user: String,
    pub value_size: usize,
    pub keys: u64,
    pub concurrency: usize,
}

/// The client's counters and latency histogram.
#[derive(Clone, serde::Serialize)]
pub struct ClientStats {
    pub issued: u64,
    pub completed: u64,
    /// Every RPC that did not complete (the sum of the next four).
    pub errors: u64,
    pub denied: u64,
    pub timeouts: u64,
    pub remote_errors: u64,
    /// Calls the transport refused (`CallError`) or that failed otherwise.
    pub other_errors: u64,
    /// Of `other_errors`: RPCs failed because their session closed.
    pub session_closed: u64,
    pub gets_found: u64,
    pub gets_not_found: u64,
    /// GETs that found a value other than the one every SET of that key writes.
    pub mismatches: u64,
    pub connect_failed: bool,
    /// Engine time of the first call and of the last outcome, ns.
    pub first_call_ns: u64,
    pub last_outcome_ns: u64,
    #[serde(skip)]
    pub latency_ns: Histogram<u64>,
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            issued: 0,
            completed: 0,
            errors: 0,
            denied: 0,
            timeouts: 0,
            remote_errors: 0,
            other_errors: 0,
            session_closed: 0,
            gets_found: 0,
            gets_not_found: 0,
            mismatches: 0,
            connect_failed: false,
            first_call_ns: 0,
            last_outcome_ns: 0,
            latency_ns: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .expect("constant histogram bounds (1 ns .. 100 s, 3 digits) are valid"),
        }
    }
}

impl std::fmt::Debug for ClientStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything but the histogram's buckets.
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("latency_samples".into(), self.latency_ns.len().into());
        }
        write!(f, "{v}")
    }
}

/// The value every SET of key `key` writes.
pub fn value_of(key: u64, size: usize) -> Vec<u8> {
    let mut x = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    started: u64,
    is_get: bool,
    key: u64,
}

/// One core's KV client.
pub struct KvClient {
    spec: ClientSpec,
    session: Option<SessionId>,
    connecting: bool,
    outstanding: HashMap<u32, Outstanding>,
    buf: Vec<u8>,
    names: Vec<String>,
    values: Vec<Vec<u8>>,
    stats: ClientStats,
    denied_code: u16,
}

impl KvClient {
    pub fn new(spec: ClientSpec) -> Self {
        let keys = spec.keys.max(1);
        // Names and values are made once; the call loop only encodes.
        let names = (0..keys).map(|k| format!("key-{k}")).collect();
        let values = (0..keys).map(|k| value_of(k, spec.value_size)).collect();
        KvClient {
            buf: vec![0; spec.value_size + spec.user.len() + 256],
            spec: ClientSpec { keys, ..spec },
            session: None,
            connecting: false,
            outstanding: HashMap::new(),
            names,
            values,
            stats: ClientStats::default(),
            denied_code: anf_error_code("denied"),
        }
    }

    fn done(&self) -> bool {
        self.stats.connect_failed
            || (self.stats.completed + self.stats.errors >= self.spec.count
                && self.outstanding.is_empty())
    }

    fn issue(&mut self, now: u64, ep: &mut Endpoint<Peer>, session: SessionId) -> bool {
        let i = self.stats.issued;
        let key = i % self.spec.keys;
        let is_get = match self.spec.op {
            Op::Get => true,
            Op::Set => false,
            Op::Mixed => i % 2 == 1,
        };
        let name = &self.names[key as usize];
        let (method, len) = if is_get {
            let req = kv::GetRequest {
                name: name.clone(),
                user: self.spec.user.clone(),
            };
            (kv::Method::Get, kv::client::encode_get(&req, &mut self.buf))
        } else {
            let req = kv::SetRequest {
                name: name.clone(),
                user: self.spec.user.clone(),
                value: self.values[key as usize].clone(),
            };
            (kv::Method::Set, kv::client::encode_set(&req, &mut self.buf))
        };
        let Ok(len) = len else {
            self.stats.issued += 1;
            self.stats.errors += 1;
            self.stats.other_errors += 1;
            return true;
        };
        let Some(class) = kv::transport(method.id()) else {
            return false;
        };
        match ep.call(
            Instant::from_nanos(now),
            session,
            kv::SERVICE_ID,
            method.id(),
            class,
            &self.buf[..len],
        ) {
            Ok(rpc) => {
                if self.stats.issued == 0 {
                    self.stats.first_call_ns = now;
                }
                self.stats.issued += 1;
                self.outstanding.insert(
                    rpc.0,
                    Outstanding {
                        started: now,
                        is_get,
                        key,
                    },
                );
                true
            }
            Err(CallError::WindowFull) => false,
            Err(_) => {
                self.stats.issued += 1;
                self.stats.errors += 1;
                self.stats.other_errors += 1;
                true
            }
        }
    }
}

impl App for KvClient {
    type Stats = ClientStats;

    fn poll(&mut self, now: u64, ep: &mut Endpoint<Peer>) -> bool {
        if self.done() {
            return false;
        }
        let Some(session) = self.session else {
            if !self.connecting {
                let server = Peer {
                    ip: *self.spec.server.ip(),
                    port: self.spec.server.port(),
                };
                match ep.connect(Instant::from_nanos(now), server) {
                    Ok(_) => self.connecting = true,
                    Err(_) => self.stats.connect_failed = true,
                }
            }
            return true;
        };
        while self.stats.issued < self.spec.count && self.outstanding.len() < self.spec.concurrency
        {
            if !self.issue(now, ep, session) {
                break;
            }
        }
        true
    }

    fn on_session(&mut self, _now: u64, event: SessionEvent) {
        match event {
            SessionEvent::Connected(s) => {
                self.session = Some(s);
                self.connecting = false;
            }
            SessionEvent::ConnectFailed(_) => self.stats.connect_failed = true,
            SessionEvent::Closed(s, _) => {
                if self.session == Some(s) {
                    self.session = None;
                }
            }
        }
    }

    fn on_response(
        &mut self,
        now: u64,
        _session: SessionId,
        rpc: RpcId,
        result: Result<&mut [u8], RpcError>,
    ) {
        let Some(o) = self.outstanding.remove(&rpc.0) else {
            return;
        };
        self.stats.last_outcome_ns = now;
        match result {
            Ok(payload) => {
                self.stats.completed += 1;
                let _ = self
                    .stats
                    .latency_ns
                    .record(now.saturating_sub(o.started).max(1));
                if o.is_get {
                    match kv::GetResponseView::new_checked(payload) {
                        Ok(v) if v.found() => {
                            self.stats.gets_found += 1;
                            if v.value() != self.values[o.key as usize].as_slice() {
                                self.stats.mismatches += 1;
                            }
                        }
                        Ok(_) => self.stats.gets_not_found += 1,
                        Err(_) => self.stats.mismatches += 1,
                    }
                }
            }
            Err(e) => {
                self.stats.errors += 1;
                match e {
                    RpcError::Remote { code } if code == self.denied_code => self.stats.denied += 1,
                    RpcError::Remote { .. } => self.stats.remote_errors += 1,
                    RpcError::Timeout { .. } => self.stats.timeouts += 1,
                    RpcError::SessionClosed => {
                        self.stats.other_errors += 1;
                        self.stats.session_closed += 1;
                    }
                    RpcError::OrderBroken => self.stats.other_errors += 1,
                }
            }
        }
    }

    fn stats(&self) -> ClientStats {
        self.stats.clone()
    }
}
