//! A deterministic pcap of real kv-client traffic, for replaying against a kv-server
//! (DPDK `net_pcap,infinite_rx=1`) to measure the server pipeline's throughput.
//!
//! A client [`Endpoint`] and a server [`Endpoint`] run in process over memory, both with
//! fixed session-id tag seeds; the client connects, confirms the server's `ConnectAck`
//! and issues `count` GET or SET requests (encoded by the generated `kv::client`
//! stubs) which the in-process server answers. Every client→server packet is framed
//! as Ethernet/IPv4/UDP from [`CLIENT_IP`]:[`CLIENT_PORT`] to [`SERVER_IP`]:[`SERVER_PORT`]
//! and kept, in order. A kv-server whose transport has the same `tag_seed` (and
//! otherwise default settings) gives the replayed `Connect` the same session id, so the
//! replayed requests hit a live session.
//!
//! SETs are reliable-ordered: replaying the same RPC ids and order numbers in a loop
//! would make every SET after the first loop a stale duplicate (dropped, never run).
//! So, for SET, the requests are rewritten to loop seamlessly ([`make_loopable`]): RPC
//! ids advance by `2^32 / count` (a multiple of the window: every request lands in the
//! same server slot and acknowledges its predecessor), order numbers by
//! `65536 / count`, and each carries `RESYNC` (so the server runs it at once instead of
//! waiting for the skipped order numbers). Each replayed SET is therefore executed and
//! answered, through the reliable-ordered path plus one resync per request.
//!
//! This module only builds and reads frames; it opens no port and starts no engine.

use std::io::{Read, Write};
use std::net::Ipv4Addr;

use dataplane::engine::{NetStack, Peer};
use dataplane::transport::{ClassTable, Endpoint, Event, Instant, TransportConfig};
use dataplane::wire::frame::PAYLOAD_OFFSET;
use dataplane::wire::rpc::{PacketType, RpcHeader, RpcHeaderRepr, FLAG_RESYNC};
use dataplane::wire::{parse_udp_ipv4, MacAddr};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

use crate::kv;

/// The recorded client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
pub const CLIENT_PORT: u16 = 7001;
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0x77, 0x01, 0x01]);
/// The server the frames are addressed to (give the replaying kv-server these).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
pub const SERVER_PORT: u16 = 7000;
pub const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0x77, 0x01, 0x02]);

/// Which requests the pcap carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayOp {
    Get,
    Set,
}

/// What to record.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    pub op: ReplayOp,
    /// Requests (SET: a power of two in 4 x window..=65536, see [`make_loopable`]).
    pub count: usize,
    /// The `user` of every request (the firewall's rules decide its fate).
    pub user: String,
    /// Distinct keys `key-0 ..`, used round robin.
    pub keys: usize,
    /// SET value size, bytes.
    pub value_size: usize,
    /// The server's `transport.tag_seed`.
    pub tag_seed: u64,
}

impl Default for ReplaySpec {
    fn default() -> Self {
        ReplaySpec {
            op: ReplayOp::Get,
            count: 1000,
            user: "alice".into(),
            keys: 64,
            value_size: 32,
            tag_seed: 1,
        }
    }
}

/// Why a pcap could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid request: {0}")]
    Spec(String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("the in-process exchange did not finish ({0})")]
    Stalled(String),
    #[error("writing the pcap: {0}")]
    Io(std::io::Error),
    #[error("pcap: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}

/// The server transport a kv-server with `[transport] tag_seed = seed` (and no other
/// transport key) runs.
pub fn server_transport(tag_seed: u64) -> TransportConfig {
    TransportConfig {
        tag_seed: Some(tag_seed),
        ..crate::engine_spec().transport
    }
}

fn client_peer() -> Peer {
    Peer {
        ip: CLIENT_IP,
        port: CLIENT_PORT,
    }
}

fn server_peer() -> Peer {
    Peer {
        ip: SERVER_IP,
        port: SERVER_PORT,
    }
}

