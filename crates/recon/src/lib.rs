//! posguard's reconciliation against the issuer, sans IO.
//!
//! Reversals undo phantom debits as they happen; reconciliation is the backstop. It
//! reads the issuer's daily clearing file through a [`ClearingParser`] (bad lines are
//! reported with their line numbers, the rest still used), matches every line to the
//! journal — by RRN and authorization code, falling back to terminal + link STAN +
//! amount — and classifies every difference ([`Class`]). Each finding carries the
//! evidence from both sides and the action clear rules allow ([`Action`]): reverse
//! at the issuer, capture, or hand to a person as an exception.
//!
//! Clearing lines near the cut-off may be published in the next day's file: a sale
//! with no issuer record is only reported as missing once the following day's file
//! has been seen too (or the caller says it will not come).

use std::collections::HashMap;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use sha2::{Digest, Sha256};

/// What a clearing line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKind {
    /// The cardholder was debited for a sale.
    Sale,
    /// The cardholder was debited for a pre-authorization completion.
    Completion,
    /// A void credited a sale back.
    Void,
    /// A refund credited the cardholder.
    Refund,
    /// A reversal credited a sale or completion back.
    Reversal,
    /// A void was reversed: the cardholder is debited again.
    VoidReversal,
    /// A refund was reversed: the cardholder is debited again.
    RefundReversal,
    /// A credit adjustment gave back money debited in error (reconciliation asked for
    /// it); the line carries the adjusted sale's RRN.
    Adjustment,
}

impl LineKind {
    /// Reads the `type` column.
    pub fn parse(s: &str) -> Option<LineKind> {
        Some(match s {
            "sale" => LineKind::Sale,
            "completion" => LineKind::Completion,
            "void" => LineKind::Void,
            "refund" => LineKind::Refund,
            "reversal" => LineKind::Reversal,
            "void_reversal" => LineKind::VoidReversal,
            "refund_reversal" => LineKind::RefundReversal,
            "adjustment" => LineKind::Adjustment,
            _ => return None,
        })
    }

    /// The `type` column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Sale => "sale",
            LineKind::Completion => "completion",
            LineKind::Void => "void",
            LineKind::Refund => "refund",
            LineKind::Reversal => "reversal",
            LineKind::VoidReversal => "void_reversal",
            LineKind::RefundReversal => "refund_reversal",
            LineKind::Adjustment => "adjustment",
        }
    }
}

/// One line of a clearing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingRecord {
    /// Its line number in the file (the header is line 1).
    pub line: usize,
    /// The file's business date.
    pub file_date: NaiveDate,
    /// RRN (the original's, for voids, refunds, completions and reversals).
    pub rrn: String,
    /// Authorization code.
    pub auth_code: String,
    /// STAN on the issuer link.
    pub stan: String,
    /// Terminal.
    pub terminal: String,
    /// Merchant.
    pub merchant: String,
    /// Masked PAN.
    pub masked_pan: String,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// Currency (alphabetic).
    pub currency: String,
    /// What happened.
    pub kind: LineKind,
    /// When the issuer applied it (its local time).
    pub time: NaiveDateTime,
}

impl ClearingRecord {
    /// One-line evidence text (no clear PAN: the file only has masked PANs).
    pub fn evidence(&self) -> String {
        format!(
            "issuer file {} line {}: {} rrn {} auth {} stan {} terminal {} {} {} at {}",
            self.file_date,
            self.line,
            self.kind.as_str(),
            self.rrn,
            self.auth_code,
            self.stan,
            self.terminal,
            self.amount_minor,
            self.currency,
            self.time
        )
    }
}

/// A parsed clearing file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFile {
    /// SHA-256 of the file's bytes (hex): ingestion is idempotent per hash.
    pub hash: String,
    /// Every valid line.
    pub records: Vec<ClearingRecord>,
    /// Every invalid line, kept whole.
    pub bad_lines: Vec<BadLine>,
}

/// A line that did not parse: its number, why, and its text (nothing is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Line number (the header is line 1).
    pub line: usize,
    /// Why it was refused.
    pub reason: String,
    /// Its fields, comma-joined.
    pub raw: String,
}

