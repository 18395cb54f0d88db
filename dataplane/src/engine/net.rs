//! The engine's thin network layer: Ethernet/ARP/IPv4/UDP in front of the RPC transport.
//!
//! Owns this host's addresses, a bounded neighbour (ARP) table — static entries from the
//! config, entries learned from ARP and gleaned from well-formed UDP frames addressed to
//! us — and the per-reason drop counters of frames that never reach the transport. It
//! answers ARP requests for our address and asks for unknown neighbours (rate limited).
//! It never allocates after construction and never panics on any frame. Received
//! checksums are verified in software unless the port's [`RxChecksum`] verdict says the
//! device already did (or found them bad). Frames to the
//! recent peers are built from cached [`UdpIpv4Template`]s (a small direct-mapped cache of
//! [`TEMPLATE_CACHE`] entries, so a server answering many clients keeps the fast path; a
//! neighbour's entries are dropped when its MAC changes or it leaves the table), with the
//! UDP checksum as [`NetStack::udp_checksum`] says.

use std::net::Ipv4Addr;

use crate::port::{ChecksumStatus, RxChecksum};
use crate::wire::arp::{parse_arp_frame, ArpOperation, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::frame::{parse_udp_ipv4_verifying, PAYLOAD_OFFSET};
use crate::wire::{MacAddr, UdpChecksum, UdpIpv4Header, UdpIpv4Template, WireError};

/// An RPC peer: IPv4 address and UDP port (the transport's address type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Peer {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// Why a received frame was dropped before the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetDrop {
    /// Malformed at the Ethernet/IPv4/UDP/ARP level (bad checksum, lengths, ...).
    Wire(WireError),
    /// Neither IPv4 nor ARP (IPv6, LLDP, ...).
    OtherEtherType,
    /// An Ethernet destination that is neither ours nor broadcast.
    NotOurMac,
    /// IPv4 addressed to another host.
    NotOurIp,
    /// UDP to a port we do not serve.
    NotOurPort,
    /// ARP that needs no answer (for another host, or a reply we did not ask for).
    ArpIgnored,
}

/// Counters of frames dropped before the transport, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetCounters {
    /// Indexed by [`WireError::index`].
    #[serde(serialize_with = "ser_wire")]
    pub wire: [u64; WireError::COUNT],
    pub other_ethertype: u64,
    pub not_our_mac: u64,
    pub not_our_ip: u64,
    pub not_our_port: u64,
    pub arp_ignored: u64,
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    /// Transmissions dropped because the peer's MAC was unknown (an ARP request went out).
    pub tx_no_neighbor: u64,
    /// Neighbour entries replaced because the table was full.
    pub neighbor_evictions: u64,
}

fn ser_wire<S: serde::Serializer>(w: &[u64; WireError::COUNT], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    for e in WireError::ALL {
        if w[e.index()] != 0 {
            m.serialize_entry(e.name(), &w[e.index()])?;
        }
    }
    m.end()
}

impl NetCounters {
    fn count(&mut self, d: NetDrop) {
        match d {
            NetDrop::Wire(e) => self.wire[e.index()] += 1,
            NetDrop::OtherEtherType => self.other_ethertype += 1,
            NetDrop::NotOurMac => self.not_our_mac += 1,
            NetDrop::NotOurIp => self.not_our_ip += 1,
            NetDrop::NotOurPort => self.not_our_port += 1,
            NetDrop::ArpIgnored => self.arp_ignored += 1,
        }
    }

    /// All frames dropped before the transport.
    pub fn dropped(&self) -> u64 {
        self.wire.iter().sum::<u64>()
            + self.other_ethertype
            + self.not_our_mac
            + self.not_our_ip
            + self.not_our_port
            + self.arp_ignored
    }
}

/// What to do with a received frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Rx {
    /// An RPC packet for the transport: the bytes at `offset..` of the frame.
    Rpc { peer: Peer, offset: usize },
    /// An ARP reply to send: `len` bytes already written into the caller's `reply` buffer.
    Reply { len: usize },
    /// Handled (e.g. an ARP reply we learned from); nothing to pass on.
    Consumed,
    /// Dropped and counted.
    Dropped(NetDrop),
}

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    ip: Ipv4Addr,
    mac: MacAddr,
    fixed: bool,
    /// Last time we asked for it (ARP requests are rate limited per neighbour).
    asked_at: u64,
}

