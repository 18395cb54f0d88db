//! Fuzz target: the host's control-socket request and reply parsers and the Prometheus
//! endpoint's HTTP request-head parser (`dataplane::host::control::fuzz_check`): never
//! panic; what they accept re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::host::control::fuzz_check(data);
});
