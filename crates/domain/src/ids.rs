//! Identifiers carried in ISO 8583 fields 11, 37, 41 and 42.

use std::fmt;
use std::str::FromStr;

use crate::{check_charset, check_digits, DomainError};

/// System trace audit number (field 11): six digits, 000001–999999 in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stan(u32);

impl Stan {
    /// The largest STAN; the next one wraps to 1.
    pub const MAX: u32 = 999_999;

    /// Builds a STAN from its number; 0 and values above [`Stan::MAX`] are refused.
    pub fn new(n: u32) -> Result<Self, DomainError> {
        if n == 0 || n > Self::MAX {
            return Err(DomainError::Range {
                what: "STAN",
                value: n.into(),
            });
        }
        Ok(Stan(n))
    }

    /// The STAN's number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The following STAN, wrapping from 999999 to 000001.
    pub fn next(self) -> Stan {
        if self.0 >= Self::MAX {
            Stan(1)
        } else {
            Stan(self.0 + 1)
        }
    }
}

impl FromStr for Stan {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_digits("STAN", s, 6)?;
        // Six checked digits always fit in u32.
        Stan::new(s.parse().map_err(|_| DomainError::Range {
            what: "STAN",
            value: 0,
        })?)
    }
}

impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// Retrieval reference number (field 37): twelve alphanumeric characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rrn([u8; 12]);

impl Rrn {
    /// The RRN's text.
    pub fn as_str(&self) -> &str {
        // Constructed only from checked ASCII alphanumerics.
        std::str::from_utf8(&self.0).unwrap_or("????????????")
    }
}

impl FromStr for Rrn {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 12 {
            return Err(DomainError::Length {
                what: "RRN",
                expected: 12,
                got: s.len(),
            });
        }
        check_charset("RRN", s, |c| c.is_ascii_alphanumeric())?;
        let mut b = [0u8; 12];
        b.copy_from_slice(s.as_bytes());
        Ok(Rrn(b))
    }
}

impl fmt::Display for Rrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! fixed_ascii_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                std::str::from_utf8(&self.0).unwrap_or("?")
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != $len {
                    return Err(DomainError::Length { what: $what, expected: $len, got: s.len() });
                }
                check_charset($what, s, |c| c.is_ascii_alphanumeric())?;
                let mut b = [0u8; $len];
                b.copy_from_slice(s.as_bytes());
                Ok($name(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

fixed_ascii_id!(
    /// Card acceptor terminal identification (field 41): eight alphanumerics.
    TerminalId,
    8,
    "terminal id"
);
fixed_ascii_id!(
    /// Card acceptor (merchant) identification code (field 42): fifteen alphanumerics.
    MerchantId,
    15,
    "merchant id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stan_parses_and_wraps() {
        let s: Stan = "999999".parse().unwrap();
        assert_eq!(s.next().to_string(), "000001");
        assert!("000000".parse::<Stan>().is_err());
        assert!("12345".parse::<Stan>().is_err());
        assert!("12a456".parse::<Stan>().is_err());
    }

    #[test]
    fn ids_check_length_and_charset() {
        assert_eq!(
            "00000001".parse::<TerminalId>().unwrap().as_str(),
            "00000001"
        );
        assert!("0000001".parse::<TerminalId>().is_err());
        assert!("0000 001".parse::<TerminalId>().is_err());
        assert!("952718182217875".parse::<MerchantId>().is_ok());
        assert!("A1B2C3D4E5F6".parse::<Rrn>().is_ok());
    }
}
