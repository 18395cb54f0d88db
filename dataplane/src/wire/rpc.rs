//! The flatrpc RPC header: a fixed 32-byte, little-endian header that follows the UDP
//! header. This module owns its layout, the checked view [`RpcHeader`] and the
//! high-level form [`RpcHeaderRepr`] (parse / emit). It must not know about sessions,
//! retransmission or any transport state: it only says whether 32 bytes plus a payload
//! are self-consistent.
//!
//! # Layout
//!
//! | offset | size | field            | meaning |
//! |-------:|-----:|------------------|---------|
//! | 0      | 2    | `magic`          | `0x46 0x52` (ASCII `"FR"`, `0x5246` read as u16 LE) |
//! | 2      | 1    | `version`        | [`VERSION`] (1) |
//! | 3      | 1    | `type`           | [`PacketType`]: 1 request, 2 response, 3 error, 4 request-ack, 5 response-ack, 6 connect, 7 connect-ack, 8 close |
//! | 4      | 1    | `flags`          | bit 0 `ACK_REQ` (receiver: acknowledge now), bit 1 `COMPLETE` (ack: whole message received), bit 2 `HELD` (request-ack: request waits in the reorder buffer), bit 3 `RESYNC` (ordered request: restart the order sequence here), bits 4–5 class of a request (0 unreliable, 1 reliable, 2 reliable-ordered; 3 is invalid), bits 6–7 reserved (0) |
//! | 5      | 1    | `credits`        | connect: requested window; connect-ack: granted window (outstanding RPCs per session); else 0 |
//! | 6      | 2    | `service`        | service id |
//! | 8      | 2    | `method`         | method id within the service |
//! | 10     | 2    | `frag_index`     | index of this fragment, `< frag_count` |
//! | 12     | 2    | `frag_count`     | fragments in the message, `≥ 1` |
//! | 14     | 2    | `aux`            | request of an ordered method: order sequence number (wrapping); response: time the request spent in the server (reorder wait + handler) in µs, saturating, for the client's RTT estimate; request-ack with `HELD`: the order sequence number the server is waiting for; other acks: index of the fragment that asked for it (`0xffff` = probe, none); error: error code; else 0 |
//! | 16     | 8    | `session`        | the **receiver's** session id (slot index in the low 24 bits, random tag above) |
//! | 24     | 4    | `rpc_id`         | RPC id, per session, increasing |
//! | 28     | 4    | `msg_len`        | length of the whole message this fragment belongs to |
//! | 32     | —    | payload          | this fragment's bytes |
//!
//! Fragments of one message all carry the same payload length ("chunk") except the last,
//! which carries the rest; so every fragment's offset in the message is computable from
//! the fragment itself (the transport checks the chunk is the same for all of them).
//!
//! `new_checked` enforces: at least 32 bytes; magic; version; known type; no reserved
//! flag bits; a valid class; `frag_count ≥ 1`; `frag_index < frag_count`; a single
//! fragment's payload equals `msg_len`; class bits only on requests; a fragment of several is non-empty and no longer
//! than `msg_len`, and `msg_len ≥ frag_count`. After that every accessor is infallible.

use core::fmt;

/// Length of the RPC header in bytes.
pub const HEADER_LEN: usize = 32;
/// Magic number, bytes `"FR"` on the wire.
pub const MAGIC: u16 = 0x5246;
/// The header version this code speaks.
pub const VERSION: u8 = 1;

/// Flag: the receiver should acknowledge now (end of a transmission round).
pub const FLAG_ACK_REQ: u8 = 1 << 0;
/// Flag (acks): the whole message was received.
pub const FLAG_COMPLETE: u8 = 1 << 1;
/// Flag (request-ack): the request is held in the reorder buffer.
pub const FLAG_HELD: u8 = 1 << 2;
/// Flag (ordered request): restart the session's order sequence at this request.
pub const FLAG_RESYNC: u8 = 1 << 3;
const CLASS_SHIFT: u8 = 4;
const CLASS_MASK: u8 = 0b11 << CLASS_SHIFT;
const RESERVED_FLAGS: u8 = 0b1100_0000;

