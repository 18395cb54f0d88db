//! The endpoint's API and session behaviour on a loopback pair: errors as answers,
//! windows, forged and misdirected packets, close, idle timeout, response-cache
//! release, malformed headers counted by reason.

use dataplane::transport::sim::{LoopbackPair, LOOPBACK_CLIENT};
use dataplane::transport::{
    error_code, CallError, ClassTable, CloseReason, Event, RespondError, RpcError, RxDrop,
    SessionId, TransportClass, TransportConfig,
};
use dataplane::wire::rpc::{HeaderError, PacketType, RpcHeaderRepr, WireClass, HEADER_LEN};

const REL: TransportClass = TransportClass::Reliable;

fn pair(window: u8) -> LoopbackPair {
    let mut classes = ClassTable::new();
    classes
        .set(1, 1, TransportClass::Reliable)
        .set(1, 2, TransportClass::Unreliable);
    let cfg = TransportConfig {
        window,
        ..TransportConfig::default()
    };
    LoopbackPair::connected(&cfg, classes, 3).unwrap()
}

/// Answers every pending request with `answer(payload)`; returns how many.
fn serve(p: &mut LoopbackPair, answer: impl Fn(&[u8]) -> Vec<u8>) -> usize {
    let mut reqs = Vec::new();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { req, payload, .. } = ev {
            reqs.push((req, answer(payload)));
        }
    }
    let n = reqs.len();
    for (req, a) in reqs {
        p.server.respond(p.now, req, &a).unwrap();
    }
    p.pump();
    n
}

fn responses(p: &mut LoopbackPair) -> Vec<Result<Vec<u8>, RpcError>> {
    let mut v = Vec::new();
    while let Some(ev) = p.client.poll_event() {
        if let Event::Response { result, .. } = ev {
            v.push(result.map(|b| b.to_vec()));
        }
    }
    v
}

#[test]
fn round_trip_and_error_answers() {
    let mut p = pair(8);
    let s = p.session;
    p.client.call(p.now, s, 1, 1, REL, b"ping").unwrap();
    p.client.call(p.now, s, 9, 9, REL, b"?").unwrap(); // unknown method
    p.client
        .call(p.now, s, 1, 2, TransportClass::Reliable, b"x") // server says unreliable
        .unwrap();
    p.pump();
    assert_eq!(serve(&mut p, |b| [b, b"-pong"].concat()), 1);
    let mut r = responses(&mut p);
    r.sort_by_key(|x| format!("{x:?}"));
    assert!(r.contains(&Ok(b"ping-pong".to_vec())));
    assert!(r.contains(&Err(RpcError::Remote {
        code: error_code::UNKNOWN_METHOD
    })));
    assert!(r.contains(&Err(RpcError::Remote {
        code: error_code::CLASS_MISMATCH
    })));
    assert_eq!(p.server.stats().rx_unknown_method, 1);
}

#[test]
fn window_limits_outstanding_calls() {
    let mut p = pair(2);
    let s = p.session;
    p.client.call(p.now, s, 1, 1, REL, b"a").unwrap();
    p.client.call(p.now, s, 1, 1, REL, b"b").unwrap();
    assert_eq!(
        p.client.call(p.now, s, 1, 1, REL, b"c"),
        Err(CallError::WindowFull)
    );
    p.pump();
    serve(&mut p, |b| b.to_vec());
    assert_eq!(responses(&mut p).len(), 2);
    p.pump();
    assert_eq!(p.client.credits(s), 2);
    let big = vec![0u8; (1 << 20) + 1];
    assert!(matches!(
        p.client.call(p.now, s, 1, 1, REL, &big),
        Err(CallError::TooLarge { .. })
    ));
    assert_eq!(
        p.client.call(p.now, SessionId(12345), 1, 1, REL, b"x"),
        Err(CallError::UnknownSession)
    );
}

