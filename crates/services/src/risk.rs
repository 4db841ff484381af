//! Risk control for staff: back-tests of a candidate rule set over the journal, the
//! replay that warms a node's counters, and cases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use store::{Backend, CaseEntryRow, CaseRow, DecisionRow, Write};

use crate::accounts::Actor;
use crate::check::load_journal;
use crate::{Context, Result, ServiceError};

/// What one rule would have done over the replayed period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleImpact {
    /// Rule id.
    pub rule: String,
    /// decline NN, review, hold, alert.
    pub action: String,
    /// active, shadow.
    pub mode: String,
    /// Transactions it matched.
    pub matched: usize,
    /// Their total amount (minor units).
    pub amount_minor: i64,
    /// Of those, transactions in cases closed as fraud.
    pub fraud: usize,
    /// Transactions the rule matched live, among those whose live decision evaluated
    /// every rule (see [`Backtest::live_timed_out`]).
    pub live_matched: usize,
    /// Transactions the candidate rule matches among those same transactions: for the
    /// rule set that decided live, equal to `live_matched`.
    pub matched_where_live_complete: usize,
}

/// The back-test's result.
#[derive(Debug, Clone, Default)]
pub struct Backtest {
    /// Candidate rule-set version.
    pub version: String,
    /// Transactions replayed through the rules in the period.
    pub decided: usize,
    /// Transactions labelled fraud (in cases closed as fraud) in the period.
    pub fraud_labelled: usize,
    /// Live decisions in the period that ran out of their time budget (a busy machine)
    /// and applied the timeout policy: the rules they had not reached were never
    /// evaluated live, so only the back-test knows whether those would have matched.
    pub live_timed_out: usize,
    /// Per rule, in file order.
    pub rules: Vec<RuleImpact>,
}

impl fmt::Display for Backtest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "back-test of rule set {}: {} transactions decided, {} labelled fraud, {} live decisions ran out of time (compared with live over the rest)",
            self.version, self.decided, self.fraud_labelled, self.live_timed_out
        )?;
        writeln!(
            f,
            "  {:<30} {:<11} {:<7} {:>8} {:>16} {:>6}",
            "rule", "action", "mode", "matched", "amount", "fraud"
        )?;
        for r in &self.rules {
            writeln!(
                f,
                "  {:<30} {:<11} {:<7} {:>8} {:>13}.{:02} {:>6}",
                r.rule,
                r.action,
                r.mode,
                r.matched,
                r.amount_minor / 100,
                r.amount_minor % 100,
                r.fraud
            )?;
        }
        Ok(())
    }
}

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |d| d.timestamp_millis())
}

/// Every risk decision in the store, by transaction id.
pub fn load_decisions(db: &mut dyn Backend) -> Result<HashMap<i64, DecisionRow>> {
    let mut all = HashMap::new();
    let mut after = 0;
    loop {
        let page = db.decisions_after(after, 10_000).ctx("read decisions")?;
        let Some(last) = page.last() else { break };
        after = last.txn_id;
        all.extend(page.into_iter().map(|d| (d.txn_id, d)));
    }
    Ok(all)
}

