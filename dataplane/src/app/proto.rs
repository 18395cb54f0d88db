//! The attach protocol, one SOCK_SEQPACKET message each way:
//! `Hello{version, role, geometry wanted}` from the application, answered by
//! `Welcome{channel, geometry}` with the segment's descriptor attached, or
//! `Refused{reason}`. Also the segment layout both sides derive from the geometry.
//!
//! Every message is parsed as hostile input, in both directions: exact lengths, bounded
//! counts, geometry limits, no panics, no allocation beyond a bounded few bytes.
//! This file must not do I/O.

use super::ring::ring_bytes;

/// Protocol version.
pub const VERSION: u16 = 1;
/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 512;
/// Most services one server channel may serve.
pub const MAX_SERVICES: usize = 32;
/// Longest refusal reason.
pub const MAX_REASON: usize = 256;
const MAGIC: [u8; 4] = *b"FRSH";

mod msg {
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const REFUSED: u8 = 3;
}

/// Segment header magic.
pub const SEGMENT_MAGIC: u64 = 0x4652_5348_4d31_0001;
/// Bytes of the segment header (the rings start page-aligned after it).
pub const SEGMENT_HEADER: usize = 4096;

/// Ring and arena sizes of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Descriptors per ring (power of two).
    pub ring_cap: u32,
    /// Bytes per payload slot (multiple of 64).
    pub slot_size: u32,
    /// Payload slots (at most `ring_cap`, so a ring can never overflow with slots).
    pub slot_count: u32,
}

/// Bounds every geometry must respect.
pub const MAX_RING_CAP: u32 = 4096;
pub const MAX_SLOT_SIZE: u32 = 1 << 20;
/// Largest segment.
pub const MAX_SEGMENT: usize = 256 << 20;

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            ring_cap: 256,
            slot_size: 2048,
            slot_count: 128,
        }
    }
}

/// Where things are in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Dataplane → application ring.
    pub to_app: usize,
    /// Application → dataplane ring.
    pub to_dataplane: usize,
    pub arena: usize,
    pub total: usize,
}

const fn align64(x: usize) -> usize {
    (x + 63) & !63
}

impl Geometry {
    /// Checks the bounds; `Err` names the broken one.
    pub fn validate(&self) -> Result<Layout, ProtoError> {
        if !self.ring_cap.is_power_of_two() || self.ring_cap < 2 || self.ring_cap > MAX_RING_CAP {
            return Err(ProtoError::Geometry(
                "ring capacity must be a power of two in 2..=4096",
            ));
        }
        if self.slot_size < 64
            || self.slot_size > MAX_SLOT_SIZE
            || !self.slot_size.is_multiple_of(64)
        {
            return Err(ProtoError::Geometry(
                "slot size must be a multiple of 64 in 64..=1 MiB",
            ));
        }
        if self.slot_count == 0 || self.slot_count > self.ring_cap {
            return Err(ProtoError::Geometry(
                "slot count must be in 1..=ring capacity",
            ));
        }
        let to_app = SEGMENT_HEADER;
        let to_dataplane = align64(to_app + ring_bytes(self.ring_cap));
        let arena = align64(to_dataplane + ring_bytes(self.ring_cap));
        let total = arena + self.slot_size as usize * self.slot_count as usize;
        if total > MAX_SEGMENT {
            return Err(ProtoError::Geometry("segment larger than 256 MiB"));
        }
        Ok(Layout {
            to_app,
            to_dataplane,
            arena,
            total,
        })
    }

    /// The geometry the dataplane grants: what was asked, clamped to `max` (field by
    /// field), then made valid.
    pub fn clamp_to(&self, max: &Geometry) -> Geometry {
        let ring_cap = self.ring_cap.clamp(2, max.ring_cap.max(2));
        let ring_cap = if ring_cap.is_power_of_two() {
            ring_cap
        } else {
            ring_cap.next_power_of_two() / 2
        };
        let slot_size = self.slot_size.clamp(64, max.slot_size.max(64)).div_ceil(64) * 64;
        let slot_count = self
            .slot_count
            .clamp(1, max.slot_count.max(1))
            .min(ring_cap);
        Geometry {
            ring_cap,
            slot_size,
            slot_count,
        }
    }
}

/// What the application wants to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Serves requests for these service ids.
    Server { services: Vec<u16> },
    /// Makes calls.
    Client,
}

/// Application → dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
    pub geometry: Geometry,
}

