//! Merchant applications over the store: entered (the automatic checks that need only
//! the form run at once, while the personal ID number is in hand; it is then kept only
//! masked and as a keyed token), submitted (duplicates against the other applications
//! checked), reviewed through `merchants::review`'s state machine with a working-day
//! SLA by risk level. Every step is an application event and an audit record, in one
//! transaction.

use std::fmt;

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use merchants::application::{self, Form, Problem};
use merchants::review::{self, Action, AppState, Who};
use sha2::Sha256;
use store::{ApplicationEventRow, ApplicationRow, Backend, Write};

use crate::accounts::Actor;
use crate::{Context, Result, ServiceError};

/// The key personal ID numbers are tokenized with (HMAC-SHA256): the same number
/// always gives the same token, so duplicates are found, and the number cannot be
/// read back. Shown as `[redacted]`.
pub struct PiiKey([u8; 32]);

impl PiiKey {
    /// A key from 64 hex digits.
    pub fn from_hex(hex_text: &str) -> Result<PiiKey> {
        let bytes = hex::decode(hex_text.trim())
            .map_err(|_| ServiceError::BadInput("the PII key is 64 hex digits".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            ServiceError::BadInput("the PII key is 32 bytes (64 hex digits)".into())
        })?;
        Ok(PiiKey(key))
    }

    /// The token of a personal ID number (upper-cased first: `x` and `X` are one).
    pub fn token(&self, id: &str) -> String {
        // As cardsec's tokens: HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.to_ascii_uppercase().as_bytes());
        format!("pii1:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKey([redacted])")
    }
}

/// An application as the API shows it: the form with the ID number masked.
pub fn application_json(a: &ApplicationRow) -> serde_json::Value {
    serde_json::json!({
        "app_id": a.app_id,
        "status": a.status,
        "legal_name": a.legal_name,
        "kind": a.kind,
        "mcc": a.mcc,
        "risk_level": a.risk_level,
        "applicant": a.applicant,
        "assignee": a.assignee,
        "sla_due": a.sla_due,
        "merchant_id": a.merchant_id,
        "problems": serde_json::from_str::<serde_json::Value>(&a.problems).unwrap_or_default(),
        "form": serde_json::from_str::<serde_json::Value>(&a.form).unwrap_or_default(),
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    })
}

/// What the audit trail keeps of an application (its review's state).
fn audit_json(a: &ApplicationRow) -> serde_json::Value {
    serde_json::json!({
        "status": a.status, "risk_level": a.risk_level, "assignee": a.assignee,
        "sla_due": a.sla_due, "problems": a.problems,
    })
}

/// The form's row fields: the masked form, the token, the checks' problems.
fn from_form(
    f: &Form,
    key: &PiiKey,
    today: NaiveDate,
    mccs: &merchants::mcc::Table,
) -> Result<(String, String, Vec<Problem>)> {
    let problems = application::automatic_checks(f, today, mccs);
    let token = key.token(&f.representative.id_number);
    let mut masked = f.clone();
    masked.representative.id_number = application::mask_id(&f.representative.id_number);
    let form = serde_json::to_string(&masked)
        .map_err(|e| ServiceError::Invalid(format!("application form: {e}")))?;
    Ok((form, token, problems))
}

fn problems_text(p: &[Problem]) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "[]".into())
}

/// Enters an application as a draft (the form's own checks run now; their problems are
/// kept and shown, and decide the checks at submission).
pub fn create(
    db: &mut dyn Backend,
    f: &Form,
    key: &PiiKey,
    today: NaiveDate,
    actor: &Actor,
    at: &str,
) -> Result<ApplicationRow> {
    let mccs = crate::reference::mcc_table(db)?;
    let (form, token, problems) = from_form(f, key, today, &mccs)?;
    let app_id = db
        .applications(None)
        .ctx("read applications")?
        .last()
        .map_or(1, |a| a.app_id + 1);
    let row = ApplicationRow {
        app_id,
        status: AppState::Draft.name().into(),
        legal_name: f.legal_name.trim().into(),
        kind: match f.kind {
            application::ApplicantKind::Company => "company".into(),
            application::ApplicantKind::Individual => "individual".into(),
        },
        mcc: f.mcc.clone(),
        risk_level: application::risk_level(f, &mccs).into(),
        form,
        problems: problems_text(&problems),
        uscc: f.uscc.clone().unwrap_or_default(),
        rep_id_token: token,
        account_number: f.settlement_account.number.clone(),
        applicant: actor.name.clone(),
        assignee: None,
        sla_due: None,
        merchant_id: None,
        created_at: at.into(),
        updated_at: at.into(),
    };
    let event = ApplicationEventRow {
        app_id,
        seq: 1,
        at: at.into(),
        action: "create".into(),
        actor: actor.name.clone(),
        status: row.status.clone(),
        note: String::new(),
    };
    db.apply(&[
        Write::Application(row.clone()),
        Write::ApplicationEvent(event),
        actor.audit(
            at,
            "application.create",
            &format!("application:{app_id}"),
            serde_json::Value::Null,
            audit_json(&row),
        ),
    ])
    .ctx("write application")?;
    Ok(row)
}

