//! `dataplane run`: [`Host`] starts the engine with one [`HostApp`] per core, owns the
//! reload channels and the pcap writer; [`run`] adds the control socket, the Prometheus
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

use crate::config::Config;
use crate::engine::Engine;
use crate::stats::pcap::{Capture, PcapSink};

use super::control::{self, Reply, Request};
use super::core_app::{HostApp, Reload, ReloadAck};
use super::metrics;
use super::report::StatsReport;
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
    engine: Engine<HostApp<S>>,
    reload_txs: Vec<Sender<Reload<S::Tables>>>,
    acks: Receiver<ReloadAck>,
    generation: u64,
    reloads: u64,
    pcap: Option<PcapSink>,
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
        let mut reload_txs = Vec::with_capacity(n);
        let mut reload_rxs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = bounded(4);
            reload_txs.push(tx);
            reload_rxs.push(Some(rx));
        }
        let service = Arc::new(service);
        let svc = Arc::clone(&service);
        let engine = Engine::start_with_capture(cfg, &service.engine_spec(), stop, capture, |i| {
            // One receiver per core index; an index beyond them (never made by the
            // engine) gets a channel nobody sends on.
            let rx = reload_rxs
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_else(|| bounded(1).1);
            HostApp::new(i, svc.make_app(i, &tables), rx, ack_tx.clone())
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
            engine,
            reload_txs,
            acks,
            generation: 0,
            reloads: 0,
            pcap: sink,
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

    /// Counters of every core (as last published) and their totals.
    pub fn report(&self) -> StatsReport {
        StatsReport::build::<S>(
            self.service.name(),
            self.started.elapsed().as_secs_f64(),
            self.reloads,
            &self.engine.snapshots(),
            self.pcap.as_ref().map(PcapSink::stats),
        )
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
    pub fn stop(self) -> Result<StatsReport> {
        let name = self.service.name().to_string();
        let uptime = self.started.elapsed().as_secs_f64();
        let cores = self.engine.stop_and_join()?;
        let snaps: Vec<_> = cores.into_iter().map(|(_, s)| s).collect();
        let capture = match self.pcap {
            Some(s) => Some(s.finish()?),
            None => None,
        };
        Ok(StatsReport::build::<S>(
            &name,
            uptime,
            self.reloads,
            &snaps,
            capture,
        ))
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
        "dataplane: serving {} on {}:{} ({} core(s), mac {}); control {}{}{}",
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
    );
    while !stop.load(Ordering::Relaxed) && !host.engine.finished() {
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
