//! Helpers of generated message views and encoders: little-endian loads/stores at
//! offsets of the fixed front section, (offset, length) slots into the variable tail,
//! length-prefixed item sequences, and the [`Enc`] writer.
//!
//! Layout of a generated message payload (all little-endian, no padding):
//! `[fixed front section: scalars inline, 8-byte (u32 offset, u32 len) slots][tail]`.
//! A slot is either `(0, 0)` (empty / absent) or points at bytes entirely inside the
//! tail. Repeated scalars are packed arrays; repeated strings, bytes and messages are
//! sequences of `(u32 len, bytes)`; a nested message is a complete payload of its type.
//!
//! None of these panic; out-of-range reads return zero/empty (views only call them at
//! offsets their `new_checked` validated, so that never happens in practice).

use super::errors::{EncodeError, SetError, ViewError};

macro_rules! rd {
    ($name:ident, $t:ty, $n:literal) => {
        /// Little-endian load at `at` (0 when out of range).
        #[inline(always)]
        pub fn $name(b: &[u8], at: usize) -> $t {
            match b.get(at..at + $n) {
                Some(s) => {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(s);
                    <$t>::from_le_bytes(a)
                }
                None => <$t>::default(),
            }
        }
    };
}
rd!(rd_u32, u32, 4);
rd!(rd_i32, i32, 4);
rd!(rd_u64, u64, 8);
rd!(rd_i64, i64, 8);
rd!(rd_f32, f32, 4);
rd!(rd_f64, f64, 8);

/// Byte at `at` as a bool (non-zero = true).
#[inline(always)]
pub fn rd_bool(b: &[u8], at: usize) -> bool {
    b.get(at).is_some_and(|x| *x != 0)
}

/// Stores `v` little-endian at `at`; `false` when out of range.
#[inline(always)]
pub fn wr(b: &mut [u8], at: usize, v: &[u8]) -> bool {
    match b.get_mut(at..at + v.len()) {
        Some(d) => {
            d.copy_from_slice(v);
            true
        }
        None => false,
    }
}

/// The bytes a slot at `slot_at` points to (empty when out of range).
#[inline(always)]
pub fn slot_bytes(buf: &[u8], slot_at: usize) -> &[u8] {
    let off = rd_u32(buf, slot_at) as usize;
    let len = rd_u32(buf, slot_at + 4) as usize;
    match off.checked_add(len) {
        Some(end) => buf.get(off..end).unwrap_or_default(),
        None => &[],
    }
}

/// Validates the slot at `slot_at`: `(0, 0)` or inside `[fixed_len, buf.len())`.
#[inline]
pub fn check_slot(
    buf: &[u8],
    fixed_len: usize,
    slot_at: usize,
    field: &'static str,
) -> Result<(), ViewError> {
    let off = rd_u32(buf, slot_at) as u64;
    let len = rd_u32(buf, slot_at + 4) as u64;
    if (off == 0 && len == 0) || (off >= fixed_len as u64 && off + len <= buf.len() as u64) {
        Ok(())
    } else {
        Err(ViewError::SlotOutOfBounds { field })
    }
}

/// `true` when the slot at `slot_at` is `(0, 0)` (an absent nested message).
#[inline]
pub fn slot_is_empty(buf: &[u8], slot_at: usize) -> bool {
    rd_u32(buf, slot_at) == 0 && rd_u32(buf, slot_at + 4) == 0
}

/// Rewrites the bytes of the slot at `slot_at` in place when `v` fits the field's
/// current length; the slot's length becomes `v.len()`.
pub fn set_slot_bytes(
    buf: &mut [u8],
    slot_at: usize,
    v: &[u8],
    field: &'static str,
) -> Result<(), SetError> {
    let off = rd_u32(buf, slot_at) as usize;
    let have = rd_u32(buf, slot_at + 4) as usize;
    if v.len() > have {
        return Err(SetError::DoesNotFit {
            field,
            have,
            need: v.len(),
        });
    }
    if !wr(buf, off, v) || !wr(buf, slot_at + 4, &(v.len() as u32).to_le_bytes()) {
        return Err(SetError::DoesNotFit {
            field,
            have,
            need: v.len(),
        });
    }
    Ok(())
}

/// Iterator over a `(u32 len, bytes)*` sequence; yields an error once and stops when
/// the sequence is truncated.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    rest: &'a [u8],
    field: &'static str,
}

impl<'a> Items<'a> {
    /// Items of `bytes` (the contents of a repeated string/bytes/message field).
    pub fn new(bytes: &'a [u8], field: &'static str) -> Self {
        Items { rest: bytes, field }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<&'a [u8], ViewError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let len = rd_u32(self.rest, 0) as usize;
        let item = self.rest.get(4..).and_then(|r| r.get(..len));
        match item {
            Some(item) if self.rest.len() >= 4 => {
                self.rest = self.rest.get(4 + len..).unwrap_or_default();
                Some(Ok(item))
            }
            _ => {
                self.rest = &[];
                Some(Err(ViewError::Malformed { field: self.field }))
            }
        }
    }
}

/// Packed little-endian items of `size` bytes each, or `Malformed` when `bytes` is not
/// a multiple of `size`.
pub fn packed<'a>(
    bytes: &'a [u8],
    size: usize,
    field: &'static str,
) -> Result<std::slice::ChunksExact<'a, u8>, ViewError> {
    if size == 0 || !bytes.len().is_multiple_of(size) {
        return Err(ViewError::Malformed { field });
    }
    Ok(bytes.chunks_exact(size))
}

