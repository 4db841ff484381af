//! What rules can read: the transaction's attributes and its velocity counters.

use std::fmt;

use crate::expr::Value;

/// The type of an attribute or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Integer (money in minor units, counts, hours).
    Int,
    /// Boolean.
    Bool,
    /// String.
    Str,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Int => "integer",
            Type::Bool => "boolean",
            Type::Str => "string",
        })
    }
}

/// Whose activity a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// The card (its token).
    Card,
    /// The terminal.
    Terminal,
    /// The merchant.
    Merchant,
    /// The card's BIN.
    Bin,
    /// The same card, terminal and amount (duplicate swipes).
    Dup,
}

/// What a counter measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Attempts.
    Count,
    /// Sum of amounts attempted (minor units).
    Sum,
    /// Attempts declined (by risk, the acquirer or the issuer).
    Declines,
    /// Different cards.
    DistinctCards,
    /// Attempts with the same amount as this one.
    SameAmount,
}

/// How far back a counter looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// 60 seconds.
    S60,
    /// 10 minutes.
    M10,
    /// 1 hour.
    H1,
    /// 24 hours.
    D1,
}

impl Window {
    /// Length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Window::S60 => 60,
            Window::M10 => 600,
            Window::H1 => 3_600,
            Window::D1 => 86_400,
        }
    }
}

/// One velocity counter, e.g. `card.count_1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Counter {
    /// Whose activity.
    pub subject: Subject,
    /// What is measured.
    pub metric: Metric,
    /// Over how long.
    pub window: Window,
}

/// An attribute a rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// `amount`: minor units.
    Amount,
    /// `currency`: ISO 4217 alphabetic code.
    Currency,
    /// `kind`: sale, preauth, completion, balance, refund, void.
    Kind,
    /// `mcc`: merchant category code.
    Mcc,
    /// `entry`: chip, contactless, magstripe, fallback, manual, unknown.
    Entry,
    /// `chip_card`: the card has a chip (service code 2xx or 6xx).
    ChipCard,
    /// `pin`: a PIN was entered.
    Pin,
    /// `hour`: local hour at the merchant, 0–23.
    Hour,
    /// `brand`: visa, mastercard, unionpay, …
    Brand,
    /// `bin`: first six digits.
    Bin,
    /// `merchant.class`: small, standard, large.
    MerchantClass,
    /// `merchant.status`: active, under_review, suspended.
    MerchantStatus,
    /// `merchant.age_days`: days since onboarding.
    MerchantAgeDays,
    /// `merchant.risk`: low, medium, high.
    MerchantRisk,
    /// `terminal.distance_km`: reported location vs registered install location.
    TerminalDistanceKm,
    /// A velocity counter.
    Counter(Counter),
}

const SIMPLE: &[(&str, Attr, Type)] = &[
    ("amount", Attr::Amount, Type::Int),
    ("currency", Attr::Currency, Type::Str),
    ("kind", Attr::Kind, Type::Str),
    ("mcc", Attr::Mcc, Type::Str),
    ("entry", Attr::Entry, Type::Str),
    ("chip_card", Attr::ChipCard, Type::Bool),
    ("pin", Attr::Pin, Type::Bool),
    ("hour", Attr::Hour, Type::Int),
    ("brand", Attr::Brand, Type::Str),
    ("bin", Attr::Bin, Type::Str),
    ("merchant.class", Attr::MerchantClass, Type::Str),
    ("merchant.status", Attr::MerchantStatus, Type::Str),
    ("merchant.age_days", Attr::MerchantAgeDays, Type::Int),
    ("merchant.risk", Attr::MerchantRisk, Type::Str),
    ("terminal.distance_km", Attr::TerminalDistanceKm, Type::Int),
];

impl Attr {
    /// Reads an attribute name: a simple attribute or `subject.metric_window`.
    pub fn parse(name: &str) -> Option<Attr> {
        if let Some((_, a, _)) = SIMPLE.iter().find(|(n, _, _)| *n == name) {
            return Some(*a);
        }
        let (subject, rest) = name.split_once('.')?;
        let subject = match subject {
            "card" => Subject::Card,
            "terminal" => Subject::Terminal,
            "merchant" => Subject::Merchant,
            "bin" => Subject::Bin,
            "dup" => Subject::Dup,
            _ => return None,
        };
        let (metric, window) = rest.rsplit_once('_')?;
        let metric = match metric {
            "count" => Metric::Count,
            "sum" => Metric::Sum,
            "declines" => Metric::Declines,
            "distinct_cards" => Metric::DistinctCards,
            "same_amount" => Metric::SameAmount,
            _ => return None,
        };
        let window = match window {
            "60s" | "1m" => Window::S60,
            "10m" => Window::M10,
            "1h" => Window::H1,
            "1d" => Window::D1,
            _ => return None,
        };
        // Card-level and duplicate counters look back at most 10 minutes per event.
        let short = matches!(metric, Metric::DistinctCards | Metric::SameAmount);
        if (short || subject == Subject::Dup) && matches!(window, Window::H1 | Window::D1) {
            return None;
        }
        Some(Attr::Counter(Counter {
            subject,
            metric,
            window,
        }))
    }

