//! Tests of the single-fragment fast paths: unreliable calls through the packet ring
//! and the endpoint-wide timeout sweep, one-packet answers through the event arena,
//! and their fall-backs to the general path. Test-only module.

use super::sim::{run, LoopbackPair, SimConfig, LOOPBACK_CLIENT, LOOPBACK_SERVER};
use super::{
    ClassTable, Event, RequestRef, RpcError, RpcId, RxDrop, SessionId, TransportClass,
    TransportConfig,
};
use crate::port::sim::Impairment;
use crate::wire::rpc::HEADER_LEN;

const UNREL: TransportClass = TransportClass::Unreliable;

fn pair(cfg: &TransportConfig) -> LoopbackPair {
    let mut classes = ClassTable::new();
    classes
        .set(1, 1, TransportClass::Unreliable)
        .set(1, 2, TransportClass::Reliable)
        .set(1, 3, TransportClass::ReliableOrdered);
    LoopbackPair::connected(cfg, classes, 11).expect("loopback pair connects")
}

/// Every packet the client has queued, as owned bytes.
fn client_packets(p: &mut LoopbackPair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; p.client.config().max_packet_len()];
    while let Some((to, len)) = p.client.poll_transmit(p.now, &mut buf) {
        assert_eq!(to, LOOPBACK_SERVER);
        out.push(buf[..len].to_vec());
    }
    out
}

fn server_packets(p: &mut LoopbackPair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; p.server.config().max_packet_len()];
    while let Some((to, len)) = p.server.poll_transmit(p.now, &mut buf) {
        assert_eq!(to, LOOPBACK_CLIENT);
        out.push(buf[..len].to_vec());
    }
    out
}

/// The requests waiting at the server, with their payloads.
fn server_requests(p: &mut LoopbackPair) -> Vec<(RequestRef, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { req, payload, .. } = ev {
            v.push((req, payload.to_vec()));
        }
    }
    v
}

type Answer = (SessionId, RpcId, Result<Vec<u8>, RpcError>);

fn client_answers(p: &mut LoopbackPair) -> Vec<Answer> {
    let mut v = Vec::new();
    while let Some(ev) = p.client.poll_event() {
        if let Event::Response {
            session,
            rpc,
            result,
        } = ev
        {
            v.push((session, rpc, result.map(|b| b.to_vec())));
        }
    }
    v
}

/// Client sends, server echoes with a prefix, responses come back: a full round.
fn echo_round(p: &mut LoopbackPair) {
    for pkt in client_packets(p) {
        let _ = p.server.handle_packet(p.now, LOOPBACK_CLIENT, &pkt);
    }
    for (req, body) in server_requests(p) {
        let mut answer = b"re:".to_vec();
        answer.extend_from_slice(&body);
        p.server.respond(p.now, req, &answer).expect("respond");
    }
    for pkt in server_packets(p) {
        let _ = p.client.handle_packet(p.now, LOOPBACK_SERVER, &pkt);
    }
}

fn harsh() -> Impairment {
    Impairment {
        loss: 0.10,
        reorder: 0.25,
        dup: 0.05,
        delay_ns: 20_000,
        jitter_ns: 10_000,
    }
}

#[test]
fn unreliable_single_fragment_under_faults_ends_each_call_exactly_once() {
    for seed in [1u64, 2, 3] {
        let cfg = SimConfig {
            rpcs: 3_000,
            class: UNREL,
            impairment: harsh(),
            msg_size: 64,
            seed,
            ..SimConfig::default()
        };
        let r = run(&cfg).expect("simulation runs");
        assert!(!r.hung, "seed {seed}: hung");
        assert_eq!(
            r.completed + r.failed,
            r.sent,
            "seed {seed}: an answer per call"
        );
        assert_eq!(r.duplicate_answers, 0, "seed {seed}");
        assert_eq!(r.corrupted_responses, 0, "seed {seed}");
        assert_eq!(r.completed_not_executed, 0, "seed {seed}");
        assert_eq!(
            r.failed, r.timeouts,
            "seed {seed}: losses surface as timeouts"
        );
        // With 10% loss each way some calls must time out and most must complete.
        assert!(r.timeouts > 0, "seed {seed}: no timeout under 10% loss");
        assert!(r.completed > r.sent / 2, "seed {seed}: {r:?}");
        assert_eq!(
            r.client.fast_calls, r.sent,
            "seed {seed}: all on the fast path"
        );
        assert!(r.server.fast_responses > 0, "seed {seed}");
        assert!(r.client.unreliable_sweeps > 0, "seed {seed}");
        // Duplicated responses of answered calls are dropped and counted.
        assert!(
            r.client.late_responses > 0,
            "seed {seed}: 5% dup, none seen late"
        );
    }
}

