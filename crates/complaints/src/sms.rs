//! The issuers' transaction SMS, read back: a cardholder who complains often has
//! nothing but the text their bank sent. Two templates are known — the issuer
//! simulator's Chinese and English ones, which follow the common shape of Chinese
//! banks' notices — and a text neither reads is `None` (the complaint is taken
//! without it). Never a full card number: the SMS carries a masked one.
//!
//! ```text
//! 【posguard模拟银行】您的卡622848******1234于11月20日10:02在HAPPY MART消费，支出123.45 CNY，可用余额9876.55 CNY。
//! [posguard SimBank] Card 622848******1234: sale at HAPPY MART on 2026-11-20 10:02, debit 123.45 CNY. Available balance 9876.55 CNY.
//! ```

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;

/// What the SMS reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsKind {
    /// A sale.
    Sale,
    /// A pre-authorization completion.
    Completion,
    /// A void.
    Void,
    /// A refund.
    Refund,
    /// A reversal.
    Reversal,
    /// A credit adjustment (an erroneous debit given back).
    Adjustment,
}

/// The words each kind is written with: (kind, Chinese, English).
const KINDS: [(SmsKind, &str, &str); 6] = [
    (SmsKind::Completion, "预授权完成", "pre-auth completion"),
    (
        SmsKind::Adjustment,
        "差错退款",
        "refund of an erroneous debit",
    ),
    (SmsKind::Sale, "消费", "sale"),
    (SmsKind::Void, "撤销", "void"),
    (SmsKind::Refund, "退货", "refund"),
    (SmsKind::Reversal, "冲正", "reversal"),
];

/// When the SMS says it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsTime {
    /// Date and time to the minute (the English template).
    Full(NaiveDateTime),
    /// Month, day and time without the year (the Chinese template): the complaint's
    /// date gives the year.
    MonthDay {
        /// 1–12.
        month: u32,
        /// 1–31.
        day: u32,
        /// Time of day, to the minute.
        time: NaiveTime,
    },
}

impl SmsTime {
    /// The time, in the year of `around` (or the year before when that would put it
    /// after `around`: an SMS of December read in January).
    pub fn resolve(self, around: NaiveDate) -> Option<NaiveDateTime> {
        match self {
            SmsTime::Full(t) => Some(t),
            SmsTime::MonthDay { month, day, time } => {
                use chrono::Datelike as _;
                let this = NaiveDate::from_ymd_opt(around.year(), month, day)?;
                let d = if this > around {
                    NaiveDate::from_ymd_opt(around.year() - 1, month, day)?
                } else {
                    this
                };
                Some(d.and_time(time))
            }
        }
    }
}

/// What an SMS says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsFacts {
    /// The card as the SMS masks it (`622848******1234`).
    pub masked_pan: String,
    /// Its last four digits.
    pub last4: String,
    /// The merchant's name as the SMS gives it.
    pub merchant: String,
    /// When.
    pub time: SmsTime,
    /// What.
    pub kind: SmsKind,
    /// Money out of the account (else in).
    pub debit: bool,
    /// How much, minor units.
    pub amount_minor: i64,
    /// In which currency (ISO 4217 letters).
    pub currency: String,
}

/// An SMS is at most this long (a long SMS is a few segments).
pub const MAX_SMS: usize = 1_000;

/// Reads an SMS of a known template; `None` if it is not one.
pub fn parse(text: &str) -> Option<SmsFacts> {
    let text = text.trim();
    if text.len() > MAX_SMS {
        return None;
    }
    zh(text).or_else(|| en(text))
}

/// `123.45 CNY` → (12345, "CNY"); two decimals, three currency letters.
fn money(s: &str) -> Option<(i64, String)> {
    let (num, cur) = s.trim().split_once(' ')?;
    let (units, cents) = num.split_once('.')?;
    if cents.len() != 2
        || units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !cents.bytes().all(|b| b.is_ascii_digit())
        || cur.len() != 3
        || !cur.bytes().all(|b| b.is_ascii_uppercase())
    {
        return None;
    }
    let minor = units.parse::<i64>().ok()?.checked_mul(100)? + cents.parse::<i64>().ok()?;
    Some((minor, cur.to_owned()))
}

/// A card number as masked (`622848******1234`: six digits, asterisks, four digits;
/// 12 to 19 characters) with its last four digits; `None` for anything else — a full
/// card number included.
pub fn masked(s: &str) -> Option<(String, String)> {
    let b = s.as_bytes();
    let ok = (12..=19).contains(&b.len())
        && b[..6].iter().all(u8::is_ascii_digit)
        && b[b.len() - 4..].iter().all(u8::is_ascii_digit)
        && b[6..b.len() - 4].iter().all(|c| *c == b'*')
        && b.len() > 10;
    ok.then(|| (s.to_owned(), s[s.len() - 4..].to_owned()))
}

fn zh(text: &str) -> Option<SmsFacts> {
    // 【bank】您的卡{masked}于{MM}月{DD}日{HH:MM}在{merchant}{kind}，{支出|存入}{amount}，可用余额…
    let rest = text.split_once('】')?.1.strip_prefix("您的卡")?;
    let (card, rest) = rest.split_once('于')?;
    let (masked_pan, last4) = masked(card)?;
    let (month, rest) = rest.split_once('月')?;
    let (day, rest) = rest.split_once('日')?;
    let (hhmm, rest) = rest.split_once('在')?;
    let time = NaiveTime::parse_from_str(hhmm, "%H:%M").ok()?;
    let (what, rest) = rest.split_once('，')?;
    let (kind, word) = KINDS
        .iter()
        .find_map(|(k, zh, _)| what.strip_suffix(zh).map(|merchant| (*k, merchant)))?;
    let merchant = word.trim().to_owned();
    let (debit, amount) = if let Some(a) = rest.strip_prefix("支出") {
        (true, a)
    } else {
        (false, rest.strip_prefix("存入")?)
    };
    let (amount_minor, currency) = money(amount.split_once('，')?.0)?;
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    NaiveDate::from_ymd_opt(2000, month, day)?;
    Some(SmsFacts {
        masked_pan,
        last4,
        merchant,
        time: SmsTime::MonthDay { month, day, time },
        kind,
        debit,
        amount_minor,
        currency,
    })
}

fn en(text: &str) -> Option<SmsFacts> {
    // [bank] Card {masked}: {kind} at {merchant} on {YYYY-MM-DD HH:MM}, {debit|credit} {amount}. Available balance …
    let rest = text.split_once("] Card ")?.1;
    let (card, rest) = rest.split_once(": ")?;
    let (masked_pan, last4) = masked(card)?;
    let (kind, rest) = KINDS.iter().find_map(|(k, _, en)| {
        rest.strip_prefix(en)
            .and_then(|r| r.strip_prefix(" at "))
            .map(|r| (*k, r))
    })?;
    let (merchant, rest) = rest.rsplit_once(" on ")?;
    let (when, rest) = rest.split_once(", ")?;
    let time = NaiveDateTime::parse_from_str(when, "%Y-%m-%d %H:%M").ok()?;
    let (debit, amount) = if let Some(a) = rest.strip_prefix("debit ") {
        (true, a)
    } else {
        (false, rest.strip_prefix("credit ")?)
    };
    let (amount_minor, currency) = money(amount.split_once(". ")?.0)?;
    Some(SmsFacts {
        masked_pan,
        last4,
        merchant: merchant.trim().to_owned(),
        time: SmsTime::Full(time),
        kind,
        debit,
        amount_minor,
        currency,
    })
}
