//! Hostile frames at a running kv-server: while a client runs a real workload, a raw
//! AF_PACKET socket in the client's namespace sprays the server with truncated headers,
//! lengths that lie, bad IPv4/UDP checksums, unknown service/method ids, forged sessions
//! and random bytes. Every one is dropped and counted by reason, and the server keeps
//! answering the well-formed RPCs the whole time (root; skips outside CI when not root).

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dataplane::port::afpacket::{AfPacket, AfPacketConfig};
use dataplane::port::{PacketBuf, Port};
use dataplane::wire::frame::PAYLOAD_OFFSET;
use dataplane::wire::rpc::{PacketType, RpcHeaderRepr, WireClass, HEADER_LEN};
use dataplane::wire::{build_udp_ipv4, MacAddr, UdpIpv4Header, WireError};
use harness::{config, in_netns, require_root, run_client, Backend, NetnsPair, Run};
use kv_example::client::Op;
use rand::{Rng, SeedableRng};

/// The kinds of junk, each a function of a well-formed request frame.
const KINDS: usize = 9;

/// Ethernet/IPv4/UDP from the client's address to the server's RPC port.
fn udp_header(src: MacAddr, dst: MacAddr) -> UdpIpv4Header {
    UdpIpv4Header {
        src_mac: src,
        dst_mac: dst,
        src_ip: harness::CLIENT_IP.parse().expect("constant address"),
        dst_ip: harness::SERVER_IP.parse().expect("constant address"),
        src_port: 7099,
        dst_port: 7000,
        ttl: 64,
        ip_id: 7,
    }
}

fn rpc_frame(src: MacAddr, dst: MacAddr, rpc: &RpcHeaderRepr, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; PAYLOAD_OFFSET + HEADER_LEN + payload.len()];
    rpc.emit(&mut f[PAYLOAD_OFFSET..])
        .expect("room for the header");
    f[PAYLOAD_OFFSET + HEADER_LEN..].copy_from_slice(payload);
    build_udp_ipv4(&mut f, &udp_header(src, dst), HEADER_LEN + payload.len()).expect("frame");
    f
}

fn junk(kind: usize, src: MacAddr, dst: MacAddr, rng: &mut impl Rng) -> Vec<u8> {
    let mut req = RpcHeaderRepr::new(PacketType::Request);
    req.class = WireClass::Unreliable;
    req.service = kv_example::kv::SERVICE_ID;
    req.method = 1;
    req.frag_count = 1;
    req.session = rng.gen();
    req.rpc_id = rng.gen();
    req.msg_len = 16;
    let good = rpc_frame(src, dst, &req, &[0u8; 16]);
    match kind {
        // Truncated: Ethernet + part of the IPv4 header.
        0 => good[..14 + rng.gen_range(0..20)].to_vec(),
        // IPv4 total length larger than the frame.
        1 => {
            let mut f = good;
            f[16..18].copy_from_slice(&1400u16.to_be_bytes());
            f
        }
        // UDP length larger than the IP payload.
        2 => {
            let mut f = good;
            f[38..40].copy_from_slice(&1000u16.to_be_bytes());
            f
        }
        // Bad IPv4 header checksum.
        3 => {
            let mut f = good;
            f[24] ^= 0x5a;
            f
        }
        // Bad UDP checksum (payload changed after the checksum).
        4 => {
            let mut f = good;
            let last = f.len() - 1;
            f[last] ^= 0xff;
            f
        }
        // RPC header whose message length lies.
        5 => {
            let mut r = req;
            r.msg_len = 60_000;
            rpc_frame(src, dst, &r, &[0u8; 16])
        }
        // Unknown service and method on a forged session.
        6 => {
            let mut r = req;
            r.service = 0xdead;
            r.method = 0xbeef;
            rpc_frame(src, dst, &r, &[0u8; 16])
        }
        // Random bytes after valid Ethernet/IPv4/UDP headers (a garbage RPC header).
        7 => {
            let n = rng.gen_range(1..200);
            let body: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let mut f = vec![0u8; PAYLOAD_OFFSET + n];
            f[PAYLOAD_OFFSET..].copy_from_slice(&body);
            build_udp_ipv4(&mut f, &udp_header(src, dst), n).expect("frame");
            f
        }
        // Random bytes from the Ethernet header on.
        _ => {
            let n = rng.gen_range(1..300);
            let mut f: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            if f.len() >= 12 {
                f[..6].copy_from_slice(&dst.0);
            }
            f
        }
    }
}

