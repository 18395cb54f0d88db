//! A port that replays a recording: the pure-Rust counterpart of DPDK's
//! `net_pcap,rx_pcap=FILE,infinite_rx=1`, for running and profiling the whole pipeline
//! (net layer, transport, ANF chain, handlers) without DPDK, a NIC or root, under
//! valgrind too.
//!
//! Receive hands out the recording's frames in order, round and round, each copied into
//! a pool buffer (as the PMD copies each into a fresh mbuf). Transmit counts the frames
//! and drops them, as `net_pcap` does without a `tx_pcap`. A limit on the number of
//! rounds makes a run finite: the port is then exhausted and its core stops, which makes
//! a run repeatable (the same frames, the same work, e.g. for counting instructions).
//!
//! The port's MAC is the destination of the recording's first unicast frame: a replay
//! is addressed to whoever it was recorded for.

use std::io::Read;
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;

use super::buf::{BufPool, PoolBuf, DEFAULT_BUF_SIZE};
use super::{PacketBuf, Port, PortStats};
use crate::wire::MacAddr;

/// Buffers in a replay port's pool: a burst received, a burst queued for transmission,
/// and the engine's spares, with room to spare.
const POOL_BUFS: usize = 512;

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a readable pcap: {source}")]
    Pcap {
        path: String,
        source: pcap_file::PcapError,
    },
    #[error("{path}: link type {link:?}, not Ethernet")]
    LinkType { path: String, link: DataLink },
    #[error("{path}: no frames to replay")]
    Empty { path: String },
    #[error("{path}: frame {index} is {len} bytes, shorter than an Ethernet header")]
    Runt {
        path: String,
        index: usize,
        len: usize,
    },
}

/// Replays frames, round and round (see the module docs).
pub struct ReplayPort {
    frames: Vec<Box<[u8]>>,
    next: usize,
    /// Rounds still to hand out (`None`: without end).
    rounds_left: Option<u64>,
    pool: BufPool,
    mac: MacAddr,
    stats: PortStats,
}

impl std::fmt::Debug for ReplayPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayPort")
            .field("frames", &self.frames.len())
            .field("mac", &self.mac)
            .field("rounds_left", &self.rounds_left)
            .finish()
    }
}

impl ReplayPort {
    /// Replays `frames` (`origin` names them in errors), `rounds` times or, with `None`,
    /// without end.
    pub fn new(
        origin: &str,
        frames: Vec<Vec<u8>>,
        rounds: Option<u64>,
    ) -> Result<ReplayPort, ReplayError> {
        if frames.is_empty() {
            return Err(ReplayError::Empty {
                path: origin.to_string(),
            });
        }
        if let Some((index, f)) = frames
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() < crate::wire::ethernet::HEADER_LEN)
        {
            return Err(ReplayError::Runt {
                path: origin.to_string(),
                index,
                len: f.len(),
            });
        }
        let mac = frames
            .iter()
            .filter_map(|f| f.get(..6)?.try_into().ok().map(MacAddr))
            .find(|m| !m.is_multicast())
            .unwrap_or(MacAddr::local(0x7270));
        let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
        Ok(ReplayPort {
            frames: frames.into_iter().map(Vec::into_boxed_slice).collect(),
            next: 0,
            rounds_left: rounds,
            pool: BufPool::new(POOL_BUFS, longest.max(DEFAULT_BUF_SIZE)),
            mac,
            stats: PortStats::default(),
        })
    }

    /// Replays the Ethernet frames of the pcap file at `path`.
    pub fn open(path: &Path, rounds: Option<u64>) -> Result<ReplayPort, ReplayError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| ReplayError::Read {
            path: name.clone(),
            source,
        })?;
        Self::new(
            &name,
            read_frames(&name, std::io::BufReader::new(file))?,
            rounds,
        )
    }

    /// Frames in one round.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }
}

/// The frames of an Ethernet pcap read from `input` (`name` names it in errors).
pub fn read_frames<R: Read>(name: &str, input: R) -> Result<Vec<Vec<u8>>, ReplayError> {
    let pcap_err = |source| ReplayError::Pcap {
        path: name.to_string(),
        source,
    };
    let mut reader = PcapReader::new(input).map_err(pcap_err)?;
    let link = reader.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(ReplayError::LinkType {
            path: name.to_string(),
            link,
        });
    }
    let mut frames = Vec::new();
    while let Some(p) = reader.next_packet() {
        frames.push(p.map_err(pcap_err)?.data.into_owned());
    }
    Ok(frames)
}