#[test]
fn stray_forged_and_duplicated_responses_complete_nothing_else() {
    let cfg = TransportConfig::default();
    let mut p = pair(&cfg);
    let s = p.session;
    let a = p
        .client
        .call(p.now, s, 1, 1, UNREL, b"aaaa")
        .expect("call a");
    let b = p
        .client
        .call(p.now, s, 1, 1, UNREL, b"bbbb")
        .expect("call b");
    assert_eq!(p.client.stats().fast_calls, 2);
    for pkt in client_packets(&mut p) {
        p.server
            .handle_packet(p.now, LOOPBACK_CLIENT, &pkt)
            .expect("request accepted");
    }
    let reqs = server_requests(&mut p);
    assert_eq!(reqs.len(), 2);
    for (req, body) in &reqs {
        p.server.respond(p.now, *req, body).expect("respond");
    }
    let resps = server_packets(&mut p);
    assert_eq!(resps.len(), 2);
    let resp_a = resps[0].clone();
    // Forgeries built from a's response.
    let mut wrong_session = resp_a.clone();
    wrong_session[16] ^= 0x5a; // session id, low byte (slot index)
    wrong_session[20] ^= 0x5a; // and tag
    let mut wrong_rpc = resp_a.clone();
    wrong_rpc[24] = wrong_rpc[24].wrapping_add(64); // an rpc id never issued
    assert_eq!(
        p.client
            .handle_packet(p.now, LOOPBACK_SERVER, &wrong_session),
        Err(RxDrop::UnknownSession)
    );
    assert_eq!(
        p.client.handle_packet(p.now, LOOPBACK_SERVER, &wrong_rpc),
        Err(RxDrop::Stale)
    );
    assert_eq!(
        p.client.handle_packet(p.now, 77, &resp_a),
        Err(RxDrop::WrongPeer),
        "right bytes from the wrong peer"
    );
    assert!(client_answers(&mut p).is_empty(), "nothing completed yet");
    // The real answer, then its duplicate.
    p.client
        .handle_packet(p.now, LOOPBACK_SERVER, &resp_a)
        .expect("a's response");
    let late_before = p.client.stats().late_responses;
    assert_eq!(
        p.client.handle_packet(p.now, LOOPBACK_SERVER, &resp_a),
        Err(RxDrop::Stale)
    );
    assert_eq!(p.client.stats().late_responses, late_before + 1);
    let got = client_answers(&mut p);
    assert_eq!(got, vec![(s, a, Ok(b"aaaa".to_vec()))]);
    // b is still outstanding and completes with its own bytes, once.
    p.client
        .handle_packet(p.now, LOOPBACK_SERVER, &resps[1])
        .expect("b's response");
    assert_eq!(client_answers(&mut p), vec![(s, b, Ok(b"bbbb".to_vec()))]);
    assert_eq!(
        p.client.handle_packet(p.now, LOOPBACK_SERVER, &resps[1]),
        Err(RxDrop::Stale)
    );
    assert!(client_answers(&mut p).is_empty());
    let st = p.client.stats();
    assert_eq!((st.calls, st.rpcs_completed, st.rpcs_failed), (2, 2, 0));
    // The server kept nothing per RPC.
    assert_eq!(p.server.buffered_bytes(), (0, 0));
}

