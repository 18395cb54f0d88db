//! Ethernet devices (`rte_ethdev`): enumeration, configuration (queues, descriptors,
//! RSS, promiscuous mode), start, statistics, link state, and stop/close on drop.
//!
//! Owns the control path of a port and the bookkeeping that makes the data path sound:
//! a port id is configured by at most one live [`EthDev`], and each of its queues is
//! claimed by at most one poller ([`QueueClaim`]). It must not poll queues itself: that
//! is the `dpdk` port backend's job.

use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use dpdk_sys as sys;

use super::{DpdkError, Eal, Mempool};
use crate::port::MAX_BURST;
use crate::wire::MacAddr;

/// Port ids currently owned by a live `EthDev` (DPDK has at most RTE_MAX_ETHPORTS).
static PORTS_IN_USE: Mutex<[bool; sys::RTE_MAX_ETHPORTS as usize]> =
    Mutex::new([false; sys::RTE_MAX_ETHPORTS as usize]);

/// The hash types flatrpc asks for when RSS is on: IP addresses and UDP/TCP ports,
/// masked by what the device supports.
const RSS_WANTED: u64 =
    sys::FLATRPC_ETH_RSS_IP | sys::FLATRPC_ETH_RSS_UDP | sys::FLATRPC_ETH_RSS_TCP;

/// `RTE_ETH_TX_OFFLOAD_UDP_CKSUM` (`RTE_BIT64(2)` in rte_ethdev.h, a macro bindgen
/// cannot evaluate; stable across DPDK releases since 21.11).
pub const TX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;

/// `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM` (`RTE_BIT64(1)` and
/// `RTE_BIT64(2)`, same caveat): the device verifies received checksums and reports the
/// verdict in each mbuf's `ol_flags` (read by `Mbuf`'s `PacketBuf::rx_checksum`).
pub const RX_OFFLOAD_CKSUM: u64 = (1 << 1) | (1 << 2);

/// How to set up a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthConfig {
    /// Receive queues (one per polling core).
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per receive queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per transmit queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Mbufs in the device's pool; 0 picks enough for every ring, burst and cache.
    pub mbufs: u32,
    /// Per-lcore mempool cache size.
    pub mbuf_cache: u32,
    /// Buffer bytes per mbuf, headroom included.
    pub data_room: u16,
    /// Spread flows over the receive queues by RSS when there are several and the
    /// device supports it; otherwise the device is configured without RSS (no error).
    pub rss: bool,
    /// Receive frames for any destination MAC. Devices that cannot (ENOTSUP) are left
    /// as they are.
    pub promiscuous: bool,
}

impl Default for EthConfig {
    fn default() -> Self {
        EthConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 0,
            mbuf_cache: 256,
            data_room: super::DEFAULT_MBUF_DATA_ROOM,
            rss: true,
            promiscuous: true,
        }
    }
}

/// A port DPDK knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub port_id: u16,
    pub name: String,
}

/// Device-wide counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Frames the device dropped because the receive ring was full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Mbuf allocation failures of the receive path.
    pub rx_nombuf: u64,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
}

/// A configured and started device. Cheap to clone (shared handle); the device is
/// stopped and closed when the last handle, and the last port made from it, is dropped.
/// After a close a virtual device's port id is gone (DPDK releases it).
#[derive(Debug, Clone)]
pub struct EthDev {
    shared: Arc<DevShared>,
}

#[derive(Debug)]
struct DevShared {
    port_id: u16,
    name: String,
    mac: MacAddr,
    rx_queues: u16,
    tx_queues: u16,
    rx_desc: u16,
    tx_desc: u16,
    rss_hf: u64,
    rss_supported: u64,
    /// UDP checksum offload enabled on the transmit queues.
    tx_udp_cksum: bool,
    driver: String,
    pool: Arc<Mempool>,
    /// Queue pairs handed out to pollers.
    claimed: Mutex<Vec<bool>>,
    /// Serialises control-path calls (stats, link) from different threads.
    control: Mutex<()>,
}

