//! Fuzzes the Ethernet / ARP / IPv4 / UDP views and `parse_udp_ipv4`: no input may
//! panic, and whatever parses must rebuild to an equal frame. The same check runs
//! without the fuzzer in `dataplane::wire::frame::tests::seeded_random_inputs_never_panic`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::wire::frame::fuzz_check_l2l4(data);
});
