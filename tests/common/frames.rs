//! Sequenced UDP test frames over any `Port`: build, send with a bounded window, receive
//! and recognise them. Shared by the backend interop tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use dataplane::port::{PacketBuf, Port, MAX_BURST};
use dataplane::wire::frame::PAYLOAD_OFFSET;
use dataplane::wire::{build_udp_ipv4, parse_udp_ipv4, UdpIpv4Header};

pub const DEADLINE: Duration = Duration::from_secs(5);
pub const TEST_PORT: u16 = 7777;
/// Frames a sender may have in flight before the receiver confirms them: keeps every
/// kernel queue on the path (tap ring of 500, backlog of 1000) from overflowing.
pub const WINDOW: usize = 200;

/// The payload of test frame `seq` of `flow`: seq, flow, then bytes derived from both.
pub fn payload(seq: u32, flow: u16, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    p.extend(seq.to_be_bytes());
    p.extend(flow.to_be_bytes());
    let mut x = seq.wrapping_mul(2_654_435_761) ^ u32::from(flow);
    while p.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p.push(x as u8);
    }
    p.truncate(len.max(6));
    p
}

/// Builds a UDP test frame into a buffer of `port`'s pool.
pub fn frame_into<P: Port>(port: &mut P, hdr: &UdpIpv4Header, payload: &[u8]) -> Result<P::Buf> {
    let mut buf = port.alloc().context("pool empty")?;
    buf.set_len(PAYLOAD_OFFSET + payload.len())?;
    buf.data_mut()[PAYLOAD_OFFSET..].copy_from_slice(payload);
    let n = build_udp_ipv4(buf.data_mut(), hdr, payload.len())?;
    buf.set_len(n)?;
    Ok(buf)
}

/// A test frame as the receiver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub seq: u32,
    pub flow: u16,
    pub src_port: u16,
    pub bytes: Vec<u8>,
    pub payload_ok: bool,
}

/// Parses a received frame; `None` for anything that is not one of our test frames.
pub fn seen(frame: &[u8], payload_len: usize) -> Option<Seen> {
    let p = parse_udp_ipv4(frame).ok()?;
    if p.dst_port != TEST_PORT || p.payload.len() < 6 {
        return None;
    }
    let seq = u32::from_be_bytes(p.payload[..4].try_into().ok()?);
    let flow = u16::from_be_bytes(p.payload[4..6].try_into().ok()?);
    Some(Seen {
        seq,
        flow,
        src_port: p.src_port,
        bytes: frame.to_vec(),
        payload_ok: p.payload == payload(seq, flow, payload_len).as_slice(),
    })
}

/// Sends `frames` (made lazily by `make(i)`) through `port`, never more than `WINDOW`
/// ahead of `received`, retrying what the ring did not take. `pump` runs between
/// bursts (e.g. to answer ARP on the same port).
pub fn send_windowed<P: Port>(
    port: &mut P,
    count: usize,
    received: &AtomicUsize,
    mut make: impl FnMut(&mut P, usize) -> Result<P::Buf>,
    mut pump: impl FnMut(&mut P) -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut pending: Vec<P::Buf> = Vec::with_capacity(MAX_BURST);
    let mut next = 0;
    while next < count || !pending.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "send timed out at {next}/{count}"
        );
        while pending.len() < MAX_BURST
            && next < count
            && next < received.load(Ordering::Acquire) + WINDOW
        {
            pending.push(make(port, next)?);
            next += 1;
        }
        port.tx_burst(&mut pending);
        pump(port)?;
        if pending.is_empty() {
            std::thread::yield_now();
        }
    }
    Ok(())
}

