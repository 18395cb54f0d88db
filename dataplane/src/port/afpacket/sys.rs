//! The thin libc layer under the kernel-socket backends (`afpacket` and `tap`):
//! the [`PortError`] type, interface-name handling, socket options and interface
//! ioctls. Every `unsafe` block here is one syscall with its buffer sizes derived from
//! the Rust types passed in. This module must not hold packet-path state.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::wire::MacAddr;

/// Why a kernel-backed port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("network interface {iface:?} does not exist in this network namespace")]
    NoSuchInterface { iface: String },
    #[error("bad interface name {iface:?}: must be 1 to 15 bytes, no NUL, '/' or whitespace")]
    BadInterfaceName { iface: String },
    #[error("{call} on {iface:?} failed: {source}")]
    Os {
        call: &'static str,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("bad configuration for {iface:?}: {reason}")]
    Config { iface: String, reason: String },
}

impl PortError {
    /// Wraps the calling thread's last OS error.
    pub(crate) fn last_os(call: &'static str, iface: &str) -> PortError {
        PortError::Os {
            call,
            iface: iface.to_string(),
            source: io::Error::last_os_error(),
        }
    }

    pub(crate) fn os(call: &'static str, iface: &str, source: io::Error) -> PortError {
        PortError::Os {
            call,
            iface: iface.to_string(),
            source,
        }
    }
}

/// Maximum interface name length in bytes (IFNAMSIZ minus the NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub(crate) fn check_ifname(iface: &str) -> Result<(), PortError> {
    let ok = !iface.is_empty()
        && iface.len() <= MAX_IFNAME_LEN
        && iface != "."
        && iface != ".."
        && !iface
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(PortError::BadInterfaceName {
            iface: iface.to_string(),
        })
    }
}

/// An `ifreq` with the name filled in and everything else zero.
pub(crate) fn ifreq_for(iface: &str) -> Result<libc::ifreq, PortError> {
    check_ifname(iface)?;
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers,
    // sockaddrs and a pointer); all-zero bytes is a valid value for every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The interface index, or [`PortError::NoSuchInterface`].
pub(crate) fn ifindex(iface: &str) -> Result<libc::c_int, PortError> {
    check_ifname(iface)?;
    let name = CString::new(iface).map_err(|_| PortError::BadInterfaceName {
        iface: iface.to_string(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => PortError::NoSuchInterface {
                iface: iface.to_string(),
            },
            _ => PortError::os("if_nametoindex", iface, err),
        });
    }
    libc::c_int::try_from(idx).map_err(|_| PortError::Config {
        iface: iface.to_string(),
        reason: format!("interface index {idx} out of range"),
    })
}

/// `socket(2)` with `SOCK_CLOEXEC`, owned.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
    iface: &str,
) -> Result<OwnedFd, PortError> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(PortError::last_os("socket", iface));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a value of type `T` (a C struct or integer).
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    call: &'static str,
    iface: &str,
) -> Result<(), PortError> {
    // SAFETY: `value` points to a live `T` of exactly `size_of::<T>()` bytes, which the
    // kernel only reads during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(PortError::last_os(call, iface));
    }
    Ok(())
}

