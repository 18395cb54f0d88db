//! A spray of 1,000,000 distinct forged sessions (forged data packets with random
//! session ids, and forged `Connect`s from distinct spoofed peers) must leave the
//! server's memory bounded and an established session working.
//!
//! Memory is measured for real: this test binary counts live heap bytes with a
//! wrapping global allocator (it holds this one test only, so nothing else allocates).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use dataplane::transport::{ClassTable, Endpoint, Event, Instant, TransportClass, TransportConfig};
use dataplane::wire::rpc::{PacketType, RpcHeaderRepr, WireClass, HEADER_LEN};
use rand::{Rng, SeedableRng};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CLIENT: u32 = 1;
const SERVER: u32 = 2;

fn pump(c: &mut Endpoint<u32>, s: &mut Endpoint<u32>, now: Instant, buf: &mut [u8]) {
    loop {
        let mut moved = false;
        while let Some((_, len)) = c.poll_transmit(now, buf) {
            let _ = s.handle_packet(now, CLIENT, &buf[..len]);
            moved = true;
        }
        while let Some((_, len)) = s.poll_transmit(now, buf) {
            let _ = c.handle_packet(now, SERVER, &buf[..len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// One round trip on the legitimate session.
fn round_trip(
    c: &mut Endpoint<u32>,
    s: &mut Endpoint<u32>,
    sid: dataplane::transport::SessionId,
    now: Instant,
    buf: &mut [u8],
) {
    let rpc = c
        .call(now, sid, 1, 1, TransportClass::Reliable, b"still there?")
        .expect("legit session accepts calls");
    pump(c, s, now, buf);
    let mut reqs = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let Event::Request { req, .. } = ev {
            reqs.push(req);
        }
    }
    assert_eq!(reqs.len(), 1, "the legit request reached the handler");
    s.respond(now, reqs[0], b"yes").unwrap();
    pump(c, s, now, buf);
    let mut answered = false;
    while let Some(ev) = c.poll_event() {
        if let Event::Response { rpc: r, result, .. } = ev {
            assert_eq!(r, rpc);
            assert_eq!(result.unwrap(), b"yes");
            answered = true;
        }
    }
    assert!(answered);
}

#[test]
fn a_million_forged_sessions_keep_memory_bounded() {
    let cfg = TransportConfig {
        max_sessions: 1024,
        max_embryonic: 256,
        tag_seed: Some(1),
        ..TransportConfig::default()
    };
    let mut classes = ClassTable::new();
    classes.set(1, 1, TransportClass::Reliable);
    let mut server: Endpoint<u32> = Endpoint::new(cfg.clone(), classes).unwrap();
    let mut client: Endpoint<u32> = Endpoint::new(
        TransportConfig {
            tag_seed: Some(2),
            ..cfg.clone()
        },
        ClassTable::new(),
    )
    .unwrap();
    let mut buf = vec![0u8; cfg.max_packet_len()];
    let mut now = Instant::from_nanos(1);
    let sid = client.connect(now, SERVER).unwrap();
    pump(&mut client, &mut server, now, &mut buf);
    while client.poll_event().is_some() {}
    round_trip(&mut client, &mut server, sid, now, &mut buf);

    let mut rng = rand_pcg::Pcg64::seed_from_u64(0x5b4a7);
    let mut pkt = vec![0u8; HEADER_LEN + 16];
    let mut spray = |server: &mut Endpoint<u32>, now: &mut Instant, i: u64| {
        *now = *now + 1_000;
        let (peer, ty) = if i.is_multiple_of(2) {
            (1000 + (i as u32), PacketType::Connect)
        } else {
            let types = [
                PacketType::Request,
                PacketType::ResponseAck,
                PacketType::ConnectAck,
                PacketType::Close,
            ];
            // Half from the legit client's own address, half spoofed.
            let peer = if i % 4 == 1 { CLIENT } else { rng.gen() };
            (peer, types[rng.gen_range(0..types.len())])
        };
        let mut h = RpcHeaderRepr::new(ty);
        // A distinct random session id per packet (never the real one: 2^-64 odds).
        h.session = rng.gen::<u64>() | 1;
        h.credits = 32;
        h.service = 1;
        h.method = 1;
        if ty == PacketType::Request {
            h.class = WireClass::Reliable;
        }
        h.rpc_id = rng.gen();
        h.msg_len = if ty == PacketType::Connect { 0 } else { 16 };
        h.emit(&mut pkt).unwrap();
        let _ = server.handle_packet(
            *now,
            peer,
            if ty == PacketType::Connect {
                &pkt[..HEADER_LEN]
            } else {
                &pkt
            },
        );
        // The engine drains what the server queues (ConnectAcks, error replies).
        while server.poll_transmit(*now, &mut buf).is_some() {}
        if i.is_multiple_of(1024) {
            server.handle_timeout(*now);
        }
    };

    // Warm-up: let every bounded structure reach its full size.
    for i in 0..20_000 {
        spray(&mut server, &mut now, i);
    }
    let baseline = LIVE.load(Ordering::Relaxed);
    let footprint = server.memory_bytes();
    for i in 20_000..1_000_000 {
        spray(&mut server, &mut now, i);
        if i % 100_000 == 0 {
            let grown = LIVE.load(Ordering::Relaxed) - baseline;
            assert!(
                grown < 256 << 10,
                "heap grew {grown} bytes after {i} forged packets"
            );
        }
    }
    let grown = LIVE.load(Ordering::Relaxed) - baseline;
    assert!(grown < 256 << 10, "heap grew {grown} bytes over the spray");
    assert!(server.memory_bytes() <= footprint + (64 << 10));
    assert!(server.session_count() <= cfg.max_sessions);
    assert!(server.embryonic_count() <= cfg.max_embryonic);
    let st = server.stats();
    assert!(
        st.embryonic_evicted + st.embryonic_expired >= 400_000,
        "{st:#?}"
    );
    assert!(st.rx_unknown_session >= 490_000, "{st:#?}");
    assert!(
        st.error_replies_suppressed > 0,
        "error replies are rate limited"
    );
    assert_eq!(st.rx_malformed.total(), 0, "the spray is well-formed");
    assert_eq!(st.sessions_closed, 0, "no forged Close closed anything");

    // The established session survived and works (the client keeps it alive).
    client.handle_timeout(now);
    round_trip(&mut client, &mut server, sid, now, &mut buf);
}