/// Why a whole file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The header is missing a column.
    #[error("clearing file lacks column {0}")]
    MissingColumn(&'static str),
    /// The file is not CSV.
    #[error("clearing file unreadable: {0}")]
    Unreadable(String),
    /// Too many lines.
    #[error("clearing file has more than {0} lines")]
    TooLong(usize),
}

/// Reads one issuer's clearing file format.
pub trait ClearingParser {
    /// Parses a file published for `file_date`.
    fn parse(&self, bytes: &[u8], file_date: NaiveDate) -> Result<ParsedFile, FileError>;
}

/// The issuer simulator's CSV (`rrn,auth_code,stan,terminal,merchant,masked_pan,token,
/// amount_minor,currency,type,time`).
#[derive(Debug, Clone, Copy)]
pub struct IssuerCsv {
    /// Most lines accepted in one file.
    pub max_lines: usize,
}

impl Default for IssuerCsv {
    fn default() -> IssuerCsv {
        IssuerCsv {
            max_lines: 20_000_000,
        }
    }
}

/// SHA-256 of a file's bytes, hex.
pub fn file_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ClearingParser for IssuerCsv {
    fn parse(&self, bytes: &[u8], file_date: NaiveDate) -> Result<ParsedFile, FileError> {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let headers = r
            .headers()
            .map_err(|e| FileError::Unreadable(e.to_string()))?
            .clone();
        let col = |name: &'static str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or(FileError::MissingColumn(name))
        };
        let c = [
            col("rrn")?,
            col("auth_code")?,
            col("stan")?,
            col("terminal")?,
            col("merchant")?,
            col("masked_pan")?,
            col("amount_minor")?,
            col("currency")?,
            col("type")?,
            col("time")?,
        ];
        let mut out = ParsedFile {
            hash: file_hash(bytes),
            ..ParsedFile::default()
        };
        for (i, rec) in r.records().enumerate() {
            let line = i + 2;
            if i >= self.max_lines {
                return Err(FileError::TooLong(self.max_lines));
            }
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    out.bad_lines.push(BadLine {
                        line,
                        reason: format!("unreadable: {e}"),
                        raw: String::new(),
                    });
                    continue;
                }
            };
            let raw = rec.iter().collect::<Vec<_>>().join(",");
            let mut bad = |reason: String| {
                out.bad_lines.push(BadLine {
                    line,
                    reason,
                    raw: raw.clone(),
                })
            };
            let get = |k: usize| rec.get(c[k]).unwrap_or("").trim();
            let rrn = get(0);
            if rrn.len() != 12 || !rrn.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bad(format!("rrn {rrn:?} is not 12 characters"));
                continue;
            }
            let Ok(amount_minor) = get(6).parse::<i64>() else {
                bad(format!("amount {:?} is not a number", get(6)));
                continue;
            };
            if amount_minor <= 0 || amount_minor > 999_999_999_999 {
                bad(format!("amount {amount_minor} out of range"));
                continue;
            }
            let Some(kind) = LineKind::parse(get(8)) else {
                bad(format!("unknown type {:?}", get(8)));
                continue;
            };
            let Ok(time) = NaiveDateTime::parse_from_str(get(9), "%Y-%m-%dT%H:%M:%S") else {
                bad(format!("time {:?} is not YYYY-MM-DDTHH:MM:SS", get(9)));
                continue;
            };
            out.records.push(ClearingRecord {
                line,
                file_date,
                rrn: rrn.to_owned(),
                auth_code: get(1).to_owned(),
                stan: get(2).to_owned(),
                terminal: get(3).to_owned(),
                merchant: get(4).to_owned(),
                masked_pan: get(5).to_owned(),
                amount_minor,
                currency: get(7).to_owned(),
                kind,
                time,
            });
        }
        Ok(out)
    }
}

