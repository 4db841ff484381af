//! The acquirer's journal against the issuer's clearing file.
//!
//! Reports every sale the terminal was not told was approved that the issuer
//! nevertheless debited (phantom debit), every double debit, every approved sale the
//! issuer has no record of, and issuer records the acquirer does not know.

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDate;
use recon::{Class, ClearingParser, ClearingRecord, IssuerCsv};
use store::{Backend, SafRow, SafState, TxnRow, TxnState};

use crate::{Context, Result, ServiceError};

/// Reads one clearing file of the issuer (the same parser reconciliation uses); a line
/// that does not parse is an error naming its number: the check compares whole files.
pub fn parse_clearing(csv_text: &str, date: NaiveDate) -> Result<Vec<ClearingRecord>> {
    let parsed = IssuerCsv::default()
        .parse(csv_text.as_bytes(), date)
        .map_err(|e| ServiceError::BadInput(format!("clearing file {date}: {e}")))?;
    if let Some(b) = parsed.bad_lines.first() {
        return Err(ServiceError::BadInput(format!(
            "clearing file {date}: {} bad line(s), first line {}: {}",
            parsed.bad_lines.len(),
            b.line,
            b.reason
        )));
    }
    Ok(parsed.records)
}

/// What the comparison found.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    /// Journal transactions compared.
    pub journal_transactions: usize,
    /// Clearing lines compared.
    pub clearing_lines: usize,
    /// RRNs the issuer debited although the terminal was not told "approved" (or the
    /// sale was reversed or voided).
    pub phantom_debits: Vec<String>,
    /// RRNs debited more than once.
    pub double_debits: Vec<String>,
    /// Approved sales or completions the issuer has no debit for.
    pub missing_at_issuer: Vec<String>,
    /// Issuer records with an RRN the acquirer never issued.
    pub unknown_at_acquirer: Vec<String>,
    /// Sales both sides have, debited for another amount.
    pub amount_mismatches: Vec<String>,
    /// Approvals a terminal recorded that the journal does not show as approved.
    pub terminal_mismatches: Vec<String>,
}

impl CheckReport {
    /// Anomalies of every kind.
    pub fn anomalies(&self) -> usize {
        self.phantom_debits.len()
            + self.double_debits.len()
            + self.missing_at_issuer.len()
            + self.unknown_at_acquirer.len()
            + self.amount_mismatches.len()
            + self.terminal_mismatches.len()
    }
}

/// Compares the journal with the clearing lines (and, if given, the RRNs terminals
/// recorded as approved), through reconciliation's matching and classification: every
/// journal date is treated as past its cut-off (the files of every date and the day
/// after are expected to be given) and every approval as captured.
pub fn compare(
    journal: &[TxnRow],
    clearing: &[ClearingRecord],
    terminal_approved: Option<&[String]>,
) -> CheckReport {
    let date_of = |t: &TxnRow| NaiveDate::parse_from_str(&t.local_date, "%Y-%m-%d").ok();
    let entries: Vec<_> = journal
        .iter()
        .filter_map(|t| Some(crate::reconcile::journal_entry(t, date_of(t)?, true)))
        .collect();
    let last = entries.iter().map(|e| e.date).max().unwrap_or_default();
    let outcome = recon::reconcile(last, &entries, clearing, true);
    let rrns = |classes: &[Class]| -> Vec<String> {
        outcome
            .findings
            .iter()
            .filter(|f| classes.contains(&f.class))
            .map(|f| f.rrn.clone())
            .collect()
    };
    let mut report = CheckReport {
        journal_transactions: journal.len(),
        clearing_lines: clearing.len(),
        phantom_debits: rrns(&[Class::PhantomDebit, Class::ReversalNotApplied]),
        double_debits: rrns(&[Class::DoubleDebit]),
        missing_at_issuer: rrns(&[Class::MissingAtIssuer]),
        unknown_at_acquirer: rrns(&[Class::UnknownAtPosguard]),
        amount_mismatches: rrns(&[Class::AmountMismatch]),
        terminal_mismatches: Vec::new(),
    };
    if let Some(rrns) = terminal_approved {
        let approved: BTreeSet<&str> = journal
            .iter()
            .filter(|t| {
                t.response_code.as_deref() == Some("00") && t.kind != store::TxnKind::Reversal
            })
            .map(|t| t.rrn.as_str())
            .collect();
        report.terminal_mismatches = rrns
            .iter()
            .filter(|r| !approved.contains(r.as_str()))
            .cloned()
            .collect();
    }
    report
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "consistency check: {} journal transactions, {} clearing lines",
            self.journal_transactions, self.clearing_lines
        )?;
        let rows: [(&str, &Vec<String>); 6] = [
            (
                "phantom debits (debited, terminal not told approved)",
                &self.phantom_debits,
            ),
            ("double debits", &self.double_debits),
            (
                "approved sales missing at the issuer",
                &self.missing_at_issuer,
            ),
            (
                "issuer records unknown to the acquirer",
                &self.unknown_at_acquirer,
            ),
            ("amounts that differ", &self.amount_mismatches),
            (
                "terminal approvals not approved in the journal",
                &self.terminal_mismatches,
            ),
        ];
        for (what, list) in rows {
            write!(f, "  {what:<56} {:>6}", list.len())?;
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
                write!(f, "  e.g. {}", shown.join(", "))?;
            }
            writeln!(f)?;
        }
        if self.anomalies() == 0 {
            writeln!(f, "  result: no anomalies")
        } else {
            writeln!(f, "  result: {} anomalies", self.anomalies())
        }
    }
}

