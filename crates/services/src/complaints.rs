//! Complaints over the store: filed (with the issuer's SMS read back), acknowledged,
//! assigned, the candidate transactions found and linked, each diagnosed from its
//! evidence, resolved — explained, refunded through the store-and-forward queue's
//! credit adjustment (a second person approves one above the threshold; nobody
//! approves their own), rejected — with deadlines per source on the working-day
//! calendar. Every step is an event of the complaint and an audit record.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime};
use complaints::deadline::{self, Policy, Standing};
use complaints::diagnose::{self, Diagnosis, Evidence};
use complaints::kinds::{Category, Source};
use complaints::rank::{self, Candidate, Clue, Ranked};
use serde::{Deserialize, Serialize};
use store::{
    Backend, ComplaintActionRow, ComplaintEventRow, ComplaintRow, ComplaintTxnRow, TxnRow, Write,
};

use crate::accounts::Actor;
use crate::{Context, Result, ServiceError};

/// What a complainant tells: who they are and what they remember. Never a full card
/// number (a masked one, or the last four digits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Filing {
    /// `cardholder_phone`, `cardholder_web`, `merchant`, `issuing_bank`,
    /// `regulator_hotline`.
    pub source: String,
    /// `debited_but_failed`, `debited_twice`, `refund_not_received`, `amount_wrong`,
    /// `unrecognised`, `merchant_not_credited`, `merchant_credited_short`.
    pub category: String,
    /// How to answer them.
    pub contact: String,
    /// `zh` or `en`.
    pub language: String,
    /// The merchant complaining (a merchant's complaint), or the one named.
    #[serde(default)]
    pub merchant_id: Option<String>,
    /// The amount, minor units.
    #[serde(default)]
    pub amount_minor: Option<i64>,
    /// How far off the amount may be, minor units.
    #[serde(default)]
    pub tolerance_minor: Option<i64>,
    /// From, local time `YYYY-MM-DD HH:MM`.
    #[serde(default)]
    pub from: Option<String>,
    /// To, local time `YYYY-MM-DD HH:MM`.
    #[serde(default)]
    pub to: Option<String>,
    /// The card as masked (`622848******1234`).
    #[serde(default)]
    pub masked_pan: Option<String>,
    /// The card's last four digits.
    #[serde(default)]
    pub last4: Option<String>,
    /// The merchant's name (or a part of it) or id.
    #[serde(default)]
    pub merchant: Option<String>,
    /// The terminal.
    #[serde(default)]
    pub terminal: Option<String>,
    /// The RRN of a receipt.
    #[serde(default)]
    pub rrn: Option<String>,
    /// The SMS their bank sent, as received.
    #[serde(default)]
    pub sms: Option<String>,
}

/// The deadlines per source (configuration; the defaults are
/// [`Policy::default_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies(pub std::collections::BTreeMap<Source, Policy>);

impl Default for Policies {
    fn default() -> Policies {
        Policies(
            Source::ALL
                .into_iter()
                .map(|s| (s, Policy::default_for(s)))
                .collect(),
        )
    }
}

impl Policies {
    /// The policy of a source.
    pub fn of(&self, s: Source) -> Policy {
        self.0
            .get(&s)
            .copied()
            .unwrap_or_else(|| Policy::default_for(s))
    }
}

/// Money actions above this (minor units) wait for a second person.
pub const DEFAULT_FOUR_EYES_MINOR: i64 = 50_000;

/// The complaint desk's configuration: deadlines per source and the four-eyes
/// threshold. A TOML file (`posguard api --complaints-config`):
///
/// ```toml
/// four_eyes_minor = 50000
/// [sources.regulator_hotline]
/// acknowledge_working_days = 1
/// resolve_days = 10
/// resolve_in = "working"
/// extend_to_days = 20
/// max_days = 20
/// ```
///
/// A source not named keeps its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintConfig {
    /// Deadlines per source.
    pub policies: Policies,
    /// Refunds above this (minor units) wait for a second person.
    pub four_eyes_minor: i64,
}

impl Default for ComplaintConfig {
    fn default() -> ComplaintConfig {
        ComplaintConfig {
            policies: Policies::default(),
            four_eyes_minor: DEFAULT_FOUR_EYES_MINOR,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    four_eyes_minor: Option<i64>,
    #[serde(default)]
    sources: std::collections::BTreeMap<String, Policy>,
}

impl ComplaintConfig {
    /// Reads the TOML configuration; every policy is checked.
    pub fn from_toml(text: &str) -> Result<ComplaintConfig> {
        let f: ConfigFile = toml::from_str(text)
            .map_err(|e| ServiceError::BadInput(format!("complaints configuration: {e}")))?;
        let mut c = ComplaintConfig::default();
        if let Some(t) = f.four_eyes_minor {
            if !(0..=100_000_000_000).contains(&t) {
                return Err(ServiceError::BadInput(
                    "four_eyes_minor: 0 to 100000000000 minor units".into(),
                ));
            }
            c.four_eyes_minor = t;
        }
        for (name, p) in f.sources {
            let s = Source::parse(&name).ok_or_else(|| {
                ServiceError::BadInput(format!(
                    "complaints configuration: {name:?} is no source ({})",
                    Source::ALL.map(Source::name).join(", ")
                ))
            })?;
            p.validate()
                .map_err(|e| ServiceError::BadInput(format!("source {name}: {e}")))?;
            c.policies.0.insert(s, p);
        }
        Ok(c)
    }
}

fn local(rfc3339: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| (t.to_utc() + Duration::hours(8)).naive_utc())
}

fn minute(s: &str, field: &str) -> Result<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M")
        .map_err(|_| ServiceError::BadInput(format!("{field}: a local time YYYY-MM-DD HH:MM")))
}

