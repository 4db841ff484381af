//! Domain values shared by every posguard crate.
//!
//! Each type is parsed once at the edge ("parse, don't validate") and can then be
//! trusted: a [`Stan`] is always six digits, an [`Amount`] always carries its
//! [`Currency`] and integer minor units.

mod ids;
mod luhn;
pub mod mask;
mod money;
mod response;

pub use ids::{MerchantId, Rrn, Stan, TerminalId};
pub use luhn::luhn_valid;
pub use mask::mask_pan;
pub use money::{Amount, Currency};
pub use response::ResponseCode;

/// Why a domain value could not be built from its text or number form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The text has the wrong length for this kind of value.
    #[error("{what}: expected {expected} characters, got {got}")]
    Length {
        /// The kind of value being parsed.
        what: &'static str,
        /// The required length (or maximum).
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// The text contains a character this kind of value does not allow.
    #[error("{what}: character {ch:?} at position {pos} is not allowed")]
    Character {
        /// The kind of value being parsed.
        what: &'static str,
        /// The offending character.
        ch: char,
        /// Its zero-based position.
        pos: usize,
    },
    /// A number is outside the range this kind of value allows.
    #[error("{what}: {value} is out of range")]
    Range {
        /// The kind of value being parsed.
        what: &'static str,
        /// The value given.
        value: i128,
    },
    /// The currency code is not one posguard knows.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
}

/// Checks that `s` has exactly `len` ASCII digits.
pub(crate) fn check_digits(what: &'static str, s: &str, len: usize) -> Result<(), DomainError> {
    if s.len() != len {
        return Err(DomainError::Length {
            what,
            expected: len,
            got: s.len(),
        });
    }
    check_charset(what, s, |c| c.is_ascii_digit())
}

/// Checks that every character of `s` satisfies `ok`.
pub(crate) fn check_charset(
    what: &'static str,
    s: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), DomainError> {
    match s.chars().enumerate().find(|(_, c)| !ok(*c)) {
        Some((pos, ch)) => Err(DomainError::Character { what, ch, pos }),
        None => Ok(()),
    }
}
