//! The error type of the DPDK layer: which call failed, on which port, and DPDK's own
//! text for the errno (`rte_strerror`). Owns nothing else.

use std::ffi::CStr;

/// A DPDK call failed, or the layer refused a request before calling DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` was already successful in this process; DPDK cannot re-initialise.
    #[error(
        "the DPDK EAL is already initialised in this process (it can be initialised only once)"
    )]
    AlreadyInitialised,
    /// An earlier `Eal::init` in this process failed; DPDK cannot retry it.
    #[error("an earlier DPDK EAL initialisation failed in this process; it cannot be retried")]
    InitFailedEarlier,
    /// A DPDK object was requested before `Eal::init` succeeded.
    #[error("the DPDK EAL is not initialised: call Eal::init first")]
    NotInitialised,
    /// A DPDK function returned an error.
    #[error("{call} failed{}: {text} (errno {errno})", port_suffix(*.port))]
    Call {
        /// The DPDK function that failed.
        call: &'static str,
        /// The ethdev port it was called on, if any.
        port: Option<u16>,
        /// The (positive) errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        text: String,
    },
    /// No ethdev has this name (`rte_eth_dev_get_port_by_name`).
    #[error("no DPDK ethdev named {0:?} (is the vdev/PCI device in the EAL arguments?)")]
    NoSuchDevice(String),
    /// A request the layer rejects before calling DPDK.
    #[error("invalid DPDK request: {0}")]
    Invalid(String),
}

fn port_suffix(port: Option<u16>) -> String {
    match port {
        Some(p) => format!(" on port {p}"),
        None => String::new(),
    }
}

impl DpdkError {
    /// An error for `call` with an explicit errno (positive or negative).
    pub(crate) fn errno(call: &'static str, port: Option<u16>, errno: i32) -> DpdkError {
        let errno = errno.abs();
        DpdkError::Call {
            call,
            port,
            errno,
            text: strerror(errno),
        }
    }

    /// An error for `call` from the calling thread's `rte_errno`.
    pub(crate) fn rte_errno(call: &'static str, port: Option<u16>) -> DpdkError {
        // SAFETY: reads the calling thread's rte_errno TLS variable; no preconditions.
        let errno = unsafe { dpdk_sys::flatrpc_rte_errno() };
        DpdkError::errno(call, port, errno)
    }

    /// The errno of a failed call, if this is one.
    pub fn errno_value(&self) -> Option<i32> {
        match self {
            DpdkError::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// `rte_strerror(errno)` as a `String`. Works before EAL init (it falls back to libc's
/// `strerror` for ordinary errno values).
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated
    // string (static, or in a per-lcore buffer) valid until the next call on this thread;
    // we copy it out immediately.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_call_port_and_dpdk_text() {
        let e = DpdkError::errno("rte_eth_dev_configure", Some(3), -libc::EINVAL);
        assert_eq!(e.errno_value(), Some(libc::EINVAL));
        let s = e.to_string();
        assert!(
            s.starts_with("rte_eth_dev_configure failed on port 3: "),
            "{s}"
        );
        assert!(s.contains("Invalid argument"), "{s}");
        let e = DpdkError::errno("rte_eal_init", None, libc::ENOMEM);
        assert!(e.to_string().starts_with("rte_eal_init failed: "), "{e}");
    }

    #[test]
    fn dpdk_specific_errno_values_have_text() {
        // E_RTE_SECONDARY = __ELASTERROR + 1 = 1001 is DPDK's own.
        let s = strerror(1001);
        assert!(!s.is_empty());
        assert!(!s.contains("Unknown error 1001"), "{s}");
    }
}