#[test]
fn forged_and_misdirected_packets_are_dropped() {
    let mut p = pair(8);
    let real = p.server_session().unwrap();
    let mut h = RpcHeaderRepr::new(PacketType::Request);
    h.class = WireClass::Reliable;
    h.service = 1;
    h.method = 1;
    h.msg_len = 1;
    // Right slot index, wrong tag.
    h.session = real.0 ^ (1 << 40);
    let mut pkt = vec![0u8; HEADER_LEN + 1];
    h.emit(&mut pkt).unwrap();
    assert_eq!(
        p.server.handle_packet(p.now, LOOPBACK_CLIENT, &pkt),
        Err(RxDrop::UnknownSession)
    );
    // Right id, wrong source.
    h.session = real.0;
    h.emit(&mut pkt).unwrap();
    assert_eq!(
        p.server.handle_packet(p.now, 77, &pkt),
        Err(RxDrop::WrongPeer)
    );
    assert!(
        p.server.poll_event().is_none(),
        "nothing reached the handler"
    );
    // Malformed headers are counted by reason.
    assert_eq!(
        p.server.handle_packet(p.now, LOOPBACK_CLIENT, &pkt[..10]),
        Err(RxDrop::Malformed(HeaderError::Truncated { len: 10 }))
    );
    pkt[0] = 0;
    assert!(matches!(
        p.server.handle_packet(p.now, LOOPBACK_CLIENT, &pkt),
        Err(RxDrop::Malformed(HeaderError::BadMagic(_)))
    ));
    let st = p.server.stats();
    assert_eq!(
        (st.rx_malformed.truncated, st.rx_malformed.bad_magic),
        (1, 1)
    );
    assert_eq!((st.rx_unknown_session, st.rx_wrong_peer), (1, 1));
}

#[test]
fn duplicates_are_answered_from_the_cache_not_re_executed() {
    let mut p = pair(8);
    let s = p.session;
    let mut out = vec![0u8; 2048];
    p.client.call(p.now, s, 1, 1, REL, b"once").unwrap();
    let (_, len) = p.client.poll_transmit(p.now, &mut out).unwrap();
    let req = out[..len].to_vec();
    p.server
        .handle_packet(p.now, LOOPBACK_CLIENT, &req)
        .unwrap();
    assert_eq!(serve(&mut p, |_| b"done".to_vec()), 1);
    let _ = responses(&mut p);
    // The same request again (a duplicate on the wire).
    p.server
        .handle_packet(p.now, LOOPBACK_CLIENT, &req)
        .unwrap();
    assert_eq!(
        serve(&mut p, |_| b"again".to_vec()),
        0,
        "not executed twice"
    );
    assert_eq!(p.server.stats().responses_resent, 1);
    // Responding twice to one request is refused.
    let mut reqs = Vec::new();
    p.client.call(p.now, s, 1, 1, REL, b"r").unwrap();
    p.pump();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { req, .. } = ev {
            reqs.push(req);
        }
    }
    p.server.respond(p.now, reqs[0], b"1").unwrap();
    assert_eq!(
        p.server.respond(p.now, reqs[0], b"2"),
        Err(RespondError::UnknownRequest)
    );
}

#[test]
fn multi_fragment_response_cache_is_freed_once_acked() {
    let mut p = pair(8);
    let s = p.session;
    p.client.call(p.now, s, 1, 1, REL, &[7; 10_000]).unwrap();
    p.pump();
    serve(&mut p, |b| b.iter().map(|x| x + 1).collect());
    let r = responses(&mut p);
    assert_eq!(r, vec![Ok(vec![8; 10_000])]);
    p.pump();
    assert_eq!(
        p.server.buffered_bytes(),
        (0, 0),
        "cache and reassembly released"
    );
    assert_eq!(p.client.buffered_bytes(), (0, 0));
    assert_eq!(p.server.stats().response_cache_freed, 1);
}