impl EthDev {
    /// Number of usable ports.
    pub fn count_avail() -> u16 {
        // SAFETY: reads ethdev bookkeeping; valid before and after EAL init.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Every usable port, with its name.
    pub fn ports() -> Vec<PortInfo> {
        (0..sys::RTE_MAX_ETHPORTS as u16)
            .filter(|&p| {
                // SAFETY: any u16 is accepted; it only checks the port table.
                unsafe { sys::rte_eth_dev_is_valid_port(p) != 0 }
            })
            .filter_map(|port_id| port_name(port_id).map(|name| PortInfo { port_id, name }))
            .collect()
    }

    /// The port id of the device named `name` (a vdev name such as `net_null0`, or a
    /// PCI address such as `0000:01:00.0`).
    pub fn port_by_name(name: &str) -> Result<u16, DpdkError> {
        Eal::require()?;
        let c = CString::new(name).map_err(|_| DpdkError::NoSuchDevice(name.to_string()))?;
        let mut id = 0u16;
        // SAFETY: c is a valid C string; id is a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::NoSuchDevice(name.to_string()));
        }
        Ok(id)
    }

    /// Removes virtual device `name` from the vdev bus (`rte_vdev_uninit`), e.g. after
    /// the port made by [`EthDev::create_vdev`] was closed (closing a port does not
    /// unregister its device, so the same name cannot be created again before this).
    pub fn remove_vdev(name: &str) -> Result<(), DpdkError> {
        Eal::require()?;
        let n = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("vdev name {name:?} contains NUL")))?;
        // SAFETY: the EAL is initialised; `n` is a valid C string.
        let rc = unsafe { sys::rte_vdev_uninit(n.as_ptr()) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_vdev_uninit", None, rc));
        }
        Ok(())
    }

    /// Hot-plugs a virtual device (as `--vdev=name,args` would at start-up) and returns
    /// its port id; e.g. `create_vdev("net_null7", "copy=1")`.
    pub fn create_vdev(name: &str, args: &str) -> Result<u16, DpdkError> {
        Eal::require()?;
        let n = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("vdev name {name:?} contains NUL")))?;
        let a = CString::new(args)
            .map_err(|_| DpdkError::Invalid(format!("vdev args {args:?} contain NUL")))?;
        // SAFETY: the EAL is initialised; both are valid C strings DPDK copies.
        let rc = unsafe { sys::rte_vdev_init(n.as_ptr(), a.as_ptr()) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_vdev_init", None, rc));
        }
        Self::port_by_name(name)
    }

    /// Makes two ports joined back to back by DPDK rings (`rte_eth_from_rings`): what
    /// port `a` transmits on queue `q`, port `b` receives on queue `q`, and the other way
    /// round. The ports are named `{name}_a` and `{name}_b`; each ring holds 1023 frames.
    /// For in-process tests and demos; the rings live as long as the process.
    pub fn ring_pair(name: &str, queues: u16) -> Result<(u16, u16), DpdkError> {
        Eal::require()?;
        if queues == 0 || queues > 16 {
            return Err(DpdkError::Invalid(format!(
                "ring pair needs 1..=16 queues, not {queues}"
            )));
        }
        let mut a_to_b = Vec::with_capacity(queues.into());
        let mut b_to_a = Vec::with_capacity(queues.into());
        for q in 0..queues {
            a_to_b.push(make_ring(&format!("{name}_ab{q}"))?);
            b_to_a.push(make_ring(&format!("{name}_ba{q}"))?);
        }
        let a = from_rings(&format!("{name}_a"), &mut b_to_a, &mut a_to_b)?;
        let b = from_rings(&format!("{name}_b"), &mut a_to_b, &mut b_to_a)?;
        Ok((a, b))
    }

    /// [`EthDev::configure`] of the device named `name`.
    pub fn open(name: &str, cfg: &EthConfig) -> Result<EthDev, DpdkError> {
        Self::configure(Self::port_by_name(name)?, cfg)
    }

    /// Configures port `port_id` as `cfg` says, sets up its queues with a new mbuf pool,
    /// and starts it.
    pub fn configure(port_id: u16, cfg: &EthConfig) -> Result<EthDev, DpdkError> {
        Eal::require()?;
        let claim = PortClaim::take(port_id)?;
        let p = Some(port_id);

        // SAFETY: rte_eth_dev_info is plain data; all-zero is a valid value.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: the port is valid (PortClaim checked) and info a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_eth_dev_info_get", p, rc));
        }
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(DpdkError::Invalid(
                "a port needs at least one rx and one tx queue".into(),
            ));
        }
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Invalid(format!(
                "port {port_id} supports at most {} rx / {} tx queues, asked for {} / {}",
                info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
            )));
        }

        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's documented default.
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let rss_hf = if cfg.rss && cfg.rx_queues > 1 {
            RSS_WANTED & info.flow_type_rss_offloads
        } else {
            0
        };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if info.rx_offload_capa & sys::FLATRPC_ETH_RX_OFFLOAD_RSS_HASH != 0 {
                conf.rxmode.offloads |= sys::FLATRPC_ETH_RX_OFFLOAD_RSS_HASH;
            }
        }
        // Receive checksum verification, whichever part of it is offered: the verdicts
        // save the software checks (and mbufs without one are checked in software).
        conf.rxmode.offloads |= info.rx_offload_capa & RX_OFFLOAD_CKSUM;
        // Enabled whenever offered: it only acts on mbufs that ask for it (ol_flags).
        let tx_udp_cksum = info.tx_offload_capa & TX_OFFLOAD_UDP_CKSUM != 0;
        if tx_udp_cksum {
            conf.txmode.offloads |= TX_OFFLOAD_UDP_CKSUM;
        }
        // SAFETY: valid port, queue counts within the device's limits, conf initialised.
        let rc =
            unsafe { sys::rte_eth_dev_configure(port_id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_eth_dev_configure", p, rc));
        }

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: configured port; both are valid in/out pointers.
        let rc =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_eth_dev_adjust_nb_rx_tx_desc", p, rc));
        }

        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = u32::try_from(socket).ok();
        let mbufs = if cfg.mbufs == 0 {
            auto_mbufs(cfg, rx_desc, tx_desc)
        } else {
            cfg.mbufs
        };
        let cache = cfg.mbuf_cache.min(mbufs * 2 / 3);
        let pool = Mempool::new_pktmbuf_on_socket(
            &format!("port{port_id}"),
            mbufs,
            cache,
            cfg.data_room,
            socket,
        )?;
        let queue_socket = socket.unwrap_or(sys::FLATRPC_SOCKET_ID_ANY as u32);

        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, q < rx_queues, NULL rxconf means the device's
            // defaults, and the pool outlives the queue (kept in DevShared until after
            // stop/close).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_desc,
                    queue_socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(DpdkError::errno("rte_eth_rx_queue_setup", p, rc));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, q < tx_queues, NULL txconf means defaults.
            let rc = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, queue_socket, std::ptr::null())
            };
            if rc != 0 {
                return Err(DpdkError::errno("rte_eth_tx_queue_setup", p, rc));
            }
        }
        if cfg.promiscuous {
            // SAFETY: valid, configured port.
            let rc = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
            if rc != 0 && rc != -libc::ENOTSUP {
                return Err(DpdkError::errno("rte_eth_promiscuous_enable", p, rc));
            }
        }
        // SAFETY: all queues are set up.
        let rc = unsafe { sys::rte_eth_dev_start(port_id) };
        if rc != 0 {
            return Err(DpdkError::errno("rte_eth_dev_start", p, rc));
        }

        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; addr is a valid out pointer.
        let rc = unsafe { sys::rte_eth_macaddr_get(port_id, &mut addr) };
        if rc != 0 {
            // The port is started: stop it again before reporting.
            // SAFETY: valid started port.
            unsafe { sys::rte_eth_dev_stop(port_id) };
            return Err(DpdkError::errno("rte_eth_macaddr_get", p, rc));
        }

        // From here DevShared's Drop stops and closes the port and releases the claim.
        std::mem::forget(claim);
        Ok(EthDev {
            shared: Arc::new(DevShared {
                port_id,
                name: port_name(port_id).unwrap_or_default(),
                mac: MacAddr(addr.addr_bytes),
                rx_queues: cfg.rx_queues,
                tx_queues: cfg.tx_queues,
                rx_desc,
                tx_desc,
                rss_hf,
                rss_supported: info.flow_type_rss_offloads,
                tx_udp_cksum,
                driver: c_str(info.driver_name),
                pool,
                claimed: Mutex::new(vec![false; usize::from(cfg.rx_queues.min(cfg.tx_queues))]),
                control: Mutex::new(()),
            }),
        })
    }

    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// The device's name (`net_null0`, a PCI address...).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn mac(&self) -> MacAddr {
        self.shared.mac
    }

    pub fn rx_queues(&self) -> u16 {
        self.shared.rx_queues
    }

    pub fn tx_queues(&self) -> u16 {
        self.shared.tx_queues
    }

    /// Descriptors per receive / transmit queue after the device's adjustment.
    pub fn descriptors(&self) -> (u16, u16) {
        (self.shared.rx_desc, self.shared.tx_desc)
    }

    /// The RSS hash types in use (`RTE_ETH_RSS_*`); 0 when RSS is off (one queue, not
    /// asked for, or not supported by the device).
    pub fn rss_hash_functions(&self) -> u64 {
        self.shared.rss_hf
    }

    pub fn rss_enabled(&self) -> bool {
        self.shared.rss_hf != 0
    }

    /// The RSS hash types the device reports (`flow_type_rss_offloads`); 0 for a
    /// device without RSS.
    pub fn rss_hash_functions_supported(&self) -> u64 {
        self.shared.rss_supported
    }

    /// Whether the transmit queues compute UDP checksums for mbufs flagged
    /// `RTE_MBUF_F_TX_UDP_CKSUM` (the device offers `RTE_ETH_TX_OFFLOAD_UDP_CKSUM`).
    pub fn tx_udp_checksum_offload(&self) -> bool {
        self.shared.tx_udp_cksum
    }

    /// The PMD's name (`net_null`, `net_ring`, `mlx5_pci`...).
    pub fn driver(&self) -> &str {
        &self.shared.driver
    }

    /// The pool the receive queues fill from (and the ports allocate from).
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.shared.pool
    }

    /// Device-wide counters since the device was started.
    pub fn stats(&self) -> Result<EthStats, DpdkError> {
        let _c = self.control();
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: the port is configured for self's lifetime; s is a valid out pointer;
        // control-path calls are serialised by `control`.
        let rc = unsafe { sys::rte_eth_stats_get(self.shared.port_id, &mut s) };
        if rc != 0 {
            return Err(DpdkError::errno(
                "rte_eth_stats_get",
                Some(self.shared.port_id),
                rc,
            ));
        }
        Ok(EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The link state, without waiting for auto-negotiation.
    pub fn link(&self) -> Result<Link, DpdkError> {
        let _c = self.control();
        let mut l = sys::rte_eth_link::default();
        // SAFETY: as `stats`.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.shared.port_id, &mut l) };
        if rc != 0 {
            return Err(DpdkError::errno(
                "rte_eth_link_get_nowait",
                Some(self.shared.port_id),
                rc,
            ));
        }
        let speed = l.link_speed;
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: if speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                speed
            },
        })
    }

    /// Hands out queue pair `queue` (rx queue and tx queue of that index) to one poller;
    /// fails if it is out of range or already claimed.
    pub(crate) fn claim_queue(&self, queue: u16) -> Result<QueueClaim, DpdkError> {
        let mut claimed = self
            .shared
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match claimed.get_mut(usize::from(queue)) {
            None => Err(DpdkError::Invalid(format!(
                "port {} has {} queue pairs, no queue {queue}",
                self.shared.port_id,
                self.shared.rx_queues.min(self.shared.tx_queues)
            ))),
            Some(true) => Err(DpdkError::Invalid(format!(
                "queue {queue} of port {} is already polled by another port handle",
                self.shared.port_id
            ))),
            Some(slot) => {
                *slot = true;
                Ok(QueueClaim {
                    dev: self.clone(),
                    queue,
                })
            }
        }
    }

    fn control(&self) -> MutexGuard<'_, ()> {
        self.shared
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for DevShared {
    fn drop(&mut self) {
        // SAFETY: the last handle and every queue claim are gone, so nobody polls the
        // queues any more. Stop then close; DPDK frees the queues' mbufs back to the pool,
        // which is dropped (and freed if full) after this.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
        release_port(self.port_id);
    }
}