/// The clue as stored (JSON) and as ranked.
fn clue_of(f: &Filing, today: NaiveDate) -> Result<(serde_json::Value, Clue)> {
    let mut clue = Clue {
        amount_minor: f.amount_minor,
        tolerance_minor: f.tolerance_minor.unwrap_or(0),
        from: f.from.as_deref().map(|s| minute(s, "from")).transpose()?,
        to: f.to.as_deref().map(|s| minute(s, "to")).transpose()?,
        masked_pan: f.masked_pan.clone(),
        last4: f.last4.clone(),
        merchant: f.merchant.clone(),
        terminal: f.terminal.clone(),
        rrn: f.rrn.clone(),
    };
    if let Some(text) = &f.sms {
        crate::text("the SMS", text, complaints::sms::MAX_SMS)?;
        if let Some(s) = complaints::sms::parse(text) {
            clue.amount_minor = clue.amount_minor.or(Some(s.amount_minor));
            clue.masked_pan = clue.masked_pan.or(Some(s.masked_pan.clone()));
            clue.merchant = clue.merchant.or(Some(s.merchant.clone()));
            if let (None, None, Some(at)) = (clue.from, clue.to, s.time.resolve(today)) {
                // The SMS is sent within a minute or two of the debit.
                clue.from = Some(at - Duration::minutes(30));
                clue.to = Some(at + Duration::minutes(5));
            }
        }
    }
    if let Some(m) = &clue.masked_pan {
        if complaints::sms::masked(m.trim()).is_none() {
            return Err(ServiceError::BadInput(
                "masked_pan: the card as masked (first six, asterisks, last four) — never the full number".into(),
            ));
        }
    }
    if clue
        .last4
        .as_ref()
        .is_some_and(|l| l.len() != 4 || !l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ServiceError::BadInput("last4: four digits".into()));
    }
    if clue
        .amount_minor
        .is_some_and(|a| !(0..=100_000_000_000).contains(&a))
        || !(0..=100_000_000).contains(&clue.tolerance_minor)
    {
        return Err(ServiceError::BadInput(
            "amount_minor and tolerance_minor: 0 or more minor units, bounded".into(),
        ));
    }
    if let (Some(a), Some(b)) = (clue.from, clue.to) {
        if b < a || (b - a) > Duration::days(31) {
            return Err(ServiceError::BadInput(
                "from and to: a window of at most 31 days, from before to".into(),
            ));
        }
    }
    for (field, v, max) in [
        ("merchant", &clue.merchant, 100),
        ("terminal", &clue.terminal, 8),
        ("rrn", &clue.rrn, 12),
    ] {
        if let Some(v) = v {
            crate::text(field, v, max)?;
        }
    }
    let fmt = |t: &Option<NaiveDateTime>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string());
    let json = serde_json::json!({
        "amount_minor": clue.amount_minor,
        "tolerance_minor": clue.tolerance_minor,
        "from": fmt(&clue.from),
        "to": fmt(&clue.to),
        "masked_pan": clue.masked_pan,
        "last4": clue.last4,
        "merchant": clue.merchant,
        "terminal": clue.terminal,
        "rrn": clue.rrn,
        "sms": f.sms,
    });
    Ok((json, clue))
}

fn stored_clue(c: &ComplaintRow) -> Clue {
    let v: serde_json::Value = serde_json::from_str(&c.clue).unwrap_or_default();
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    let t = |k: &str| {
        v[k].as_str()
            .and_then(|x| NaiveDateTime::parse_from_str(x, "%Y-%m-%d %H:%M").ok())
    };
    Clue {
        amount_minor: v["amount_minor"].as_i64(),
        tolerance_minor: v["tolerance_minor"].as_i64().unwrap_or(0),
        from: t("from"),
        to: t("to"),
        masked_pan: s("masked_pan"),
        last4: s("last4"),
        merchant: s("merchant"),
        terminal: s("terminal"),
        rrn: s("rrn"),
    }
}

fn event(c: &ComplaintRow, seq: i64, action: &str, actor: &Actor, note: String, at: &str) -> Write {
    Write::ComplaintEvent(ComplaintEventRow {
        complaint_id: c.complaint_id,
        seq,
        at: at.into(),
        action: action.into(),
        actor: actor.name.clone(),
        note,
    })
}

fn json(c: &ComplaintRow) -> serde_json::Value {
    // Never the contact or the clue in the audit trail: what changed, not who it is.
    serde_json::json!({
        "complaint_id": c.complaint_id, "source": c.source, "category": c.category,
        "status": c.status, "owner": c.owner, "ack_due": c.ack_due,
        "resolve_due": c.resolve_due, "outcome": c.outcome,
    })
}