/// Replays the journal, in the order things happened, through `rules`: the counters see
/// every attempt and every decline as they were live; each transaction risk decided
/// live is decided again by the candidate.
pub fn backtest(
    db: &mut dyn Backend,
    rules: risk::RuleSet,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Backtest> {
    let journal = load_journal(db)?;
    let decisions = load_decisions(db)?;
    let mut fraud: HashSet<i64> = HashSet::new();
    for c in db.cases(Some("closed_fraud")).ctx("read cases")? {
        fraud.extend(
            db.case_entries(c.case_id)
                .ctx("read case")?
                .into_iter()
                .filter_map(|e| e.txn_id),
        );
    }
    let version = rules.version.clone();
    let mut impact: Vec<RuleImpact> = rules
        .rules
        .iter()
        .filter(|r| r.mode != risk::Mode::Disabled)
        .map(|r| RuleImpact {
            rule: r.id.clone(),
            action: match &r.action {
                risk::RuleAction::Decline(c) => format!("decline {c}"),
                risk::RuleAction::Review => "review".into(),
                risk::RuleAction::Hold => "hold".into(),
                risk::RuleAction::Alert => "alert".into(),
            },
            mode: if r.mode == risk::Mode::Shadow {
                "shadow".into()
            } else {
                "active".into()
            },
            ..RuleImpact::default()
        })
        .collect();
    let index: BTreeMap<String, usize> = impact
        .iter()
        .enumerate()
        .map(|(i, r)| (r.rule.clone(), i))
        .collect();
    let mut engine = risk::Engine::new(
        rules,
        Box::new(risk::MemoryVelocity::new(10_000_000)),
        risk::Policy::FailOpen,
        u64::MAX,
    );
    let in_period = |d: &str| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t);
    let mut out = Backtest {
        version,
        ..Backtest::default()
    };
    replay(
        &journal,
        &decisions,
        i64::MIN,
        &mut engine,
        |engine, t, facts, keys, secs| {
            let decided = engine.decide(facts, keys, secs, &|| 0);
            if !in_period(&t.local_date) {
                return;
            }
            out.decided += 1;
            let is_fraud = fraud.contains(&t.txn_id);
            out.fraud_labelled += usize::from(is_fraud);
            let live = decisions.get(&t.txn_id);
            let complete = live.is_some_and(|d| d.policy.is_none());
            out.live_timed_out += usize::from(!complete);
            for m in &decided.matched {
                if let Some(&k) = index.get(&m.rule) {
                    impact[k].matched += 1;
                    impact[k].amount_minor += facts.amount;
                    impact[k].fraud += usize::from(is_fraud);
                    impact[k].matched_where_live_complete += usize::from(complete);
                }
            }
            if let Some(d) = live.filter(|_| complete) {
                for r in d.matched.split(',').chain(d.shadow.split(',')) {
                    if let Some(&k) = index.get(r) {
                        impact[k].live_matched += 1;
                    }
                }
            }
        },
    );
    out.rules = impact;
    Ok(out)
}

/// Replays the journal's risk history since `since_ms` into `engine`'s counters, in the
/// order it happened: each transaction risk decided live is offered to `decide` (before
/// its attempt is recorded), then its attempt and, where it was declined (by risk or by
/// the issuer), its decline are recorded at the times they happened.
pub fn replay(
    journal: &[store::TxnRow],
    decisions: &HashMap<i64, DecisionRow>,
    since_ms: i64,
    engine: &mut risk::Engine,
    mut decide: impl FnMut(&mut risk::Engine, &store::TxnRow, &mut risk::Facts, &risk::Keys<'_>, i64),
) {
    // Events: (time, order, txn index, is_decline).
    let mut events = Vec::new();
    for (i, t) in journal.iter().enumerate() {
        let Some(d) = decisions.get(&t.txn_id) else {
            continue;
        };
        if millis(&d.at) < since_ms {
            continue;
        }
        events.push((millis(&d.at), 2 * i, i, false));
        if d.verdict.starts_with("decline") {
            events.push((millis(&d.at), 2 * i + 1, i, true));
        } else if t.state == store::TxnState::Declined {
            events.push((millis(&t.updated_at), 2 * i + 1, i, true));
        }
    }
    events.sort_unstable();
    for (at, _, i, is_decline) in events {
        let t = &journal[i];
        let Some(d) = decisions.get(&t.txn_id) else {
            continue;
        };
        let Some(mut facts) = risk::Facts::from_record(&d.facts) else {
            continue;
        };
        let bin = facts.bin.clone();
        let keys = risk::Keys {
            card: &t.pan_token,
            terminal: &t.terminal_id,
            merchant: &t.merchant_id,
            bin: &bin,
        };
        let secs = at.div_euclid(1000);
        if is_decline {
            engine.record_decline(&keys, facts.amount, secs);
            continue;
        }
        decide(engine, t, &mut facts, &keys, secs);
        engine.record(&keys, facts.amount, secs);
    }
}

/// How a case is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseVerdict {
    /// It was fraud: its transactions label the back-tests' fraud counts.
    Fraud,
    /// It was not.
    NotFraud,
}

