//! `posguard check`: the acquirer's journal against the issuer's clearing file.
//!
//! Reports every sale the terminal was not told was approved that the issuer
//! nevertheless debited (phantom debit), every double debit, every approved sale the
//! issuer has no record of, and issuer records the acquirer does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Context;
use clap::Args;
use store::TxnRow;

use crate::run_cli::StoreArgs;

/// `posguard check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The issuer simulator's HTTP API.
    #[arg(long, default_value = "127.0.0.1:9080")]
    issuer_http: String,
}

/// One line of the issuer's clearing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingLine {
    /// RRN (the original's, for voids, refunds, completions and reversals).
    pub rrn: String,
    /// `sale`, `completion`, `void`, `refund`, `reversal`, `void_reversal`, `refund_reversal`.
    pub kind: String,
    /// Amount in minor units.
    pub amount_minor: i64,
}

/// Reads clearing CSV (header `rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time`).
pub fn parse_clearing(csv_text: &str) -> anyhow::Result<Vec<ClearingLine>> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = r.headers().context("read clearing header")?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("clearing file lacks column {name}"))
    };
    let (rrn, kind, amount) = (col("rrn")?, col("type")?, col("amount_minor")?);
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("clearing line {}", i + 2))?;
        out.push(ClearingLine {
            rrn: rec.get(rrn).unwrap_or("").to_owned(),
            kind: rec.get(kind).unwrap_or("").to_owned(),
            amount_minor: rec.get(amount).and_then(|a| a.parse().ok()).unwrap_or(0),
        });
    }
    Ok(out)
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
            + self.terminal_mismatches.len()
    }
}

/// Compares the journal with the clearing lines (and, if given, the RRNs terminals
/// recorded as approved).
///
/// Every line names the issuer-side transaction by its own RRN; voids and reversals of
/// voids are mapped to the sale they act on through the journal (`original_rrn`).
pub fn compare(
    journal: &[TxnRow],
    clearing: &[ClearingLine],
    terminal_approved: Option<&[String]>,
) -> CheckReport {
    let by_rrn: BTreeMap<&str, &TxnRow> = journal.iter().map(|t| (t.rrn.as_str(), t)).collect();
    let original_of =
        |rrn: &str| -> Option<String> { by_rrn.get(rrn).and_then(|t| t.original_rrn.clone()) };
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for t in journal {
        if t.kind == "sale" || t.kind == "completion" {
            *expected.entry(t.rrn.clone()).or_default() += i64::from(t.state == "approved");
        }
    }
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    let mut debits: BTreeMap<String, i64> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for c in clearing {
        if !by_rrn.contains_key(c.rrn.as_str()) {
            unknown.insert(c.rrn.clone());
            continue;
        }
        // (the sale or completion affected, change in its debit count)
        let effect = match c.kind.as_str() {
            "sale" | "completion" => {
                *debits.entry(c.rrn.clone()).or_default() += 1;
                Some((c.rrn.clone(), 1))
            }
            "reversal" => Some((c.rrn.clone(), -1)),
            "void" => original_of(&c.rrn).map(|o| (o, -1)),
            "void_reversal" => original_of(&c.rrn).map(|o| (o, 1)),
            _ => None,
        };
        if let Some((key, delta)) = effect {
            *net.entry(key).or_default() += delta;
        }
    }
    let mut report = CheckReport {
        journal_transactions: journal.len(),
        clearing_lines: clearing.len(),
        ..CheckReport::default()
    };
    let keys: BTreeSet<&String> = expected.keys().chain(net.keys()).collect();
    for k in keys {
        let want = expected.get(k).copied().unwrap_or(0);
        let have = net.get(k).copied().unwrap_or(0);
        if debits.get(k).copied().unwrap_or(0) > 1 || have > want.max(1) {
            report.double_debits.push(k.clone());
        } else if have > want {
            report.phantom_debits.push(k.clone());
        } else if have < want {
            report.missing_at_issuer.push(k.clone());
        }
    }
    report.unknown_at_acquirer = unknown.into_iter().collect();
    if let Some(rrns) = terminal_approved {
        let approved: BTreeSet<&str> = journal
            .iter()
            .filter(|t| t.response_code.as_deref() == Some("00") && t.kind != "reversal")
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
        let rows: [(&str, &Vec<String>); 5] = [
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

/// Every transaction in the store.
pub fn load_journal(store: &str) -> anyhow::Result<Vec<TxnRow>> {
    let mut db = crate::node::open_store(store)?;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .transactions_after(after, 10_000)
            .context("read journal")?;
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

/// Runs `posguard check`.
pub fn run(a: CheckArgs) -> anyhow::Result<()> {
    let journal = load_journal(&a.store.location())?;
    let mut lines = Vec::new();
    for d in clearing_dates(&journal) {
        let url = format!("http://{}/clearing/{}", a.issuer_http, d.format("%Y-%m-%d"));
        let body = ureq::get(&url)
            .call()
            .with_context(|| format!("fetch {url}"))?
            .into_string()
            .context("read clearing file")?;
        lines.extend(parse_clearing(&body)?);
    }
    let report = compare(&journal, &lines, None);
    print!("{report}");
    if report.anomalies() > 0 {
        anyhow::bail!("{} anomalies", report.anomalies());
    }
    Ok(())
}

/// Store-and-forward entries waiting and transactions still waiting for the issuer.
pub fn pending_work(store: &str) -> anyhow::Result<(usize, usize)> {
    let mut db = crate::node::open_store(store)?;
    let saf = db.saf_in_state("pending").context("read queue")?.len();
    let in_flight = load_journal(store)?
        .iter()
        .filter(|t| t.state == "authorizing")
        .count();
    Ok((saf, in_flight))
}

/// Every store-and-forward entry, whatever its state.
pub fn load_saf(store: &str) -> anyhow::Result<Vec<store::SafRow>> {
    let mut db = crate::node::open_store(store)?;
    let mut all = Vec::new();
    for state in ["pending", "done", "exception"] {
        all.extend(db.saf_in_state(state).context("read queue")?);
    }
    Ok(all)
}
