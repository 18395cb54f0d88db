//! The KV handler answers GETs and SETs of an existing key through `kv::dispatch`
//! without touching the heap: a counting global allocator (the workspace's, tests/counting_alloc)
//! counts the allocations made on the test's thread during 1,000 GETs and SETs after a
//! warm-up. Owns nothing else; must not run the engine or a port.

use dataplane::anf::EncodeError;
use kv::KvService;
use kv_example::kv;
use kv_example::server::{Handler, Store};

// The workspace's per-thread counting allocator, this binary's global allocator.
#[path = "../../../tests/counting_alloc/mod.rs"]
mod counting_alloc;

/// Heap allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = counting_alloc::allocs();
    f();
    counting_alloc::allocs() - before
}

fn encoded(len: usize, enc: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = enc(&mut buf).expect("request encodes");
    buf.truncate(n);
    buf
}

#[test]
fn gets_and_sets_of_an_existing_key_do_not_allocate() {
    let store = Store::default();
    let mut handler = Handler::new(&store);
    let value = vec![0x5au8; 512];
    let set = kv::SetRequest {
        user: "alice".into(),
        name: "key-1".into(),
        value: value.clone(),
    };
    let set = encoded(set.encoded_len(), |b| set.encode(b));
    let get = kv::GetRequest {
        user: "alice".into(),
        name: "key-1".into(),
    };
    let get = encoded(get.encoded_len(), |b| get.encode(b));
    let mut resp = vec![0u8; 2048];
    let mut round = |resp: &mut [u8]| -> (usize, usize) {
        let s = kv::dispatch(&mut handler, kv::Method::Set.id(), &set, resp);
        let s = s.map_or(0, |n| n);
        let g = kv::dispatch(&mut handler, kv::Method::Get.id(), &get, resp);
        (s, g.map_or(0, |n| n))
    };
    // Warm-up: the first SET inserts the key (allocates its name and value).
    let (s, g) = round(&mut resp);
    assert!(s > 0 && g > 0, "warm-up answered ({s}, {g})");
    let answer = kv::GetResponse::from_bytes(&resp[..g]).expect("GET response decodes");
    assert!(answer.found);
    assert_eq!(answer.value, value);

    let mut answered = 0usize;
    let n = allocations(|| {
        for _ in 0..1000 {
            let (s, g) = round(&mut resp);
            if s > 0 && g > 0 {
                answered += 1;
            }
        }
    });
    assert_eq!(answered, 1000, "every GET and SET answered");
    assert_eq!(
        n, 0,
        "heap allocations in 1,000 GETs and SETs of an existing key"
    );
    // The counter does count: the owned `get` clones the value.
    let owned = allocations(|| {
        let view = kv::GetRequestView::new_checked(&get).expect("valid request");
        let r = handler.get(view).map(|r| r.value.len());
        assert_eq!(r, Ok(512));
    });
    assert!(owned >= 1, "the owned GET path allocates ({owned})");
}