/// Records the client→server frames of `spec` (Connect, the ConnectAck confirmation,
/// then the requests), SETs made loopable. Deterministic: same spec, same bytes.
pub fn generate(spec: &ReplaySpec) -> Result<Vec<Vec<u8>>, ReplayError> {
    if spec.count == 0 {
        return Err(ReplayError::Spec("count must be at least 1".into()));
    }
    let scfg = server_transport(spec.tag_seed);
    let ccfg = TransportConfig {
        tag_seed: Some(spec.tag_seed ^ 0xc11e),
        ..TransportConfig::default()
    };
    // The session's window: the client asks for its own, the server grants at most its
    // own, rounded down to a power of two.
    let w = scfg.window.min(ccfg.window).max(1);
    let window = 1usize << (7 - w.leading_zeros());
    let tr = |e: dataplane::transport::ConfigError| ReplayError::Transport(e.to_string());
    let mut client: Endpoint<Peer> = Endpoint::new(ccfg.clone(), ClassTable::new()).map_err(tr)?;
    let mut server: Endpoint<Peer> = Endpoint::new(scfg, crate::class_table()).map_err(tr)?;
    let mut net = NetStack::new(
        CLIENT_MAC,
        CLIENT_IP,
        CLIENT_PORT,
        &[(SERVER_IP, SERVER_MAC)],
    );
    let mut buf = vec![0u8; PAYLOAD_OFFSET + ccfg.max_packet_len().max(2048)];
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(spec.count + 2);
    let names: Vec<String> = (0..spec.keys.max(1)).map(key_name).collect();
    let mut payload = vec![0u8; spec.value_size + spec.user.len() + 256];
    let method = match spec.op {
        ReplayOp::Get => kv::Method::Get,
        ReplayOp::Set => kv::Method::Set,
    };
    let class = kv::transport(method.id())
        .ok_or_else(|| ReplayError::Spec("the method has no transport class".into()))?;

    let mut now = Instant::from_nanos(1_000);
    client
        .connect(now, server_peer())
        .map_err(|e| ReplayError::Transport(format!("connect: {e:?}")))?;
    let (mut session, mut issued, mut answered) = (None, 0usize, 0usize);
    let mut requests = Vec::new();
    // Each round moves every queued packet once each way; the bound only catches a
    // transport that stops making progress.
    let max_rounds = 64 * spec.count + 1000;
    for _ in 0..max_rounds {
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Connected { session: s } => session = Some(s),
                Event::Response { result, .. } => {
                    result.map_err(|e| ReplayError::Stalled(format!("an RPC failed: {e:?}")))?;
                    answered += 1;
                }
                Event::ConnectFailed { .. } | Event::SessionClosed { .. } => {
                    return Err(ReplayError::Stalled("the session did not open".into()))
                }
                Event::Request { .. } => {}
            }
        }
        if answered == spec.count {
            return if frames.len() == spec.count + 2 {
                if spec.op == ReplayOp::Set {
                    make_loopable(&mut frames[2..], window)?;
                }
                Ok(frames)
            } else {
                Err(ReplayError::Stalled(format!(
                    "{} client packets for {} requests (a retransmission?)",
                    frames.len(),
                    spec.count
                )))
            };
        }
        if let Some(s) = session {
            while issued < spec.count {
                let name = names[issued % names.len()].clone();
                let len = match spec.op {
                    ReplayOp::Get => kv::client::encode_get(
                        &kv::GetRequest {
                            name,
                            user: spec.user.clone(),
                        },
                        &mut payload,
                    ),
                    ReplayOp::Set => kv::client::encode_set(
                        &kv::SetRequest {
                            name,
                            user: spec.user.clone(),
                            value: crate::client::value_of(
                                (issued % names.len()) as u64,
                                spec.value_size,
                            ),
                        },
                        &mut payload,
                    ),
                }
                .map_err(|e| ReplayError::Spec(format!("encoding a request: {e:?}")))?;
                let Some(p) = payload.get(..len) else {
                    return Err(ReplayError::Spec("encoder overran its buffer".into()));
                };
                match client.call(now, s, kv::SERVICE_ID, method.id(), class, p) {
                    Ok(_) => issued += 1,
                    Err(dataplane::transport::CallError::WindowFull) => break,
                    Err(e) => return Err(ReplayError::Transport(format!("call: {e:?}"))),
                }
            }
        }
        while let Some((peer, len)) = client.poll_transmit(now, &mut buf[PAYLOAD_OFFSET..]) {
            if peer != server_peer() {
                return Err(ReplayError::Stalled(format!("client sent to {peer}")));
            }
            let _ = server.handle_packet(now, client_peer(), &buf[PAYLOAD_OFFSET..][..len]);
            let flen = net
                .emit(now.as_nanos(), server_peer(), &mut buf, len)
                .map_err(|_| ReplayError::Spec("a packet did not fit a frame".into()))?;
            frames.push(buf[..flen].to_vec());
            if frames.len() > spec.count + 2 {
                return Err(ReplayError::Stalled(
                    "the client sent more packets than requests (a retransmission?)".into(),
                ));
            }
        }
        requests.clear();
        while let Some(ev) = server.poll_event() {
            if let Event::Request { req, .. } = ev {
                requests.push(req);
            }
        }
        for r in requests.drain(..) {
            server
                .respond(now, r, &[])
                .map_err(|e| ReplayError::Transport(format!("respond: {e:?}")))?;
        }
        while let Some((_, len)) = server.poll_transmit(now, &mut buf[PAYLOAD_OFFSET..]) {
            let _ = client.handle_packet(now, server_peer(), &buf[PAYLOAD_OFFSET..][..len]);
        }
        now = now + 1_000;
        server.handle_timeout(now);
        client.handle_timeout(now);
    }
    Err(ReplayError::Stalled(format!(
        "{answered} of {} answered after {max_rounds} rounds",
        spec.count
    )))
}

