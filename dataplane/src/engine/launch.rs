//! Starting an engine from a [`Config`]: open the configured backend with one queue per
//! core, pin one thread per core (registered with EAL for DPDK), build each core's
//! endpoint, network layer and application, and run them until stopped.
//!
//! Sessions stay on one core: DPDK spreads flows over queues by RSS and AF_PACKET by
//! `PACKET_FANOUT_HASH`, both on the UDP/IPv4 5-tuple, and a session's packets all carry
//! the same one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::{BackendKind, Config, RxRingKind, UdpChecksumMode};
use crate::port::afpacket::{AfPacket, AfPacketConfig, RxRing};
use crate::port::replay::ReplayPort;
use crate::port::tap::{Tap, TapConfig};
use crate::port::Port;
use crate::stats::pcap::{Capture, CapturePort};
use crate::transport::{ClassTable, Endpoint, TransportConfig};
use crate::wire::{MacAddr, UdpChecksum};

use super::clock::Clock;
use super::core::{App, Core, CoreSnapshot};
use super::net::NetStack;

/// What every core of an engine shares.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub transport: TransportConfig,
    pub classes: ClassTable,
}

type CoreResult<A> = Result<(A, CoreSnapshot<<A as App>::Stats>)>;

/// A running engine: its core threads and where they publish their counters.
pub struct Engine<A: App + 'static> {
    threads: Vec<JoinHandle<CoreResult<A>>>,
    snapshots: Vec<Arc<Mutex<CoreSnapshot<A::Stats>>>>,
    stop: Arc<AtomicBool>,
    /// This host's MAC (from the config or the port).
    pub mac: MacAddr,
}