/// `aux` value of an ack that no particular fragment asked for.
pub const AUX_PROBE: u16 = 0xffff;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const FLAGS: usize = 4;
    pub const CREDITS: usize = 5;
    pub const SERVICE: Range<usize> = 6..8;
    pub const METHOD: Range<usize> = 8..10;
    pub const FRAG_INDEX: Range<usize> = 10..12;
    pub const FRAG_COUNT: Range<usize> = 12..14;
    pub const AUX: Range<usize> = 14..16;
    pub const SESSION: Range<usize> = 16..24;
    pub const RPC_ID: Range<usize> = 24..28;
    pub const MSG_LEN: Range<usize> = 28..32;
}

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// A fragment of a request (client → server).
    Request = 1,
    /// A fragment of a response (server → client).
    Response = 2,
    /// An error answer to a request (server → client); code in `aux`, optional detail in the payload.
    Error = 3,
    /// Server → client: which request fragments arrived (payload: bitmap), or `COMPLETE`.
    RequestAck = 4,
    /// Client → server: which response fragments arrived (payload: bitmap), or `COMPLETE`.
    ResponseAck = 5,
    /// Client → server: open a session; `session` is the client's id for it.
    Connect = 6,
    /// Server → client: session accepted; payload is the server's 8-byte session id.
    ConnectAck = 7,
    /// Either way: the session is closed.
    Close = 8,
}

impl PacketType {
    /// Every packet type.
    pub const ALL: [PacketType; 8] = [
        PacketType::Request,
        PacketType::Response,
        PacketType::Error,
        PacketType::RequestAck,
        PacketType::ResponseAck,
        PacketType::Connect,
        PacketType::ConnectAck,
        PacketType::Close,
    ];

    /// The type for a wire byte, if known.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Error,
            4 => Self::RequestAck,
            5 => Self::ResponseAck,
            6 => Self::Connect,
            7 => Self::ConnectAck,
            8 => Self::Close,
            _ => return None,
        })
    }
}

/// Delivery class of a request as carried in the flags (mirrors
/// `transport::TransportClass`; the wire module does not depend on the transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireClass {
    Unreliable = 0,
    Reliable = 1,
    ReliableOrdered = 2,
}

/// Why bytes are not a valid RPC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("packet too short: {len} bytes, the RPC header needs {HEADER_LEN}")]
    Truncated { len: usize },
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    #[error("unsupported version {0}")]
    BadVersion(u8),
    #[error("unknown packet type {0}")]
    UnknownType(u8),
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    #[error("invalid class bits in flags {0:#04x} (3, or set on a non-request)")]
    BadClass(u8),
    #[error("fragment count is zero")]
    ZeroFragmentCount,
    #[error("fragment index {index} not below count {count}")]
    FragmentIndexOutOfRange { index: u16, count: u16 },
    #[error("single-fragment payload is {payload} bytes but message length says {msg_len}")]
    LengthMismatch { payload: usize, msg_len: u32 },
    #[error("fragment payload {payload} bytes longer than the message ({msg_len})")]
    FragmentLongerThanMessage { payload: usize, msg_len: u32 },
    #[error("empty fragment in a {count}-fragment message")]
    EmptyFragment { count: u16 },
    #[error("message length {msg_len} too small for {count} non-empty fragments")]
    LengthLies { msg_len: u32, count: u16 },
}

impl HeaderError {
    /// A short stable name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadMagic(_) => "bad_magic",
            Self::BadVersion(_) => "bad_version",
            Self::UnknownType(_) => "unknown_type",
            Self::ReservedFlags(_) => "reserved_flags",
            Self::BadClass(_) => "bad_class",
            Self::ZeroFragmentCount => "zero_fragment_count",
            Self::FragmentIndexOutOfRange { .. } => "fragment_index_out_of_range",
            Self::LengthMismatch { .. } => "length_mismatch",
            Self::FragmentLongerThanMessage { .. } => "fragment_longer_than_message",
            Self::EmptyFragment { .. } => "empty_fragment",
            Self::LengthLies { .. } => "length_lies",
        }
    }
}

/// A checked view of an RPC header (and its payload) over any byte buffer.
#[derive(Clone, Copy)]
pub struct RpcHeader<T: AsRef<[u8]>> {
    buffer: T,
}