/// Rewrites recorded reliable-ordered request frames (single-fragment, one session, in
/// issue order, `window` the session's window) so that replaying them in a loop runs
/// every one. The `n` requests are taken as `n / window` blocks of `window`: within a
/// block RPC ids and order numbers stay consecutive (one request per server slot, as
/// the client sent them); from block to block RPC ids jump by `2^32 / blocks` and order
/// numbers by `65536 / blocks`, so the last block wraps onto the first exactly, and the
/// first request of each block carries `RESYNC` (the server skips the order numbers
/// jumped over). `n` must be a power of two with `4 * window <= n <= 65536`. UDP
/// checksums are recomputed.
pub fn make_loopable(frames: &mut [Vec<u8>], window: usize) -> Result<(), ReplayError> {
    let n = frames.len();
    if !window.is_power_of_two() || !n.is_power_of_two() || n < 4 * window || n > 65536 {
        return Err(ReplayError::Spec(format!(
            "{n} requests: a loop needs a power of two in {}..=65536 (window {window})",
            4 * window
        )));
    }
    let blocks = (n / window) as u64;
    let rpc_step = (1u64 << 32) / blocks;
    let seq_step = 65536 / blocks;
    let mut first: Option<(u32, u16)> = None;
    for (i, f) in frames.iter_mut().enumerate() {
        let udp = parse_udp_ipv4(f)
            .map_err(|e| ReplayError::Spec(format!("frame {i}: {e}")))?
            .header();
        let rpc = f
            .get(PAYLOAD_OFFSET..)
            .ok_or_else(|| ReplayError::Spec(format!("frame {i}: too short")))?;
        let h = RpcHeader::new_checked(rpc)
            .map_err(|e| ReplayError::Spec(format!("frame {i}: {e}")))?;
        if h.packet_type() != PacketType::Request || h.frag_count() != 1 {
            return Err(ReplayError::Spec(format!(
                "frame {i}: not a single-fragment request"
            )));
        }
        let mut repr = RpcHeaderRepr::parse(&h);
        let (rpc0, seq0) = *first.get_or_insert((repr.rpc_id, repr.aux));
        let (block, k) = ((i / window) as u64, (i % window) as u64);
        repr.rpc_id = rpc0.wrapping_add((block * rpc_step + k) as u32);
        repr.aux = seq0.wrapping_add((block * seq_step + k) as u16);
        if k == 0 {
            repr.flags |= FLAG_RESYNC;
        } else {
            repr.flags &= !FLAG_RESYNC;
        }
        let len = f.len() - PAYLOAD_OFFSET;
        repr.emit(&mut f[PAYLOAD_OFFSET..])
            .map_err(|e| ReplayError::Spec(e.to_string()))?;
        dataplane::wire::build_udp_ipv4(f, &udp, len)
            .map_err(|e| ReplayError::Spec(format!("frame {i}: {e}")))?;
    }
    Ok(())
}

/// Clears the UDP checksum of every frame ("no checksum", RFC 768), as a client with
/// `[net] udp_checksum = "zero"` sends them. Frames must be option-less
/// Ethernet/IPv4/UDP (as [`generate`] makes them).
pub fn zero_udp_checksums(frames: &mut [Vec<u8>]) -> Result<(), ReplayError> {
    for (i, f) in frames.iter_mut().enumerate() {
        let p = parse_udp_ipv4(f).map_err(|e| ReplayError::Spec(format!("frame {i}: {e}")))?;
        if p.payload_offset != PAYLOAD_OFFSET {
            return Err(ReplayError::Spec(format!("frame {i}: IPv4 options")));
        }
        if let Some(c) = f.get_mut(PAYLOAD_OFFSET - 2..PAYLOAD_OFFSET) {
            c.fill(0);
        }
    }
    Ok(())
}

