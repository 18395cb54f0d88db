//! The near-miss spec (near_miss.proto: names close to what specgen generates, which
//! its name pass must accept): the generated module compiled (this file builds), and
//! its mangled and look-alike names behave: `type_` / `len_` accessors, the `value_raw`
//! field next to the `raw` slot accessors, the `Type` and `Dispatch` rpcs through
//! `dispatch`, and the element that reads the keyword field `type`.

use dataplane::anf::{AppError, ErrorReply, InitCtx, RpcCtx, RpcHeader, Verdict};
use specgen_corpus::near_miss::{self, Method, NearMiss};

fn get(ty: &str) -> near_miss::Get {
    near_miss::Get {
        type_: ty.into(),
        kind: "k".into(),
        len_: 7,
        name: "n".into(),
        raw: vec![1, 2],
        set: true,
        value_raw: -9,
        set_value: false,
    }
}

fn encode(m: &near_miss::Get) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    assert_eq!(m.encode(&mut buf), Ok(buf.len()));
    buf
}

#[test]
fn keyword_and_look_alike_fields_round_trip() {
    let m = get("read");
    let bytes = encode(&m);
    let v = near_miss::GetView::new_checked(&bytes).expect("valid");
    assert_eq!(v.type_(), b"read");
    assert_eq!(v.type_raw(), b"read");
    assert_eq!(v.kind(), b"k");
    assert_eq!(v.len_(), 7);
    assert_eq!(v.raw(), [1, 2]);
    assert_eq!(v.value_raw(), -9);
    assert!(v.set());
    assert!(!v.set_value());
    assert_eq!(near_miss::Get::from_bytes(&bytes), Ok(m.clone()));

    let mut bytes = bytes;
    let mut w = near_miss::GetMut::new_checked(&mut bytes).expect("valid");
    w.set_set_value(true).expect("inline fits");
    w.set_value_raw(5).expect("inline fits");
    w.set_type(b"rw").expect("shorter fits");
    let back = near_miss::Get::from_bytes(&bytes).expect("decodes");
    assert_eq!((back.set_value, back.value_raw), (true, 5));
    assert_eq!(back.type_, "rw");
    // Messages named like std items are ordinary messages.
    let outer = near_miss::Outer {
        some: Some(Box::new(near_miss::Some { x: true })),
        none: None,
        ok: Some(Box::new(near_miss::Ok { x: true })),
        ..Default::default()
    };
    let mut buf = vec![0u8; outer.encoded_len()];
    assert_eq!(outer.encode(&mut buf), Ok(buf.len()));
    assert_eq!(near_miss::Outer::from_bytes(&buf), Ok(outer));
}

#[test]
fn element_reads_the_keyword_field() {
    let mut p = near_miss::ServerPipeline::new(
        &near_miss::ServerShared::default(),
        &near_miss::Tables::default(),
        &InitCtx { now: 0, seed: 1 },
    );
    let mut ctx = RpcCtx::new(RpcHeader::default(), 0);
    let id = Method::Get.id();
    assert_eq!(
        p.on_request(id, &mut ctx, &mut encode(&get("read"))),
        Verdict::Forward
    );
    assert_eq!(
        p.on_request(id, &mut ctx, &mut encode(&get("deny"))),
        Verdict::Reply(ErrorReply::new("denied"))
    );
    assert_eq!(p.type_gate.passed, 1);
}

struct Svc;

impl NearMiss for Svc {
    fn get(&mut self, req: near_miss::GetView<'_>) -> Result<near_miss::Outer, AppError> {
        Ok(near_miss::Outer {
            viewer: Some(Box::new(near_miss::Viewer {
                name: String::from_utf8_lossy(req.name()).into_owned(),
            })),
            ..Default::default()
        })
    }

    fn get_it(&mut self, req: near_miss::GetView<'_>) -> Result<near_miss::Viewer, AppError> {
        Ok(near_miss::Viewer {
            name: String::from_utf8_lossy(req.kind()).into_owned(),
        })
    }

    fn type_(
        &mut self,
        req: near_miss::GetMutationView<'_>,
    ) -> Result<near_miss::GetReference, AppError> {
        let id = i32::try_from(req.type_().len()).unwrap_or(i32::MAX);
        Ok(near_miss::GetReference { id })
    }

    fn dispatch(
        &mut self,
        req: near_miss::ViewerView<'_>,
    ) -> Result<near_miss::Responders, AppError> {
        Ok(near_miss::Responders {
            ok: req.name() == b"yes",
        })
    }
}

#[test]
fn keyword_and_look_alike_rpcs_dispatch() {
    let mut resp = [0u8; 256];
    let req = near_miss::GetMutation {
        type_: "four".into(),
    };
    let mut buf = vec![0u8; req.encoded_len()];
    assert_eq!(req.encode(&mut buf), Ok(buf.len()));
    let n = near_miss::dispatch(&mut Svc, Method::Type.id(), &buf, &mut resp).expect("type");
    assert_eq!(
        resp.get(..n).map(near_miss::GetReference::from_bytes),
        Some(Ok(near_miss::GetReference { id: 4 }))
    );

    let req = near_miss::Viewer { name: "yes".into() };
    let mut buf = vec![0u8; req.encoded_len()];
    assert_eq!(req.encode(&mut buf), Ok(buf.len()));
    let n =
        near_miss::dispatch(&mut Svc, Method::Dispatch.id(), &buf, &mut resp).expect("dispatch");
    assert_eq!(
        resp.get(..n).map(near_miss::Responders::from_bytes),
        Some(Ok(near_miss::Responders { ok: true }))
    );

    let buf = encode(&get("x"));
    let n = near_miss::dispatch(&mut Svc, Method::GetIt.id(), &buf, &mut resp).expect("get_it");
    assert_eq!(
        resp.get(..n).map(near_miss::Viewer::from_bytes),
        Some(Ok(near_miss::Viewer { name: "k".into() }))
    );
    assert_eq!(Method::ALL.len(), 4);
    assert_eq!(Method::Type.name(), "type");
}