#[inline]
fn rd16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}
#[inline]
fn rd32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}
#[inline]
fn rd64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}
#[inline]
fn rd8(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

impl<T: AsRef<[u8]>> RpcHeader<T> {
    /// Wraps `buffer` without checking it. Accessors still never panic (short buffers
    /// read as zeros), but values are meaningless until [`check`](Self::check) passes.
    pub fn new_unchecked(buffer: T) -> Self {
        RpcHeader { buffer }
    }

    /// Wraps `buffer` after validating it (see the module docs for the rules).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, HeaderError> {
        let h = Self::new_unchecked(buffer);
        h.check()?;
        Ok(h)
    }

    /// Validates the header and payload lengths.
    #[inline]
    pub fn check(&self) -> Result<(), HeaderError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Truncated { len: b.len() });
        }
        let magic = rd16(b, field::MAGIC);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        let version = rd8(b, field::VERSION);
        if version != VERSION {
            return Err(HeaderError::BadVersion(version));
        }
        let ty = rd8(b, field::TYPE);
        if PacketType::from_u8(ty).is_none() {
            return Err(HeaderError::UnknownType(ty));
        }
        let flags = rd8(b, field::FLAGS);
        if flags & RESERVED_FLAGS != 0 {
            return Err(HeaderError::ReservedFlags(flags));
        }
        if flags & CLASS_MASK == CLASS_MASK
            || (ty != PacketType::Request as u8 && flags & CLASS_MASK != 0)
        {
            return Err(HeaderError::BadClass(flags));
        }
        let count = rd16(b, field::FRAG_COUNT);
        let index = rd16(b, field::FRAG_INDEX);
        if count == 0 {
            return Err(HeaderError::ZeroFragmentCount);
        }
        if index >= count {
            return Err(HeaderError::FragmentIndexOutOfRange { index, count });
        }
        let msg_len = rd32(b, field::MSG_LEN);
        let payload = b.len() - HEADER_LEN;
        if count == 1 {
            if payload as u64 != u64::from(msg_len) {
                return Err(HeaderError::LengthMismatch { payload, msg_len });
            }
        } else {
            if payload as u64 > u64::from(msg_len) {
                return Err(HeaderError::FragmentLongerThanMessage { payload, msg_len });
            }
            if payload == 0 {
                return Err(HeaderError::EmptyFragment { count });
            }
            if msg_len < u32::from(count) {
                return Err(HeaderError::LengthLies { msg_len, count });
            }
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn magic(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::MAGIC)
    }
    pub fn version(&self) -> u8 {
        rd8(self.buffer.as_ref(), field::VERSION)
    }
    /// Packet type; a checked view always has a known one (an unchecked one reads as
    /// `Close` when the byte is unknown, so that this never panics).
    pub fn packet_type(&self) -> PacketType {
        PacketType::from_u8(rd8(self.buffer.as_ref(), field::TYPE)).unwrap_or(PacketType::Close)
    }
    pub fn flags(&self) -> u8 {
        rd8(self.buffer.as_ref(), field::FLAGS)
    }
    /// Request class from the flags (a checked view never has the invalid value 3;
    /// an unchecked one reads it as `Unreliable`).
    pub fn class(&self) -> WireClass {
        match (self.flags() & CLASS_MASK) >> CLASS_SHIFT {
            1 => WireClass::Reliable,
            2 => WireClass::ReliableOrdered,
            _ => WireClass::Unreliable,
        }
    }
    pub fn credits(&self) -> u8 {
        rd8(self.buffer.as_ref(), field::CREDITS)
    }
    pub fn service(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::SERVICE)
    }
    pub fn method(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::METHOD)
    }
    pub fn frag_index(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::FRAG_INDEX)
    }
    pub fn frag_count(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::FRAG_COUNT)
    }
    pub fn aux(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::AUX)
    }
    pub fn session(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::SESSION)
    }
    pub fn rpc_id(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::RPC_ID)
    }
    pub fn msg_len(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::MSG_LEN)
    }
    /// The bytes after the header (empty if the buffer is shorter than a header).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for RpcHeader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcHeader")
            .field("type", &self.packet_type())
            .field("flags", &format_args!("{:#04x}", self.flags()))
            .field("credits", &self.credits())
            .field("service", &self.service())
            .field("method", &self.method())
            .field("frag", &(self.frag_index(), self.frag_count()))
            .field("aux", &self.aux())
            .field("session", &format_args!("{:#018x}", self.session()))
            .field("rpc_id", &self.rpc_id())
            .field("msg_len", &self.msg_len())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// The header's fields in high-level form, to build (emit) a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcHeaderRepr {
    pub packet_type: PacketType,
    /// Flag bits other than the class (`FLAG_*`).
    pub flags: u8,
    /// Class of a request (ignored — emitted as 0 — for other types).
    pub class: WireClass,
    pub credits: u8,
    pub service: u16,
    pub method: u16,
    pub frag_index: u16,
    pub frag_count: u16,
    pub aux: u16,
    pub session: u64,
    pub rpc_id: u32,
    pub msg_len: u32,
}

/// A buffer too small for the header to be emitted into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {len} bytes cannot hold the {HEADER_LEN}-byte RPC header")]
pub struct EmitBufferTooSmall {
    pub len: usize,
}

