//! `dataplane run`: [`Host`] starts the engine with one [`HostApp`] per core, owns the
//! reload channels, the pcap writer and, with `[host.apps]`, the hub that applications
//! attach to over shared memory; [`run`] adds the control socket, the Prometheus
//! endpoint and signals (SIGINT/SIGTERM stop, SIGHUP reloads) around it, on the calling
//! (control) thread.
//!
//! The control thread parses configs and merges histograms; cores only ever see a
//! `try_recv` of ready-made tables. Nothing here runs on a core.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam::channel::{bounded, Receiver, Sender};

use crate::app::{Geometry, Hub, HubConfig, ShmClientBridge, ShmServerBridge};
use crate::config::{AppRole, AppsConfig, Config};
use crate::engine::{CoreSnapshot, Engine, Peer};
use crate::stats::pcap::{Capture, PcapSink};
use crate::stats::LatencyHistogram;

use super::control::{self, Reply, Request};
use super::core_app::{CoreApp, CoreLinks, HostApp, HostCoreStats, Reload, ReloadAck};
use super::metrics;
use super::report::{AppsReport, StatsReport};
use super::service::HostedService;
use super::DEFAULT_CONTROL;

/// Frames the pcap queue holds (each buffer is `stats::pcap::SNAPLEN` bytes).
pub const PCAP_QUEUE_FRAMES: usize = 8192;
/// How long a reload waits for the cores' acknowledgements.
pub const RELOAD_ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// A running hosted service.
pub struct Host<S: HostedService> {
    service: Arc<S>,
    config_path: PathBuf,
    /// The configuration the engine started with (reloads apply only its tables).
    running: Config,
    engine: Engine<HostApp<S>>,
    reload_txs: Vec<Sender<Reload<S::Tables>>>,
    acks: Receiver<ReloadAck>,
    /// Histograms the cores hand over, emptied ones going back, and the sums per core.
    latency_in: Receiver<(usize, LatencyHistogram)>,
    latency_back: Vec<Sender<LatencyHistogram>>,
    latency: Vec<LatencyHistogram>,
    generation: u64,
    reloads: u64,
    pcap: Option<PcapSink>,
    /// The hub attached applications reach, with its configuration. Dropped after the
    /// engine stops, which tells every attached application the dataplane went away.
    apps: Option<(Hub, AppsConfig)>,
    started: Instant,
}

