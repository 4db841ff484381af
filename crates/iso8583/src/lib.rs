//! posguard's ISO 8583 codec.
//!
//! Field specifications are data (`tables/iso87-ascii.txt`, `tables/cup-pos.txt`),
//! read by one generic packer and unpacker ([`Dialect::pack`], [`Dialect::unpack`]).
//! Framing ([`frame`]) is sans-IO. This crate does no IO and knows no async runtime.
//! Unpacking never panics: every malformed input is an [`Error`] naming the part of
//! the message and the byte offset.

mod dialect;
mod error;
pub mod frame;
mod mask;
mod message;
pub mod spec;
pub mod subfields;

pub use dialect::{Dialect, HeadEncoding, DIALECT_NAMES};
pub use error::{Error, ErrorKind, FieldError, Part};
pub use mask::{is_secret_field, masked_value};
pub use message::{Message, Mti};
