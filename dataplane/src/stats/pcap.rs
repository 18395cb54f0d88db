//! Packet capture: [`CapturePort`] wraps any [`Port`] and copies the frames it receives
//! and sends into a bounded lock-free queue ([`Capture`]); a writer thread
//! ([`PcapSink`]) drains the queue into a pcap file (Ethernet link type).
//!
//! The core never blocks and never allocates for a capture: copies go into buffers from
//! a fixed free list; when it is empty (the writer is behind) the frame is not copied
//! and is counted as skipped. Transmitted frames are captured only once the port has
//! accepted them. This module must not be on the data path unless `--pcap` asked for it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::queue::ArrayQueue;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::port::{PacketBuf, Port, PortStats, MAX_BURST};
use crate::wire::MacAddr;

/// Bytes kept of each frame.
pub const SNAPLEN: usize = 2048;

/// One copied frame.
#[derive(Debug)]
struct Captured {
    at: Duration,
    orig_len: u32,
    data: Vec<u8>,
}

/// The queue between the cores and the writer, and its free buffers.
#[derive(Debug)]
pub struct Capture {
    full: ArrayQueue<Captured>,
    free: ArrayQueue<Vec<u8>>,
    skipped: AtomicU64,
}

/// Capture counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaptureStats {
    /// Frames written to the file.
    pub written: u64,
    /// Frames not copied because the queue was full.
    pub skipped: u64,
}

impl Capture {
    /// A queue of `slots` frames (at least 1), each up to [`SNAPLEN`] bytes.
    pub fn new(slots: usize) -> Arc<Capture> {
        let slots = slots.max(1);
        let free = ArrayQueue::new(slots);
        for _ in 0..slots {
            let _ = free.push(Vec::with_capacity(SNAPLEN));
        }
        Arc::new(Capture {
            full: ArrayQueue::new(slots),
            free,
            skipped: AtomicU64::new(0),
        })
    }

    /// Frames skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Copies `frame` into a free buffer, or returns false when there is none.
    fn copy(&self, at: Duration, frame: &[u8]) -> Option<Captured> {
        let mut data = self.free.pop()?;
        data.clear();
        data.extend_from_slice(&frame[..frame.len().min(SNAPLEN)]);
        Some(Captured {
            at,
            orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data,
        })
    }