/// Files a complaint: its deadlines set by its source's policy on the working-day
/// calendar. Audited.
pub fn file(
    db: &mut dyn Backend,
    f: &Filing,
    policies: &Policies,
    actor: &Actor,
    at: &str,
) -> Result<ComplaintRow> {
    let source = Source::parse(&f.source).ok_or_else(|| {
        ServiceError::BadInput(format!(
            "source: one of {}",
            Source::ALL.map(Source::name).join(", ")
        ))
    })?;
    let category = Category::parse(&f.category).ok_or_else(|| {
        ServiceError::BadInput(format!(
            "category: one of {}",
            Category::ALL.map(Category::name).join(", ")
        ))
    })?;
    crate::text("contact", &f.contact, 100)?;
    if !["zh", "en"].contains(&f.language.as_str()) {
        return Err(ServiceError::BadInput("language: zh or en".into()));
    }
    if let Some(m) = &f.merchant_id {
        crate::text("merchant_id", m, 15)?;
    }
    let opened = local(at)
        .ok_or_else(|| ServiceError::BadInput(format!("{at:?} is not a time")))?
        .date();
    let (clue_json, clue) = clue_of(f, opened)?;
    if clue.is_empty() && f.merchant_id.is_none() {
        return Err(ServiceError::BadInput(
            "tell at least the date, the amount, the card's last four digits, the RRN or the SMS"
                .into(),
        ));
    }
    let policy = policies.of(source);
    let cal = crate::reference::calendar(db)?;
    let complaint_id = db
        .complaints(None)
        .ctx("read complaints")?
        .last()
        .map_or(1, |c| c.complaint_id + 1);
    let row = ComplaintRow {
        complaint_id,
        source: source.name().into(),
        category: category.name().into(),
        complainant: if category.is_merchants() {
            "merchant"
        } else {
            "cardholder"
        }
        .into(),
        contact: f.contact.trim().into(),
        language: f.language.clone(),
        merchant_id: f.merchant_id.clone(),
        clue: clue_json.to_string(),
        status: "open".into(),
        owner: None,
        ack_due: policy.acknowledge_by(&cal, opened).to_string(),
        resolve_due: policy
            .resolve_by(&cal, opened, policy.resolve_days)
            .to_string(),
        resolve_days: i64::from(policy.resolve_days),
        acknowledged_at: None,
        resolved_at: None,
        outcome: None,
        answer: None,
        created_at: at.into(),
        updated_at: at.into(),
    };
    db.apply(&[
        Write::Complaint(row.clone()),
        event(
            &row,
            1,
            "file",
            actor,
            format!("{} via {}", category.name(), source.name()),
            at,
        ),
        actor.audit(
            at,
            "complaint.file",
            &format!("complaint:{complaint_id}"),
            serde_json::Value::Null,
            json(&row),
        ),
    ])
    .ctx("write complaint")?;
    Ok(row)
}

fn find(db: &mut dyn Backend, id: i64) -> Result<ComplaintRow> {
    db.complaint(id)
        .ctx("read complaint")?
        .ok_or_else(|| ServiceError::NotFound(format!("no complaint {id}")))
}

fn next_seq(db: &mut dyn Backend, id: i64) -> Result<i64> {
    Ok(db.complaint_events(id).ctx("read complaint")?.len() as i64 + 1)
}

fn is_closed(c: &ComplaintRow) -> bool {
    matches!(c.status.as_str(), "resolved" | "rejected")
}

/// Writes a changed complaint with its event and audit record.
#[allow(clippy::too_many_arguments)]
fn change(
    db: &mut dyn Backend,
    before: &ComplaintRow,
    after: &ComplaintRow,
    action: &str,
    note: String,
    extra: Vec<Write>,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    let seq = next_seq(db, before.complaint_id)?;
    let mut writes = vec![
        Write::Complaint(after.clone()),
        event(after, seq, action, actor, note, at),
        actor.audit(
            at,
            &format!("complaint.{action}"),
            &format!("complaint:{}", after.complaint_id),
            json(before),
            json(after),
        ),
    ];
    writes.extend(extra);
    db.apply(&writes).ctx("write complaint")
}

/// Acknowledges a complaint (and takes it, when it has no owner).
pub fn acknowledge(db: &mut dyn Backend, id: i64, actor: &Actor, at: &str) -> Result<ComplaintRow> {
    let before = find(db, id)?;
    if before.status != "open" {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}: only an open one is acknowledged",
            before.status
        )));
    }
    let after = ComplaintRow {
        status: "acknowledged".into(),
        acknowledged_at: Some(at.into()),
        owner: before.owner.clone().or_else(|| Some(actor.name.clone())),
        updated_at: at.into(),
        ..before.clone()
    };
    change(
        db,
        &before,
        &after,
        "acknowledge",
        String::new(),
        vec![],
        actor,
        at,
    )?;
    Ok(after)
}

/// Gives complaints to an owner (several at once: a queue's bulk assignment).
pub fn assign(
    db: &mut dyn Backend,
    ids: &[i64],
    owner: &str,
    actor: &Actor,
    at: &str,
) -> Result<Vec<ComplaintRow>> {
    crate::text("the owner", owner, 100)?;
    if ids.is_empty() || ids.len() > 500 {
        return Err(ServiceError::BadInput(
            "assign 1 to 500 complaints at once".into(),
        ));
    }
    let mut out = Vec::new();
    for &id in ids {
        let before = find(db, id)?;
        if is_closed(&before) {
            return Err(ServiceError::Conflict(format!(
                "complaint {id} is {}",
                before.status
            )));
        }
        let after = ComplaintRow {
            owner: Some(owner.into()),
            updated_at: at.into(),
            ..before.clone()
        };
        change(
            db,
            &before,
            &after,
            "assign",
            owner.into(),
            vec![],
            actor,
            at,
        )?;
        out.push(after);
    }
    Ok(out)
}

/// Extends the resolution deadline to `days` with the reason (beyond the policy's
/// first extension only `approved`, by a second person). Audited.
#[allow(clippy::too_many_arguments)]
pub fn extend(
    db: &mut dyn Backend,
    id: i64,
    days: u32,
    reason: &str,
    approved: bool,
    policies: &Policies,
    actor: &Actor,
    at: &str,
) -> Result<ComplaintRow> {
    crate::text("an extension's reason", reason, 500)?;
    let before = find(db, id)?;
    if is_closed(&before) {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}",
            before.status
        )));
    }
    let source = Source::parse(&before.source).ok_or_else(|| {
        ServiceError::Invalid(format!("complaint {id}: source {}", before.source))
    })?;
    let policy = policies.of(source);
    let current = u32::try_from(before.resolve_days).unwrap_or(0);
    let days = policy
        .extend(current, days, reason, approved)
        .map_err(|e| ServiceError::Conflict(e.to_string()))?;
    let opened = local(&before.created_at)
        .ok_or_else(|| ServiceError::Invalid(format!("complaint {id}: created_at")))?
        .date();
    let cal = crate::reference::calendar(db)?;
    let after = ComplaintRow {
        resolve_days: i64::from(days),
        resolve_due: policy.resolve_by(&cal, opened, days).to_string(),
        updated_at: at.into(),
        ..before.clone()
    };
    change(
        db,
        &before,
        &after,
        "extend",
        format!("to {days} days: {reason}"),
        vec![],
        actor,
        at,
    )?;
    Ok(after)
}