/// What the journal says about one transaction (what reconciliation needs of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The journal id.
    pub txn_id: i64,
    /// RRN.
    pub rrn: String,
    /// Authorization code.
    pub auth_code: Option<String>,
    /// Terminal.
    pub terminal: String,
    /// STAN on the issuer link.
    pub link_stan: Option<i64>,
    /// `sale`, `completion`, `void`, `refund`, …
    pub kind: String,
    /// Journal state (`approved`, `declined`, `timed_out`, `reversed`, `voided`, …).
    pub state: String,
    /// Amount.
    pub amount_minor: i64,
    /// The original's RRN (voids, refunds, completions).
    pub original_rrn: Option<String>,
    /// Business date.
    pub date: NaiveDate,
    /// Captured (by a batch or at the cut-off).
    pub captured: bool,
    /// The credit adjustments the issuer acknowledged for it (amounts, in order): an
    /// adjustment line counts as money given back only when it matches one of them.
    pub acknowledged_adjustments: Vec<i64>,
}

impl JournalEntry {
    fn evidence(&self) -> String {
        format!(
            "posguard txn {} {} rrn {} auth {} terminal {} link stan {} {} state {} date {}{}",
            self.txn_id,
            self.kind,
            self.rrn,
            self.auth_code.as_deref().unwrap_or("-"),
            self.terminal,
            self.link_stan.map_or("-".into(), |s| s.to_string()),
            self.amount_minor,
            self.state,
            self.date,
            if self.captured { ", captured" } else { "" }
        )
    }
}

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The issuer debited, posguard recorded a failure or timeout.
    PhantomDebit,
    /// The issuer debited the same sale twice.
    DoubleDebit,
    /// posguard approved; the issuer has no record.
    MissingAtIssuer,
    /// Both sides have it, with different amounts.
    AmountMismatch,
    /// posguard recorded a reversal the issuer did not apply.
    ReversalNotApplied,
    /// Approved at the issuer and in the journal, never captured (the terminal never
    /// settled and no cut-off capture ran).
    Uncaptured,
    /// An issuer record posguard cannot match.
    UnknownAtPosguard,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 7] = [
        Class::PhantomDebit,
        Class::DoubleDebit,
        Class::MissingAtIssuer,
        Class::AmountMismatch,
        Class::ReversalNotApplied,
        Class::Uncaptured,
        Class::UnknownAtPosguard,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Class::PhantomDebit => "phantom_debit",
            Class::DoubleDebit => "double_debit",
            Class::MissingAtIssuer => "missing_at_issuer",
            Class::AmountMismatch => "amount_mismatch",
            Class::ReversalNotApplied => "reversal_not_applied",
            Class::Uncaptured => "uncaptured",
            Class::UnknownAtPosguard => "unknown_at_posguard",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What clear rules do about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a reversal of `amount_minor` for the transaction to the issuer (through the
    /// store-and-forward queue); the issuer's SMS tells the cardholder.
    ReverseAtIssuer {
        /// The journal transaction the reversal names.
        txn_id: i64,
        /// How much to give back.
        amount_minor: i64,
    },
    /// Capture the transaction now; the next settlement run pays the merchant.
    Capture {
        /// The transaction.
        txn_id: i64,
    },
    /// A person decides: it goes to the exception queue.
    Exception,
}

/// One difference, with the evidence from both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind.
    pub class: Class,
    /// The RRN it is about.
    pub rrn: String,
    /// The journal transaction, if posguard knows it.
    pub txn_id: Option<i64>,
    /// The amount at stake.
    pub amount_minor: i64,
    /// posguard's record and the issuer's lines.
    pub evidence: Vec<String>,
    /// What to do.
    pub action: Action,
}

/// The result of reconciling one date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Clearing lines used.
    pub lines: usize,
    /// Journal transactions considered.
    pub journal: usize,
    /// Lines matched by RRN (and authorization code, unless only the RRN matched).
    pub matched_by_rrn: usize,
    /// Lines matched by the fallback key (terminal, link STAN, amount).
    pub matched_by_fallback: usize,
    /// Sales with no issuer record yet whose line may still come in the next file.
    pub awaiting_next_file: Vec<String>,
    /// Every difference.
    pub findings: Vec<Finding>,
}

