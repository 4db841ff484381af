//! Which transactions a complaint is about, ranked against what the complainant
//! remembers: the amount (exact, or within a tolerance: people round), the time
//! window, the card (masked form or last four digits — never a clear number), the
//! merchant or terminal, the RRN when they have a receipt. Declined, reversed,
//! voided and adjusted transactions are candidates too: "the terminal said failed"
//! is often exactly such a one.

use chrono::NaiveDateTime;
use serde::Serialize;

/// What the complainant knows (all optional; at least one must narrow the search).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clue {
    /// The amount, minor units.
    pub amount_minor: Option<i64>,
    /// How far from `amount_minor` a candidate may be (minor units).
    pub tolerance_minor: i64,
    /// From (local time).
    pub from: Option<NaiveDateTime>,
    /// To (local time).
    pub to: Option<NaiveDateTime>,
    /// The card as masked (`622848******1234`).
    pub masked_pan: Option<String>,
    /// The card's last four digits.
    pub last4: Option<String>,
    /// A merchant id, or a part of the merchant's name.
    pub merchant: Option<String>,
    /// A terminal id.
    pub terminal: Option<String>,
    /// The RRN on a receipt.
    pub rrn: Option<String>,
}

impl Clue {
    /// Whether the clue narrows the search at all.
    pub fn is_empty(&self) -> bool {
        self.amount_minor.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.masked_pan.is_none()
            && self.last4.is_none()
            && self.merchant.is_none()
            && self.terminal.is_none()
            && self.rrn.is_none()
    }
}

/// A transaction as the search sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub txn_id: i64,
    /// Its RRN.
    pub rrn: String,
    /// When (local time).
    pub at: NaiveDateTime,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// The card, masked.
    pub masked_pan: String,
    /// Merchant id.
    pub merchant_id: String,
    /// Merchant name.
    pub merchant_name: String,
    /// Terminal id.
    pub terminal_id: String,
}

/// A candidate with its score (higher first) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    /// The transaction.
    pub txn_id: i64,
    /// 0–100.
    pub score: u32,
    /// What matched (`rrn`, `amount`, `amount_near`, `time`, `card`, `last4`,
    /// `merchant`, `terminal`).
    pub matched: Vec<&'static str>,
}

/// Minutes before and after the window a candidate still counts (clocks differ, and
/// so do memories).
pub const WINDOW_SLACK_MINUTES: i64 = 10;

/// Ranks `candidates` against `clue`, best first, at most `limit`. A candidate that
/// contradicts the clue — another card, an amount beyond the tolerance, a time outside
/// the window, another RRN — is left out; the rest are scored by what matches, ties
/// broken by the nearest to the window's middle, then the newest.
pub fn rank(clue: &Clue, candidates: &[Candidate], limit: usize) -> Vec<Ranked> {
    let slack = chrono::Duration::minutes(WINDOW_SLACK_MINUTES);
    let middle = match (clue.from, clue.to) {
        (Some(f), Some(t)) => Some(f + (t - f) / 2),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    let mut out: Vec<(Ranked, i64, NaiveDateTime)> = Vec::new();
    for c in candidates {
        let mut score = 0u32;
        let mut matched = Vec::new();
        if let Some(r) = &clue.rrn {
            if c.rrn != r.trim() {
                continue;
            }
            score += 50;
            matched.push("rrn");
        }
        if let Some(a) = clue.amount_minor {
            let off = (c.amount_minor - a).abs();
            if off == 0 {
                score += 25;
                matched.push("amount");
            } else if off <= clue.tolerance_minor.max(0) {
                score += 15;
                matched.push("amount_near");
            } else {
                continue;
            }
        }
        if clue.from.is_some_and(|f| c.at < f - slack) || clue.to.is_some_and(|t| c.at > t + slack)
        {
            continue;
        }
        if clue.from.is_some() || clue.to.is_some() {
            score += 10;
            matched.push("time");
        }
        if let Some(m) = &clue.masked_pan {
            if !c.masked_pan.eq_ignore_ascii_case(m.trim()) {
                continue;
            }
            score += 15;
            matched.push("card");
        } else if let Some(l) = &clue.last4 {
            if !c.masked_pan.ends_with(l.trim()) {
                continue;
            }
            score += 10;
            matched.push("last4");
        }
        if let Some(m) = clue
            .merchant
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            // A remembered name is often half a name: a part of it counts, and a
            // mismatch does not exclude (the sign outside may not be the legal name).
            let name = c.merchant_name.to_lowercase();
            if c.merchant_id == m || name.contains(&m.to_lowercase()) {
                score += 10;
                matched.push("merchant");
            }
        }
        if let Some(t) = &clue.terminal {
            if c.terminal_id == t.trim() {
                score += 10;
                matched.push("terminal");
            }
        }
        let distance = middle.map_or(0, |m| (c.at - m).num_seconds().abs());
        out.push((
            Ranked {
                txn_id: c.txn_id,
                score: score.min(100),
                matched,
            },
            distance,
            c.at,
        ));
    }
    out.sort_by(|a, b| {
        b.0.score
            .cmp(&a.0.score)
            .then(a.1.cmp(&b.1))
            .then(b.2.cmp(&a.2))
            .then(a.0.txn_id.cmp(&b.0.txn_id))
    });
    out.into_iter().take(limit).map(|(r, _, _)| r).collect()
}
