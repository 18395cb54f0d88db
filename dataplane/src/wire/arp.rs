//! ARP for Ethernet/IPv4 (RFC 826): a checked view, a `Repr`, and request/reply
//! builders. Anything other than hardware type 1 / protocol 0x0800 / lengths 6 and 4
//! is refused. This module owns the 28-byte ARP packet (the Ethernet payload); it must
//! not keep a neighbour table.

use std::net::Ipv4Addr;

use super::error::field;
use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use super::{MacAddr, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

mod off {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Validates length, hardware/protocol types and address lengths, and operation.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::ArpTooShort);
        }
        if field::u16_at(b, off::HTYPE) != HTYPE_ETHERNET
            || field::u16_at(b, off::PTYPE) != PTYPE_IPV4
            || field::u8_at(b, off::HLEN) != 6
            || field::u8_at(b, off::PLEN) != 4
        {
            return Err(WireError::ArpUnsupported);
        }
        let p = ArpPacket { buffer };
        if p.raw_operation() != 1 && p.raw_operation() != 2 {
            return Err(WireError::ArpBadOperation);
        }
        Ok(p)
    }

    /// Wraps a buffer to be written by [`ArpRepr::emit`]; checks the length only.
    pub fn new_for_emit(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::BufferTooSmall);
        }
        Ok(ArpPacket { buffer })
    }

    fn raw_operation(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), off::OPER)
    }

    pub fn operation(&self) -> ArpOperation {
        if self.raw_operation() == 2 {
            ArpOperation::Reply
        } else {
            ArpOperation::Request
        }
    }

    pub fn sender_mac(&self) -> MacAddr {
        MacAddr(field::array_at(self.buffer.as_ref(), off::SHA))
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array_at::<4>(self.buffer.as_ref(), off::SPA))
    }

    pub fn target_mac(&self) -> MacAddr {
        MacAddr(field::array_at(self.buffer.as_ref(), off::THA))
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array_at::<4>(self.buffer.as_ref(), off::TPA))
    }
}

/// The fields of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    /// A request from `my_mac`/`my_ip` asking who has `target_ip`.
    pub fn request(my_mac: MacAddr, my_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: my_mac,
            sender_ip: my_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    /// The reply to this request when `my_mac` owns the requested address, or `None`
    /// when this is not a request.
    pub fn reply(&self, my_mac: MacAddr) -> Option<ArpRepr> {
        (self.operation == ArpOperation::Request).then_some(ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: my_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        })
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        let b = p.buffer.as_mut();
        field::set_u16(b, off::HTYPE, HTYPE_ETHERNET);
        field::set_u16(b, off::PTYPE, PTYPE_IPV4);
        field::set_u8(b, off::HLEN, 6);
        field::set_u8(b, off::PLEN, 4);
        field::set_u16(b, off::OPER, self.operation.code());
        field::set_bytes(b, off::SHA, &self.sender_mac.0);
        field::set_bytes(b, off::SPA, &self.sender_ip.octets());
        field::set_bytes(b, off::THA, &self.target_mac.0);
        field::set_bytes(b, off::TPA, &self.target_ip.octets());
    }

    /// Writes a whole Ethernet frame carrying this ARP packet into `buf`: destination
    /// broadcast for requests, the target's MAC for replies. Returns the frame length
    /// (42 bytes; the link pads to the 60-byte minimum where it must).
    pub fn emit_frame(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = ethernet::HEADER_LEN + PACKET_LEN;
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        let dst = match self.operation {
            ArpOperation::Request => MacAddr::BROADCAST,
            ArpOperation::Reply => self.target_mac,
        };
        let mut eth = EthernetFrame::new_for_emit(&mut *buf)?;
        EthernetRepr {
            dst,
            src: self.sender_mac,
            ethertype: EtherType::ARP,
        }
        .emit(&mut eth);
        let mut arp = ArpPacket::new_for_emit(eth.payload_mut())?;
        self.emit(&mut arp);
        Ok(len)
    }
}

/// Parses the ARP packet in an Ethernet frame (`Err(NotIpv4)`-style errors are not
/// used here: a frame that is not ARP gives `ArpUnsupported`).
pub fn parse_arp_frame(frame: &[u8]) -> Result<(EthernetRepr, ArpRepr), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::ARP {
        return Err(WireError::ArpUnsupported);
    }
    let arp = ArpPacket::new_checked(eth.payload())?;
    Ok((EthernetRepr::parse(&eth), ArpRepr::parse(&arp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request captured by hand: who has 10.77.0.2? tell 10.77.0.1.
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 10, 77, 0, 1, //
        0, 0, 0, 0, 0, 0, 10, 77, 0, 2,
    ];

    #[test]
    fn parses_a_hand_built_request() {
        let (eth, arp) = parse_arp_frame(&REQUEST).unwrap();
        assert!(eth.dst.is_broadcast());
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(arp.sender_mac, MacAddr([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]));
        assert_eq!(arp.sender_ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(arp.target_ip, Ipv4Addr::new(10, 77, 0, 2));
    }

    #[test]
    fn builds_the_same_bytes() {
        let req = ArpRepr::request(
            MacAddr([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
            Ipv4Addr::new(10, 77, 0, 1),
            Ipv4Addr::new(10, 77, 0, 2),
        );
        let mut buf = [0x55u8; 64];
        assert_eq!(req.emit_frame(&mut buf), Ok(42));
        assert_eq!(buf[..42], REQUEST);
    }

    #[test]
    fn reply_round_trip() {
        let (_, req) = parse_arp_frame(&REQUEST).unwrap();
        let me = MacAddr([2, 1, 1, 1, 1, 1]);
        let rep = req.reply(me).unwrap();
        let mut buf = [0u8; 42];
        rep.emit_frame(&mut buf).unwrap();
        let (eth, parsed) = parse_arp_frame(&buf).unwrap();
        assert_eq!(parsed, rep);
        assert_eq!(eth.dst, req.sender_mac);
        assert_eq!(eth.src, me);
        assert_eq!(parsed.sender_ip, Ipv4Addr::new(10, 77, 0, 2));
        assert!(parsed.reply(me).is_none());
    }

    #[test]
    fn rejects_malformed() {
        for len in 0..42 {
            let r = parse_arp_frame(&REQUEST[..len]);
            let want = if len < 14 {
                WireError::EthernetTooShort
            } else {
                WireError::ArpTooShort
            };
            assert_eq!(r.err(), Some(want), "len {len}");
        }
        let mut bad = REQUEST;
        bad[15] = 6; // hardware type 6 (IEEE 802)
        assert_eq!(parse_arp_frame(&bad).err(), Some(WireError::ArpUnsupported));
        let mut bad = REQUEST;
        bad[18] = 8; // hardware address length 8
        assert_eq!(parse_arp_frame(&bad).err(), Some(WireError::ArpUnsupported));
        let mut bad = REQUEST;
        bad[21] = 3; // RARP request
        assert_eq!(
            parse_arp_frame(&bad).err(),
            Some(WireError::ArpBadOperation)
        );
        let mut bad = REQUEST;
        bad[13] = 0x00; // ethertype IPv4
        assert_eq!(parse_arp_frame(&bad).err(), Some(WireError::ArpUnsupported));
        assert_eq!(
            req_emit_into(&mut [0u8; 41]),
            Err(WireError::BufferTooSmall)
        );
    }

    fn req_emit_into(buf: &mut [u8]) -> Result<usize, WireError> {
        ArpRepr::request(MacAddr::ZERO, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
            .emit_frame(buf)
    }
}
