//! UDP checksum offload on the `dpdk` port: devices that do not offer it (`net_null`,
//! `net_ring`) refuse it and send frames untouched; `net_tap`, which offers it
//! (computing the checksum in its PMD), completes the pseudo-header sum that
//! `UdpChecksum::Offload` frames carry into the full checksum, seen on the tap's kernel
//! side through `net_af_packet`, while an ARP frame passes unchanged.
//!
//! The tap part needs root (skipped without, failing under `CI`) and runs in a fresh
//! network namespace of its own test thread (`unshare(CLONE_NEWNET)`), so its frames
//! never reach the host's interfaces; the namespace goes away with the thread.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dataplane::dpdk::{EthConfig, EthDev, Mbuf};
use dataplane::port::dpdk::DpdkPort;
use dataplane::port::{PacketBuf, Port, MAX_BURST};
use dataplane::wire::arp::ArpRepr;
use dataplane::wire::frame::PAYLOAD_OFFSET;
use dataplane::wire::{parse_udp_ipv4, MacAddr, UdpChecksum, UdpIpv4Header, UdpIpv4Template};

fn eal() {
    dpdk_common::eal("offload", &["net_ring_off0", "net_null_off0"]);
}

fn cfg() -> EthConfig {
    EthConfig {
        rx_desc: 128,
        tx_desc: 128,
        mbufs: 1023,
        mbuf_cache: 16,
        promiscuous: true,
        ..EthConfig::default()
    }
}

fn header() -> UdpIpv4Header {
    UdpIpv4Header {
        src_mac: MacAddr([2, 0, 0, 0x0f, 0, 1]),
        dst_mac: MacAddr([2, 0, 0, 0x0f, 0, 2]),
        src_ip: Ipv4Addr::new(192, 0, 2, 1),
        dst_ip: Ipv4Addr::new(192, 0, 2, 2),
        src_port: 7000,
        dst_port: 7001,
        ttl: 64,
        ip_id: 0,
    }
}

/// A UDP frame with `payload`, its UDP checksum as `mode` says, in an mbuf of `port`.
fn udp_mbuf(port: &mut DpdkPort, payload: &[u8], ip_id: u16, mode: UdpChecksum) -> Mbuf {
    let mut f = vec![0u8; PAYLOAD_OFFSET + payload.len()];
    f[PAYLOAD_OFFSET..].copy_from_slice(payload);
    let n = UdpIpv4Template::new(&header())
        .write(&mut f, ip_id, payload.len(), mode)
        .expect("frame fits");
    let mut m = port.alloc().expect("an mbuf");
    m.fill_from(&f[..n]).expect("frame fits an mbuf");
    m
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn devices_without_offload_refuse_it_and_send_frames_untouched() {
    eal();
    for name in ["net_ring_off0", "net_null_off0"] {
        let id = EthDev::port_by_name(name).expect("vdev probed");
        let dev = EthDev::configure(id, &cfg()).expect("configure");
        assert!(
            !dev.tx_udp_checksum_offload(),
            "{name} offers no UDP offload"
        );
        let mut port = DpdkPort::new(&dev, 0).expect("queue 0");
        assert!(!port.enable_tx_udp_checksum_offload(), "{name}");
        if name != "net_ring_off0" {
            continue;
        }
        // net_ring hands the very mbufs back: no offload flag was set on them.
        let sent = udp_mbuf(&mut port, b"no offload here", 1, UdpChecksum::Full);
        let want = sent.data().to_vec();
        let mut tx = vec![sent];
        assert_eq!(port.tx_burst(&mut tx), 1);
        let mut rx = Vec::new();
        assert_eq!(port.rx_burst(&mut rx, MAX_BURST), 1);
        assert_eq!(rx[0].data(), &want[..]);
        assert_eq!(rx[0].ol_flags() & dataplane_tx_udp_flag(), 0);
        assert!(parse_udp_ipv4(rx[0].data()).is_ok());
    }
}

/// `RTE_MBUF_F_TX_UDP_CKSUM`, spelled as DPDK defines it (3 << 52).
fn dataplane_tx_udp_flag() -> u64 {
    3 << 52
}

#[test]
fn net_tap_completes_offloaded_udp_checksums() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "net_tap needs root, and CI is set"
        );
        eprintln!("skipping net_tap offload: needs root");
        return;
    }
    eal();
    // This test thread gets a network namespace of its own: the tap interface and the
    // af_packet socket are created in it, and the frames stay in it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare a netns");
    let ifname = format!("fro{}", std::process::id());
    let id = EthDev::create_vdev("net_tap_off", &format!("iface={ifname}")).expect("net_tap");
    let tap = EthDev::configure(id, &cfg()).expect("configure net_tap");
    assert!(
        tap.tx_udp_checksum_offload(),
        "net_tap offers UDP checksum offload"
    );
    let mut tx_port = DpdkPort::new(&tap, 0).expect("tap queue");
    assert!(tx_port.enable_tx_udp_checksum_offload());

    let af = EthDev::create_vdev("net_af_packet_off", &format!("iface={ifname}"))
        .expect("net_af_packet on the tap");
    let af = EthDev::configure(af, &cfg()).expect("configure net_af_packet");
    let mut rx_port = DpdkPort::new(&af, 0).expect("af_packet queue");

    let payloads: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            (0..(13 + 29 * usize::from(i)))
                .map(|j| (j as u8) ^ i.wrapping_mul(37))
                .collect()
        })
        .collect();
    let mut tx: Vec<Mbuf> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| udp_mbuf(&mut tx_port, p, i as u16 + 1, UdpChecksum::Offload))
        .collect();
    // An ARP request rides along: not UDP, so never flagged, sent as it is.
    let mut arp = [0u8; 64];
    let alen = ArpRepr::request(header().src_mac, header().src_ip, header().dst_ip)
        .emit_frame(&mut arp)
        .expect("ARP frame");
    let mut am = tx_port.alloc().expect("an mbuf");
    am.fill_from(&arp[..alen]).expect("fits");
    tx.push(am);
    assert_eq!(tx_port.tx_burst(&mut tx), payloads.len() + 1);

    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut udp, mut arps) = (Vec::new(), 0);
    let mut rx = Vec::new();
    while (udp.len() < payloads.len() || arps == 0) && Instant::now() < deadline {
        rx_port.rx_burst(&mut rx, MAX_BURST);
        for m in rx.drain(..) {
            let d = m.data();
            if d.get(..alen) == Some(&arp[..alen]) {
                arps += 1;
            } else if let Ok(p) = parse_udp_ipv4(d) {
                if p.src_ip == header().src_ip && p.dst_port == header().dst_port {
                    // parse_udp_ipv4 verified the checksum; it must not be "none".
                    assert_ne!(u16::from_be_bytes([d[40], d[41]]), 0);
                    udp.push((p.ip_id, p.payload.to_vec()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(arps, 1, "the ARP frame arrives unchanged");
    udp.sort();
    let want: Vec<(u16, Vec<u8>)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u16 + 1, p.clone()))
        .collect();
    assert_eq!(
        udp, want,
        "every UDP frame arrives with a full, valid checksum"
    );
}
