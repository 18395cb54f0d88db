//! Whole Ethernet + IPv4 + UDP frames: the one-call builder and parser the engine uses
//! on every packet.
//!
//! [`build_udp_ipv4`] writes the 42 bytes of headers (with both checksums) in front
//! of a payload that is already at [`PAYLOAD_OFFSET`]; [`parse_udp_ipv4`] checks every
//! layer and returns the header fields and a borrowed payload slice, or the
//! [`WireError`] naming why the frame must be dropped. [`UdpIpv4Template`] is the
//! per-packet fast path of the builder: the 42 header bytes and the partial checksums of
//! everything constant for one peer are prepared once, so a frame costs a 42-byte copy,
//! the payload's sum and a few additions (the IPv4 header checksum is derived
//! incrementally from the template's). This module must not allocate or panic on any
//! input.

use std::net::Ipv4Addr;

use super::checksum;
use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use super::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use super::udp::{self, UdpPacket, UdpRepr};
use super::{MacAddr, WireError};

/// Where the UDP payload starts in a frame with an option-less IPv4 header.
pub const PAYLOAD_OFFSET: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;

/// Largest UDP payload of one (unfragmented) IPv4 datagram.
pub const MAX_PAYLOAD: usize = u16::MAX as usize - ipv4::MIN_HEADER_LEN - udp::HEADER_LEN;

/// What [`build_udp_ipv4`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpIpv4Header {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub ip_id: u16,
}

/// Writes Ethernet + IPv4 (20 bytes, DF) + UDP headers with checksums into
/// `buf[..PAYLOAD_OFFSET]`, for the `payload_len` bytes already at
/// `buf[PAYLOAD_OFFSET..]`. Returns the frame length.
pub fn build_udp_ipv4(
    buf: &mut [u8],
    hdr: &UdpIpv4Header,
    payload_len: usize,
) -> Result<usize, WireError> {
    if payload_len > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLarge);
    }
    let frame_len = PAYLOAD_OFFSET + payload_len;
    let buf = buf.get_mut(..frame_len).ok_or(WireError::BufferTooSmall)?;

    let mut eth = EthernetFrame::new_for_emit(&mut *buf)?;
    EthernetRepr {
        dst: hdr.dst_mac,
        src: hdr.src_mac,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut eth);

    let ip_buf = eth.payload_mut();
    let (ip_hdr, udp_buf) = ip_buf.split_at_mut(ipv4::MIN_HEADER_LEN.min(ip_buf.len()));
    let mut udp_pkt = UdpPacket::new_for_emit(udp_buf)?;
    UdpRepr {
        src_port: hdr.src_port,
        dst_port: hdr.dst_port,
    }
    .emit(&mut udp_pkt, payload_len, hdr.src_ip, hdr.dst_ip)?;

    let mut ip = Ipv4Packet::new_for_emit(ip_hdr)?;
    Ipv4Repr {
        src: hdr.src_ip,
        dst: hdr.dst_ip,
        protocol: protocol::UDP,
        ttl: hdr.ttl,
        ident: hdr.ip_id,
        payload_len: udp::HEADER_LEN + payload_len,
    }
    .emit(&mut ip)?;
    Ok(frame_len)
}

/// How built frames get their UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpChecksum {
    /// Computed in software over the pseudo-header, header and payload.
    #[default]
    Full,
    /// Sent as zero, "no checksum" (allowed for UDP over IPv4, RFC 768); the Ethernet
    /// FCS still covers the frame on the link.
    Zero,
    /// Left to the NIC (TX checksum offload): the field holds the pseudo-header sum,
    /// as DPDK's `RTE_MBUF_F_TX_UDP_CKSUM` expects, and the device completes it.
    Offload,
}

const IP_TOTAL_LEN: usize = ethernet::HEADER_LEN + 2;
const IP_IDENT: usize = ethernet::HEADER_LEN + 4;
const IP_CHECKSUM: usize = ethernet::HEADER_LEN + 10;
const UDP_AT: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;

/// The headers of every frame to one peer, prepared once (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpIpv4Template {
    header: [u8; PAYLOAD_OFFSET],
    /// Folded sum of the IPv4 header without total length, ident and checksum.
    ip_sum: u16,
    /// Folded sum of the pseudo-header's addresses and protocol.
    pseudo_sum: u16,
    /// Folded sum of the UDP ports.
    ports_sum: u16,
}

