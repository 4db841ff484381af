//! Sub-field structure of the private and composite fields: 48 (batch totals), 60, 61,
//! 63 (UnionPay terminal conventions) and 90 (original data elements).

use crate::error::FieldError;
use crate::message::Message;

fn invalid(field: u8, reason: impl Into<String>) -> FieldError {
    FieldError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn digits_at(field: u8, s: &str, start: usize, len: usize) -> Result<u32, FieldError> {
    let part = s
        .get(start..start + len)
        .ok_or_else(|| invalid(field, "too short"))?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, format!("{part:?} is not numeric")));
    }
    part.parse()
        .map_err(|_| invalid(field, "number out of range"))
}

/// Field 60: transaction type, batch number, network management code, and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field60 {
    /// 60.1, two digits (e.g. `22` sale, `00` sign-on).
    pub tx_type: String,
    /// 60.2, the batch number.
    pub batch: u32,
    /// 60.3, the network management code (`001`, `201`, `301`…), if present.
    pub net_code: Option<String>,
    /// 60.4 onward (terminal capability digits), kept as sent.
    pub rest: String,
}

impl Field60 {
    /// Reads field 60 of a message.
    pub fn read(msg: &Message) -> Result<Field60, FieldError> {
        let s = msg.require_str(60)?;
        let tx_type = s
            .get(0..2)
            .ok_or_else(|| invalid(60, "too short"))?
            .to_owned();
        let batch = digits_at(60, s, 2, 6)?;
        let net_code = s.get(8..11).map(str::to_owned);
        let rest = s.get(11..).unwrap_or("").to_owned();
        Ok(Field60 {
            tx_type,
            batch,
            net_code,
            rest,
        })
    }

    /// The field's text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}{:06}", self.tx_type, self.batch % 1_000_000);
        if let Some(code) = &self.net_code {
            s.push_str(code);
            s.push_str(&self.rest);
        }
        s
    }
}

/// Field 61: the original transaction of a void, refund or completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field61 {
    /// 61.1 original batch number.
    pub batch: u32,
    /// 61.2 original trace number (STAN).
    pub stan: u32,
    /// 61.3 original date MMDD, if present.
    pub date: Option<String>,
}

impl Field61 {
    /// Reads field 61 of a message.
    pub fn read(msg: &Message) -> Result<Field61, FieldError> {
        let s = msg.require_str(61)?;
        let batch = digits_at(61, s, 0, 6)?;
        let stan = digits_at(61, s, 6, 6)?;
        let date = s.get(12..16).map(str::to_owned);
        Ok(Field61 { batch, stan, date })
    }

    /// The field's text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{:06}{:06}", self.batch % 1_000_000, self.stan % 1_000_000);
        if let Some(d) = &self.date {
            s.push_str(d);
        }
        s
    }
}

/// One half (domestic or foreign cards) of the field 48 settlement totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Debit (sale) amount in minor units.
    pub debit_minor: u64,
    /// Number of debits.
    pub debit_count: u32,
    /// Credit (refund, void) amount in minor units.
    pub credit_minor: u64,
    /// Number of credits.
    pub credit_count: u32,
    /// Result digit: 0 in requests; 1 balanced, 2 not balanced, 3 error in replies.
    pub result: u8,
}

/// Field 48 of 0500/0510: batch totals for domestic and foreign cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchTotals {
    /// Domestic cards.
    pub domestic: Totals,
    /// Foreign cards.
    pub foreign: Totals,
}

impl BatchTotals {
    const HALF: usize = 31;

    /// Reads field 48 of a batch settlement message (62 digits; 31 accepted).
    pub fn read(msg: &Message) -> Result<BatchTotals, FieldError> {
        let s = msg.require_str(48)?;
        if s.len() != Self::HALF && s.len() != 2 * Self::HALF {
            return Err(invalid(
                48,
                format!("batch totals need 31 or 62 digits, got {}", s.len()),
            ));
        }
        let half = |at: usize| -> Result<Totals, FieldError> {
            Ok(Totals {
                debit_minor: u64::from(digits_at(48, s, at, 6)?) * 1_000_000
                    + u64::from(digits_at(48, s, at + 6, 6)?),
                debit_count: digits_at(48, s, at + 12, 3)?,
                credit_minor: u64::from(digits_at(48, s, at + 15, 6)?) * 1_000_000
                    + u64::from(digits_at(48, s, at + 21, 6)?),
                credit_count: digits_at(48, s, at + 27, 3)?,
                result: digits_at(48, s, at + 30, 1)? as u8,
            })
        };
        let domestic = half(0)?;
        let foreign = if s.len() > Self::HALF {
            half(Self::HALF)?
        } else {
            Totals::default()
        };
        Ok(BatchTotals { domestic, foreign })
    }

    /// The field's 62 digits; amounts above 12 digits or counts above 999 are refused.
    pub fn to_text(&self) -> Result<String, FieldError> {
        let mut s = String::with_capacity(62);
        for t in [self.domestic, self.foreign] {
            if t.debit_minor > 999_999_999_999
                || t.credit_minor > 999_999_999_999
                || t.debit_count > 999
                || t.credit_count > 999
                || t.result > 9
            {
                return Err(invalid(48, "batch totals do not fit their digits"));
            }
            s.push_str(&format!(
                "{:012}{:03}{:012}{:03}{}",
                t.debit_minor, t.debit_count, t.credit_minor, t.credit_count, t.result
            ));
        }
        Ok(s)
    }
}

