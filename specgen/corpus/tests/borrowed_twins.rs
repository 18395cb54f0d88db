//! The borrowed twins (`XRef`) encode exactly like the owned messages: for random owned
//! messages of every field kind (scalars, enums, strings, bytes, nested and
//! self-nested messages, repeated scalars, strings, bytes and messages), `m.as_ref()`
//! and a twin built from borrowed slices give the same bytes, length and
//! buffer-too-small error as `m.encode`. Also: `dispatch` with a handler's `*_into`
//! override answers the same bytes and errors as through the trait's default.

use dataplane::anf::{AppError, DispatchError, EncodeError};
use proptest::prelude::*;
use specgen_corpus::corpus::{
    self, Flags, Inner, Kinds, KindsRef, Ping, PingRef, Pong, PongRef, RefMsg, RefSeq,
};

fn inner() -> impl Strategy<Value = Inner> {
    (any::<i32>(), ".{0,12}").prop_map(|(a, b)| Inner { a, b })
}

fn flags() -> impl Strategy<Value = Flags> {
    (any::<bool>(), any::<u32>(), any::<f32>(), 0i32..3).prop_map(|(ok, n, ratio, color)| Flags {
        ok,
        n,
        ratio,
        color,
    })
}

fn ping() -> impl Strategy<Value = Ping> {
    (
        (any::<u64>(), ".{0,16}", ".{0,40}", any::<i32>()),
        prop::collection::vec(".{0,8}", 0..5),
        prop::option::of(inner()),
        prop::collection::vec(any::<i64>(), 0..6),
        any::<f64>(),
    )
        .prop_map(
            |((id, key, body, score), tags, inner, samples, weight)| Ping {
                id,
                key,
                body,
                score,
                tags,
                inner: inner.map(Box::new),
                samples,
                weight,
            },
        )
}

fn pong() -> impl Strategy<Value = Pong> {
    (
        ".{0,16}",
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(inner(), 0..4),
    )
        .prop_map(|(status, value, data, items)| Pong {
            status,
            value,
            data,
            items,
        })
}

fn kinds() -> impl Strategy<Value = Kinds> {
    let leaf = (
        (any::<bool>(), any::<u32>(), any::<f32>(), any::<i32>()),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 0..4),
        prop::collection::vec(any::<bool>(), 0..5),
        prop::collection::vec(any::<f32>(), 0..4),
        prop::option::of(flags()),
        prop::collection::vec(flags(), 0..3),
        ".{0,10}",
    )
        .prop_map(
            |((flag, u, f, color), blobs, bits, floats, flags, many, name)| Kinds {
                flag,
                u,
                f,
                color,
                blobs,
                bits,
                floats,
                next: None,
                flags: flags.map(Box::new),
                many,
                name,
                kids: Vec::new(),
            },
        );
    leaf.prop_recursive(3, 12, 3, |k| {
        (
            k.clone(),
            prop::option::of(k.clone()),
            prop::collection::vec(k, 0..3),
        )
            .prop_map(|(mut top, next, kids)| {
                top.next = next.map(Box::new);
                top.kids = kids;
                top
            })
    })
}

/// Bytes and result of an encoder into a `cap`-byte buffer (pre-filled, so that bytes
/// left untouched by one encoder and written by the other show up).
fn run(
    cap: usize,
    enc: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
) -> (Result<usize, EncodeError>, Vec<u8>) {
    let mut buf = vec![0xa5u8; cap];
    let r = enc(&mut buf);
    (r, buf)
}

