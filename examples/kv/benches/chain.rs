//! Benchmark of the generated KV chain (firewall + session tracker) against a
//! hand-written Rust equivalent in the same run, plus field reads through a generated
//! view. Prints ns/op (median of several runs) and the ratio. Run with
//! `cargo bench -p kv-example --bench chain`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use dataplane::anf::{FastState, InitCtx, RpcCtx, RpcHeader, Verdict};
use kv_example::kv;

const ITERS: u64 = 1_000_000;
const RUNS: usize = 3;
const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(mut f: impl FnMut(u64)) -> f64 {
    for i in 0..ITERS / 10 {
        f(i);
    }
    let runs = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for i in 0..ITERS {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / ITERS as f64
        })
        .collect();
    median(runs)
}

/// A 128-byte Get request from `user`.
fn request(user: &str) -> Vec<u8> {
    let fixed = kv::GetRequestView::FIXED_LEN;
    let name = "n".repeat(128 - fixed - user.len());
    let req = kv::GetRequest {
        name,
        user: user.into(),
    };
    let mut buf = vec![0u8; req.encoded_len()];
    req.encode(&mut buf).expect("fits");
    assert_eq!(buf.len(), 128);
    buf
}

/// What a person would write by hand for the same chain over the same layout.
struct HandWritten {
    rules: HashMap<Vec<u8>, Vec<u8>, FastState>,
    requests: HashMap<Vec<u8>, u64, FastState>,
    last_seen: HashMap<Vec<u8>, u64, FastState>,
    total: u64,
}

impl HandWritten {
    #[inline(never)]
    fn on_request(&mut self, now: u64, p: &[u8]) -> Verdict {
        // Same validation as the generated view: fixed section, both slots in bounds.
        if p.len() < 16 {
            return Verdict::Drop;
        }
        let slot = |at: usize| -> Option<&[u8]> {
            let off = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
            let len = u32::from_le_bytes(p.get(at + 4..at + 8)?.try_into().ok()?) as usize;
            p.get(off..off.checked_add(len)?)
        };
        let (Some(user), Some(_name)) = (slot(0), slot(8)) else {
            return Verdict::Drop;
        };
        match self.rules.get(user) {
            Some(p) if p.as_slice() == b"allow" => {}
            _ => return Verdict::Reply(dataplane::anf::ErrorReply::new("denied")),
        }
        match self.requests.get_mut(user) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert(user.to_vec(), 1);
            }
        }
        match self.last_seen.get_mut(user) {
            Some(t) => *t = now,
            None => {
                self.last_seen.insert(user.to_vec(), now);
            }
        }
        self.total += 1;
        Verdict::Forward
    }
}

#[inline(never)]
fn generated(p: &mut kv::ServerPipeline, ctx: &mut RpcCtx, now: u64, buf: &mut [u8]) -> Verdict {
    ctx.reset(
        RpcHeader {
            method_id: 1,
            rpc_id: now,
            ..Default::default()
        },
        now,
    );
    p.on_request(kv::Method::Get.id(), ctx, buf)
}

fn main() {
    let tables: kv::Tables = kv::Tables {
        firewall_rules: vec![
            ("alice".into(), "allow".into()),
            ("bob".into(), "deny".into()),
        ],
    };
    let mut p = kv::ServerPipeline::new(
        &kv::ServerShared::default(),
        &tables,
        &InitCtx { now: 0, seed: 7 },
    );
    let mut ctx = RpcCtx::default();
    let mut buf = request("alice");
    let mut hand = HandWritten {
        rules: HashMap::with_hasher(FastState::new()),
        requests: HashMap::with_hasher(FastState::new()),
        last_seen: HashMap::with_hasher(FastState::new()),
        total: 0,
    };
    for (k, v) in &tables.firewall_rules {
        hand.rules
            .insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    }

    // Interleave the two measurements so both see the same machine conditions; the
    // ratio is the median of the per-round ratios.
    let mut gen_runs = Vec::new();
    let mut hand_runs = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        let g = measure(|i| {
            black_box(generated(&mut p, &mut ctx, i, black_box(&mut buf)));
        });
        let h = measure(|i| {
            black_box(hand.on_request(i, black_box(&buf)));
        });
        gen_runs.push(g);
        hand_runs.push(h);
        ratios.push(g / h);
    }
    let (g, h, ratio) = (median(gen_runs), median(hand_runs), median(ratios));
    assert_eq!(generated(&mut p, &mut ctx, 1, &mut buf), Verdict::Forward);
    assert!(p.session_tracker.total > 0 && hand.total > 0);

    let view_buf = request("alice");
    let view = kv::GetRequestView::new_checked(&view_buf).expect("valid");
    let read_slot = measure(|_| {
        black_box(black_box(&view).user());
    });
    let mut resp = vec![0u8; 64];
    let n = kv::GetResponse {
        value: vec![1; 32],
        found: true,
    }
    .encode(&mut resp)
    .expect("fits");
    let rview = kv::GetResponseView::new_checked(&resp[..n]).expect("valid");
    let read_inline = measure(|_| {
        black_box(black_box(&rview).found());
    });
    let check = measure(|_| {
        black_box(kv::GetRequestView::new_checked(black_box(&view_buf[..])).is_ok());
    });

    println!("specgen KV benchmark ({ITERS} iterations x {RUNS} runs x {ROUNDS} rounds, medians)");
    println!("  field read through view, slot (GetRequest.user):   {read_slot:6.2} ns/op");
    println!("  field read through view, inline (GetResponse.found): {read_inline:6.2} ns/op");
    println!("  GetRequestView::new_checked (128 B):               {check:6.2} ns/op");
    println!("  firewall + session_tracker, generated (128 B req): {g:6.2} ns/op");
    println!("  firewall + session_tracker, hand-written:          {h:6.2} ns/op");
    println!("  ratio generated / hand-written (median per round): {ratio:6.2}");
}
