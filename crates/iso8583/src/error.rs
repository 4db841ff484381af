//! Typed codec errors: each names the part of the message and the byte offset.

use std::fmt;

/// The part of a message an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The message type indicator.
    Mti,
    /// The primary or secondary bitmap.
    Bitmap,
    /// A data element (2–128).
    Field(u8),
    /// Bytes after the last field.
    Trailer,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Mti => f.write_str("MTI"),
            Part::Bitmap => f.write_str("bitmap"),
            Part::Field(n) => write!(f, "field {n}"),
            Part::Trailer => f.write_str("trailer"),
        }
    }
}

/// What went wrong while packing or unpacking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The input ended before the part was complete.
    #[error("needs {needed} more bytes, {available} left")]
    Truncated {
        /// Bytes the part still needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length prefix is not a valid number.
    #[error("length prefix is not a number")]
    BadLengthPrefix,
    /// A length is above the field's maximum, or not the fixed length.
    #[error("length {len} not allowed (spec: {spec})")]
    BadLength {
        /// The length found or given.
        len: usize,
        /// The specification's rule, e.g. `fixed 6` or `max 19`.
        spec: String,
    },
    /// A character the field's class does not allow.
    #[error("byte 0x{byte:02X} at position {pos} not allowed in class {class}")]
    BadCharacter {
        /// The offending byte.
        byte: u8,
        /// Its position within the value.
        pos: usize,
        /// The field's class (`n`, `an`, …).
        class: &'static str,
    },
    /// A packed BCD nibble is not a decimal digit.
    #[error("nibble 0x{nibble:X} is not a BCD digit")]
    BadBcd {
        /// The offending nibble.
        nibble: u8,
    },
    /// Hexadecimal text is malformed.
    #[error("not hexadecimal text")]
    BadHex,
    /// The MTI is not four digits.
    #[error("MTI must be four digits")]
    BadMti,
    /// Bytes remain after the last field the bitmap announced.
    #[error("{count} unexpected bytes after the last field")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
    /// Field 1 (secondary bitmap) or 65 (tertiary bitmap indicator) set as data.
    #[error("fields 1 and 65 are bitmap indicators and cannot carry data")]
    ReservedField,
    /// Bit 65 announces a tertiary bitmap (fields 129–192), which posguard does not use.
    #[error("tertiary bitmap (fields 129-192) is not supported")]
    TertiaryBitmap,
    /// A field number outside 2–128.
    #[error("no such field")]
    NoSuchField,
}

/// A packing or unpacking error: which part, at which byte offset, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} at offset {offset}: {kind}")]
pub struct Error {
    /// The part of the message.
    pub part: Part,
    /// Byte offset in the packed message where the part (or the problem) starts.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(part: Part, offset: usize, kind: ErrorKind) -> Error {
        Error { part, offset, kind }
    }
}

/// A typed field accessor could not produce its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The message does not carry the field.
    #[error("field {0} is missing")]
    Missing(u8),
    /// The field is present but its content is not a valid value.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The field number.
        field: u8,
        /// Why the content is not acceptable.
        reason: String,
    },
}
