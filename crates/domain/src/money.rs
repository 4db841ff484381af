//! Money: integer minor units in an ISO 4217 currency, never floating point.

use std::fmt;

use crate::DomainError;

/// An ISO 4217 currency posguard knows, with its numeric code and minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    numeric: u16,
}

/// (numeric code, alphabetic code, exponent): the currencies posguard accepts.
const CURRENCIES: &[(u16, &str, u8)] = &[
    (36, "AUD", 2),
    (48, "BHD", 3),
    (124, "CAD", 2),
    (156, "CNY", 2),
    (344, "HKD", 2),
    (392, "JPY", 0),
    (410, "KRW", 0),
    (446, "MOP", 2),
    (458, "MYR", 2),
    (702, "SGD", 2),
    (756, "CHF", 2),
    (764, "THB", 2),
    (826, "GBP", 2),
    (840, "USD", 2),
    (901, "TWD", 2),
    (978, "EUR", 2),
];

impl Currency {
    /// Chinese yuan renminbi, posguard's home currency.
    pub const CNY: Currency = Currency { numeric: 156 };
    /// United States dollar.
    pub const USD: Currency = Currency { numeric: 840 };

    fn entry(self) -> (u16, &'static str, u8) {
        CURRENCIES
            .iter()
            .copied()
            .find(|e| e.0 == self.numeric)
            .unwrap_or((self.numeric, "???", 2))
    }

    /// Looks a currency up by its ISO 4217 numeric code (field 49's content).
    pub fn from_numeric(code: u16) -> Result<Currency, DomainError> {
        CURRENCIES
            .iter()
            .find(|e| e.0 == code)
            .map(|e| Currency { numeric: e.0 })
            .ok_or_else(|| DomainError::UnknownCurrency(format!("{code:03}")))
    }

    /// Looks a currency up by its numeric code as three digits, or its alphabetic code.
    pub fn parse(s: &str) -> Result<Currency, DomainError> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
            let code = s
                .parse()
                .map_err(|_| DomainError::UnknownCurrency(s.to_owned()))?;
            return Currency::from_numeric(code);
        }
        CURRENCIES
            .iter()
            .find(|e| e.1.eq_ignore_ascii_case(s))
            .map(|e| Currency { numeric: e.0 })
            .ok_or_else(|| DomainError::UnknownCurrency(s.to_owned()))
    }

    /// The ISO 4217 numeric code.
    pub fn numeric(self) -> u16 {
        self.numeric
    }

    /// The ISO 4217 alphabetic code, e.g. `CNY`.
    pub fn code(self) -> &'static str {
        self.entry().1
    }

    /// How many decimal places the minor unit has (2 for CNY, 0 for JPY).
    pub fn exponent(self) -> u8 {
        self.entry().2
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money: integer minor units (fen for CNY) in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    /// The amount in minor units; negative only for debits in ledger arithmetic.
    pub minor: i64,
    /// The currency the minor units are counted in.
    pub currency: Currency,
}

impl Amount {
    /// Builds an amount from minor units.
    pub const fn new(minor: i64, currency: Currency) -> Amount {
        Amount { minor, currency }
    }

    /// Adds two amounts of the same currency; `None` on currency mismatch or overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        if self.currency != other.currency {
            return None;
        }
        Some(Amount::new(
            self.minor.checked_add(other.minor)?,
            self.currency,
        ))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent());
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10u64.pow(exp);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_and_display() {
        assert_eq!(Currency::parse("156").unwrap(), Currency::CNY);
        assert_eq!(Currency::parse("jpy").unwrap().exponent(), 0);
        assert!(Currency::parse("999").is_err());
        assert_eq!(
            Amount::new(123456, Currency::CNY).to_string(),
            "1234.56 CNY"
        );
        assert_eq!(Amount::new(-5, Currency::CNY).to_string(), "-0.05 CNY");
        assert_eq!(
            Amount::new(500, Currency::parse("JPY").unwrap()).to_string(),
            "500 JPY"
        );
        assert_eq!(
            Amount::new(1234, Currency::parse("BHD").unwrap()).to_string(),
            "1.234 BHD"
        );
    }
}