/// Dataplane → application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Welcome { channel: u32, geometry: Geometry },
    Refused { reason: String },
}

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("message too short")]
    Short,
    #[error("message too long")]
    Long,
    #[error("bad magic")]
    Magic,
    #[error("unsupported version {0}")]
    Version(u16),
    #[error("unknown message type {0}")]
    Type(u8),
    #[error("unknown role {0}")]
    Role(u8),
    #[error("bad service list")]
    Services,
    #[error("bad geometry: {0}")]
    Geometry(&'static str),
    #[error("refusal reason is not UTF-8 or too long")]
    Reason,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.b.len() < n {
            return Err(ProtoError::Short);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn header(&mut self) -> Result<u8, ProtoError> {
        if self.b.len() > MAX_MESSAGE {
            return Err(ProtoError::Long);
        }
        if self.take(4)? != MAGIC {
            return Err(ProtoError::Magic);
        }
        let v = self.u16()?;
        if v != VERSION {
            return Err(ProtoError::Version(v));
        }
        self.u8()
    }
    fn geometry(&mut self) -> Result<Geometry, ProtoError> {
        Ok(Geometry {
            ring_cap: self.u32()?,
            slot_size: self.u32()?,
            slot_count: self.u32()?,
        })
    }
    fn end(&self) -> Result<(), ProtoError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Long)
        }
    }
}

fn header(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind);
}

fn put_geometry(out: &mut Vec<u8>, g: &Geometry) {
    out.extend_from_slice(&g.ring_cap.to_le_bytes());
    out.extend_from_slice(&g.slot_size.to_le_bytes());
    out.extend_from_slice(&g.slot_count.to_le_bytes());
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        header(&mut out, msg::HELLO);
        match &self.role {
            Role::Server { services } => {
                out.push(1);
                let n = services.len().min(MAX_SERVICES);
                out.push(n as u8);
                for s in &services[..n] {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            Role::Client => {
                out.push(2);
                out.push(0);
            }
        }
        put_geometry(&mut out, &self.geometry);
        out
    }

    /// Parses a Hello; the geometry is only range-checked by [`Geometry::clamp_to`] later.
    pub fn decode(b: &[u8]) -> Result<Hello, ProtoError> {
        let mut r = Reader { b };
        let kind = r.header()?;
        if kind != msg::HELLO {
            return Err(ProtoError::Type(kind));
        }
        let role = r.u8()?;
        let n = r.u8()? as usize;
        let role = match role {
            1 => {
                if n == 0 || n > MAX_SERVICES {
                    return Err(ProtoError::Services);
                }
                let mut services = Vec::with_capacity(n);
                for _ in 0..n {
                    services.push(r.u16()?);
                }
                Role::Server { services }
            }
            2 => {
                if n != 0 {
                    return Err(ProtoError::Services);
                }
                Role::Client
            }
            x => return Err(ProtoError::Role(x)),
        };
        let geometry = r.geometry()?;
        r.end()?;
        Ok(Hello {
            version: VERSION,
            role,
            geometry,
        })
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Reply::Welcome { channel, geometry } => {
                header(&mut out, msg::WELCOME);
                out.extend_from_slice(&channel.to_le_bytes());
                put_geometry(&mut out, geometry);
            }
            Reply::Refused { reason } => {
                header(&mut out, msg::REFUSED);
                let mut end = reason.len().min(MAX_REASON);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&(end as u16).to_le_bytes());
                out.extend_from_slice(&reason.as_bytes()[..end]);
            }
        }
        out
    }

    /// Parses the dataplane's answer; a Welcome's geometry must be valid.
    pub fn decode(b: &[u8]) -> Result<Reply, ProtoError> {
        let mut r = Reader { b };
        match r.header()? {
            msg::WELCOME => {
                let channel = r.u32()?;
                let geometry = r.geometry()?;
                geometry.validate()?;
                r.end()?;
                Ok(Reply::Welcome { channel, geometry })
            }
            msg::REFUSED => {
                let n = r.u16()? as usize;
                if n > MAX_REASON {
                    return Err(ProtoError::Reason);
                }
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| ProtoError::Reason)?;
                r.end()?;
                Ok(Reply::Refused {
                    reason: text.to_string(),
                })
            }
            k => Err(ProtoError::Type(k)),
        }
    }
}