#[test]
fn response_after_timeout_is_dropped_and_counted() {
    let cfg = TransportConfig::default();
    let timeout = cfg.unreliable_timeout_ns;
    let mut p = pair(&cfg);
    let s = p.session;
    let t0 = p.now;
    let rpc = p.client.call(p.now, s, 1, 1, UNREL, b"slow").expect("call");
    let due = p.client.poll_timeout().expect("the sweep is armed");
    assert!(due <= t0 + timeout, "sweep at or before the deadline");
    for pkt in client_packets(&mut p) {
        p.server
            .handle_packet(p.now, LOOPBACK_CLIENT, &pkt)
            .expect("request");
    }
    let reqs = server_requests(&mut p);
    for (req, body) in &reqs {
        p.server.respond(p.now, *req, body).expect("respond");
    }
    let held = server_packets(&mut p);
    assert_eq!(held.len(), 1);
    // Just before the deadline: nothing.
    p.now = t0 + (timeout - 1);
    p.client.handle_timeout(p.now);
    assert!(client_answers(&mut p).is_empty());
    // At the deadline: one timeout.
    p.now = t0 + timeout;
    p.client.handle_timeout(p.now);
    assert_eq!(
        client_answers(&mut p),
        vec![(s, rpc, Err(RpcError::Timeout { retries: 0 }))]
    );
    assert_eq!(p.client.stats().rpc_timeouts, 1);
    // Later sweeps do not answer it again.
    p.now = p.now + 10 * timeout;
    p.client.handle_timeout(p.now);
    assert!(client_answers(&mut p).is_empty());
    assert_eq!(p.client.poll_timeout(), None, "nothing left to time");
    // The late response is dropped and counted, and answers nothing.
    let stale = p.client.stats().rx_stale;
    assert_eq!(
        p.client.handle_packet(p.now, LOOPBACK_SERVER, &held[0]),
        Err(RxDrop::Stale)
    );
    assert_eq!(p.client.stats().rx_stale, stale + 1);
    assert_eq!(p.client.stats().late_responses, 1);
    assert!(client_answers(&mut p).is_empty());
    // The slot is usable again.
    let next = p
        .client
        .call(p.now, s, 1, 1, UNREL, b"again")
        .expect("call");
    echo_round(&mut p);
    assert_eq!(
        client_answers(&mut p),
        vec![(s, next, Ok(b"re:again".to_vec()))]
    );
}

#[test]
fn sweep_times_out_only_expired_calls_across_sessions() {
    let cfg = TransportConfig::default();
    let timeout = cfg.unreliable_timeout_ns;
    let mut p = pair(&cfg);
    let s1 = p.session;
    let s2 = p
        .client
        .connect(p.now, LOOPBACK_SERVER)
        .expect("second session");
    p.pump();
    while p.client.poll_event().is_some() {}
    assert!(p.client.is_open(s2));
    let a = p.client.call(p.now, s1, 1, 1, UNREL, b"a").expect("a");
    p.now = p.now + timeout / 2;
    let b = p.client.call(p.now, s2, 1, 1, UNREL, b"b").expect("b");
    // Both requests are lost.
    assert_eq!(client_packets(&mut p).len(), 2);
    p.now = p.now + timeout / 2;
    p.client.handle_timeout(p.now);
    assert_eq!(
        client_answers(&mut p),
        vec![(s1, a, Err(RpcError::Timeout { retries: 0 }))]
    );
    let due = p.client.poll_timeout().expect("re-armed for b");
    assert!(due <= p.now + timeout / 2);
    p.now = p.now + timeout / 2;
    p.client.handle_timeout(p.now);
    assert_eq!(
        client_answers(&mut p),
        vec![(s2, b, Err(RpcError::Timeout { retries: 0 }))]
    );
    assert_eq!(p.client.stats().rpc_timeouts, 2);
}

#[test]
fn messages_larger_than_one_fragment_take_the_general_path() {
    let cfg = TransportConfig::default();
    let mut p = pair(&cfg);
    let s = p.session;
    let big: Vec<u8> = (0..5_000u32).map(|i| (i * 13) as u8).collect();
    let rpc = p
        .client
        .call(p.now, s, 1, 1, UNREL, &big)
        .expect("big call");
    assert_eq!(
        p.client.stats().fast_calls,
        0,
        "5000 bytes do not fit one packet"
    );
    p.pump();
    let reqs = server_requests(&mut p);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1, big, "reassembled");
    let mut answer = big.clone();
    answer.reverse();
    p.server
        .respond(p.now, reqs[0].0, &answer)
        .expect("respond");
    assert_eq!(p.server.stats().fast_responses, 0);
    p.pump();
    assert_eq!(client_answers(&mut p), vec![(s, rpc, Ok(answer.clone()))]);
    // A small request answered by a big response: fast call, general response path.
    let rpc = p
        .client
        .call(p.now, s, 1, 1, UNREL, b"small")
        .expect("call");
    assert_eq!(p.client.stats().fast_calls, 1);
    p.pump();
    let reqs = server_requests(&mut p);
    p.server
        .respond(p.now, reqs[0].0, &answer)
        .expect("respond");
    p.pump();
    assert_eq!(client_answers(&mut p), vec![(s, rpc, Ok(answer))]);
    // And the big one timing out is still answered exactly once.
    let rpc = p.client.call(p.now, s, 1, 1, UNREL, &big).expect("call");
    let _lost = client_packets(&mut p);
    p.now = p.now + cfg.unreliable_timeout_ns;
    p.client.handle_timeout(p.now);
    assert_eq!(
        client_answers(&mut p),
        vec![(s, rpc, Err(RpcError::Timeout { retries: 0 }))]
    );
}