/// What a review step carries.
#[derive(Debug, Clone)]
pub enum Step {
    /// Submit (a draft, or after failed checks).
    Submit,
    /// Answer a request for information with the corrected form.
    Resubmit(Box<Form>),
    /// Withdraw.
    Withdraw,
    /// Take the review (or hand it to someone).
    Assign(String),
    /// Ask for more information.
    RequestInfo(String),
    /// Override failed checks, with the reason.
    Override(String),
    /// Approve with a risk rating.
    Approve(String),
    /// Reject with the reason.
    Reject(String),
}

/// Takes a review step; a submission runs the checks at once (two steps, two
/// events). Returns the application after it.
#[allow(clippy::too_many_arguments)]
pub fn step(
    db: &mut dyn Backend,
    app_id: i64,
    step: Step,
    who: Who,
    key: &PiiKey,
    today: NaiveDate,
    actor: &Actor,
    at: &str,
) -> Result<ApplicationRow> {
    let mut row = db
        .application(app_id)
        .ctx("read application")?
        .ok_or_else(|| ServiceError::NotFound(format!("no application {app_id}")))?;
    let mut seq = db.application_events(app_id).ctx("read application")?.len() as i64;
    let mut writes = Vec::new();
    let (mccs, calendar) = (
        crate::reference::mcc_table(db)?,
        crate::reference::calendar(db)?,
    );
    let state = |r: &ApplicationRow| AppState::parse(&r.status).unwrap_or(AppState::Draft);
    let (action, note) = match &step {
        Step::Submit => (Action::Submit, String::new()),
        Step::Resubmit(_) => (Action::Resubmit, String::new()),
        Step::Withdraw => (Action::Withdraw, String::new()),
        Step::Assign(w) => (Action::Assign, w.clone()),
        Step::RequestInfo(n) => (Action::RequestInfo, n.clone()),
        Step::Override(n) => (Action::Override, n.clone()),
        Step::Reject(n) => (Action::Reject, n.clone()),
        Step::Approve(r) => (Action::Approve, r.clone()),
    };
    // Every reviewer's step carries its text (an assignee, a reason, a rating).
    if !matches!(action, Action::Submit | Action::Resubmit | Action::Withdraw) {
        crate::text("a review note", &note, 2000)?;
    }
    let mut moved = |row: &mut ApplicationRow,
                     writes: &mut Vec<Write>,
                     action: Action,
                     who: Who,
                     note: String|
     -> Result<()> {
        let before = row.clone();
        let to = review::next(state(row), action, who)
            .map_err(|e| ServiceError::Conflict(e.to_string()))?;
        row.status = to.name().into();
        row.updated_at = at.into();
        match action {
            Action::Assign => row.assignee = Some(note.clone()),
            Action::Approve => row.risk_level = note.clone(),
            Action::ChecksPass | Action::Override => {
                let days = application::sla_working_days(&row.risk_level);
                row.sla_due = Some(calendar.add_working_days(today, days).to_string());
            }
            _ => {}
        }
        seq += 1;
        writes.push(Write::ApplicationEvent(ApplicationEventRow {
            app_id,
            seq,
            at: at.into(),
            action: action.name().into(),
            actor: if who == Who::System {
                "posguard".into()
            } else {
                actor.name.clone()
            },
            status: row.status.clone(),
            note,
        }));
        writes.push(actor.audit(
            at,
            &format!("application.{}", action.name()),
            &format!("application:{app_id}"),
            audit_json(&before),
            audit_json(row),
        ));
        Ok(())
    };
    if let Step::Approve(r) = &step {
        if !["low", "medium", "high"].contains(&r.as_str()) {
            return Err(ServiceError::BadInput(
                "the risk rating is low, medium or high".into(),
            ));
        }
    }
    let note = if let Step::Override(reason) = &step {
        let problems: Vec<Problem> = serde_json::from_str(&row.problems).unwrap_or_default();
        let (may, may_not): (Vec<&Problem>, Vec<&Problem>) = problems
            .iter()
            .partition(|p| application::OVERRIDABLE.contains(&p.code.as_str()));
        if !may_not.is_empty() {
            let codes: Vec<String> = may_not
                .iter()
                .map(|p| format!("{} ({})", p.code, p.field))
                .collect();
            return Err(ServiceError::Conflict(format!(
                "a reviewer overrides only a duplicate or a pilot-region code's check character; {} must be fixed (ask for information)",
                codes.join(", ")
            )));
        }
        let mut codes: Vec<&str> = may.iter().map(|p| p.code.as_str()).collect();
        codes.dedup();
        let what = if codes.iter().any(|c| c.starts_with("uscc.")) {
            "pilot-region code"
        } else {
            "duplicate"
        };
        format!("overrides {} ({what}): {reason}", codes.join(", "))
    } else {
        note
    };
    if let Step::Resubmit(f) = &step {
        let (form, token, problems) = from_form(f, key, today, &mccs)?;
        row.form = form;
        row.rep_id_token = token;
        row.problems = problems_text(&problems);
        row.legal_name = f.legal_name.trim().into();
        row.mcc = f.mcc.clone();
        row.risk_level = application::risk_level(f, &mccs).into();
        row.uscc = f.uscc.clone().unwrap_or_default();
        row.account_number = f.settlement_account.number.clone();
    }
    moved(&mut row, &mut writes, action, who, note)?;
    if matches!(action, Action::Submit | Action::Resubmit) {
        // The checks: the form's own, the documents, then duplicates among the other
        // applications.
        let mut problems: Vec<Problem> = serde_json::from_str(&row.problems).unwrap_or_default();
        // A resubmission's form was checked just now; the stored problems of an earlier
        // submission (documents, duplicates) are found again below.
        problems.retain(|p| {
            !p.code.starts_with("duplicate")
                && !p.code.starts_with("document.")
                && p.code != "blocklist"
        });
        let kind = if row.kind == "individual" {
            application::ApplicantKind::Individual
        } else {
            application::ApplicantKind::Company
        };
        let given: Vec<(merchants::documents::DocType, Option<NaiveDate>)> = db
            .application_documents(app_id)
            .ctx("read documents")?
            .iter()
            .filter_map(|d| {
                Some((
                    merchants::documents::DocType::parse(&d.doc_type)?,
                    d.expires_on
                        .as_deref()
                        .and_then(|e| NaiveDate::parse_from_str(e, "%Y-%m-%d").ok()),
                ))
            })
            .collect();
        problems.extend(merchants::documents::check(
            kind, &row.mcc, &mccs, &given, today,
        ));
        for b in db.blocklist().ctx("read the blocklist")? {
            let hit = match b.kind.as_str() {
                "uscc" => !row.uscc.is_empty() && b.value == row.uscc,
                "representative" => b.value == row.rep_id_token,
                "account" => b.value == row.account_number,
                _ => false,
            };
            if hit {
                problems.push(Problem {
                    code: "blocklist".into(),
                    field: block_field(&b.kind).into(),
                    message: format!("on the blocklist: {}", b.reason),
                });
            }
        }
        let closed: std::collections::BTreeSet<String> = db
            .merchants()
            .ctx("read merchants")?
            .into_iter()
            .filter(|m| m.status == "closed")
            .map(|m| m.merchant_id)
            .collect();
        for other in db.applications(None).ctx("read applications")? {
            if other.app_id == app_id || other.status == AppState::Withdrawn.name() {
                continue;
            }
            let was_closed = other
                .merchant_id
                .as_ref()
                .is_some_and(|m| closed.contains(m));
            let dup = |field: &str, what: &str| Problem {
                code: if was_closed {
                    "duplicate.closed_merchant".into()
                } else {
                    "duplicate".into()
                },
                field: field.into(),
                message: if was_closed {
                    format!(
                        "the same {what} was merchant {}'s, which is closed",
                        other.merchant_id.clone().unwrap_or_default()
                    )
                } else {
                    format!(
                        "the same {what} is on application {} ({})",
                        other.app_id, other.status
                    )
                },
            };
            if !row.uscc.is_empty() && other.uscc == row.uscc {
                problems.push(dup("uscc", "unified social credit code"));
            }
            if other.rep_id_token == row.rep_id_token {
                problems.push(dup("representative.id_number", "legal representative"));
            }
            if other.account_number == row.account_number {
                problems.push(dup("settlement_account.number", "settlement account"));
            }
        }
        let text = problems_text(&problems);
        row.problems = text.clone();
        let (action, note) = if problems.is_empty() {
            (Action::ChecksPass, String::new())
        } else {
            (Action::ChecksFail, text)
        };
        moved(&mut row, &mut writes, action, Who::System, note)?;
    }
    writes.insert(0, Write::Application(row.clone()));
    db.apply(&writes).ctx("write application")?;
    Ok(row)
}

