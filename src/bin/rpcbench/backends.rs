//! Opens the backend rpcbench was asked for and hands its queues to the forwarding
//! cores: core i gets queue i of every port.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use dataplane::port::afpacket::{AfPacket, AfPacketConfig, RxRing};
use dataplane::port::tap::{Tap, TapConfig};
use dataplane::port::Port;
use dataplane::wire::{build_udp_ipv4, frame, MacAddr, UdpIpv4Header};

use crate::run::{run_forwarding, RunOpts};
use crate::{Backend, FwdArgs};

/// Smallest and largest frame txonly builds (Ethernet header to end of payload).
const MIN_FRAME: usize = frame::PAYLOAD_OFFSET;
const MAX_FRAME: usize = 1514;

/// Checks `--pkt-size` and `--flows` before any port is opened.
pub fn check_txonly_args(args: &FwdArgs) -> Result<()> {
    if !(MIN_FRAME..=MAX_FRAME).contains(&args.pkt_size) {
        bail!(
            "--pkt-size must be between {MIN_FRAME} and {MAX_FRAME} bytes, got {}",
            args.pkt_size
        );
    }
    if args.flows == 0 || args.flows > 65536 {
        bail!("--flows must be between 1 and 65536, got {}", args.flows);
    }
    Ok(())
}

/// One UDP/IPv4 frame per flow; flows differ in their UDP source port.
fn txonly_templates(args: &FwdArgs, src_mac: MacAddr) -> Result<Vec<Vec<u8>>> {
    (0..args.flows)
        .map(|flow| {
            let mut f = vec![0u8; args.pkt_size];
            for (i, b) in f[frame::PAYLOAD_OFFSET..].iter_mut().enumerate() {
                *b = i as u8;
            }
            let hdr = UdpIpv4Header {
                src_mac,
                dst_mac: args.dst_mac,
                src_ip: args.src_ip,
                dst_ip: args.dst_ip,
                src_port: 1024u16.wrapping_add(flow as u16),
                dst_port: 9,
                ttl: 64,
                ip_id: 0,
            };
            build_udp_ipv4(&mut f, &hdr, args.pkt_size - frame::PAYLOAD_OFFSET)?;
            Ok(f)
        })
        .collect()
}

/// Splits `ports[port][queue]` into `per_core[queue] = (core, [port0.q, port1.q, ...])`.
fn by_core<P>(cores: &[usize], ports: Vec<Vec<P>>) -> Vec<(usize, Vec<P>)> {
    let mut per_core: Vec<(usize, Vec<P>)> = cores.iter().map(|&c| (c, Vec::new())).collect();
    for queues in ports {
        for (slot, q) in per_core.iter_mut().zip(queues) {
            slot.1.push(q);
        }
    }
    per_core
}

fn start<P: Port + 'static, G>(
    args: &FwdArgs,
    cores: &[usize],
    mut opts: RunOpts,
    stop: Arc<AtomicBool>,
    ports: Vec<Vec<P>>,
    thread_init: impl Fn() -> Result<G> + Send + Sync + Clone + 'static,
) -> Result<()> {
    if opts.mode == dataplane::forward::Mode::Txonly {
        let mac = ports
            .first()
            .and_then(|q| q.first())
            .map(|p| p.mac())
            .unwrap_or(MacAddr::ZERO);
        opts.templates = txonly_templates(args, mac)?;
    }
    run_forwarding(by_core(cores, ports), &opts, stop, thread_init)
}

fn need_ifaces(args: &FwdArgs) -> Result<()> {
    if args.ifaces.is_empty() {
        bail!(
            "the {:?} backend needs --iface NAME (repeat it for several ports)",
            args.backend
        );
    }
    Ok(())
}

pub fn run(args: &FwdArgs, cores: &[usize], opts: RunOpts, stop: Arc<AtomicBool>) -> Result<()> {
    match args.backend {
        Backend::Afpacket => {
            need_ifaces(args)?;
            let cfg = AfPacketConfig {
                queues: cores.len(),
                rx_ring: match args.rx_ring {
                    dataplane::config::RxRingKind::V2 => RxRing::V2,
                    dataplane::config::RxRingKind::V3 => RxRing::V3,
                },
                ..AfPacketConfig::default()
            };
            let ports = args
                .ifaces
                .iter()
                .map(|i| AfPacket::open(i, &cfg))
                .collect::<Result<Vec<_>, _>>()?;
            start(args, cores, opts, stop, ports, || Ok(()))
        }
        Backend::Tap => {
            need_ifaces(args)?;
            if cores.len() != 1 {
                bail!("the tap backend has one queue per device: give one core in --cores");
            }
            let ports = args
                .ifaces
                .iter()
                .map(|i| Tap::open(i, &TapConfig::default()).map(|p| vec![p]))
                .collect::<Result<Vec<_>, _>>()?;
            start(args, cores, opts, stop, ports, || Ok(()))
        }
        Backend::Dpdk => dpdk(args, cores, opts, stop),
    }
}

#[cfg(feature = "dpdk")]
fn dpdk(args: &FwdArgs, cores: &[usize], opts: RunOpts, stop: Arc<AtomicBool>) -> Result<()> {
    use anyhow::Context;
    use dataplane::dpdk::{Eal, EthConfig, EthDev};
    use dataplane::port::dpdk::DpdkPort;

    let Some(eal) = args.eal.as_deref() else {
        bail!("the dpdk backend needs --eal \"EAL ARGS\" (e.g. --eal \"--no-huge -m 256 --no-pci --vdev=net_null0,copy=1\")");
    };
    let eal_args: Vec<String> = eal.split_whitespace().map(str::to_string).collect();
    let eal = Eal::init(&eal_args).context("EAL initialisation failed")?;
    let cfg = EthConfig {
        rx_queues: cores.len() as u16,
        tx_queues: cores.len() as u16,
        ..EthConfig::default()
    };
    let infos = EthDev::ports();
    if infos.is_empty() {
        bail!("no DPDK port: give a device with --vdev=... or -a <PCI address> in --eal");
    }
    let mut ports = Vec::new();
    for info in &infos {
        let dev = EthDev::configure(info.port_id, &cfg)
            .with_context(|| format!("configuring DPDK port {}", info.port_id))?;
        let queues = (0..cores.len() as u16)
            .map(|q| DpdkPort::new(&dev, q))
            .collect::<Result<Vec<_>, _>>()?;
        ports.push(queues);
    }
    start(args, cores, opts, stop, ports, move || {
        eal.register_thread()
            .context("registering the forwarding thread with EAL")
    })
}

#[cfg(not(feature = "dpdk"))]
fn dpdk(_: &FwdArgs, _: &[usize], _: RunOpts, _: Arc<AtomicBool>) -> Result<()> {
    bail!("this rpcbench was built without the dpdk feature: rebuild with default features")
}
