//! Error types of generated views, codecs, setters and server dispatch.
//! Must stay allocation-free except [`AppError`]'s optional owned message.

use std::borrow::Cow;

/// A payload failed validation in a view's `new_checked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// Shorter than the message's fixed front section.
    #[error("payload too short: {have} bytes, fixed section needs {need}")]
    TooShort { need: usize, have: usize },
    /// A variable-size field's (offset, length) slot points outside the payload or
    /// into the fixed section.
    #[error("field `{field}`: slot out of bounds")]
    SlotOutOfBounds { field: &'static str },
    /// A repeated or nested field's bytes are malformed.
    #[error("field `{field}`: malformed contents")]
    Malformed { field: &'static str },
}

/// An owned message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The caller's buffer is too small.
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    /// A field or the message exceeds the 4 GiB offsets of the layout.
    #[error("message too large for the wire layout")]
    TooLarge,
}

/// A view could not be decoded into an owned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload failed validation.
    #[error(transparent)]
    View(#[from] ViewError),
    /// A `string` field is not UTF-8.
    #[error("field `{field}`: not UTF-8")]
    Utf8 { field: &'static str },
}

/// `set(rpc, 'f', v)` could not rewrite the field in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The new bytes are longer than the field's existing space.
    #[error("field `{field}`: {need} bytes do not fit in {have}")]
    DoesNotFit {
        field: &'static str,
        have: usize,
        need: usize,
    },
    /// The integer does not fit the field's wire width (e.g. int32).
    #[error("field `{field}`: value out of range")]
    OutOfRange { field: &'static str },
}

/// An application handler's error, answered to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("application error {code}: {message}")]
pub struct AppError {
    /// Application-defined code.
    pub code: u32,
    /// Human-readable message.
    pub message: Cow<'static, str>,
}

impl AppError {
    /// An error with `code` and `message`.
    pub fn new(code: u32, message: impl Into<Cow<'static, str>>) -> Self {
        AppError {
            code,
            message: message.into(),
        }
    }
}

/// A generated `dispatch` could not produce a response payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No method with this id in the service.
    #[error("unknown method id {0}")]
    UnknownMethod(u16),
    /// The request payload failed validation.
    #[error("malformed request: {0}")]
    Malformed(#[from] ViewError),
    /// The handler returned an error.
    #[error(transparent)]
    App(AppError),
    /// The response did not fit the response buffer.
    #[error("encoding the response: {0}")]
    Encode(#[from] EncodeError),
}
