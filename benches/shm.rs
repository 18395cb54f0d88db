//! Shared-memory application channel benchmark (harness = false): what crossing the
//! channel costs, against calling the handler in-process.
//!
//! A real hub and an attached server application (`AppChannel::serve`, a thread of this
//! process standing in for the app process: the memory path is the same) echo 64-byte
//! requests. The dataplane side is driven by hand through the channel's rings, as the
//! server bridge does: copy the request into a slot, push the descriptor, poll for the
//! response, copy it out. Figures:
//! - round trip, one outstanding: median / p99 over N requests, and the same loop calling
//!   the handler directly (the in-process mode); the difference is what the channel adds;
//! - the channel's capacity with a window of 32 outstanding (requests per second one
//!   dataplane thread and one application thread move through it).
//!
//! Run: `cargo bench -p flatrpc --no-default-features --bench shm`
//! (two busy threads: on a shared 2-core machine the figures move with the load).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::app::hub::Attached;
use dataplane::app::ring::{kind, Desc};
use dataplane::app::{open_channel, AppChannel, ChannelEvent, Geometry, Hub, HubConfig, Role};

const N: usize = 200_000;
const WINDOW: u32 = 32;
const SIZE: usize = 64;

fn handler(_method: u16, req: &[u8], resp: &mut [u8]) -> Result<usize, dataplane::anf::AppError> {
    let n = req.len().min(resp.len());
    resp[..n].copy_from_slice(&req[..n]);
    Ok(n)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0) as f64
}

fn main() -> anyhow::Result<()> {
    let socket =
        std::env::temp_dir().join(format!("flatrpc-bench-shm-{}.sock", std::process::id()));
    let (hub, rxs) = Hub::start(HubConfig {
        socket: socket.clone(),
        max_geometry: Geometry::default(),
        allow_uids: vec![],
        allow_gids: vec![],
        server_services: vec![1],
        clients: false,
        cores: 1,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let app = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut ch = AppChannel::attach(&socket, Role::Server { services: vec![1] })?;
            ch.serve_until(&stop, handler)?;
            Ok(())
        })
    };
    let rx = rxs
        .first()
        .ok_or_else(|| anyhow::anyhow!("no core receiver"))?;
    let ChannelEvent::Attached(Attached {
        segment, geometry, ..
    }) = rx.recv_timeout(Duration::from_secs(5))?
    else {
        anyhow::bail!("expected an attach");
    };
    let mut dp = open_channel(segment, &geometry, true)?;
    let req = [0x5au8; SIZE];
    let mut out = [0u8; 2048];

    // Round trip, one outstanding.
    let mut shm_ns = Vec::with_capacity(N);
    for i in 0..N + 10_000 {
        let t = Instant::now();
        dp.arena.write(0, &req)?;
        dp.producer.push(&Desc {
            kind: kind::REQUEST,
            slot: 0,
            len: SIZE as u32,
            tag: i as u64,
            method: 1,
            service: 1,
            ..Desc::default()
        })?;
        let d = loop {
            if let Some(d) = dp.consumer.pop()? {
                break d;
            }
            std::hint::spin_loop();
        };
        dp.arena.read(d.slot, d.len, &mut out)?;
        if i >= 10_000 {
            shm_ns.push(t.elapsed().as_nanos() as u64);
        }
    }
    let mut inproc_ns = Vec::with_capacity(N);
    let mut scratch = [0u8; 2048];
    for _ in 0..N {
        let t = Instant::now();
        scratch[..SIZE].copy_from_slice(std::hint::black_box(&req));
        let n = handler(1, &scratch[..SIZE], &mut out).unwrap_or(0);
        std::hint::black_box(&out[..n]);
        inproc_ns.push(t.elapsed().as_nanos() as u64);
    }
    let (s50, s99) = (pct(&mut shm_ns, 0.5), pct(&mut shm_ns, 0.99));
    let (i50, i99) = (pct(&mut inproc_ns, 0.5), pct(&mut inproc_ns, 0.99));
    println!(
        "shm channel round trip (64 B, one outstanding): p50 {:.2} us  p99 {:.2} us",
        s50 / 1e3,
        s99 / 1e3
    );
    println!(
        "in-process handler call (same work):            p50 {:.2} us  p99 {:.2} us",
        i50 / 1e3,
        i99 / 1e3
    );
    let added = (s50 - i50) / 1e3;
    println!(
        "added to the median: {added:.2} us ({} target <= 1.5 us)",
        if added <= 1.5 { "meets" } else { "BELOW" }
    );

    // Throughput with a window.
    let slots = geometry.slot_count.min(WINDOW);
    let t = Instant::now();
    let mut done = 0u64;
    let mut outstanding = 0u32;
    let mut free: Vec<u32> = (0..slots).collect();
    while t.elapsed() < Duration::from_secs(1) {
        while let Some(slot) = free.pop() {
            dp.arena.write(slot, &req)?;
            dp.producer.push(&Desc {
                kind: kind::REQUEST,
                slot,
                len: SIZE as u32,
                method: 1,
                service: 1,
                ..Desc::default()
            })?;
            outstanding += 1;
        }
        while let Some(d) = dp.consumer.pop()? {
            dp.arena.read(d.slot, d.len, &mut out)?;
            free.push(d.slot);
            outstanding -= 1;
            done += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    while outstanding > 0 {
        if dp.consumer.pop()?.is_some() {
            outstanding -= 1;
        }
    }
    let shm_rps = done as f64 / secs;
    // The handler alone runs at hundreds of millions per second, so a ratio to it says
    // nothing; the end-to-end ratio (KV over a veth pair, in-process vs attached apps)
    // is `scripts/bench.sh --only shm`.
    println!(
        "channel capacity, window {slots}: {:.2} M req/s (one dataplane thread, one app thread)",
        shm_rps / 1e6
    );
    stop.store(true, Ordering::Relaxed);
    app.join()
        .map_err(|_| anyhow::anyhow!("app thread panicked"))??;
    drop(hub);
    Ok(())
}