/// The candidate transactions of a complaint, best first (at most `limit`), with the
/// transactions themselves. The search reads the days of the clue's window (a day
/// either side) or the RRN's transaction; without either it refuses.
pub fn candidates(db: &mut dyn Backend, id: i64, limit: usize) -> Result<Vec<(Ranked, TxnRow)>> {
    let c = find(db, id)?;
    let clue = stored_clue(&c);
    let filter = store::TxnFilter {
        rrn: clue.rrn.clone(),
        masked_pan: clue.masked_pan.clone(),
        merchant_ids: c
            .merchant_id
            .clone()
            .filter(|_| c.complainant == "merchant")
            .map(|m| vec![m]),
        date_from: clue
            .from
            .map(|t| (t.date() - Duration::days(1)).to_string()),
        date_to: clue.to.map(|t| (t.date() + Duration::days(1)).to_string()),
        ..store::TxnFilter::default()
    };
    if filter.rrn.is_none() && (filter.date_from.is_none() || filter.date_to.is_none()) {
        return Err(ServiceError::BadInput(format!(
            "complaint {id} gives neither a time window nor an RRN to search by"
        )));
    }
    let rows = db
        .search_transactions(&filter, 0, 5_000)
        .ctx("search transactions")?;
    let names: std::collections::HashMap<String, String> = db
        .merchants()
        .ctx("read merchants")?
        .into_iter()
        .map(|m| (m.merchant_id, m.name))
        .collect();
    let cands: Vec<Candidate> = rows
        .iter()
        .filter(|t| {
            matches!(
                t.kind,
                store::TxnKind::Sale | store::TxnKind::Completion | store::TxnKind::Refund
            )
        })
        .filter_map(|t| {
            Some(Candidate {
                txn_id: t.txn_id,
                rrn: t.rrn.clone(),
                at: local(&t.created_at)?,
                amount_minor: t.amount_minor,
                masked_pan: t.masked_pan.clone(),
                merchant_id: t.merchant_id.clone(),
                merchant_name: names.get(&t.merchant_id).cloned().unwrap_or_default(),
                terminal_id: t.terminal_id.clone(),
            })
        })
        .collect();
    let ranked = rank::rank(&clue, &cands, limit);
    Ok(ranked
        .into_iter()
        .filter_map(|r| {
            let t = rows.iter().find(|t| t.txn_id == r.txn_id)?.clone();
            Some((r, t))
        })
        .collect())
}

/// Links transactions to a complaint (a double debit links two). Audited.
pub fn link(
    db: &mut dyn Backend,
    id: i64,
    txn_ids: &[i64],
    actor: &Actor,
    at: &str,
) -> Result<ComplaintRow> {
    let before = find(db, id)?;
    if is_closed(&before) {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}",
            before.status
        )));
    }
    if txn_ids.is_empty() || txn_ids.len() > 20 {
        return Err(ServiceError::BadInput("link 1 to 20 transactions".into()));
    }
    let mut extra = Vec::new();
    let mut merchant = before.merchant_id.clone();
    for &t in txn_ids {
        let row = db
            .transaction(t)
            .ctx("read transaction")?
            .ok_or_else(|| ServiceError::NotFound(format!("no transaction {t}")))?;
        merchant = merchant.or(Some(row.merchant_id.clone()));
        extra.push(Write::ComplaintTxn(ComplaintTxnRow {
            complaint_id: id,
            txn_id: t,
            linked_by: actor.name.clone(),
            linked_at: at.into(),
        }));
    }
    let after = ComplaintRow {
        merchant_id: merchant,
        updated_at: at.into(),
        ..before.clone()
    };
    let ids: Vec<String> = txn_ids.iter().map(i64::to_string).collect();
    change(
        db,
        &before,
        &after,
        "link",
        format!("transactions {}", ids.join(", ")),
        extra,
        actor,
        at,
    )?;
    Ok(after)
}

/// The evidence of one transaction, from the store.
pub fn evidence(db: &mut dyn Backend, t: &TxnRow) -> Result<Evidence> {
    let at = |s: &str| local(s).unwrap_or_default();
    let advices = crate::check::saf_of(db, t.txn_id)?
        .into_iter()
        .map(|s| diagnose::Advice {
            saf_id: s.saf_id,
            kind: s.kind,
            state: s.state,
            attempts: s.attempts,
            at: at(&s.updated_at),
        })
        .collect();
    let findings = db
        .findings_of(&t.rrn)
        .ctx("read findings")?
        .into_iter()
        .map(|f| diagnose::Finding {
            finding_id: f.finding_id,
            class: f.class,
            status: f.status,
            business_date: NaiveDate::parse_from_str(&f.business_date, "%Y-%m-%d")
                .unwrap_or_default(),
        })
        .collect();
    let settled = match db.settlement_item(t.txn_id).ctx("read settlement")? {
        Some(i) => {
            let s = db.settlement(&i.settlement_id).ctx("read settlement")?;
            let payouts = db.payouts(&i.settlement_id).ctx("read payouts")?;
            s.map(|s| diagnose::Settled {
                settlement_id: s.settlement_id.clone(),
                business_date: NaiveDate::parse_from_str(&s.business_date, "%Y-%m-%d")
                    .unwrap_or_default(),
                net_minor: i.net_minor,
                payouts: payouts
                    .iter()
                    .filter_map(|p| {
                        Some((
                            NaiveDate::parse_from_str(&p.value_date, "%Y-%m-%d").ok()?,
                            p.amount_minor,
                            p.status == "paid",
                        ))
                    })
                    .collect(),
            })
        }
        None => None,
    };
    let subjects = [
        format!("txn:{}", t.txn_id),
        format!("merchant:{}", t.merchant_id),
    ];
    let hold = db
        .holds(false)
        .ctx("read holds")?
        .into_iter()
        .filter(|h| subjects.contains(&h.subject))
        .max_by_key(|h| (h.released_at.is_none(), h.placed_at.clone()))
        .map(|h| diagnose::Hold {
            hold_id: h.hold_id,
            reason: h.reason,
            since: at(&h.placed_at),
            released: h
                .released_by
                .zip(h.released_at)
                .map(|(by, when)| (by, at(&when))),
        });
    Ok(Evidence {
        txn: diagnose::Txn {
            txn_id: t.txn_id,
            rrn: t.rrn.clone(),
            kind: t.kind,
            state: t.state,
            response_code: t.response_code.clone(),
            amount_minor: t.amount_minor,
            at: at(&t.created_at),
        },
        advices,
        findings,
        settled,
        hold,
    })
}

