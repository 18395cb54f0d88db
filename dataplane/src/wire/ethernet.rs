//! Ethernet II frames (no FCS): a checked view and a header `Repr`.
//!
//! VLAN-tagged frames (TPID 0x8100, 0x88a8, 0x9100) are refused by `new_checked`
//! with [`WireError::VlanTagged`]: the dataplane runs on untagged access ports, and a
//! tagged frame parsed as untagged would put the tag where the IP header belongs.
//! This module owns the 14-byte header; it must not look into the payload.

use super::error::field;
use super::{MacAddr, WireError};

/// Length of the Ethernet header (dst, src, ethertype).
pub const HEADER_LEN: usize = 14;

/// The ethertype field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const QINQ: EtherType = EtherType(0x88a8);
    pub const QINQ_OLD: EtherType = EtherType(0x9100);

    /// Whether this ethertype is a VLAN tag protocol identifier.
    pub fn is_vlan_tag(self) -> bool {
        self == Self::VLAN || self == Self::QINQ || self == Self::QINQ_OLD
    }
}

mod off {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
}

/// A view of an Ethernet frame in `buffer`.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Validates that `buffer` holds an untagged Ethernet header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::EthernetTooShort);
        }
        let frame = EthernetFrame { buffer };
        if frame.ethertype().is_vlan_tag() {
            return Err(WireError::VlanTagged);
        }
        Ok(frame)
    }

    /// Wraps a buffer that will be written (e.g. by [`EthernetRepr::emit`]); only the
    /// length is checked, the contents may be anything.
    pub fn new_for_emit(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst(&self) -> MacAddr {
        MacAddr(field::array_at(self.buffer.as_ref(), off::DST))
    }

    pub fn src(&self) -> MacAddr {
        MacAddr(field::array_at(self.buffer.as_ref(), off::SRC))
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType(field::u16_at(self.buffer.as_ref(), off::ETHERTYPE))
    }

    /// The bytes after the header (may include link padding after the L3 packet).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: MacAddr) {
        field::set_bytes(self.buffer.as_mut(), off::DST, &mac.0);
    }

    pub fn set_src(&mut self, mac: MacAddr) {
        field::set_bytes(self.buffer.as_mut(), off::SRC, &mac.0);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        field::set_u16(self.buffer.as_mut(), off::ETHERTYPE, t.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// The header fields of an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            dst: frame.dst(),
            src: frame.src(),
            ethertype: frame.ethertype(),
        }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst(self.dst);
        frame.set_src(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(ethertype: u16) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..6].copy_from_slice(&[0xff; 6]);
        b[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        b[12..14].copy_from_slice(&ethertype.to_be_bytes());
        b[14..].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        b
    }

    #[test]
    fn parses_fields() {
        let b = frame_bytes(0x0806);
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn header_only_frame_has_empty_payload() {
        let b = frame_bytes(0x0800);
        let f = EthernetFrame::new_checked(&b[..14]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn rejects_short_frames() {
        let b = frame_bytes(0x0800);
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&b[..len]).err(),
                Some(WireError::EthernetTooShort)
            );
        }
    }

    #[test]
    fn rejects_vlan_tagged_frames() {
        for tpid in [0x8100, 0x88a8, 0x9100] {
            let b = frame_bytes(tpid);
            assert_eq!(
                EthernetFrame::new_checked(&b[..]).err(),
                Some(WireError::VlanTagged)
            );
        }
    }

    #[test]
    fn emit_round_trips() {
        let repr = EthernetRepr {
            dst: MacAddr([2, 1, 2, 3, 4, 5]),
            src: MacAddr([2, 9, 8, 7, 6, 5]),
            ethertype: EtherType::IPV6,
        };
        let mut buf = [0u8; 14];
        let mut f = EthernetFrame::new_for_emit(&mut buf[..]).unwrap();
        repr.emit(&mut f);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), repr);
        assert_eq!(
            EthernetFrame::new_for_emit(&mut [0u8; 13][..]).err(),
            Some(WireError::BufferTooSmall)
        );
    }
}