/// How many neighbours one core remembers.
pub const NEIGHBOR_CAPACITY: usize = 256;
/// At most one ARP request per neighbour per this many ns.
pub const ARP_RETRY_NS: u64 = 50_000_000;

/// Peers whose prepared frame headers one core keeps (direct-mapped; a power of two).
pub const TEMPLATE_CACHE: usize = 16;

/// The cache slot of `peer`: a multiplicative hash of address and port, so peers that
/// differ only in the low bits of either spread over the slots.
#[inline]
fn template_slot(peer: Peer) -> usize {
    let key = (u64::from(u32::from(peer.ip)) << 16) | u64::from(peer.port);
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (TEMPLATE_CACHE - 1)
}

/// This host's addresses, its neighbour table and its drop counters (one per core).
#[derive(Debug)]
pub struct NetStack {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub udp_port: u16,
    neighbors: Vec<Neighbor>,
    next_evict: usize,
    ip_id: u16,
    /// How transmitted frames get their UDP checksum (default: computed in full).
    pub udp_checksum: UdpChecksum,
    /// Recent peers and their prepared headers (MAC included), direct-mapped by
    /// [`template_slot`].
    templates: [Option<(Peer, UdpIpv4Template)>; TEMPLATE_CACHE],
    pub counters: NetCounters,
}

impl NetStack {
    pub fn new(mac: MacAddr, ip: Ipv4Addr, udp_port: u16, fixed: &[(Ipv4Addr, MacAddr)]) -> Self {
        let mut neighbors = Vec::with_capacity(NEIGHBOR_CAPACITY);
        for &(ip, mac) in fixed.iter().take(NEIGHBOR_CAPACITY) {
            neighbors.push(Neighbor {
                ip,
                mac,
                fixed: true,
                asked_at: 0,
            });
        }
        NetStack {
            mac,
            ip,
            udp_port,
            neighbors,
            next_evict: 0,
            ip_id: 0,
            udp_checksum: UdpChecksum::Full,
            templates: [const { None }; TEMPLATE_CACHE],
            counters: NetCounters::default(),
        }
    }

    /// The MAC of `ip`, if known.
    pub fn neighbor(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.neighbors
            .iter()
            .find(|n| n.ip == ip && n.mac != MacAddr::ZERO)
            .map(|n| n.mac)
    }