impl<S: HostedService> Host<S> {
    /// Starts the engine of `cfg` (read from `config_path`, re-read on reload) serving
    /// `service`; with `pcap`, every frame received and sent is written there.
    pub fn start(
        service: S,
        config_path: &Path,
        cfg: &Config,
        pcap: Option<&Path>,
        stop: Arc<AtomicBool>,
    ) -> Result<Host<S>> {
        let tables = service
            .tables(cfg)
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
        let (capture, sink) = match pcap {
            Some(p) => {
                let c = Capture::new(PCAP_QUEUE_FRAMES);
                let sink = PcapSink::start(p, Arc::clone(&c))?;
                (Some(c), Some(sink))
            }
            None => (None, None),
        };
        let n = cfg.cores.len();
        let (ack_tx, acks) = bounded(n.max(1) * 8);
        let (latency_out, latency_in) = bounded(n.max(1) * 2);
        let mut reload_txs = Vec::with_capacity(n);
        let mut latency_back = Vec::with_capacity(n);
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, reloads) = bounded(4);
            reload_txs.push(tx);
            // Two spare histograms per core: one in flight each way.
            let (back_tx, back_rx) = bounded(2);
            for _ in 0..2 {
                let _ = back_tx.try_send(LatencyHistogram::new());
            }
            latency_back.push(back_tx);
            links.push(Some(CoreLinks {
                reloads,
                acks: ack_tx.clone(),
                latency_out: latency_out.clone(),
                latency_back: back_rx,
            }));
        }
        let service = Arc::new(service);
        let spec = service.engine_spec();
        let (apps, mut events) = match &cfg.host.apps {
            Some(a) => {
                let (hub, rxs) = start_hub(a, cfg, service.service_id())?;
                (Some((hub, a.clone())), rxs.into_iter().map(Some).collect())
            }
            None => (None, Vec::new()),
        };
        // What each core runs (`Config::validate` made sure a client role has a server).
        let mode = match &cfg.host.apps {
            None => Mode::InProcess,
            Some(a) if a.role == AppRole::Server => Mode::Serve,
            Some(_) => {
                let c = cfg
                    .client
                    .as_ref()
                    .ok_or_else(|| anyhow!("`host.apps.role` \"client\" needs [client]"))?;
                Mode::Call(Peer {
                    ip: *c.server.ip(),
                    port: c.server.port(),
                })
            }
        };
        let svc = Arc::clone(&service);
        let classes = spec.classes.clone();
        let engine = Engine::start_with_capture(cfg, &spec, stop, capture, |i| {
            // One set of links per core index; an index beyond them (never made by the
            // engine) gets channels nobody serves.
            let l = links
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_else(|| CoreLinks {
                    reloads: bounded(1).1,
                    acks: ack_tx.clone(),
                    latency_out: latency_out.clone(),
                    latency_back: bounded(1).1,
                });
            // The hub made one receiver per core; a core beyond them gets no channels.
            let rx = events
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_else(crossbeam::channel::never);
            let app = match mode {
                Mode::InProcess => CoreApp::InProcess(svc.make_app(i, &tables)),
                Mode::Serve => CoreApp::Serve(ShmServerBridge::new(svc.make_chain(i, &tables), rx)),
                Mode::Call(peer) => CoreApp::Call(ShmClientBridge::new(rx, peer, classes.clone())),
            };
            HostApp::new(i, app, l)
        });
        let engine = match engine {
            Ok(e) => e,
            Err(e) => {
                if let Some(s) = sink {
                    let _ = s.finish();
                }
                return Err(e);
            }
        };
        Ok(Host {
            service,
            config_path: config_path.to_path_buf(),
            running: cfg.clone(),
            engine,
            reload_txs,
            acks,
            latency_in,
            latency_back,
            latency: (0..n).map(|_| LatencyHistogram::new()).collect(),
            generation: 0,
            reloads: 0,
            pcap: sink,
            apps,
            started: Instant::now(),
        })
    }

    pub fn engine(&self) -> &Engine<HostApp<S>> {
        &self.engine
    }

    /// Re-reads the config file and sends its tables to every core. A config that does
    /// not load or whose tables do not parse is refused: the cores keep their tables.
    pub fn reload(&mut self) -> Reply {
        let refused = |e: String| Reply::Error {
            message: format!("reload refused, the current tables stay: {e}"),
        };
        let cfg = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => return refused(e.to_string()),
        };
        let tables = match self.service.tables(&cfg) {
            Ok(t) => Arc::new(t),
            Err(e) => return refused(format!("{}: {e}", self.config_path.display())),
        };
        let outside_tables = |c: &Config| Config {
            tables: Default::default(),
            ..c.clone()
        };
        if outside_tables(&cfg) != outside_tables(&self.running) {
            eprintln!(
                "dataplane: reload: {} changed outside [tables]; those changes need a restart",
                self.config_path.display()
            );
        }
        self.generation += 1;
        let generation = self.generation;
        let mut sent = 0;
        for tx in &self.reload_txs {
            let msg = Reload {
                generation,
                tables: Arc::clone(&tables),
            };
            if tx.try_send(msg).is_ok() {
                sent += 1;
            }
        }
        let deadline = Instant::now() + RELOAD_ACK_TIMEOUT;
        let mut applied = 0;
        while applied < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.acks.recv_timeout(left) {
                Ok(a) if a.generation == generation => applied += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.reloads += 1;
        Reply::Reloaded {
            applied,
            cores: self.reload_txs.len(),
            generation,
        }
    }

    /// Adds the histograms the cores handed over to the per-core sums and gives them
    /// back emptied.
    pub fn collect_latency(&mut self) {
        collect_latency(&self.latency_in, &self.latency_back, &mut self.latency);
    }

    /// Counters of every core (as last published) and their totals.
    pub fn report(&mut self) -> StatsReport {
        self.collect_latency();
        let snaps = self.engine.snapshots();
        let mut r = StatsReport::build::<S>(
            self.service.name(),
            self.started.elapsed().as_secs_f64(),
            self.reloads,
            &snaps,
            &self.latency,
            self.pcap.as_ref().map(PcapSink::stats),
        );
        r.apps = apps_report(self.apps.as_ref(), &snaps);
        r
    }

    /// Answers a control request.
    pub fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::Ping => Reply::Pong {
                service: self.service.name().to_string(),
            },
            Request::Stats => Reply::Stats {
                report: Box::new(self.report()),
            },
            Request::Reload => self.reload(),
        }
    }

    /// Stops the cores, flushes the pcap file and returns the final counters.
    pub fn stop(mut self) -> Result<StatsReport> {
        let name = self.service.name().to_string();
        let uptime = self.started.elapsed().as_secs_f64();
        let cores = self.engine.stop_and_join()?;
        collect_latency(&self.latency_in, &self.latency_back, &mut self.latency);
        let mut snaps = Vec::with_capacity(cores.len());
        for (mut app, snap) in cores {
            if let Some(sum) = self.latency.get_mut(snap.core) {
                sum.merge(&app.take_latency());
            }
            snaps.push(snap);
        }
        let apps = apps_report(self.apps.as_ref(), &snaps);
        drop(self.apps.take());
        let capture = match self.pcap.take() {
            Some(s) => Some(s.finish()?),
            None => None,
        };
        let mut r =
            StatsReport::build::<S>(&name, uptime, self.reloads, &snaps, &self.latency, capture);
        r.apps = apps;
        Ok(r)
    }
}

