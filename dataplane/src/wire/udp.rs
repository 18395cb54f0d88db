//! UDP datagrams (RFC 768): a checked view, a `Repr`, and the checksum over the IPv4
//! pseudo-header. `new_checked` takes the IP payload and validates 8 ≤ length field ≤
//! IP payload length; [`UdpPacket::payload`] stops at the length field. A zero
//! checksum means "none" and verifies; a computed zero is sent as 0xffff. This module
//! owns the 8-byte header; it must not demultiplex ports.

use std::net::Ipv4Addr;

use super::checksum;
use super::error::field;
use super::ipv4::protocol;
use super::WireError;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod off {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram (the IPv4 payload).
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Validates the header and the length field against the buffer (the IP payload).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::UdpTooShort);
        }
        let len = usize::from(field::u16_at(b, off::LENGTH));
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::BadUdpLength);
        }
        Ok(UdpPacket { buffer })
    }

    /// Wraps a buffer for [`UdpRepr::emit`]; checks only that the header fits.
    pub fn new_for_emit(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        Ok(UdpPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        field::u16_at(self.b(), off::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        field::u16_at(self.b(), off::DST_PORT)
    }

    /// The length field (header + payload).
    pub fn len(&self) -> usize {
        usize::from(field::u16_at(self.b(), off::LENGTH))
    }

    /// Whether the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        self.len() <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        field::u16_at(self.b(), off::CHECKSUM)
    }

    /// The datagram (header + payload) as delimited by the length field.
    pub fn datagram(&self) -> &[u8] {
        self.b().get(..self.len()).unwrap_or(&[])
    }

    pub fn payload(&self) -> &[u8] {
        self.b().get(HEADER_LEN..self.len()).unwrap_or(&[])
    }

    /// Whether the checksum is absent (0) or correct for this IPv4 source/destination.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum_ok(self.datagram(), src, dst)
    }
}

/// Whether the checksum of `datagram` (header and payload, exactly as long as its length
/// field says) is absent (0) or correct for this IPv4 source/destination.
#[inline]
pub fn checksum_ok(datagram: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    if field::u16_at(datagram, off::CHECKSUM) == 0 {
        return true;
    }
    let pseudo = checksum::ipv4_pseudo_header(src, dst, protocol::UDP, datagram.len() as u16);
    checksum::add(pseudo, checksum::sum(datagram)) == 0xffff
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, p: u16) {
        field::set_u16(self.buffer.as_mut(), off::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        field::set_u16(self.buffer.as_mut(), off::DST_PORT, p);
    }

    pub fn set_len(&mut self, len: u16) {
        field::set_u16(self.buffer.as_mut(), off::LENGTH, len);
    }

    pub fn set_checksum(&mut self, c: u16) {
        field::set_u16(self.buffer.as_mut(), off::CHECKSUM, c);
    }

    /// Computes and stores the checksum over the pseudo-header, header and payload
    /// (as delimited by the length field).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo = checksum::ipv4_pseudo_header(src, dst, protocol::UDP, self.len() as u16);
        let c = checksum::finish(checksum::add(pseudo, checksum::sum(self.datagram())));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..len)
            .unwrap_or(&mut [])
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// The largest payload that fits the 16-bit length field.
    pub const MAX_PAYLOAD: usize = u16::MAX as usize - HEADER_LEN;

    /// Writes the header for a payload of `payload_len` bytes that already sits after
    /// it in the buffer, and fills the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<(), WireError> {
        if payload_len > Self::MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge);
        }
        if p.buffer.as_ref().len() < HEADER_LEN + payload_len {
            return Err(WireError::BufferTooSmall);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + payload_len) as u16);
        p.fill_checksum(src, dst);
        Ok(())
    }

    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> UdpRepr {
        UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 31);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 30);

    /// A datagram from 192.168.0.31:20 to 192.168.0.30:10 carrying "Hi", with its
    /// checksum worked out by hand: pseudo-header c0a8+001f+c0a8+001e+0011+000a =
    /// 0x181a8, header 0014+000a+000a, data 4869: 0x1ca39, folds to 0xca3a, so the
    /// checksum is !0xca3a = 0x35c5.
    const DATAGRAM: [u8; 10] = [0x00, 0x14, 0x00, 0x0a, 0x00, 0x0a, 0x35, 0xc5, b'H', b'i'];

    #[test]
    fn verifies_a_hand_computed_checksum() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 20);
        assert_eq!(p.dst_port(), 10);
        assert_eq!(p.payload(), b"Hi");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(192, 168, 0, 32)));
    }

    #[test]
    fn emit_reproduces_it() {
        let mut b = [0u8; 10];
        b[8..].copy_from_slice(b"Hi");
        let mut p = UdpPacket::new_for_emit(&mut b[..]).unwrap();
        UdpRepr {
            src_port: 20,
            dst_port: 10,
        }
        .emit(&mut p, 2, SRC, DST)
        .unwrap();
        assert_eq!(b, DATAGRAM);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = DATAGRAM;
        b[6] = 0;
        b[7] = 0;
        assert!(UdpPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        b[9] ^= 0xff; // corrupt the data: still "no checksum"
        assert!(UdpPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn corrupted_data_fails_verification() {
        let mut b = DATAGRAM;
        b[8] ^= 0x01;
        assert!(!UdpPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Search payloads for one whose checksum computes to 0 and check the encoding.
        let mut found = false;
        for x in 0..=u16::MAX {
            let mut b = [0u8; 10];
            b[8..].copy_from_slice(&x.to_be_bytes());
            let mut p = UdpPacket::new_for_emit(&mut b[..]).unwrap();
            UdpRepr {
                src_port: 1,
                dst_port: 2,
            }
            .emit(&mut p, 2, SRC, DST)
            .unwrap();
            assert_ne!(p.checksum(), 0);
            assert!(p.verify_checksum(SRC, DST));
            if p.checksum() == 0xffff {
                found = true;
            }
        }
        assert!(found);
    }

    #[test]
    fn rejects_malformed() {
        for len in 0..8 {
            assert_eq!(
                UdpPacket::new_checked(&DATAGRAM[..len]).err(),
                Some(WireError::UdpTooShort)
            );
        }
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(WireError::BadUdpLength)
        );
        b[5] = 11;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(WireError::BadUdpLength)
        );
        // A length shorter than the IP payload is fine; the payload stops there.
        b[5] = 9;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap().payload(), b"H");
    }
}
