//! Executes every corpus element against crafted RPC bytes and asserts verdicts and
//! state changes.

use dataplane::anf::{ErrorReply, InitCtx, RpcCtx, RpcHeader, Verdict};
use specgen_corpus::corpus::{self, Method};

fn ping(key: &str, body: &str, score: i32) -> Vec<u8> {
    let p = corpus::Ping {
        id: 7,
        key: key.into(),
        body: body.into(),
        score,
        tags: vec!["a".into(), "bc".into()],
        inner: Some(Box::new(corpus::Inner {
            a: -3,
            b: "in".into(),
        })),
        samples: vec![-1, 2, -3],
        weight: 0.25,
    };
    let mut buf = vec![0u8; p.encoded_len()];
    assert_eq!(p.encode(&mut buf), Ok(buf.len()));
    buf
}

fn pong(status: &str, value: i64) -> Vec<u8> {
    let p = corpus::Pong {
        status: status.into(),
        value,
        data: vec![9; 3],
        items: vec![corpus::Inner {
            a: 1,
            b: "x".into(),
        }],
    };
    let mut buf = vec![0u8; p.encoded_len()];
    assert_eq!(p.encode(&mut buf), Ok(buf.len()));
    buf
}

fn tables() -> corpus::Tables {
    corpus::Tables {
        acl_rules: vec![("alice".into(), true), ("eve".into(), false)],
        ratelimit_per_sec: Some(2.0),
        lb_sticky_backends: vec!["10.0.0.1".into(), "10.0.0.2".into()],
    }
}

fn server() -> corpus::ServerPipeline {
    corpus::ServerPipeline::new(
        &corpus::ServerShared::default(),
        &tables(),
        &InitCtx { now: 0, seed: 42 },
    )
}

fn client() -> corpus::ClientPipeline {
    corpus::ClientPipeline::new(
        &corpus::ClientShared::default(),
        &tables(),
        &InitCtx { now: 0, seed: 42 },
    )
}

fn ctx(rpc_id: u64, session_id: u64, now: u64) -> RpcCtx {
    RpcCtx::new(
        RpcHeader {
            rpc_id,
            session_id,
            ..Default::default()
        },
        now,
    )
}

fn reply(msg: &'static str) -> Verdict {
    Verdict::Reply(ErrorReply::new(msg))
}

