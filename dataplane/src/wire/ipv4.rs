//! IPv4 headers (RFC 791): a checked view, a `Repr`, and header checksum verify/fill.
//!
//! `new_checked` validates version 4, IHL ≥ 5, header within the buffer and
//! header ≤ total length ≤ buffer (Ethernet padding after the packet is allowed and
//! excluded from [`Ipv4Packet::payload`]). Options are allowed and skipped. It does not
//! verify the checksum (call [`Ipv4Packet::verify_checksum`]) and does not refuse
//! fragments: [`Ipv4Packet::is_fragment`] lets the caller drop them. This module owns
//! the IPv4 header; it must not reassemble or route.

use std::net::Ipv4Addr;

use super::checksum;
use super::error::field;
use super::WireError;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers used here.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

mod off {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates the header's structure (see the module comment).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Ipv4TooShort);
        }
        let ver_ihl = field::u8_at(b, off::VER_IHL);
        if ver_ihl >> 4 != 4 {
            return Err(WireError::BadIpVersion);
        }
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN || header_len > b.len() {
            return Err(WireError::BadIhl);
        }
        let total = usize::from(field::u16_at(b, off::TOTAL_LEN));
        if total < header_len || total > b.len() {
            return Err(WireError::BadTotalLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Wraps a buffer for [`Ipv4Repr::emit`]; checks only that a 20-byte header fits.
    pub fn new_for_emit(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        Ok(Ipv4Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        field::u8_at(self.b(), off::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(field::u8_at(self.b(), off::VER_IHL) & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        field::u8_at(self.b(), off::DSCP_ECN)
    }

    pub fn total_len(&self) -> usize {
        usize::from(field::u16_at(self.b(), off::TOTAL_LEN))
    }

    pub fn ident(&self) -> u16 {
        field::u16_at(self.b(), off::IDENT)
    }

    pub fn dont_fragment(&self) -> bool {
        field::u16_at(self.b(), off::FLAGS_FRAG) & FLAG_DF != 0
    }

    pub fn more_fragments(&self) -> bool {
        field::u16_at(self.b(), off::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(field::u16_at(self.b(), off::FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8
    }

    /// Whether this packet is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        field::u8_at(self.b(), off::TTL)
    }

    pub fn protocol(&self) -> u8 {
        field::u8_at(self.b(), off::PROTOCOL)
    }

    pub fn checksum(&self) -> u16 {
        field::u16_at(self.b(), off::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array_at::<4>(self.b(), off::SRC))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array_at::<4>(self.b(), off::DST))
    }

    /// The header bytes (options included).
    pub fn header(&self) -> &[u8] {
        self.b().get(..self.header_len()).unwrap_or(&[])
    }

    /// Option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        self.b()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }

    /// The bytes between the header and the total length.
    pub fn payload(&self) -> &[u8] {
        self.b()
            .get(self.header_len()..self.total_len())
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        field::set_u8(self.bm(), off::VER_IHL, 0x40 | ihl);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        field::set_u8(self.bm(), off::DSCP_ECN, v);
    }

    pub fn set_total_len(&mut self, len: u16) {
        field::set_u16(self.bm(), off::TOTAL_LEN, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        field::set_u16(self.bm(), off::IDENT, id);
    }

    /// Sets DF/MF and the fragment offset (in bytes, a multiple of 8).
    pub fn set_flags_and_frag_offset(&mut self, df: bool, mf: bool, offset: usize) {
        let mut v = ((offset / 8) as u16) & FRAG_OFFSET_MASK;
        if df {
            v |= FLAG_DF;
        }
        if mf {
            v |= FLAG_MF;
        }
        field::set_u16(self.bm(), off::FLAGS_FRAG, v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        field::set_u8(self.bm(), off::TTL, ttl);
    }

    pub fn set_protocol(&mut self, p: u8) {
        field::set_u8(self.bm(), off::PROTOCOL, p);
    }

    pub fn set_checksum(&mut self, c: u16) {
        field::set_u16(self.bm(), off::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        field::set_bytes(self.bm(), off::SRC, &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        field::set_bytes(self.bm(), off::DST, &a.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len());
        self.bm().get_mut(start..end).unwrap_or(&mut [])
    }
}

/// The fields of an option-less, unfragmented IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// The largest payload an IPv4 packet can carry with a 20-byte header.
    pub const MAX_PAYLOAD: usize = u16::MAX as usize - MIN_HEADER_LEN;

    /// Writes a 20-byte header with DF set and a correct checksum. The buffer must
    /// hold the header (the payload is not touched).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Ipv4Packet<T>,
    ) -> Result<(), WireError> {
        if self.payload_len > Self::MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge);
        }
        if p.buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        p.set_version_and_header_len(MIN_HEADER_LEN);
        p.set_dscp_ecn(0);
        p.set_total_len((MIN_HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_flags_and_frag_offset(true, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Ok(())
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            ident: p.ident(),
            payload_len: p.payload().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic example header (192.168.0.1 -> 192.168.0.199, UDP, checksum b861)
    /// followed by 95 payload bytes.
    fn example() -> Vec<u8> {
        let mut b = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        b.extend((0..95).map(|i| i as u8));
        b
    }

    #[test]
    fn parses_the_example() {
        let b = example();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_fragment());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 95);
        assert!(p.options().is_empty());
    }

    #[test]
    fn emit_matches_the_example() {
        let mut b = [0u8; 20];
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: protocol::UDP,
            ttl: 64,
            ident: 0,
            payload_len: 95,
        };
        repr.emit(&mut Ipv4Packet::new_for_emit(&mut b[..]).unwrap())
            .unwrap();
        assert_eq!(b[..], example()[..20]);
    }

    #[test]
    fn padding_after_total_length_is_excluded() {
        let mut b = example();
        b.extend([0xee; 10]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 95);
    }

    #[test]
    fn options_are_skipped_and_checksummed() {
        let mut b = example();
        // Insert a 4-byte option (NOP NOP NOP EOL) and fix IHL, length, checksum.
        b.splice(20..20, [1, 1, 1, 0]);
        b[0] = 0x46;
        b[2..4].copy_from_slice(&(0x77u16).to_be_bytes());
        let mut v = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        assert!(!v.verify_checksum());
        v.fill_checksum();
        assert!(v.verify_checksum());
        assert_eq!(v.options(), &[1, 1, 1, 0]);
        assert_eq!(v.payload().len(), 95);
        assert_eq!(v.payload()[0], 0);
    }

    #[test]
    fn rejects_malformed_headers() {
        let good = example();
        for len in 0..20 {
            assert_eq!(
                Ipv4Packet::new_checked(&good[..len]).err(),
                Some(WireError::Ipv4TooShort)
            );
        }
        let mut b = good.clone();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadIpVersion)
        );
        for ihl in 0..5u8 {
            b[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::new_checked(&b[..]).err(),
                Some(WireError::BadIhl)
            );
        }
        // IHL 15 = 60 bytes: beyond a 24-byte buffer.
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..24]).err(),
            Some(WireError::BadIhl)
        );
        let mut b = good.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadTotalLength)
        );
        b[2..4].copy_from_slice(&((good.len() + 1) as u16).to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadTotalLength)
        );
        let mut b = good.clone();
        b[11] ^= 1;
        assert!(!Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn flags_fragments() {
        let mut b = example();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_flags_and_frag_offset(false, true, 0);
        assert!(p.is_fragment() && p.more_fragments());
        p.set_flags_and_frag_offset(false, false, 1480);
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        p.set_flags_and_frag_offset(true, false, 0);
        assert!(!p.is_fragment());
    }

    #[test]
    fn emit_refuses_oversized_payloads() {
        let mut b = [0u8; 20];
        let repr = Ipv4Repr {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
            protocol: protocol::UDP,
            ttl: 1,
            ident: 1,
            payload_len: Ipv4Repr::MAX_PAYLOAD + 1,
        };
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_for_emit(&mut b[..]).unwrap()),
            Err(WireError::PayloadTooLarge)
        );
    }
}
