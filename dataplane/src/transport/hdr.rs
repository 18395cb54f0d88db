//! The transport's header writer for its hot paths: the 32-byte RPC header (layout in
//! the README, owned by `wire::rpc`) written as four little-endian words, so it can be
//! inlined where packets are built. `wire::rpc::RpcHeaderRepr::emit` stays the
//! reference: a test checks this writer against it byte for byte.
//!
//! This module must not parse anything, and must follow `wire::rpc` whenever the layout
//! changes (the test fails otherwise).

use crate::wire::rpc::{PacketType, RpcHeaderRepr, HEADER_LEN, MAGIC, VERSION};

/// Flag bits a header may carry besides the class (`emit` masks the same way).
const FLAG_BITS: u8 = 0b0000_1111;
/// Where the request class sits in the flags byte.
const CLASS_SHIFT: u8 = 4;

/// Writes `h` into the first [`HEADER_LEN`] bytes of `out`; `None` if `out` is shorter.
#[inline(always)]
pub(crate) fn write(h: &RpcHeaderRepr, out: &mut [u8]) -> Option<()> {
    let b = out.get_mut(..HEADER_LEN)?;
    let class_bits = if h.packet_type == PacketType::Request {
        (h.class as u8) << CLASS_SHIFT
    } else {
        0
    };
    let flags = (h.flags & FLAG_BITS) | class_bits;
    let w0 = u64::from(MAGIC)
        | u64::from(VERSION) << 16
        | u64::from(h.packet_type as u8) << 24
        | u64::from(flags) << 32
        | u64::from(h.credits) << 40
        | u64::from(h.service) << 48;
    let w1 = u64::from(h.method)
        | u64::from(h.frag_index) << 16
        | u64::from(h.frag_count) << 32
        | u64::from(h.aux) << 48;
    let w3 = u64::from(h.rpc_id) | u64::from(h.msg_len) << 32;
    b[0..8].copy_from_slice(&w0.to_le_bytes());
    b[8..16].copy_from_slice(&w1.to_le_bytes());
    b[16..24].copy_from_slice(&h.session.to_le_bytes());
    b[24..32].copy_from_slice(&w3.to_le_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rpc::WireClass;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_the_wire_module_emit() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
        let types = PacketType::ALL;
        let classes = [
            WireClass::Unreliable,
            WireClass::Reliable,
            WireClass::ReliableOrdered,
        ];
        for _ in 0..5_000 {
            let mut h = RpcHeaderRepr::new(types[rng.gen_range(0..types.len())]);
            h.flags = rng.gen();
            h.class = classes[rng.gen_range(0..classes.len())];
            h.credits = rng.gen();
            h.service = rng.gen();
            h.method = rng.gen();
            h.frag_index = rng.gen();
            h.frag_count = rng.gen();
            h.aux = rng.gen();
            h.session = rng.gen();
            h.rpc_id = rng.gen();
            h.msg_len = rng.gen();
            let mut a = [0u8; HEADER_LEN];
            let mut b = [0xeeu8; HEADER_LEN + 3];
            h.emit(&mut a).expect("32 bytes");
            assert_eq!(write(&h, &mut b), Some(()));
            assert_eq!(a[..], b[..HEADER_LEN], "{h:?}");
            assert_eq!(
                b[HEADER_LEN..],
                [0xee; 3],
                "nothing written past the header"
            );
        }
        assert_eq!(
            write(&RpcHeaderRepr::new(PacketType::Close), &mut [0; 31]),
            None
        );
    }
}