impl Outcome {
    /// Findings of one class.
    pub fn of(&self, class: Class) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.class == class)
    }
}

/// Reconciles business date `date`.
///
/// `journal` is every transaction of `date` and the day before (the cut-off window),
/// and may hold older ones: lines naming them match, but only the window is classified;
/// `clearing` every line of the files of `date` and the day before, plus the next
/// day's file when it exists (`next_file_seen`). Without it, an approved sale of
/// `date` with no issuer line is not yet reported missing but listed as awaiting.
pub fn reconcile(
    date: NaiveDate,
    journal: &[JournalEntry],
    clearing: &[ClearingRecord],
    next_file_seen: bool,
) -> Outcome {
    let by_rrn: HashMap<&str, &JournalEntry> =
        journal.iter().map(|t| (t.rrn.as_str(), t)).collect();
    let by_link: HashMap<(&str, i64, i64), &JournalEntry> = journal
        .iter()
        .filter_map(|t| {
            t.link_stan
                .map(|s| ((t.terminal.as_str(), s, t.amount_minor), t))
        })
        .collect();
    let mut out = Outcome {
        lines: clearing.len(),
        journal: journal.len(),
        ..Outcome::default()
    };
    // Per sale or completion (by its RRN): the net number of debits, how many debit
    // lines, the amount credit adjustments gave back, and the lines themselves (for
    // the evidence).
    #[derive(Default)]
    struct Tally<'a> {
        net: i64,
        debits: i64,
        /// Adjustment lines whose amount matches no adjustment the issuer
        /// acknowledged (a corrupt line): no money is computed from them.
        unmatched_adjustments: usize,
        /// Acknowledged adjustment amounts not yet matched by a line.
        acknowledged: Option<Vec<i64>>,
        lines: Vec<&'a ClearingRecord>,
    }
    let mut tally: HashMap<&str, Tally> = HashMap::new();
    for c in clearing {
        let by_key = || {
            let s = c.stan.parse::<i64>().ok()?;
            by_link
                .get(&(c.terminal.as_str(), s, c.amount_minor))
                .copied()
        };
        let matched = match by_rrn.get(c.rrn.as_str()).copied() {
            Some(t) if t.auth_code.as_deref().is_none_or(|a| a == c.auth_code) => {
                out.matched_by_rrn += 1;
                Some(t)
            }
            // No RRN, or another authorization code: the terminal/STAN/amount key
            // decides, else the RRN alone.
            by_rrn_only => match by_key() {
                Some(t) => {
                    out.matched_by_fallback += 1;
                    Some(t)
                }
                None => {
                    out.matched_by_rrn += usize::from(by_rrn_only.is_some());
                    by_rrn_only
                }
            },
        };
        let Some(t) = matched else {
            out.findings.push(Finding {
                class: Class::UnknownAtPosguard,
                rrn: c.rrn.clone(),
                txn_id: None,
                amount_minor: c.amount_minor,
                evidence: vec![
                    c.evidence(),
                    "posguard: no transaction with this RRN or terminal/STAN/amount".into(),
                ],
                action: Action::Exception,
            });
            continue;
        };
        let original = t.original_rrn.as_deref().unwrap_or(&t.rrn);
        let (key, delta) = match c.kind {
            LineKind::Sale | LineKind::Completion => (t.rrn.as_str(), 1),
            LineKind::Reversal => (t.rrn.as_str(), -1),
            LineKind::Void => (original, -1),
            LineKind::VoidReversal => (original, 1),
            LineKind::Adjustment => (t.rrn.as_str(), 0),
            LineKind::Refund | LineKind::RefundReversal => continue,
        };
        let e = tally.entry(key).or_default();
        e.net += delta;
        if c.kind == LineKind::Adjustment {
            let acknowledged = e
                .acknowledged
                .get_or_insert_with(|| t.acknowledged_adjustments.clone());
            match acknowledged.iter().position(|&a| a == c.amount_minor) {
                Some(i) => {
                    acknowledged.remove(i);
                }
                None => e.unmatched_adjustments += 1,
            }
        }
        e.debits += i64::from(matches!(c.kind, LineKind::Sale | LineKind::Completion));
        e.lines.push(c);
    }
    // Every sale and completion of the journal, and every one the file touched, in
    // RRN order (the findings' order does not depend on hashing).
    let mut keys: Vec<&str> = tally.keys().copied().collect();
    keys.extend(
        journal
            .iter()
            .filter(|t| matches!(t.kind.as_str(), "sale" | "completion"))
            .map(|t| t.rrn.as_str()),
    );
    keys.sort_unstable();
    keys.dedup();
    let none = Tally::default();
    let window_start = date.pred_opt().unwrap_or(date);
    for key in keys {
        let Some(t) = by_rrn.get(key).copied() else {
            continue;
        };
        // Older transactions are in the journal only so that lines about them (a
        // credit adjustment a day after the finding, published a day late) match.
        if !matches!(t.kind.as_str(), "sale" | "completion") || t.date < window_start {
            continue;
        }
        let lines = tally.get(key).unwrap_or(&none);
        let want = i64::from(t.state == "approved");
        // The evidence is only written for a finding.
        let finding = |class, amount_minor, action| Finding {
            class,
            rrn: key.to_owned(),
            txn_id: Some(t.txn_id),
            amount_minor,
            evidence: std::iter::once(t.evidence())
                .chain(lines.lines.iter().map(|c| c.evidence()))
                .collect(),
            action,
        };
        // What the cardholder still pays beyond what the journal says they owe. Money
        // given back is what the issuer acknowledged applying, published yet or not:
        // an adjustment's line can come a day late, after the sale's first line has
        // left the window, and counting only lines in the window then left a double
        // debit half given back (seen in the fault matrix). The lines cross-check it.
        let adjusted: i64 = t.acknowledged_adjustments.iter().sum();
        let extra = (lines.net - want) * t.amount_minor - adjusted;
        if lines.unmatched_adjustments > 0 {
            // An adjustment line of an amount the issuer never acknowledged: the file
            // misreports money given back. A person looks at it; the money below is
            // computed from what the issuer acknowledged, not from that line.
            let reported: i64 = lines
                .lines
                .iter()
                .filter(|c| c.kind == LineKind::Adjustment)
                .map(|c| c.amount_minor)
                .sum();
            out.findings.push(finding(
                Class::AmountMismatch,
                (reported - adjusted).abs(),
                Action::Exception,
            ));
        }
        if extra > 0 {
            let class = if want == 1 && lines.debits > 1 {
                Class::DoubleDebit
            } else if matches!(t.state.as_str(), "reversed" | "reversal_pending") {
                Class::ReversalNotApplied
            } else {
                Class::PhantomDebit
            };
            out.findings.push(finding(
                class,
                extra,
                Action::ReverseAtIssuer {
                    txn_id: t.txn_id,
                    amount_minor: extra,
                },
            ));
        } else if lines.net < want && adjusted == 0 {
            if t.date >= date && !next_file_seen {
                out.awaiting_next_file.push(key.to_owned());
            } else if t.date <= date {
                out.findings.push(finding(
                    Class::MissingAtIssuer,
                    t.amount_minor,
                    Action::Exception,
                ));
            }
        } else if extra < 0 {
            // Adjusted back more than was debited in error.
            out.findings
                .push(finding(Class::AmountMismatch, -extra, Action::Exception));
        } else if want == 1 {
            let debited = lines
                .lines
                .iter()
                .find(|c| matches!(c.kind, LineKind::Sale | LineKind::Completion))
                .map_or(t.amount_minor, |c| c.amount_minor);
            if debited != t.amount_minor {
                out.findings.push(finding(
                    Class::AmountMismatch,
                    (debited - t.amount_minor).abs(),
                    Action::Exception,
                ));
            } else if !t.captured && t.date <= date {
                out.findings.push(finding(
                    Class::Uncaptured,
                    t.amount_minor,
                    Action::Capture { txn_id: t.txn_id },
                ));
            }
        }
    }
    out
}
