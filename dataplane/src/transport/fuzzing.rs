//! The receive-path fuzz check, shared by `fuzz/fuzz_targets/transport_rx.rs` and its
//! seeded `#[test]` twin. It owns nothing else and must not be used by the data path.
//!
//! A connected client/server pair with some RPCs in flight is fed packets cut from the
//! input; a control byte per packet chooses the receiver and can patch in the real
//! session id and a valid magic/version, so the fuzzer gets past the cheap checks into
//! the session, slot, fragment and ack logic, and chooses the receive API: the queued
//! `handle_packet` or the in-place `receive` (whose requests are answered in place and
//! whose answers must lie inside the packet). After every packet both endpoints run
//! their timers, exchange what they queued and answer requests. It asserts that nothing
//! panics and the bounded resources stay bounded.

use super::sim::{LoopbackPair, LOOPBACK_CLIENT, LOOPBACK_SERVER};
use super::{ClassTable, Event, Received, TransportClass, TransportConfig, TransportStats};
use crate::wire::rpc::{HEADER_LEN, MAGIC, VERSION};

fn config() -> TransportConfig {
    TransportConfig {
        max_message_size: 64 << 10,
        max_sessions: 16,
        max_embryonic: 4,
        window: 8,
        max_reassembly_bytes: 256 << 10,
        max_session_reassembly_bytes: 128 << 10,
        max_response_cache_bytes: 128 << 10,
        event_arena_bytes: 16 << 10,
        max_tx_control: 256,
        max_unreliable_buffers: 8,
        ..TransportConfig::default()
    }
}

/// Drains events on both sides, answering every request (echo).
fn serve(p: &mut LoopbackPair) {
    let mut reqs = Vec::new();
    while let Some(ev) = p.server.poll_event() {
        if let Event::Request { req, payload, .. } = ev {
            reqs.push((req, payload.len()));
        }
    }
    for (req, len) in reqs {
        let body = vec![0x5a; len.min(3000)];
        let _ = p.server.respond(p.now, req, &body);
    }
    while p.client.poll_event().is_some() {}
}

/// Runs the check; returns the (client, server) counters so a test can see which paths
/// its inputs reached.
#[doc(hidden)]
pub fn check_rx(data: &[u8]) -> (TransportStats, TransportStats) {
    let mut classes = ClassTable::new();
    classes
        .set(1, 0, TransportClass::Unreliable)
        .set(1, 1, TransportClass::Reliable)
        .set(1, 2, TransportClass::ReliableOrdered);
    let cfg = config();
    let Ok(mut p) = LoopbackPair::connected(&cfg, classes, 99) else {
        panic!("loopback pair must connect");
    };
    let sid = p.session;
    // Some state to poke at: a multi-fragment reliable request half sent, ordered ones.
    let _ = p
        .client
        .call(p.now, sid, 1, 1, TransportClass::Reliable, &[1; 5000]);
    let _ = p
        .client
        .call(p.now, sid, 1, 2, TransportClass::ReliableOrdered, &[2; 10]);
    let mut out = vec![0u8; cfg.max_packet_len()];
    if let Some((_, len)) = p.client.poll_transmit(p.now, &mut out) {
        let _ = p.server.handle_packet(p.now, LOOPBACK_CLIENT, &out[..len]);
    }
    let server_sid = p.server_session().map_or(0, |s| s.0);
    let client_sid = sid.0;

    let mut rest = data;
    while let [ctl, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])) % 4096;
        let (pkt, next) = tail.split_at(len.min(tail.len()));
        rest = next;
        let mut pkt = pkt.to_vec();
        let to_server = ctl & 1 == 0;
        if ctl & 2 != 0 && pkt.len() >= 24 {
            let id = if to_server { server_sid } else { client_sid };
            pkt[16..24].copy_from_slice(&id.to_le_bytes());
        }
        if ctl & 4 != 0 && pkt.len() >= 3 {
            pkt[0..2].copy_from_slice(&MAGIC.to_le_bytes());
            pkt[2] = VERSION;
        }
        p.now = p.now + u64::from(ctl >> 4) * 50_000;
        let plen = pkt.len();
        if ctl & 8 != 0 {
            let from = if to_server {
                LOOPBACK_CLIENT
            } else {
                LOOPBACK_SERVER
            };
            let ep = if to_server {
                &mut p.server
            } else {
                &mut p.client
            };
            match ep.receive(p.now, from, &mut pkt) {
                Ok(Received::Request { req, payload, .. }) => {
                    assert!(to_server && payload.len() == plen - HEADER_LEN);
                    let n = payload.len();
                    let mut out = vec![0x5a; cfg.max_packet_len().max(HEADER_LEN + n)];
                    if let Ok(Some((_, len))) = p.server.respond_in_place(p.now, req, &mut out, n) {
                        let _ = p.client.receive(p.now, LOOPBACK_SERVER, &mut out[..len]);
                    }
                }
                Ok(Received::Response { result, .. }) => {
                    assert!(!to_server);
                    if let Ok(b) = result {
                        assert_eq!(b.len(), plen - HEADER_LEN);
                    }
                }
                Ok(Received::Queued) | Err(_) => {}
            }
        } else if to_server {
            let _ = p.server.handle_packet(p.now, LOOPBACK_CLIENT, &pkt);
        } else {
            let _ = p.client.handle_packet(p.now, LOOPBACK_SERVER, &pkt);
        }
        p.client.handle_timeout(p.now);
        p.server.handle_timeout(p.now);
        p.pump();
        serve(&mut p);
        p.pump();
        for ep in [&p.client, &p.server] {
            assert!(ep.session_count() <= cfg.max_sessions);
            let (reasm, cache) = ep.buffered_bytes();
            assert!(reasm <= cfg.max_reassembly_bytes, "reassembly {reasm}");
            assert!(cache <= cfg.max_response_cache_bytes, "cache {cache}");
            assert!(ep.embryonic_count() <= cfg.max_embryonic);
        }
    }
    // Whatever happened, time alone ends every call: no hang.
    let end = p.now + 60_000_000_000;
    p.now = end;
    p.client.handle_timeout(end);
    p.server.handle_timeout(end);
    p.pump();
    serve(&mut p);
    p.pump(); // releases what the last event borrowed
    assert_eq!(
        p.client.credits(sid),
        if p.client.is_open(sid) { 8 } else { 0 }
    );
    (p.client.stats().clone(), p.server.stats().clone())
}
