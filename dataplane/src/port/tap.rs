//! TAP backend: a kernel-visible Ethernet interface backed by `/dev/net/tun`.
//!
//! [`Tap::open`] creates (or attaches to) a tap with `IFF_TAP | IFF_NO_PI` in the calling
//! thread's network namespace, makes the fd non-blocking, optionally sets the kernel
//! side's MAC and brings the link up. Frames the kernel sends out of the interface are
//! what [`TapPort::rx_burst`] reads; frames [`TapPort::tx_burst`] writes arrive at the
//! kernel as received on it. The port's own [`Port::mac`] is a separate address (a
//! fresh locally administered one unless configured): the kernel interface is the
//! *peer*, and its MAC is [`TapPort::kernel_mac`].
//!
//! One `read`/`write` syscall per frame (TUN has no ring); `EAGAIN` ends a burst. No
//! allocation per frame: frames are read straight into pool buffers. This module owns
//! the tun fd; the libc calls are in `afpacket::sys`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::afpacket::{next_local_seed, sys};
use super::{BufPool, PacketBuf, PoolBuf, Port, PortStats};
use crate::wire::MacAddr;

pub use super::afpacket::PortError;

const TUN_PATH: &std::ffi::CStr = c"/dev/net/tun";
const ETH_HEADER_LEN: usize = 14;

/// How to open a tap port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// MAC to give the kernel's side of the tap (SIOCSIFHWADDR); `None` keeps the
    /// kernel's random one.
    pub kernel_mac: Option<MacAddr>,
    /// The address this port uses as its own; `None` picks a fresh locally administered
    /// one, distinct from the kernel's.
    pub port_mac: Option<MacAddr>,
    /// Set IFF_UP on the interface.
    pub bring_up: bool,
    /// Buffers in the port's pool.
    pub pool_bufs: usize,
    /// Size of each buffer: the largest frame received (MTU + 14 at least).
    pub buf_size: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            kernel_mac: None,
            port_mac: None,
            bring_up: true,
            pool_bufs: 1024,
            buf_size: super::buf::DEFAULT_BUF_SIZE,
        }
    }
}

/// Opens tap ports.
pub struct Tap;

impl Tap {
    /// Creates tap `name`, or attaches to an existing persistent tap of that name.
    pub fn open(name: &str, cfg: &TapConfig) -> Result<TapPort, PortError> {
        let fd = attach(name)?;
        TapPort::new(fd, name, cfg)
    }

    /// Attaches to an existing (persistent) tap `name`; fails with
    /// [`PortError::NoSuchInterface`] instead of creating it.
    pub fn open_existing(name: &str, cfg: &TapConfig) -> Result<TapPort, PortError> {
        sys::ifindex(name)?;
        Tap::open(name, cfg)
    }

    /// Creates a persistent tap `name` that outlives this process (like
    /// `ip tuntap add NAME mode tap`); open it later with [`Tap::open_existing`].
    pub fn create_persistent(name: &str) -> Result<(), PortError> {
        let fd = attach(name)?;
        set_persist(&fd, name, true)
    }

    /// Deletes a persistent tap (clears its persist flag; the interface goes away when
    /// the last fd on it closes).
    pub fn delete_persistent(name: &str) -> Result<(), PortError> {
        sys::ifindex(name)?;
        let fd = attach(name)?;
        set_persist(&fd, name, false)
    }
}

/// Opens /dev/net/tun and binds it to tap `name` (creating it when absent).
fn attach(name: &str) -> Result<OwnedFd, PortError> {
    let mut req = sys::ifreq_for(name)?;
    // SAFETY: TUN_PATH is a NUL-terminated path; plain open(2).
    let raw = unsafe {
        libc::open(
            TUN_PATH.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(PortError::last_os("open(/dev/net/tun)", name));
    }
    // SAFETY: `raw` was just returned by open(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    sys::ifreq_ioctl(&fd, libc::TUNSETIFF, &mut req, "ioctl(TUNSETIFF)", name)?;
    Ok(fd)
}

fn set_persist(fd: &OwnedFd, name: &str, on: bool) -> Result<(), PortError> {
    // SAFETY: TUNSETPERSIST takes its argument by value (an int flag), no memory.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, libc::c_ulong::from(on)) };
    if rc < 0 {
        return Err(PortError::last_os("ioctl(TUNSETPERSIST)", name));
    }
    Ok(())
}

/// One tap interface as a port.
pub struct TapPort {
    fd: OwnedFd,
    name: String,
    pool: BufPool,
    mac: MacAddr,
    kernel_mac: MacAddr,
    stats: PortStats,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("kernel_mac", &self.kernel_mac)
            .finish()
    }
}

