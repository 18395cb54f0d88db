//! What a KV RPC costs in `kv::dispatch` with the server's `Handler` (responses encoded
//! from the stored value through `get_into`/`set_into`) against the same handler through
//! the trait's default `*_into` (owned `GetResponse`: the value cloned into a fresh
//! `Vec`, then encoded and freed), for a hit with a 32-byte and a 1 KiB value, a miss and
//! a SET. Prints ns per call (median of several runs, interleaved) and the ratio.
//! Run with `cargo bench -p kv-example --bench dispatch`. Measures only; asserts nothing
//! beyond the answers being non-empty.

use std::hint::black_box;
use std::time::Instant;

use dataplane::anf::AppError;
use kv_example::kv;
use kv_example::server::{Handler, Store};

const ITERS: u32 = 500_000;
const ROUNDS: usize = 7;

/// The KV handler with only the owned methods: `dispatch` uses the trait's defaults.
struct Owned<'a>(Handler<'a>);

impl kv::KvService for Owned<'_> {
    fn get(&mut self, req: kv::GetRequestView<'_>) -> Result<kv::GetResponse, AppError> {
        self.0.get(req)
    }
    fn set(&mut self, req: kv::SetRequestView<'_>) -> Result<kv::SetResponse, AppError> {
        self.0.set(req)
    }
}

fn encoded(
    len: usize,
    enc: impl FnOnce(&mut [u8]) -> Result<usize, dataplane::anf::EncodeError>,
) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = enc(&mut buf).expect("request encodes");
    buf.truncate(n);
    buf
}

fn get(name: &str) -> Vec<u8> {
    let r = kv::GetRequest {
        user: "alice".into(),
        name: name.into(),
    };
    encoded(r.encoded_len(), |b| r.encode(b))
}

fn set(name: &str, len: usize) -> Vec<u8> {
    let r = kv::SetRequest {
        user: "alice".into(),
        name: name.into(),
        value: vec![0x5a; len],
    };
    encoded(r.encoded_len(), |b| r.encode(b))
}

/// ns per `dispatch` of `req` (method `m`) through `svc`.
fn time(svc: &mut dyn kv::KvService, m: kv::Method, req: &[u8], resp: &mut [u8]) -> f64 {
    let t = Instant::now();
    for _ in 0..ITERS {
        let n = kv::dispatch(svc, m.id(), black_box(req), resp);
        assert!(matches!(n, Ok(n) if n > 0));
        black_box(&resp[..]);
    }
    t.elapsed().as_nanos() as f64 / f64::from(ITERS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let store = Store::default();
    let mut resp = vec![0u8; 4096];
    for (name, len) in [("key-32", 32), ("key-1k", 1024)] {
        let mut h = Handler::new(&store);
        kv::dispatch(&mut h, kv::Method::Set.id(), &set(name, len), &mut resp).expect("stored");
    }
    let cases = [
        ("GET hit, 32-byte value", kv::Method::Get, get("key-32")),
        ("GET hit, 1 KiB value", kv::Method::Get, get("key-1k")),
        ("GET miss", kv::Method::Get, get("absent")),
        (
            "SET 32 bytes (existing key)",
            kv::Method::Set,
            set("key-32", 32),
        ),
    ];
    println!(
        "{:<30} {:>10} {:>10} {:>7}",
        "kv::dispatch", "borrowed", "owned", "ratio"
    );
    for (label, m, req) in &cases {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(time(&mut Handler::new(&store), *m, req, &mut resp));
            theirs.push(time(&mut Owned(Handler::new(&store)), *m, req, &mut resp));
        }
        let (a, b) = (median(ours), median(theirs));
        println!("{label:<30} {a:>8.1}ns {b:>8.1}ns {:>7.2}", a / b);
    }
}
