//! KV host mode: the pieces that put the KV service on a host dataplane with separate
//! application processes attached over shared memory.
//!
//! - [`KvChain`]: the generated server chain (firewall → session tracker) as the server
//!   bridge's [`ChainHook`], so the ANFs run in the dataplane, not in the application;
//! - [`serve_attached`]: the KV store served by an attached application (the same
//!   `kv::KvService` handler and `kv::dispatch` as in-process);
//! - [`run_attached_client`]: the same ops and read-back checks as `KvClient`, issued over
//!   an attached channel with a window of outstanding calls, reattaching when the
//!   dataplane restarts.
//!
//! Nothing here touches packets; the bridges and the channel live in `dataplane::app`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::anf::{AppError, RpcCtx, RpcHeader, Verdict};
use dataplane::app::{AppChannel, CallError, ChainHook, Role};
use dataplane::engine::anf_error_code;
use dataplane::transport::RequestRef;

use crate::client::{value_of, ClientSpec, ClientStats, Op};
use crate::kv;
use crate::server::{Handler, Store};

/// The KV server chain around an attached application.
pub struct KvChain {
    pipeline: kv::ServerPipeline,
    ctx: RpcCtx,
}

impl KvChain {
    pub fn new(pipeline: kv::ServerPipeline) -> Self {
        KvChain {
            pipeline,
            ctx: RpcCtx::default(),
        }
    }

    pub fn pipeline(&self) -> &kv::ServerPipeline {
        &self.pipeline
    }

    pub fn pipeline_mut(&mut self) -> &mut kv::ServerPipeline {
        &mut self.pipeline
    }

    fn reset(&mut self, now: u64, req: &RequestRef) {
        self.ctx.reset(RpcHeader::of_request(req), now);
    }
}

impl ChainHook for KvChain {
    fn request(&mut self, now: u64, req: &RequestRef, payload: &mut [u8]) -> Verdict {
        self.reset(now, req);
        self.pipeline.on_request(req.method, &mut self.ctx, payload)
    }

    fn response(&mut self, now: u64, req: &RequestRef, resp: &mut [u8]) -> Verdict {
        // Other requests ran the chain since this one's request side: a fresh context
        // with the same header (the KV elements keep no per-RPC state across sides).
        self.reset(now, req);
        self.pipeline.on_response(req.method, &mut self.ctx, resp)
    }
}

/// What an attached KV server application did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AttachedServerStats {
    pub gets: u64,
    pub sets: u64,
    pub app_errors: u64,
    pub reattaches: u64,
}

/// How long an application keeps trying to reattach after the dataplane went away.
pub const REATTACH_ATTEMPTS: u32 = 100;
pub const REATTACH_DELAY: Duration = Duration::from_millis(50);

/// Serves `store` through the dataplane at `socket` until `stop`; reattaches when the
/// dataplane restarts (bounded), `on_event` hears about attaches.
pub fn serve_attached(
    socket: &Path,
    store: &Store,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&str),
) -> Result<AttachedServerStats> {
    let role = Role::Server {
        services: vec![kv::SERVICE_ID],
    };
    let mut ch = AppChannel::attach(socket, role)
        .with_context(|| format!("attaching to {}", socket.display()))?;
    on_event(&format!("attached as channel {}", ch.channel_id()));
    let mut st = AttachedServerStats::default();
    loop {
        let mut handler = Handler::new(store);
        let r = ch.serve_until(stop, |method, req, resp| {
            if method == kv::Method::Set.id() {
                st.sets += 1;
            } else {
                st.gets += 1;
            }
            kv::dispatch(&mut handler, method, req, resp).map_err(|e| {
                st.app_errors += 1;
                AppError::new(1, e.to_string())
            })
        });
        match r {
            Ok(()) => return Ok(st),
            Err(CallError::Disconnected) => {
                on_event("dataplane gone, reattaching");
                ch.reattach(REATTACH_ATTEMPTS, REATTACH_DELAY)
                    .context("reattaching")?;
                st.reattaches += 1;
                on_event(&format!("reattached as channel {}", ch.channel_id()));
            }
            Err(e) => bail!("serving: {e}"),
        }
    }
}

struct Pending {
    started: Instant,
    is_get: bool,
    key: u64,
}