/// The fuzz check: parsing arbitrary bytes as either message never panics, and what
/// parses re-encodes to the same bytes (so nothing is silently ignored).
pub fn fuzz_check(data: &[u8]) {
    if let Ok(h) = Hello::decode(data) {
        assert_eq!(h.encode(), data, "Hello re-encodes to its bytes");
        let g = h.geometry.clamp_to(&Geometry {
            ring_cap: MAX_RING_CAP,
            slot_size: MAX_SLOT_SIZE,
            slot_count: MAX_RING_CAP,
        });
        let _ = g.validate();
    }
    if let Ok(r) = Reply::decode(data) {
        assert_eq!(r.encode(), data, "Reply re-encodes to its bytes");
        if let Reply::Welcome { geometry, .. } = r {
            let l = geometry.validate().expect("a decoded Welcome is valid");
            assert!(l.total <= MAX_SEGMENT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn hello() -> Hello {
        Hello {
            version: VERSION,
            role: Role::Server {
                services: vec![30155, 7],
            },
            geometry: Geometry::default(),
        }
    }

    #[test]
    fn round_trips() {
        let h = hello();
        assert_eq!(Hello::decode(&h.encode()), Ok(h));
        let c = Hello {
            role: Role::Client,
            ..hello()
        };
        assert_eq!(Hello::decode(&c.encode()), Ok(c));
        for r in [
            Reply::Welcome {
                channel: 9,
                geometry: Geometry::default(),
            },
            Reply::Refused {
                reason: "uid 65534 is not allowed".into(),
            },
        ] {
            assert_eq!(Reply::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn malformed_hellos_are_rejected() {
        let good = hello().encode();
        for n in 0..good.len() {
            assert!(Hello::decode(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Hello::decode(&long), Err(ProtoError::Long));
        let mut m = good.clone();
        m[0] = b'X';
        assert_eq!(Hello::decode(&m), Err(ProtoError::Magic));
        let mut m = good.clone();
        m[4] = 9;
        assert_eq!(Hello::decode(&m), Err(ProtoError::Version(9)));
        let mut m = good.clone();
        m[6] = msg::WELCOME;
        assert_eq!(Hello::decode(&m), Err(ProtoError::Type(msg::WELCOME)));
        let mut m = good.clone();
        m[7] = 5;
        assert_eq!(Hello::decode(&m), Err(ProtoError::Role(5)));
        // Claims more services than it carries; or too many; or none.
        let mut m = good.clone();
        m[8] = 200;
        assert!(Hello::decode(&m).is_err());
        let mut m = good.clone();
        m[8] = 0;
        assert_eq!(Hello::decode(&m), Err(ProtoError::Services));
        // Client with services.
        let mut m = Hello {
            role: Role::Client,
            ..hello()
        }
        .encode();
        m[8] = 1;
        assert!(Hello::decode(&m).is_err());
        assert_eq!(Hello::decode(&[0u8; 4096]), Err(ProtoError::Long));
    }

    #[test]
    fn malformed_replies_are_rejected() {
        let w = Reply::Welcome {
            channel: 1,
            geometry: Geometry::default(),
        }
        .encode();
        for n in 0..w.len() {
            assert!(Reply::decode(&w[..n]).is_err());
        }
        // Invalid geometry in a Welcome.
        let bad = Reply::Welcome {
            channel: 1,
            geometry: Geometry {
                ring_cap: 3,
                slot_size: 64,
                slot_count: 1,
            },
        }
        .encode();
        assert!(matches!(Reply::decode(&bad), Err(ProtoError::Geometry(_))));
        let huge = Reply::Welcome {
            channel: 1,
            geometry: Geometry {
                ring_cap: 4096,
                slot_size: 1 << 20,
                slot_count: 4096,
            },
        }
        .encode();
        assert!(matches!(Reply::decode(&huge), Err(ProtoError::Geometry(_))));
        let mut r = Reply::Refused {
            reason: "no".into(),
        }
        .encode();
        r[7] = 50;
        assert!(Reply::decode(&r).is_err());
        let mut r = Reply::Refused {
            reason: "no".into(),
        }
        .encode();
        r[9] = 0xff;
        assert_eq!(Reply::decode(&r), Err(ProtoError::Reason));
        // A long reason is cut at a char boundary.
        let long = Reply::Refused {
            reason: "é".repeat(300),
        };
        assert!(matches!(
            Reply::decode(&long.encode()),
            Ok(Reply::Refused { reason }) if reason.len() <= MAX_REASON
        ));
    }

    #[test]
    fn geometry_is_clamped_valid() {
        let max = Geometry::default();
        for g in [
            Geometry {
                ring_cap: 0,
                slot_size: 0,
                slot_count: 0,
            },
            Geometry {
                ring_cap: u32::MAX,
                slot_size: u32::MAX,
                slot_count: u32::MAX,
            },
            Geometry {
                ring_cap: 100,
                slot_size: 100,
                slot_count: 100,
            },
        ] {
            let c = g.clamp_to(&max);
            assert!(c.validate().is_ok(), "{g:?} -> {c:?}");
            assert!(c.ring_cap <= max.ring_cap && c.slot_size <= max.slot_size);
        }
        let l = Geometry::default().validate().expect("default");
        assert!(
            l.to_app >= SEGMENT_HEADER && l.to_dataplane > l.to_app && l.arena > l.to_dataplane
        );
        assert_eq!(l.arena % 64, 0);
    }

    #[test]
    fn seeded_random_inputs() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x5eed_0006);
        let seeds = [
            hello().encode(),
            Hello {
                role: Role::Client,
                ..hello()
            }
            .encode(),
            Reply::Welcome {
                channel: 3,
                geometry: Geometry::default(),
            }
            .encode(),
            Reply::Refused { reason: "x".into() }.encode(),
        ];
        for i in 0..5000 {
            let mut b = if i % 3 == 0 {
                let n = rng.gen_range(0..64);
                (0..n).map(|_| rng.gen()).collect::<Vec<u8>>()
            } else {
                seeds[i % seeds.len()].clone()
            };
            for _ in 0..rng.gen_range(0..4) {
                if b.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b[at] = rng.gen(),
                    1 => b.truncate(at),
                    _ => b.insert(at, rng.gen()),
                }
            }
            fuzz_check(&b);
        }
    }
}
