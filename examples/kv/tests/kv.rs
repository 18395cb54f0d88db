//! Runs the generated KV pipeline over crafted request bytes: firewall verdicts from a
//! config-loaded rule table, session-tracker state, reload, malformed input, the
//! transport table, and a dispatch round trip through the client stubs.

use dataplane::anf::{
    AppError, DispatchError, InitCtx, RpcCtx, RpcHeader, TransportClass, Verdict,
};
use kv_example::kv;

fn tables(src: &str) -> kv::Tables {
    toml::from_str(src).expect("valid tables")
}

fn get_bytes(name: &str, user: &str) -> Vec<u8> {
    let req = kv::GetRequest {
        name: name.into(),
        user: user.into(),
    };
    let mut buf = vec![0u8; req.encoded_len()];
    let n = kv::client::encode_get(&req, &mut buf).expect("fits");
    assert_eq!(n, buf.len());
    buf
}

fn pipeline() -> kv::ServerPipeline {
    let t = tables("firewall_rules = [[\"alice\", \"allow\"], [\"bob\", \"deny\"]]\n");
    kv::ServerPipeline::new(
        &kv::ServerShared::default(),
        &t,
        &InitCtx { now: 0, seed: 1 },
    )
}

#[test]
fn firewall_allows_denies_and_rejects_unknown_users() {
    let mut p = pipeline();
    let mut ctx = RpcCtx::default();
    let get = kv::Method::Get.id();
    ctx.reset(RpcHeader::default(), 1_000);
    assert_eq!(
        p.on_request(get, &mut ctx, &mut get_bytes("k", "alice")),
        Verdict::Forward
    );
    let denied = p.on_request(get, &mut ctx, &mut get_bytes("k", "bob"));
    assert!(
        matches!(denied, Verdict::Reply(e) if e.message == "denied"),
        "{denied:?}"
    );
    let unknown = p.on_request(get, &mut ctx, &mut get_bytes("k", "mallory"));
    assert!(
        matches!(unknown, Verdict::Reply(e) if e.message == "denied"),
        "{unknown:?}"
    );
    // Only the allowed request reached the session tracker.
    assert_eq!(p.session_tracker.requests.get(&b"alice"[..]), Some(&1));
    assert_eq!(p.session_tracker.requests.get(&b"bob"[..]), None);
    assert_eq!(p.session_tracker.last_seen.get(&b"alice"[..]), Some(&1_000));
    assert_eq!(p.session_tracker.total, 1);
    let stats: Vec<_> = p.stats().collect();
    assert_eq!(stats[0].0, "firewall");
    assert_eq!((stats[0].1.forwarded, stats[0].1.replied), (1, 2));
    assert_eq!(stats[1].1.forwarded, 1);
}

#[test]
fn session_tracker_counts_per_user_and_reload_replaces_rules() {
    let mut p = pipeline();
    let mut ctx = RpcCtx::default();
    for i in 0..5u64 {
        ctx.reset(
            RpcHeader {
                rpc_id: i,
                ..Default::default()
            },
            10 + i,
        );
        assert_eq!(
            p.on_request(kv::Method::Get.id(), &mut ctx, &mut get_bytes("k", "alice")),
            Verdict::Forward
        );
    }
    assert_eq!(p.session_tracker.requests.get(&b"alice"[..]), Some(&5));
    assert_eq!(p.session_tracker.last_seen.get(&b"alice"[..]), Some(&14));
    p.reload(&tables("firewall_rules = [[\"bob\", \"allow\"]]\n"));
    assert_eq!(p.firewall.rules.len(), 1);
    assert!(matches!(
        p.on_request(kv::Method::Get.id(), &mut ctx, &mut get_bytes("k", "alice")),
        Verdict::Reply(_)
    ));
    assert_eq!(
        p.on_request(kv::Method::Get.id(), &mut ctx, &mut get_bytes("k", "bob")),
        Verdict::Forward
    );
}

#[test]
fn set_requests_use_the_same_chain() {
    let mut p = pipeline();
    let mut ctx = RpcCtx::default();
    let req = kv::SetRequest {
        name: "k".into(),
        user: "alice".into(),
        value: vec![1, 2, 3],
    };
    let mut buf = vec![0u8; req.encoded_len()];
    kv::client::encode_set(&req, &mut buf).expect("fits");
    assert_eq!(
        p.on_request(kv::Method::Set.id(), &mut ctx, &mut buf),
        Verdict::Forward
    );
    // Responses pass both elements (resp handlers forward).
    let mut resp = vec![0u8; 1];
    kv::SetResponse { ok: true }
        .encode(&mut resp)
        .expect("fits");
    assert_eq!(
        p.on_response(kv::Method::Set.id(), &mut ctx, &mut resp),
        Verdict::Forward
    );
}

