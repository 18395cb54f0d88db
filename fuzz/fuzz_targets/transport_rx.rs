//! Fuzz target: the transport receive path. Packets cut from the input are fed to a
//! connected client/server pair (see `dataplane::transport::fuzzing`); nothing may
//! panic and the bounded state must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dataplane::transport::fuzzing::check_rx(data);
});