/// The diagnosis of each transaction linked to a complaint.
pub fn diagnoses(db: &mut dyn Backend, id: i64) -> Result<Vec<(TxnRow, Diagnosis)>> {
    let c = find(db, id)?;
    let category = Category::parse(&c.category)
        .ok_or_else(|| ServiceError::Invalid(format!("complaint {id}: category {}", c.category)))?;
    let mut out = Vec::new();
    for l in db.complaint_txns(id).ctx("read complaint")? {
        let Some(t) = db.transaction(l.txn_id).ctx("read transaction")? else {
            continue;
        };
        let e = evidence(db, &t)?;
        out.push((t, diagnose::diagnose(category, &e)));
    }
    Ok(out)
}

/// The answer to the complainant, in their language, from the diagnoses.
fn answer(c: &ComplaintRow, d: &[(TxnRow, Diagnosis)]) -> String {
    let zh = c.language == "zh";
    d.iter()
        .map(|(_, g)| if zh { g.zh.clone() } else { g.en.clone() })
        .collect::<Vec<_>>()
        .join(if zh { "" } else { " " })
}

/// How a complaint is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The diagnosis answers it: no action needed.
    Explained,
    /// The linked transactions' reversals still waiting are sent now (one the issuer
    /// refused goes back in the queue).
    ReversalExpedited,
    /// The holds on the linked transactions and their merchant are released: they
    /// settle in the next run.
    HoldReleased,
    /// Refused, with the reason.
    Rejected(String),
}

/// Closes a complaint: explained (the answer is the diagnoses in the complainant's
/// language) or rejected with the reason. Audited.
pub fn resolve(
    db: &mut dyn Backend,
    id: i64,
    outcome: Outcome,
    actor: &Actor,
    at: &str,
) -> Result<ComplaintRow> {
    let before = find(db, id)?;
    if is_closed(&before) || before.status == "awaiting_approval" {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}",
            before.status
        )));
    }
    let zh = before.language == "zh";
    let mut extra = Vec::new();
    let (status, name, text) = match &outcome {
        Outcome::ReversalExpedited => {
            let now_ms = DateTime::parse_from_rfc3339(at)
                .map(|t| t.timestamp_millis())
                .map_err(|_| ServiceError::BadInput(format!("{at:?} is not a time")))?;
            let mut sent = Vec::new();
            for l in db.complaint_txns(id).ctx("read complaint")? {
                for e in crate::check::saf_of(db, l.txn_id)? {
                    if e.kind != "reversal" || e.state == store::SafState::Done {
                        continue;
                    }
                    if e.state == store::SafState::Exception {
                        crate::saf::retry(db, e.saf_id, now_ms, actor, at)?;
                    } else {
                        extra.push(Write::Saf(store::SafRow {
                            next_at_ms: now_ms,
                            updated_at: at.into(),
                            ..e.clone()
                        }));
                    }
                    sent.push(e.saf_id);
                }
            }
            if sent.is_empty() {
                return Err(ServiceError::Conflict(format!(
                    "complaint {id}: no reversal of its transactions is waiting"
                )));
            }
            let text = if zh {
                "该笔交易的冲正已加急重新发送给发卡行，确认后扣款将退回，届时您会收到银行短信。"
                    .to_owned()
            } else {
                "The reversal is being sent to your bank again now; once acknowledged the debit is undone and your bank's SMS tells you.".to_owned()
            };
            ("resolved", "reversal_expedited", text)
        }
        Outcome::HoldReleased => {
            let mut subjects = Vec::new();
            for l in db.complaint_txns(id).ctx("read complaint")? {
                if let Some(t) = db.transaction(l.txn_id).ctx("read transaction")? {
                    subjects.push(format!("txn:{}", t.txn_id));
                    subjects.push(format!("merchant:{}", t.merchant_id));
                }
            }
            let held: Vec<store::HoldRow> = db
                .holds(true)
                .ctx("read holds")?
                .into_iter()
                .filter(|h| subjects.contains(&h.subject))
                .collect();
            if held.is_empty() {
                return Err(ServiceError::Conflict(format!(
                    "complaint {id}: nothing of its transactions is held"
                )));
            }
            for h in &held {
                crate::money::release_hold(db, &h.hold_id, &actor.name, actor, at)?;
            }
            let reasons: Vec<&str> = held.iter().map(|h| h.reason.as_str()).collect();
            let text = if zh {
                format!(
                    "结算暂缓（{}）已解除，款项将在下一次结算中支付。",
                    reasons.join("；")
                )
            } else {
                format!(
                    "The hold on the settlement ({}) is released: it is paid in the next settlement run.",
                    reasons.join("; ")
                )
            };
            ("resolved", "hold_released", text)
        }
        Outcome::Explained => {
            let d = diagnoses(db, id)?;
            if d.is_empty() {
                return Err(ServiceError::Conflict(format!(
                    "complaint {id} has no transaction linked to explain"
                )));
            }
            ("resolved", "explained", answer(&before, &d))
        }
        Outcome::Rejected(reason) => {
            crate::text("a rejection's reason", reason, 1000)?;
            ("rejected", "rejected", reason.clone())
        }
    };
    let after = ComplaintRow {
        status: status.into(),
        outcome: Some(name.into()),
        answer: Some(text.clone()),
        resolved_at: Some(at.into()),
        acknowledged_at: before.acknowledged_at.clone().or_else(|| Some(at.into())),
        updated_at: at.into(),
        ..before.clone()
    };
    change(
        db,
        &before,
        &after,
        "resolve",
        format!("{name}: {text}"),
        extra,
        actor,
        at,
    )?;
    Ok(after)
}

