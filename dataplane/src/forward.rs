//! testpmd-style packet forwarding over any [`Port`]: the `io`, `macswap`, `txonly`
//! and `rxonly` modes that `rpcbench` measures backends with.
//!
//! One [`Forwarder`] runs on one polling core and owns one queue of each port. It keeps
//! its counters in a [`CoreCounters`] written only by that core (plain loads and stores,
//! no locked instructions) and read by the stats thread. Nothing here allocates after
//! [`Forwarder::new`]. This module knows frames, not RPCs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use crate::port::{PacketBuf, Port, MAX_BURST};

/// What a forwarding core does with frames (as testpmd's `--forward-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward untouched to the paired port (0↔1, 2↔3, …), or back out a lone port.
    Io,
    /// As `Io`, with the Ethernet source and destination addresses swapped.
    Macswap,
    /// Generate frames from templates, cycling through them (one per flow).
    Txonly,
    /// Receive, count and free.
    Rxonly,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "io" => Ok(Mode::Io),
            "macswap" => Ok(Mode::Macswap),
            "txonly" => Ok(Mode::Txonly),
            "rxonly" => Ok(Mode::Rxonly),
            other => Err(format!(
                "unknown mode {other:?}: expected io, macswap, txonly or rxonly"
            )),
        }
    }
}

/// Counters of one forwarding core. Only the owning core writes them.
#[derive(Debug, Default)]
pub struct CoreCounters {
    rx: CachePadded<AtomicU64>,
    tx: CachePadded<AtomicU64>,
    dropped: CachePadded<AtomicU64>,
}

/// A snapshot of [`CoreCounters`], or their sum over cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FwdTotals {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped: u64,
}

impl std::ops::AddAssign for FwdTotals {
    fn add_assign(&mut self, o: Self) {
        self.rx_packets += o.rx_packets;
        self.tx_packets += o.tx_packets;
        self.dropped += o.dropped;
    }
}

impl CoreCounters {
    // Single writer: a load and a store instead of a locked read-modify-write.
    #[inline]
    fn bump(c: &AtomicU64, n: usize) {
        if n != 0 {
            c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> FwdTotals {
        FwdTotals {
            rx_packets: self.rx.load(Ordering::Relaxed),
            tx_packets: self.tx.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Why a [`Forwarder`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FwdError {
    #[error("no ports to forward between")]
    NoPorts,
    #[error("burst size {0} out of range 1..={MAX_BURST}")]
    BadBurst(usize),
    #[error("txonly needs at least one frame template")]
    NoTemplates,
}

/// One core's forwarding loop over one queue of each of its ports.
pub struct Forwarder<P: Port> {
    ports: Vec<P>,
    mode: Mode,
    burst: usize,
    templates: Vec<Vec<u8>>,
    next_template: usize,
    bufs: Vec<P::Buf>,
}

impl<P: Port> Forwarder<P> {
    /// `templates` are the frames `txonly` sends (one per flow); ignored by other modes.
    pub fn new(
        ports: Vec<P>,
        mode: Mode,
        burst: usize,
        templates: Vec<Vec<u8>>,
    ) -> Result<Self, FwdError> {
        if ports.is_empty() {
            return Err(FwdError::NoPorts);
        }
        if burst == 0 || burst > MAX_BURST {
            return Err(FwdError::BadBurst(burst));
        }
        if mode == Mode::Txonly && templates.is_empty() {
            return Err(FwdError::NoTemplates);
        }
        Ok(Forwarder {
            ports,
            mode,
            burst,
            templates,
            next_template: 0,
            bufs: Vec::with_capacity(MAX_BURST),
        })
    }

    /// The port frames received on `port` are sent out of.
    #[inline]
    fn peer_of(&self, port: usize) -> usize {
        let peer = port ^ 1;
        if peer < self.ports.len() {
            peer
        } else {
            port
        }
    }

    /// One pass over every port. Returns the number of frames received or generated,
    /// so a caller can tell an idle pass from a busy one.
    #[inline]
    pub fn poll_once(&mut self, counters: &CoreCounters) -> usize {
        let mut work = 0;
        for port in 0..self.ports.len() {
            work += match self.mode {
                Mode::Io | Mode::Macswap => self.forward_from(port, counters),
                Mode::Txonly => self.generate_on(port, counters),
                Mode::Rxonly => {
                    let n = self.ports[port].rx_burst(&mut self.bufs, self.burst);
                    self.bufs.clear();
                    CoreCounters::bump(&counters.rx, n);
                    n
                }
            };
        }
        work
    }

    fn forward_from(&mut self, port: usize, counters: &CoreCounters) -> usize {
        let n = self.ports[port].rx_burst(&mut self.bufs, self.burst);
        if n == 0 {
            return 0;
        }
        CoreCounters::bump(&counters.rx, n);
        let mut malformed = 0;
        if self.mode == Mode::Macswap {
            let before = self.bufs.len();
            self.bufs.retain(|b| b.len() >= 14);
            malformed = before - self.bufs.len();
            for b in self.bufs.iter_mut() {
                let d = b.data_mut();
                let (dst, rest) = d.split_at_mut(6);
                dst.swap_with_slice(&mut rest[..6]);
            }
        }
        let peer = self.peer_of(port);
        let sent = self.ports[peer].tx_burst(&mut self.bufs);
        CoreCounters::bump(&counters.tx, sent);
        CoreCounters::bump(&counters.dropped, malformed + self.bufs.len());
        self.bufs.clear();
        n
    }

    fn generate_on(&mut self, port: usize, counters: &CoreCounters) -> usize {
        let p = &mut self.ports[port];
        while self.bufs.len() < self.burst {
            let Some(mut b) = p.alloc() else { break };
            let t = &self.templates[self.next_template];
            self.next_template = (self.next_template + 1) % self.templates.len();
            if b.fill_from(t).is_err() {
                CoreCounters::bump(&counters.dropped, 1);
                continue;
            }
            self.bufs.push(b);
        }
        let made = self.bufs.len();
        let sent = p.tx_burst(&mut self.bufs);
        CoreCounters::bump(&counters.tx, sent);
        CoreCounters::bump(&counters.dropped, self.bufs.len());
        self.bufs.clear();
        made
    }

    /// Polls until `stop` is set. Checks the flag once per pass.
    pub fn run(&mut self, stop: &AtomicBool, counters: &CoreCounters) {
        while !stop.load(Ordering::Relaxed) {
            self.poll_once(counters);
        }
    }

    /// The ports, e.g. to read their stats after the run.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }
}
