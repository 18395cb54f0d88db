//! The other virtual devices the `dpdk` backend is used with really probe from the
//! distro's plugin directory and move frames: `net_pcap` (frames read from a pcap file,
//! frames written to one), `net_memif` (server side, no peer), `net_tap` (RSS on two
//! queues) and `net_af_packet` (on the tap's kernel interface). The tap and af_packet
//! parts need root; without it they are skipped, unless `CI` is set.
//!
//! Only kernel interfaces with unique names (`frt<pid>`) are created; they disappear
//! when the tap port closes. No frame is sent to the kernel.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use std::path::PathBuf;

use dataplane::dpdk::{EthConfig, EthDev};
use dataplane::port::dpdk::DpdkPort;
use dataplane::port::{PacketBuf, Port, MAX_BURST};

fn eal() {
    dpdk_common::eal("vdevs", &[]);
}

fn cfg() -> EthConfig {
    EthConfig {
        rx_desc: 128,
        tx_desc: 128,
        mbufs: 1023,
        mbuf_cache: 16,
        ..EthConfig::default()
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True when the test may run; prints why not, or fails under CI.
fn need_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} needs root, and CI is set");
    }
    eprintln!("skipping {what}: needs root");
    false
}

/// A temporary file path removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("flatrpc-{tag}-{}", std::process::id())))
    }
    fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A classic little-endian pcap file (Ethernet link type) holding `frames`.
fn pcap_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [i as u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

/// The frames of a pcap file written by libpcap (little-endian, as on x86).
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(hdr) = bytes.get(at..at + 16) {
        let len = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
        let Some(f) = bytes.get(at + 16..at + 16 + len) else {
            break;
        };
        frames.push(f.to_vec());
        at += 16 + len;
    }
    frames
}

#[test]
fn net_pcap_replays_a_file_and_records_what_is_sent() {
    eal();
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|i| dpdk_common::frame(60 + 10 * i, i as u32))
        .collect();
    let rx = TempPath::new("rx.pcap");
    let tx = TempPath::new("tx.pcap");
    std::fs::write(&rx.0, pcap_bytes(&frames)).expect("write pcap");
    let name = "net_pcap_t";
    let id = EthDev::create_vdev(
        name,
        &format!("rx_pcap={},tx_pcap={}", rx.as_str(), tx.as_str()),
    )
    .expect("net_pcap probes");
    let dev = EthDev::configure(id, &cfg()).expect("configure net_pcap");
    assert_eq!(dev.driver(), "net_pcap");
    let mut port = DpdkPort::new(&dev, 0).expect("port");
    drop(dev);

    let mut got = Vec::with_capacity(MAX_BURST);
    for _ in 0..1000 {
        if got.len() >= frames.len() {
            break;
        }
        port.rx_burst(&mut got, MAX_BURST);
    }
    let data: Vec<Vec<u8>> = got.iter().map(|b| b.data().to_vec()).collect();
    assert_eq!(data, frames);
    // Send them back out: they land in tx.pcap.
    assert_eq!(port.tx_burst(&mut got), frames.len());
    drop(port); // closes the device, which flushes the dump file
    let written = std::fs::read(&tx.0).expect("tx pcap written");
    assert_eq!(pcap_frames(&written), frames);
}

#[test]
fn net_memif_server_probes_and_starts_without_a_peer() {
    eal();
    let sock = TempPath::new("memif.sock");
    let id = EthDev::create_vdev(
        "net_memif_t",
        &format!("role=server,socket={}", sock.as_str()),
    )
    .expect("net_memif probes");
    let dev = EthDev::configure(id, &cfg()).expect("configure net_memif");
    assert_eq!(dev.driver(), "net_memif");
    // No peer: the link is down and nothing arrives, but polling is fine.
    assert!(!dev.link().expect("link").up);
    let mut port = DpdkPort::new(&dev, 0).expect("port");
    let mut bufs = Vec::new();
    assert_eq!(port.rx_burst(&mut bufs, MAX_BURST), 0);
}

#[test]
fn net_tap_takes_rss_on_two_queues_and_af_packet_binds_to_it() {
    if !need_root("net_tap / net_af_packet") {
        return;
    }
    eal();
    let ifname = format!("frt{}", std::process::id());
    let id = EthDev::create_vdev("net_tap_t", &format!("iface={ifname}")).expect("net_tap probes");
    let two = EthConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss: true,
        promiscuous: false,
        ..cfg()
    };
    let tap = EthDev::configure(id, &two).expect("configure net_tap with 2 queues and RSS");
    assert_eq!(tap.driver(), "net_tap");
    let supported = tap.rss_hash_functions_supported();
    assert_ne!(supported, 0, "net_tap reports RSS hash types");
    assert!(tap.rss_enabled());
    assert_eq!(tap.rss_hash_functions() & !supported, 0);
    let tap_ports: Vec<DpdkPort> = (0..2)
        .map(|q| DpdkPort::new(&tap, q).expect("tap queue"))
        .collect();
    assert!(std::path::Path::new(&format!("/sys/class/net/{ifname}")).exists());

    // net_af_packet on the tap's kernel side: probes, configures, polls.
    let af = EthDev::create_vdev("net_af_packet_t", &format!("iface={ifname}"))
        .expect("net_af_packet probes");
    let af = EthDev::configure(af, &cfg()).expect("configure net_af_packet");
    assert_eq!(af.driver(), "net_af_packet");
    let mut afp = DpdkPort::new(&af, 0).expect("af_packet port");
    let mut bufs = Vec::new();
    afp.rx_burst(&mut bufs, MAX_BURST);
    drop(bufs);
    drop(afp);
    drop(af);
    drop(tap_ports);
    drop(tap);
    // Closing the tap removed its kernel interface.
    assert!(!std::path::Path::new(&format!("/sys/class/net/{ifname}")).exists());
}
