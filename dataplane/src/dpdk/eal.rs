//! The DPDK Environment Abstraction Layer: process-wide initialisation, lcore
//! registration of threads we pin ourselves, and the TSC clock.
//!
//! Owns the one-per-process `rte_eal_init` call. It must not create devices or
//! mempools (see `ethdev`, `mempool`).
//!
//! The EAL is never cleaned up: `rte_eal_cleanup` would invalidate every mempool and
//! port still referenced, and DPDK cannot initialise the EAL again in the same process
//! anyway, so the [`Eal`] handle is a `Copy` token valid until the process exits.

use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use super::DpdkError;

/// Program name passed to DPDK as `argv[0]`.
const PROGRAM: &str = "flatrpc";

/// Set once `rte_eal_init` succeeded.
static EAL: OnceLock<Eal> = OnceLock::new();
/// Serialises `Eal::init` calls; true once `rte_eal_init` was called (success or not).
static INIT_LOCK: Mutex<bool> = Mutex::new(false);

/// Proof that the EAL is initialised in this process. Cheap to copy; there is no
/// teardown (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL with `args` (everything after the program name, e.g.
    /// `["--no-huge", "-m", "256", "--no-pci", "--vdev=net_null0"]`).
    ///
    /// Once per process: after a success every further call returns
    /// [`DpdkError::AlreadyInitialised`]. A failure returns the `rte_errno` text, and
    /// every later call [`DpdkError::InitFailedEarlier`]: DPDK keeps half-parsed state
    /// after a failed `rte_eal_init`, so it is not retried.
    ///
    /// PMD plugins are loaded from DPDK's build-time directory (on Debian
    /// `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`); add `-d <path>` for others.
    ///
    /// `rte_eal_init` pins the calling thread to the main lcore's CPU set (it becomes
    /// lcore 0 with mempool caches); threads it spawns afterwards inherit that affinity
    /// until they pin themselves. With `-l 0` no EAL worker threads are started, which
    /// is what flatrpc wants: it runs its own pinned threads and registers them with
    /// [`Eal::register_thread`].
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let mut attempted = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if EAL.get().is_some() {
            return Err(DpdkError::AlreadyInitialised);
        }
        if *attempted {
            return Err(DpdkError::InitFailedEarlier);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(PROGRAM).chain(args.iter().map(String::as_str)) {
            let c = CString::new(a).map_err(|_| {
                DpdkError::Invalid(format!("EAL argument {a:?} contains a NUL byte"))
            })?;
            owned.push(c);
        }
        // EAL may keep pointers into argv (device arguments, prefixes) for the life of the
        // process, so the strings are leaked on purpose: this happens once per process.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = i32::try_from(argv.len())
            .map_err(|_| DpdkError::Invalid("too many EAL arguments".to_string()))?;
        argv.push(std::ptr::null_mut());
        *attempted = true;
        // SAFETY: argv holds argc valid NUL-terminated strings plus a NULL terminator; the
        // strings and the pointer array are leaked, so they outlive the EAL. The call is
        // serialised by INIT_LOCK.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(argv);
        if rc < 0 {
            return Err(DpdkError::rte_errno("rte_eal_init", None));
        }
        let eal = Eal { _private: () };
        // Cannot already be set: we hold INIT_LOCK and checked above.
        let _ = EAL.set(eal);
        Ok(eal)
    }

    /// The handle, if `init` succeeded in this process.
    pub fn get() -> Option<Eal> {
        EAL.get().copied()
    }

    /// Like [`Eal::get`], as a `Result` for the layer's constructors.
    pub(crate) fn require() -> Result<Eal, DpdkError> {
        Eal::get().ok_or(DpdkError::NotInitialised)
    }

    /// Gives the calling thread an lcore id, so it gets per-lcore mempool caches (without
    /// one every mbuf alloc/free goes to the shared ring). Call it on each polling thread
    /// after pinning it (e.g. with `core_affinity`); DPDK records the thread's current
    /// CPU set and does not change it. Keep the returned guard for the thread's life:
    /// dropping it unregisters the thread. A thread that already has an lcore id (the
    /// thread that ran `init`, EAL workers) gets a guard that does nothing on drop.
    pub fn register_thread(&self) -> Result<LcoreRegistration, DpdkError> {
        if let Some(id) = Self::lcore_id() {
            return Ok(LcoreRegistration {
                lcore_id: id,
                registered: false,
                _not_send: PhantomData,
            });
        }
        // SAFETY: the EAL is initialised (self proves it); registers the calling thread.
        let rc = unsafe { dpdk_sys::rte_thread_register() };
        if rc < 0 {
            return Err(DpdkError::rte_errno("rte_thread_register", None));
        }
        let lcore_id = Self::lcore_id().ok_or_else(|| {
            DpdkError::Invalid("rte_thread_register succeeded but no lcore id".to_string())
        })?;
        Ok(LcoreRegistration {
            lcore_id,
            registered: true,
            _not_send: PhantomData,
        })
    }

    /// The calling thread's lcore id, `None` for a thread DPDK does not know.
    pub fn lcore_id() -> Option<u32> {
        // SAFETY: reads the calling thread's per-lcore TLS variable; valid at any time.
        let id = unsafe { dpdk_sys::rte_lcore_id() };
        (id != dpdk_sys::FLATRPC_LCORE_ID_ANY).then_some(id)
    }

    /// TSC ticks per second, as calibrated by the EAL.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised, so the TSC frequency has been calibrated.
        unsafe { dpdk_sys::rte_get_tsc_hz() }
    }

    /// The CPU's time-stamp counter (no EAL needed).
    #[inline(always)]
    pub fn rdtsc() -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: RDTSC is available on every x86_64 CPU and has no side effects.
            unsafe { core::arch::x86_64::_rdtsc() }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // SAFETY: reads the cycle counter; no preconditions.
            unsafe { dpdk_sys::rte_rdtsc() }
        }
    }
}

/// A thread's lcore registration (see [`Eal::register_thread`]). Not `Send`: it belongs
/// to the thread that made it; dropping it unregisters that thread.
#[derive(Debug)]
pub struct LcoreRegistration {
    lcore_id: u32,
    registered: bool,
    _not_send: PhantomData<*const ()>,
}

impl LcoreRegistration {
    /// The lcore id the thread has.
    pub fn lcore_id(&self) -> u32 {
        self.lcore_id
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: this guard is !Send, so we are on the thread that registered, and
            // it registered itself (not an EAL-created lcore).
            unsafe { dpdk_sys::rte_thread_unregister() };
        }
    }
}