/// Issues `spec.count` KV RPCs through the dataplane at `socket` (keeping
/// `spec.concurrency` outstanding), verifying GETs like `KvClient`. Calls that fail
/// because the dataplane went away count as `other_errors`; the client then reattaches
/// and goes on. Gives up after `limit`, ends early when `stop` is set. Returns the stats
/// and the number of reattaches.
pub fn run_attached_client(
    socket: &Path,
    spec: &ClientSpec,
    limit: Duration,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&str),
) -> Result<(ClientStats, u64)> {
    let mut ch = AppChannel::attach(socket, Role::Client)
        .with_context(|| format!("attaching to {}", socket.display()))?;
    on_event(&format!("attached as channel {}", ch.channel_id()));
    let keys = spec.keys.max(1);
    let names: Vec<String> = (0..keys).map(|k| format!("key-{k}")).collect();
    let values: Vec<Vec<u8>> = (0..keys).map(|k| value_of(k, spec.value_size)).collect();
    let denied = anf_error_code("denied");
    let mut st = ClientStats::default();
    let mut reattaches = 0;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut req = vec![0u8; spec.value_size + spec.user.len() + 256];
    let mut resp = vec![0u8; ch.max_message()];
    let epoch = Instant::now();
    let deadline = epoch + limit;
    let window = spec.concurrency.clamp(1, ch.geometry().slot_count as usize);
    while st.completed + st.errors < spec.count {
        if Instant::now() > deadline {
            bail!(
                "gave up after {limit:?}: {} completed, {} errors of {}",
                st.completed,
                st.errors,
                spec.count
            );
        }
        while st.issued < spec.count && pending.len() < window {
            let i = st.issued;
            let key = i % keys;
            let is_get = match spec.op {
                Op::Get => true,
                Op::Set => false,
                Op::Mixed => i % 2 == 1,
            };
            let name = names.get(key as usize).cloned().unwrap_or_default();
            let (method, len) = if is_get {
                let r = kv::GetRequest {
                    name,
                    user: spec.user.clone(),
                };
                (kv::Method::Get, kv::client::encode_get(&r, &mut req))
            } else {
                let r = kv::SetRequest {
                    name,
                    user: spec.user.clone(),
                    value: values.get(key as usize).cloned().unwrap_or_default(),
                };
                (kv::Method::Set, kv::client::encode_set(&r, &mut req))
            };
            let len = len.context("encoding a request")?;
            let started = Instant::now();
            match ch.submit(kv::SERVICE_ID, method.id(), &req[..len]) {
                Ok(ticket) => {
                    if st.issued == 0 {
                        st.first_call_ns = started.duration_since(epoch).as_nanos() as u64;
                    }
                    st.issued += 1;
                    pending.insert(
                        ticket,
                        Pending {
                            started,
                            is_get,
                            key,
                        },
                    );
                }
                Err(CallError::Busy) => break,
                Err(CallError::Disconnected) => break,
                Err(e) => bail!("submitting: {e}"),
            }
        }
        match ch.poll_completion(&mut resp) {
            Ok(None) => {}
            Ok(Some(c)) => {
                let Some(p) = pending.remove(&c.ticket) else {
                    continue;
                };
                let now = Instant::now();
                st.last_outcome_ns = now.duration_since(epoch).as_nanos() as u64;
                match c.result {
                    Ok(n) => {
                        st.completed += 1;
                        let _ = st
                            .latency_ns
                            .record((now.duration_since(p.started).as_nanos() as u64).max(1));
                        if p.is_get {
                            match kv::GetResponseView::new_checked(&resp[..n]) {
                                Ok(v) if v.found() => {
                                    st.gets_found += 1;
                                    if Some(v.value())
                                        != values.get(p.key as usize).map(|v| v.as_slice())
                                    {
                                        st.mismatches += 1;
                                    }
                                }
                                Ok(_) => st.gets_not_found += 1,
                                Err(_) => st.mismatches += 1,
                            }
                        }
                    }
                    Err(e) => {
                        st.errors += 1;
                        match e {
                            CallError::Remote { code } if code == denied => st.denied += 1,
                            CallError::Remote { .. } => st.remote_errors += 1,
                            CallError::Timeout => st.timeouts += 1,
                            CallError::SessionClosed => {
                                st.other_errors += 1;
                                st.session_closed += 1;
                            }
                            _ => st.other_errors += 1,
                        }
                    }
                }
            }
            Err(CallError::Disconnected) => {
                // Everything outstanding has failed: reattach and go on.
                pending.clear();
                on_event("dataplane gone, reattaching");
                ch.reattach(REATTACH_ATTEMPTS, REATTACH_DELAY)
                    .context("reattaching")?;
                reattaches += 1;
                on_event(&format!("reattached as channel {}", ch.channel_id()));
            }
            Err(e) => bail!("polling: {e}"),
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok((st, reattaches))
}