impl UdpIpv4Template {
    /// The template of `hdr` (its `ip_id` is ignored: [`UdpIpv4Template::write`] takes it).
    pub fn new(hdr: &UdpIpv4Header) -> UdpIpv4Template {
        let mut header = [0u8; PAYLOAD_OFFSET];
        // Cannot fail: the buffer holds exactly the headers of an empty payload.
        let _ = build_udp_ipv4(&mut header, &UdpIpv4Header { ip_id: 0, ..*hdr }, 0);
        let mut ip = [0u8; ipv4::MIN_HEADER_LEN];
        ip.copy_from_slice(&header[ethernet::HEADER_LEN..UDP_AT]);
        ip[2..4].fill(0); // total length
        ip[10..12].fill(0); // checksum
        UdpIpv4Template {
            header,
            ip_sum: checksum::sum(&ip),
            pseudo_sum: checksum::ipv4_pseudo_header(hdr.src_ip, hdr.dst_ip, protocol::UDP, 0),
            ports_sum: checksum::add(hdr.src_port, hdr.dst_port),
        }
    }

    /// The header fields this template writes (with `ip_id` 0).
    pub fn header(&self) -> &[u8; PAYLOAD_OFFSET] {
        &self.header
    }

    /// Writes the headers in front of the `payload_len` bytes already at
    /// `buf[PAYLOAD_OFFSET..]`, with IPv4 ident `ip_id` and the UDP checksum as `udp`
    /// says. Returns the frame length. Equal, byte for byte, to [`build_udp_ipv4`] with
    /// [`UdpChecksum::Full`].
    #[inline]
    pub fn write(
        &self,
        buf: &mut [u8],
        ip_id: u16,
        payload_len: usize,
        udp: UdpChecksum,
    ) -> Result<usize, WireError> {
        if payload_len > MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge);
        }
        let frame_len = PAYLOAD_OFFSET + payload_len;
        let frame = buf.get_mut(..frame_len).ok_or(WireError::BufferTooSmall)?;
        let (hdr, payload) = frame.split_at_mut(PAYLOAD_OFFSET);
        let hdr: &mut [u8; PAYLOAD_OFFSET] =
            hdr.try_into().map_err(|_| WireError::BufferTooSmall)?;
        *hdr = self.header;
        // Both fit in u16: payload_len <= MAX_PAYLOAD.
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        let ip_len = (ipv4::MIN_HEADER_LEN + usize::from(udp_len)) as u16;
        let ip_sum = checksum::add(checksum::add(self.ip_sum, ip_len), ip_id);
        hdr[IP_TOTAL_LEN..IP_TOTAL_LEN + 2].copy_from_slice(&ip_len.to_be_bytes());
        hdr[IP_IDENT..IP_IDENT + 2].copy_from_slice(&ip_id.to_be_bytes());
        hdr[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&checksum::finish(ip_sum).to_be_bytes());
        hdr[UDP_AT + 4..UDP_AT + 6].copy_from_slice(&udp_len.to_be_bytes());
        let pseudo = checksum::add(self.pseudo_sum, udp_len);
        let c = match udp {
            UdpChecksum::Zero => 0,
            UdpChecksum::Offload => pseudo,
            UdpChecksum::Full => {
                // The UDP header: ports, length (and a zero checksum). The payload starts
                // at an even offset of the datagram, so its sum adds in directly.
                let header = checksum::add(self.ports_sum, udp_len);
                let all = checksum::add(checksum::add(pseudo, header), checksum::sum(payload));
                let c = checksum::finish(all);
                if c == 0 {
                    0xffff
                } else {
                    c
                }
            }
        };
        hdr[UDP_AT + 6..UDP_AT + 8].copy_from_slice(&c.to_be_bytes());
        Ok(frame_len)
    }
}

/// A parsed, fully checked Ethernet/IPv4/UDP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpIpv4<'a> {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub ip_id: u16,
    /// Offset of the payload in the frame (42 unless the IP header has options).
    pub payload_offset: usize,
    pub payload: &'a [u8],
}

