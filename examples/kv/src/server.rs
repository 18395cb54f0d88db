//! The KV server application on a polling core: the generated server chain (firewall →
//! session tracker) in front of a key-value store, answering each RPC run-to-completion.
//!
//! The store is shared by all cores (`Arc<RwLock<..>>`, parking_lot's) so a GET on one
//! core sees a SET made through another. It hashes keys with foldhash (a fast, randomly
//! seeded hasher) rather than std's SipHash, which cost ~10% of a GET; lookups borrow the
//! key from the request (no allocation), and a SET to an existing key overwrites its
//! value in place. `dispatch` reaches the handler through the `*_into` methods, which
//! encode the response straight into the response buffer from the stored value
//! (borrowed under the read lock): no allocation per GET or SET in steady state. The
//! owned `get`/`set` remain for callers that want a response value.
//!
//! Locking, per polling pass: taking and releasing the read lock are two atomic
//! read-modify-writes, ~70% of a GET's handler time on one core. A core's [`KvServer`]
//! therefore keeps the read lock from its pass's first GET to the end of the pass
//! ([`App::poll`]) in a [`PassLock`]; before each request it lets a writer that waits
//! in (`bump`: one load when none does), so another core's SET waits one request, not a
//! pass. A SET drops the core's read lock first (upgrading in place would deadlock two
//! cores upgrading at once) and takes the write lock for that SET only: holding it for
//! a pass would serialise the cores' whole passes under a write load. The attached
//! server (`attach.rs`) and the tests lock per call ([`Handler::new`]).
//!
//! The server also checks what the transport promises: it counts reliable-ordered SETs
//! of a session that arrive with an RPC id not above the last one it executed (a
//! duplicate or out-of-order execution).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{ArcRwLockReadGuard, RawRwLock, RwLock};

use dataplane::anf::{AppError, DispatchError, KeyLookup, RpcCtx, RpcHeader, Verdict};
use dataplane::engine::{anf_error_code, Answer, App, Peer, APP_ERROR_CODE};
use dataplane::transport::{error_code, Endpoint, RequestRef};

use crate::kv;

/// The data, shared by every core.
pub type Store = Arc<RwLock<StoreMap>>;

/// The map behind a [`Store`]: hashbrown's, so that lookups compare short keys inline
/// ([`KeyLookup`]) rather than through a `memcmp` call (4% of a GET).
pub type StoreMap = hashbrown::HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState>;

/// The store's read lock, held by one core across the requests of a polling pass.
#[derive(Default)]
pub struct PassLock {
    read: Option<ArcRwLockReadGuard<RawRwLock, StoreMap>>,
}

impl PassLock {
    /// The map, under the read lock this pass holds (taken now if it holds none).
    fn map(&mut self, store: &Store) -> &StoreMap {
        self.read.get_or_insert_with(|| store.read_arc())
    }

    /// Lets a writer waiting for the lock in before the next request (a load when none
    /// waits).
    pub fn yield_to_writers(&mut self) {
        if let Some(g) = self.read.as_mut() {
            ArcRwLockReadGuard::bump(g);
        }
    }

    /// Releases the lock (the end of a pass, or before this core writes).
    pub fn release(&mut self) {
        self.read = None;
    }

    /// Whether the read lock is held.
    pub fn is_held(&self) -> bool {
        self.read.is_some()
    }
}

/// The server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    pub gets: u64,
    pub sets: u64,
    /// RPCs the firewall let through, and those it answered "denied".
    pub allowed: u64,
    pub denied: u64,
    /// RPCs an element dropped, or that were malformed / for an unknown method.
    pub dropped: u64,
    /// Distinct users the session tracker has seen (its `requests` map).
    pub sessions: u64,
    /// Handler failures (e.g. a response that did not fit).
    pub app_errors: u64,
    /// Reliable-ordered SETs executed twice or out of issue order (must stay 0).
    pub set_duplicates: u64,
    pub set_out_of_order: u64,
}

/// The KV handlers over a store (in-process, and in attached applications).
pub struct Handler<'a> {
    store: &'a Store,
    /// The polling pass's read lock, if the caller keeps one (else each call locks).
    pass: Option<&'a mut PassLock>,
}

impl<'a> Handler<'a> {
    /// Handlers that lock the store for each call.
    pub fn new(store: &'a Store) -> Self {
        Handler { store, pass: None }
    }

    /// Handlers that read under `pass`'s lock (taken by the first read, kept until the
    /// caller releases it) and release it before writing.
    pub fn in_pass(store: &'a Store, pass: &'a mut PassLock) -> Self {
        Handler {
            store,
            pass: Some(pass),
        }
    }

