//! Seconds-bounded smoke run of the element-parser fuzz check (the same function the
//! `appnet_parse` cargo-fuzz target calls): seeded random bytes, random token soup and
//! mutations of the corpus elements must parse or give a diagnostic, never panic.

use std::path::Path;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: [&str; 40] = [
    "state:",
    "init():",
    "req(rpc):",
    "resp(rpc):",
    "\n",
    "\n\t",
    "\n    ",
    "\t",
    "  ",
    "match ",
    ":",
    "=>",
    "->",
    "(",
    ")",
    "<",
    ">",
    ",",
    "'s'",
    "\"q",
    "12",
    "3.5",
    "-",
    "+",
    "*",
    "/",
    "==",
    "and ",
    "or ",
    "not ",
    "Some(x)",
    "None",
    "_",
    "send(rpc, Down)",
    "send(err('e'), Up)",
    "get(rpc, 'user')",
    "set(m, k, v)",
    "foreach(v, lambda(x): pass)",
    "@consistency(strong)",
    "Map<string, int>",
];

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/elements");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn parser_never_panics_on_random_and_mutated_input() {
    let seeds = corpus();
    assert!(seeds.len() >= 11, "corpus elements found: {}", seeds.len());
    for s in &seeds {
        assert!(
            specgen::appnet::fuzz_parse(s),
            "a corpus element failed to parse"
        );
    }
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while n < 6000 && Instant::now() < deadline {
        let input: Vec<u8> = match n % 3 {
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            1 => (0..rng.below(60))
                .flat_map(|_| TOKENS[rng.below(TOKENS.len())].bytes())
                .collect(),
            _ => {
                let mut v = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(8) {
                    let len = v.len();
                    match rng.below(4) {
                        0 if len > 0 => {
                            let i = rng.below(len);
                            v[i] = rng.next() as u8;
                        }
                        1 if len > 0 => {
                            let i = rng.below(len);
                            v.remove(i);
                        }
                        2 => {
                            let i = rng.below(len + 1);
                            let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                            v.splice(i..i, t.iter().copied());
                        }
                        _ => {
                            let i = rng.below(len + 1);
                            v.truncate(i);
                        }
                    }
                }
                v
            }
        };
        let r = std::panic::catch_unwind(|| specgen::appnet::fuzz_parse(&input));
        assert!(
            r.is_ok(),
            "parser panicked on {:?}",
            String::from_utf8_lossy(&input)
        );
        n += 1;
    }
    assert!(n >= 1000, "only {n} inputs in the time budget");
}