#[test]
fn close_fails_outstanding_calls_and_tells_the_peer() {
    let mut p = pair(8);
    let s = p.session;
    let rpc = p.client.call(p.now, s, 1, 1, REL, b"x").unwrap();
    p.client.close(p.now, s).unwrap();
    let mut got = Vec::new();
    while let Some(ev) = p.client.poll_event() {
        if let Event::Response { rpc: r, result, .. } = ev {
            got.push((r, result.map(|b| b.to_vec())));
        }
    }
    assert_eq!(got, vec![(rpc, Err(RpcError::SessionClosed))]);
    p.pump();
    let mut closed = false;
    while let Some(ev) = p.server.poll_event() {
        if let Event::SessionClosed { reason, .. } = ev {
            assert_eq!(reason, CloseReason::Peer);
            closed = true;
        }
    }
    assert!(closed);
    assert_eq!(p.server.session_count(), 0);
    assert_eq!(p.client.session_count(), 0);
}

#[test]
fn idle_server_session_expires_and_the_client_learns_it() {
    let mut p = pair(8);
    let s = p.session;
    let idle = p.server.config().idle_timeout_ns;
    p.now = p.now + idle + 1;
    p.server.handle_timeout(p.now);
    assert_eq!(p.server.session_count(), 0);
    assert!(p.server.stats().sessions_idle_closed == 1);
    p.client.call(p.now, s, 1, 1, REL, b"late").unwrap();
    p.pump();
    let mut reason = None;
    let mut failed = false;
    while let Some(ev) = p.client.poll_event() {
        match ev {
            Event::SessionClosed { reason: r, .. } => reason = Some(r),
            Event::Response { result, .. } => failed = result == Err(RpcError::SessionClosed),
            _ => {}
        }
    }
    assert_eq!(reason, Some(CloseReason::PeerForgot));
    assert!(failed);
}

#[test]
fn unreliable_keeps_no_server_state_and_times_out() {
    let mut p = pair(8);
    let s = p.session;
    let mut out = vec![0u8; 2048];
    p.client
        .call(p.now, s, 1, 2, TransportClass::Unreliable, b"u")
        .unwrap();
    let (_, len) = p.client.poll_transmit(p.now, &mut out).unwrap();
    // Delivered twice: executed twice (no per-RPC server state).
    p.server
        .handle_packet(p.now, LOOPBACK_CLIENT, &out[..len])
        .unwrap();
    p.server
        .handle_packet(p.now, LOOPBACK_CLIENT, &out[..len])
        .unwrap();
    let mut n = 0;
    while let Some(ev) = p.server.poll_event() {
        n += usize::from(matches!(ev, Event::Request { .. }));
    }
    assert_eq!(n, 2);
    // No answer: the client times out after its deadline.
    p.now = p.now + p.client.config().unreliable_timeout_ns;
    p.client.handle_timeout(p.now);
    assert_eq!(
        responses(&mut p),
        vec![Err(RpcError::Timeout { retries: 0 })]
    );
}

#[test]
fn connecting_to_nobody_fails_instead_of_hanging() {
    let mut p = pair(8);
    let lonely = p.client.connect(p.now, 200).unwrap();
    let mut out = vec![0u8; 2048];
    let mut failed = false;
    for _ in 0..100 {
        while p.client.poll_transmit(p.now, &mut out).is_some() {} // into the void
        match p.client.poll_timeout() {
            Some(t) => p.now = t.max(p.now),
            None => break,
        }
        p.client.handle_timeout(p.now);
        while let Some(ev) = p.client.poll_event() {
            if let Event::ConnectFailed { session } = ev {
                assert_eq!(session, lonely);
                failed = true;
            }
        }
        if failed {
            break;
        }
    }
    assert!(failed);
    assert!(p.client.stats().connect_retries > 0);
}