    /// Runs `f` on the map under a read lock.
    fn read<R>(&mut self, f: impl FnOnce(&StoreMap) -> R) -> R {
        match self.pass.as_deref_mut() {
            Some(pass) => f(pass.map(self.store)),
            None => f(&self.store.read()),
        }
    }

    /// Stores the request's value under its name. Overwriting a key reuses its value's
    /// buffer: no allocation once it is big enough. (A buffer far larger than the new
    /// value is replaced, not kept.)
    fn store_value(&mut self, req: kv::SetRequestView<'_>) {
        if let Some(pass) = self.pass.as_deref_mut() {
            pass.release();
        }
        let mut store = self.store.write();
        let value = req.value();
        match store.get_mut(&KeyLookup(req.name())) {
            Some(v) if v.capacity() <= 2 * value.len() + 64 => {
                v.clear();
                v.extend_from_slice(value);
            }
            Some(v) => *v = value.to_vec(),
            None => {
                store.insert(req.name().to_vec(), value.to_vec());
            }
        }
    }
}

impl kv::KvService for Handler<'_> {
    fn get(&mut self, req: kv::GetRequestView<'_>) -> Result<kv::GetResponse, AppError> {
        Ok(self.read(|store| match store.get(&KeyLookup(req.name())) {
            Some(v) => kv::GetResponse {
                value: v.clone(),
                found: true,
            },
            None => kv::GetResponse {
                value: Vec::new(),
                found: false,
            },
        }))
    }

    /// Encodes the stored value straight from the map, under the read lock.
    fn get_into(
        &mut self,
        req: kv::GetRequestView<'_>,
        out: kv::Responder<'_, kv::GetResponse>,
    ) -> Result<kv::ResponseLen, DispatchError> {
        self.read(|store| {
            let resp = match store.get(&KeyLookup(req.name())) {
                Some(v) => kv::GetResponseRef {
                    value: v,
                    found: true,
                },
                None => kv::GetResponseRef {
                    value: &[],
                    found: false,
                },
            };
            Ok(out.send(resp)?)
        })
    }

    fn set(&mut self, req: kv::SetRequestView<'_>) -> Result<kv::SetResponse, AppError> {
        self.store_value(req);
        Ok(kv::SetResponse { ok: true })
    }

    fn set_into(
        &mut self,
        req: kv::SetRequestView<'_>,
        out: kv::Responder<'_, kv::SetResponse>,
    ) -> Result<kv::ResponseLen, DispatchError> {
        self.store_value(req);
        Ok(out.send(kv::SetResponseRef { ok: true })?)
    }
}

/// One core's KV server.
pub struct KvServer {
    pipeline: kv::ServerPipeline,
    store: Store,
    /// The store's read lock, kept from the first GET of a polling pass to its end.
    pass: PassLock,
    ctx: RpcCtx,
    stats: ServerStats,
    /// Last executed SET rpc id per session (for the ordering check).
    last_set: HashMap<u64, u32, foldhash::fast::RandomState>,
}

impl KvServer {
    pub fn new(pipeline: kv::ServerPipeline, store: Store) -> Self {
        KvServer {
            pipeline,
            store,
            pass: PassLock::default(),
            ctx: RpcCtx::default(),
            stats: ServerStats::default(),
            last_set: HashMap::default(),
        }
    }

    /// The core's pipeline (its elements' state and counters).
    pub fn pipeline(&self) -> &kv::ServerPipeline {
        &self.pipeline
    }

    /// The core's pipeline (e.g. to reload its tables).
    pub fn pipeline_mut(&mut self) -> &mut kv::ServerPipeline {
        &mut self.pipeline
    }

    fn count_set_order(&mut self, req: &RequestRef) {
        let last = self.last_set.entry(req.session.0).or_insert(u32::MAX);
        if *last != u32::MAX {
            // RPC ids increase (wrapping) per session; compare in sequence space.
            let ahead = req.rpc.0.wrapping_sub(*last);
            if ahead == 0 {
                self.stats.set_duplicates += 1;
            } else if ahead > u32::MAX / 2 {
                self.stats.set_out_of_order += 1;
            }
        }
        *last = req.rpc.0;
    }
}

impl App for KvServer {
    type Stats = ServerStats;