/// Exclusive right to poll one queue pair of a device. Keeps the device alive.
#[derive(Debug)]
pub(crate) struct QueueClaim {
    dev: EthDev,
    queue: u16,
}

impl QueueClaim {
    pub(crate) fn dev(&self) -> &EthDev {
        &self.dev
    }

    pub(crate) fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for QueueClaim {
    fn drop(&mut self) {
        let mut claimed = self
            .dev
            .shared
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = claimed.get_mut(usize::from(self.queue)) {
            *slot = false;
        }
    }
}

/// Marks a port id as owned by an `EthDev` being configured; released on drop unless
/// forgotten (then `DevShared::drop` releases it).
struct PortClaim(u16);

impl PortClaim {
    fn take(port_id: u16) -> Result<PortClaim, DpdkError> {
        // SAFETY: any u16 is accepted; it only checks the port table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::NoSuchDevice(format!("port id {port_id}")));
        }
        let mut used = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        match used.get_mut(usize::from(port_id)) {
            Some(slot) if !*slot => {
                *slot = true;
                Ok(PortClaim(port_id))
            }
            _ => Err(DpdkError::Invalid(format!(
                "port {port_id} is already configured by a live EthDev"
            ))),
        }
    }
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        release_port(self.0);
    }
}

fn release_port(port_id: u16) {
    let mut used = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = used.get_mut(usize::from(port_id)) {
        *slot = false;
    }
}