fn block_field(kind: &str) -> &'static str {
    match kind {
        "uscc" => "uscc",
        "representative" => "representative.id_number",
        _ => "settlement_account.number",
    }
}

/// Adds an entry to the blocklist (audited): a unified social credit code, a
/// representative's resident ID number (kept as its keyed token) or a settlement
/// account. Applications submitted after it carrying it fail their checks.
pub fn block(
    db: &mut dyn Backend,
    kind: &str,
    value: &str,
    reason: &str,
    key: &PiiKey,
    actor: &Actor,
    at: &str,
) -> Result<store::BlockRow> {
    crate::text("a blocklist entry's reason", reason, 500)?;
    let value = match kind {
        "uscc" => {
            merchants::checks::uscc(value).map_err(|e| ServiceError::BadInput(e.to_string()))?;
            value.to_owned()
        }
        "representative" => key.token(value),
        "account"
            if (8..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) =>
        {
            value.to_owned()
        }
        "account" => {
            return Err(ServiceError::BadInput(
                "an account number is 8 to 32 digits".into(),
            ))
        }
        _ => {
            return Err(ServiceError::BadInput(
                "a blocklist entry is a uscc, a representative or an account".into(),
            ))
        }
    };
    let row = store::BlockRow {
        kind: kind.into(),
        value,
        reason: reason.into(),
        added_by: actor.name.clone(),
        added_at: at.into(),
    };
    let shown = if kind == "representative" {
        "(a representative's token)".to_owned()
    } else {
        row.value.clone()
    };
    db.apply(&[
        Write::Block(row.clone()),
        actor.audit(
            at,
            "blocklist.add",
            &format!("blocklist:{kind}"),
            serde_json::Value::Null,
            serde_json::json!({"kind": kind, "value": shown, "reason": reason}),
        ),
    ])
    .ctx("write the blocklist")?;
    // A merchant already carrying it is exited at once: suspended (its settlement
    // held) and its terminals disabled.
    let hit = |a: &ApplicationRow| match kind {
        "uscc" => !a.uscc.is_empty() && a.uscc == row.value,
        "representative" => a.rep_id_token == row.value,
        _ => a.account_number == row.value,
    };
    let merchants: Vec<String> = db
        .applications(None)
        .ctx("read applications")?
        .iter()
        .filter(|a| hit(a))
        .filter_map(|a| a.merchant_id.clone())
        .collect();
    for m in merchants {
        let why = format!("blocklisted: {reason}");
        set_merchant_status(db, &m, "suspended", &why, actor, at)?;
        for t in db.terminals().ctx("read terminals")? {
            if t.merchant_id == m && t.status != "disabled" {
                set_terminal_status(db, &t.terminal_id, "disabled", &why, actor, at)?;
            }
        }
    }
    Ok(row)
}

