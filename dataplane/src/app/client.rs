//! The application side of a channel ([`AppChannel`]): attaching to a dataplane, and the
//! client API — `call` for one RPC at a time, `submit` / `poll_completion` for a window
//! of outstanding calls. The server loop is in `server.rs`.
//!
//! Waiting busy-polls (a short spin, then `yield_now`); it never sleeps on the fast
//! path — only a channel idle for about a millisecond naps [`IDLE_NAP`] between polls. The dataplane's liveness is checked with a zero-timeout `poll` on the attach
//! socket only after many empty polls. When the dataplane goes away every outstanding
//! call fails with [`CallError::Disconnected`] and [`AppChannel::reattach`] connects to
//! a restarted one (bounded retries; sleeping between attempts is fine there).
//! What the dataplane writes is validated like any peer input.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::proto::{self, Geometry, Hello, ProtoError, Reply, Role};
use super::ring::{kind, Desc};
use super::shm::{self, Segment, SegmentError};
use super::{check_header, open_channel, status, ChannelLayoutError, ChannelMem};

/// Why attaching failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("connecting to {path}: {source}")]
    Connect { path: PathBuf, source: nix::Error },
    #[error("the dataplane refused: {0}")]
    Refused(String),
    #[error("bad answer from the dataplane: {0}")]
    Protocol(#[from] ProtoError),
    #[error("socket: {0}")]
    Io(#[from] nix::Error),
    #[error("the dataplane sent no segment descriptor")]
    NoSegment,
    #[error("the dataplane did not answer in time")]
    Timeout,
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("segment: {0}")]
    Layout(#[from] ChannelLayoutError),
}

/// Why a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the dataplane went away (reattach)")]
    Disconnected,
    #[error("the server answered with error code {code:#06x}")]
    Remote { code: u16 },
    #[error("timed out")]
    Timeout,
    #[error("the dataplane has no session to the server")]
    Unavailable,
    #[error("the dataplane's session to the server closed")]
    SessionClosed,
    #[error("an earlier ordered call failed")]
    OrderBroken,
    #[error("message of {len} bytes does not fit (max {max})")]
    TooLarge { len: usize, max: usize },
    #[error("all slots are in use: poll completions first")]
    Busy,
    #[error("this channel is not attached as a client")]
    WrongRole,
}

impl CallError {
    fn from_status(st: u16) -> CallError {
        match st {
            status::TIMEOUT => CallError::Timeout,
            status::SESSION_CLOSED => CallError::SessionClosed,
            status::ORDER_BROKEN => CallError::OrderBroken,
            status::TOO_LARGE => CallError::TooLarge { len: 0, max: 0 },
            code => CallError::Remote { code },
        }
    }
}

/// One finished call from [`AppChannel::poll_completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// What [`AppChannel::submit`] returned.
    pub ticket: u64,
    /// The response length (written to the caller's buffer), or why the call failed.
    pub result: Result<usize, CallError>,
}

/// Spins before yielding when there is nothing to do.
pub(crate) const SPINS: u32 = 256;
/// Then yields this many times before napping.
pub(crate) const YIELDS: u32 = 2048;
/// The nap of an idle channel between polls.
pub const IDLE_NAP: Duration = Duration::from_micros(50);
/// Empty polls between two liveness checks of the dataplane (a `poll` syscall).
pub(crate) const CHECK_EVERY: u32 = 4096;

/// An attached channel (client or server role).
pub struct AppChannel {
    path: PathBuf,
    role: Role,
    want: Geometry,
    sock: OwnedFd,
    id: u32,
    geometry: Geometry,
    pub(crate) mem: ChannelMem,
    /// Client: free slots, and the ticket of each slot's outstanding call.
    free: Vec<u32>,
    outstanding: Vec<Option<u64>>,
    next_ticket: u64,
    pub(crate) alive: bool,
    pub(crate) idle: u32,
    /// Longest `call` waits for its outcome.
    pub call_timeout: Duration,
    pub(crate) req_buf: Vec<u8>,
    pub(crate) resp_buf: Vec<u8>,
    /// Descriptors from the dataplane that were refused (must stay 0).
    pub bad_descriptors: u64,
}

impl std::fmt::Debug for AppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppChannel")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("role", &self.role)
            .field("geometry", &self.geometry)
            .field("alive", &self.alive)
            .finish()
    }
}

