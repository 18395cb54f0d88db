//! The Internet checksum (RFC 1071): 16-bit one's-complement sum.
//!
//! The sum is byte-order independent up to one final swap (RFC 1071 §2(B)), so the
//! bytes are summed as native-endian `u32` words into a `u64` accumulator (no carry
//! handling in the loop, which the compiler vectorises), folded to 16 bits and swapped
//! to network order once at the end. This module owns the arithmetic only; it must not
//! know header layouts beyond the IPv4 pseudo-header.

use std::net::Ipv4Addr;

/// The folded (not inverted) one's-complement sum of `data`, as a big-endian value,
/// i.e. what RFC 1071 calls the sum before the final complement.
pub fn sum(data: &[u8]) -> u16 {
    // Sum of native-endian 32-bit words; 2^32 words of 2^32-1 cannot overflow u64
    // for any slice shorter than 16 GiB, far beyond a packet.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    // Fold 64 -> 16 bits with end-around carry.
    let mut s = (acc & 0xffff_ffff) + (acc >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    let native = s as u16;
    // Native words were summed; on little-endian hosts the result is byte-swapped.
    u16::from_be(native)
}

/// One's-complement addition of two folded sums.
pub fn add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The folded sum of the IPv4 pseudo-header for `protocol` and an upper-layer
/// `length` (UDP: the UDP length field).
pub fn ipv4_pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        length,
    ];
    words.iter().fold(0, |acc, &w| add(acc, w))
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
    fn pseudo_header_matches_byte_layout() {
        let src = Ipv4Addr::new(10, 77, 0, 1);
        let dst = Ipv4Addr::new(10, 77, 0, 2);
        let bytes = [10, 77, 0, 1, 10, 77, 0, 2, 0, 17, 0x01, 0x2c];
        assert_eq!(ipv4_pseudo_header(src, dst, 17, 300), reference_sum(&bytes));
    }
}