/// Attaches a document to an application the applicant may still change (a draft,
/// one whose checks failed, one asked for more information): a PDF, PNG or JPEG of at
/// most 10 MiB, recognised from its bytes, stored once under its SHA-256. Audited
/// (the type, hash and size; never the content). Returns the hash.
#[allow(clippy::too_many_arguments)]
pub fn attach_document(
    db: &mut dyn Backend,
    app_id: i64,
    doc_type: &str,
    expires_on: Option<NaiveDate>,
    bytes: &[u8],
    actor: &Actor,
    at: &str,
) -> Result<String> {
    use sha2::Digest as _;
    let kind = merchants::documents::DocType::parse(doc_type).ok_or_else(|| {
        ServiceError::BadInput(format!(
            "a document type is one of {}",
            merchants::documents::DocType::ALL
                .map(|d| d.name())
                .join(", ")
        ))
    })?;
    if bytes.len() > merchants::documents::MAX_DOCUMENT {
        return Err(ServiceError::BadInput(format!(
            "a document is at most {} bytes",
            merchants::documents::MAX_DOCUMENT
        )));
    }
    let content_type = merchants::documents::sniff(bytes)
        .ok_or_else(|| ServiceError::BadInput("a document is a PDF, PNG or JPEG file".into()))?;
    let row = db
        .application(app_id)
        .ctx("read application")?
        .ok_or_else(|| ServiceError::NotFound(format!("no application {app_id}")))?;
    let open = [
        AppState::Draft.name(),
        AppState::ChecksFailed.name(),
        AppState::InfoRequested.name(),
    ];
    if !open.contains(&row.status.as_str()) {
        return Err(ServiceError::Conflict(format!(
            "application {app_id} is {}: documents are added to a draft, after failed checks or when asked",
            row.status
        )));
    }
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    let seq = db.application_events(app_id).ctx("read application")?.len() as i64 + 1;
    let after = serde_json::json!({
        "doc_type": kind.name(), "sha256": sha, "size": bytes.len(),
        "content_type": content_type, "expires_on": expires_on.map(|d| d.to_string()),
    });
    db.apply(&[
        Write::Document(store::DocumentRow {
            sha256: sha.clone(),
            content_type: content_type.into(),
            size: bytes.len() as i64,
            bytes: bytes.to_vec(),
            created_at: at.into(),
        }),
        Write::ApplicationDocument(store::ApplicationDocumentRow {
            app_id,
            doc_type: kind.name().into(),
            sha256: sha.clone(),
            expires_on: expires_on.map(|d| d.to_string()),
            uploaded_by: actor.name.clone(),
            uploaded_at: at.into(),
        }),
        Write::ApplicationEvent(ApplicationEventRow {
            app_id,
            seq,
            at: at.into(),
            action: "document".into(),
            actor: actor.name.clone(),
            status: row.status.clone(),
            note: format!("{} {}", kind.name(), sha),
        }),
        actor.audit(
            at,
            "application.document",
            &format!("application:{app_id}"),
            serde_json::Value::Null,
            after,
        ),
    ])
    .ctx("write document")?;
    Ok(sha)
}

/// A stored document's bytes and content type.
pub fn document_bytes(db: &mut dyn Backend, sha256: &str) -> Result<(String, Vec<u8>)> {
    let d = db
        .document(sha256)
        .ctx("read document")?
        .ok_or_else(|| ServiceError::NotFound(format!("no document {sha256}")))?;
    Ok((d.content_type, d.bytes))
}

/// Applications whose review is past its SLA on `today` (still in review or
/// waiting for a reviewer).
pub fn overdue(db: &mut dyn Backend, today: NaiveDate) -> Result<Vec<ApplicationRow>> {
    let open = [AppState::ChecksPassed.name(), AppState::InReview.name()];
    Ok(db
        .applications(None)
        .ctx("read applications")?
        .into_iter()
        .filter(|a| open.contains(&a.status.as_str()))
        .filter(|a| {
            a.sla_due
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .is_some_and(|d| d < today)
        })
        .collect())
}

/// One terminal provisioned, and how its master key reaches it.
#[derive(Debug)]
pub struct Provisioned {
    /// The terminal id (8 digits).
    pub terminal_id: String,
    /// Where it is installed.
    pub install_address: String,
    /// Its master key for injection: components or under the KEK.
    pub delivery: cardsec::KeyDelivery,
}

/// What provisioning made.
#[derive(Debug)]
pub struct Provisioning {
    /// The new merchant id (15 digits).
    pub merchant_id: String,
    /// Its terminals.
    pub terminals: Vec<Provisioned>,
}