impl UdpIpv4<'_> {
    /// The header fields, e.g. to build a reply by swapping them.
    pub fn header(&self) -> UdpIpv4Header {
        UdpIpv4Header {
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            ttl: self.ttl,
            ip_id: self.ip_id,
        }
    }
}

/// Checks, in order: Ethernet length and tag, ethertype IPv4, IPv4 structure (version,
/// IHL, total length), IPv4 header checksum, fragment, protocol UDP, UDP length, UDP
/// checksum. The first failure is returned.
// Inlined into the engine's receive path: returned by value, the struct's fields were
// reloaded with other widths than they were stored with (a store-forwarding stall).
#[inline(always)]
pub fn parse_udp_ipv4(frame: &[u8]) -> Result<UdpIpv4<'_>, WireError> {
    parse_udp_ipv4_verifying(frame, true, true)
}

/// As [`parse_udp_ipv4`], verifying the IPv4 header checksum only if `verify_ip` and the
/// UDP checksum only if `verify_udp` (skipped when the receiving device already vouched
/// for them); every structural check is made either way.
#[inline(always)]
pub fn parse_udp_ipv4_verifying(
    frame: &[u8],
    verify_ip: bool,
    verify_udp: bool,
) -> Result<UdpIpv4<'_>, WireError> {
    match parse_common(frame, verify_ip, verify_udp) {
        Some(r) => r,
        None => parse_general(frame, verify_ip, verify_udp),
    }
}

/// The frame nearly every packet is: an option-less, unfragmented IPv4 header carrying
/// UDP, with consistent lengths. Checked at constant offsets of its first 42 bytes (one
/// bounds check), so it costs a few loads and compares instead of a bounds-checked read
/// per field. `None`: not that shape, and [`parse_general`] decides (and names the
/// error); for the shapes it takes, the result is the general parser's (the fuzz check
/// compares the two).
#[inline(always)]
fn parse_common(
    frame: &[u8],
    verify_ip: bool,
    verify_udp: bool,
) -> Option<Result<UdpIpv4<'_>, WireError>> {
    const IP: usize = ethernet::HEADER_LEN;
    const UDP: usize = IP + ipv4::MIN_HEADER_LEN;
    let h: &[u8; PAYLOAD_OFFSET] = frame.first_chunk()?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let ip4 = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    // Version 4, IHL 5; no More-Fragments flag and offset 0.
    if be16(12) != EtherType::IPV4.0
        || h[IP] != 0x45
        || h[IP + 9] != protocol::UDP
        || be16(IP + 6) & 0x3fff != 0
    {
        return None;
    }
    let total = usize::from(be16(IP + 2));
    let udp_len = usize::from(be16(UDP + 4));
    if total < ipv4::MIN_HEADER_LEN + udp::HEADER_LEN
        || total > frame.len() - IP
        || udp_len < udp::HEADER_LEN
        || udp_len > total - ipv4::MIN_HEADER_LEN
    {
        return None;
    }
    let ip_header: &[u8; ipv4::MIN_HEADER_LEN] = h[IP..UDP].try_into().ok()?;
    if verify_ip && checksum::sum_ipv4_header(ip_header) != 0xffff {
        return Some(Err(WireError::BadIpChecksum));
    }
    let (src_ip, dst_ip) = (ip4(IP + 12), ip4(IP + 16));
    // In bounds: UDP + udp_len <= IP + total <= frame.len().
    let datagram = frame.get(UDP..UDP + udp_len)?;
    if verify_udp && !udp::checksum_ok(datagram, src_ip, dst_ip) {
        return Some(Err(WireError::BadUdpChecksum));
    }
    let mac = |at: usize| MacAddr([h[at], h[at + 1], h[at + 2], h[at + 3], h[at + 4], h[at + 5]]);
    Some(Ok(UdpIpv4 {
        src_mac: mac(6),
        dst_mac: mac(0),
        src_ip,
        dst_ip,
        src_port: be16(UDP),
        dst_port: be16(UDP + 2),
        ttl: h[IP + 8],
        ip_id: be16(IP + 4),
        payload_offset: PAYLOAD_OFFSET,
        payload: datagram.get(udp::HEADER_LEN..)?,
    }))
}