#[test]
fn acl_uses_config_rules_and_counts_denials() {
    let mut s = server();
    let m = Method::Acl.id();
    assert_eq!(
        s.on_request(m, &mut ctx(1, 1, 0), &mut ping("alice", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_request(m, &mut ctx(2, 1, 0), &mut ping("eve", "b", 0)),
        reply("acl: denied")
    );
    assert_eq!(
        s.on_request(m, &mut ctx(3, 1, 0), &mut ping("root", "b", 0)),
        reply("acl: unknown key")
    );
    assert_eq!(s.acl.denied, 2);
    // The rule table is strong state: config replaced init()'s 'root' entry.
    assert_eq!(dataplane::anf::read_lock(&s.acl.rules).len(), 2);
}

#[test]
fn acl_rules_are_shared_between_cores() {
    let shared = corpus::ServerShared::default();
    let mut a = corpus::ServerPipeline::new(&shared, &tables(), &InitCtx { now: 0, seed: 1 });
    let b = corpus::ServerPipeline::new(&shared, &tables(), &InitCtx { now: 0, seed: 2 });
    a.reload(&corpus::Tables {
        acl_rules: vec![("bob".into(), true)],
        ..tables()
    });
    assert_eq!(
        dataplane::anf::read_lock(&b.acl.rules).get(&b"bob"[..]),
        Some(&true)
    );
    assert_eq!(
        dataplane::anf::read_lock(&b.acl.rules).get(&b"alice"[..]),
        None
    );
}

#[test]
fn ratelimit_refills_at_the_configured_rate() {
    let mut s = server();
    let m = Method::Limited.id();
    let mut verdicts = Vec::new();
    for i in 0..5 {
        verdicts.push(s.on_request(m, &mut ctx(i, 1, 0), &mut ping("k", "b", 0)));
    }
    assert_eq!(
        verdicts[..3],
        [Verdict::Forward, Verdict::Forward, Verdict::Forward]
    );
    assert_eq!(verdicts[3..], [reply("ratelimit"), reply("ratelimit")]);
    // Half a second at 2 tokens/s (per_sec from config, not init()'s 1.0) = 1 token.
    assert_eq!(s.ratelimit.per_sec, 2.0);
    assert_eq!(
        s.on_request(m, &mut ctx(9, 1, 500_000_000), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_request(m, &mut ctx(10, 1, 500_000_000), &mut ping("k", "b", 0)),
        reply("ratelimit")
    );
}

#[test]
fn fault_injects_about_half_and_counts() {
    let mut s = server();
    let m = Method::Faulty.id();
    let mut faults = 0;
    for i in 0..2000 {
        if s.on_request(m, &mut ctx(i, 1, 0), &mut ping("k", "b", 0)) == reply("fault injected") {
            faults += 1;
        }
    }
    assert!((800..1200).contains(&faults), "{faults}");
    assert_eq!(s.fault.injected, faults);
    let idx = corpus::ServerPipeline::ELEMENTS
        .iter()
        .position(|e| *e == "fault")
        .expect("fault present");
    assert_eq!(s.counters[idx].replied, faults);
    assert_eq!(s.counters[idx].forwarded, 2000 - faults);
}

#[test]
fn logging_records_bodies_statuses_and_bounded_recent_ids() {
    let mut s = server();
    let m = Method::Logged.id();
    for i in 0..6 {
        assert_eq!(
            s.on_request(
                m,
                &mut ctx(100 + i, 1, 0),
                &mut ping("k", &format!("body{i}"), 0)
            ),
            Verdict::Forward
        );
    }
    assert_eq!(s.logging.log_req.get(&103), Some(&b"body3".to_vec()));
    assert_eq!(s.logging.count, 6);
    assert_eq!(s.logging.recent.len(), 4);
    assert_eq!(s.logging.recent.refused(), 2);
    assert_eq!(
        s.on_response(m, &mut ctx(103, 1, 0), &mut pong("ok", 1)),
        Verdict::Forward
    );
    assert_eq!(s.logging.log_resp.get(&103), Some(&b"ok".to_vec()));
    assert_eq!(s.logging.id_sum, 4 * 7);
}

#[test]
fn metrics_measure_latency_on_the_client() {
    let mut c = client();
    let m = Method::Metered.id();
    let req = ping("k", "b", 0);
    assert_eq!(
        c.on_request(m, &mut ctx(5, 1, 1_000), &mut req.clone()),
        Verdict::Forward
    );
    assert_eq!(c.metrics.total_bytes, req.len() as i64);
    assert_eq!(
        c.on_response(m, &mut ctx(5, 1, 1_500_001_000), &mut pong("ok", 0)),
        Verdict::Forward
    );
    assert_eq!(c.metrics.latency.get(&5), Some(&1.5));
    assert!(c.metrics.start.is_empty());
    // A response with no matching request changes nothing.
    assert_eq!(
        c.on_response(m, &mut ctx(6, 1, 0), &mut pong("ok", 0)),
        Verdict::Forward
    );
    assert_eq!(c.metrics.latency.len(), 1);
}

#[test]
fn admission_control_throttles_after_failures() {
    let mut s = server();
    let m = Method::Admitted.id();
    assert_eq!(
        s.on_request(m, &mut ctx(1, 1, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_response(m, &mut ctx(1, 1, 0), &mut pong("ok", 0)),
        Verdict::Forward
    );
    assert_eq!(s.admission_control.success, 1.0);
    for i in 0..200 {
        s.on_request(m, &mut ctx(i, 1, 0), &mut ping("k", "b", 0));
        s.on_response(m, &mut ctx(i, 1, 0), &mut pong("error", 0));
    }
    let mut rejected = 0;
    for i in 0..100 {
        if s.on_request(m, &mut ctx(i, 1, 0), &mut ping("k", "b", 0)) == reply("admission control")
        {
            rejected += 1;
        }
    }
    assert!(rejected > 80, "{rejected}");
    assert_eq!(s.admission_control.success, 1.0);
}

#[test]
fn circuit_breaker_opens_and_closes() {
    let mut s = server();
    let m = Method::Guarded.id();
    assert_eq!(
        s.on_request(m, &mut ctx(1, 1, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_request(m, &mut ctx(2, 1, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_request(m, &mut ctx(3, 1, 77), &mut ping("k", "b", 0)),
        reply("circuit open")
    );
    assert_eq!(s.circuit_breaker.last_trip, (1, 77));
    assert_eq!(
        s.on_response(m, &mut ctx(1, 1, 0), &mut pong("ok", 0)),
        Verdict::Forward
    );
    assert_eq!(s.circuit_breaker.pending, 1);
    assert_eq!(
        s.on_request(m, &mut ctx(4, 1, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
}

#[test]
fn lb_sticky_keeps_keys_on_their_backend() {
    let mut c = client();
    let m = Method::Balanced.id();
    let mut backend = |key: &str| {
        let mut x = ctx(1, 1, 0);
        assert_eq!(
            c.on_request(m, &mut x, &mut ping(key, "b", 0)),
            Verdict::Forward
        );
        x.metadata.get(b"backend").map(<[u8]>::to_vec)
    };
    let a = backend("a");
    let b = backend("b");
    assert_eq!(a.as_deref(), Some(&b"10.0.0.1"[..]));
    assert_eq!(b.as_deref(), Some(&b"10.0.0.2"[..]));
    assert_eq!(backend("c").as_deref(), Some(&b"10.0.0.1"[..]));
    assert_eq!(backend("a"), a);
    assert_eq!(backend("b"), b);
    // No backends configured: an error, not a panic (division by zero is 0).
    c.reload(&corpus::Tables {
        lb_sticky_backends: vec![],
        ..tables()
    });
    assert_eq!(
        c.on_request(m, &mut ctx(1, 1, 0), &mut ping("z", "b", 0)),
        reply("no backend")
    );
}

#[test]
fn cache_answers_hits_after_a_response() {
    let mut s = server();
    let m = Method::Cached.id();
    assert_eq!(
        s.on_request(m, &mut ctx(1, 1, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(
        s.on_response(m, &mut ctx(1, 1, 0), &mut pong("v1", 0)),
        Verdict::Forward
    );
    let mut x = ctx(2, 1, 0);
    assert_eq!(
        s.on_request(m, &mut x, &mut ping("k", "b", 0)),
        reply("cache hit")
    );
    assert_eq!(x.metadata.get(b"cached"), Some(&b"v1"[..]));
    assert_eq!(s.cache.hits, 1);
    assert!(s.cache.pending.is_empty());
    assert_eq!(
        s.on_request(m, &mut ctx(3, 1, 0), &mut ping("other", "b", 0)),
        Verdict::Forward
    );
}

#[test]
fn mutation_rewrites_in_place_or_replies_when_it_does_not_fit() {
    let mut s = server();
    let m = Method::Mutated.id();
    let mut req = ping("k", "secret-body", 41);
    assert_eq!(
        s.on_request(m, &mut ctx(1, 1, 0), &mut req),
        Verdict::Forward
    );
    let p = corpus::Ping::from_bytes(&req).expect("still valid");
    assert_eq!(
        (p.score, p.body.as_str(), p.key.as_str()),
        (42, "redacted", "k")
    );
    assert_eq!(p.tags, vec!["a".to_string(), "bc".to_string()]);
    let mut short = ping("k", "tiny", 1);
    assert_eq!(
        s.on_request(m, &mut ctx(2, 1, 0), &mut short),
        Verdict::Reply(ErrorReply::DOES_NOT_FIT)
    );
    let mut max = ping("k", "secret-body", i32::MAX);
    assert_eq!(
        s.on_request(m, &mut ctx(3, 1, 0), &mut max),
        Verdict::Reply(ErrorReply::DOES_NOT_FIT)
    );
    let mut resp = pong("ok", 21);
    assert_eq!(
        s.on_response(m, &mut ctx(1, 1, 0), &mut resp),
        Verdict::Forward
    );
    assert_eq!(corpus::Pong::from_bytes(&resp).expect("valid").value, 42);
}

#[test]
fn session_tracker_counts_per_session_and_shares_active_count() {
    let shared = corpus::ServerShared::default();
    let mut a = corpus::ServerPipeline::new(&shared, &tables(), &InitCtx { now: 0, seed: 1 });
    let mut b = corpus::ServerPipeline::new(&shared, &tables(), &InitCtx { now: 0, seed: 2 });
    let m = Method::Tracked.id();
    for sid in [1, 1, 2, 1] {
        assert_eq!(
            a.on_request(m, &mut ctx(0, sid, 0), &mut ping("k", "b", 0)),
            Verdict::Forward
        );
    }
    assert_eq!(
        b.on_request(m, &mut ctx(0, 9, 0), &mut ping("k", "b", 0)),
        Verdict::Forward
    );
    assert_eq!(a.session_tracker.sessions.get(&1), Some(&3));
    assert_eq!(a.session_tracker.sessions.get(&2), Some(&1));
    assert_eq!(b.session_tracker.sessions.get(&1), None);
    assert_eq!(*dataplane::anf::read_lock(&a.session_tracker.active), 3);
}

#[test]
fn codecs_round_trip_nested_and_repeated_fields() {
    let bytes = ping("key", "body", -5);
    let p = corpus::Ping::from_bytes(&bytes).expect("decodes");
    assert_eq!(
        p.inner.as_ref().map(|i| (i.a, i.b.as_str())),
        Some((-3, "in"))
    );
    assert_eq!(p.samples, vec![-1, 2, -3]);
    assert_eq!(p.weight, 0.25);
    let v = corpus::PingView::new_checked(&bytes).expect("valid");
    assert_eq!(v.inner().ok().flatten().map(|i| i.a()), Some(-3));
    let q = corpus::Pong::from_bytes(&pong("s", -9)).expect("decodes");
    assert_eq!(
        q.items,
        vec![corpus::Inner {
            a: 1,
            b: "x".into()
        }]
    );
    // Every truncation of a valid payload is rejected or decodes, never panics.
    for n in 0..bytes.len() {
        let _ = corpus::Ping::from_bytes(&bytes[..n]);
    }
    let mut small = [0u8; 8];
    assert!(p.encode(&mut small).is_err());
}

#[test]
fn methods_without_a_chain_on_a_side_forward_untouched() {
    let mut c = client();
    assert_eq!(
        c.on_request(Method::Acl.id(), &mut ctx(1, 1, 0), &mut [0u8; 2]),
        Verdict::Forward
    );
    let mut s = server();
    assert_eq!(
        s.on_request(Method::Metered.id(), &mut ctx(1, 1, 0), &mut [0u8; 2]),
        Verdict::Forward
    );
    assert_eq!(
        s.on_request(Method::Acl.id(), &mut ctx(1, 1, 0), &mut [0u8; 2]),
        Verdict::Drop
    );
    assert_eq!(s.refused.malformed, 1);
}