impl RpcHeaderRepr {
    /// A header of type `packet_type` with every other field zero, a single fragment.
    pub fn new(packet_type: PacketType) -> Self {
        RpcHeaderRepr {
            packet_type,
            flags: 0,
            class: WireClass::Unreliable,
            credits: 0,
            service: 0,
            method: 0,
            frag_index: 0,
            frag_count: 1,
            aux: 0,
            session: 0,
            rpc_id: 0,
            msg_len: 0,
        }
    }

    /// Reads the fields of a checked header.
    pub fn parse<T: AsRef<[u8]>>(h: &RpcHeader<T>) -> Self {
        RpcHeaderRepr {
            packet_type: h.packet_type(),
            flags: h.flags() & !CLASS_MASK,
            class: h.class(),
            credits: h.credits(),
            service: h.service(),
            method: h.method(),
            frag_index: h.frag_index(),
            frag_count: h.frag_count(),
            aux: h.aux(),
            session: h.session(),
            rpc_id: h.rpc_id(),
            msg_len: h.msg_len(),
        }
    }

    /// Writes the 32 header bytes at the start of `buf`; returns [`HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitBufferTooSmall> {
        let Some(b) = buf.get_mut(..HEADER_LEN) else {
            return Err(EmitBufferTooSmall { len: buf.len() });
        };
        let class_bits = if self.packet_type == PacketType::Request {
            (self.class as u8) << CLASS_SHIFT
        } else {
            0
        };
        b[field::MAGIC].copy_from_slice(&MAGIC.to_le_bytes());
        b[field::VERSION] = VERSION;
        b[field::TYPE] = self.packet_type as u8;
        b[field::FLAGS] = (self.flags & !(CLASS_MASK | RESERVED_FLAGS)) | class_bits;
        b[field::CREDITS] = self.credits;
        b[field::SERVICE].copy_from_slice(&self.service.to_le_bytes());
        b[field::METHOD].copy_from_slice(&self.method.to_le_bytes());
        b[field::FRAG_INDEX].copy_from_slice(&self.frag_index.to_le_bytes());
        b[field::FRAG_COUNT].copy_from_slice(&self.frag_count.to_le_bytes());
        b[field::AUX].copy_from_slice(&self.aux.to_le_bytes());
        b[field::SESSION].copy_from_slice(&self.session.to_le_bytes());
        b[field::RPC_ID].copy_from_slice(&self.rpc_id.to_le_bytes());
        b[field::MSG_LEN].copy_from_slice(&self.msg_len.to_le_bytes());
        Ok(HEADER_LEN)
    }
}

