//! The dataplane's side of attaching: a control thread that listens on a Unix
//! SOCK_SEQPACKET socket, checks each peer's credentials (SO_PEERCRED), answers its Hello
//! with a fresh segment (sent as a descriptor, then unlinked from /dev/shm) or a
//! refusal, and watches every attached application's socket for hangup with one `poll`.
//!
//! New and dead channels reach the polling cores over crossbeam channels (one per core;
//! a channel goes to the core with the fewest of its role); the cores only `try_recv`.
//! This thread must never be on the packet path and never blocks longer than its poll
//! timeout: connected peers wait for their Hello in the same `poll` (at most
//! [`MAX_PENDING`] of them, each for at most [`HELLO_TIMEOUT_MS`]), so a peer that never
//! speaks delays nobody.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

use super::proto::{Geometry, Hello, Reply, Role};
use super::shm::{self, Segment};

/// Names /dev/shm segments uniquely within this process.
static SEGMENT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How long a connected peer has to send its Hello.
pub const HELLO_TIMEOUT_MS: u16 = 1000;
/// The control thread's poll period (how fast a stop or a hangup is noticed).
pub const POLL_MS: u16 = 20;
/// Connected peers waiting for their Hello at most; more are refused at once.
pub const MAX_PENDING: usize = 64;

/// What the hub accepts.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The Unix socket path (replaced if a stale one exists).
    pub socket: PathBuf,
    /// Largest geometry granted.
    pub max_geometry: Geometry,
    /// Besides the dataplane's own uid and root, these uids / gids may attach.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Services that server applications may serve (empty: no servers accepted).
    pub server_services: Vec<u16>,
    /// Whether client applications are accepted.
    pub clients: bool,
    /// Polling cores to spread channels over.
    pub cores: usize,
}

/// A channel that was attached or that went away, for the core that owns it.
pub enum ChannelEvent {
    Attached(Attached),
    Detached(u32),
}

/// A new channel: its memory and what the application said it is.
pub struct Attached {
    pub id: u32,
    pub role: Role,
    pub geometry: Geometry,
    pub segment: Arc<Segment>,
    pub pid: i32,
}

/// The hub's counters.
#[derive(Debug, Default)]
pub struct HubStats {
    pub attached: AtomicU64,
    pub refused: AtomicU64,
    pub detached: AtomicU64,
    pub live: AtomicU64,
}

/// A plain copy of [`HubStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubSnapshot {
    pub attached: u64,
    pub refused: u64,
    pub detached: u64,
    pub live: u64,
}

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("socket {path}: {source}")]
    Socket { path: PathBuf, source: nix::Error },
    #[error("spawning the control thread: {0}")]
    Thread(std::io::Error),
    #[error("`cores` must be at least 1")]
    NoCore,
}

/// The running hub; dropping it stops the thread, closes every application's socket
/// (they see the dataplane go) and removes the socket path.
pub struct Hub {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<HubStats>,
    path: PathBuf,
}