    /// The attribute's type.
    pub fn ty(self) -> Type {
        match self {
            Attr::Counter(_) => Type::Int,
            a => SIMPLE
                .iter()
                .find(|(_, x, _)| *x == a)
                .map_or(Type::Int, |(_, _, t)| *t),
        }
    }

    /// The attribute's name as rules write it.
    pub fn name(self) -> String {
        match self {
            Attr::Counter(c) => {
                let s = match c.subject {
                    Subject::Card => "card",
                    Subject::Terminal => "terminal",
                    Subject::Merchant => "merchant",
                    Subject::Bin => "bin",
                    Subject::Dup => "dup",
                };
                let m = match c.metric {
                    Metric::Count => "count",
                    Metric::Sum => "sum",
                    Metric::Declines => "declines",
                    Metric::DistinctCards => "distinct_cards",
                    Metric::SameAmount => "same_amount",
                };
                let w = match c.window {
                    Window::S60 => "60s",
                    Window::M10 => "10m",
                    Window::H1 => "1h",
                    Window::D1 => "1d",
                };
                format!("{s}.{m}_{w}")
            }
            a => SIMPLE
                .iter()
                .find(|(_, x, _)| *x == a)
                .map_or("?", |(n, _, _)| n)
                .to_owned(),
        }
    }
}

/// Everything known about one transaction when it is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Amount in minor units.
    pub amount: i64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// Transaction kind.
    pub kind: String,
    /// Merchant category code.
    pub mcc: String,
    /// How the card was read.
    pub entry: String,
    /// Whether the card has a chip.
    pub chip_card: bool,
    /// Whether a PIN was entered.
    pub pin: bool,
    /// Local hour at the merchant.
    pub hour: i64,
    /// Card brand.
    pub brand: String,
    /// First six digits.
    pub bin: String,
    /// Merchant class.
    pub merchant_class: String,
    /// Merchant status.
    pub merchant_status: String,
    /// Merchant age in days.
    pub merchant_age_days: i64,
    /// Merchant risk class.
    pub merchant_risk: String,
    /// Distance between reported and registered terminal location, km.
    pub terminal_distance_km: i64,
    /// The merchant's daily limit (minor units) when this transaction counts toward
    /// it, else 0: the engine enforces it before any rule.
    pub merchant_day_limit: i64,
    /// Counter values the rule set reads (filled by the engine).
    pub counters: Vec<(Counter, i64)>,
}

impl Facts {
    /// A one-line record of the facts (counters excluded: a replay recomputes them).
    pub fn to_record(&self) -> String {
        format!(
            "amount={};currency={};kind={};mcc={};entry={};chip={};pin={};hour={};brand={};bin={};class={};status={};age={};risk={};km={};day_limit={}",
            self.amount,
            self.currency,
            self.kind,
            self.mcc,
            self.entry,
            self.chip_card,
            self.pin,
            self.hour,
            self.brand,
            self.bin,
            self.merchant_class,
            self.merchant_status,
            self.merchant_age_days,
            self.merchant_risk,
            self.terminal_distance_km,
            self.merchant_day_limit
        )
    }

    /// Reads a record written by [`Facts::to_record`].
    pub fn from_record(record: &str) -> Option<Facts> {
        let mut f = Facts::default();
        for part in record.split(';') {
            let (k, v) = part.split_once('=')?;
            let int = || v.parse::<i64>().ok();
            match k {
                "amount" => f.amount = int()?,
                "currency" => f.currency = v.into(),
                "kind" => f.kind = v.into(),
                "mcc" => f.mcc = v.into(),
                "entry" => f.entry = v.into(),
                "chip" => f.chip_card = v == "true",
                "pin" => f.pin = v == "true",
                "hour" => f.hour = int()?,
                "brand" => f.brand = v.into(),
                "bin" => f.bin = v.into(),
                "class" => f.merchant_class = v.into(),
                "status" => f.merchant_status = v.into(),
                "age" => f.merchant_age_days = int()?,
                "risk" => f.merchant_risk = v.into(),
                "km" => f.terminal_distance_km = int()?,
                "day_limit" => f.merchant_day_limit = int()?,
                _ => return None,
            }
        }
        Some(f)
    }

    /// The value of an attribute.
    pub fn get(&self, a: Attr) -> Value<'_> {
        match a {
            Attr::Amount => Value::Int(self.amount),
            Attr::Currency => Value::Str(&self.currency),
            Attr::Kind => Value::Str(&self.kind),
            Attr::Mcc => Value::Str(&self.mcc),
            Attr::Entry => Value::Str(&self.entry),
            Attr::ChipCard => Value::Bool(self.chip_card),
            Attr::Pin => Value::Bool(self.pin),
            Attr::Hour => Value::Int(self.hour),
            Attr::Brand => Value::Str(&self.brand),
            Attr::Bin => Value::Str(&self.bin),
            Attr::MerchantClass => Value::Str(&self.merchant_class),
            Attr::MerchantStatus => Value::Str(&self.merchant_status),
            Attr::MerchantAgeDays => Value::Int(self.merchant_age_days),
            Attr::MerchantRisk => Value::Str(&self.merchant_risk),
            Attr::TerminalDistanceKm => Value::Int(self.terminal_distance_km),
            Attr::Counter(c) => Value::Int(
                self.counters
                    .iter()
                    .find(|(k, _)| *k == c)
                    .map_or(0, |(_, v)| *v),
            ),
        }
    }
}