/// The fuzz check shared by `fuzz/fuzz_targets/rpc_header.rs` and its seeded `#[test]`
/// twin: `new_checked` never panics, and whatever it accepts survives a parse → emit
/// round trip byte for byte (header) with the payload untouched.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let Ok(h) = RpcHeader::new_checked(data) else {
        // Unchecked accessors must not panic either.
        let u = RpcHeader::new_unchecked(data);
        let _ = (u.packet_type(), u.class(), u.session(), u.payload().len());
        return;
    };
    let repr = RpcHeaderRepr::parse(&h);
    let mut out = [0u8; HEADER_LEN];
    assert_eq!(repr.emit(&mut out), Ok(HEADER_LEN));
    assert_eq!(&out[..], &data[..HEADER_LEN], "re-emitted header differs");
    assert_eq!(h.payload(), &data[HEADER_LEN..]);
    assert!(h.frag_index() < h.frag_count());
    assert!(h.payload().len() as u64 <= u64::from(h.msg_len()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample() -> RpcHeaderRepr {
        RpcHeaderRepr {
            packet_type: PacketType::Request,
            flags: FLAG_ACK_REQ,
            class: WireClass::ReliableOrdered,
            credits: 0,
            service: 7,
            method: 3,
            frag_index: 1,
            frag_count: 3,
            aux: 42,
            session: 0x0123_4567_89ab_cdef,
            rpc_id: 99,
            msg_len: 2500,
        }
    }

    fn packet(repr: &RpcHeaderRepr, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN + payload.len()];
        repr.emit(&mut v).unwrap();
        v[HEADER_LEN..].copy_from_slice(payload);
        v
    }

    #[test]
    fn round_trip_and_byte_layout() {
        let r = sample();
        let p = packet(&r, &[0xaa; 1000]);
        assert_eq!(&p[0..2], b"FR");
        assert_eq!(p[2], VERSION);
        assert_eq!(p[3], 1);
        assert_eq!(p[4], FLAG_ACK_REQ | (2 << 4));
        assert_eq!(&p[6..8], &7u16.to_le_bytes());
        assert_eq!(&p[16..24], &0x0123_4567_89ab_cdefu64.to_le_bytes());
        let h = RpcHeader::new_checked(&p[..]).unwrap();
        assert_eq!(RpcHeaderRepr::parse(&h), r);
        assert_eq!(h.payload().len(), 1000);
        assert_eq!(h.class(), WireClass::ReliableOrdered);
    }

    #[test]
    fn malformed_headers_are_named() {
        let good = packet(&sample(), &[1; 1000]);
        assert_eq!(
            RpcHeader::new_checked(&good[..31]).unwrap_err(),
            HeaderError::Truncated { len: 31 }
        );
        assert!(RpcHeader::new_checked(&[][..]).is_err());
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(
            RpcHeader::new_checked(&b[..]),
            Err(HeaderError::BadMagic(_))
        ));
        let mut b = good.clone();
        b[2] = 9;
        assert_eq!(
            RpcHeader::new_checked(&b[..]).unwrap_err(),
            HeaderError::BadVersion(9)
        );
        for t in [0u8, 9, 255] {
            let mut b = good.clone();
            b[3] = t;
            assert_eq!(
                RpcHeader::new_checked(&b[..]).unwrap_err(),
                HeaderError::UnknownType(t)
            );
        }
        let mut b = good.clone();
        b[4] |= 0x80;
        assert!(matches!(
            RpcHeader::new_checked(&b[..]),
            Err(HeaderError::ReservedFlags(_))
        ));
        let mut b = good.clone();
        b[4] |= 0x30;
        assert!(matches!(
            RpcHeader::new_checked(&b[..]),
            Err(HeaderError::BadClass(_))
        ));
        let mut r = sample();
        r.frag_count = 0;
        r.frag_index = 0;
        assert_eq!(
            RpcHeader::new_checked(&packet(&r, &[1])[..]).unwrap_err(),
            HeaderError::ZeroFragmentCount
        );
        let mut r = sample();
        r.frag_index = 3;
        assert_eq!(
            RpcHeader::new_checked(&packet(&r, &[1])[..]).unwrap_err(),
            HeaderError::FragmentIndexOutOfRange { index: 3, count: 3 }
        );
        let mut r = sample();
        r.frag_count = 1;
        r.frag_index = 0;
        r.msg_len = 10;
        assert_eq!(
            RpcHeader::new_checked(&packet(&r, &[1; 11])[..]).unwrap_err(),
            HeaderError::LengthMismatch {
                payload: 11,
                msg_len: 10
            }
        );
        let mut r = sample();
        r.msg_len = 10;
        assert_eq!(
            RpcHeader::new_checked(&packet(&r, &[1; 11])[..]).unwrap_err(),
            HeaderError::FragmentLongerThanMessage {
                payload: 11,
                msg_len: 10
            }
        );
        assert_eq!(
            RpcHeader::new_checked(&packet(&sample(), &[])[..]).unwrap_err(),
            HeaderError::EmptyFragment { count: 3 }
        );
        let mut r = sample();
        r.msg_len = 2;
        assert_eq!(
            RpcHeader::new_checked(&packet(&r, &[1])[..]).unwrap_err(),
            HeaderError::LengthLies {
                msg_len: 2,
                count: 3
            }
        );
    }

    #[test]
    fn unchecked_view_of_short_buffer_does_not_panic() {
        let h = RpcHeader::new_unchecked(&[1u8, 2, 3][..]);
        assert_eq!(h.session(), 0);
        assert_eq!(h.payload(), &[] as &[u8]);
        let _ = format!("{h:?}");
        let mut small = [0u8; 8];
        assert!(sample().emit(&mut small).is_err());
    }

    #[test]
    fn fuzz_check_over_seeded_random_inputs() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x0072_7063_5f68_6472);
        let base = packet(&sample(), &[7; 900]);
        for i in 0..5000 {
            let data: Vec<u8> = if i % 2 == 0 {
                // Valid-ish: mutate a few bytes of a good packet and maybe cut it.
                let mut d = base.clone();
                for _ in 0..rng.gen_range(0..4) {
                    let at = rng.gen_range(0..d.len());
                    d[at] = rng.gen();
                }
                let cut = rng.gen_range(0..=d.len());
                d.truncate(cut);
                d
            } else {
                let n = rng.gen_range(0..80);
                (0..n).map(|_| rng.gen()).collect()
            };
            fuzz_check(&data);
        }
    }
}