/// What a refund request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refund {
    /// Queued to the issuer as a credit adjustment (queue entry id); the complaint is
    /// resolved `refunded`.
    Queued(i64),
    /// Waits for a second person's approval (the action's id).
    AwaitingApproval(i64),
}

/// Issues the credit adjustment through the store-and-forward queue (the path
/// reconciliation uses; never a second mechanism): the writes, with the entry's id.
fn adjustment(
    db: &mut dyn Backend,
    t: &TxnRow,
    amount_minor: i64,
    reason: &str,
    at: &str,
) -> Result<(Write, i64)> {
    let so_far = switch::adjustments(t.txn_id, |id| db.saf_entry(id)).ctx("read queue")?;
    let n = match switch::next_adjustment(&so_far) {
        switch::NextAdjustment::Send(n) => n,
        switch::NextAdjustment::Waiting => {
            return Err(ServiceError::Conflict(format!(
                "transaction {} has a credit adjustment on its way already",
                t.txn_id
            )))
        }
        switch::NextAdjustment::ByHand(_) => {
            return Err(ServiceError::Conflict(format!(
                "transaction {}: the automatic adjustments are used up; give it back at the issuer by hand",
                t.txn_id
            )))
        }
    };
    let e = switch::adjustment_entry(t, n, amount_minor, reason, at).ok_or_else(|| {
        ServiceError::Conflict(format!(
            "transaction {} is not a sale or completion that can be given back",
            t.txn_id
        ))
    })?;
    let saf_id = e.saf_id;
    Ok((Write::Saf(e), saf_id))
}

/// Asks for a refund of (part of) a linked transaction. At most the threshold
/// (`four_eyes_minor`) it is queued at once; above it waits for a second person.
#[allow(clippy::too_many_arguments)]
pub fn request_refund(
    db: &mut dyn Backend,
    id: i64,
    txn_id: i64,
    amount_minor: i64,
    reason: &str,
    four_eyes_minor: i64,
    actor: &Actor,
    at: &str,
) -> Result<Refund> {
    crate::text("a refund's reason", reason, 500)?;
    let before = find(db, id)?;
    if is_closed(&before) || before.status == "awaiting_approval" {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}",
            before.status
        )));
    }
    if !db
        .complaint_txns(id)
        .ctx("read complaint")?
        .iter()
        .any(|l| l.txn_id == txn_id)
    {
        return Err(ServiceError::Conflict(format!(
            "transaction {txn_id} is not linked to complaint {id}"
        )));
    }
    let t = db
        .transaction(txn_id)
        .ctx("read transaction")?
        .ok_or_else(|| ServiceError::NotFound(format!("no transaction {txn_id}")))?;
    if amount_minor <= 0 || amount_minor > t.amount_minor {
        return Err(ServiceError::BadInput(format!(
            "a refund is 1 to {} minor units (the transaction's amount)",
            t.amount_minor
        )));
    }
    let action_id = db
        .complaint_actions(None)
        .ctx("read actions")?
        .last()
        .map_or(1, |a| a.action_id + 1);
    let mut action = ComplaintActionRow {
        action_id,
        complaint_id: id,
        kind: "refund".into(),
        txn_id,
        amount_minor,
        reason: reason.into(),
        requested_by: actor.name.clone(),
        requested_at: at.into(),
        decided_by: None,
        decided_at: None,
        status: "pending".into(),
    };
    if amount_minor > four_eyes_minor {
        let after = ComplaintRow {
            status: "awaiting_approval".into(),
            updated_at: at.into(),
            ..before.clone()
        };
        change(
            db,
            &before,
            &after,
            "request_refund",
            format!("refund {amount_minor} of transaction {txn_id} (above {four_eyes_minor}: a second person approves): {reason}"),
            vec![Write::ComplaintAction(action)],
            actor,
            at,
        )?;
        return Ok(Refund::AwaitingApproval(action_id));
    }
    let (saf, saf_id) = adjustment(
        db,
        &t,
        amount_minor,
        &format!("complaint {id}: {reason}"),
        at,
    )?;
    action.status = "done".into();
    let after = refunded(&before, amount_minor, at);
    change(
        db,
        &before,
        &after,
        "refund",
        format!("refund {amount_minor} of transaction {txn_id} queued (entry {saf_id}): {reason}"),
        vec![Write::ComplaintAction(action), saf],
        actor,
        at,
    )?;
    Ok(Refund::Queued(saf_id))
}

fn refunded(before: &ComplaintRow, amount_minor: i64, at: &str) -> ComplaintRow {
    let zh = before.language == "zh";
    let yuan = format!("{}.{:02}", amount_minor / 100, amount_minor % 100);
    ComplaintRow {
        status: "resolved".into(),
        outcome: Some("refunded".into()),
        answer: Some(if zh {
            format!(
                "我们已向您的发卡行发起{yuan}元退款，到账时间以发卡行为准，届时您会收到银行短信。"
            )
        } else {
            format!("We have sent a refund of {yuan} to your bank; your bank's SMS tells you when it is credited.")
        }),
        resolved_at: Some(at.into()),
        acknowledged_at: before.acknowledged_at.clone().or_else(|| Some(at.into())),
        updated_at: at.into(),
        ..before.clone()
    }
}