impl Port for ReplayPort {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let mut got = 0;
        while got < max && self.rounds_left != Some(0) {
            let Some(mut buf) = self.pool.alloc_counted(&mut self.stats) else {
                break;
            };
            let frame = &self.frames[self.next];
            // Every buffer holds the longest frame (see `new`).
            if buf.fill_from(frame).is_err() {
                self.stats.rx_errors += 1;
                break;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame.len() as u64;
            out.push(buf);
            got += 1;
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
                if let Some(r) = &mut self.rounds_left {
                    *r -= 1;
                }
            }
        }
        got
    }

    fn tx_burst(&mut self, bufs: &mut Vec<PoolBuf>) -> usize {
        let n = bufs.len();
        for b in bufs.drain(..) {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += b.len() as u64;
        }
        n
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

    /// Every round asked for has been handed out.
    fn exhausted(&self) -> bool {
        self.rounds_left == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

    fn frame(dst: [u8; 6], tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&dst);
        f
    }

    fn pcap_bytes(link: DataLink, frames: &[Vec<u8>]) -> Vec<u8> {
        let header = PcapHeader {
            datalink: link,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let ts = std::time::Duration::from_micros(i as u64);
            w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
                .unwrap();
        }
        w.into_writer()
    }

    const UNICAST: [u8; 6] = [2, 0, 0, 0x77, 1, 2];

    #[test]
    fn frames_come_round_in_order_for_the_rounds_asked_and_transmit_drops() {
        let frames: Vec<_> = (0..5u8)
            .map(|i| frame(UNICAST, i, 60 + i as usize))
            .collect();
        let mut p = ReplayPort::new("test", frames.clone(), Some(3)).unwrap();
        assert_eq!(p.mac(), MacAddr(UNICAST));
        let mut got = Vec::new();
        let mut out = Vec::new();
        while p.rx_burst(&mut out, 4) > 0 {
            got.extend(out.iter().map(|b| b.data().to_vec()));
            // Transmitting them sends the buffers back to the pool.
            let n = out.len();
            assert_eq!(p.tx_burst(&mut out), n);
            assert!(out.is_empty());
        }
        assert!(p.exhausted());
        let want: Vec<_> = (0..3).flat_map(|_| frames.iter().cloned()).collect();
        assert_eq!(got, want);
        let s = p.stats();
        assert_eq!((s.rx_packets, s.tx_packets), (15, 15));
        let bytes: u64 = want.iter().map(|f| f.len() as u64).sum();
        assert_eq!((s.rx_bytes, s.tx_bytes), (bytes, bytes));
        assert_eq!(p.pool.available(), POOL_BUFS);
    }

    #[test]
    fn without_a_limit_replay_does_not_end_and_a_held_pool_stops_receive() {
        let mut p = ReplayPort::new("test", vec![frame(UNICAST, 1, 64)], None).unwrap();
        let mut held = Vec::new();
        // Buffers held by the application (never sent) run the pool dry: receive
        // stops, counted, and goes on once they come back.
        while p.rx_burst(&mut held, 32) > 0 {}
        assert_eq!(held.len(), POOL_BUFS);
        assert_eq!(p.stats().alloc_failed, 1);
        held.clear();
        let mut out = Vec::new();
        assert_eq!(p.rx_burst(&mut out, 32), 32);
        assert!(!p.exhausted());
    }

    #[test]
    fn the_mac_is_the_first_unicast_destination() {
        let bcast = frame([0xff; 6], 0, 60);
        let p = ReplayPort::new("test", vec![bcast.clone(), frame(UNICAST, 0, 60)], None).unwrap();
        assert_eq!(p.mac(), MacAddr(UNICAST));
        // Nothing unicast: a locally administered address of its own.
        let p = ReplayPort::new("test", vec![bcast], None).unwrap();
        assert!(!p.mac().is_multicast());
    }

    #[test]
    fn a_pcap_round_trips_and_bad_recordings_are_refused_with_a_reason() {
        let frames: Vec<_> = (0..3u8).map(|i| frame(UNICAST, i, 100)).collect();
        let bytes = pcap_bytes(DataLink::ETHERNET, &frames);
        assert_eq!(read_frames("t", &bytes[..]).unwrap(), frames);

        let err = |r: Result<Vec<Vec<u8>>, ReplayError>| r.unwrap_err().to_string();
        // Not a pcap at all, an empty file, a truncated header.
        assert!(
            err(read_frames("t", &b"not a pcap file at all"[..])).contains("not a readable pcap")
        );
        assert!(err(read_frames("t", &b""[..])).contains("not a readable pcap"));
        assert!(err(read_frames("t", &bytes[..10])).contains("not a readable pcap"));
        // A record cut short.
        assert!(err(read_frames("t", &bytes[..bytes.len() - 7])).contains("not a readable pcap"));
        // Another link type.
        let raw = pcap_bytes(DataLink::RAW, &frames);
        assert!(err(read_frames("t", &raw[..])).contains("not Ethernet"));
        // No frames; a frame too short for Ethernet.
        let e = ReplayPort::new("t", Vec::new(), None).unwrap_err();
        assert!(e.to_string().contains("no frames"), "{e}");
        let e = ReplayPort::new("t", vec![frame(UNICAST, 0, 60), vec![1, 2, 3]], None).unwrap_err();
        assert!(e.to_string().contains("frame 1 is 3 bytes"), "{e}");
        // A missing file names it.
        let e = ReplayPort::open(Path::new("/nonexistent/x.pcap"), None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.pcap"), "{e}");
    }

    #[test]
    fn random_bytes_never_panic_the_reader() {
        let good = pcap_bytes(DataLink::ETHERNET, &[frame(UNICAST, 0, 80)]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut b = good.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 6) as usize + 1;
            for k in 0..n {
                let i = ((x >> (8 * k)) as usize) % b.len();
                b[i] = (x >> (3 * k)) as u8;
            }
            b.truncate(b.len() - (x >> 40) as usize % 8);
            if let Ok(frames) = read_frames("fuzz", &b[..]) {
                let _ = ReplayPort::new("fuzz", frames, Some(1));
            }
        }
    }
}