impl CaseVerdict {
    /// `fraud` or `not-fraud`.
    pub fn parse(s: &str) -> Option<CaseVerdict> {
        match s {
            "fraud" => Some(CaseVerdict::Fraud),
            "not-fraud" => Some(CaseVerdict::NotFraud),
            _ => None,
        }
    }

    fn status(self) -> &'static str {
        match self {
            CaseVerdict::Fraud => "closed_fraud",
            CaseVerdict::NotFraud => "closed_not_fraud",
        }
    }

    fn name(self) -> &'static str {
        match self {
            CaseVerdict::Fraud => "fraud",
            CaseVerdict::NotFraud => "not-fraud",
        }
    }
}

/// Cases (in `status` when given) with the number of entries on each one's timeline.
pub fn list_cases(db: &mut dyn Backend, status: Option<&str>) -> Result<Vec<(CaseRow, usize)>> {
    let mut out = Vec::new();
    for c in db.cases(status).ctx("read cases")? {
        let n = db.case_entries(c.case_id).ctx("read case")?.len();
        out.push((c, n));
    }
    Ok(out)
}

/// A case and its timeline.
pub fn case(db: &mut dyn Backend, id: i64) -> Result<(CaseRow, Vec<CaseEntryRow>)> {
    let c = find_case(db, id)?;
    let entries = db.case_entries(id).ctx("read case")?;
    Ok((c, entries))
}

fn find_case(db: &mut dyn Backend, id: i64) -> Result<CaseRow> {
    db.cases(None)
        .ctx("read cases")?
        .into_iter()
        .find(|c| c.case_id == id)
        .ok_or_else(|| ServiceError::NotFound(format!("no case {id}")))
}

/// A case as the audit trail shows it.
pub fn case_json(c: &CaseRow) -> serde_json::Value {
    serde_json::json!({
        "case_id": c.case_id,
        "subject": c.subject,
        "status": c.status,
        "assignee": c.assignee,
        "opened_at": c.opened_at,
        "updated_at": c.updated_at,
    })
}

/// Assigns a case (it becomes `investigating`).
pub fn assign_case(
    db: &mut dyn Backend,
    id: i64,
    who: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    crate::text("an assignee", who, 64)?;
    let c = find_case(db, id)?;
    let case = CaseRow {
        assignee: Some(who.into()),
        status: "investigating".into(),
        ..c.clone()
    };
    append(
        db,
        &c,
        case,
        "assign",
        who,
        format!("assigned to {who}"),
        actor,
        at,
    )
}

/// Adds a note to a case.
pub fn note_case(
    db: &mut dyn Backend,
    id: i64,
    author: &str,
    text: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    crate::text("a note", text, 4000)?;
    let c = find_case(db, id)?;
    append(db, &c, c.clone(), "note", author, text.into(), actor, at)
}

/// Closes a case as fraud or not fraud.
pub fn close_case(
    db: &mut dyn Backend,
    id: i64,
    verdict: CaseVerdict,
    author: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    let c = find_case(db, id)?;
    let case = CaseRow {
        status: verdict.status().into(),
        ..c.clone()
    };
    let text = format!("closed: {}", verdict.name());
    append(db, &c, case, "status", author, text, actor, at)
}

/// Writes the case, its new timeline entry and the audit record in one transaction.
#[allow(clippy::too_many_arguments)]
fn append(
    db: &mut dyn Backend,
    before: &CaseRow,
    case: CaseRow,
    kind: &str,
    author: &str,
    text: String,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    let seq = db.case_entries(case.case_id).ctx("read case")?.len() as i64 + 1;
    let after = CaseRow {
        updated_at: at.into(),
        ..case
    };
    let mut after_json = case_json(&after);
    after_json["entry"] =
        serde_json::json!({"seq": seq, "kind": kind, "author": author, "text": &text});
    let entry = CaseEntryRow {
        case_id: after.case_id,
        seq,
        at: at.into(),
        kind: kind.into(),
        txn_id: None,
        author: author.into(),
        text,
    };
    db.apply(&[
        Write::Case(after.clone()),
        Write::CaseEntry(entry),
        actor.audit(
            at,
            &format!("case.{kind}"),
            &format!("case:{}", after.case_id),
            case_json(before),
            after_json,
        ),
    ])
    .ctx("write case")
}