impl TapPort {
    fn new(fd: OwnedFd, name: &str, cfg: &TapConfig) -> Result<TapPort, PortError> {
        if cfg.pool_bufs == 0 || cfg.buf_size < ETH_HEADER_LEN {
            return Err(PortError::Config {
                iface: name.to_string(),
                reason: format!(
                    "pool_bufs must be ≥ 1 and buf_size ≥ {ETH_HEADER_LEN} (got {} and {})",
                    cfg.pool_bufs, cfg.buf_size
                ),
            });
        }
        let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0, name)?;
        if let Some(mac) = cfg.kernel_mac {
            sys::set_hwaddr(&ctl, name, mac)?;
        }
        if cfg.bring_up {
            sys::set_up(&ctl, name)?;
        }
        let kernel_mac = sys::hwaddr(&ctl, name)?;
        let mac = match cfg.port_mac {
            Some(m) => m,
            None => {
                let mut m = MacAddr::local(next_local_seed());
                while m == kernel_mac {
                    m = MacAddr::local(next_local_seed());
                }
                m
            }
        };
        Ok(TapPort {
            fd,
            name: name.to_string(),
            pool: BufPool::new(cfg.pool_bufs, cfg.buf_size),
            mac,
            kernel_mac,
            stats: PortStats::default(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel side's MAC: the destination for frames meant for the kernel.
    pub fn kernel_mac(&self) -> MacAddr {
        self.kernel_mac
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Port for TapPort {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let mut got = 0;
        while got < max {
            let Some(mut buf) = self.pool.alloc() else {
                self.stats.alloc_failed += 1;
                break;
            };
            let cap = buf.capacity();
            if buf.set_len(cap).is_err() {
                break;
            }
            let dst = buf.data_mut();
            // SAFETY: `dst` is a writable buffer of `dst.len()` bytes that outlives the
            // call; read(2) writes at most that many bytes into it.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len()) };
            if n < 0 {
                match last_errno() {
                    libc::EAGAIN | libc::EINTR => {}
                    _ => self.stats.rx_errors += 1,
                }
                break;
            }
            let n = n as usize;
            if n == 0 {
                break;
            }
            if n > cap {
                // The frame did not fit (tun reports the full length): drop it.
                self.stats.rx_errors += 1;
                continue;
            }
            if buf.set_len(n).is_err() {
                self.stats.rx_errors += 1;
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += n as u64;
            out.push(buf);
            got += 1;
        }
        got
    }

    fn tx_burst(&mut self, bufs: &mut Vec<PoolBuf>) -> usize {
        let mut taken = 0;
        for buf in bufs.iter() {
            let frame = buf.data();
            // SAFETY: `frame` is a readable buffer of `frame.len()` bytes that outlives
            // the call; write(2) only reads it.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
            if n < 0 {
                let e = last_errno();
                if e == libc::EAGAIN || e == libc::EINTR {
                    break;
                }
                // The kernel refused this frame (too short, link down...): drop it.
                self.stats.tx_errors += 1;
            } else {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
            }
            taken += 1;
        }
        self.stats.tx_dropped += (bufs.len() - taken) as u64;
        bufs.drain(..taken);
        taken
    }

    fn alloc(&mut self) -> Option<PoolBuf> {
        self.pool.alloc_counted(&mut self.stats)
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_existing_refuses_a_missing_tap() {
        let err = Tap::open_existing("frnotap0", &TapConfig::default()).unwrap_err();
        assert!(matches!(err, PortError::NoSuchInterface { .. }), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        let err = Tap::open("this-name-is-too-long", &TapConfig::default()).unwrap_err();
        assert!(matches!(err, PortError::BadInterfaceName { .. }), "{err}");
    }
}