/// Checks one message: the owned encoding against `twin`'s, at the exact size and at
/// every smaller buffer size down to 0 (with a stride for big messages).
fn same_encoding(
    len: usize,
    owned: impl Fn(&mut [u8]) -> Result<usize, EncodeError>,
    twin_len: usize,
    twin: impl Fn(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(twin_len, len);
    let (r, bytes) = run(len, &owned);
    prop_assert_eq!(r, Ok(len));
    prop_assert_eq!(run(len, &twin), (r, bytes));
    let stride = (len / 64).max(1);
    for cap in (0..len).step_by(stride).chain([len.saturating_sub(1)]) {
        let (r, bytes) = run(cap, &owned);
        prop_assert_eq!(
            r,
            Err(EncodeError::BufferTooSmall {
                need: len,
                have: cap
            })
        );
        prop_assert_eq!(run(cap, &twin), (r, bytes));
    }
    // A bigger buffer: same length written, same bytes.
    prop_assert_eq!(run(len + 7, &twin), run(len + 7, &owned));
    Ok(())
}

/// Encoders of a `Kinds` twin built from borrowed slices (`RefSeq::Borrowed`,
/// `RefMsg::Borrowed`) as a handler would build one; the nested levels are the
/// children's own `as_ref` twins. The same generated `encode` runs at every level, so
/// both arms of every nested and repeated field are exercised.
fn check_kinds(k: &Kinds) -> Result<(), TestCaseError> {
    let blobs: Vec<&[u8]> = k.blobs.iter().map(Vec::as_slice).collect();
    let next = k.next.as_deref().map(Kinds::as_ref);
    let kids: Vec<KindsRef<'_>> = k.kids.iter().map(Kinds::as_ref).collect();
    let borrowed = KindsRef {
        flag: k.flag,
        u: k.u,
        f: k.f,
        color: k.color,
        blobs: RefSeq::Borrowed(&blobs),
        bits: &k.bits,
        floats: &k.floats,
        next: next.as_ref().map(RefMsg::Borrowed),
        flags: k.flags.as_deref().map(RefMsg::Borrowed),
        many: RefSeq::Borrowed(&k.many),
        name: &k.name,
        kids: RefSeq::Borrowed(&kids),
    };
    let len = k.encoded_len();
    same_encoding(
        len,
        |b| k.encode(b),
        k.as_ref().encoded_len(),
        |b| k.as_ref().encode(b),
    )?;
    same_encoding(
        len,
        |b| k.encode(b),
        borrowed.encoded_len(),
        |b| borrowed.encode(b),
    )?;
    prop_assert_eq!(KindsRef::from(k), k.as_ref());
    Ok(())
}

fn check_ping(p: &Ping) -> Result<(), TestCaseError> {
    let tags: Vec<&str> = p.tags.iter().map(String::as_str).collect();
    let inner = p.inner.as_deref().map(Inner::as_ref);
    let borrowed = PingRef {
        tags: RefSeq::Borrowed(&tags),
        inner: inner.as_ref().map(RefMsg::Borrowed),
        ..p.as_ref()
    };
    let len = p.encoded_len();
    same_encoding(
        len,
        |b| p.encode(b),
        p.as_ref().encoded_len(),
        |b| p.as_ref().encode(b),
    )?;
    same_encoding(
        len,
        |b| p.encode(b),
        borrowed.encoded_len(),
        |b| borrowed.encode(b),
    )
}

fn check_pong(p: &Pong) -> Result<(), TestCaseError> {
    let items: Vec<_> = p.items.iter().map(Inner::as_ref).collect();
    let borrowed = PongRef {
        status: &p.status,
        value: p.value,
        data: &p.data,
        items: RefSeq::Borrowed(&items),
    };
    let len = p.encoded_len();
    same_encoding(
        len,
        |b| p.encode(b),
        p.as_ref().encoded_len(),
        |b| p.as_ref().encode(b),
    )?;
    same_encoding(
        len,
        |b| p.encode(b),
        borrowed.encoded_len(),
        |b| borrowed.encode(b),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kinds_twins_encode_like_the_owned_message(k in kinds()) {
        check_kinds(&k)?;
    }

    #[test]
    fn ping_twins_encode_like_the_owned_message(p in ping()) {
        check_ping(&p)?;
    }

    #[test]
    fn pong_twins_encode_like_the_owned_message(p in pong()) {
        check_pong(&p)?;
    }

    #[test]
    fn scalar_only_twin_is_the_message(f in flags()) {
        let len = f.encoded_len();
        same_encoding(len, |b| f.encode(b), f.as_ref().encoded_len(), |b| f.as_ref().encode(b))?;
    }
}

#[test]
fn default_twins_encode_like_default_messages() {
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    assert_eq!(
        Kinds::default().encode(&mut a),
        KindsRef::default().encode(&mut b)
    );
    assert_eq!(a, b);
    assert_eq!(
        Pong::default().encode(&mut a),
        PongRef::default().encode(&mut b)
    );
    assert_eq!(a, b);
}

fn pong_of(req: corpus::PingView<'_>) -> Pong {
    Pong {
        status: String::from_utf8_lossy(req.key()).into_owned(),
        value: 5,
        data: req.body().to_vec(),
        items: vec![Inner {
            a: 1,
            b: "x".into(),
        }],
    }
}

fn flags_of(req: corpus::KindsView<'_>) -> Flags {
    Flags {
        ok: req.flag(),
        n: req.u(),
        ratio: req.f(),
        color: req.color(),
    }
}

/// The owned handler methods of both test services (`fail`: `inspect` refuses).
macro_rules! owned_methods {
    ($($m:ident),*) => {
        $(fn $m(&mut self, req: corpus::PingView<'_>) -> Result<Pong, AppError> { Ok(pong_of(req)) })*

        fn inspect(&mut self, req: corpus::KindsView<'_>) -> Result<Flags, AppError> {
            if self.fail {
                return Err(AppError::new(3, "refused"));
            }
            Ok(flags_of(req))
        }
    };
}

/// Only the owned methods: `dispatch` goes through the trait's default `*_into`.
struct Plain {
    fail: bool,
}

impl corpus::Corpus for Plain {
    owned_methods!(
        acl, limited, faulty, logged, metered, admitted, guarded, balanced, cached, mutated,
        tracked
    );
}

/// Overrides `inspect_into` (a scalar-only response) and `cached_into` (strings, bytes
/// and repeated nested messages) to answer from borrowed data.
struct Inspector {
    fail: bool,
}

impl corpus::Corpus for Inspector {
    owned_methods!(
        acl, limited, faulty, logged, metered, admitted, guarded, balanced, cached, mutated,
        tracked
    );

    fn inspect_into(
        &mut self,
        req: corpus::KindsView<'_>,
        out: corpus::Responder<'_, Flags>,
    ) -> Result<corpus::ResponseLen, DispatchError> {
        if self.fail {
            return Err(DispatchError::App(AppError::new(3, "refused")));
        }
        Ok(out.send(flags_of(req))?)
    }

    fn cached_into(
        &mut self,
        req: corpus::PingView<'_>,
        out: corpus::Responder<'_, Pong>,
    ) -> Result<corpus::ResponseLen, DispatchError> {
        let items = [corpus::InnerRef { a: 1, b: "x" }];
        let key = String::from_utf8_lossy(req.key());
        Ok(out.send(PongRef {
            status: &key,
            value: 5,
            data: req.body(),
            items: RefSeq::Borrowed(&items),
        })?)
    }
}

fn answer(
    svc: &mut dyn corpus::Corpus,
    method: corpus::Method,
    req: &[u8],
    cap: usize,
) -> (Result<usize, DispatchError>, Vec<u8>) {
    let mut resp = vec![0xa5u8; cap];
    let r = corpus::dispatch(svc, method.id(), req, &mut resp);
    (r, resp)
}

#[test]
fn dispatch_through_an_override_answers_like_the_default() {
    let k = Kinds {
        flag: true,
        u: 77,
        f: 1.5,
        color: 1,
        name: "n".into(),
        ..Kinds::default()
    };
    let p = Ping {
        key: "key".into(),
        body: "body bytes".into(),
        ..Ping::default()
    };
    let mut kb = vec![0u8; k.encoded_len()];
    k.encode(&mut kb).expect("fits");
    let mut pb = vec![0u8; p.encoded_len()];
    p.encode(&mut pb).expect("fits");
    let mut compared = 0;
    for fail in [false, true] {
        for (method, req) in [
            (corpus::Method::Inspect, &kb),
            (corpus::Method::Cached, &pb),
        ] {
            for cap in [0, 3, 16, 40, 64, 512] {
                let ours = answer(&mut Inspector { fail }, method, req, cap);
                let theirs = answer(&mut Plain { fail }, method, req, cap);
                assert_eq!(ours, theirs, "{method:?}, fail {fail}, {cap}-byte buffer");
                compared += usize::from(ours.0.is_ok());
            }
        }
    }
    assert!(compared >= 4, "some answers fitted ({compared})");
    // The error kinds are kept: an app error, a too-small buffer, a malformed request.
    let (r, _) = answer(
        &mut Inspector { fail: true },
        corpus::Method::Inspect,
        &kb,
        512,
    );
    assert_eq!(r, Err(DispatchError::App(AppError::new(3, "refused"))));
    let (r, _) = answer(
        &mut Inspector { fail: false },
        corpus::Method::Inspect,
        &kb,
        3,
    );
    assert!(
        matches!(
            r,
            Err(DispatchError::Encode(EncodeError::BufferTooSmall {
                have: 3,
                ..
            }))
        ),
        "{r:?}"
    );
    let (r, _) = answer(
        &mut Inspector { fail: false },
        corpus::Method::Inspect,
        &kb[..2],
        512,
    );
    assert!(matches!(r, Err(DispatchError::Malformed(_))), "{r:?}");
    let (r, bytes) = answer(
        &mut Inspector { fail: false },
        corpus::Method::Inspect,
        &kb,
        512,
    );
    let n = r.expect("answered");
    assert_eq!(
        Flags::from_bytes(&bytes[..n]),
        Ok(Flags {
            ok: true,
            n: 77,
            ratio: 1.5,
            color: 1
        })
    );
}