/// Receives on `ports` until `want` test frames arrived (or the deadline), calling
/// `other` on every frame that is not a test frame.
pub fn receive<P: Port>(
    ports: &mut [P],
    want: usize,
    payload_len: usize,
    received: &AtomicUsize,
    mut other: impl FnMut(&mut P, &[u8]) -> Result<()>,
) -> Result<Vec<(usize, Seen)>> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::with_capacity(want);
    let mut out = Vec::with_capacity(MAX_BURST);
    while got.len() < want && Instant::now() < deadline {
        let mut idle = true;
        for (q, port) in ports.iter_mut().enumerate() {
            if port.rx_burst(&mut out, MAX_BURST) > 0 {
                idle = false;
            }
            for buf in out.drain(..) {
                match seen(buf.data(), payload_len) {
                    Some(s) => got.push((q, s)),
                    None => other(port, buf.data())?,
                }
            }
        }
        received.store(got.len(), Ordering::Release);
        if idle {
            std::thread::yield_now();
        }
    }
    // Linger briefly so duplicates or extra frames would be noticed.
    let linger = Instant::now() + Duration::from_millis(50);
    while Instant::now() < linger {
        for (q, port) in ports.iter_mut().enumerate() {
            port.rx_burst(&mut out, MAX_BURST);
            for buf in out.drain(..) {
                if let Some(s) = seen(buf.data(), payload_len) {
                    got.push((q, s));
                }
            }
        }
    }
    Ok(got)
}

pub fn ignore_other<P: Port>(_: &mut P, _: &[u8]) -> Result<()> {
    Ok(())
}

/// The frames `count` × `payload_len` from `from` to `to` (flow 0), checked on arrival.
pub fn one_way<A: Port, B: Port>(
    from: &mut A,
    to: &mut B,
    hdr: UdpIpv4Header,
    count: usize,
    payload_len: usize,
) -> Result<()> {
    let received = AtomicUsize::new(0);
    let mut expected = Vec::with_capacity(count);
    let (sent, got) = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            receive(
                std::slice::from_mut(to),
                count,
                payload_len,
                &received,
                ignore_other,
            )
        });
        let sent = send_windowed(
            from,
            count,
            &received,
            |p, i| {
                let f = frame_into(p, &hdr, &payload(i as u32, 0, payload_len))?;
                expected.push(f.data().to_vec());
                Ok(f)
            },
            |_| Ok(()),
        );
        if sent.is_err() {
            received.store(usize::MAX / 2, Ordering::Release);
        }
        (sent, rx.join())
    });
    sent?;
    let got = got.map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    ensure!(
        got.len() == count,
        "received {} of {count} frames",
        got.len()
    );
    for (i, (_, s)) in got.iter().enumerate() {
        ensure!(
            s.seq as usize == i,
            "frame {i} arrived as seq {} (loss or reorder)",
            s.seq
        );
        ensure!(
            s.bytes == expected[i],
            "frame {i}: bytes differ from what was sent"
        );
    }
    Ok(())
}

/// A throughput measurement: `a` sends `template` as fast as it takes it for `run_for`
/// (testpmd's txonly) while a second thread counts what `b` receives (rxonly), draining
/// `b` for 100 ms more at the end. Returns (frames sent, frames received, the seconds
/// sent for, the two ports' stats).
pub fn blast<A: Port, B: Port>(
    a: A,
    b: B,
    template: Vec<u8>,
    run_for: Duration,
) -> Result<(
    u64,
    u64,
    f64,
    dataplane::port::PortStats,
    dataplane::port::PortStats,
)> {
    use dataplane::forward::{CoreCounters, Forwarder, Mode};
    let mut tx = Forwarder::new(vec![a], Mode::Txonly, MAX_BURST, vec![template])?;
    let mut rx = Forwarder::new(vec![b], Mode::Rxonly, MAX_BURST, Vec::new())?;
    let (txc, rxc) = (CoreCounters::default(), CoreCounters::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let secs = std::thread::scope(|s| {
        s.spawn(|| {
            rx.run(&stop, &rxc);
            let end = Instant::now() + Duration::from_millis(100);
            while Instant::now() < end {
                rx.poll_once(&rxc);
            }
        });
        let start = Instant::now();
        while start.elapsed() < run_for {
            tx.poll_once(&txc);
        }
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        secs
    });
    Ok((
        txc.snapshot().tx_packets,
        rxc.snapshot().rx_packets,
        secs,
        tx.ports()[0].stats(),
        rx.ports()[0].stats(),
    ))
}
