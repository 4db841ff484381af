//! Reconciliation over the store: ingest the issuer's clearing file (once per content
//! hash, every line kept), reconcile a business date with the sans-IO `recon` crate,
//! act on what clear rules allow, and queue the rest as exceptions.
//!
//! Actions taken here: an approved, debited, never-captured sale is captured (the next
//! settlement run pays the merchant). A finding that calls for money back at the issuer
//! (phantom debit, double debit, reversal not applied) queues a credit adjustment in
//! the store-and-forward queue (`switch::adjustment_entry`), which the running acquirer
//! sends; the finding is `auto_resolving` until the issuer answers — `auto_resolved`
//! on `00`, an open exception otherwise. One automatic adjustment per transaction: a
//! second call for one goes to a person. Every other class is queued as an exception
//! with the evidence, an owner and a deadline.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Duration, NaiveDate};
use recon::{Action, Class, ClearingParser, ClearingRecord, IssuerCsv, JournalEntry, LineKind};
use store::{
    Backend, CaptureRow, FindingRow, ReconFileRow, ReconLineRow, ReconRunRow, SafRow, Write,
};
use switch::NextAdjustment;

use crate::accounts::Actor;
use crate::money::{major, MoneyConfig};
use crate::{Result, ServiceError};

/// What ingesting a file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The file's hash.
    pub hash: String,
    /// The same file was ingested before: nothing changed.
    pub already: bool,
    /// Valid lines.
    pub lines: usize,
    /// Invalid lines: (line number, why).
    pub bad: Vec<(usize, String)>,
}

/// Ingests a clearing file for `date` (idempotent per date and content hash: two days
/// with no traffic publish identical files, and both count as seen).
pub fn ingest(
    db: &mut dyn Backend,
    bytes: &[u8],
    date: NaiveDate,
    name: &str,
    actor: &Actor,
    at: &str,
) -> Result<Ingested> {
    let parsed = IssuerCsv::default()
        .parse(bytes, date)
        .map_err(|e| ServiceError::BadInput(format!("clearing file {name}: {e}")))?;
    let bad: Vec<(usize, String)> = parsed
        .bad_lines
        .iter()
        .map(|b| (b.line, b.reason.clone()))
        .collect();
    let key = format!("{date}:{}", parsed.hash);
    if db.recon_file(&key)?.is_some() {
        return Ok(Ingested {
            hash: key,
            already: true,
            lines: parsed.records.len(),
            bad,
        });
    }
    for b in &parsed.bad_lines {
        tracing::warn!(file = name, line = b.line, reason = %b.reason, "clearing line refused");
    }
    let d = date.to_string();
    let file = ReconFileRow {
        file_hash: key.clone(),
        file_date: d.clone(),
        name: name.into(),
        lines: parsed.records.len() as i64,
        bad_lines: parsed.bad_lines.len() as i64,
        ingested_at: at.into(),
    };
    let audit = actor.audit(
        at,
        "recon.ingest",
        &format!("recon_file:{key}"),
        serde_json::Value::Null,
        serde_json::json!({
            "business_date": d, "name": name, "lines": file.lines, "bad_lines": file.bad_lines,
        }),
    );
    let mut writes = vec![Write::ReconFile(file), audit];
    for r in &parsed.records {
        writes.push(Write::ReconLine(ReconLineRow {
            file_hash: key.clone(),
            line: r.line as i64,
            file_date: d.clone(),
            valid: true,
            problem: String::new(),
            rrn: r.rrn.clone(),
            auth_code: r.auth_code.clone(),
            stan: r.stan.clone(),
            terminal: r.terminal.clone(),
            merchant: r.merchant.clone(),
            masked_pan: r.masked_pan.clone(),
            amount_minor: r.amount_minor,
            currency: r.currency.clone(),
            kind: r.kind.as_str().into(),
            at: r.time.format("%Y-%m-%dT%H:%M:%S").to_string(),
        }));
    }
    for b in &parsed.bad_lines {
        writes.push(Write::ReconLine(ReconLineRow {
            file_hash: key.clone(),
            line: b.line as i64,
            file_date: d.clone(),
            valid: false,
            problem: format!("{} | {}", b.reason, b.raw),
            rrn: String::new(),
            auth_code: String::new(),
            stan: String::new(),
            terminal: String::new(),
            merchant: String::new(),
            masked_pan: String::new(),
            amount_minor: 0,
            currency: String::new(),
            kind: String::new(),
            at: String::new(),
        }));
    }
    for chunk in writes.chunks(10_000) {
        db.apply(chunk)?;
    }
    Ok(Ingested {
        hash: key,
        already: false,
        lines: parsed.records.len(),
        bad,
    })
}

