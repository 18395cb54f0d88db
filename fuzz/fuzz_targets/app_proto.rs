//! Fuzz target: the shared-memory attach protocol (`dataplane::app::proto`). Parsing
//! any bytes as a Hello or as the dataplane's reply must never panic, and what parses
//! must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::app::proto::fuzz_check(data);
});