/// The next merchant id for an MCC: `89831000` + the MCC + a sequence of 3 digits.
fn next_merchant_id(db: &mut dyn Backend, mcc: &str) -> Result<String> {
    let prefix = format!("89831000{mcc}");
    let used: Vec<u32> = db
        .merchants()
        .ctx("read merchants")?
        .iter()
        .filter_map(|m| m.merchant_id.strip_prefix(&prefix)?.parse().ok())
        .collect();
    let next = used.iter().max().map_or(1, |m| m + 1);
    if next > 999 {
        return Err(ServiceError::Conflict(format!(
            "no merchant id left for MCC {mcc}"
        )));
    }
    Ok(format!("{prefix}{next:03}"))
}

/// The city of a business address: up to its first `市` (`杭州市西湖区…` → `杭州市`),
/// else the text before its first comma (`SHANGHAI, 1 …` → `SHANGHAI`).
fn city_of(address: &str) -> String {
    let city = match address.find('市') {
        Some(i) => &address[..i + '市'.len_utf8()],
        None => address.split(',').next().unwrap_or_default(),
    };
    city.trim().chars().take(20).collect()
}

/// Provisions an approved application: the merchant (its class and risk from the
/// review), its terms (the MCC class's plan, the application's settlement account,
/// T+1), and its terminals (`pending_install`, each with a master key generated in
/// the security module and handed out for injection — under `kek` when given, else
/// as two components). One transaction; audited. An application provisions once.
pub fn provision(
    db: &mut dyn Backend,
    app_id: i64,
    hsm: &cardsec::SoftwareSecurityModule,
    kek: Option<&cardsec::WrappedKey>,
    actor: &Actor,
    at: &str,
) -> Result<Provisioning> {
    let mut row = db
        .application(app_id)
        .ctx("read application")?
        .ok_or_else(|| ServiceError::NotFound(format!("no application {app_id}")))?;
    if row.status != AppState::Approved.name() {
        return Err(ServiceError::Conflict(format!(
            "application {app_id} is {}: only an approved one is provisioned",
            row.status
        )));
    }
    if let Some(m) = &row.merchant_id {
        return Err(ServiceError::Conflict(format!(
            "application {app_id} is provisioned already: merchant {m}"
        )));
    }
    let form: Form = serde_json::from_str(&row.form)
        .map_err(|e| ServiceError::Invalid(format!("stored application form: {e}")))?;
    let merchant_id = next_merchant_id(db, &row.mcc)?;
    let first_tid = db
        .terminals()
        .ctx("read terminals")?
        .iter()
        .filter_map(|t| t.terminal_id.parse::<u32>().ok())
        .filter(|t| *t >= 30_000_000)
        .max()
        .map_or(30_000_001, |t| t + 1);
    // Individual merchants have the small merchants' limits (R10).
    let class = if row.kind == "individual" {
        "small"
    } else {
        "standard"
    };
    let limits = merchants::limits::for_merchant(class, &row.risk_level);
    let mut writes = vec![Write::Merchant(store::MerchantRow {
        merchant_id: merchant_id.clone(),
        name: row.legal_name.clone(),
        city: city_of(&form.business_address),
        mcc: row.mcc.clone(),
        status: "active".into(),
        created_at: at.into(),
        merchant_class: class.into(),
        risk_class: row.risk_level.clone(),
    })];
    let plan = settlement::MccClass::of(&row.mcc).plan();
    writes.push(Write::Terms(store::TermsRow {
        merchant_id: merchant_id.clone(),
        settlement_account: form.settlement_account.number.clone(),
        cycle: settlement::Cycle::T1.name(),
        debit_bps: plan.debit_bps,
        credit_bps: plan.credit_bps,
        debit_cap_minor: plan.debit_cap_minor,
        min_fee_minor: plan.min_fee_minor,
        updated_at: at.into(),
        txn_limit_minor: limits.per_txn_minor,
        day_limit_minor: limits.per_day_minor,
        reserve_bps: limits.reserve_bps,
        reserve_days: limits.reserve_days,
    }));
    let mut terminals = Vec::new();
    for (t, tid) in form.terminals.iter().zip(first_tid..) {
        let terminal_id = format!("{tid:08}");
        let (tmk, delivery) = hsm
            .generate_for_injection(cardsec::KeyKind::Tmk, 1, 16, kek)
            .map_err(|e| {
                ServiceError::Invalid(format!("generate terminal {terminal_id}'s key: {e}"))
            })?;
        writes.push(Write::Terminal(store::TerminalRow {
            terminal_id: terminal_id.clone(),
            merchant_id: merchant_id.clone(),
            status: "pending_install".into(),
            tmk: tmk.to_text(),
            pik: None,
            mak: None,
            mak_prev: None,
            key_version: 1,
            batch: 1,
            signed_on: false,
            // The coordinates, which the switch compares with where the terminal
            // reports it is (the address is the application's).
            install_location: format!("{:.4},{:.4}", t.latitude, t.longitude),
            updated_at: at.into(),
            key_profile: if t.encrypts_track { "004" } else { "003" }.into(),
            pending_pik: None,
            pending_mak: None,
            tdk: None,
            pending_tdk: None,
        }));
        terminals.push(Provisioned {
            terminal_id,
            install_address: t.install_address.clone(),
            delivery,
        });
    }
    let before = audit_json(&row);
    row.merchant_id = Some(merchant_id.clone());
    row.updated_at = at.into();
    let seq = db.application_events(app_id).ctx("read application")?.len() as i64 + 1;
    let tids: Vec<&str> = terminals.iter().map(|t| t.terminal_id.as_str()).collect();
    let note = format!("merchant {merchant_id}, terminals {}", tids.join(", "));
    let mut after = audit_json(&row);
    after["merchant_id"] = serde_json::json!(merchant_id);
    after["terminals"] = serde_json::json!(tids);
    writes.push(Write::ApplicationEvent(ApplicationEventRow {
        app_id,
        seq,
        at: at.into(),
        action: "provision".into(),
        actor: actor.name.clone(),
        status: row.status.clone(),
        note,
    }));
    writes.push(actor.audit(
        at,
        "application.provision",
        &format!("application:{app_id}"),
        before,
        after,
    ));
    let approved_on = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| (t.to_utc() + chrono::Duration::hours(8)).date_naive())
        .map_err(|_| ServiceError::BadInput(format!("{at:?} is not a time")))?;
    writes.push(Write::MerchantReview(store::MerchantReviewRow {
        merchant_id: merchant_id.clone(),
        risk_level: row.risk_level.clone(),
        due_on: months_after(approved_on, rereview_months(&row.risk_level)).to_string(),
        last_on: approved_on.to_string(),
    }));
    writes.insert(0, Write::Application(row));
    db.apply(&writes).ctx("write the new merchant")?;
    Ok(Provisioning {
        merchant_id,
        terminals,
    })
}