#[test]
fn malformed_frames_are_dropped_and_counted_while_rpcs_flow() -> Result<()> {
    if !require_root("malformed_frames_are_dropped_and_counted_while_rpcs_flow") {
        return Ok(());
    }
    let net = NetnsPair::new("kvmf")?;
    let server = harness::start_afpacket_server(&net)?;
    let server_mac = server.mac;
    let iface = net.veth_a.clone();
    let mut raw = in_netns(&net.ns_a, move || {
        AfPacket::open(&iface, &AfPacketConfig::default())
    })??
    .pop()
    .context("no raw queue")?;
    let src = raw.mac();

    let stop = AtomicBool::new(false);
    let (sprayed, client) = std::thread::scope(|s| {
        let spray = s.spawn(|| -> Result<[u64; KINDS]> {
            let mut rng = rand_pcg::Pcg64::seed_from_u64(99);
            let mut sent = [0u64; KINDS];
            let mut bufs = Vec::with_capacity(32);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..16 {
                    let kind = i % KINDS;
                    i += 1;
                    let f = junk(kind, src, server_mac, &mut rng);
                    let Some(mut b) = raw.alloc() else { break };
                    if b.fill_from(&f).is_ok() {
                        bufs.push(b);
                        sent[kind] += 1;
                    }
                }
                raw.tx_burst(&mut bufs);
                bufs.clear();
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(sent)
        });
        let ccfg = config(
            &Backend::Afpacket,
            &net.veth_a,
            0,
            harness::CLIENT_IP,
            7001,
            &format!("[client]\nserver = \"{}:7000\"", harness::SERVER_IP),
        );
        let client = ccfg.and_then(|c| {
            let mut run = Run::new(Op::Mixed, 3000, "alice");
            run.concurrency = 4;
            run_client(
                &net.ns_a,
                &Backend::Afpacket,
                &net.veth_a,
                &c,
                run,
                Duration::from_secs(30),
            )
        });
        stop.store(true, Ordering::Relaxed);
        (spray.join(), client)
    });
    let sprayed = sprayed.map_err(|_| anyhow::anyhow!("sprayer panicked"))??;
    let client = client?;
    let cores = server.stop_and_join()?;
    let snap = &cores.first().context("no server core")?.1;

    ensure!(
        sprayed.iter().all(|&n| n > 20),
        "sprayed too little: {sprayed:?}"
    );
    ensure!(
        client.completed == 3000 && client.errors == 0,
        "the well-formed RPCs must all be answered: {client:?}"
    );
    let net_c = &snap.net;
    let wire = |e: WireError| net_c.wire[e.index()];
    for (e, what) in [
        (WireError::Ipv4TooShort, "truncated"),
        (WireError::BadTotalLength, "IPv4 length lies"),
        (WireError::BadUdpLength, "UDP length lies"),
        (WireError::BadIpChecksum, "IPv4 checksum"),
        (WireError::BadUdpChecksum, "UDP checksum"),
    ] {
        ensure!(wire(e) > 0, "no {what} drops counted: {net_c:?}");
    }
    let t = &snap.transport;
    ensure!(
        t.rx_malformed.total() > 0,
        "no malformed RPC headers counted: {t:?}"
    );
    ensure!(
        t.rx_unknown_session > 0,
        "no forged sessions counted: {t:?}"
    );
    Ok(())
}