/// Writer of one encoded message into a caller's buffer: the fixed section at the
/// front (zeroed by [`Enc::new`]) and a growing tail behind it.
#[derive(Debug)]
pub struct Enc<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Enc<'a> {
    /// Starts a message whose fixed section is `fixed_len` bytes.
    pub fn new(buf: &'a mut [u8], fixed_len: usize) -> Result<Self, EncodeError> {
        let have = buf.len();
        match buf.get_mut(..fixed_len) {
            Some(f) => f.fill(0),
            None => {
                return Err(EncodeError::BufferTooSmall {
                    need: fixed_len,
                    have,
                })
            }
        }
        Ok(Enc {
            buf,
            pos: fixed_len,
        })
    }

    /// Stores `v` at `at` in the fixed section.
    #[inline]
    pub fn put(&mut self, at: usize, v: &[u8]) -> Result<(), EncodeError> {
        if wr(self.buf, at, v) {
            Ok(())
        } else {
            Err(EncodeError::BufferTooSmall {
                need: at + v.len(),
                have: self.buf.len(),
            })
        }
    }

    /// Current end of the tail.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Appends `v` to the tail.
    #[inline]
    pub fn push(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if wr(self.buf, self.pos, v) {
            self.pos += v.len();
            Ok(())
        } else {
            Err(EncodeError::BufferTooSmall {
                need: self.pos + v.len(),
                have: self.buf.len(),
            })
        }
    }

    /// Appends `u32 len` then `v`.
    pub fn push_item(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(v.len()).map_err(|_| EncodeError::TooLarge)?;
        self.push(&len.to_le_bytes())?;
        self.push(v)
    }

    /// The free tail space (for encoding a nested message in place).
    pub fn rest(&mut self) -> &mut [u8] {
        let pos = self.pos.min(self.buf.len());
        &mut self.buf[pos..]
    }

    /// Marks `n` bytes written into [`Enc::rest`].
    pub fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Points the slot at `slot_at` to tail bytes `[start, pos)`; an empty range is
    /// written as the `(0, 0)` slot.
    pub fn close_slot(&mut self, slot_at: usize, start: usize) -> Result<(), EncodeError> {
        let len = self.pos.saturating_sub(start);
        let (off, len) = if len == 0 { (0, 0) } else { (start, len) };
        let off = u32::try_from(off).map_err(|_| EncodeError::TooLarge)?;
        let len = u32::try_from(len).map_err(|_| EncodeError::TooLarge)?;
        self.put(slot_at, &off.to_le_bytes())?;
        self.put(slot_at + 4, &len.to_le_bytes())
    }

    /// Like [`Enc::close_slot`] but a present nested message always gets a non-`(0,0)`
    /// slot, even when it encodes to zero bytes.
    pub fn close_message_slot(&mut self, slot_at: usize, start: usize) -> Result<(), EncodeError> {
        let len = self.pos.saturating_sub(start);
        let off = u32::try_from(start).map_err(|_| EncodeError::TooLarge)?;
        let len = u32::try_from(len).map_err(|_| EncodeError::TooLarge)?;
        self.put(slot_at, &off.to_le_bytes())?;
        self.put(slot_at + 4, &len.to_le_bytes())
    }

    /// Overwrites a `u32` at `at` (a length prefix reserved earlier).
    pub fn patch_u32(&mut self, at: usize, v: usize) -> Result<(), EncodeError> {
        let v = u32::try_from(v).map_err(|_| EncodeError::TooLarge)?;
        self.put(at, &v.to_le_bytes())
    }

    /// Total bytes written.
    pub fn finish(self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_validate_and_rewrite() {
        let mut buf = [0u8; 20];
        let mut e = Enc::new(&mut buf, 8).expect("fits");
        let s = e.pos();
        e.push(b"hello").expect("fits");
        e.close_slot(0, s).expect("fits");
        let n = e.finish();
        assert_eq!(n, 13);
        assert!(check_slot(&buf[..n], 8, 0, "f").is_ok());
        assert_eq!(slot_bytes(&buf, 0), b"hello");
        assert!(check_slot(&buf[..12], 8, 0, "f").is_err());
        assert!(set_slot_bytes(&mut buf, 0, b"hi", "f").is_ok());
        assert_eq!(slot_bytes(&buf, 0), b"hi");
        assert!(matches!(
            set_slot_bytes(&mut buf, 0, b"hey", "f"),
            Err(SetError::DoesNotFit { .. })
        ));
        // Slot pointing into the fixed section or overflowing u32 arithmetic.
        buf[..8].copy_from_slice(&[4, 0, 0, 0, 2, 0, 0, 0]);
        assert!(check_slot(&buf, 8, 0, "f").is_err());
        buf[..8].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(check_slot(&buf, 8, 0, "f").is_err());
        assert_eq!(slot_bytes(&buf, 0), b"");
    }

    #[test]
    fn items_stop_on_truncation() {
        let data = [2, 0, 0, 0, b'a', b'b', 5, 0, 0, 0, b'x'];
        let v: Vec<_> = Items::new(&data, "f").collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], Ok(&b"ab"[..]));
        assert!(v[1].is_err());
        assert!(packed(&[1, 2, 3], 2, "f").is_err());
        assert_eq!(rd_u32(&[1, 0], 0), 0);
    }
}