/// A second person approves (or refuses) a waiting refund; nobody decides their own.
pub fn decide_refund(
    db: &mut dyn Backend,
    action_id: i64,
    approve: bool,
    actor: &Actor,
    at: &str,
) -> Result<ComplaintRow> {
    let action = db
        .complaint_actions(None)
        .ctx("read actions")?
        .into_iter()
        .find(|a| a.action_id == action_id)
        .ok_or_else(|| ServiceError::NotFound(format!("no complaint action {action_id}")))?;
    if action.status != "pending" {
        return Err(ServiceError::Conflict(format!(
            "action {action_id} is {} already",
            action.status
        )));
    }
    if action.requested_by == actor.name {
        return Err(ServiceError::Forbidden(format!(
            "{} asked for refund {action_id}: another person approves it",
            actor.name
        )));
    }
    let before = find(db, action.complaint_id)?;
    let decided = ComplaintActionRow {
        decided_by: Some(actor.name.clone()),
        decided_at: Some(at.into()),
        status: if approve { "done" } else { "refused" }.into(),
        ..action.clone()
    };
    if !approve {
        let after = ComplaintRow {
            status: "acknowledged".into(),
            updated_at: at.into(),
            ..before.clone()
        };
        change(
            db,
            &before,
            &after,
            "refuse_refund",
            format!("refund {action_id} refused"),
            vec![Write::ComplaintAction(decided)],
            actor,
            at,
        )?;
        return Ok(after);
    }
    let t = db
        .transaction(action.txn_id)
        .ctx("read transaction")?
        .ok_or_else(|| ServiceError::NotFound(format!("no transaction {}", action.txn_id)))?;
    let (saf, saf_id) = adjustment(
        db,
        &t,
        action.amount_minor,
        &format!("complaint {}: {}", action.complaint_id, action.reason),
        at,
    )?;
    let after = refunded(&before, action.amount_minor, at);
    change(
        db,
        &before,
        &after,
        "approve_refund",
        format!(
            "refund {action_id} of {} approved (asked by {}); queued (entry {saf_id})",
            action.amount_minor, action.requested_by
        ),
        vec![Write::ComplaintAction(decided), saf],
        actor,
        at,
    )?;
    Ok(after)
}

/// The disclosure report of the complaints filed on local dates `from..=to`, on
/// `today` (transactions of the same days counted).
pub fn report(
    db: &mut dyn Backend,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<deadline::Report> {
    if to < from || (to - from).num_days() > 366 {
        return Err(ServiceError::BadInput(
            "a report covers from..=to, at most a year".into(),
        ));
    }
    let cal = crate::reference::calendar(db)?;
    let mut filed = Vec::new();
    for c in db.complaints(None).ctx("read complaints")? {
        let Some(opened) = local(&c.created_at) else {
            continue;
        };
        if opened.date() < from || opened.date() > to {
            continue;
        }
        let (Some(category), Some(source), Ok(due)) = (
            Category::parse(&c.category),
            Source::parse(&c.source),
            NaiveDate::parse_from_str(&c.resolve_due, "%Y-%m-%d"),
        ) else {
            continue;
        };
        filed.push(deadline::Filed {
            category,
            source,
            opened,
            closed: c.resolved_at.as_deref().and_then(local),
            resolve_due: due,
        });
    }
    let n = db
        .count_transactions(&from.to_string(), &to.to_string())
        .ctx("count transactions")?;
    Ok(deadline::report(&cal, &filed, n, today))
}

/// Where an open complaint stands on `today` against its deadlines: the
/// acknowledgement's while it is open, then the resolution's.
pub fn standing(
    db: &mut dyn Backend,
    c: &ComplaintRow,
    today: NaiveDate,
) -> Result<Option<Standing>> {
    standing_on(&crate::reference::calendar(db)?, c, today)
}

/// [`standing`] on a calendar already read (a queue reads it once for all).
pub fn standing_on(
    cal: &merchants::calendar::WorkCalendar,
    c: &ComplaintRow,
    today: NaiveDate,
) -> Result<Option<Standing>> {
    if is_closed(c) {
        return Ok(None);
    }
    let due = if c.status == "open" {
        &c.ack_due
    } else {
        &c.resolve_due
    };
    let due = NaiveDate::parse_from_str(due, "%Y-%m-%d").map_err(|_| {
        ServiceError::Invalid(format!("complaint {}: deadline {due}", c.complaint_id))
    })?;
    Ok(Some(deadline::standing(cal, due, today)))
}

/// One piece of a dispute's evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DisputeEvidence {
    /// `receipt`, `transaction_log`, `customer_communication`, `refund_policy`,
    /// `issuer_statement`, `other`.
    pub kind: String,
    /// What it says (or where the file is).
    pub text: String,
}

/// Working days the other side has to respond to a dispute, by default.
pub const DISPUTE_RESPOND_WORKING_DAYS: u32 = 10;

fn check_evidence(evidence: &[DisputeEvidence]) -> Result<()> {
    if evidence.len() > 20 {
        return Err(ServiceError::BadInput(
            "at most 20 pieces of evidence".into(),
        ));
    }
    for e in evidence {
        if !complaints::dispute::EVIDENCE_KINDS.contains(&e.kind.as_str()) {
            return Err(ServiceError::BadInput(format!(
                "evidence kind: one of {}",
                complaints::dispute::EVIDENCE_KINDS.join(", ")
            )));
        }
        crate::text("evidence", &e.text, 2000)?;
    }
    Ok(())
}

