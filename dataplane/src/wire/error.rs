//! Why a frame was refused by the Ethernet/ARP/IPv4/UDP views.
//!
//! One flat, `Copy` enum so the engine can count drops by reason in a fixed array
//! (`WireError::ALL`, [`WireError::index`]). This module owns the reasons only; it
//! must not grow payloads (no allocation on the drop path).

/// A reason a frame could not be parsed (or built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    #[error("frame shorter than an Ethernet header")]
    EthernetTooShort,
    #[error("VLAN-tagged frame (802.1Q/802.1ad) not supported")]
    VlanTagged,
    #[error("ethertype is not IPv4")]
    NotIpv4,
    #[error("IPv4 packet shorter than its fixed header")]
    Ipv4TooShort,
    #[error("IP version field is not 4")]
    BadIpVersion,
    #[error("IPv4 header length (IHL) below 5 or past the buffer")]
    BadIhl,
    #[error("IPv4 total length below the header length or past the buffer")]
    BadTotalLength,
    #[error("IPv4 fragment (MF set or non-zero offset)")]
    Fragment,
    #[error("IPv4 protocol is not UDP")]
    NotUdp,
    #[error("IPv4 header checksum mismatch")]
    BadIpChecksum,
    #[error("UDP datagram shorter than its header")]
    UdpTooShort,
    #[error("UDP length field below 8 or past the IP payload")]
    BadUdpLength,
    #[error("UDP checksum mismatch")]
    BadUdpChecksum,
    #[error("ARP packet shorter than an Ethernet/IPv4 ARP packet")]
    ArpTooShort,
    #[error("ARP hardware/protocol type or address lengths are not Ethernet/IPv4")]
    ArpUnsupported,
    #[error("ARP operation is neither request nor reply")]
    ArpBadOperation,
    #[error("buffer too small for the headers and payload")]
    BufferTooSmall,
    #[error("payload too large for one IPv4/UDP datagram")]
    PayloadTooLarge,
}

impl WireError {
    /// Every reason, in [`index`](Self::index) order.
    pub const ALL: [WireError; 18] = [
        WireError::EthernetTooShort,
        WireError::VlanTagged,
        WireError::NotIpv4,
        WireError::Ipv4TooShort,
        WireError::BadIpVersion,
        WireError::BadIhl,
        WireError::BadTotalLength,
        WireError::Fragment,
        WireError::NotUdp,
        WireError::BadIpChecksum,
        WireError::UdpTooShort,
        WireError::BadUdpLength,
        WireError::BadUdpChecksum,
        WireError::ArpTooShort,
        WireError::ArpUnsupported,
        WireError::ArpBadOperation,
        WireError::BufferTooSmall,
        WireError::PayloadTooLarge,
    ];

    /// Number of distinct reasons (size of a per-reason counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// A dense index in `0..COUNT`, for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for stats output.
    pub fn name(self) -> &'static str {
        match self {
            WireError::EthernetTooShort => "ethernet_too_short",
            WireError::VlanTagged => "vlan_tagged",
            WireError::NotIpv4 => "not_ipv4",
            WireError::Ipv4TooShort => "ipv4_too_short",
            WireError::BadIpVersion => "bad_ip_version",
            WireError::BadIhl => "bad_ihl",
            WireError::BadTotalLength => "bad_total_length",
            WireError::Fragment => "fragment",
            WireError::NotUdp => "not_udp",
            WireError::BadIpChecksum => "bad_ip_checksum",
            WireError::UdpTooShort => "udp_too_short",
            WireError::BadUdpLength => "bad_udp_length",
            WireError::BadUdpChecksum => "bad_udp_checksum",
            WireError::ArpTooShort => "arp_too_short",
            WireError::ArpUnsupported => "arp_unsupported",
            WireError::ArpBadOperation => "arp_bad_operation",
            WireError::BufferTooSmall => "buffer_too_small",
            WireError::PayloadTooLarge => "payload_too_large",
        }
    }
}

/// Big-endian field helpers that never panic: an out-of-range read gives 0 and an
/// out-of-range write does nothing. Views only call them after `new_checked`
/// validated the length, so the fallbacks are unreachable in practice.
pub(crate) mod field {
    pub fn u8_at(b: &[u8], off: usize) -> u8 {
        b.get(off).copied().unwrap_or(0)
    }
    pub fn u16_at(b: &[u8], off: usize) -> u16 {
        match b.get(off..off.wrapping_add(2)) {
            Some(&[x, y]) => u16::from_be_bytes([x, y]),
            _ => 0,
        }
    }
    pub fn array_at<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = b.get(off..off.wrapping_add(N)) {
            out.copy_from_slice(s);
        }
        out
    }
    pub fn set_u8(b: &mut [u8], off: usize, v: u8) {
        if let Some(x) = b.get_mut(off) {
            *x = v;
        }
    }
    pub fn set_u16(b: &mut [u8], off: usize, v: u16) {
        set_bytes(b, off, &v.to_be_bytes());
    }
    pub fn set_bytes(b: &mut [u8], off: usize, v: &[u8]) {
        if let Some(s) = b.get_mut(off..off.wrapping_add(v.len())) {
            s.copy_from_slice(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        let mut names: Vec<_> = WireError::ALL.iter().map(|e| e.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), WireError::COUNT);
    }

    #[test]
    fn field_helpers_do_not_panic_out_of_range() {
        let mut b = [1u8, 2, 3];
        assert_eq!(field::u16_at(&b, 1), 0x0203);
        assert_eq!(field::u16_at(&b, 2), 0);
        assert_eq!(field::u16_at(&b, usize::MAX), 0);
        assert_eq!(field::array_at::<4>(&b, 0), [0; 4]);
        field::set_u16(&mut b, 2, 0xffff);
        field::set_bytes(&mut b, usize::MAX, &[1, 2]);
        assert_eq!(b, [1, 2, 3]);
    }
}