#[test]
fn a_lost_ordered_rpc_does_not_block_the_session_forever() {
    let mut classes = ClassTable::new();
    classes.set(1, 3, TransportClass::ReliableOrdered);
    let cfg = TransportConfig {
        max_retries: 3,
        ..TransportConfig::default()
    };
    let mut p = LoopbackPair::connected(&cfg, classes, 5).unwrap();
    let s = p.session;
    let ord = TransportClass::ReliableOrdered;
    let mut out = vec![0u8; 2048];
    let a = p.client.call(p.now, s, 1, 3, ord, b"A").unwrap();
    let b = p.client.call(p.now, s, 1, 3, ord, b"B").unwrap();
    // A's request is lost; B's arrives and waits for A in the reorder buffer.
    let _ = p.client.poll_transmit(p.now, &mut out).unwrap();
    let (_, len) = p.client.poll_transmit(p.now, &mut out).unwrap();
    p.server
        .handle_packet(p.now, LOOPBACK_CLIENT, &out[..len])
        .unwrap();
    assert!(p.server.poll_event().is_none(), "B is held, not delivered");
    // The network eats every client packet until the client gives up on A.
    let mut answers = Vec::new();
    for _ in 0..1000 {
        while p.client.poll_transmit(p.now, &mut out).is_some() {}
        while let Some(ev) = p.client.poll_event() {
            if let Event::Response { rpc, result, .. } = ev {
                answers.push((rpc, result.map(|x| x.to_vec())));
            }
        }
        if answers.len() == 2 {
            break;
        }
        p.now = p.client.poll_timeout().expect("calls pending have timers");
        p.client.handle_timeout(p.now);
    }
    answers.sort_by_key(|x| x.0);
    assert!(matches!(answers[0], (r, Err(RpcError::Timeout { .. })) if r == a));
    assert_eq!(answers[1], (b, Err(RpcError::OrderBroken)));
    // The next ordered call restarts the sequence: it is delivered, B never is.
    p.client.call(p.now, s, 1, 3, ord, b"C").unwrap();
    p.pump();
    let mut delivered = Vec::new();
    let mut reqs = Vec::new();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { req, payload, .. } = ev {
            delivered.push(payload.to_vec());
            reqs.push(req);
        }
    }
    assert_eq!(delivered, vec![b"C".to_vec()]);
    p.server.respond(p.now, reqs[0], b"c").unwrap();
    p.pump();
    assert_eq!(responses(&mut p), vec![Ok(b"c".to_vec())]);
    assert_eq!(p.server.stats().ordered_resyncs, 1);
}

/// Writes `payload` after the header room of a packet-sized buffer.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN + TransportConfig::default().mtu_payload];
    b[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    b
}

#[test]
fn in_place_round_trips_match_the_queued_api_for_every_class() {
    use dataplane::transport::sim::LOOPBACK_SERVER;
    use dataplane::transport::Received;
    let mut classes = ClassTable::new();
    classes
        .set(1, 1, TransportClass::Unreliable)
        .set(1, 2, TransportClass::Reliable)
        .set(1, 3, TransportClass::ReliableOrdered);
    let mut p = LoopbackPair::connected(&TransportConfig::default(), classes, 5).unwrap();
    let s = p.session;
    for (method, class) in [
        (1, TransportClass::Unreliable),
        (2, TransportClass::Reliable),
        (3, TransportClass::ReliableOrdered),
    ] {
        let mut out = framed(b"hello");
        let (rpc, first) = p
            .client
            .call_in_place(p.now, s, 1, method, class, &mut out, 5)
            .unwrap();
        let (to, len) = first.expect("one packet goes at once");
        assert_eq!(to, LOOPBACK_SERVER);
        // The packet is exactly what the queued API would send: a valid header, the
        // payload untouched behind it.
        assert_eq!(&out[HEADER_LEN..len], b"hello");
        let Ok(Received::Request { req, peer, payload }) =
            p.server.receive(p.now, LOOPBACK_CLIENT, &mut out[..len])
        else {
            panic!("{class:?}: request not handed out in place");
        };
        assert_eq!(
            (peer, req.method, req.class),
            (LOOPBACK_CLIENT, method, class)
        );
        // The handler may rewrite the request in place.
        payload.make_ascii_uppercase();
        let mut resp = framed(payload);
        let (_, rlen) = p
            .server
            .respond_in_place(p.now, req, &mut resp, 5)
            .unwrap()
            .expect("one packet goes at once");
        // A second answer to the same request is refused (reliable) or harmless
        // (unreliable: no state), as with `respond`.
        if class.is_reliable() {
            assert_eq!(
                p.server.respond_in_place(p.now, req, &mut framed(b"x"), 1),
                Err(RespondError::UnknownRequest)
            );
        }
        let Ok(Received::Response {
            session,
            rpc: got,
            result,
        }) = p.client.receive(p.now, LOOPBACK_SERVER, &mut resp[..rlen])
        else {
            panic!("{class:?}: answer not handed out in place");
        };
        assert_eq!((session, got), (s, rpc));
        assert_eq!(result.unwrap(), b"HELLO");
        // Nothing else is pending on either side.
        assert!(p.client.poll_event().is_none() && p.server.poll_event().is_none());
        assert_eq!(p.pump(), 0, "{class:?}: a stray packet");
    }
    let (c, sv) = (p.client.stats(), p.server.stats());
    assert_eq!(
        (c.sent_in_place, c.answers_in_place, c.rpcs_completed),
        (3, 3, 3)
    );
    assert_eq!((sv.sent_in_place, sv.requests_in_place), (3, 3));
}