fn connect(
    path: &Path,
    role: &Role,
    want: &Geometry,
) -> Result<(OwnedFd, u32, Geometry, ChannelMem), AttachError> {
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(sock.as_raw_fd(), &addr).map_err(|source| AttachError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    let hello = Hello {
        version: proto::VERSION,
        role: role.clone(),
        geometry: *want,
    };
    socket::send(sock.as_raw_fd(), &hello.encode(), MsgFlags::MSG_NOSIGNAL)?;
    let mut pfd = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    if nix::poll::poll(&mut pfd, PollTimeout::from(5000u16))? == 0 {
        return Err(AttachError::Timeout);
    }
    let mut buf = [0u8; proto::MAX_MESSAGE + 1];
    let (n, truncated, fd) = shm::recv_with_fd(&sock, &mut buf)?;
    if truncated {
        return Err(ProtoError::Long.into());
    }
    match Reply::decode(buf.get(..n).unwrap_or(&[]))? {
        Reply::Refused { reason } => Err(AttachError::Refused(reason)),
        Reply::Welcome { channel, geometry } => {
            let fd = fd.ok_or(AttachError::NoSegment)?;
            let layout = geometry.validate()?;
            let seg = Arc::new(Segment::from_fd(fd, layout.total)?);
            check_header(&seg, channel, &geometry)?;
            let mem = open_channel(seg, &geometry, false)?;
            Ok((sock, channel, geometry, mem))
        }
    }
}

impl AppChannel {
    /// Attaches to the dataplane listening at `path` with the default geometry.
    pub fn attach(path: impl AsRef<Path>, role: Role) -> Result<AppChannel, AttachError> {
        Self::attach_with(path, role, Geometry::default())
    }

    /// Attaches asking for `want` (the dataplane may grant less).
    pub fn attach_with(
        path: impl AsRef<Path>,
        role: Role,
        want: Geometry,
    ) -> Result<AppChannel, AttachError> {
        let path = path.as_ref().to_path_buf();
        let (sock, id, geometry, mem) = connect(&path, &role, &want)?;
        let slots = geometry.slot_count;
        Ok(AppChannel {
            path,
            role,
            want,
            sock,
            id,
            geometry,
            mem,
            free: (0..slots).rev().collect(),
            outstanding: vec![None; slots as usize],
            next_ticket: 1,
            alive: true,
            idle: 0,
            call_timeout: Duration::from_secs(10),
            req_buf: vec![0; geometry.slot_size as usize],
            resp_buf: vec![0; geometry.slot_size as usize],
            bad_descriptors: 0,
        })
    }

    /// Attaches again (after the dataplane restarted): up to `attempts` tries, `delay`
    /// apart. Outstanding calls of the old channel are lost (they already failed).
    pub fn reattach(&mut self, attempts: u32, delay: Duration) -> Result<(), AttachError> {
        let mut last = AttachError::Timeout;
        for i in 0..attempts.max(1) {
            if i > 0 {
                std::thread::sleep(delay);
            }
            match Self::attach_with(&self.path, self.role.clone(), self.want) {
                Ok(mut c) => {
                    c.call_timeout = self.call_timeout;
                    *self = c;
                    return Ok(());
                }
                // Refusals are final.
                Err(e @ AttachError::Refused(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub(crate) fn role_ref(&self) -> &Role {
        &self.role
    }

    pub fn channel_id(&self) -> u32 {
        self.id
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Largest request or response.
    pub fn max_message(&self) -> usize {
        self.geometry.slot_size as usize
    }

    /// Calls outstanding (submitted, not yet polled).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len() - self.free.len()
    }

    /// Whether the dataplane is still there (a zero-timeout `poll` on the socket: it
    /// sends nothing after the Welcome, so any event is its end).
    pub fn check_alive(&mut self) -> bool {
        if self.alive {
            let mut pfd = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut pfd, PollTimeout::ZERO) {
                Ok(0) => {}
                Ok(_) => self.alive = false,
                Err(nix::Error::EINTR) => {}
                Err(_) => self.alive = false,
            }
        }
        self.alive
    }

    /// Counts an empty poll; every [`CHECK_EVERY`] checks liveness. Returns `false` when
    /// the dataplane is gone.
    pub(crate) fn idle_tick(&mut self) -> bool {
        self.idle = self.idle.wrapping_add(1);
        if self.idle < SPINS {
            std::hint::spin_loop();
        } else if self.idle < SPINS + YIELDS {
            std::thread::yield_now();
        } else {
            // Idle for a while (about a millisecond of yields): nap briefly so a waiting
            // application leaves the CPU to the dataplane's polling cores. Under load
            // the counter keeps being reset and this is never reached.
            std::thread::sleep(IDLE_NAP);
        }
        if self.idle.is_multiple_of(CHECK_EVERY) {
            return self.check_alive();
        }
        self.alive
    }

    /// Starts a call; returns its ticket. Fails at once when no slot is free or the
    /// request does not fit.
    pub fn submit(&mut self, service: u16, method: u16, req: &[u8]) -> Result<u64, CallError> {
        if self.role != Role::Client {
            return Err(CallError::WrongRole);
        }
        if !self.alive {
            return Err(CallError::Disconnected);
        }
        if req.len() > self.max_message() {
            return Err(CallError::TooLarge {
                len: req.len(),
                max: self.max_message(),
            });
        }
        let slot = *self.free.last().ok_or(CallError::Busy)?;
        let ticket = self.next_ticket;
        if self.mem.arena.write(slot, req).is_err() {
            return Err(CallError::TooLarge {
                len: req.len(),
                max: self.max_message(),
            });
        }
        let d = Desc {
            kind: kind::CALL,
            status: status::OK,
            service,
            method,
            slot,
            len: req.len() as u32,
            tag: ticket,
            aux: 0,
        };
        if self.mem.producer.push(&d).is_err() {
            // Slots never outnumber ring entries: a full ring means a broken dataplane.
            self.alive = false;
            return Err(CallError::Disconnected);
        }
        self.free.pop();
        self.next_ticket += 1;
        if let Some(o) = self.outstanding.get_mut(slot as usize) {
            *o = Some(ticket);
        }
        Ok(ticket)
    }

    /// The next finished call, its response copied into `resp` (`TooLarge` when it does
    /// not fit). `Ok(None)`: nothing finished yet. Once the dataplane is gone, each
    /// outstanding call completes with `Disconnected`, then `Err(Disconnected)`.
    pub fn poll_completion(&mut self, resp: &mut [u8]) -> Result<Option<Completion>, CallError> {
        if self.alive {
            loop {
                let d = match self.mem.consumer.pop() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        self.alive = false;
                        break;
                    }
                };
                let ticket = match self.outstanding.get(d.slot as usize) {
                    Some(Some(t)) if d.kind == kind::COMPLETION && *t == d.tag => *t,
                    _ => {
                        self.bad_descriptors += 1;
                        continue;
                    }
                };
                if let Some(o) = self.outstanding.get_mut(d.slot as usize) {
                    *o = None;
                }
                self.free.push(d.slot);
                self.idle = 0;
                let result = if d.status == status::OK {
                    let max = resp.len();
                    self.mem
                        .arena
                        .read(d.slot, d.len, resp)
                        .map_err(|_| CallError::TooLarge {
                            len: d.len as usize,
                            max,
                        })
                } else if d.status == status::UNAVAILABLE {
                    Err(CallError::Unavailable)
                } else {
                    Err(CallError::from_status(d.status))
                };
                return Ok(Some(Completion { ticket, result }));
            }
            if self.idle_tick() {
                return Ok(None);
            }
        }
        // Gone: fail what is outstanding, one per poll.
        if let Some(slot) = self.outstanding.iter().position(|o| o.is_some()) {
            let ticket = self.outstanding[slot].take().unwrap_or_default();
            self.free.push(slot as u32);
            return Ok(Some(Completion {
                ticket,
                result: Err(CallError::Disconnected),
            }));
        }
        Err(CallError::Disconnected)
    }

    /// One call, waiting for its outcome (use with no other call outstanding).
    pub fn call(&mut self, service: u16, method: u16, req: &[u8]) -> Result<Vec<u8>, CallError> {
        if self.outstanding() > 0 {
            return Err(CallError::Busy);
        }
        let ticket = self.submit(service, method, req)?;
        let deadline = Instant::now() + self.call_timeout;
        let mut resp = std::mem::take(&mut self.resp_buf);
        let out = loop {
            match self.poll_completion(&mut resp) {
                Ok(Some(c)) if c.ticket == ticket => {
                    break c.result.map(|n| resp[..n].to_vec());
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    if self.idle.is_multiple_of(1024) && Instant::now() > deadline {
                        break Err(CallError::Timeout);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.resp_buf = resp;
        out
    }
}
