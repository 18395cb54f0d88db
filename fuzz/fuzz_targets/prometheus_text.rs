//! Fuzz target: the Prometheus text-format parser (`dataplane::stats::prometheus`):
//! never panics; what it accepts re-emits through the writer to the same samples.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::stats::prometheus::fuzz_check(data);
});