/// Any frame, every layer checked field by field (IPv4 options included).
#[inline(always)]
fn parse_general(
    frame: &[u8],
    verify_ip: bool,
    verify_udp: bool,
) -> Result<UdpIpv4<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::IPV4 {
        return Err(WireError::NotIpv4);
    }
    let ip_bytes = frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
    let ip = Ipv4Packet::new_checked(ip_bytes)?;
    if verify_ip && !ip.verify_checksum() {
        return Err(WireError::BadIpChecksum);
    }
    if ip.is_fragment() {
        return Err(WireError::Fragment);
    }
    if ip.protocol() != protocol::UDP {
        return Err(WireError::NotUdp);
    }
    let header_len = ip.header_len();
    let ip_payload = ip_bytes.get(header_len..ip.total_len()).unwrap_or(&[]);
    let udp = UdpPacket::new_checked(ip_payload)?;
    let (src_ip, dst_ip) = (ip.src_addr(), ip.dst_addr());
    if verify_udp && !udp.verify_checksum(src_ip, dst_ip) {
        return Err(WireError::BadUdpChecksum);
    }
    let payload_offset = ethernet::HEADER_LEN + header_len + udp::HEADER_LEN;
    let payload = frame
        .get(payload_offset..payload_offset + udp.len() - udp::HEADER_LEN)
        .unwrap_or(&[]);
    Ok(UdpIpv4 {
        src_mac: eth.src(),
        dst_mac: eth.dst(),
        src_ip,
        dst_ip,
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        ttl: ip.ttl(),
        ip_id: ip.ident(),
        payload_offset,
        payload,
    })
}