/// Enough mbufs for every descriptor, a burst in flight per queue and every lcore cache.
fn auto_mbufs(cfg: &EthConfig, rx_desc: u16, tx_desc: u16) -> u32 {
    let rings = u32::from(cfg.rx_queues) * u32::from(rx_desc)
        + u32::from(cfg.tx_queues) * u32::from(tx_desc);
    let bursts = u32::from(cfg.rx_queues.max(cfg.tx_queues)) * 4 * MAX_BURST as u32;
    let caches = (u32::from(cfg.rx_queues.max(cfg.tx_queues)) + 1) * cfg.mbuf_cache;
    (rings + bursts + caches).max(1024)
}

fn port_name(port_id: u16) -> Option<String> {
    let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, as the call requires.
    let rc = unsafe { sys::rte_eth_dev_get_name_by_port(port_id, buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success DPDK wrote a NUL-terminated name into buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A C string DPDK owns, copied; empty for NULL.
fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK returns NUL-terminated static strings (driver names) or NULL.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn make_ring(name: &str) -> Result<*mut sys::rte_ring, DpdkError> {
    let c = CString::new(name)
        .map_err(|_| DpdkError::Invalid(format!("ring name {name:?} contains NUL")))?;
    // SAFETY: the EAL is initialised (callers check); c is a valid C string DPDK copies.
    // Single producer / single consumer: each queue is polled by one claimed port.
    let r = unsafe {
        sys::rte_ring_create(
            c.as_ptr(),
            1024,
            sys::FLATRPC_SOCKET_ID_ANY,
            sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
        )
    };
    if r.is_null() {
        return Err(DpdkError::rte_errno("rte_ring_create", None));
    }
    Ok(r)
}

fn from_rings(
    name: &str,
    rx: &mut [*mut sys::rte_ring],
    tx: &mut [*mut sys::rte_ring],
) -> Result<u16, DpdkError> {
    let c = CString::new(name)
        .map_err(|_| DpdkError::Invalid(format!("port name {name:?} contains NUL")))?;
    // SAFETY: the rings are valid and never freed; the arrays hold rx.len()/tx.len()
    // (≤ 16) ring pointers; DPDK copies the pointers and the name.
    let rc = unsafe {
        sys::rte_eth_from_rings(
            c.as_ptr(),
            rx.as_mut_ptr(),
            rx.len() as u32,
            tx.as_mut_ptr(),
            tx.len() as u32,
            0,
        )
    };
    if rc < 0 {
        return Err(DpdkError::rte_errno("rte_eth_from_rings", None));
    }
    u16::try_from(rc)
        .map_err(|_| DpdkError::Invalid(format!("rte_eth_from_rings returned port {rc}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mbufs_cover_rings_bursts_and_caches() {
        let cfg = EthConfig {
            rx_queues: 2,
            tx_queues: 2,
            mbuf_cache: 256,
            ..EthConfig::default()
        };
        let n = auto_mbufs(&cfg, 1024, 512);
        assert!(n >= 2 * 1024 + 2 * 512 + 3 * 256 + 2 * 4 * 32, "{n}");
        assert_eq!(
            auto_mbufs(
                &EthConfig {
                    mbuf_cache: 0,
                    ..cfg
                },
                64,
                64
            ),
            1024
        );
    }

    #[test]
    fn devices_need_the_eal() {
        // The unit-test binary never initialises the EAL (the dpdk_* integration tests do).
        if Eal::get().is_none() {
            assert_eq!(
                EthDev::port_by_name("net_null0").err(),
                Some(DpdkError::NotInitialised)
            );
            assert_eq!(
                EthDev::configure(0, &EthConfig::default()).err(),
                Some(DpdkError::NotInitialised)
            );
            assert_eq!(
                EthDev::ring_pair("x", 1).err(),
                Some(DpdkError::NotInitialised)
            );
        }
    }
}