/// What the cores of an instance run.
#[derive(Clone, Copy)]
enum Mode {
    InProcess,
    /// Attached server applications behind the service's chain.
    Serve,
    /// Attached client applications calling this server.
    Call(Peer),
}

/// The hub's report, with the cores' gauges summed from `snaps`.
fn apps_report<St>(
    apps: Option<&(Hub, AppsConfig)>,
    snaps: &[CoreSnapshot<HostCoreStats<St>>],
) -> Option<AppsReport> {
    let (hub, cfg) = apps?;
    let bridges = snaps.iter().filter_map(|s| s.app.bridge.as_ref());
    let (channels, slots_lent) =
        bridges.fold((0, 0), |(c, l), b| (c + b.channels, l + b.slots_lent));
    let mut channels_per_core = vec![0; snaps.len()];
    for s in snaps {
        if let (Some(c), Some(b)) = (channels_per_core.get_mut(s.core), &s.app.bridge) {
            *c = b.channels;
        }
    }
    Some(AppsReport {
        socket: cfg.socket.display().to_string(),
        role: cfg.role,
        hub: hub.stats(),
        channels,
        slots_lent,
        channels_per_core,
    })
}

/// Starts the hub of `[host.apps]`, creating the socket's directory if needed.
fn start_hub(
    a: &AppsConfig,
    cfg: &Config,
    service_id: u16,
) -> Result<(Hub, Vec<Receiver<crate::app::ChannelEvent>>)> {
    if let Some(dir) = a.socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            // Others must be able to reach the socket; who may attach is decided by
            // credentials at attach time (the control socket's directory is 0700).
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                })
                .with_context(|| format!("`host.apps.socket`: creating {}", dir.display()))?;
        }
    }
    if !(a.allow_uids.is_empty() && a.allow_gids.is_empty()) {
        if let Some(d) = closed_ancestor(&a.socket) {
            eprintln!(
                "dataplane: warning: {} is not searchable by other users, so the uids/gids \
                 of `host.apps.allow_*` cannot reach {}",
                d.display(),
                a.socket.display()
            );
        }
    }
    let hub = Hub::start(HubConfig {
        socket: a.socket.clone(),
        max_geometry: Geometry::default(),
        allow_uids: a.allow_uids.clone(),
        allow_gids: a.allow_gids.clone(),
        server_services: match a.role {
            AppRole::Server => vec![service_id],
            AppRole::Client => Vec::new(),
        },
        clients: a.role == AppRole::Client,
        cores: cfg.cores.len(),
    })
    .with_context(|| format!("`host.apps.socket`: {}", a.socket.display()))?;
    Ok(hub)
}

/// The first directory above `path` that other users cannot search (no `o+x`), if any.
fn closed_ancestor(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    abs.ancestors()
        .skip(1)
        .find(|d| {
            std::fs::metadata(d)
                .map(|m| m.permissions().mode() & 0o001 == 0)
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}

/// Adds the histograms the cores handed over to the per-core sums, and gives them back
/// emptied.
fn collect_latency(
    from: &Receiver<(usize, LatencyHistogram)>,
    back: &[Sender<LatencyHistogram>],
    sums: &mut [LatencyHistogram],
) {
    while let Ok((core, mut h)) = from.try_recv() {
        if let Some(sum) = sums.get_mut(core) {
            sum.merge(&h);
        }
        h.reset();
        if let Some(b) = back.get(core) {
            let _ = b.try_send(h);
        }
    }
}

/// The control socket file, removed when dropped.
struct ControlSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ControlSocket {
    fn bind(path: &Path) -> Result<ControlSocket> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("setting permissions of {}", dir.display()))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "control socket {} is in use by a running dataplane",
                    path.display()
                );
            }
            // A stale socket of an instance that did not exit cleanly.
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        let sock = ControlSocket {
            path: path.to_path_buf(),
            listener,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
        sock.listener
            .set_nonblocking(true)
            .context("control socket")?;
        Ok(sock)
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long one control or metrics connection may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// The control socket of a config: `[host] control`, or [`DEFAULT_CONTROL`].
pub fn control_path(cfg: &Config) -> PathBuf {
    cfg.host
        .control
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL))
}