    fn on_request(
        &mut self,
        now: u64,
        req: RequestRef,
        _peer: Peer,
        payload: &mut [u8],
        resp: &mut [u8],
    ) -> Answer {
        if req.service != kv::SERVICE_ID {
            self.stats.dropped += 1;
            return Answer::Error(error_code::UNKNOWN_METHOD);
        }
        self.ctx.reset(RpcHeader::of_request(&req), now);
        // The firewall is the chain's first element: its request-side verdicts are the
        // allowed/denied counts (its `resp` also counts forwards, so take the difference).
        let before = self.pipeline.counters[0];
        let verdict = self.pipeline.on_request(req.method, &mut self.ctx, payload);
        let after = self.pipeline.counters[0];
        self.stats.allowed += after.forwarded - before.forwarded;
        self.stats.denied += after.replied - before.replied;
        self.stats.sessions = self.pipeline.session_tracker.requests.len() as u64;
        match verdict {
            Verdict::Forward => {}
            Verdict::Drop => {
                self.stats.dropped += 1;
                return Answer::Silent;
            }
            Verdict::Reply(e) => return Answer::Error(anf_error_code(e.message)),
        }
        if req.method == kv::Method::Set.id() {
            self.stats.sets += 1;
            self.count_set_order(&req);
        } else {
            self.stats.gets += 1;
        }
        // A writer waiting on another core goes first; then this pass's lock serves.
        self.pass.yield_to_writers();
        let mut handler = Handler::in_pass(&self.store, &mut self.pass);
        let n = match kv::dispatch(&mut handler, req.method, payload, resp) {
            Ok(n) => n,
            Err(_) => {
                self.stats.app_errors += 1;
                return Answer::Error(APP_ERROR_CODE);
            }
        };
        match self
            .pipeline
            .on_response(req.method, &mut self.ctx, &mut resp[..n])
        {
            Verdict::Forward => Answer::Respond(n),
            Verdict::Drop => {
                self.stats.dropped += 1;
                Answer::Silent
            }
            Verdict::Reply(e) => Answer::Error(anf_error_code(e.message)),
        }
    }

    /// The end of the pass's requests: the store's read lock goes.
    fn poll(&mut self, _now: u64, _endpoint: &mut Endpoint<Peer>) -> bool {
        self.pass.release();
        true
    }

    fn stats(&self) -> ServerStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv::KvService;

    fn set(h: &mut Handler<'_>, name: &str, value: &[u8]) {
        let mut buf = vec![0u8; 64 + name.len() + value.len()];
        let req = kv::SetRequest {
            user: "alice".into(),
            name: name.into(),
            value: value.to_vec(),
        };
        let n = req.encode(&mut buf).unwrap();
        let view = kv::SetRequestView::new_checked(&buf[..n]).unwrap();
        assert!(h.set(view).unwrap().ok);
    }

    fn get(h: &mut Handler<'_>, name: &str) -> kv::GetResponse {
        let mut buf = vec![0u8; 64 + name.len()];
        let req = kv::GetRequest {
            user: "alice".into(),
            name: name.into(),
        };
        let n = req.encode(&mut buf).unwrap();
        h.get(kv::GetRequestView::new_checked(&buf[..n]).unwrap())
            .unwrap()
    }