impl<A: App + 'static> Engine<A> {
    /// Opens the backend and starts one core per `cfg.cores` entry, each with the
    /// application `make_app(core_index)`. Cores run until `stop` is set or their
    /// application finishes.
    pub fn start(
        cfg: &Config,
        spec: &EngineSpec,
        stop: Arc<AtomicBool>,
        make_app: impl FnMut(usize) -> A,
    ) -> Result<Engine<A>> {
        Self::start_with_capture(cfg, spec, stop, None, make_app)
    }

    /// As [`Engine::start`]; with `capture`, every core's port is wrapped in a
    /// [`CapturePort`] copying the frames it receives and sends into that queue.
    pub fn start_with_capture(
        cfg: &Config,
        spec: &EngineSpec,
        stop: Arc<AtomicBool>,
        capture: Option<Arc<Capture>>,
        make_app: impl FnMut(usize) -> A,
    ) -> Result<Engine<A>> {
        let transport = cfg.transport.apply(spec.transport.clone());
        // Validate once here, so a bad setting is one error, not one per core.
        Endpoint::<super::net::Peer>::new(transport.clone(), spec.classes.clone())
            .map_err(|e| anyhow!("transport configuration: {e}"))?;
        let spec = EngineSpec {
            transport,
            classes: spec.classes.clone(),
        };
        // Cores are checked when each thread pins itself: the calling thread's own
        // affinity says nothing (EAL pins the thread that initialises it, and threads
        // inherit that mask).
        let available: Vec<core_affinity::CoreId> = cfg
            .cores
            .iter()
            .map(|&id| core_affinity::CoreId { id })
            .collect();
        let queues = cfg.cores.len();
        match cfg.port.backend {
            BackendKind::Afpacket => {
                let iface = cfg.port.iface.as_deref().unwrap_or_default();
                // RPCs want latency: the V2 frame ring (with room for 16k frames) unless
                // the config asks for V3's throughput.
                let afp = match cfg.port.rx_ring.unwrap_or(RxRingKind::V2) {
                    RxRingKind::V2 => AfPacketConfig {
                        queues,
                        rx_ring: RxRing::V2,
                        block_count: 512,
                        ..AfPacketConfig::default()
                    },
                    RxRingKind::V3 => AfPacketConfig {
                        queues,
                        ..AfPacketConfig::default()
                    },
                };
                let ports = AfPacket::open(iface, &afp)
                    .with_context(|| format!("opening AF_PACKET on {iface}"))?;
                Self::spawn(
                    cfg,
                    &spec,
                    stop,
                    capture,
                    ports,
                    available,
                    make_app,
                    || Ok(()),
                    false,
                )
            }
            BackendKind::Tap => {
                if queues != 1 {
                    bail!("`cores`: the tap backend has one queue: give one core");
                }
                let iface = cfg.port.iface.as_deref().unwrap_or_default();
                let port = Tap::open(iface, &TapConfig::default())
                    .with_context(|| format!("opening tap {iface}"))?;
                Self::spawn(
                    cfg,
                    &spec,
                    stop,
                    capture,
                    vec![port],
                    available,
                    make_app,
                    || Ok(()),
                    false,
                )
            }
            BackendKind::Pcap => {
                // Validated: a file, one core.
                let path = cfg.port.pcap.as_deref().unwrap_or(std::path::Path::new(""));
                let port = ReplayPort::open(path, cfg.port.rounds)?;
                Self::spawn(
                    cfg,
                    &spec,
                    stop,
                    capture,
                    vec![port],
                    available,
                    make_app,
                    || Ok(()),
                    false,
                )
            }
            BackendKind::Dpdk => Self::start_dpdk(cfg, &spec, stop, capture, available, make_app),
        }
    }

    #[cfg(feature = "dpdk")]
    fn start_dpdk(
        cfg: &Config,
        spec: &EngineSpec,
        stop: Arc<AtomicBool>,
        capture: Option<Arc<Capture>>,
        available: Vec<core_affinity::CoreId>,
        make_app: impl FnMut(usize) -> A,
    ) -> Result<Engine<A>> {
        use crate::dpdk::{Eal, EthConfig, EthDev};
        use crate::port::dpdk::DpdkPort;
        let eal = match Eal::get() {
            Some(eal) => eal,
            None => Eal::init(&cfg.eal_args()).context("EAL initialisation failed")?,
        };
        let port_id = match cfg.port.device.as_deref() {
            Some(name) => match name.parse::<u16>() {
                Ok(id) => id,
                Err(_) => EthDev::port_by_name(name)?,
            },
            None => {
                EthDev::ports()
                    .first()
                    .ok_or_else(|| anyhow!("`port.eal`: no DPDK port (add --vdev=... or -a PCI)"))?
                    .port_id
            }
        };
        let q = cfg.cores.len() as u16;
        let dev = EthDev::configure(
            port_id,
            &EthConfig {
                rx_queues: q,
                tx_queues: q,
                ..EthConfig::default()
            },
        )
        .with_context(|| format!("configuring DPDK port {port_id}"))?;
        let mut ports = (0..q)
            .map(|i| DpdkPort::new(&dev, i))
            .collect::<Result<Vec<_>, _>>()?;
        // Full UDP checksums are left to the device when it offers to compute them.
        let tx_offload = cfg.net.udp_checksum == UdpChecksumMode::Full
            && ports.iter_mut().all(|p| p.enable_tx_udp_checksum_offload());
        Self::spawn(
            cfg,
            spec,
            stop,
            capture,
            ports,
            available,
            make_app,
            move || {
                eal.register_thread()
                    .context("registering a polling thread with EAL")
            },
            tx_offload,
        )
    }

    #[cfg(not(feature = "dpdk"))]
    fn start_dpdk(
        _: &Config,
        _: &EngineSpec,
        _: Arc<AtomicBool>,
        _: Option<Arc<Capture>>,
        _: Vec<core_affinity::CoreId>,
        _: impl FnMut(usize) -> A,
    ) -> Result<Engine<A>> {
        bail!("`port.backend`: this build has no DPDK support (built without the dpdk feature)")
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn<P, G>(
        cfg: &Config,
        spec: &EngineSpec,
        stop: Arc<AtomicBool>,
        capture: Option<Arc<Capture>>,
        ports: Vec<P>,
        available: Vec<core_affinity::CoreId>,
        make_app: impl FnMut(usize) -> A,
        thread_init: impl Fn() -> Result<G> + Send + Sync + Clone + 'static,
        tx_offload: bool,
    ) -> Result<Engine<A>>
    where
        P: Port + 'static,
    {
        match capture {
            Some(c) => {
                let ports = ports
                    .into_iter()
                    .map(|p| CapturePort::new(p, Arc::clone(&c)))
                    .collect();
                Self::spawn_ports(
                    cfg,
                    spec,
                    stop,
                    ports,
                    available,
                    make_app,
                    thread_init,
                    tx_offload,
                )
            }
            None => Self::spawn_ports(
                cfg,
                spec,
                stop,
                ports,
                available,
                make_app,
                thread_init,
                tx_offload,
            ),
        }
    }

    /// `tx_offload`: the ports finish UDP checksums (DPDK offload enabled on every one).
    #[allow(clippy::too_many_arguments)]
    fn spawn_ports<P, G>(
        cfg: &Config,
        spec: &EngineSpec,
        stop: Arc<AtomicBool>,
        ports: Vec<P>,
        available: Vec<core_affinity::CoreId>,
        mut make_app: impl FnMut(usize) -> A,
        thread_init: impl Fn() -> Result<G> + Send + Sync + Clone + 'static,
        tx_offload: bool,
    ) -> Result<Engine<A>>
    where
        P: Port + 'static,
    {
        let mac = match (cfg.net.mac, ports.first()) {
            (Some(m), _) => m,
            (None, Some(p)) => p.mac(),
            (None, None) => bail!("the backend opened no queue"),
        };
        let neighbors: Vec<_> = cfg.net.neighbors.iter().map(|n| (n.ip, n.mac)).collect();
        let mut threads = Vec::new();
        let mut snapshots = Vec::new();
        for (i, port) in ports.into_iter().enumerate() {
            let core_id = cfg
                .cores
                .get(i)
                .and_then(|c| available.iter().copied().find(|a| a.id == *c))
                .ok_or_else(|| anyhow!("`cores`: no core for queue {i}"))?;
            let endpoint = Endpoint::new(spec.transport.clone(), spec.classes.clone())
                .map_err(|e| anyhow!("transport configuration: {e}"))?;
            let mut net = NetStack::new(mac, cfg.net.ip, cfg.net.udp_port, &neighbors);
            net.udp_checksum = match cfg.net.udp_checksum {
                UdpChecksumMode::Full if tx_offload => UdpChecksum::Offload,
                UdpChecksumMode::Full => UdpChecksum::Full,
                UdpChecksumMode::Zero => UdpChecksum::Zero,
            };
            let app = make_app(i);
            let idle = cfg.engine.idle;
            let core_stop = Arc::clone(&stop);
            let init = thread_init.clone();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let t = std::thread::Builder::new()
                .name(format!("core{}", core_id.id))
                .spawn(move || -> CoreResult<A> {
                    if !core_affinity::set_for_current(core_id) {
                        bail!(
                            "`cores`: core {} is not available to this process",
                            core_id.id
                        );
                    }
                    let _registration = init()?;
                    // The clock is made on the core (TSC when EAL is up).
                    let core = Core::new(i, port, endpoint, net, app, Clock::new()).with_idle(idle);
                    let _ = tx.send(core.shared());
                    Ok(core.run(&core_stop))
                })
                .context("spawning a core thread")?;
            match rx.recv() {
                Ok(s) => snapshots.push(s),
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    return match t.join() {
                        Ok(Err(e)) => Err(e),
                        _ => Err(anyhow!("core {} failed to start", core_id.id)),
                    };
                }
            }
            threads.push(t);
        }
        Ok(Engine {
            threads,
            snapshots,
            stop,
            mac,
        })
    }

    /// The latest published counters of every core.
    pub fn snapshots(&self) -> Vec<CoreSnapshot<A::Stats>> {
        self.snapshots
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// Whether every core has finished (its application returned `false`).
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Stops every core and returns each one's application and final counters.
    pub fn stop_and_join(self) -> Result<Vec<(A, CoreSnapshot<A::Stats>)>> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow!("a core thread panicked"))?)
            .collect()
    }
}
