//! The issuer's clearing file: one line per approved financial effect.

use chrono::{NaiveDate, NaiveDateTime};
use domain::{Currency, Rrn};
use serde::Serialize;

/// The CSV header of the clearing file.
pub const CLEARING_HEADER: [&str; 11] = [
    "rrn",
    "auth_code",
    "stan",
    "terminal",
    "merchant",
    "masked_pan",
    "token",
    "amount_minor",
    "currency",
    "type",
    "time",
];

/// What a clearing line records. Amounts are always positive; the type gives the
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearingType {
    /// A sale debited the cardholder.
    Sale,
    /// A pre-authorization completion debited the cardholder.
    Completion,
    /// A void credited a sale or completion back.
    Void,
    /// A refund credited the cardholder.
    Refund,
    /// A reversal credited a sale or completion back.
    Reversal,
    /// A reversal undid a void: the cardholder is debited again.
    VoidReversal,
    /// A reversal undid a refund: the cardholder is debited again.
    RefundReversal,
    /// A credit adjustment gave back money debited in error (the line carries the
    /// adjusted transaction's RRN and authorization code).
    Adjustment,
}

impl ClearingType {
    /// The text in the `type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ClearingType::Sale => "sale",
            ClearingType::Completion => "completion",
            ClearingType::Void => "void",
            ClearingType::Refund => "refund",
            ClearingType::Reversal => "reversal",
            ClearingType::VoidReversal => "void_reversal",
            ClearingType::RefundReversal => "refund_reversal",
            ClearingType::Adjustment => "adjustment",
        }
    }

    /// Whether this line debits the cardholder.
    pub fn is_debit(self) -> bool {
        matches!(
            self,
            ClearingType::Sale
                | ClearingType::Completion
                | ClearingType::VoidReversal
                | ClearingType::RefundReversal
        )
    }
}

/// One line of the clearing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingRecord {
    /// The transaction's RRN (field 37).
    pub rrn: Rrn,
    /// The authorization code of the approval this line belongs to.
    pub auth_code: String,
    /// Field 11 of the request on the link.
    pub stan: String,
    /// Field 41.
    pub terminal: String,
    /// Field 42.
    pub merchant: String,
    /// First six and last four digits.
    pub masked_pan: String,
    /// The PAN's token under the configured token key (`t<id>.<hex>`).
    pub token: String,
    /// The true amount, minor units.
    pub amount_minor: i64,
    /// The amount the file shows (differs only under the corrupt-line fault).
    pub published_amount_minor: i64,
    /// The currency.
    pub currency: Currency,
    /// What happened.
    pub kind: ClearingType,
    /// When the bank applied it (local time).
    pub time: NaiveDateTime,
    /// The file it is published in: the local date of `time`, or the next day under
    /// the late-line fault.
    pub file_date: NaiveDate,
}

/// Writes the records of `file_date` as CSV with [`CLEARING_HEADER`].
pub(crate) fn to_csv<'a>(
    records: impl Iterator<Item = &'a ClearingRecord>,
    file_date: NaiveDate,
) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut ok = w.write_record(CLEARING_HEADER).is_ok();
    for r in records.filter(|r| r.file_date == file_date) {
        let amount = r.published_amount_minor.to_string();
        let time = r.time.format("%Y-%m-%dT%H:%M:%S").to_string();
        ok &= w
            .write_record([
                r.rrn.as_str(),
                &r.auth_code,
                &r.stan,
                &r.terminal,
                &r.merchant,
                &r.masked_pan,
                &r.token,
                &amount,
                r.currency.code(),
                r.kind.as_str(),
                &time,
            ])
            .is_ok();
    }
    // Writing to a Vec cannot fail; a failure would only lose lines, so say so.
    if !ok {
        tracing::error!("clearing file: a line could not be written");
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}
