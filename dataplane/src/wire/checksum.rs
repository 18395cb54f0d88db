//! The Internet checksum (RFC 1071): 16-bit one's-complement sum.
//!
//! The sum is byte-order independent up to one final swap (RFC 1071 §2(B)) and may be
//! accumulated in words wider than 16 bits as long as carries wrap around, so the bytes
//! are summed as native-endian `u64` words with end-around carry (an add and an
//! add-with-carry each), four per step into two accumulators (two independent
//! dependency chains), folded to 16 bits and swapped to network order once at the end.
//! Whole blocks are taken with `as_chunks`, so the loops carry no bounds checks. This
//! module owns the arithmetic only; it must not know header layouts beyond the IPv4
//! pseudo-header and the fixed 20-byte IPv4 header.

use std::net::Ipv4Addr;

/// `a + b` with the carry out added back in (one's-complement addition of 64-bit words).
#[inline(always)]
fn add_wrap(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// The native-endian word at `i` of a block (constant offsets: no bounds check remains).
#[inline(always)]
fn word_at(c: &[u8; 32], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&c[i..i + 8]);
    u64::from_ne_bytes(w)
}

/// Folds a 64-bit one's-complement accumulator to 16 bits (end-around carry each step).
#[inline(always)]
fn fold(acc: u64) -> u16 {
    let mut t = (acc & 0xffff_ffff) + (acc >> 32);
    t = (t & 0xffff) + (t >> 16);
    t = (t & 0xffff) + (t >> 16);
    t = (t & 0xffff) + (t >> 16);
    t as u16
}

/// The folded (not inverted) one's-complement sum of `data`, as a big-endian value,
/// i.e. what RFC 1071 calls the sum before the final complement.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let (blocks, rest) = data.as_chunks::<32>();
    let (mut a, mut b) = (0u64, 0u64);
    for c in blocks {
        a = add_wrap(add_wrap(a, word_at(c, 0)), word_at(c, 8));
        b = add_wrap(add_wrap(b, word_at(c, 16)), word_at(c, 24));
    }
    let (words, rest) = rest.as_chunks::<8>();
    for c in words {
        a = add_wrap(a, u64::from_ne_bytes(*c));
    }
    // The 0..=7 tail bytes start at an even offset, so 4-, 2- and 1-byte pieces keep
    // their 16-bit lanes (a lone last byte is the high-order half of a zero-padded
    // word). Loaded piecewise: a padded copy would stall on store forwarding.
    let mut rest = rest;
    let mut tail = 0u64;
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        tail += u64::from(u32::from_ne_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        tail += u64::from(u16::from_ne_bytes(*w));
        rest = r;
    }
    if let Some(&last) = rest.first() {
        tail += u64::from(u16::from_ne_bytes([last, 0]));
    }
    // Native words were summed; on little-endian hosts the result is byte-swapped.
    u16::from_be(fold(add_wrap(add_wrap(a, b), tail)))
}

/// [`sum`] of an option-less IPv4 header: five 32-bit words, no loop.
#[inline(always)]
pub fn sum_ipv4_header(h: &[u8; 20]) -> u16 {
    let (words, _) = h.as_chunks::<4>();
    let acc: u64 = words
        .iter()
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum();
    u16::from_be(fold(acc))
}

/// One's-complement addition of two folded sums.
pub fn add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The folded sum of the IPv4 pseudo-header for `protocol` and an upper-layer
/// `length` (UDP: the UDP length field).
pub fn ipv4_pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    // Six 16-bit words fit a u32 without overflow: add them, fold once.
    let s = u32::from(src);
    let d = u32::from(dst);
    let acc = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// The checksum field value for data whose folded sum is `sum` (its complement).
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// The RFC 1071 checksum of `data` (complement of the sum), ready to store.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit reference: add big-endian 16-bit words with end-around carry.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (checksum field b861 included): sums to ffff.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(sum(&hdr), 0xffff);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn the_ipv4_header_sum_is_the_sum() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(20);
        for i in 0..2000 {
            let h: [u8; 20] = match i {
                0 => [0xff; 20],
                1 => [0; 20],
                _ => rng.gen(),
            };
            assert_eq!(sum_ipv4_header(&h), reference_sum(&h), "{h:02x?}");
        }
    }

    #[test]
    fn odd_lengths_and_all_sizes_match_reference() {
        let data: Vec<u8> = (0..1600u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(sum(&data[..len]), reference_sum(&data[..len]), "len {len}");
        }
        assert_eq!(sum(&[0xff; 3]), reference_sum(&[0xff; 3]));
        assert_eq!(sum(&[0xff; 4096]), 0xffff);
    }

    #[test]
    fn random_buffers_lengths_and_alignments_match_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x0c5u64);
        let mut backing = vec![0u8; 4096 + 64];
        for round in 0..4000 {
            // Mostly random bytes; some rounds all-0xff / near-overflow patterns.
            match round % 4 {
                0 => backing.iter_mut().for_each(|b| *b = 0xff),
                1 => backing
                    .iter_mut()
                    .for_each(|b| *b = rng.gen_range(0xf0..=0xff)),
                _ => rng.fill(&mut backing[..]),
            }
            let start = rng.gen_range(0..64);
            let len = if round % 8 == 0 {
                rng.gen_range(0..4096)
            } else {
                rng.gen_range(0..200)
            };
            let data = &backing[start..start + len];
            assert_eq!(sum(data), reference_sum(data), "start {start} len {len}");
        }
    }

    #[test]
    fn pseudo_header_matches_byte_layout() {
        let src = Ipv4Addr::new(10, 77, 0, 1);
        let dst = Ipv4Addr::new(10, 77, 0, 2);
        let bytes = [10, 77, 0, 1, 10, 77, 0, 2, 0, 17, 0x01, 0x2c];
        assert_eq!(ipv4_pseudo_header(src, dst, 17, 300), reference_sum(&bytes));
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(17);
        for i in 0..2000 {
            let (s, d): (u32, u32) = if i == 0 {
                (!0, !0)
            } else {
                (rng.gen(), rng.gen())
            };
            let (p, len): (u8, u16) = if i == 0 {
                (!0, !0)
            } else {
                (rng.gen(), rng.gen())
            };
            let mut b = Vec::with_capacity(12);
            b.extend(s.to_be_bytes());
            b.extend(d.to_be_bytes());
            b.extend([0, p]);
            b.extend(len.to_be_bytes());
            let got = ipv4_pseudo_header(Ipv4Addr::from(s), Ipv4Addr::from(d), p, len);
            assert_eq!(got, reference_sum(&b), "{s:x} {d:x} {p} {len}");
        }
    }
}