/// Field 90: original data elements of a host-to-host reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalData {
    /// Original MTI.
    pub mti: String,
    /// Original STAN.
    pub stan: String,
    /// Original transmission date and time (field 7), MMDDhhmmss.
    pub datetime: String,
    /// Acquiring institution id, 11 digits (zero-padded).
    pub acquirer: String,
    /// Forwarding institution id, 11 digits (zero-padded).
    pub forwarder: String,
}

impl OriginalData {
    /// Reads field 90 of a message.
    pub fn read(msg: &Message) -> Result<OriginalData, FieldError> {
        let s = msg.require_str(90)?;
        if s.len() != 42 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(90, "original data elements need 42 digits"));
        }
        Ok(OriginalData {
            mti: s[0..4].to_owned(),
            stan: s[4..10].to_owned(),
            datetime: s[10..20].to_owned(),
            acquirer: s[20..31].to_owned(),
            forwarder: s[31..42].to_owned(),
        })
    }

    /// The field's 42 digits.
    pub fn to_text(&self) -> String {
        format!(
            "{:0>4}{:0>6}{:0>10}{:0>11}{:0>11}",
            self.mti, self.stan, self.datetime, self.acquirer, self.forwarder
        )
    }
}

/// Named sub-fields of one field, for display.
pub type SubfieldList = Vec<(String, String)>;

/// The sub-fields this crate knows for a message's fields, by field number.
///
/// Used by tools that show a message to people; fields whose content does not parse
/// are left out rather than reported.
pub fn describe(msg: &Message) -> Vec<(u8, SubfieldList)> {
    let mut out = Vec::new();
    if let Ok(f) = Field60::read(msg) {
        let mut v = vec![
            ("60.1".into(), f.tx_type),
            ("60.2".into(), format!("{:06}", f.batch)),
        ];
        if let Some(c) = f.net_code {
            v.push(("60.3".into(), c));
        }
        if !f.rest.is_empty() {
            v.push(("60.4".into(), f.rest));
        }
        out.push((60, v));
    }
    if let Ok(f) = Field61::read(msg) {
        let mut v = vec![
            ("61.1".into(), format!("{:06}", f.batch)),
            ("61.2".into(), format!("{:06}", f.stan)),
        ];
        if let Some(d) = f.date {
            v.push(("61.3".into(), d));
        }
        out.push((61, v));
    }
    if let Some(s) = msg.get_str(63) {
        let split = s.char_indices().nth(3).map_or(s.len(), |(i, _)| i);
        let mut v = vec![("63.1".into(), s[..split].to_owned())];
        if split < s.len() {
            v.push(("63.2".into(), s[split..].to_owned()));
        }
        out.push((63, v));
    }
    if msg.mti().class() == 5 {
        if let Ok(t) = BatchTotals::read(msg) {
            let mut v = Vec::new();
            for (prefix, h) in [("domestic", t.domestic), ("foreign", t.foreign)] {
                v.push((format!("{prefix}.debit_minor"), h.debit_minor.to_string()));
                v.push((format!("{prefix}.debit_count"), h.debit_count.to_string()));
                v.push((format!("{prefix}.credit_minor"), h.credit_minor.to_string()));
                v.push((format!("{prefix}.credit_count"), h.credit_count.to_string()));
                v.push((format!("{prefix}.result"), h.result.to_string()));
            }
            out.push((48, v));
        }
    }
    if let Ok(o) = OriginalData::read(msg) {
        out.push((
            90,
            vec![
                ("90.1".into(), o.mti),
                ("90.2".into(), o.stan),
                ("90.3".into(), o.datetime),
                ("90.4".into(), o.acquirer),
                ("90.5".into(), o.forwarder),
            ],
        ));
    }
    out.sort_by_key(|(f, _)| *f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Mti;

    #[test]
    fn field60_and_61_round_trip() {
        let mut m = Message::new(Mti::lit("0200"));
        m.set(60, "2200000100060");
        m.set(61, "0000010000230321");
        let f60 = Field60::read(&m).unwrap();
        assert_eq!((f60.tx_type.as_str(), f60.batch), ("22", 1));
        assert_eq!(f60.net_code.as_deref(), Some("000"));
        assert_eq!(f60.to_text(), "2200000100060");
        let f61 = Field61::read(&m).unwrap();
        assert_eq!(
            (f61.batch, f61.stan, f61.date.as_deref()),
            (1, 23, Some("0321"))
        );
        assert_eq!(f61.to_text(), "0000010000230321");
    }

    #[test]
    fn batch_totals_round_trip() {
        let t = BatchTotals {
            domestic: Totals {
                debit_minor: 123_456,
                debit_count: 7,
                credit_minor: 100,
                credit_count: 1,
                result: 0,
            },
            foreign: Totals::default(),
        };
        let mut m = Message::new(Mti::lit("0500"));
        m.set(48, t.to_text().unwrap());
        assert_eq!(m.get_str(48).unwrap().len(), 62);
        assert_eq!(BatchTotals::read(&m).unwrap(), t);
    }
}