impl Hub {
    /// Binds the socket and starts the control thread; returns one event receiver per core.
    pub fn start(cfg: HubConfig) -> Result<(Hub, Vec<Receiver<ChannelEvent>>), HubError> {
        if cfg.cores == 0 {
            return Err(HubError::NoCore);
        }
        let err = |source| HubError::Socket {
            path: cfg.socket.clone(),
            source,
        };
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(err)?;
        let _ = std::fs::remove_file(&cfg.socket);
        let addr = UnixAddr::new(&cfg.socket).map_err(err)?;
        socket::bind(listener.as_raw_fd(), &addr).map_err(err)?;
        // Anyone may connect; who may attach is decided by the peer's credentials
        // (SO_PEERCRED), so a refused process learns why instead of getting EACCES.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o666)).map_err(
                |e| HubError::Socket {
                    path: cfg.socket.clone(),
                    source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                },
            )?;
        }
        socket::listen(&listener, Backlog::new(64).unwrap_or(Backlog::MAXCONN)).map_err(err)?;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..cfg.cores)
            .map(|_| crossbeam::channel::unbounded())
            .unzip();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(HubStats::default());
        let path = cfg.socket.clone();
        let mut ctl = Control {
            cfg,
            listener,
            txs,
            apps: HashMap::new(),
            pending: Vec::new(),
            next_id: 1,
            stats: Arc::clone(&stats),
            me: nix::unistd::getuid().as_raw(),
            pid: std::process::id(),
        };
        let st = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("shm-hub".into())
            .spawn(move || ctl.run(&st))
            .map_err(HubError::Thread)?;
        Ok((
            Hub {
                stop,
                thread: Some(thread),
                stats,
                path,
            },
            rxs,
        ))
    }

    pub fn stats(&self) -> HubSnapshot {
        HubSnapshot {
            attached: self.stats.attached.load(Ordering::Relaxed),
            refused: self.stats.refused.load(Ordering::Relaxed),
            detached: self.stats.detached.load(Ordering::Relaxed),
            live: self.stats.live.load(Ordering::Relaxed),
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct App {
    sock: OwnedFd,
    core: usize,
    server: bool,
}

struct Control {
    cfg: HubConfig,
    listener: OwnedFd,
    txs: Vec<Sender<ChannelEvent>>,
    apps: HashMap<u32, App>,
    /// Connected peers whose Hello has not arrived, with their deadlines.
    pending: Vec<(OwnedFd, std::time::Instant)>,
    next_id: u32,
    stats: Arc<HubStats>,
    me: u32,
    pid: u32,
}

impl Control {
    fn run(&mut self, stop: &AtomicBool) {
        let mut ids: Vec<u32> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            ids.clear();
            ids.extend(self.apps.keys().copied());
            let mut fds = Vec::with_capacity(ids.len() + 1);
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            for id in &ids {
                if let Some(a) = self.apps.get(id) {
                    fds.push(PollFd::new(a.sock.as_fd(), PollFlags::POLLIN));
                }
            }
            for (sock, _) in &self.pending {
                fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
            }
            if nix::poll::poll(&mut fds, PollTimeout::from(POLL_MS)).is_err() {
                continue;
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            // Any event on an attached application's socket (it sends nothing after its
            // Hello) means it closed it: exited, crashed, or detached.
            for (i, id) in ids.iter().enumerate() {
                if ready.get(i + 1).copied().unwrap_or(false) {
                    self.detach(*id);
                }
            }
            // Peers whose Hello arrived (or who hung up) are answered; late ones refused.
            let now = std::time::Instant::now();
            let first_pending = ids.len() + 1;
            let pending = std::mem::take(&mut self.pending);
            for (i, (sock, deadline)) in pending.into_iter().enumerate() {
                if ready.get(first_pending + i).copied().unwrap_or(false) {
                    self.attach(sock);
                } else if now >= deadline {
                    self.refuse(&sock, "no Hello in time");
                } else {
                    self.pending.push((sock, deadline));
                }
            }
            if ready.first().copied().unwrap_or(false) {
                // Accept everything pending (the listener is non-blocking).
                while let Ok(sock) = shm::accept(&self.listener) {
                    if self.pending.len() >= MAX_PENDING {
                        self.refuse(&sock, "too many attaches in progress");
                        continue;
                    }
                    let wait = std::time::Duration::from_millis(u64::from(HELLO_TIMEOUT_MS));
                    self.pending.push((sock, now + wait));
                }
            }
        }
        // Stopping: every application sees its socket close.
        for (id, a) in self.apps.drain() {
            let _ = self
                .txs
                .get(a.core)
                .map(|t| t.send(ChannelEvent::Detached(id)));
        }
    }

    /// The core holding the fewest live channels of this role (the lowest such index):
    /// with as many server threads attached as there are cores, every core has one,
    /// whatever order they came and went in.
    fn least_loaded(&self, server: bool) -> usize {
        let mut load = vec![0usize; self.txs.len().max(1)];
        for a in self.apps.values().filter(|a| a.server == server) {
            if let Some(l) = load.get_mut(a.core) {
                *l += 1;
            }
        }
        load.iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .map_or(0, |(i, _)| i)
    }

    fn detach(&mut self, id: u32) {
        if let Some(a) = self.apps.remove(&id) {
            if let Some(t) = self.txs.get(a.core) {
                let _ = t.send(ChannelEvent::Detached(id));
            }
            self.stats.detached.fetch_add(1, Ordering::Relaxed);
            self.stats.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn refuse(&self, sock: &OwnedFd, reason: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let msg = Reply::Refused {
            reason: reason.to_string(),
        }
        .encode();
        let _ = socket::send(sock.as_raw_fd(), &msg, socket::MsgFlags::MSG_NOSIGNAL);
    }

    fn allowed(&self, sock: &OwnedFd) -> Result<i32, String> {
        let cred = socket::getsockopt(sock, sockopt::PeerCredentials)
            .map_err(|e| format!("cannot read peer credentials: {e}"))?;
        let (uid, gid) = (cred.uid(), cred.gid());
        if uid == self.me
            || uid == 0
            || self.cfg.allow_uids.contains(&uid)
            || self.cfg.allow_gids.contains(&gid)
        {
            Ok(cred.pid())
        } else {
            Err(format!(
                "uid {uid} gid {gid} may not attach to this dataplane (uid {})",
                self.me
            ))
        }
    }

    fn attach(&mut self, sock: OwnedFd) {
        // The Hello (the socket polled readable) is read before any answer, even a
        // refusal (closing a socket with unread data would reset the peer's connection
        // instead of letting it read why).
        let mut buf = [0u8; super::proto::MAX_MESSAGE + 1];
        let n = match socket::recv(sock.as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(_) => return,
        };
        let pid = match self.allowed(&sock) {
            Ok(p) => p,
            Err(reason) => return self.refuse(&sock, &reason),
        };
        let hello = match buf.get(..n).map(Hello::decode) {
            Some(Ok(h)) => h,
            Some(Err(e)) => return self.refuse(&sock, &format!("malformed Hello: {e}")),
            None => return,
        };
        match &hello.role {
            Role::Server { services } => {
                if let Some(s) = services
                    .iter()
                    .find(|s| !self.cfg.server_services.contains(s))
                {
                    return self
                        .refuse(&sock, &format!("this dataplane does not serve service {s}"));
                }
            }
            Role::Client => {
                if !self.cfg.clients {
                    return self.refuse(&sock, "this dataplane has no client bridge");
                }
            }
        }
        let geometry = hello.geometry.clamp_to(&self.cfg.max_geometry);
        let layout = match geometry.validate() {
            Ok(l) => l,
            Err(e) => return self.refuse(&sock, &format!("{e}")),
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        // The file name takes a process-wide sequence number, not the channel id: several
        // hubs in one process (tests, or a host serving two sockets) must not collide.
        let seq = SEGMENT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = PathBuf::from(format!("/dev/shm/flatrpc-{}-{seq}", self.pid));
        let mut seg = match Segment::create(&path, layout.total) {
            Ok(s) => s,
            Err(e) => return self.refuse(&sock, &format!("cannot create the segment: {e}")),
        };
        if super::write_header(&seg, id, &geometry).is_none() {
            return self.refuse(&sock, "segment header");
        }
        let welcome = Reply::Welcome {
            channel: id,
            geometry,
        }
        .encode();
        let sent = shm::send_with_fd(&sock, &welcome, seg.file().as_raw_fd());
        // The descriptor is in flight (or the send failed): the name is no longer needed.
        seg.unlink();
        if sent.is_err() {
            return;
        }
        let server = matches!(hello.role, Role::Server { .. });
        let core = self.least_loaded(server);
        let ev = ChannelEvent::Attached(Attached {
            id,
            role: hello.role,
            geometry,
            segment: Arc::new(seg),
            pid,
        });
        if self
            .txs
            .get(core)
            .map(|t| t.send(ev))
            .is_some_and(|r| r.is_ok())
        {
            self.apps.insert(id, App { sock, core, server });
            self.stats.attached.fetch_add(1, Ordering::Relaxed);
            self.stats.live.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::client::{AppChannel, AttachError, CallError};
    use crate::app::ring::{kind, Desc};
    use crate::app::{open_channel, status};
    use std::time::{Duration, Instant};

    fn hub(tag: &str) -> (Hub, Vec<Receiver<ChannelEvent>>) {
        hub_cores(tag, 1)
    }

    fn hub_cores(tag: &str, cores: usize) -> (Hub, Vec<Receiver<ChannelEvent>>) {
        let socket =
            std::env::temp_dir().join(format!("flatrpc-hubtest-{}-{tag}.sock", std::process::id()));
        Hub::start(HubConfig {
            socket,
            max_geometry: Geometry::default(),
            allow_uids: vec![],
            allow_gids: vec![],
            server_services: vec![7],
            clients: true,
            cores,
        })
        .expect("hub")
    }

    fn next(rx: &Receiver<ChannelEvent>) -> ChannelEvent {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("an event in time")
    }

    /// Tests that create segments run one at a time: `shm_files` counts this process's
    /// segment files, which another test's attach would briefly add to.
    static SEGMENTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        SEGMENTS.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shm_files(pid: u32) -> usize {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("flatrpc-{pid}-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// A server application and a hand-driven dataplane side over a real hub: requests
    /// are served, a hostile descriptor is skipped, hangup is seen, no file is left.
    #[test]
    fn attach_serve_detach() {
        let _one = one_at_a_time();
        let (hub, rxs) = hub("serve");
        let path = hub.socket_path().to_path_buf();
        let rx = &rxs[0];
        // Wrong service: refused with a reason.
        match AppChannel::attach(&path, Role::Server { services: vec![8] }) {
            Err(AttachError::Refused(r)) => assert!(r.contains("service 8"), "{r}"),
            other => panic!("want a refusal, got {other:?}"),
        }
        let app = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut ch =
                    AppChannel::attach(&path, Role::Server { services: vec![7] }).expect("attach");
                let r = ch.serve(|method, req, resp| {
                    if method != 1 {
                        return Err(crate::anf::AppError::new(1, "unknown method"));
                    }
                    let n = req.len();
                    resp[..n].copy_from_slice(req);
                    resp[..n].reverse();
                    Ok(n)
                });
                (r, ch.bad_descriptors)
            }
        });
        let ChannelEvent::Attached(a) = next(rx) else {
            panic!("want Attached");
        };
        assert_eq!(
            shm_files(std::process::id()),
            0,
            "the name is unlinked once sent"
        );
        let mut mem = open_channel(Arc::clone(&a.segment), &a.geometry, true).expect("rings");
        // A descriptor with a slot out of range: skipped by the app.
        mem.producer
            .push(&Desc {
                kind: kind::REQUEST,
                slot: 9999,
                len: 1,
                ..Desc::default()
            })
            .expect("push");
        for i in 0..100u32 {
            let slot = i % a.geometry.slot_count;
            let payload = [i as u8, 1, 2, 3];
            mem.arena.write(slot, &payload).expect("write");
            mem.producer
                .push(&Desc {
                    kind: kind::REQUEST,
                    slot,
                    len: 4,
                    tag: u64::from(i),
                    method: 1,
                    ..Desc::default()
                })
                .expect("push");
            let deadline = Instant::now() + Duration::from_secs(5);
            let d = loop {
                if let Some(d) = mem.consumer.pop().expect("ring") {
                    break d;
                }
                assert!(Instant::now() < deadline, "no response");
                std::thread::yield_now();
            };
            assert_eq!(
                (d.kind, d.slot, d.tag, d.status, d.len),
                (kind::RESPONSE, slot, u64::from(i), status::OK, 4)
            );
            let mut out = [0u8; 4];
            mem.arena.read(slot, 4, &mut out).expect("read");
            assert_eq!(out, [3, 2, 1, i as u8]);
        }
        assert_eq!(hub.stats().live, 1);
        // The dataplane goes: the app's serve loop ends with Disconnected.
        drop(hub);
        let (r, bad) = app.join().expect("app thread");
        assert_eq!(r, Err(CallError::Disconnected));
        assert_eq!(bad, 1);
        assert!(!path.exists());
    }

    /// The core an attach landed on (and its channel id).
    fn landed(rxs: &[Receiver<ChannelEvent>]) -> (usize, u32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            for (core, rx) in rxs.iter().enumerate() {
                if let Ok(ev) = rx.try_recv() {
                    match ev {
                        ChannelEvent::Attached(a) => return (core, a.id),
                        ChannelEvent::Detached(_) => continue,
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no attach reached a core");
    }

    #[test]
    fn each_role_goes_to_its_least_loaded_core() {
        let _one = one_at_a_time();
        let (hub, rxs) = hub_cores("spread", 3);
        let path = hub.socket_path().to_path_buf();
        let server = || AppChannel::attach(&path, Role::Server { services: vec![7] }).unwrap();
        let (a, b, c) = (server(), server(), server());
        let cores: Vec<usize> = (0..3).map(|_| landed(&rxs).0).collect();
        assert_eq!(cores, vec![0, 1, 2], "one server channel per core");
        // Clients are spread on their own: the first goes to core 0 again.
        let cl = AppChannel::attach(&path, Role::Client).unwrap();
        assert_eq!(landed(&rxs).0, 0);
        // The server on core 0 goes: its replacement takes core 0, not the next in turn.
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(5);
        while hub.stats().detached < 1 {
            assert!(Instant::now() < deadline, "detach not seen");
            std::thread::sleep(Duration::from_millis(1));
        }
        let d = server();
        assert_eq!(landed(&rxs).0, 0);
        drop((b, c, d, cl));
    }

    #[test]
    fn client_hangup_is_reported() {
        let _one = one_at_a_time();
        let (hub, rxs) = hub("hangup");
        let ch = AppChannel::attach(hub.socket_path(), Role::Client).expect("attach");
        let ChannelEvent::Attached(a) = next(&rxs[0]) else {
            panic!("want Attached");
        };
        drop(ch);
        match next(&rxs[0]) {
            ChannelEvent::Detached(id) => assert_eq!(id, a.id),
            ChannelEvent::Attached(_) => panic!("want Detached"),
        }
        let s = hub.stats();
        assert_eq!((s.attached, s.detached, s.live), (1, 1, 0));
    }

    /// A connection to the hub that has said nothing yet.
    fn raw_peer(hub: &Hub) -> OwnedFd {
        let sock = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let addr = UnixAddr::new(hub.socket_path()).expect("addr");
        socket::connect(sock.as_raw_fd(), &addr).expect("connect");
        sock
    }

    /// The hub's answer on `sock`, which must be a refusal (without a descriptor).
    fn refusal(sock: &OwnedFd) -> String {
        let mut buf = [0u8; 600];
        let (n, _, fd) = shm::recv_with_fd(sock, &mut buf).expect("recv");
        assert!(fd.is_none());
        match Reply::decode(&buf[..n]) {
            Ok(Reply::Refused { reason }) => reason,
            other => panic!("want a refusal, got {other:?}"),
        }
    }

    #[test]
    fn garbage_hello_is_refused() {
        let (hub, _rxs) = hub("garbage");
        let sock = raw_peer(&hub);
        socket::send(
            sock.as_raw_fd(),
            b"FRSH\x01\x00\x01\xff",
            socket::MsgFlags::empty(),
        )
        .expect("send");
        let reason = refusal(&sock);
        assert!(reason.contains("malformed"), "{reason}");
        assert_eq!(hub.stats().refused, 1);
    }

    #[test]
    fn a_silent_peer_delays_nobody_and_is_refused_in_time() {
        let _one = one_at_a_time();
        let (hub, rxs) = hub("silent");
        let silent = raw_peer(&hub);
        // Another application attaches meanwhile, long before the silent one's deadline.
        let t0 = Instant::now();
        let ch = AppChannel::attach(hub.socket_path(), Role::Client).expect("attach");
        let ChannelEvent::Attached(_) = next(&rxs[0]) else {
            panic!("want Attached");
        };
        assert!(
            t0.elapsed() < Duration::from_millis(u64::from(HELLO_TIMEOUT_MS) / 2),
            "the attach waited {:?} behind a silent peer",
            t0.elapsed()
        );
        // The silent one hears why once its time is up.
        let reason = refusal(&silent);
        assert!(reason.contains("no Hello"), "{reason}");
        assert!(t0.elapsed() >= Duration::from_millis(u64::from(HELLO_TIMEOUT_MS) / 2));
        assert_eq!((hub.stats().refused, hub.stats().live), (1, 1));
        drop(ch);
    }
}