    /// Drops the cached headers of every peer at `ip` (its MAC changed or is gone).
    fn forget_templates(&mut self, ip: Ipv4Addr) {
        for t in &mut self.templates {
            if t.as_ref().is_some_and(|(p, _)| p.ip == ip) {
                *t = None;
            }
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        if mac.is_multicast() || mac == MacAddr::ZERO || ip.is_unspecified() {
            return;
        }
        if let Some(n) = self.neighbors.iter_mut().find(|n| n.ip == ip) {
            if !n.fixed && n.mac != mac {
                n.mac = mac;
                self.forget_templates(ip);
            }
            return;
        }
        self.insert(Neighbor {
            ip,
            mac,
            fixed: false,
            asked_at: 0,
        });
    }

    fn insert(&mut self, n: Neighbor) {
        if self.neighbors.len() < NEIGHBOR_CAPACITY {
            self.neighbors.push(n);
            return;
        }
        // Full: replace learned entries round-robin; static ones stay.
        for _ in 0..NEIGHBOR_CAPACITY {
            let i = self.next_evict % NEIGHBOR_CAPACITY;
            self.next_evict = self.next_evict.wrapping_add(1);
            if let Some(slot) = self.neighbors.get_mut(i) {
                if !slot.fixed {
                    let gone = slot.ip;
                    *slot = n;
                    self.forget_templates(gone);
                    self.counters.neighbor_evictions += 1;
                    return;
                }
            }
        }
    }

    /// Classifies a received frame, verifying its checksums in software. ARP requests
    /// for us are answered into `reply` (at least 42 bytes).
    pub fn receive(&mut self, frame: &[u8], reply: &mut [u8]) -> Rx {
        self.receive_with(frame, RxChecksum::UNKNOWN, reply)
    }

    /// As [`NetStack::receive`], with the receiving device's checksum verdict: a
    /// checksum it calls [`ChecksumStatus::Good`] is not verified again, one it calls
    /// [`ChecksumStatus::Bad`] drops the frame (counted as that bad checksum), and an
    /// [`ChecksumStatus::Unknown`] one is verified in software.
    pub fn receive_with(&mut self, frame: &[u8], csum: RxChecksum, reply: &mut [u8]) -> Rx {
        let ethertype = match EthernetFrame::new_checked(frame) {
            Ok(f) => f.ethertype(),
            Err(e) => return self.drop(NetDrop::Wire(e)),
        };
        if ethertype == EtherType::ARP {
            return self.receive_arp(frame, reply);
        }
        if ethertype != EtherType::IPV4 {
            return self.drop(if ethertype.is_vlan_tag() {
                NetDrop::Wire(WireError::VlanTagged)
            } else {
                NetDrop::OtherEtherType
            });
        }
        let dst_mac = MacAddr(
            frame
                .get(..6)
                .and_then(|m| m.try_into().ok())
                .unwrap_or([0; 6]),
        );
        if dst_mac != self.mac && !dst_mac.is_broadcast() {
            return self.drop(NetDrop::NotOurMac);
        }
        if csum.ipv4 == ChecksumStatus::Bad {
            return self.drop(NetDrop::Wire(WireError::BadIpChecksum));
        }
        let p = match parse_udp_ipv4_verifying(
            frame,
            csum.ipv4 == ChecksumStatus::Unknown,
            csum.l4 == ChecksumStatus::Unknown,
        ) {
            Ok(p) => p,
            Err(e) => return self.drop(NetDrop::Wire(e)),
        };
        // Only now: the device's L4 verdict may be about a frame that is not even UDP.
        if csum.l4 == ChecksumStatus::Bad {
            return self.drop(NetDrop::Wire(WireError::BadUdpChecksum));
        }
        if p.dst_ip != self.ip {
            return self.drop(NetDrop::NotOurIp);
        }
        if p.dst_port != self.udp_port {
            return self.drop(NetDrop::NotOurPort);
        }
        // Glean the sender's MAC: answers go straight back without an ARP round trip.
        if self.neighbor(p.src_ip) != Some(p.src_mac) {
            self.learn(p.src_ip, p.src_mac);
        }
        Rx::Rpc {
            peer: Peer {
                ip: p.src_ip,
                port: p.src_port,
            },
            offset: p.payload_offset,
        }
    }

    fn receive_arp(&mut self, frame: &[u8], reply: &mut [u8]) -> Rx {
        let (_, arp) = match parse_arp_frame(frame) {
            Ok(x) => x,
            Err(e) => return self.drop(NetDrop::Wire(e)),
        };
        if arp.target_ip != self.ip {
            return self.drop(NetDrop::ArpIgnored);
        }
        self.learn(arp.sender_ip, arp.sender_mac);
        match arp.operation {
            ArpOperation::Request => match arp.reply(self.mac).map(|r| r.emit_frame(reply)) {
                Some(Ok(len)) => {
                    self.counters.arp_replies_sent += 1;
                    Rx::Reply { len }
                }
                Some(Err(e)) => self.drop(NetDrop::Wire(e)),
                None => self.drop(NetDrop::ArpIgnored),
            },
            _ => Rx::Consumed,
        }
    }

    fn drop(&mut self, d: NetDrop) -> Rx {
        self.counters.count(d);
        Rx::Dropped(d)
    }

    /// Writes Ethernet/IPv4/UDP headers in front of the `payload_len` bytes already at
    /// `frame[PAYLOAD_OFFSET..]`, for `peer`. Returns the frame length. When the peer's MAC
    /// is unknown, writes an ARP request for it into `frame` instead (at most one per
    /// [`ARP_RETRY_NS`]) and returns `Err(Some(len))`, or `Err(None)` when nothing is to be
    /// sent; either way the packet is counted as lost (the transport recovers).
    pub fn emit(
        &mut self,
        now: u64,
        peer: Peer,
        frame: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, Option<usize>> {
        let slot = template_slot(peer);
        if let Some(Some((p, t))) = self.templates.get(slot) {
            if *p == peer {
                self.ip_id = self.ip_id.wrapping_add(1);
                return t
                    .write(frame, self.ip_id, payload_len, self.udp_checksum)
                    .map_err(|_| None);
            }
        }
        let Some(dst_mac) = self.neighbor(peer.ip) else {
            self.counters.tx_no_neighbor += 1;
            return Err(self.arp_request(now, peer.ip, frame));
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let t = UdpIpv4Template::new(&UdpIpv4Header {
            src_mac: self.mac,
            dst_mac,
            src_ip: self.ip,
            dst_ip: peer.ip,
            src_port: self.udp_port,
            dst_port: peer.port,
            ttl: 64,
            ip_id: 0,
        });
        let len = t
            .write(frame, self.ip_id, payload_len, self.udp_checksum)
            .map_err(|_| None);
        if let Some(entry) = self.templates.get_mut(slot) {
            *entry = Some((peer, t));
        }
        len
    }

    fn arp_request(&mut self, now: u64, ip: Ipv4Addr, frame: &mut [u8]) -> Option<usize> {
        match self.neighbors.iter_mut().find(|n| n.ip == ip) {
            Some(n) if n.asked_at != 0 && now.saturating_sub(n.asked_at) < ARP_RETRY_NS => {
                return None
            }
            Some(n) => n.asked_at = now.max(1),
            None => self.insert(Neighbor {
                ip,
                mac: MacAddr::ZERO,
                fixed: false,
                asked_at: now.max(1),
            }),
        }
        let len = ArpRepr::request(self.mac, self.ip, ip)
            .emit_frame(frame)
            .ok()?;
        self.counters.arp_requests_sent += 1;
        Some(len)
    }
}

/// Where the RPC bytes start in a frame this layer builds.
pub const RPC_OFFSET: usize = PAYLOAD_OFFSET;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{build_udp_ipv4, parse_udp_ipv4};

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const YOU: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    fn my_mac() -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, 1])
    }
    fn your_mac() -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, 2])
    }

    fn udp(dst_mac: MacAddr, dst_ip: Ipv4Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        f[PAYLOAD_OFFSET..].copy_from_slice(payload);
        let h = UdpIpv4Header {
            src_mac: your_mac(),
            dst_mac,
            src_ip: YOU,
            dst_ip,
            src_port: 5555,
            dst_port,
            ttl: 64,
            ip_id: 1,
        };
        build_udp_ipv4(&mut f, &h, payload.len()).unwrap();
        f
    }

    #[test]
    fn rpc_frames_for_us_pass_and_teach_the_sender() {
        let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
        let mut r = [0u8; 64];
        let f = udp(my_mac(), ME, 7000, b"hello");
        assert_eq!(
            n.receive(&f, &mut r),
            Rx::Rpc {
                peer: Peer {
                    ip: YOU,
                    port: 5555
                },
                offset: 42
            }
        );
        assert_eq!(n.neighbor(YOU), Some(your_mac()));
    }

    #[test]
    fn frames_not_for_us_are_counted_by_reason() {
        let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
        let mut r = [0u8; 64];
        let other = MacAddr([2, 9, 9, 9, 9, 9]);
        assert_eq!(
            n.receive(&udp(other, ME, 7000, b"x"), &mut r),
            Rx::Dropped(NetDrop::NotOurMac)
        );
        let f = udp(my_mac(), Ipv4Addr::new(10, 0, 0, 9), 7000, b"x");
        assert_eq!(n.receive(&f, &mut r), Rx::Dropped(NetDrop::NotOurIp));
        assert_eq!(
            n.receive(&udp(my_mac(), ME, 7001, b"x"), &mut r),
            Rx::Dropped(NetDrop::NotOurPort)
        );
        let mut bad = udp(my_mac(), ME, 7000, b"xyz");
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // payload corrupted: UDP checksum fails
        assert_eq!(
            n.receive(&bad, &mut r),
            Rx::Dropped(NetDrop::Wire(WireError::BadUdpChecksum))
        );
        assert_eq!(
            n.receive(&bad[..20], &mut r),
            Rx::Dropped(NetDrop::Wire(WireError::Ipv4TooShort))
        );
        let mut v6 = udp(my_mac(), ME, 7000, b"x");
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(n.receive(&v6, &mut r), Rx::Dropped(NetDrop::OtherEtherType));
        assert_eq!(n.counters.dropped(), 6);
        assert_eq!(n.counters.wire[WireError::BadUdpChecksum.index()], 1);
    }

    #[test]
    fn arp_requests_for_us_are_answered_and_unknown_peers_are_asked_for() {
        let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
        let mut req = [0u8; 64];
        let len = ArpRepr::request(your_mac(), YOU, ME)
            .emit_frame(&mut req)
            .unwrap();
        let mut reply = [0u8; 64];
        let Rx::Reply { len: rlen } = n.receive(&req[..len], &mut reply) else {
            panic!("no reply")
        };
        let (eth, arp) = parse_arp_frame(&reply[..rlen]).unwrap();
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!((arp.sender_ip, arp.sender_mac), (ME, my_mac()));
        assert_eq!(eth.dst, your_mac());
        // A request for someone else is ignored.
        let len = ArpRepr::request(your_mac(), YOU, Ipv4Addr::new(10, 0, 0, 7))
            .emit_frame(&mut req)
            .unwrap();
        assert_eq!(
            n.receive(&req[..len], &mut reply),
            Rx::Dropped(NetDrop::ArpIgnored)
        );

        // Unknown peer: an ARP request, then silence until the retry interval passes.
        let stranger = Peer {
            ip: Ipv4Addr::new(10, 0, 0, 3),
            port: 1,
        };
        let mut f = [0u8; 128];
        let Err(Some(alen)) = n.emit(1_000, stranger, &mut f, 10) else {
            panic!()
        };
        let (_, arp) = parse_arp_frame(&f[..alen]).unwrap();
        assert_eq!(
            (arp.operation, arp.target_ip),
            (ArpOperation::Request, stranger.ip)
        );
        assert_eq!(n.emit(2_000, stranger, &mut f, 10), Err(None));
        assert!(matches!(
            n.emit(1_000 + ARP_RETRY_NS, stranger, &mut f, 10),
            Err(Some(_))
        ));
        // Known peer (learned from its request): a UDP frame.
        let flen = n.emit(0, Peer { ip: YOU, port: 9 }, &mut f, 10).unwrap();
        let p = parse_udp_ipv4(&f[..flen]).unwrap();
        assert_eq!(
            (p.dst_mac, p.dst_ip, p.dst_port, p.src_port),
            (your_mac(), YOU, 9, 7000)
        );
    }

    #[test]
    fn udp_checksum_zero_round_trips_and_cached_headers_follow_the_neighbor() {
        let mut a = NetStack::new(my_mac(), ME, 7000, &[(YOU, your_mac())]);
        let mut b = NetStack::new(your_mac(), YOU, 5555, &[]);
        let mut r = [0u8; 64];
        let to_b = Peer {
            ip: YOU,
            port: 5555,
        };
        for mode in [UdpChecksum::Zero, UdpChecksum::Full, UdpChecksum::Zero] {
            a.udp_checksum = mode;
            let mut f = vec![0u8; 128];
            f[RPC_OFFSET..RPC_OFFSET + 5].copy_from_slice(b"hello");
            let len = a.emit(0, to_b, &mut f, 5).unwrap();
            let zero = f[40..42] == [0, 0];
            assert_eq!(zero, mode == UdpChecksum::Zero);
            let peer = Peer { ip: ME, port: 7000 };
            assert_eq!(b.receive(&f[..len], &mut r), Rx::Rpc { peer, offset: 42 });
            // A corrupted payload passes only without a checksum.
            f[RPC_OFFSET] ^= 0x40;
            let got = b.receive(&f[..len], &mut r);
            if zero {
                assert_eq!(got, Rx::Rpc { peer, offset: 42 });
            } else {
                assert_eq!(got, Rx::Dropped(NetDrop::Wire(WireError::BadUdpChecksum)));
            }
        }
        // The cached headers of a learned neighbour follow its new MAC.
        let mut c = NetStack::new(my_mac(), ME, 7000, &[]);
        let first = udp(my_mac(), ME, 7000, b"x");
        assert!(matches!(c.receive(&first, &mut r), Rx::Rpc { .. }));
        let mut f = [0u8; 64];
        let back = Peer {
            ip: YOU,
            port: 5555,
        };
        let len = c.emit(0, back, &mut f, 1).unwrap();
        assert_eq!(parse_udp_ipv4(&f[..len]).unwrap().dst_mac, your_mac());
        let moved = MacAddr([2, 0, 0, 0, 0, 0x42]);
        let mut again = first.clone();
        again[6..12].copy_from_slice(&moved.0);
        assert!(matches!(c.receive(&again, &mut r), Rx::Rpc { .. }));
        let len = c.emit(0, back, &mut f, 1).unwrap();
        let p = parse_udp_ipv4(&f[..len]).unwrap();
        assert_eq!(p.dst_mac, moved);
        assert_eq!(p.ip_id, 2);
    }

    #[test]
    fn the_devices_checksum_verdict_is_trusted_and_unknown_is_verified() {
        use ChecksumStatus::{Bad, Good, Unknown};
        let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
        let mut r = [0u8; 64];
        let peer = Peer {
            ip: YOU,
            port: 5555,
        };
        let good = udp(my_mac(), ME, 7000, b"xyz");
        let mut bad_udp = good.clone();
        let last = bad_udp.len() - 1;
        bad_udp[last] ^= 0xff;
        let mut bad_ip = good.clone();
        bad_ip[24] ^= 0x5a; // the IPv4 checksum field
        let v = |ipv4, l4| RxChecksum { ipv4, l4 };
        // None: passed to the transport; Some(e): dropped as e.
        let (rpc, ip_drop, udp_drop) = (
            None,
            Some(WireError::BadIpChecksum),
            Some(WireError::BadUdpChecksum),
        );
        let cases: [(&[u8], RxChecksum, Option<WireError>); 12] = [
            // Unknown: software decides.
            (&good, v(Unknown, Unknown), rpc),
            (&bad_udp, v(Unknown, Unknown), udp_drop),
            (&bad_ip, v(Unknown, Unknown), ip_drop),
            // Good: the device vouched, the wrong bytes are not looked at again.
            (&bad_udp, v(Unknown, Good), rpc),
            (&bad_ip, v(Good, Unknown), rpc),
            (&bad_ip, v(Unknown, Good), ip_drop),
            (&bad_udp, v(Good, Unknown), udp_drop),
            // Bad: dropped however right the bytes are.
            (&good, v(Unknown, Bad), udp_drop),
            (&good, v(Bad, Unknown), ip_drop),
            (&good, v(Good, Bad), udp_drop),
            (&good, v(Bad, Good), ip_drop),
            (&good, v(Good, Good), rpc),
        ];
        for (i, (frame, csum, want)) in cases.into_iter().enumerate() {
            let want = match want {
                None => Rx::Rpc { peer, offset: 42 },
                Some(e) => Rx::Dropped(NetDrop::Wire(e)),
            };
            assert_eq!(
                n.receive_with(frame, csum, &mut r),
                want,
                "case {i}: {csum:?}"
            );
        }
        assert_eq!(n.counters.wire[WireError::BadUdpChecksum.index()], 4);
        assert_eq!(n.counters.wire[WireError::BadIpChecksum.index()], 4);
        // A Good verdict skips no structural check.
        let short = &good[..good.len() - 1];
        assert_eq!(
            n.receive_with(short, v(Good, Good), &mut r),
            Rx::Dropped(NetDrop::Wire(WireError::BadTotalLength))
        );
    }

    #[test]
    fn the_neighbor_table_is_bounded_and_keeps_static_entries() {
        let mut n = NetStack::new(my_mac(), ME, 7000, &[(YOU, your_mac())]);
        for i in 0..1000u32 {
            let ip = Ipv4Addr::from(0x0a01_0000 + i);
            n.learn(ip, MacAddr::local(u64::from(i) + 1));
        }
        assert_eq!(n.neighbors.len(), NEIGHBOR_CAPACITY);
        assert!(n.counters.neighbor_evictions > 0);
        assert_eq!(n.neighbor(YOU), Some(your_mac()));
        n.learn(YOU, MacAddr([2, 7, 7, 7, 7, 7]));
        assert_eq!(
            n.neighbor(YOU),
            Some(your_mac()),
            "static entries are not overridden"
        );
    }

    #[test]
    fn template_slots_spread_nearby_peers() {
        let mut used = [0u32; TEMPLATE_CACHE];
        for i in 0..64u32 {
            let peer = Peer {
                ip: Ipv4Addr::from(0x0a00_0000 + i / 4),
                port: 7001 + (i % 4) as u16,
            };
            used[template_slot(peer)] += 1;
        }
        // 64 peers over 16 slots: none empty, none with more than a quarter of them.
        assert!(used.iter().all(|&n| n > 0 && n <= 16), "{used:?}");
    }

    proptest::proptest! {
        /// Frames to many peers in any order (more peers than cache slots, neighbours
        /// whose MAC moves between sends) are byte for byte what the slow builder makes.
        #[test]
        fn cached_headers_for_many_peers_equal_the_builder(
            sends in proptest::collection::vec(
                (0usize..24, 0usize..300, proptest::bool::weighted(0.1)),
                1..300,
            )
        ) {
            let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
            let ip_of = |i: usize| Ipv4Addr::new(10, 0, 1, (i / 4) as u8 + 1);
            let mut macs: Vec<MacAddr> = (0..6).map(|i| MacAddr::local(i + 100)).collect();
            for (i, mac) in macs.iter().enumerate() {
                n.learn(ip_of(i * 4), *mac);
            }
            let mut ip_id = 0u16;
            for (k, (who, len, moved)) in sends.into_iter().enumerate() {
                let host = who / 4;
                if moved {
                    macs[host] = MacAddr::local(1000 + k as u64);
                    n.learn(ip_of(who), macs[host]);
                }
                let peer = Peer { ip: ip_of(who), port: 9000 + (who % 4) as u16 };
                let payload: Vec<u8> = (0..len).map(|b| (b * 7 + k) as u8).collect();
                let mut got = vec![0u8; PAYLOAD_OFFSET + 300];
                got[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len].copy_from_slice(&payload);
                let mut want = got.clone();
                let flen = n.emit(0, peer, &mut got, len).unwrap();
                ip_id = ip_id.wrapping_add(1);
                let h = UdpIpv4Header {
                    src_mac: my_mac(),
                    dst_mac: macs[host],
                    src_ip: ME,
                    dst_ip: peer.ip,
                    src_port: 7000,
                    dst_port: peer.port,
                    ttl: 64,
                    ip_id,
                };
                let wlen = build_udp_ipv4(&mut want, &h, len).unwrap();
                proptest::prop_assert_eq!(flen, wlen);
                proptest::prop_assert_eq!(&got[..flen], &want[..wlen], "send {}", k);
                // And the peer's headers are now cached for the next frame.
                let cached = n.templates[template_slot(peer)].as_ref().map(|(p, _)| *p);
                proptest::prop_assert_eq!(cached, Some(peer));
            }
        }
    }

    #[test]
    fn random_frames_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
        let mut n = NetStack::new(my_mac(), ME, 7000, &[]);
        let mut reply = [0u8; 64];
        let good = udp(my_mac(), ME, 7000, b"payload");
        for i in 0..20_000 {
            let mut f = if i % 2 == 0 {
                good.clone()
            } else {
                vec![0u8; rng.gen_range(0..100)]
            };
            let flips = rng.gen_range(0..4);
            for _ in 0..flips {
                if !f.is_empty() {
                    let at = rng.gen_range(0..f.len());
                    f[at] = rng.gen();
                }
            }
            let cut = rng.gen_range(0..=f.len());
            let _ = n.receive(&f[..cut], &mut reply);
        }
    }
}