#[test]
fn malformed_and_unknown_are_dropped_and_counted() {
    let mut p = pipeline();
    let mut ctx = RpcCtx::default();
    assert_eq!(
        p.on_request(kv::Method::Get.id(), &mut ctx, &mut [0u8; 3]),
        Verdict::Drop
    );
    let mut bad = get_bytes("k", "alice");
    bad[0] = 0xff; // user slot offset now points outside the payload
    assert_eq!(
        p.on_request(kv::Method::Get.id(), &mut ctx, &mut bad),
        Verdict::Drop
    );
    assert_eq!(
        p.on_request(99, &mut ctx, &mut get_bytes("k", "alice")),
        Verdict::Drop
    );
    assert_eq!(p.refused.malformed, 2);
    assert_eq!(p.refused.unknown_method, 1);
    assert_eq!(p.counters[0].forwarded, 0);
}

#[test]
fn transport_table_and_ids() {
    assert_eq!(
        kv::transport(kv::Method::Get.id()),
        Some(TransportClass::Unreliable)
    );
    assert_eq!(
        kv::transport(kv::Method::Set.id()),
        Some(TransportClass::ReliableOrdered)
    );
    assert_eq!(kv::transport(0), None);
    assert_eq!(kv::Method::from_id(2), Some(kv::Method::Set));
    assert_eq!(kv::Method::Set.name(), "set");
    assert_eq!(kv::SERVICE_NAME, "kv.KvService");
}

#[test]
fn hot_field_is_first_and_views_read_in_place() {
    // `user` is read by the firewall, so it sits at offset 0 of the fixed section.
    let bytes = get_bytes("the-key", "alice");
    assert_eq!(kv::GetRequestView::FIXED_LEN, 16);
    assert_eq!(
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        5
    );
    let v = kv::GetRequestView::new_checked(&bytes).expect("valid");
    assert_eq!(v.user(), b"alice");
    assert_eq!(v.name(), b"the-key");
    let mut b2 = bytes.clone();
    let mut m = kv::GetRequestMut::new_checked(&mut b2).expect("valid");
    assert!(m.set_user(b"bob").is_ok());
    assert!(m.set_user(b"too-long-for-it").is_err());
    assert_eq!(
        kv::GetRequest::from_bytes(&b2).expect("decodes").user,
        "bob"
    );
}

struct Store(std::collections::HashMap<String, Vec<u8>>);

impl kv::KvService for Store {
    fn get(&mut self, req: kv::GetRequestView<'_>) -> Result<kv::GetResponse, AppError> {
        let name = std::str::from_utf8(req.name()).map_err(|_| AppError::new(1, "bad name"))?;
        Ok(match self.0.get(name) {
            Some(v) => kv::GetResponse {
                value: v.clone(),
                found: true,
            },
            None => kv::GetResponse {
                value: Vec::new(),
                found: false,
            },
        })
    }

    fn set(&mut self, req: kv::SetRequestView<'_>) -> Result<kv::SetResponse, AppError> {
        let name = std::str::from_utf8(req.name()).map_err(|_| AppError::new(1, "bad name"))?;
        self.0.insert(name.to_string(), req.value().to_vec());
        Ok(kv::SetResponse { ok: true })
    }
}

#[test]
fn dispatch_round_trip_through_client_stubs() {
    let mut svc = Store(Default::default());
    let mut resp = [0u8; 256];
    let set = kv::SetRequest {
        name: "k".into(),
        user: "alice".into(),
        value: b"v1".to_vec(),
    };
    let mut req = [0u8; 256];
    let n = kv::client::encode_set(&set, &mut req).expect("fits");
    let m = kv::dispatch(&mut svc, kv::Method::Set.id(), &req[..n], &mut resp).expect("ok");
    assert!(kv::client::decode_set(&resp[..m]).expect("decodes").ok);
    let n = kv::client::encode_get(
        &kv::GetRequest {
            name: "k".into(),
            user: "alice".into(),
        },
        &mut req,
    )
    .expect("fits");
    let m = kv::dispatch(&mut svc, kv::Method::Get.id(), &req[..n], &mut resp).expect("ok");
    assert_eq!(
        kv::client::decode_get(&resp[..m]).expect("decodes"),
        kv::GetResponse {
            value: b"v1".to_vec(),
            found: true
        }
    );
    assert_eq!(
        kv::dispatch(&mut svc, 7, &req[..n], &mut resp),
        Err(DispatchError::UnknownMethod(7))
    );
    assert!(matches!(
        kv::dispatch(&mut svc, 1, &req[..3], &mut resp),
        Err(DispatchError::Malformed(_))
    ));
    assert!(matches!(
        kv::dispatch(&mut svc, 1, &req[..n], &mut resp[..2]),
        Err(DispatchError::Encode(_))
    ));
}