/// Escalates a complaint to the card's issuer (or the network) about one of its
/// transactions: a dispute opened at the pre-dispute stage with its evidence and a
/// deadline to respond by (working days); the complaint waits for it (`escalated`).
#[allow(clippy::too_many_arguments)]
pub fn escalate(
    db: &mut dyn Backend,
    id: i64,
    txn_id: i64,
    evidence: &[DisputeEvidence],
    respond_working_days: u32,
    actor: &Actor,
    at: &str,
) -> Result<store::DisputeRow> {
    check_evidence(evidence)?;
    if !(1..=60).contains(&respond_working_days) {
        return Err(ServiceError::BadInput(
            "respond within 1 to 60 working days".into(),
        ));
    }
    let before = find(db, id)?;
    if is_closed(&before) {
        return Err(ServiceError::Conflict(format!(
            "complaint {id} is {}",
            before.status
        )));
    }
    if !db
        .complaint_txns(id)
        .ctx("read complaint")?
        .iter()
        .any(|l| l.txn_id == txn_id)
    {
        return Err(ServiceError::Conflict(format!(
            "transaction {txn_id} is not linked to complaint {id}"
        )));
    }
    let today = local(at)
        .ok_or_else(|| ServiceError::BadInput(format!("{at:?} is not a time")))?
        .date();
    let cal = crate::reference::calendar(db)?;
    let dispute_id = db
        .disputes(None)
        .ctx("read disputes")?
        .last()
        .map_or(1, |d| d.dispute_id + 1);
    let row = store::DisputeRow {
        dispute_id,
        complaint_id: id,
        txn_id,
        stage: complaints::dispute::Stage::PreDispute.name().into(),
        status: complaints::dispute::Status::Opened.name().into(),
        evidence: serde_json::to_string(evidence).unwrap_or_else(|_| "[]".into()),
        respond_by: cal
            .add_working_days(today, respond_working_days)
            .to_string(),
        created_at: at.into(),
        updated_at: at.into(),
    };
    let after = ComplaintRow {
        status: "escalated".into(),
        updated_at: at.into(),
        ..before.clone()
    };
    change(
        db,
        &before,
        &after,
        "escalate",
        format!(
            "dispute {dispute_id} with the issuer about transaction {txn_id}, respond by {}",
            row.respond_by
        ),
        vec![Write::Dispute(row.clone())],
        actor,
        at,
    )?;
    Ok(row)
}

/// Moves a dispute on — its status as the reference table allows, its stage forward
/// only — adding evidence. A decided dispute resolves its complaint (`escalated`),
/// answered in the complainant's language.
pub fn update_dispute(
    db: &mut dyn Backend,
    dispute_id: i64,
    status: Option<&str>,
    stage: Option<&str>,
    evidence: &[DisputeEvidence],
    actor: &Actor,
    at: &str,
) -> Result<store::DisputeRow> {
    use complaints::dispute::{move_stage, move_status, Stage, Status};
    check_evidence(evidence)?;
    let before = db
        .disputes(None)
        .ctx("read disputes")?
        .into_iter()
        .find(|d| d.dispute_id == dispute_id)
        .ok_or_else(|| ServiceError::NotFound(format!("no dispute {dispute_id}")))?;
    let (from_status, from_stage) = (
        Status::parse(&before.status).ok_or_else(|| {
            ServiceError::Invalid(format!("dispute {dispute_id}: {}", before.status))
        })?,
        Stage::parse(&before.stage).ok_or_else(|| {
            ServiceError::Invalid(format!("dispute {dispute_id}: {}", before.stage))
        })?,
    );
    let conflict = |e: complaints::dispute::DisputeError| ServiceError::Conflict(e.to_string());
    let new_status = match status {
        Some(s) => move_status(
            from_status,
            Status::parse(s).ok_or_else(|| {
                ServiceError::BadInput(format!(
                    "status: one of {}",
                    Status::ALL.map(Status::name).join(", ")
                ))
            })?,
        )
        .map_err(conflict)?,
        None => from_status,
    };
    let new_stage = match stage {
        Some(s) => move_stage(
            from_stage,
            Stage::parse(s).ok_or_else(|| {
                ServiceError::BadInput("stage: pre_dispute, dispute or pre_arbitration".into())
            })?,
            from_status,
        )
        .map_err(conflict)?,
        None => from_stage,
    };
    if status.is_none() && stage.is_none() && evidence.is_empty() {
        return Err(ServiceError::BadInput(
            "give a status, a stage or evidence".into(),
        ));
    }
    let mut all: Vec<DisputeEvidence> = serde_json::from_str(&before.evidence).unwrap_or_default();
    all.extend(evidence.iter().cloned());
    check_evidence(&all)?;
    let row = store::DisputeRow {
        stage: new_stage.name().into(),
        status: new_status.name().into(),
        evidence: serde_json::to_string(&all).unwrap_or_else(|_| "[]".into()),
        updated_at: at.into(),
        ..before.clone()
    };
    let c = find(db, before.complaint_id)?;
    let note = format!(
        "dispute {dispute_id}: {} / {}{}",
        row.stage,
        row.status,
        if evidence.is_empty() {
            String::new()
        } else {
            format!(", {} piece(s) of evidence", evidence.len())
        }
    );
    let after = if new_status.is_final() && c.status == "escalated" {
        let zh = c.language == "zh";
        let won = matches!(new_status, Status::Won | Status::Accepted);
        ComplaintRow {
            status: "resolved".into(),
            outcome: Some("escalated".into()),
            answer: Some(match (zh, won) {
                (true, true) => "经与发卡行交涉，争议已按您的诉求处理，款项将由发卡行退回。".into(),
                (true, false) => "经与发卡行交涉，该笔交易成立，争议未获支持。".into(),
                (false, true) => "The dispute with your bank was decided in your favour: your bank returns the money.".into(),
                (false, false) => "The dispute with your bank was decided: the transaction stands.".into(),
            }),
            resolved_at: Some(at.into()),
            updated_at: at.into(),
            ..c.clone()
        }
    } else {
        ComplaintRow {
            updated_at: at.into(),
            ..c.clone()
        }
    };
    change(
        db,
        &c,
        &after,
        "dispute",
        note,
        vec![Write::Dispute(row.clone())],
        actor,
        at,
    )?;
    Ok(row)
}