/// Runs `service` as configured in `config_path` until SIGINT/SIGTERM (or the cores
/// finish), answering the control socket and the Prometheus endpoint, reloading on
/// SIGHUP. Returns the final counters.
pub fn run<S: HostedService>(
    service: S,
    config_path: &Path,
    pcap: Option<&Path>,
) -> Result<StatsReport> {
    let cfg = Config::load(config_path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("installing a signal handler")?;
    let control = ControlSocket::bind(&control_path(&cfg))?;
    let prometheus = match cfg.host.prometheus {
        Some(a) => {
            Some(metrics::bind(a).with_context(|| format!("`host.prometheus`: binding {a}"))?)
        }
        None => None,
    };
    let mut host = Host::start(service, config_path, &cfg, pcap, Arc::clone(&stop))?;
    eprintln!(
        "dataplane: serving {} on {}:{} ({} core(s), mac {}); control {}{}{}{}",
        host.service.name(),
        cfg.net.ip,
        cfg.net.udp_port,
        cfg.cores.len(),
        host.engine.mac,
        control.path.display(),
        cfg.host
            .prometheus
            .map(|a| format!("; prometheus http://{a}/metrics"))
            .unwrap_or_default(),
        pcap.map(|p| format!("; pcap {}", p.display()))
            .unwrap_or_default(),
        cfg.host
            .apps
            .as_ref()
            .map(|a| format!(
                "; {} applications attach at {}",
                match a.role {
                    AppRole::Server => "server",
                    AppRole::Client => "client",
                },
                a.socket.display()
            ))
            .unwrap_or_default(),
    );
    while !stop.load(Ordering::Relaxed) && !host.engine.finished() {
        host.collect_latency();
        if hup.swap(false, Ordering::Relaxed) {
            log_reload("SIGHUP", &host.reload());
        }
        loop {
            match control.listener.accept() {
                Ok((s, _)) => {
                    let mut what = None;
                    let r = control::serve_connection(s, CONNECTION_TIMEOUT, |req| {
                        let reply = host.handle(req);
                        if req == Request::Reload {
                            what = Some(reply.clone());
                        }
                        reply
                    });
                    if let Some(reply) = what {
                        log_reload("control socket", &reply);
                    }
                    if let Err(e) = r {
                        eprintln!("dataplane: control connection: {e}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("dataplane: control socket accept: {e}");
                    break;
                }
            }
        }
        if let Some(l) = &prometheus {
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        let r = metrics::serve_connection(s, CONNECTION_TIMEOUT, || {
                            host.report()
                                .prometheus()
                                .unwrap_or_else(|e| format!("# formatting failed: {e}\n"))
                        });
                        if let Err(e) = r {
                            eprintln!("dataplane: metrics connection: {e}");
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("dataplane: metrics accept: {e}");
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(control);
    host.stop()
}

fn log_reload(from: &str, r: &Reply) {
    match r {
        Reply::Reloaded {
            applied,
            cores,
            generation,
        } => eprintln!(
            "dataplane: reload ({from}): generation {generation} applied on {applied} of {cores} core(s)"
        ),
        Reply::Error { message } => eprintln!("dataplane: reload ({from}): {message}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_refuses_a_live_one_and_replaces_a_stale_one() {
        let dir = std::env::temp_dir().join(format!("flatrpc-ctl-{}", std::process::id()));
        let path = dir.join("sub").join("ctl.sock");
        let first = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.join("sub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let e = ControlSocket::bind(&path).err().unwrap().to_string();
        assert!(e.contains("in use by a running dataplane"), "{e}");
        // A socket file nobody listens on (a crashed instance) is replaced.
        std::mem::forget(first);
        let second = ControlSocket::bind(&path);
        // The forgotten listener still accepts connections: still in use.
        assert!(second.is_err());
        std::fs::remove_file(&path).unwrap();
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        let third = ControlSocket::bind(&path).unwrap();
        drop(third);
        assert!(!path.exists(), "removed on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_others_cannot_search_is_found() {
        let dir = std::env::temp_dir().join(format!("flatrpc-closed-{}", std::process::id()));
        let inner = dir.join("open");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = inner.join("apps.sock");
        assert_eq!(
            closed_ancestor(&sock),
            None,
            "/tmp and the rest are searchable"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(closed_ancestor(&sock), Some(dir.clone()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
