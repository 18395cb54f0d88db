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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sim::{SimLink, SimLinkConfig, SimPort};

    fn link() -> (SimPort, SimPort) {
        SimLink::pair(SimLinkConfig::default(), 1).unwrap()
    }

    /// A frame with distinct MACs and a numbered body.
    fn frame(n: u8, len: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len as u8).map(|i| i.wrapping_add(n)).collect();
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xd]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x5]);
        f
    }

    fn send(p: &mut SimPort, frames: &[Vec<u8>]) {
        let mut bufs = Vec::new();
        for f in frames {
            let mut b = p.alloc().unwrap();
            b.fill_from(f).unwrap();
            bufs.push(b);
        }
        assert_eq!(p.tx_burst(&mut bufs), frames.len());
    }

    fn recv(p: &mut SimPort) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        p.rx_burst(&mut out, MAX_BURST);
        out.iter().map(|b| b.data().to_vec()).collect()
    }

    #[test]
    fn io_forwards_untouched_to_the_paired_port_and_back() {
        let (mut left, p0) = link();
        let (p1, mut right) = link();
        let mut f = Forwarder::new(vec![p0, p1], Mode::Io, 32, vec![]).unwrap();
        let c = CoreCounters::default();
        let sent: Vec<_> = (0..5).map(|n| frame(n, 60)).collect();
        send(&mut left, &sent);
        f.poll_once(&c);
        assert_eq!(recv(&mut right), sent);
        send(&mut right, &sent[..2]);
        f.poll_once(&c);
        assert_eq!(recv(&mut left), sent[..2]);
        assert_eq!(
            c.snapshot(),
            FwdTotals {
                rx_packets: 7,
                tx_packets: 7,
                dropped: 0
            }
        );
    }

    #[test]
    fn io_on_a_lone_port_sends_back_out_of_it() {
        let (mut peer, p0) = link();
        let mut f = Forwarder::new(vec![p0], Mode::Io, 32, vec![]).unwrap();
        let c = CoreCounters::default();
        let sent = vec![frame(1, 64)];
        send(&mut peer, &sent);
        f.poll_once(&c);
        assert_eq!(recv(&mut peer), sent);
    }

    #[test]
    fn macswap_swaps_addresses_and_drops_runts() {
        let (mut peer, p0) = link();
        let mut f = Forwarder::new(vec![p0], Mode::Macswap, 32, vec![]).unwrap();
        let c = CoreCounters::default();
        send(&mut peer, &[frame(3, 64), vec![1, 2, 3]]);
        f.poll_once(&c);
        let got = recv(&mut peer);
        assert_eq!(got.len(), 1);
        let mut want = frame(3, 64);
        want[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x5]);
        want[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xd]);
        assert_eq!(got[0], want);
        assert_eq!(c.snapshot().dropped, 1);
        assert_eq!(c.snapshot().rx_packets, 2);
    }

    #[test]
    fn txonly_cycles_through_the_templates_and_rxonly_counts() {
        let (p0, p1) = link();
        let templates = vec![frame(1, 64), frame(2, 80), frame(3, 96)];
        let mut tx = Forwarder::new(vec![p0], Mode::Txonly, 4, templates.clone()).unwrap();
        let mut rx = Forwarder::new(vec![p1], Mode::Rxonly, 32, vec![]).unwrap();
        let (ct, cr) = (CoreCounters::default(), CoreCounters::default());
        tx.poll_once(&ct);
        tx.poll_once(&ct);
        assert_eq!(ct.snapshot().tx_packets, 8);
        rx.poll_once(&cr);
        assert_eq!(cr.snapshot().rx_packets, 8);
        // The receiving port got them in template order.
        let (p0, mut p1) = link();
        let mut tx = Forwarder::new(vec![p0], Mode::Txonly, 4, templates.clone()).unwrap();
        tx.poll_once(&ct);
        let got = recv(&mut p1);
        assert_eq!(got, [&templates[..], &templates[..1]].concat());
    }

    #[test]
    fn bad_forwarders_are_refused() {
        let (p0, _p1) = link();
        assert_eq!(
            Forwarder::<SimPort>::new(vec![], Mode::Io, 32, vec![]).err(),
            Some(FwdError::NoPorts)
        );
        let (p2, _p3) = link();
        assert_eq!(
            Forwarder::new(vec![p2], Mode::Io, 33, vec![]).err(),
            Some(FwdError::BadBurst(33))
        );
        assert_eq!(
            Forwarder::new(vec![p0], Mode::Txonly, 32, vec![]).err(),
            Some(FwdError::NoTemplates)
        );
        assert!("warp".parse::<Mode>().is_err());
        assert_eq!("macswap".parse::<Mode>(), Ok(Mode::Macswap));
    }
}