/// What reconciliation needs of a journal row.
pub fn journal_entry(t: &store::TxnRow, date: NaiveDate, captured: bool) -> JournalEntry {
    JournalEntry {
        txn_id: t.txn_id,
        rrn: t.rrn.clone(),
        auth_code: t.auth_code.clone(),
        terminal: t.terminal_id.clone(),
        link_stan: t.link_stan,
        kind: t.kind.to_string(),
        state: t.state.to_string(),
        amount_minor: t.amount_minor,
        original_rrn: t.original_rrn.clone(),
        date,
        captured,
        acknowledged_adjustments: Vec::new(),
    }
}

fn record_from(row: &ReconLineRow) -> Option<ClearingRecord> {
    Some(ClearingRecord {
        line: row.line as usize,
        file_date: NaiveDate::parse_from_str(&row.file_date, "%Y-%m-%d").ok()?,
        rrn: row.rrn.clone(),
        auth_code: row.auth_code.clone(),
        stan: row.stan.clone(),
        terminal: row.terminal.clone(),
        merchant: row.merchant.clone(),
        masked_pan: row.masked_pan.clone(),
        amount_minor: row.amount_minor,
        currency: row.currency.clone(),
        kind: LineKind::parse(&row.kind)?,
        time: chrono::NaiveDateTime::parse_from_str(&row.at, "%Y-%m-%dT%H:%M:%S").ok()?,
    })
}

/// The reconciliation report of one date.
#[derive(Debug, Clone, Default)]
pub struct ReconReport {
    /// The date.
    pub date: Option<NaiveDate>,
    /// Clearing lines used, journal transactions considered.
    pub lines: usize,
    /// Journal transactions considered.
    pub journal: usize,
    /// Matched by RRN + auth code, and by the fallback key.
    pub matched: (usize, usize),
    /// Invalid lines in the files used.
    pub bad_lines: usize,
    /// Sales whose issuer line may still come in the next file.
    pub awaiting: usize,
    /// Per class: (found, amount, auto-resolved).
    pub classes: BTreeMap<Class, (usize, i64, usize)>,
    /// Exceptions open after this run (all dates).
    pub open: usize,
    /// Age in days of the oldest open exception.
    pub oldest_open_days: i64,
}

impl fmt::Display for ReconReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reconciliation {}: {} clearing lines ({} bad), {} journal transactions; matched {} by RRN + auth code, {} by terminal/STAN/amount; {} awaiting the next file",
            self.date.map_or("?".into(), |d| d.to_string()),
            self.lines,
            self.bad_lines,
            self.journal,
            self.matched.0,
            self.matched.1,
            self.awaiting
        )?;
        writeln!(
            f,
            "  {:<22} {:>6} {:>12} {:>14} {:>6}",
            "class", "found", "amount", "automatic", "open"
        )?;
        for c in Class::ALL {
            let (n, amount, auto) = self.classes.get(&c).copied().unwrap_or_default();
            writeln!(
                f,
                "  {:<22} {:>6} {:>12} {:>14} {:>6}",
                c.name(),
                n,
                major(amount),
                auto,
                n - auto
            )?;
        }
        writeln!(
            f,
            "  exceptions open: {} (oldest {} day(s))",
            self.open, self.oldest_open_days
        )
    }
}