/// The check run by the `wire_l2l4` fuzz target and by the seeded-random test: every
/// parser must return (never panic) on `data`, and whatever parses must be
/// self-consistent and rebuild to an equal frame.
#[doc(hidden)]
pub fn fuzz_check_l2l4(data: &[u8]) {
    use super::arp::{self, ArpPacket, ArpRepr};

    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (f.dst(), f.src(), f.ethertype(), f.payload().len());
    }
    if let Ok(p) = ArpPacket::new_checked(data) {
        let repr = ArpRepr::parse(&p);
        let mut out = [0u8; arp::PACKET_LEN];
        if let Ok(mut w) = ArpPacket::new_for_emit(&mut out[..]) {
            repr.emit(&mut w);
        }
        let again = ArpPacket::new_checked(&out[..]).map(|p| ArpRepr::parse(&p));
        assert_eq!(again, Ok(repr), "ARP repr must round-trip");
    }
    let _ = arp::parse_arp_frame(data);
    if let Ok(ip) = Ipv4Packet::new_checked(data) {
        assert!(ip.header_len() >= ipv4::MIN_HEADER_LEN && ip.total_len() <= data.len());
        let _ = (
            ip.verify_checksum(),
            ip.is_fragment(),
            ip.options(),
            ip.payload(),
        );
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        assert!(u.payload().len() + udp::HEADER_LEN == u.len());
        let _ = u.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    }
    // The fast path for the common shape answers as the general parser does, whatever
    // is verified.
    for (ip, udp) in [(true, true), (true, false), (false, true), (false, false)] {
        assert_eq!(
            parse_udp_ipv4_verifying(data, ip, udp),
            parse_general(data, ip, udp),
            "the common-frame parse differs from the general one"
        );
    }
    // Skipping the checksums (the device vouched) never panics either, and accepts
    // everything the full check accepts, with the same fields.
    let lax = parse_udp_ipv4_verifying(data, false, false);
    if let Ok(parsed) = parse_udp_ipv4(data) {
        assert_eq!(
            lax,
            Ok(parsed),
            "skipping checksums changed a good frame's parse"
        );
        assert!(parsed.payload_offset + parsed.payload.len() <= data.len());
        // Rebuilding an option-less frame from the parsed fields must parse back to the
        // same fields (the checksums are recomputed).
        if parsed.payload_offset == PAYLOAD_OFFSET {
            let mut rebuilt = [0u8; 2048];
            if let Some(dst) =
                rebuilt.get_mut(PAYLOAD_OFFSET..PAYLOAD_OFFSET + parsed.payload.len())
            {
                dst.copy_from_slice(parsed.payload);
                let len = build_udp_ipv4(&mut rebuilt, &parsed.header(), parsed.payload.len());
                assert_eq!(len, Ok(PAYLOAD_OFFSET + parsed.payload.len()));
                let again = parse_udp_ipv4(&rebuilt[..PAYLOAD_OFFSET + parsed.payload.len()]);
                assert_eq!(again, Ok(parsed), "UDP/IPv4 frame must round-trip");
                // The per-peer template writes the very same bytes.
                let mut templated = rebuilt;
                let n = PAYLOAD_OFFSET + parsed.payload.len();
                let t = UdpIpv4Template::new(&parsed.header());
                let len = t.write(
                    &mut templated,
                    parsed.ip_id,
                    parsed.payload.len(),
                    UdpChecksum::Full,
                );
                assert_eq!(len, Ok(n));
                assert_eq!(
                    templated[..n],
                    rebuilt[..n],
                    "template and builder must agree"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn hdr() -> UdpIpv4Header {
        UdpIpv4Header {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(10, 77, 0, 1),
            dst_ip: Ipv4Addr::new(10, 77, 0, 2),
            src_port: 4000,
            dst_port: 5000,
            ttl: 64,
            ip_id: 7,
        }
    }

    fn good_frame(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        b[PAYLOAD_OFFSET..].copy_from_slice(payload);
        let n = build_udp_ipv4(&mut b, &hdr(), payload.len()).unwrap();
        assert_eq!(n, b.len());
        b
    }

    /// Recomputes the IPv4 header checksum of a frame after a test edited it.
    fn fix_ip_checksum(b: &mut [u8]) {
        let mut ip = Ipv4Packet::new_for_emit(&mut b[14..]).unwrap();
        ip.fill_checksum();
    }

    #[test]
    fn round_trip() {
        let b = good_frame(b"hello flatrpc");
        let p = parse_udp_ipv4(&b).unwrap();
        assert_eq!(p.header(), hdr());
        assert_eq!(p.payload, b"hello flatrpc");
        assert_eq!(p.payload_offset, 42);
    }

    #[test]
    fn a_hand_built_frame_parses() {
        // 10.77.0.1:4000 -> 10.77.0.2:5000, id 7, TTL 64, DF, payload "ab";
        // IP checksum and UDP checksum worked out independently of this crate.
        let ip_words: [u16; 10] = [
            0x4500, 0x001e, 0x0007, 0x4000, 0x4011, 0, 0x0a4d, 0x0001, 0x0a4d, 0x0002,
        ];
        let mut s: u32 = ip_words.iter().map(|&w| u32::from(w)).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        let ip_csum = !(s as u16);
        let udp_words: [u16; 10] = [
            0x0a4d, 0x0001, 0x0a4d, 0x0002, 0x0011, 0x000a, // pseudo-header
            0x0fa0, 0x1388, 0x000a, 0x6162, // header (checksum 0) + data
        ];
        let mut s: u32 = udp_words.iter().map(|&w| u32::from(w)).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        let udp_csum = !(s as u16);
        let mut b = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        for w in ip_words {
            b.extend(w.to_be_bytes());
        }
        b[24..26].copy_from_slice(&ip_csum.to_be_bytes());
        b.extend([0x0f, 0xa0, 0x13, 0x88, 0x00, 0x0a]);
        b.extend(udp_csum.to_be_bytes());
        b.extend(b"ab");
        assert_eq!(b, good_frame(b"ab"));
        assert_eq!(parse_udp_ipv4(&b).unwrap().payload, b"ab");
    }

    #[test]
    fn every_malformed_case_is_named() {
        let good = good_frame(b"0123456789");
        let case = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            parse_udp_ipv4(&b).err()
        };
        assert_eq!(case(&|b| b.truncate(13)), Some(WireError::EthernetTooShort));
        assert_eq!(case(&|b| b[12] = 0x81), Some(WireError::VlanTagged));
        assert_eq!(case(&|b| b[13] = 0x06), Some(WireError::NotIpv4));
        assert_eq!(
            case(&|b| b.truncate(14 + 19)),
            Some(WireError::Ipv4TooShort)
        );
        assert_eq!(case(&|b| b[14] = 0x65), Some(WireError::BadIpVersion));
        assert_eq!(case(&|b| b[14] = 0x44), Some(WireError::BadIhl));
        assert_eq!(
            case(&|b| b.truncate(14 + 30)),
            Some(WireError::BadTotalLength)
        );
        assert_eq!(
            case(&|b| {
                b[17] = 19;
                fix_ip_checksum(b)
            }),
            Some(WireError::BadTotalLength)
        );
        assert_eq!(
            case(&|b| {
                b[20] = 0x20; // MF
                fix_ip_checksum(b)
            }),
            Some(WireError::Fragment)
        );
        assert_eq!(
            case(&|b| {
                b[21] = 0x01; // offset 8
                b[20] = 0x00;
                fix_ip_checksum(b)
            }),
            Some(WireError::Fragment)
        );
        assert_eq!(
            case(&|b| {
                b[23] = protocol::TCP;
                fix_ip_checksum(b)
            }),
            Some(WireError::NotUdp)
        );
        assert_eq!(case(&|b| b[22] = 1), Some(WireError::BadIpChecksum));
        assert_eq!(
            case(&|b| {
                // IP total length 20 + 7: UDP header cut short.
                b[17] = 27;
                fix_ip_checksum(b)
            }),
            Some(WireError::UdpTooShort)
        );
        assert_eq!(case(&|b| b[39] = 7), Some(WireError::BadUdpLength));
        assert_eq!(case(&|b| b[39] = 19), Some(WireError::BadUdpLength));
        assert_eq!(case(&|b| b[45] ^= 0x10), Some(WireError::BadUdpChecksum));
        // Ethernet padding after the IP packet is fine.
        assert!(case(&|b| b.extend([0; 8])).is_none());
        // No UDP checksum is fine.
        assert!(case(&|b| {
            b[40] = 0;
            b[41] = 0;
            b[45] ^= 0x10;
        })
        .is_none());
    }

    #[test]
    fn ip_options_shift_the_payload() {
        let good = good_frame(b"xyz");
        let mut b = good[..34].to_vec();
        b.extend([1, 1, 1, 0]); // NOP NOP NOP EOL
        b.extend(&good[34..]);
        b[14] = 0x46;
        let total = u16::from_be_bytes([b[16], b[17]]) + 4;
        b[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip_checksum(&mut b);
        let p = parse_udp_ipv4(&b).unwrap();
        assert_eq!(p.payload_offset, 46);
        assert_eq!(p.payload, b"xyz");
    }

    #[test]
    fn template_write_errors() {
        let t = UdpIpv4Template::new(&hdr());
        let mut b = [0u8; 50];
        for mode in [UdpChecksum::Full, UdpChecksum::Zero, UdpChecksum::Offload] {
            assert_eq!(
                t.write(&mut b[..41], 1, 0, mode),
                Err(WireError::BufferTooSmall)
            );
            assert_eq!(t.write(&mut b, 1, 9, mode), Err(WireError::BufferTooSmall));
            assert_eq!(t.write(&mut b, 1, 8, mode), Ok(50));
            assert_eq!(
                t.write(&mut b, 1, MAX_PAYLOAD + 1, mode),
                Err(WireError::PayloadTooLarge)
            );
        }
        let mut big = vec![0u8; PAYLOAD_OFFSET + MAX_PAYLOAD];
        assert!(t.write(&mut big, 3, MAX_PAYLOAD, UdpChecksum::Full).is_ok());
        assert_eq!(parse_udp_ipv4(&big).map(|p| p.ip_id), Ok(3));
    }

    #[test]
    fn build_errors() {
        let mut small = [0u8; 41];
        assert_eq!(
            build_udp_ipv4(&mut small, &hdr(), 0),
            Err(WireError::BufferTooSmall)
        );
        let mut b = [0u8; 50];
        assert_eq!(
            build_udp_ipv4(&mut b, &hdr(), 9),
            Err(WireError::BufferTooSmall)
        );
        assert_eq!(build_udp_ipv4(&mut b, &hdr(), 8), Ok(50));
        assert_eq!(
            build_udp_ipv4(&mut b, &hdr(), MAX_PAYLOAD + 1),
            Err(WireError::PayloadTooLarge)
        );
        let mut big = vec![0u8; PAYLOAD_OFFSET + MAX_PAYLOAD];
        assert!(build_udp_ipv4(&mut big, &hdr(), MAX_PAYLOAD).is_ok());
        assert!(parse_udp_ipv4(&big).is_ok());
    }

    #[test]
    fn seeded_random_inputs_never_panic() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x6b70_6f72_7473);
        let good = good_frame(&[0xab; 64]);
        for i in 0..5000 {
            let len = rng.gen_range(0..200);
            let mut b: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|_| rng.gen()).collect()
            } else {
                // Mutate a valid frame so the deeper layers get exercised too.
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            fuzz_check_l2l4(&b);
            if b.len() > 14 {
                fuzz_check_l2l4(&b[14..]);
            }
            b.clear();
        }
    }

    /// Any UDP/IPv4 header.
    fn any_header() -> impl Strategy<Value = UdpIpv4Header> {
        (
            any::<([u8; 6], [u8; 6])>(),
            any::<(u32, u32)>(),
            any::<(u16, u16)>(),
            any::<(u8, u16)>(),
        )
            .prop_map(
                |((sm, dm), (si, di), (sp, dp), (ttl, ip_id))| UdpIpv4Header {
                    src_mac: MacAddr(sm),
                    dst_mac: MacAddr(dm),
                    src_ip: Ipv4Addr::from(si),
                    dst_ip: Ipv4Addr::from(di),
                    src_port: sp,
                    dst_port: dp,
                    ttl,
                    ip_id,
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_check_l2l4(&data);
        }

        #[test]
        fn build_then_parse_round_trips(
            h in any_header(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let mut b = vec![0u8; PAYLOAD_OFFSET + payload.len()];
            b[PAYLOAD_OFFSET..].copy_from_slice(&payload);
            let n = build_udp_ipv4(&mut b, &h, payload.len()).unwrap();
            prop_assert_eq!(n, b.len());
            let p = parse_udp_ipv4(&b).unwrap();
            prop_assert_eq!(p.header(), h);
            prop_assert_eq!(p.payload, &payload[..]);
        }

        #[test]
        fn the_template_writes_what_the_builder_writes(
            h in any_header(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let mut want = vec![0u8; PAYLOAD_OFFSET + payload.len()];
            want[PAYLOAD_OFFSET..].copy_from_slice(&payload);
            let mut got = want.clone();
            build_udp_ipv4(&mut want, &h, payload.len()).unwrap();
            let t = UdpIpv4Template::new(&h);
            let ip_id = h.ip_id;
            prop_assert_eq!(t.write(&mut got, ip_id, payload.len(), UdpChecksum::Full), Ok(want.len()));
            prop_assert_eq!(&got, &want);

            // Zero: the same frame with no UDP checksum; it parses ("none").
            t.write(&mut got, ip_id, payload.len(), UdpChecksum::Zero).unwrap();
            prop_assert_eq!(&got[40..42], &[0u8, 0][..]);
            prop_assert_eq!(&got[..40], &want[..40]);
            prop_assert_eq!(parse_udp_ipv4(&got).map(|p| p.header()), Ok(h));

            // Offload: the pseudo-header sum, which the device completes to the full one.
            t.write(&mut got, ip_id, payload.len(), UdpChecksum::Offload).unwrap();
            let partial = u16::from_be_bytes([got[40], got[41]]);
            let udp_len = (udp::HEADER_LEN + payload.len()) as u16;
            prop_assert_eq!(partial, checksum::ipv4_pseudo_header(h.src_ip, h.dst_ip, protocol::UDP, udp_len));
            let completed = checksum::finish(checksum::sum(&got[34..]));
            let completed = if completed == 0 { 0xffff } else { completed };
            got[40..42].copy_from_slice(&completed.to_be_bytes());
            prop_assert_eq!(&got, &want);
        }

        #[test]
        fn any_single_bit_flip_in_headers_is_caught_or_harmless(bit in 0usize..(PAYLOAD_OFFSET * 8)) {
            let mut b = good_frame(b"payload!");
            b[bit / 8] ^= 1 << (bit % 8);
            // MACs (first 12 bytes) are not covered by any checksum; everything else is.
            match parse_udp_ipv4(&b) {
                Ok(p) => prop_assert!(bit < 96, "flip at bit {} went unnoticed: {:?}", bit, p),
                Err(_) => prop_assert!(bit >= 96),
            }
        }
    }
}
