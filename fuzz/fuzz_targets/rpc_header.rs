//! Fuzz target: the RPC header view (`dataplane::wire::rpc`). `new_checked` must never
//! panic and what it accepts must round-trip through parse → emit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::wire::rpc::fuzz_check(data);
});