/// Reconciles business date `date` against the files ingested for `date - 1`, `date`
/// and (when present) `date + 1`.
pub fn reconcile_date(
    db: &mut dyn Backend,
    date: NaiveDate,
    cfg: &MoneyConfig,
    actor: &Actor,
    at: &str,
) -> Result<ReconReport> {
    let prev = date - Duration::days(1);
    let next = date + Duration::days(1);
    let calendar = crate::reference::calendar(db)?;
    let next_seen = db.recon_file_seen(&next.to_string())?;
    let mut dates = vec![prev.to_string(), date.to_string()];
    if next_seen {
        dates.push(next.to_string());
    }
    let rows = db.recon_lines(&dates)?;
    let bad_lines = rows.iter().filter(|r| !r.valid).count();
    let clearing: Vec<ClearingRecord> = rows
        .iter()
        .filter(|r| r.valid)
        .filter_map(record_from)
        .collect();
    let captured = db.captured_ids()?;
    let mut journal = Vec::new();
    let mut after = 0;
    loop {
        let page = db.transactions_after(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.txn_id;
        for t in page {
            let Some(bd) = cfg.business_date(&t.created_at) else {
                continue;
            };
            // The day before the window too: lines about its transactions (credit
            // adjustments) match them rather than being unknown.
            if bd < prev - Duration::days(1) || bd > date {
                continue;
            }
            let mut e = journal_entry(&t, bd, captured.contains(&t.txn_id));
            if matches!(t.kind, store::TxnKind::Sale | store::TxnKind::Completion) {
                let so_far = switch::adjustments(t.txn_id, |id| db.saf_entry(id))?;
                e.acknowledged_adjustments = switch::acknowledged_amounts(&so_far);
            }
            journal.push(e);
        }
    }
    let outcome = recon::reconcile(date, &journal, &clearing, next_seen);
    let mut report = ReconReport {
        date: Some(date),
        lines: outcome.lines,
        journal: outcome.journal,
        matched: (outcome.matched_by_rrn, outcome.matched_by_fallback),
        bad_lines,
        awaiting: outcome.awaiting_next_file.len(),
        ..ReconReport::default()
    };
    let existing: BTreeMap<String, FindingRow> = db
        .findings(None)?
        .into_iter()
        .map(|f| (f.finding_id.clone(), f))
        .collect();
    let mut writes = Vec::new();
    // Findings this run already updated.
    let mut touched = std::collections::BTreeSet::new();
    for f in &outcome.findings {
        let id = format!("{}:{}", f.class.name(), f.rrn);
        if let Action::Capture { txn_id } = f.action {
            writes.push(Write::Capture(CaptureRow {
                txn_id,
                how: "recon".into(),
                business_date: date.to_string(),
                at: at.into(),
            }));
        }
        if let Some(old) = existing.get(&id) {
            // Money still owed back after an automatic adjustment went through: the
            // next one, or a person.
            if let (
                Action::ReverseAtIssuer {
                    txn_id,
                    amount_minor,
                },
                true,
            ) = (&f.action, old.status.starts_with("auto"))
            {
                let mut next = old.clone();
                match give_back(db, &id, &f.rrn, *txn_id, *amount_minor, at)? {
                    GiveBack::Waiting => {}
                    GiveBack::Queued(e, action) => {
                        next.status = "auto_resolving".into();
                        next.notes = format!(
                            "{}{at}: {} still owed back; {action}\n",
                            old.notes,
                            major(*amount_minor)
                        );
                        writes.push(Write::Saf(e));
                    }
                    GiveBack::ByHand(action) => {
                        next.status = "open".into();
                        next.owner = Some("operations".into());
                        next.notes = format!("{}{at}: {action}\n", old.notes);
                    }
                }
                if next != *old {
                    next.updated_at = at.into();
                    touched.insert(id.clone());
                    writes.push(Write::FindingUpdate(next));
                }
            }
            let e = report.classes.entry(f.class).or_default();
            e.0 += 1;
            e.1 += f.amount_minor;
            e.2 += usize::from(old.status.starts_with("auto"));
            continue;
        }
        let (action, status, owner) = match f.action {
            Action::Capture { .. } => (
                "captured by reconciliation; settles in the next run".to_owned(),
                "auto_resolved",
                None,
            ),
            Action::ReverseAtIssuer {
                txn_id,
                amount_minor,
            } => match give_back(db, &id, &f.rrn, txn_id, amount_minor, at)? {
                GiveBack::Queued(e, action) => {
                    writes.push(Write::Saf(e));
                    (action, "auto_resolving", None)
                }
                // Another class of finding already queued one: it resolves with it.
                GiveBack::Waiting => (
                    "an adjustment is already on its way".to_owned(),
                    "auto_resolving",
                    None,
                ),
                GiveBack::ByHand(action) => (action, "open", Some("operations".to_owned())),
            },
            Action::Exception => (
                "investigate with the issuer".to_owned(),
                "open",
                Some("operations".to_owned()),
            ),
        };
        let e = report.classes.entry(f.class).or_default();
        e.0 += 1;
        e.1 += f.amount_minor;
        e.2 += usize::from(status.starts_with("auto"));
        writes.push(Write::Finding(FindingRow {
            finding_id: id,
            business_date: date.to_string(),
            class: f.class.name().into(),
            rrn: f.rrn.clone(),
            txn_id: f.txn_id,
            amount_minor: f.amount_minor,
            evidence: f.evidence.join("\n"),
            action,
            status: status.into(),
            owner,
            deadline: Some(calendar.add_working_days(date, 1).to_string()),
            notes: String::new(),
            created_at: at.into(),
            updated_at: at.into(),
        }));
    }
    // An open "missing at issuer" whose line has since arrived resolves itself.
    let in_files: std::collections::HashSet<&str> =
        clearing.iter().map(|c| c.rrn.as_str()).collect();
    let now_missing: std::collections::BTreeSet<String> = outcome
        .findings
        .iter()
        .filter(|f| f.class == Class::MissingAtIssuer)
        .map(|f| f.rrn.clone())
        .collect();
    for f in existing.values() {
        if f.class == Class::MissingAtIssuer.name()
            && f.status == "open"
            && f.business_date <= date.to_string()
            && !now_missing.contains(&f.rrn)
            && in_files.contains(f.rrn.as_str())
        {
            let mut done = f.clone();
            done.status = "auto_resolved".into();
            done.notes = format!(
                "{}the issuer's line arrived in a later file ({at})\n",
                f.notes
            );
            done.updated_at = at.into();
            writes.push(Write::FindingUpdate(done));
        }
    }
    // Money owed back that the issuer's files no longer show owed (a reversal line
    // published a day late; an adjustment the issuer refused because nothing was
    // left to give back) resolves itself.
    let owed_now: std::collections::BTreeSet<&str> = outcome
        .findings
        .iter()
        .filter(|f| matches!(f.action, Action::ReverseAtIssuer { .. }))
        .map(|f| f.rrn.as_str())
        .collect();
    let evaluated: std::collections::BTreeSet<&str> = journal
        .iter()
        .filter(|t| t.date >= prev)
        .map(|t| t.rrn.as_str())
        .collect();
    for f in existing.values() {
        let reverse_class = [
            Class::PhantomDebit,
            Class::DoubleDebit,
            Class::ReversalNotApplied,
        ]
        .iter()
        .any(|c| c.name() == f.class);
        if reverse_class
            && f.status == "open"
            && evaluated.contains(f.rrn.as_str())
            && !owed_now.contains(f.rrn.as_str())
        {
            let mut done = f.clone();
            done.status = "auto_resolved".into();
            done.notes = format!("{}{at}: the issuer's files balance now\n", f.notes);
            done.updated_at = at.into();
            touched.insert(f.finding_id.clone());
            writes.push(Write::FindingUpdate(done));
        }
    }
    // A queued adjustment the issuer has answered: applied (00) resolves its finding,
    // anything else hands it to a person.
    for f in existing
        .values()
        .filter(|f| f.status == "auto_resolving" && !touched.contains(&f.finding_id))
    {
        let Some(txn_id) = f.txn_id else { continue };
        let Some(e) = switch::adjustments(txn_id, |id| db.saf_entry(id))?.pop() else {
            continue;
        };
        let mut next = f.clone();
        match e.state {
            store::SafState::Done => {
                next.status = "auto_resolved".into();
                next.notes = format!(
                    "{}{at}: the issuer applied the credit adjustment ({})\n",
                    f.notes, e.reason
                );
            }
            store::SafState::Exception => {
                next.status = "open".into();
                next.owner = Some("operations".into());
                next.notes = format!(
                    "{}{at}: the credit adjustment failed ({}); give the money back by hand\n",
                    f.notes, e.reason
                );
            }
            _ => continue,
        }
        next.updated_at = at.into();
        writes.push(Write::FindingUpdate(next));
    }
    // The exceptions open once these writes are applied, worked out before applying
    // them so the run's own record (and its audit record) go in the same transaction.
    let mut after: BTreeMap<String, FindingRow> = db
        .findings(None)?
        .into_iter()
        .map(|f| (f.finding_id.clone(), f))
        .collect();
    for w in &writes {
        match w {
            Write::Finding(f) => {
                after
                    .entry(f.finding_id.clone())
                    .or_insert_with(|| f.clone());
            }
            Write::FindingUpdate(f) => {
                after.insert(f.finding_id.clone(), f.clone());
            }
            _ => {}
        }
    }
    let open: Vec<&FindingRow> = after.values().filter(|f| f.status == "open").collect();
    report.open = open.len();
    report.oldest_open_days = open
        .iter()
        .filter_map(|f| NaiveDate::parse_from_str(&f.business_date, "%Y-%m-%d").ok())
        .map(|d| (date - d).num_days())
        .max()
        .unwrap_or(0);
    let json = report_json(&report);
    writes.push(Write::ReconRun(ReconRunRow {
        business_date: date.to_string(),
        ran_at: at.into(),
        report: json.to_string(),
    }));
    writes.push(actor.audit(
        at,
        "recon.run",
        &format!("recon_run:{date}"),
        serde_json::Value::Null,
        json,
    ));
    db.apply(&writes)?;
    Ok(report)
}

/// A run's report as stored with the run and shown by the API.
pub fn report_json(r: &ReconReport) -> serde_json::Value {
    let classes: serde_json::Map<String, serde_json::Value> = Class::ALL
        .iter()
        .map(|c| {
            let (n, amount, auto) = r.classes.get(c).copied().unwrap_or_default();
            (
                c.name().to_owned(),
                serde_json::json!({"found": n, "amount_minor": amount, "automatic": auto}),
            )
        })
        .collect();
    serde_json::json!({
        "business_date": r.date.map(|d| d.to_string()),
        "lines": r.lines,
        "bad_lines": r.bad_lines,
        "journal": r.journal,
        "matched_rrn_auth": r.matched.0,
        "matched_fallback": r.matched.1,
        "awaiting": r.awaiting,
        "classes": classes,
        "exceptions_open": r.open,
        "oldest_open_days": r.oldest_open_days,
    })
}

/// What to do about money a finding says is owed back.
enum GiveBack {
    /// The next credit adjustment, and the action text.
    Queued(SafRow, String),
    /// The last adjustment is still on its way.
    Waiting,
    /// A person: the automatic adjustments are used up, one failed, or none can be built.
    ByHand(String),
}

/// Decides how `amount_minor` owed back for `txn_id` goes back
/// (`switch::next_adjustment`): the next credit adjustment, wait, or a person.
fn give_back(
    db: &mut dyn Backend,
    finding: &str,
    rrn: &str,
    txn_id: i64,
    amount_minor: i64,
    at: &str,
) -> Result<GiveBack> {
    let so_far = switch::adjustments(txn_id, |id| db.saf_entry(id))?;
    let n = match switch::next_adjustment(&so_far) {
        NextAdjustment::Send(n) => n,
        NextAdjustment::Waiting => return Ok(GiveBack::Waiting),
        NextAdjustment::ByHand(last) => {
            return Ok(GiveBack::ByHand(format!(
                "give {} back at the issuer by hand: automatic adjustment {} is {} ({})",
                major(amount_minor),
                so_far.len(),
                last.state,
                last.reason
            )))
        }
    };
    let row = db.transaction_by_rrn(rrn)?;
    let entry = row.as_ref().and_then(|r| {
        switch::adjustment_entry(r, n, amount_minor, &format!("reconciliation {finding}"), at)
    });
    Ok(match entry {
        Some(e) => {
            let action = format!(
                "credit adjustment of {} queued to the issuer (queue entry {}); the issuer's SMS tells the cardholder",
                major(amount_minor),
                e.saf_id
            );
            GiveBack::Queued(e, action)
        }
        None => GiveBack::ByHand(format!(
            "give {} back at the issuer by hand: no adjustment could be built",
            major(amount_minor)
        )),
    })
}

/// A reconciliation finding as the audit trail shows it.
pub fn finding_json(f: &FindingRow) -> serde_json::Value {
    serde_json::json!({
        "finding_id": f.finding_id,
        "class": f.class,
        "rrn": f.rrn,
        "amount_minor": f.amount_minor,
        "status": f.status,
        "owner": f.owner,
        "deadline": f.deadline,
    })
}

fn find_finding(db: &mut dyn Backend, id: &str) -> Result<FindingRow> {
    db.findings(None)?
        .into_iter()
        .find(|f| f.finding_id == id)
        .ok_or_else(|| ServiceError::NotFound(format!("no finding {id}")))
}

fn update_finding(
    db: &mut dyn Backend,
    before: &FindingRow,
    after: FindingRow,
    action: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    let object = format!("finding:{}", after.finding_id);
    let (b, a) = (finding_json(before), finding_json(&after));
    db.apply(&[
        Write::FindingUpdate(after),
        actor.audit(at, action, &object, b, a),
    ])?;
    Ok(())
}

/// Assigns an exception to someone (it becomes `investigating`).
pub fn assign_exception(
    db: &mut dyn Backend,
    id: &str,
    who: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    crate::text("an assignee", who, 64)?;
    let before = find_finding(db, id)?;
    let mut f = before.clone();
    f.owner = Some(who.into());
    f.status = "investigating".into();
    f.notes.push_str(&format!("{at} assigned to {who}\n"));
    f.updated_at = at.into();
    update_finding(db, &before, f, "exception.assign", actor, at)
}

/// Resolves an exception with a note saying what was done.
pub fn resolve_exception(
    db: &mut dyn Backend,
    id: &str,
    by: &str,
    note: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    crate::text("a resolution note", note, 4000)?;
    let before = find_finding(db, id)?;
    let mut f = before.clone();
    f.status = "resolved".into();
    f.notes
        .push_str(&format!("{at} resolved by {by}: {note}\n"));
    f.updated_at = at.into();
    update_finding(db, &before, f, "exception.resolve", actor, at)
}