#[test]
fn in_place_calls_refuse_what_the_buffer_cannot_hold_and_bad_sessions() {
    let mut p = pair(4);
    let s = p.session;
    let mut out = framed(b"abc");
    let cap = out.len() - HEADER_LEN;
    assert_eq!(
        p.client.call_in_place(
            p.now,
            s,
            1,
            2,
            TransportClass::Unreliable,
            &mut out,
            cap + 1
        ),
        Err(CallError::BufferTooSmall { len: cap + 1, cap })
    );
    let mut tiny = [0u8; HEADER_LEN - 1];
    assert_eq!(
        p.client
            .call_in_place(p.now, s, 1, 2, TransportClass::Unreliable, &mut tiny, 0),
        Err(CallError::BufferTooSmall { len: 0, cap: 0 })
    );
    let forged = SessionId(s.0 ^ (1 << 40));
    assert_eq!(
        p.client
            .call_in_place(p.now, forged, 1, 2, TransportClass::Unreliable, &mut out, 3),
        Err(CallError::UnknownSession)
    );
    // A refused call takes no slot: the window is still whole.
    assert_eq!(p.client.credits(s), 4);
    assert_eq!(p.client.stats().calls, 0);
}

#[test]
fn in_place_receive_drops_bad_packets_with_their_reason_and_keeps_event_order() {
    use dataplane::transport::Received;
    let mut p = pair(8);
    let s = p.session;
    // Garbage and a truncated header: dropped, counted, reported.
    let mut junk = [0xa5u8; 40];
    assert_eq!(
        p.server
            .receive(p.now, LOOPBACK_CLIENT, &mut junk)
            .unwrap_err(),
        RxDrop::Malformed(HeaderError::BadMagic(0xa5a5))
    );
    assert!(matches!(
        p.server.receive(p.now, LOOPBACK_CLIENT, &mut [0u8; 5]),
        Err(RxDrop::Malformed(HeaderError::Truncated { len: 5 }))
    ));
    assert_eq!(p.server.stats().rx_malformed.bad_magic, 1);
    // While events are queued, a one-packet request queues behind them instead of
    // overtaking: a multi-fragment request is queued first, then a small one arrives.
    let big = vec![7u8; 3000];
    p.client.call(p.now, s, 1, 1, REL, &big).unwrap();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; TransportConfig::default().max_packet_len()];
    while let Some((_, len)) = p.client.poll_transmit(p.now, &mut buf) {
        frames.push(buf[..len].to_vec());
    }
    let mut small = framed(b"small");
    let (_, first) = p
        .client
        .call_in_place(p.now, s, 1, 1, REL, &mut small, 5)
        .unwrap();
    let (_, len) = first.unwrap();
    frames.push(small[..len].to_vec());
    let mut inline = 0;
    for f in &mut frames {
        if let Ok(Received::Request { .. }) = p.server.receive(p.now, LOOPBACK_CLIENT, f) {
            inline += 1;
        }
    }
    assert_eq!(inline, 0, "the small request overtook the queued one");
    let mut order = Vec::new();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { payload, .. } = ev {
            order.push(payload.len());
        }
    }
    assert_eq!(order, [3000, 5]);
}