/// `getsockopt(2)` into a `T` (a C struct or integer of plain data).
pub(crate) fn getsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`, which has room for
    // `size_of::<T>()` bytes, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `value` was zero-initialised and the callers only use plain-data `T`s
    // (integers, structs of integers) for which any bytes are valid.
    Ok(unsafe { value.assume_init() })
}

/// An interface ioctl (`SIOC*IF*`, `TUNSETIFF`) on `fd` with `req`.
pub(crate) fn ifreq_ioctl(
    fd: &OwnedFd,
    request: libc::Ioctl,
    req: &mut libc::ifreq,
    call: &'static str,
    iface: &str,
) -> Result<(), PortError> {
    // SAFETY: `req` is a valid, exclusively borrowed ifreq that the kernel reads and
    // may write during the call; the requests used with it all take a `struct ifreq *`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(PortError::NoSuchInterface {
                iface: iface.to_string(),
            });
        }
        return Err(PortError::os(call, iface, err));
    }
    Ok(())
}

/// The interface's hardware address (SIOCGIFHWADDR) through any socket `fd`.
pub(crate) fn hwaddr(fd: &OwnedFd, iface: &str) -> Result<MacAddr, PortError> {
    let mut req = ifreq_for(iface)?;
    ifreq_ioctl(
        fd,
        libc::SIOCGIFHWADDR,
        &mut req,
        "ioctl(SIOCGIFHWADDR)",
        iface,
    )?;
    // SAFETY: after a successful SIOCGIFHWADDR the kernel filled the union's
    // `ifru_hwaddr` member (and every member is plain data anyway).
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, &d) in mac.iter_mut().zip(data.iter()) {
        *m = d as u8;
    }
    Ok(MacAddr(mac))
}

/// Sets the interface's hardware address (SIOCSIFHWADDR).
pub(crate) fn set_hwaddr(fd: &OwnedFd, iface: &str, mac: MacAddr) -> Result<(), PortError> {
    let mut req = ifreq_for(iface)?;
    // SAFETY: writing plain-data members of the (zeroed) union.
    unsafe {
        req.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (d, &m) in req
            .ifr_ifru
            .ifru_hwaddr
            .sa_data
            .iter_mut()
            .zip(mac.0.iter())
        {
            *d = m as libc::c_char;
        }
    }
    ifreq_ioctl(
        fd,
        libc::SIOCSIFHWADDR,
        &mut req,
        "ioctl(SIOCSIFHWADDR)",
        iface,
    )
}

/// Sets IFF_UP (SIOCGIFFLAGS + SIOCSIFFLAGS).
pub(crate) fn set_up(fd: &OwnedFd, iface: &str) -> Result<(), PortError> {
    let mut req = ifreq_for(iface)?;
    ifreq_ioctl(
        fd,
        libc::SIOCGIFFLAGS,
        &mut req,
        "ioctl(SIOCGIFFLAGS)",
        iface,
    )?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`; reading and writing a c_short member.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    ifreq_ioctl(
        fd,
        libc::SIOCSIFFLAGS,
        &mut req,
        "ioctl(SIOCSIFFLAGS)",
        iface,
    )
}

/// The interface MTU (SIOCGIFMTU).
pub(crate) fn mtu(fd: &OwnedFd, iface: &str) -> Result<usize, PortError> {
    let mut req = ifreq_for(iface)?;
    ifreq_ioctl(fd, libc::SIOCGIFMTU, &mut req, "ioctl(SIOCGIFMTU)", iface)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(usize::try_from(mtu).unwrap_or(0))
}

/// Sets or clears O_NONBLOCK.
pub(crate) fn set_nonblocking(fd: &OwnedFd, iface: &str) -> Result<(), PortError> {
    // SAFETY: fcntl on an fd we own, integer arguments.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(PortError::last_os("fcntl(F_GETFL)", iface));
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(PortError::last_os("fcntl(F_SETFL)", iface));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        for good in ["lo", "eth0", "fr-va", "a23456789012345"] {
            assert!(check_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a234567890123456",
            "a/b",
            "a b",
            "a:b",
            ".",
            "..",
            "x\0y",
        ] {
            assert!(
                matches!(check_ifname(bad), Err(PortError::BadInterfaceName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_interface_is_named_in_one_line() {
        let err = ifindex("nosuchif0").unwrap_err();
        assert!(matches!(err, PortError::NoSuchInterface { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("nosuchif0") && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn loopback_has_an_index_and_a_zero_mac() {
        assert!(ifindex("lo").unwrap() > 0);
        let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0, "lo").unwrap();
        assert_eq!(hwaddr(&fd, "lo").unwrap(), MacAddr::ZERO);
        assert!(mtu(&fd, "lo").unwrap() >= 1500);
    }
}
