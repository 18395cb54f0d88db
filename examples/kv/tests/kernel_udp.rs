//! A kernel UDP socket reaches the dataplane over a veth pair. With the veth's transmit
//! checksum offload on (the default), the kernel hands its datagrams across the pair
//! with only the pseudo-header sum in the UDP checksum field (`CHECKSUM_PARTIAL`, seen
//! by the AF_PACKET ring as `TP_STATUS_CSUMNOTREADY`). The server must take that as a
//! checksum the kernel vouches for, not drop the frame as a bad checksum: here a plain
//! `UdpSocket` in the client's namespace opens a session (an RPC connect) to a running
//! kv-server and gets the connect-ack back. Root needed (skips outside CI when not root).

mod harness;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dataplane::wire::rpc::{PacketType, RpcHeader, RpcHeaderRepr, HEADER_LEN};
use dataplane::wire::WireError;
use harness::common::run;
use harness::{in_netns, require_root, stop_server, NetnsPair};

/// Sends connects from a kernel UDP socket until the connect-ack for `session` comes
/// back (bounded by `limit`).
fn kernel_connect(server: &str, session: u64, limit: Duration) -> Result<RpcHeaderRepr> {
    let sock = UdpSocket::bind("10.77.0.1:0").context("bind in the client namespace")?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut connect = RpcHeaderRepr::new(PacketType::Connect);
    connect.session = session;
    connect.credits = 8;
    let mut out = [0u8; HEADER_LEN];
    connect
        .emit(&mut out[..])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        // Resent each round: the first may wait for ARP, or race the server's start.
        sock.send_to(&out, server).context("send the connect")?;
        let Ok(n) = sock.recv(&mut buf) else {
            continue;
        };
        let Ok(h) = RpcHeader::new_checked(&buf[..n]) else {
            continue;
        };
        let repr = RpcHeaderRepr::parse(&h);
        if repr.packet_type == PacketType::ConnectAck && repr.session == session {
            return Ok(repr);
        }
    }
    bail!("no connect-ack from {server} within {limit:?}")
}

#[test]
fn a_kernel_udp_socket_reaches_the_dataplane_with_partial_checksums() -> Result<()> {
    if !require_root("a_kernel_udp_socket_reaches_the_dataplane_with_partial_checksums") {
        return Ok(());
    }
    let net = NetnsPair::new("kvku")?;
    // The dataplane's address sits behind the veth; make sure the kernel leaves UDP
    // checksums to "the device" (partial checksums across the pair).
    net.ip(
        &net.ns_a,
        &["route", "add", "10.77.1.0/24", "dev", &net.veth_a],
    )?;
    run(
        "ip",
        &[
            "netns",
            "exec",
            &net.ns_a,
            "ethtool",
            "-K",
            &net.veth_a,
            "tx",
            "on",
        ],
    )
    .context("turning tx checksum offload on (is ethtool installed?)")?;
    let engine = harness::start_afpacket_server(&net)?;
    let server = format!("{}:7000", harness::SERVER_IP);
    let session = 0x5eed_0000_0001;
    let got = in_netns(&net.ns_a, || {
        kernel_connect(&server, session, Duration::from_secs(5))
    });
    let cores = stop_server(engine)?;
    let ack = got??;
    ensure!(
        ack.msg_len == 8,
        "connect-ack carries the server's session id: {ack:?}"
    );
    let (_, snap) = cores.first().context("no server core")?;
    ensure!(
        snap.net.wire[WireError::BadUdpChecksum.index()] == 0,
        "kernel datagrams dropped as bad UDP checksums: {:?}",
        snap.net
    );
    ensure!(
        snap.transport.rx_packets >= 1,
        "the transport saw no packet: {:?}",
        snap.transport
    );
    Ok(())
}