/// Writes `frames` as an Ethernet pcap (1 µs apart).
pub fn write_pcap<W: Write>(out: W, frames: &[Vec<u8>]) -> Result<(), ReplayError> {
    let mut w = PcapWriter::new(out)?;
    for (i, f) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))?;
    }
    w.into_writer().flush().map_err(ReplayError::Io)
}

/// Reads every frame of a pcap.
pub fn read_pcap<R: Read>(input: R) -> Result<Vec<Vec<u8>>, ReplayError> {
    let mut r = PcapReader::new(input)?;
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        frames.push(p?.data.into_owned());
    }
    Ok(frames)
}

/// The name of key `i` in recorded requests (`key-0`, `key-1`, ...).
pub fn key_name(i: usize) -> String {
    format!("key-{i}")
}

/// Fills `store` with the keys a recording with `keys` distinct keys names, each
/// holding `value_size` bytes, so that replayed GETs hit (a GET of a missing key is
/// answered too, but copies no value). Existing values are overwritten.
pub fn preload(store: &crate::server::Store, keys: usize, value_size: usize) {
    let mut map = store.write();
    for i in 0..keys {
        let value = (0..value_size).map(|j| (i + j) as u8).collect();
        map.insert(key_name(i).into_bytes(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{KvServer, Store};
    use dataplane::anf::InitCtx;
    use dataplane::engine::{Answer, App};
    use dataplane::transport::RequestRef;

    /// The frames of a pcap, each checked down to the RPC header: (header, payload).
    fn parse_all(frames: &[Vec<u8>]) -> Vec<(RpcHeaderRepr, Vec<u8>)> {
        frames
            .iter()
            .map(|f| {
                let p = parse_udp_ipv4(f).expect("a generated frame parses");
                let h = p.header();
                assert_eq!((h.src_ip, h.src_port), (CLIENT_IP, CLIENT_PORT));
                assert_eq!((h.dst_ip, h.dst_port), (SERVER_IP, SERVER_PORT));
                assert_eq!((h.src_mac, h.dst_mac), (CLIENT_MAC, SERVER_MAC));
                let rpc = RpcHeader::new_checked(&f[PAYLOAD_OFFSET..]).expect("rpc header");
                (RpcHeaderRepr::parse(&rpc), rpc.payload().to_vec())
            })
            .collect()
    }

    fn round_trip(spec: &ReplaySpec) -> Vec<(RpcHeaderRepr, Vec<u8>)> {
        let frames = generate(spec).expect("generate");
        let mut file = Vec::new();
        write_pcap(&mut file, &frames).expect("write");
        let back = read_pcap(&file[..]).expect("read");
        assert_eq!(back, frames);
        let parsed = parse_all(&back);
        assert_eq!(parsed.len(), spec.count + 2);
        assert_eq!(parsed[0].0.packet_type, PacketType::Connect);
        assert_eq!(parsed[1].0.packet_type, PacketType::ConnectAck);
        parsed
    }

    #[test]
    fn get_pcap_reads_back_and_parses() {
        let spec = ReplaySpec {
            count: 100,
            ..ReplaySpec::default()
        };
        let parsed = round_trip(&spec);
        let session = parsed[2].0.session;
        for (h, payload) in &parsed[2..] {
            assert_eq!(h.packet_type, PacketType::Request);
            assert_eq!(
                (h.service, h.method),
                (kv::SERVICE_ID, kv::Method::Get.id())
            );
            assert_eq!(h.session, session);
            let v = kv::GetRequestView::new_checked(payload).expect("a GetRequest");
            assert_eq!(v.user(), b"alice");
        }
        // The confirmation addresses the same server session as the requests.
        assert_eq!(parsed[1].0.session, session);
        // Deterministic: the same spec gives the same bytes.
        assert_eq!(generate(&spec).unwrap(), generate(&spec).unwrap());
    }

    #[test]
    fn preloaded_store_answers_every_recorded_get() {
        let spec = ReplaySpec {
            count: 200,
            keys: 16,
            ..ReplaySpec::default()
        };
        let parsed = round_trip(&spec);
        let store = Store::default();
        let mut handler = crate::server::Handler::new(&store);
        let mut resp = vec![0u8; 256];
        let mut found = |store_keys: usize| {
            preload(&store, store_keys, 24);
            parsed[2..]
                .iter()
                .filter(|(h, payload)| {
                    let n =
                        kv::dispatch(&mut handler, h.method, payload, &mut resp).expect("dispatch");
                    let r = kv::client::decode_get(&resp[..n]).expect("a GetResponse");
                    assert_eq!(r.found, !r.value.is_empty());
                    r.found && r.value.len() == 24
                })
                .count()
        };
        // A store without the keys misses every one; preloaded, every GET hits.
        assert_eq!(found(0), 0);
        // Without the last key: every request naming it (round robin) misses.
        let last = (0..spec.count)
            .filter(|i| i % spec.keys == spec.keys - 1)
            .count();
        assert_eq!(found(spec.keys - 1), spec.count - last);
        assert_eq!(found(spec.keys), spec.count);
    }

    #[test]
    fn set_pcap_is_loopable() {
        let spec = ReplaySpec {
            op: ReplayOp::Set,
            count: 256,
            ..ReplaySpec::default()
        };
        let window = 32; // the default transport's
        let parsed = round_trip(&spec);
        let reqs = &parsed[2..];
        for (i, (h, payload)) in reqs.iter().enumerate() {
            assert_eq!(h.method, kv::Method::Set.id());
            assert_eq!(h.flags & FLAG_RESYNC != 0, i % window == 0, "request {i}");
            let v = kv::SetRequestView::new_checked(payload).expect("a SetRequest");
            assert_eq!(v.name(), format!("key-{}", i % 64).as_bytes());
            // Consecutive within a block of `window`; 8 blocks, so a jump of 2^29 RPC ids
            // and 2^13 order numbers from block to block, the last wrapping onto the
            // first.
            let next = &reqs[(i + 1) % reqs.len()].0;
            let (rpc_gap, seq_gap) = if (i + 1) % window == 0 {
                (1 << 29, 1 << 13)
            } else {
                (1, 1)
            };
            assert_eq!(
                next.rpc_id.wrapping_sub(h.rpc_id),
                rpc_gap - (window as u32 - 1) * u32::from(rpc_gap != 1)
            );
            assert_eq!(
                next.aux.wrapping_sub(h.aux),
                seq_gap - (window as u16 - 1) * u16::from(seq_gap != 1)
            );
        }
        assert!(generate(&ReplaySpec {
            count: 96,
            ..spec.clone()
        })
        .is_err());
        assert!(generate(&ReplaySpec { count: 64, ..spec }).is_err());
    }

    #[test]
    fn zeroed_checksums_still_parse_to_the_same_frames() {
        let frames = generate(&ReplaySpec {
            count: 16,
            ..ReplaySpec::default()
        })
        .unwrap();
        let mut zeroed = frames.clone();
        zero_udp_checksums(&mut zeroed).unwrap();
        for (a, b) in frames.iter().zip(&zeroed) {
            assert_eq!(&b[40..42], &[0, 0]);
            assert_ne!(&a[40..42], &[0, 0]);
            assert_eq!(parse_udp_ipv4(a).unwrap(), parse_udp_ipv4(b).unwrap());
        }
        let mut bad = frames[..3].to_vec();
        bad[1].truncate(30);
        assert!(zero_udp_checksums(&mut bad).is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        let frames = generate(&ReplaySpec::default()).unwrap();
        let mut file = Vec::new();
        write_pcap(&mut file, &frames).unwrap();
        // Not a pcap; a truncated one (header cut, then a record cut).
        assert!(read_pcap(&b"not a pcap at all, really"[..]).is_err());
        assert!(read_pcap(&file[..10]).is_err());
        assert!(read_pcap(&file[..file.len() - 3]).is_err());
        // Frames that are not single-fragment requests, or too few/many of them.
        let mut reqs: Vec<Vec<u8>> = frames[2..130].to_vec();
        let mut bad = reqs.clone();
        bad[5].truncate(30);
        assert!(make_loopable(&mut bad, 32).is_err());
        let mut bad = reqs.clone();
        bad[0] = frames[0].clone(); // the Connect
        assert!(make_loopable(&mut bad, 32).is_err());
        assert!(make_loopable(&mut reqs[..64], 32).is_err());
        assert!(make_loopable(&mut reqs[..100], 4).is_err());
        assert!(make_loopable(&mut reqs, 32).is_ok());
    }

    /// A fresh server endpoint with the recording's tag seed, and a KV server (alice
    /// allowed) over `store`.
    fn replay_server(spec: &ReplaySpec, store: Store) -> (Endpoint<Peer>, KvServer) {
        let server = Endpoint::new(server_transport(spec.tag_seed), crate::class_table()).unwrap();
        let tables = kv::Tables {
            firewall_rules: vec![("alice".into(), "allow".into())],
        };
        let shared = kv::ServerShared::default();
        let init = InitCtx { now: 0, seed: 1 };
        let app = KvServer::new(kv::ServerPipeline::new(&shared, &tables, &init), store);
        (server, app)
    }

    /// The point of the pcap: a fresh server endpoint with the same tag seed runs the
    /// replayed requests — GETs and SETs alike, loop after loop.
    #[test]
    fn replay_hits_a_fresh_server_session_every_loop() {
        for op in [ReplayOp::Get, ReplayOp::Set] {
            let spec = ReplaySpec {
                op,
                count: 128,
                ..ReplaySpec::default()
            };
            let frames = generate(&spec).unwrap();
            let (mut server, mut app) = replay_server(&spec, Store::default());
            let mut out = vec![0u8; 4096];
            let (mut answered, mut reqs) = (0, Vec::<(RequestRef, Vec<u8>)>::new());
            let loops = 3;
            for l in 0..loops {
                // In bursts, as the engine receives them: every packet of a burst is
                // handled before the handler runs.
                for (i, burst) in frames.chunks(dataplane::port::MAX_BURST).enumerate() {
                    let now = Instant::from_nanos(1_000_000 * (l * frames.len() + i + 1) as u64);
                    for f in burst {
                        let _ = server.handle_packet(now, client_peer(), &f[PAYLOAD_OFFSET..]);
                    }
                    reqs.clear();
                    while let Some(ev) = server.poll_event() {
                        if let Event::Request { req, payload, .. } = ev {
                            reqs.push((req, payload.to_vec()));
                        }
                    }
                    for (req, mut p) in reqs.drain(..) {
                        let mut resp = [0u8; 512];
                        if let Answer::Respond(n) =
                            app.on_request(now.as_nanos(), req, client_peer(), &mut p, &mut resp)
                        {
                            server.respond(now, req, &resp[..n]).unwrap();
                            answered += 1;
                        }
                    }
                    while server.poll_transmit(now, &mut out).is_some() {}
                }
            }
            assert_eq!(answered, loops * spec.count, "{op:?}");
            let s = app.stats();
            assert_eq!(s.set_duplicates, 0);
        }
    }

    /// `KvServer` keeps the store's read lock from a pass's first GET until the engine
    /// calls `poll` at the end of the pass, and answers the same meanwhile.
    #[test]
    fn the_server_holds_the_read_lock_for_one_pass() {
        let spec = ReplaySpec {
            count: 64,
            ..ReplaySpec::default()
        };
        let frames = generate(&spec).unwrap();
        let store = Store::default();
        preload(&store, spec.keys, 8);
        let (mut server, mut app) = replay_server(&spec, std::sync::Arc::clone(&store));
        let now = Instant::from_nanos(1_000_000);
        for f in &frames {
            let _ = server.handle_packet(now, client_peer(), &f[PAYLOAD_OFFSET..]);
        }
        let mut reqs = Vec::<(RequestRef, Vec<u8>)>::new();
        while let Some(ev) = server.poll_event() {
            if let Event::Request { req, payload, .. } = ev {
                reqs.push((req, payload.to_vec()));
            }
        }
        assert_eq!(reqs.len(), spec.count);
        let mut found = 0;
        for (i, (req, mut p)) in reqs.into_iter().enumerate() {
            let mut resp = [0u8; 512];
            let Answer::Respond(n) =
                app.on_request(now.as_nanos(), req, client_peer(), &mut p, &mut resp)
            else {
                panic!("GET {i} not answered");
            };
            found += usize::from(kv::client::decode_get(&resp[..n]).unwrap().found);
            assert!(store.try_write().is_none(), "lock released inside the pass");
        }
        assert_eq!(found, spec.count);
        assert!(app.poll(now.as_nanos(), &mut server));
        assert!(store.try_write().is_some(), "lock kept after the pass");
    }
}