/// A merchant's status: `active` sells and settles; `suspended` is refused at the
/// terminal and its settlement held; `closed` too, and its terminals are disabled.
pub const MERCHANT_STATUSES: [&str; 3] = ["active", "suspended", "closed"];

/// A terminal's status set by operators (`pending_install` is provisioning's).
pub const TERMINAL_STATUSES: [&str; 2] = ["active", "disabled"];

fn merchant_status_json(m: &store::MerchantRow) -> serde_json::Value {
    serde_json::json!({"merchant_id": m.merchant_id, "status": m.status})
}

/// Sets a merchant's status with the reason (audited); closing one disables its
/// terminals. Every running node applies it to the merchant's next transaction (the
/// audit record is the change feed they follow); settlement holds a merchant that is
/// not active at once, with the status as reason.
pub fn set_merchant_status(
    db: &mut dyn Backend,
    merchant_id: &str,
    status: &str,
    reason: &str,
    actor: &Actor,
    at: &str,
) -> Result<store::MerchantRow> {
    if !MERCHANT_STATUSES.contains(&status) {
        return Err(ServiceError::BadInput(format!(
            "a merchant's status is active, suspended or closed, not {status:?}"
        )));
    }
    crate::text("a status change's reason", reason, 500)?;
    let before = db
        .merchant(merchant_id)
        .ctx("read merchant")?
        .ok_or_else(|| ServiceError::NotFound(format!("no merchant {merchant_id}")))?;
    if before.status == status {
        return Ok(before);
    }
    let after = store::MerchantRow {
        status: status.into(),
        ..before.clone()
    };
    let mut b = merchant_status_json(&before);
    let mut a = merchant_status_json(&after);
    b["reason"] = serde_json::Value::Null;
    a["reason"] = serde_json::json!(reason);
    let mut writes = vec![
        Write::Merchant(after.clone()),
        actor.audit(
            at,
            "merchant.status",
            &format!("merchant:{merchant_id}"),
            b,
            a,
        ),
    ];
    if status == "closed" {
        for t in db.terminals().ctx("read terminals")? {
            if t.merchant_id == merchant_id && t.status != "disabled" {
                let before_t =
                    serde_json::json!({"terminal_id": t.terminal_id, "status": t.status});
                let disabled = store::TerminalRow {
                    status: "disabled".into(),
                    updated_at: at.into(),
                    ..t
                };
                writes.push(actor.audit(
                    at,
                    "terminal.status",
                    &format!("terminal:{}", disabled.terminal_id),
                    before_t,
                    serde_json::json!({"terminal_id": disabled.terminal_id, "status": "disabled", "reason": format!("merchant closed: {reason}")}),
                ));
                writes.push(Write::Terminal(disabled));
            }
        }
    }
    db.apply(&writes).ctx("write merchant status")?;
    Ok(after)
}

/// A merchant's limits as the audit trail (and the change feed the nodes follow, which
/// reads `txn_limit_minor` and `day_limit_minor`) shows them.
fn limits_json(t: &store::TermsRow) -> serde_json::Value {
    serde_json::json!({
        "merchant_id": t.merchant_id, "txn_limit_minor": t.txn_limit_minor,
        "day_limit_minor": t.day_limit_minor, "reserve_bps": t.reserve_bps,
        "reserve_days": t.reserve_days,
    })
}