/// Every transaction in the store, in id order.
pub fn load_journal(db: &mut dyn Backend) -> Result<Vec<TxnRow>> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = db.transactions_after(after, 10_000).ctx("read journal")?;
        let Some(last) = page.last() else { break };
        after = last.txn_id;
        all.extend(page);
    }
    Ok(all)
}

/// The clearing dates to fetch: every local date in the journal and the day after.
pub fn clearing_dates(journal: &[TxnRow]) -> Vec<chrono::NaiveDate> {
    let mut dates = BTreeSet::new();
    for t in journal {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(&t.local_date, "%Y-%m-%d") {
            dates.insert(d);
            if let Some(next) = d.succ_opt() {
                dates.insert(next);
            }
        }
    }
    dates.into_iter().collect()
}

/// Store-and-forward entries waiting and transactions still waiting for the issuer.
pub fn pending_work(db: &mut dyn Backend) -> Result<(usize, usize)> {
    let saf = db.saf_in_state(SafState::Pending).ctx("read queue")?.len();
    let in_flight = db
        .count_in_state(TxnState::Authorizing)
        .ctx("read journal")?;
    Ok((saf, in_flight))
}

/// A transaction's store-and-forward entries: its reversal advice (the entry with its
/// id), then its credit adjustments in order.
pub fn saf_of(db: &mut dyn Backend, txn_id: i64) -> Result<Vec<SafRow>> {
    let mut out = Vec::new();
    if let Some(r) = db.saf_entry(txn_id).ctx("read queue")? {
        out.push(r);
    }
    out.extend(switch::adjustments(txn_id, |id| db.saf_entry(id)).ctx("read queue")?);
    Ok(out)
}

/// Every store-and-forward entry, whatever its state.
pub fn load_saf(db: &mut dyn Backend) -> Result<Vec<SafRow>> {
    let mut all = Vec::new();
    for state in SafState::ALL {
        all.extend(db.saf_in_state(state).ctx("read queue")?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: i64, state: &str, amount: i64) -> TxnRow {
        TxnRow {
            txn_id: id,
            request_key: format!("T/1/{id}/2"),
            terminal_id: "10000001".into(),
            merchant_id: "898310005411001".into(),
            batch: 1,
            stan: id,
            mti: "0200".into(),
            kind: store::TxnKind::Sale,
            amount_minor: amount,
            currency: "156".into(),
            pan_token: "tok".into(),
            masked_pan: "622848******1234".into(),
            rrn: format!("R{id:011}"),
            auth_code: Some(format!("{id:06}")),
            response_code: Some(if state == "approved" { "00" } else { "98" }.into()),
            state: store::TxnState::parse(state).expect("state"),
            original_rrn: None,
            link_stan: Some(id),
            reply_hex: None,
            local_date: "2026-11-20".into(),
            created_at: "2026-11-20T02:00:00+00:00".into(),
            updated_at: "2026-11-20T02:00:00+00:00".into(),
        }
    }

    #[test]
    fn every_anomaly_is_reported() {
        let line = |id: i64, amount: i64| {
            format!(
                "R{id:011},{id:06},{id:06},10000001,898310005411001,622848******1234,t,{amount},CNY,sale,2026-11-20T10:00:00\n"
            )
        };
        let csv = format!(
            "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n{}{}{}{}{}{}",
            line(1, 100),
            line(2, 200),
            line(3, 300),
            line(3, 300),
            line(5, 9_999),
            line(6, 600),
        );
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
        let lines = parse_clearing(&csv, date).expect("parse");
        let journal = [
            txn(1, "approved", 100),
            txn(2, "timed_out", 200),
            txn(3, "approved", 300),
            txn(4, "approved", 400),
            txn(5, "approved", 500),
        ];
        let approved = ["R00000000001".to_owned(), "R00000000002".to_owned()];
        let r = compare(&journal, &lines, Some(&approved));
        assert_eq!(r.phantom_debits, ["R00000000002"]);
        assert_eq!(r.double_debits, ["R00000000003"]);
        assert_eq!(r.missing_at_issuer, ["R00000000004"]);
        assert_eq!(r.amount_mismatches, ["R00000000005"]);
        assert_eq!(r.unknown_at_acquirer, ["R00000000006"]);
        assert_eq!(r.terminal_mismatches, ["R00000000002"]);
        assert_eq!(r.anomalies(), 6);
        assert!(parse_clearing(&format!("{csv}garbage\n"), date).is_err());
    }
}
