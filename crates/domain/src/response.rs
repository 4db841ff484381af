//! Field 39 response codes, with the meanings posguard uses.

use std::fmt;
use std::str::FromStr;

use crate::{check_charset, DomainError};

/// An ISO 8583 field 39 response code: two alphanumeric characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseCode([u8; 2]);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        impl ResponseCode {
            $($(#[$doc])* pub const $name: ResponseCode = ResponseCode(*$code);)*

            /// A short English description of the code.
            pub fn description(self) -> &'static str {
                match &self.0 {
                    $($code => $text,)*
                    _ => "unknown response code",
                }
            }
        }
    };
}

codes! {
    /// 00 approved.
    APPROVED = b"00", "approved";
    /// 01 refer to card issuer.
    REFER_TO_ISSUER = b"01", "refer to card issuer";
    /// 03 invalid merchant.
    INVALID_MERCHANT = b"03", "invalid merchant";
    /// 04 pick up card.
    PICK_UP = b"04", "pick up card";
    /// 05 do not honour.
    DO_NOT_HONOUR = b"05", "do not honour";
    /// 06 error (used as a reversal reason: other).
    ERROR = b"06", "error";
    /// 12 invalid transaction.
    INVALID_TRANSACTION = b"12", "invalid transaction";
    /// 13 invalid amount.
    INVALID_AMOUNT = b"13", "invalid amount";
    /// 14 invalid card number.
    INVALID_CARD = b"14", "invalid card number";
    /// 15 no such issuer.
    NO_SUCH_ISSUER = b"15", "no such issuer";
    /// 25 unable to locate original.
    ORIGINAL_NOT_FOUND = b"25", "original transaction not found";
    /// 30 format error.
    FORMAT_ERROR = b"30", "format error";
    /// 41 lost card.
    LOST_CARD = b"41", "lost card";
    /// 43 stolen card.
    STOLEN_CARD = b"43", "stolen card";
    /// 51 insufficient funds.
    INSUFFICIENT_FUNDS = b"51", "insufficient funds";
    /// 54 expired card.
    EXPIRED_CARD = b"54", "expired card";
    /// 55 incorrect PIN.
    WRONG_PIN = b"55", "incorrect PIN";
    /// 57 transaction not permitted to cardholder.
    NOT_PERMITTED_CARDHOLDER = b"57", "not permitted to cardholder";
    /// 58 transaction not permitted to terminal.
    NOT_PERMITTED_TERMINAL = b"58", "not permitted to terminal";
    /// 61 exceeds amount limit.
    OVER_AMOUNT_LIMIT = b"61", "exceeds amount limit";
    /// 62 restricted card.
    RESTRICTED_CARD = b"62", "restricted card";
    /// 63 security violation.
    SECURITY_VIOLATION = b"63", "security violation";
    /// 65 exceeds frequency limit.
    OVER_FREQUENCY_LIMIT = b"65", "exceeds frequency limit";
    /// 68 response received too late.
    LATE_RESPONSE = b"68", "response received too late";
    /// 75 PIN tries exceeded.
    PIN_TRIES_EXCEEDED = b"75", "PIN tries exceeded";
    /// 77 batch number mismatch: sign on again.
    BATCH_MISMATCH = b"77", "batch number mismatch, sign on again";
    /// 91 issuer or switch inoperative.
    ISSUER_INOPERATIVE = b"91", "issuer or switch inoperative";
    /// 92 cannot route.
    CANNOT_ROUTE = b"92", "cannot route";
    /// 94 duplicate transmission.
    DUPLICATE = b"94", "duplicate transmission";
    /// 96 system malfunction.
    SYSTEM_MALFUNCTION = b"96", "system malfunction";
    /// 97 terminal not registered.
    TERMINAL_NOT_REGISTERED = b"97", "terminal not registered";
    /// 98 no response from issuer (also a reversal reason).
    NO_RESPONSE = b"98", "no response from issuer";
    /// 99 PIN format error: sign on again.
    PIN_FORMAT_ERROR = b"99", "PIN format error, sign on again";
    /// A0 MAC error: sign on again.
    MAC_ERROR = b"A0", "MAC error, sign on again";
}

impl ResponseCode {
    /// The code's two characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Whether the code means the transaction was approved.
    pub fn is_approved(self) -> bool {
        self == ResponseCode::APPROVED
    }
}

impl FromStr for ResponseCode {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 {
            return Err(DomainError::Length {
                what: "response code",
                expected: 2,
                got: s.len(),
            });
        }
        check_charset("response code", s, |c| c.is_ascii_alphanumeric())?;
        Ok(ResponseCode([s.as_bytes()[0], s.as_bytes()[1]]))
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_unknown() {
        let rc: ResponseCode = "A0".parse().unwrap();
        assert_eq!(rc, ResponseCode::MAC_ERROR);
        assert_eq!(rc.description(), "MAC error, sign on again");
        assert_eq!(
            "Z9".parse::<ResponseCode>().unwrap().description(),
            "unknown response code"
        );
        assert!("0".parse::<ResponseCode>().is_err());
        assert!(ResponseCode::APPROVED.is_approved());
    }
}
