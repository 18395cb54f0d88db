//! Seeded-random twins of the fuzz targets `rpc_header` and `transport_rx`: the same
//! check functions over a few thousand generated inputs, so the suite exercises them
//! without libFuzzer.

use dataplane::transport::fuzzing::check_rx;
use dataplane::wire::rpc::{fuzz_check, PacketType, RpcHeaderRepr, WireClass, HEADER_LEN};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// A plausible packet: a valid header of a random type with random fields, then bytes.
fn plausible(rng: &mut Pcg64) -> Vec<u8> {
    let types = PacketType::ALL;
    let mut r = RpcHeaderRepr::new(types[rng.gen_range(0..types.len())]);
    r.flags = rng.gen_range(0..16);
    r.class = [
        WireClass::Unreliable,
        WireClass::Reliable,
        WireClass::ReliableOrdered,
    ][rng.gen_range(0..3)];
    r.credits = rng.gen_range(0..10);
    r.service = rng.gen_range(0..3);
    r.method = rng.gen_range(0..4);
    r.frag_count = rng.gen_range(1..6);
    r.frag_index = rng.gen_range(0..r.frag_count);
    r.aux = rng.gen_range(0..40);
    r.rpc_id = rng.gen_range(0..40);
    let payload_len = if r.frag_count == 1 {
        rng.gen_range(0..200)
    } else {
        rng.gen_range(1..1500)
    };
    r.msg_len = if r.frag_count == 1 {
        payload_len as u32
    } else {
        rng.gen_range(payload_len as u32..payload_len as u32 * u32::from(r.frag_count) + 2)
    };
    let mut v = vec![0u8; HEADER_LEN + payload_len];
    r.emit(&mut v).unwrap();
    for b in &mut v[HEADER_LEN..] {
        *b = rng.gen();
    }
    v
}

#[test]
fn rpc_header_fuzz_twin() {
    let mut rng = Pcg64::seed_from_u64(0xf0_22);
    for i in 0..5000 {
        let mut v = plausible(&mut rng);
        if i % 3 == 0 {
            let at = rng.gen_range(0..v.len());
            v[at] = rng.gen();
        }
        if i % 5 == 0 {
            v.truncate(rng.gen_range(0..=v.len()));
        }
        fuzz_check(&v);
    }
}

#[test]
fn transport_rx_fuzz_twin() {
    let mut rng = Pcg64::seed_from_u64(0xf0_23);
    let (mut malformed, mut unknown, mut stale, mut bad_frag, mut delivered) = (0, 0, 0, 0, 0);
    let (mut unknown_method, mut mismatch, mut in_place) = (0, 0, 0);
    for _ in 0..400 {
        let mut input = Vec::new();
        for _ in 0..rng.gen_range(1..12) {
            let mut ctl = rng.gen::<u8>();
            let pkt = if rng.gen_bool(0.15) {
                // A well-formed one-packet request to the server's session, received in
                // place (control bits: to the server, patch the session, in place).
                ctl = (ctl & !1) | 2 | 8;
                let mut r = RpcHeaderRepr::new(PacketType::Request);
                let m = rng.gen_range(0..3u16);
                r.service = 1;
                r.method = m;
                r.class = [
                    WireClass::Unreliable,
                    WireClass::Reliable,
                    WireClass::ReliableOrdered,
                ][usize::from(m)];
                r.aux = rng.gen_range(0..4);
                r.rpc_id = rng.gen_range(0..40);
                let n = rng.gen_range(0..100);
                r.msg_len = n as u32;
                let mut v = vec![0u8; HEADER_LEN + n];
                r.emit(&mut v).unwrap();
                v
            } else if rng.gen_bool(0.8) {
                plausible(&mut rng)
            } else {
                (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect()
            };
            input.push(ctl);
            input.extend_from_slice(&(pkt.len() as u16).to_le_bytes());
            input.extend_from_slice(&pkt);
        }
        let (c, s) = check_rx(&input);
        for st in [&c, &s] {
            malformed += st.rx_malformed.total();
            unknown += st.rx_unknown_session;
            stale += st.rx_stale;
            bad_frag += st.rx_bad_fragment;
            unknown_method += st.rx_unknown_method;
            mismatch += st.rx_class_mismatch;
        }
        delivered += s.requests_delivered;
        in_place += s.requests_in_place;
    }
    // The inputs must reach past the header check and the session lookup.
    for (what, n) in [
        ("malformed", malformed),
        ("unknown session", unknown),
        ("stale", stale),
        ("bad fragment", bad_frag),
        ("unknown method", unknown_method),
        ("class mismatch", mismatch),
        ("delivered", delivered),
        ("in-place request", in_place),
    ] {
        assert!(n > 0, "no input reached the {what} path");
    }
}
