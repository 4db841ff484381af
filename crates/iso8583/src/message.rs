//! A dialect-independent ISO 8583 message: an MTI and the values of its fields.
//!
//! Values are held in their logical form: text fields as ASCII text (`'='` in track
//! data), binary fields as raw bytes. The dialect decides how they look on the wire.

use std::fmt;
use std::str::FromStr;

use domain::{Amount, Currency, MerchantId, ResponseCode, Rrn, Stan, TerminalId};

use crate::error::FieldError;

/// Message type indicator: version, class, function and origin digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    /// Builds an MTI from four ASCII digits.
    pub const fn from_digits(d: [u8; 4]) -> Option<Mti> {
        let mut i = 0;
        while i < 4 {
            if !d[i].is_ascii_digit() {
                return None;
            }
            i += 1;
        }
        Some(Mti(d))
    }

    /// Builds a known-good MTI from a literal; panics at compile time if it is not.
    pub const fn lit(s: &str) -> Mti {
        let b = s.as_bytes();
        assert!(b.len() == 4);
        match Mti::from_digits([b[0], b[1], b[2], b[3]]) {
            Some(m) => m,
            None => panic!("MTI literal must be four digits"),
        }
    }

    /// The four ASCII digits.
    pub fn digits(&self) -> [u8; 4] {
        self.0
    }

    /// The MTI as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The message class digit (1 authorization, 2 financial, 4 reversal, 8 network…).
    pub fn class(&self) -> u8 {
        self.0[1] - b'0'
    }

    /// The function digit (0 request, 1 response, 2 advice, 3 advice response).
    pub fn function(&self) -> u8 {
        self.0[2] - b'0'
    }

    /// The origin digit (0 acquirer, 1 acquirer repeat, …).
    pub fn origin(&self) -> u8 {
        self.0[3] - b'0'
    }

    /// Whether this is a request or an advice (function digit even).
    pub fn is_request(&self) -> bool {
        self.function() % 2 == 0
    }

    /// The MTI of the response to this request: 0200 → 0210, 0421 → 0430.
    pub fn response(&self) -> Mti {
        let mut d = self.0;
        d[2] = b'0' + (self.function() | 1);
        d[3] = b'0' + (self.origin() & !1);
        Mti(d)
    }

    /// The same MTI with the origin marked as a repeat: 0420 → 0421.
    pub fn repeat(&self) -> Mti {
        let mut d = self.0;
        d[3] = b'0' + (self.origin() | 1);
        Mti(d)
    }
}

impl FromStr for Mti {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let invalid = || FieldError::Invalid {
            field: 0,
            reason: format!("MTI {s:?} is not four digits"),
        };
        if b.len() != 4 {
            return Err(invalid());
        }
        Mti::from_digits([b[0], b[1], b[2], b[3]]).ok_or_else(invalid)
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one field's value lives in the message's byte store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    field: u8,
    start: u32,
    len: u32,
}

/// An ISO 8583 message: MTI plus field values, kept in ascending field order.
///
/// All values share one byte buffer, so unpacking a message costs two allocations.
#[derive(Clone)]
pub struct Message {
    mti: Mti,
    entries: Vec<Entry>,
    data: Vec<u8>,
}