#[test]
fn a_full_ring_falls_back_and_a_zero_ring_disables_the_fast_path() {
    for ring in [0usize, 256] {
        let cfg = TransportConfig {
            fast_tx_bytes: ring,
            ..TransportConfig::default()
        };
        let mut p = pair(&cfg);
        let s = p.session;
        let payload = [7u8; 100];
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(
                p.client
                    .call(p.now, s, 1, 1, UNREL, &payload)
                    .expect("call"),
            );
        }
        let fast = p.client.stats().fast_calls;
        if ring == 0 {
            assert_eq!(fast, 0);
        } else {
            // 256 bytes hold one 132-byte packet: the rest take the general path.
            assert!((1..8).contains(&fast), "fast {fast}");
        }
        echo_round(&mut p);
        let got = client_answers(&mut p);
        assert_eq!(got.len(), 8);
        let mut want = b"re:".to_vec();
        want.extend_from_slice(&payload);
        for ((_, rpc, r), id) in got.iter().zip(&ids) {
            assert_eq!(rpc, id);
            assert_eq!(r.as_ref().ok(), Some(&want));
        }
        assert_eq!(p.client.stats().rpcs_completed, 8);
    }
}

#[test]
fn closing_a_session_fails_fast_calls_once_and_sends_nothing_for_them() {
    let cfg = TransportConfig::default();
    let mut p = pair(&cfg);
    let s = p.session;
    let a = p.client.call(p.now, s, 1, 1, UNREL, b"x").expect("call");
    p.client.close(p.now, s).expect("close");
    let pkts = client_packets(&mut p);
    assert_eq!(pkts.len(), 1, "only the Close goes out");
    assert_eq!(pkts[0].len(), HEADER_LEN);
    assert_eq!(
        client_answers(&mut p),
        vec![(s, a, Err(RpcError::SessionClosed))]
    );
    p.now = p.now + 10 * cfg.unreliable_timeout_ns;
    p.client.handle_timeout(p.now);
    assert!(client_answers(&mut p).is_empty(), "no second answer");
}

#[test]
fn one_packet_reliable_answers_keep_dedup_and_cache_release() {
    let cfg = TransportConfig::default();
    let mut p = pair(&cfg);
    let s = p.session;
    for class_method in [
        (TransportClass::Reliable, 2u16),
        (TransportClass::ReliableOrdered, 3),
    ] {
        let (class, method) = class_method;
        let rpc = p
            .client
            .call(p.now, s, 1, method, class, b"once")
            .expect("call");
        let reqs_pkts = client_packets(&mut p);
        assert_eq!(reqs_pkts.len(), 1);
        // The request arrives twice: executed once.
        for _ in 0..2 {
            let _ = p
                .server
                .handle_packet(p.now, LOOPBACK_CLIENT, &reqs_pkts[0]);
        }
        let reqs = server_requests(&mut p);
        assert_eq!(reqs.len(), 1, "{class:?}: executed once");
        p.server
            .respond(p.now, reqs[0].0, b"done")
            .expect("respond");
        assert!(p.server.buffered_bytes().1 > 0, "response cached");
        // The response is lost; the client's retransmission is answered from the cache.
        let _lost = server_packets(&mut p);
        let _ = p
            .server
            .handle_packet(p.now, LOOPBACK_CLIENT, &reqs_pkts[0]);
        assert!(
            server_requests(&mut p).is_empty(),
            "{class:?}: not re-executed"
        );
        p.pump();
        assert_eq!(client_answers(&mut p), vec![(s, rpc, Ok(b"done".to_vec()))]);
    }
    // The next RPC in the same slots acknowledges (frees) the cached responses.
    for _ in 0..u32::from(cfg.window) {
        p.client
            .call(p.now, s, 1, 2, TransportClass::Reliable, b"n")
            .expect("call");
        echo_round(&mut p);
        client_answers(&mut p);
    }
    assert!(p.server.stats().response_cache_freed >= 2);
}
