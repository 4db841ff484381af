//! Cardholder SMS notifications, in Chinese or English, never with the full PAN.

use chrono::NaiveDateTime;
use domain::Amount;
use serde::Serialize;

use super::{AccountId, Language};

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsKind {
    /// A sale debited the account.
    Sale,
    /// A pre-authorization completion debited the account.
    Completion,
    /// A void credited the sale back.
    Void,
    /// A refund credited the account.
    Refund,
    /// A reversal undid an earlier transaction.
    Reversal,
    /// A credit adjustment gave back money debited in error (the acquirer's
    /// reconciliation asked for it).
    Adjustment,
}

impl SmsKind {
    fn zh(self) -> &'static str {
        match self {
            SmsKind::Sale => "消费",
            SmsKind::Completion => "预授权完成",
            SmsKind::Void => "撤销",
            SmsKind::Refund => "退货",
            SmsKind::Reversal => "冲正",
            SmsKind::Adjustment => "差错退款",
        }
    }

    fn en(self) -> &'static str {
        match self {
            SmsKind::Sale => "sale",
            SmsKind::Completion => "pre-auth completion",
            SmsKind::Void => "void",
            SmsKind::Refund => "refund",
            SmsKind::Reversal => "reversal",
            SmsKind::Adjustment => "refund of an erroneous debit",
        }
    }
}

/// One SMS in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sms {
    /// Position in the outbox, from 1.
    pub seq: u64,
    /// When it was sent (bank local time, ISO 8601).
    #[serde(serialize_with = "super::ser_time")]
    pub time: NaiveDateTime,
    /// The cardholder's account.
    pub account: AccountId,
    /// The phone number it went to.
    pub phone: String,
    /// The language it is written in.
    pub language: Language,
    /// What it reports.
    pub kind: SmsKind,
    /// The RRN of the transaction it reports.
    pub rrn: String,
    /// The text.
    pub text: String,
}

/// What one notification says.
pub(crate) struct Notice<'a> {
    pub kind: SmsKind,
    pub debit: bool,
    pub masked_pan: &'a str,
    pub amount: Amount,
    pub merchant: &'a str,
    pub available: Amount,
}

/// The text of a notification in `language`.
pub(crate) fn render(language: Language, time: NaiveDateTime, n: &Notice<'_>) -> String {
    let merchant = n.merchant.trim();
    match language {
        Language::Zh => {
            let merchant = if merchant.is_empty() {
                "未知商户"
            } else {
                merchant
            };
            let dir = if n.debit { "支出" } else { "存入" };
            format!(
                "【posguard模拟银行】您的卡{}于{}在{}{}，{}{}，可用余额{}。",
                n.masked_pan,
                time.format("%m月%d日%H:%M"),
                merchant,
                n.kind.zh(),
                dir,
                n.amount,
                n.available
            )
        }
        Language::En => {
            let merchant = if merchant.is_empty() {
                "unknown merchant"
            } else {
                merchant
            };
            let dir = if n.debit { "debit" } else { "credit" };
            format!(
                "[posguard SimBank] Card {}: {} at {} on {}, {} {}. Available balance {}.",
                n.masked_pan,
                n.kind.en(),
                merchant,
                time.format("%Y-%m-%d %H:%M"),
                dir,
                n.amount,
                n.available
            )
        }
    }
}