    fn publish(&self, c: Captured) {
        // `full` has as many slots as there are buffers, so this cannot be full; should
        // it be, the buffer is lost to the free list and the frame counted as skipped.
        if self.full.push(c).is_err() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn recycle(&self, mut data: Vec<u8>) {
        data.clear();
        let _ = self.free.push(data);
    }
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A port whose received and transmitted frames are copied into a [`Capture`].
pub struct CapturePort<P: Port> {
    inner: P,
    capture: Arc<Capture>,
    /// Copies of the frames handed to `tx_burst`, until the port says which it took.
    staged: Vec<Option<Captured>>,
}

impl<P: Port> CapturePort<P> {
    pub fn new(inner: P, capture: Arc<Capture>) -> Self {
        CapturePort {
            inner,
            capture,
            staged: Vec::with_capacity(MAX_BURST),
        }
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: Port> Port for CapturePort<P> {
    type Buf = P::Buf;

    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize {
        let start = out.len();
        let n = self.inner.rx_burst(out, max);
        if n > 0 {
            let at = wall_clock();
            let mut skipped = 0;
            for buf in out.iter().skip(start) {
                match self.capture.copy(at, buf.data()) {
                    Some(c) => self.capture.publish(c),
                    None => skipped += 1,
                }
            }
            if skipped > 0 {
                self.capture.skipped.fetch_add(skipped, Ordering::Relaxed);
            }
        }
        n
    }

    fn tx_burst(&mut self, bufs: &mut Vec<Self::Buf>) -> usize {
        if bufs.is_empty() {
            return self.inner.tx_burst(bufs);
        }
        let at = wall_clock();
        self.staged.clear();
        for buf in bufs.iter() {
            self.staged.push(self.capture.copy(at, buf.data()));
        }
        let sent = self.inner.tx_burst(bufs);
        let mut skipped = 0;
        for (i, c) in self.staged.drain(..).enumerate() {
            match (i < sent, c) {
                (true, Some(c)) => self.capture.publish(c),
                (true, None) => skipped += 1,
                // Not taken by the port: it is staged again when retried.
                (false, Some(c)) => self.capture.recycle(c.data),
                (false, None) => {}
            }
        }
        if skipped > 0 {
            self.capture.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        sent
    }

    fn alloc(&mut self) -> Option<Self::Buf> {
        self.inner.alloc()
    }

    fn mac(&self) -> MacAddr {
        self.inner.mac()
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }

    fn exhausted(&self) -> bool {
        self.inner.exhausted()
    }
}

/// Could not write the capture file.
#[derive(Debug, thiserror::Error)]
pub enum PcapSinkError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
    #[error("the pcap writer thread panicked")]
    Panicked,
}

/// The writer thread: drains a [`Capture`] into a pcap file.
pub struct PcapSink {
    capture: Arc<Capture>,
    done: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: JoinHandle<Result<(), PcapSinkError>>,
}

impl PcapSink {
    /// Creates `path` (truncating it), writes the pcap header and starts the writer.
    pub fn start(path: &Path, capture: Arc<Capture>) -> Result<PcapSink, PcapSinkError> {
        let file = File::create(path).map_err(|source| PcapSinkError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let header = PcapHeader {
            snaplen: SNAPLEN as u32,
            ..PcapHeader::default()
        };
        let mut writer =
            PcapWriter::with_header(BufWriter::new(file), header).map_err(|source| {
                PcapSinkError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let done = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (q, d, w, p) = (
            Arc::clone(&capture),
            Arc::clone(&done),
            Arc::clone(&written),
            path.to_path_buf(),
        );
        let thread = std::thread::Builder::new()
            .name("pcap-writer".into())
            .spawn(move || -> Result<(), PcapSinkError> {
                let werr = |source| PcapSinkError::Write {
                    path: p.clone(),
                    source,
                };
                loop {
                    // Read `done` before draining, so frames queued before it was set
                    // are all written.
                    let finishing = d.load(Ordering::Acquire);
                    let mut any = false;
                    while let Some(c) = q.full.pop() {
                        any = true;
                        let pkt = PcapPacket::new(c.at, c.orig_len, &c.data);
                        let r = writer.write_packet(&pkt);
                        q.recycle(c.data);
                        r.map_err(werr)?;
                        w.fetch_add(1, Ordering::Relaxed);
                    }
                    if finishing {
                        break;
                    }
                    if !any {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                std::io::Write::flush(&mut writer.into_writer())
                    .map_err(|e| werr(pcap_file::PcapError::IoError(e)))
            })
            .map_err(|source| PcapSinkError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(PcapSink {
            capture,
            done,
            written,
            thread,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            written: self.written.load(Ordering::Relaxed),
            skipped: self.capture.skipped(),
        }
    }

    /// Writes what is queued, flushes and closes the file. Call after the cores stopped.
    pub fn finish(self) -> Result<CaptureStats, PcapSinkError> {
        self.done.store(true, Ordering::Release);
        self.thread.join().map_err(|_| PcapSinkError::Panicked)??;
        Ok(CaptureStats {
            written: self.written.load(Ordering::Relaxed),
            skipped: self.capture.skipped(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sim::{SimLink, SimLinkConfig};

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[0xff; 6]);
        f
    }

    #[test]
    fn frames_both_ways_reach_the_file_and_overflow_is_counted() {
        let cfg = SimLinkConfig {
            queue_limit: 3,
            ..SimLinkConfig::default()
        };
        let (a, mut pb) = SimLink::pair(cfg, 1).unwrap();
        let dir = std::env::temp_dir().join(format!("flatrpc-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        let cap = Capture::new(8);
        let mut pa = CapturePort::new(a, Arc::clone(&cap));
        // The link takes 3 of 5: only those 3 are captured.
        let mut tx: Vec<_> = (0..5)
            .map(|i| {
                let mut buf = pa.alloc().unwrap();
                buf.fill_from(&frame(i, 60 + i as usize)).unwrap();
                buf
            })
            .collect();
        assert_eq!(pa.tx_burst(&mut tx), 3);
        assert_eq!(tx.len(), 2);
        let mut got = Vec::new();
        assert_eq!(pb.rx_burst(&mut got, MAX_BURST), 3);
        // The retry sends the other 2, captured once each.
        assert_eq!(pa.tx_burst(&mut tx), 2);
        // 3 received by the captured port.
        let mut back: Vec<_> = (0..3)
            .map(|i| {
                let mut buf = pb.alloc().unwrap();
                buf.fill_from(&frame(100 + i, 1000)).unwrap();
                buf
            })
            .collect();
        got.clear();
        pb.rx_burst(&mut got, MAX_BURST);
        assert_eq!(pb.tx_burst(&mut back), 3);
        let mut rx = Vec::new();
        assert_eq!(pa.rx_burst(&mut rx, MAX_BURST), 3);
        // Queue full (no writer yet): the next frame is skipped, not waited for.
        let mut more = vec![pa.alloc().unwrap()];
        more[0].fill_from(&frame(9, 64)).unwrap();
        assert_eq!(pa.tx_burst(&mut more), 1);
        assert_eq!(cap.skipped(), 1);
        let sink = PcapSink::start(&path, Arc::clone(&cap)).unwrap();
        let st = sink.finish().unwrap();
        assert_eq!(
            st,
            CaptureStats {
                written: 8,
                skipped: 1
            }
        );
        let bytes = std::fs::read(&path).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        let mut lens = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            lens.push((p.orig_len, p.data.len(), p.data[6]));
        }
        assert_eq!(
            lens,
            [
                (60, 60, 0),
                (61, 61, 1),
                (62, 62, 2),
                (63, 63, 3),
                (64, 64, 4),
                (1000, 1000, 100),
                (1000, 1000, 101),
                (1000, 1000, 102)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let e = PcapSink::start(Path::new("/nonexistent/dir/x.pcap"), Capture::new(1))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("cannot create /nonexistent/dir/x.pcap"),
            "{e}"
        );
    }
}