/// Sets a merchant's transaction limits (minor units; 0 = none beyond the switch's)
/// with the reason, in its terms (audited as `merchant.limits`): every node enforces
/// them from its next transaction.
pub fn set_limits(
    db: &mut dyn Backend,
    merchant_id: &str,
    txn_limit_minor: i64,
    day_limit_minor: i64,
    reason: &str,
    actor: &Actor,
    at: &str,
) -> Result<store::TermsRow> {
    const MAX: i64 = 100_000_000_000;
    if !(0..=MAX).contains(&txn_limit_minor) || !(0..=MAX).contains(&day_limit_minor) {
        return Err(ServiceError::BadInput(format!(
            "limits are 0 (none) to {MAX} minor units"
        )));
    }
    crate::text("a limit change's reason", reason, 500)?;
    let merchant = db
        .merchant(merchant_id)
        .ctx("read merchant")?
        .ok_or_else(|| ServiceError::NotFound(format!("no merchant {merchant_id}")))?;
    // A merchant without terms of its own is priced by its MCC's plan (as settlement
    // does): its limits are written into those terms.
    let before = match db.terms_of(merchant_id).ctx("read terms")? {
        Some(t) => t,
        None => {
            let plan = settlement::MccClass::of(&merchant.mcc).plan();
            store::TermsRow {
                merchant_id: merchant_id.into(),
                settlement_account: plan.settlement_account.clone(),
                cycle: plan.cycle.name(),
                debit_bps: plan.debit_bps,
                credit_bps: plan.credit_bps,
                debit_cap_minor: plan.debit_cap_minor,
                min_fee_minor: plan.min_fee_minor,
                updated_at: at.into(),
                txn_limit_minor: 0,
                day_limit_minor: 0,
                reserve_bps: plan.reserve_bps,
                reserve_days: plan.reserve_days,
            }
        }
    };
    let after = store::TermsRow {
        txn_limit_minor,
        day_limit_minor,
        updated_at: at.into(),
        ..before.clone()
    };
    let json = limits_json;
    let mut a = json(&after);
    a["reason"] = serde_json::json!(reason);
    db.apply(&[
        Write::Terms(after.clone()),
        actor.audit(
            at,
            "merchant.limits",
            &format!("merchant:{merchant_id}"),
            json(&before),
            a,
        ),
    ])
    .ctx("write limits")?;
    Ok(after)
}

/// A terminal by its id.
fn find_terminal(db: &mut dyn Backend, terminal_id: &str) -> Result<store::TerminalRow> {
    db.terminals()
        .ctx("read terminals")?
        .into_iter()
        .find(|t| t.terminal_id == terminal_id)
        .ok_or_else(|| ServiceError::NotFound(format!("no terminal {terminal_id}")))
}

/// Registers a terminal's new install location (it was moved, with the reason;
/// audited as `terminal.location`): every node compares where the terminal reports it
/// is with this from its next transaction.
pub fn set_terminal_location(
    db: &mut dyn Backend,
    terminal_id: &str,
    latitude: f64,
    longitude: f64,
    reason: &str,
    actor: &Actor,
    at: &str,
) -> Result<store::TerminalRow> {
    if !((3.0..=54.0).contains(&latitude) && (73.0..=136.0).contains(&longitude)) {
        return Err(ServiceError::BadInput(
            "the install location's coordinates are not in China".into(),
        ));
    }
    crate::text("a relocation's reason", reason, 500)?;
    let before = find_terminal(db, terminal_id)?;
    let after = store::TerminalRow {
        install_location: format!("{latitude:.4},{longitude:.4}"),
        updated_at: at.into(),
        ..before.clone()
    };
    db.apply(&[
        Write::Terminal(after.clone()),
        actor.audit(
            at,
            "terminal.location",
            &format!("terminal:{terminal_id}"),
            serde_json::json!({"terminal_id": terminal_id, "install_location": before.install_location}),
            serde_json::json!({"terminal_id": terminal_id, "install_location": after.install_location, "reason": reason}),
        ),
    ])
    .ctx("write terminal location")?;
    Ok(after)
}

/// Enables or disables a terminal with the reason (audited).
pub fn set_terminal_status(
    db: &mut dyn Backend,
    terminal_id: &str,
    status: &str,
    reason: &str,
    actor: &Actor,
    at: &str,
) -> Result<store::TerminalRow> {
    if !TERMINAL_STATUSES.contains(&status) {
        return Err(ServiceError::BadInput(format!(
            "a terminal's status is active or disabled, not {status:?}"
        )));
    }
    crate::text("a status change's reason", reason, 500)?;
    let before = find_terminal(db, terminal_id)?;
    if before.status == status {
        return Ok(before);
    }
    if status == "active" && before.status == "pending_install" {
        return Err(ServiceError::Conflict(format!(
            "terminal {terminal_id} becomes active with its first approved sale"
        )));
    }
    let after = store::TerminalRow {
        status: status.into(),
        updated_at: at.into(),
        ..before.clone()
    };
    db.apply(&[
        Write::Terminal(after.clone()),
        actor.audit(
            at,
            "terminal.status",
            &format!("terminal:{terminal_id}"),
            serde_json::json!({"terminal_id": terminal_id, "status": before.status}),
            serde_json::json!({"terminal_id": terminal_id, "status": status, "reason": reason}),
        ),
    ])
    .ctx("write terminal status")?;
    Ok(after)
}

/// Months until a merchant's next re-review, by risk rating.
pub fn rereview_months(risk: &str) -> u32 {
    match risk {
        "high" => 6,
        "medium" => 12,
        _ => 24,
    }
}

/// Days past its due date a re-review may run before the merchant's settlement is
/// held.
pub const REREVIEW_GRACE_DAYS: i64 = 30;

fn months_after(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(months))
        .unwrap_or(d)
}

/// The merchants whose re-review is due on or before `today`.
pub fn rereviews_due(
    db: &mut dyn Backend,
    today: NaiveDate,
) -> Result<Vec<store::MerchantReviewRow>> {
    Ok(db
        .merchant_reviews()
        .ctx("read re-reviews")?
        .into_iter()
        .filter(|r| NaiveDate::parse_from_str(&r.due_on, "%Y-%m-%d").is_ok_and(|d| d <= today))
        .collect())
}