    /// The KV handler through the trait's default `*_into` methods only (owned
    /// responses, encoded by the generated default).
    struct Defaults<'a>(Handler<'a>);

    impl kv::KvService for Defaults<'_> {
        fn get(&mut self, req: kv::GetRequestView<'_>) -> Result<kv::GetResponse, AppError> {
            self.0.get(req)
        }
        fn set(&mut self, req: kv::SetRequestView<'_>) -> Result<kv::SetResponse, AppError> {
            self.0.set(req)
        }
    }

    fn encoded<M>(
        m: &M,
        enc: impl Fn(&M, &mut [u8]) -> Result<usize, dataplane::anf::EncodeError>,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let n = enc(m, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// `dispatch` answers: (result, response bytes) with a `cap`-byte response buffer.
    fn answer(
        svc: &mut dyn kv::KvService,
        method: kv::Method,
        req: &[u8],
        cap: usize,
    ) -> (Result<usize, DispatchError>, Vec<u8>) {
        let mut resp = vec![0xa5u8; cap];
        let r = kv::dispatch(svc, method.id(), req, &mut resp);
        if let Ok(n) = r {
            resp.truncate(n);
        }
        (r, resp)
    }

    #[test]
    fn overridden_into_methods_answer_like_the_defaults() {
        let store = Store::default();
        let copy = Store::default();
        let get_req = |name: &str| {
            let r = kv::GetRequest {
                user: "alice".into(),
                name: name.into(),
            };
            encoded(&r, kv::GetRequest::encode)
        };
        let set_req = |name: &str, value: &[u8]| {
            let r = kv::SetRequest {
                user: "alice".into(),
                name: name.into(),
                value: value.to_vec(),
            };
            encoded(&r, kv::SetRequest::encode)
        };
        let mut requests = vec![(kv::Method::Get, get_req("missing"))];
        for (name, value) in [("k", &b"v1"[..]), ("k", &[3u8; 700][..]), ("e", b"")] {
            requests.push((kv::Method::Set, set_req(name, value)));
            requests.push((kv::Method::Get, get_req(name)));
        }
        for (method, req) in &requests {
            // Big enough, exactly the fixed section, and too small for anything.
            for cap in [2048, kv::GetResponseView::FIXED_LEN, 3] {
                let ours = answer(&mut Handler::new(&store), *method, req, cap);
                let theirs = answer(&mut Defaults(Handler::new(&copy)), *method, req, cap);
                assert_eq!(ours, theirs, "{method:?} with a {cap}-byte buffer");
            }
        }
        // The 700-byte value was answered in full, and a small buffer is an encode error.
        let (r, bytes) = answer(
            &mut Handler::new(&store),
            kv::Method::Get,
            &get_req("k"),
            2048,
        );
        assert_eq!(r, Ok(bytes.len()));
        let resp = kv::GetResponse::from_bytes(&bytes).unwrap();
        assert!(resp.found);
        assert_eq!(resp.value, vec![3u8; 700]);
        let (r, _) = answer(
            &mut Handler::new(&store),
            kv::Method::Get,
            &get_req("k"),
            100,
        );
        assert!(matches!(r, Err(DispatchError::Encode(_))), "{r:?}");
        // Through a pass's lock: the same answers, and the lock is the pass's.
        let mut pass = PassLock::default();
        for (method, req) in &requests {
            let ours = answer(&mut Handler::in_pass(&store, &mut pass), *method, req, 2048);
            let theirs = answer(&mut Defaults(Handler::new(&copy)), *method, req, 2048);
            assert_eq!(ours, theirs, "{method:?} in a pass");
            // A GET leaves the read lock held; a SET leaves none.
            assert_eq!(pass.is_held(), *method == kv::Method::Get);
            assert_eq!(store.try_write().is_none(), pass.is_held());
        }
        pass.release();
        assert!(store.try_write().is_some());
    }

    /// A core holding its pass's read lock lets another core's writer in at its next
    /// request boundary (`yield_to_writers`), without ending the pass, and then reads
    /// what was written.
    #[test]
    fn a_pass_lets_a_waiting_writer_in_between_requests() {
        let store = Store::default();
        let mut pass = PassLock::default();
        assert!(!get(&mut Handler::in_pass(&store, &mut pass), "k").found);
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || set(&mut Handler::new(&store), "k", b"from the writer"))
        };
        // The writer waits while the pass holds the lock (it cannot have written yet)...
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!writer.is_finished());
        assert!(!get(&mut Handler::in_pass(&store, &mut pass), "k").found);
        // ...and gets in at a request boundary, once it waits parked (bounded wait).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !writer.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never got in"
            );
            pass.yield_to_writers();
            std::thread::yield_now();
        }
        writer.join().unwrap();
        let mut h = Handler::in_pass(&store, &mut pass);
        assert_eq!(get(&mut h, "k").value, b"from the writer");
        // A SET in the pass drops its read lock first (no self-deadlock) and writes.
        set(&mut h, "k", b"ours");
        assert_eq!(get(&mut h, "k").value, b"ours");
    }

    #[test]
    fn overwrites_grow_shrink_and_release_big_buffers() {
        let store = Store::default();
        let mut h = Handler::new(&store);
        assert!(!get(&mut h, "k").found);
        for value in [&b"small"[..], &[7u8; 1000][..], b"x", b"", &[9u8; 300][..]] {
            set(&mut h, "k", value);
            let r = get(&mut h, "k");
            assert!(r.found);
            assert_eq!(r.value, value);
        }
        set(&mut h, "other", b"v");
        assert_eq!(get(&mut h, "other").value, b"v");
        assert_eq!(get(&mut h, "k").value, vec![9u8; 300]);
        let map = store.read();
        assert_eq!(map.len(), 2);
        // 300 bytes, after a 1000-byte value was shrunk to 1 byte and regrown: the
        // 1000-byte buffer did not survive the shrink.
        assert!(map.get(&b"k"[..]).unwrap().capacity() < 1000);
    }
}