impl Message {
    /// An empty message of the given type.
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            entries: Vec::with_capacity(16),
            data: Vec::with_capacity(128),
        }
    }

    pub(crate) fn with_capacity(mti: Mti, fields: usize, bytes: usize) -> Message {
        Message {
            mti,
            entries: Vec::with_capacity(fields),
            data: Vec::with_capacity(bytes),
        }
    }

    /// The message type.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the message type.
    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// Sets a field's value (logical form). Content is checked when the message is packed.
    ///
    /// Field numbers outside 2–128 are refused at pack time, not here.
    pub fn set(&mut self, field: u8, value: impl AsRef<[u8]>) -> &mut Message {
        let value = value.as_ref();
        let len = value.len() as u32;
        match self.entries.binary_search_by_key(&field, |e| e.field) {
            Ok(i) => {
                let e = &mut self.entries[i];
                if len <= e.len {
                    let s = e.start as usize;
                    self.data[s..s + value.len()].copy_from_slice(value);
                    e.len = len;
                } else {
                    e.start = self.data.len() as u32;
                    e.len = len;
                    self.data.extend_from_slice(value);
                }
            }
            Err(i) => {
                let start = self.data.len() as u32;
                self.data.extend_from_slice(value);
                self.entries.insert(i, Entry { field, start, len });
            }
        }
        self
    }

    /// Appends a field known to be greater than every field already present (unpacking).
    pub(crate) fn push_ordered(&mut self, field: u8, start: usize) {
        let len = (self.data.len() - start) as u32;
        self.entries.push(Entry {
            field,
            start: start as u32,
            len,
        });
    }

    pub(crate) fn data_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Removes a field; returns whether it was present.
    pub fn remove(&mut self, field: u8) -> bool {
        match self.entries.binary_search_by_key(&field, |e| e.field) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the field is present.
    pub fn has(&self, field: u8) -> bool {
        self.entries
            .binary_search_by_key(&field, |e| e.field)
            .is_ok()
    }

    /// A field's value in logical form.
    pub fn get(&self, field: u8) -> Option<&[u8]> {
        let i = self
            .entries
            .binary_search_by_key(&field, |e| e.field)
            .ok()?;
        let e = self.entries[i];
        Some(&self.data[e.start as usize..(e.start + e.len) as usize])
    }

    /// A text field's value; `None` if absent or not UTF-8 (binary fields).
    pub fn get_str(&self, field: u8) -> Option<&str> {
        std::str::from_utf8(self.get(field)?).ok()
    }

    /// Every present field with its value, in ascending field order.
    pub fn fields(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.entries.iter().map(|e| {
            (
                e.field,
                &self.data[e.start as usize..(e.start + e.len) as usize],
            )
        })
    }

    /// The numbers of the present fields, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        self.entries.iter().map(|e| e.field)
    }

    /// A text field that must be present.
    pub fn require_str(&self, field: u8) -> Result<&str, FieldError> {
        let v = self.get(field).ok_or(FieldError::Missing(field))?;
        std::str::from_utf8(v).map_err(|_| FieldError::Invalid {
            field,
            reason: "not text".into(),
        })
    }

    fn parse_field<T: FromStr>(&self, field: u8) -> Result<T, FieldError>
    where
        T::Err: fmt::Display,
    {
        self.require_str(field)?
            .parse()
            .map_err(|e: T::Err| FieldError::Invalid {
                field,
                reason: e.to_string(),
            })
    }

    /// Field 11, the system trace audit number.
    pub fn stan(&self) -> Result<Stan, FieldError> {
        self.parse_field(11)
    }

    /// Sets field 11.
    pub fn set_stan(&mut self, stan: Stan) -> &mut Message {
        self.set(11, stan.to_string())
    }

    /// Field 37, the retrieval reference number.
    pub fn rrn(&self) -> Result<Rrn, FieldError> {
        self.parse_field(37)
    }

    /// Field 39, the response code.
    pub fn response_code(&self) -> Result<ResponseCode, FieldError> {
        self.parse_field(39)
    }

    /// Sets field 39.
    pub fn set_response_code(&mut self, rc: ResponseCode) -> &mut Message {
        self.set(39, rc.as_str())
    }

    /// Field 41, the terminal id.
    pub fn terminal_id(&self) -> Result<TerminalId, FieldError> {
        self.parse_field(41)
    }

    /// Field 42, the merchant id.
    pub fn merchant_id(&self) -> Result<MerchantId, FieldError> {
        self.parse_field(42)
    }

    /// Field 49, the transaction currency (numeric code).
    pub fn currency(&self) -> Result<Currency, FieldError> {
        let s = self.require_str(49)?;
        Currency::parse(s).map_err(|e| FieldError::Invalid {
            field: 49,
            reason: e.to_string(),
        })
    }

    /// Fields 4 and 49: the transaction amount in minor units of its currency.
    pub fn amount(&self) -> Result<Amount, FieldError> {
        let s = self.require_str(4)?;
        let invalid = || FieldError::Invalid {
            field: 4,
            reason: "not 12 digits".into(),
        };
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let minor: i64 = s.parse().map_err(|_| invalid())?;
        Ok(Amount::new(minor, self.currency()?))
    }

    /// Sets fields 4 and 49 from an amount; refuses negative or over-long amounts.
    pub fn set_amount(&mut self, amount: Amount) -> Result<&mut Message, FieldError> {
        if !(0..=999_999_999_999).contains(&amount.minor) {
            return Err(FieldError::Invalid {
                field: 4,
                reason: format!("{amount} cannot be sent"),
            });
        }
        self.set(4, format!("{:012}", amount.minor));
        Ok(self.set(49, format!("{:03}", amount.currency.numeric())))
    }
}

impl PartialEq for Message {
    /// Two messages are equal when their MTIs and field values are, however stored.
    fn eq(&self, other: &Message) -> bool {
        self.mti == other.mti
            && self.entries.len() == other.entries.len()
            && self.fields().eq(other.fields())
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    /// Lists field numbers and lengths only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("mti", &self.mti);
        let fields: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}[{}]", e.field, e.len))
            .collect();
        d.field("fields", &fields);
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mti_response_and_repeat() {
        assert_eq!(Mti::lit("0200").response().as_str(), "0210");
        assert_eq!(Mti::lit("0420").repeat().as_str(), "0421");
        assert_eq!(Mti::lit("0421").response().as_str(), "0430");
        assert_eq!(Mti::lit("0800").response().as_str(), "0810");
        assert!("02A0".parse::<Mti>().is_err());
    }

    #[test]
    fn set_keeps_order_and_replaces() {
        let mut m = Message::new(Mti::lit("0200"));
        m.set(41, "00000001").set(3, "000000").set(11, "000001");
        m.set(3, "310000").set(41, "TERMINAL-LONGER");
        let nums: Vec<u8> = m.field_numbers().collect();
        assert_eq!(nums, [3, 11, 41]);
        assert_eq!(m.get_str(3), Some("310000"));
        assert_eq!(m.get_str(41), Some("TERMINAL-LONGER"));
        assert!(m.remove(11));
        assert!(!m.has(11));
    }

    #[test]
    fn debug_never_shows_values() {
        let mut m = Message::new(Mti::lit("0200"));
        m.set(2, "4111111111111111");
        let s = format!("{m:?}");
        assert!(!s.contains("4111"), "{s}");
    }
}