/// Records a merchant's re-review with its (new) risk rating: the next one is due
/// by the rating, a hold placed for the overdue re-review is released. Audited.
pub fn complete_rereview(
    db: &mut dyn Backend,
    merchant_id: &str,
    rating: &str,
    note: &str,
    today: NaiveDate,
    actor: &Actor,
    at: &str,
) -> Result<store::MerchantReviewRow> {
    if !["low", "medium", "high"].contains(&rating) {
        return Err(ServiceError::BadInput(
            "the risk rating is low, medium or high".into(),
        ));
    }
    crate::text("a re-review's note", note, 2000)?;
    let merchant = db
        .merchant(merchant_id)
        .ctx("read merchant")?
        .ok_or_else(|| ServiceError::NotFound(format!("no merchant {merchant_id}")))?;
    let before = db
        .merchant_reviews()
        .ctx("read re-reviews")?
        .into_iter()
        .find(|r| r.merchant_id == merchant_id);
    let after = store::MerchantReviewRow {
        merchant_id: merchant_id.into(),
        risk_level: rating.into(),
        due_on: months_after(today, rereview_months(rating)).to_string(),
        last_on: today.to_string(),
    };
    let json = |r: &store::MerchantReviewRow| serde_json::json!({"risk_level": r.risk_level, "due_on": r.due_on, "last_on": r.last_on});
    let mut writes = vec![
        Write::MerchantReview(after.clone()),
        Write::Merchant(store::MerchantRow {
            risk_class: rating.into(),
            ..merchant.clone()
        }),
    ];
    // The new rating's limits and reserve go into the terms (and, as a limits change,
    // onto the change feed every node follows).
    if let Some(t) = db.terms_of(merchant_id).ctx("read terms")? {
        let l = merchants::limits::for_merchant(&merchant.merchant_class, rating);
        let new = store::TermsRow {
            txn_limit_minor: l.per_txn_minor,
            day_limit_minor: l.per_day_minor,
            reserve_bps: l.reserve_bps,
            reserve_days: l.reserve_days,
            updated_at: at.into(),
            ..t.clone()
        };
        if (
            new.txn_limit_minor,
            new.day_limit_minor,
            new.reserve_bps,
            new.reserve_days,
        ) != (
            t.txn_limit_minor,
            t.day_limit_minor,
            t.reserve_bps,
            t.reserve_days,
        ) {
            let json = limits_json;
            let mut a = json(&new);
            a["reason"] = serde_json::json!(format!("re-review: rated {rating}"));
            writes.push(actor.audit(
                at,
                "merchant.limits",
                &format!("merchant:{merchant_id}"),
                json(&t),
                a,
            ));
            writes.push(Write::Terms(new));
        }
    }
    let hold_id = format!("rereview:{merchant_id}");
    if let Some(h) = db
        .holds(true)
        .ctx("read holds")?
        .into_iter()
        .find(|h| h.hold_id == hold_id)
    {
        writes.push(Write::Hold(store::HoldRow {
            released_by: Some(actor.name.clone()),
            released_at: Some(at.into()),
            ..h
        }));
    }
    let mut a = json(&after);
    a["note"] = serde_json::json!(note);
    writes.push(actor.audit(
        at,
        "merchant.rereview",
        &format!("merchant:{merchant_id}"),
        before.as_ref().map_or(serde_json::Value::Null, json),
        a,
    ));
    db.apply(&writes).ctx("write re-review")?;
    Ok(after)
}

/// Holds the settlement of every merchant whose re-review is overdue by more than
/// [`REREVIEW_GRACE_DAYS`] on `today` (a hold `rereview:<merchant>`, audited; the
/// re-review releases it). Returns the merchants newly held. Idempotent.
pub fn enforce_rereviews(
    db: &mut dyn Backend,
    today: NaiveDate,
    actor: &Actor,
    at: &str,
) -> Result<Vec<String>> {
    let held: std::collections::BTreeSet<String> = db
        .holds(true)
        .ctx("read holds")?
        .into_iter()
        .map(|h| h.hold_id)
        .collect();
    let mut writes = Vec::new();
    let mut newly = Vec::new();
    for r in db.merchant_reviews().ctx("read re-reviews")? {
        let Ok(due) = NaiveDate::parse_from_str(&r.due_on, "%Y-%m-%d") else {
            continue;
        };
        let hold_id = format!("rereview:{}", r.merchant_id);
        if (today - due).num_days() <= REREVIEW_GRACE_DAYS || held.contains(&hold_id) {
            continue;
        }
        let row = store::HoldRow {
            hold_id: hold_id.clone(),
            subject: format!("merchant:{}", r.merchant_id),
            reason: format!("periodic re-review overdue since {}", r.due_on),
            placed_by: "posguard".into(),
            placed_at: at.into(),
            released_by: None,
            released_at: None,
        };
        writes.push(actor.audit(
            at,
            "hold.place",
            &format!("hold:{hold_id}"),
            serde_json::Value::Null,
            crate::money::hold_json(&row),
        ));
        writes.push(Write::Hold(row));
        newly.push(r.merchant_id);
    }
    if !writes.is_empty() {
        db.apply(&writes).ctx("write re-review holds")?;
    }
    Ok(newly)
}
