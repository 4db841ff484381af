//! The back office's resources: terminals, settlement (runs, files, settlements,
//! payouts), reconciliation (clearing files, runs, findings), risk (cases,
//! back-tests), the store-and-forward queue, and a merchant's statement. Each handler
//! names its permission first; merchants see their own objects only, and another
//! merchant's is answered 404.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use services::money;
use store::SafState;

use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::lists::{answer, ListQuery};
use crate::routes::{check_text, query, Body};
use crate::Api;

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn date(field: &str, v: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| ApiError::field(field, format!("{field} is a date YYYY-MM-DD")))
}

fn opt_date(field: &str, v: &Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    v.as_deref().map(|d| date(field, d)).transpose()
}

// ---- terminals ------------------------------------------------------------------

/// A terminal as the API shows it: never its keys (only their version and profile).
fn terminal_json(t: &store::TerminalRow) -> Value {
    json!({
        "terminal_id": t.terminal_id,
        "merchant_id": t.merchant_id,
        "status": t.status,
        "key_profile": t.key_profile,
        "key_version": t.key_version,
        "batch": t.batch,
        "signed_on": t.signed_on,
        "install_location": t.install_location,
        "updated_at": t.updated_at,
    })
}

const TERMINAL_COLUMNS: &[&str] = &[
    "terminal_id",
    "merchant_id",
    "status",
    "key_profile",
    "key_version",
    "batch",
    "signed_on",
    "install_location",
    "updated_at",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalQuery {
    merchant: Option<String>,
    status: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn terminals(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<TerminalQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::TerminalRead)?;
    let Query(q) = query(q)?;
    let mut all = api.db(|db| Ok(db.terminals()?)).await?;
    all.sort_by(|a, b| a.terminal_id.cmp(&b.terminal_id));
    let items = all
        .iter()
        .filter(|t| p.sees_merchant(&t.merchant_id))
        .filter(|t| q.merchant.as_ref().is_none_or(|m| *m == t.merchant_id))
        .filter(|t| q.status.as_ref().is_none_or(|s| *s == t.status))
        .map(terminal_json)
        .collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(items, &list, "terminals", TERMINAL_COLUMNS)
}

pub async fn terminal(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::TerminalRead)?;
    let all = api.db(|db| Ok(db.terminals()?)).await?;
    all.iter()
        .find(|t| t.terminal_id == id && p.sees_merchant(&t.merchant_id))
        .map(|t| Json(terminal_json(t)))
        .ok_or_else(|| ApiError::not_found("no such terminal"))
}

// ---- a merchant's statement -----------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    date: String,
}

/// "Where is my money" for a merchant and a business date: what was sold, fees,
/// holds, settlement and payouts, as the statement's lines.
pub async fn statement(
    State(api): State<Api>,
    p: Principal,
    Path(merchant_id): Path<String>,
    q: QueryResult<StatementQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::MerchantRead)?;
    let Query(q) = query(q)?;
    let d = date("date", &q.date)?;
    if !p.sees_merchant(&merchant_id) {
        return Err(ApiError::not_found("no such merchant"));
    }
    let cfg = api.money();
    let m = merchant_id.clone();
    let (text, settlements) = api
        .db(move |db| {
            if db.merchant(&m)?.is_none() {
                return Err(ApiError::not_found("no such merchant"));
            }
            let text = money::statement(db, &m, d, &cfg)?;
            let settlements = db.settlements(Some(&d.to_string()), Some(&m))?;
            Ok((text, settlements))
        })
        .await?;
    Ok(Json(json!({
        "merchant_id": merchant_id,
        "business_date": d.to_string(),
        "settlements": settlements.iter().map(money::settlement_json).collect::<Vec<_>>(),
        "lines": text.lines().collect::<Vec<_>>(),
    })))
}

// ---- settlement -----------------------------------------------------------------

const SETTLEMENT_COLUMNS: &[&str] = &[
    "settlement_id",
    "merchant_id",
    "business_date",
    "settlement_account",
    "gross_minor",
    "refunds_minor",
    "fees_minor",
    "held_minor",
    "net_minor",
    "txn_count",
    "created_at",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementQuery {
    date: Option<String>,
    merchant: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn settlements(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<SettlementQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::SettlementRead)?;
    let Query(q) = query(q)?;
    let d = opt_date("date", &q.date)?.map(|d| d.to_string());
    let m = q.merchant.clone();
    let all = api
        .db(move |db| Ok(db.settlements(d.as_deref(), m.as_deref())?))
        .await?;
    let items = all
        .iter()
        .filter(|s| p.sees_merchant(&s.merchant_id))
        .map(money::settlement_json)
        .collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(items, &list, "settlements", SETTLEMENT_COLUMNS)
}

pub async fn settlement(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SettlementRead)?;
    let found = api
        .db(move |db| {
            let Some(s) = db.settlement(&id)? else {
                return Ok(None);
            };
            let items = db.settlement_items_of(&id)?;
            let txns = db.settled_transactions(&id)?;
            let payouts = db.payouts(&id)?;
            Ok(Some((s, items, txns, payouts)))
        })
        .await?;
    let Some((s, items, txns, payouts)) = found.filter(|f| p.sees_merchant(&f.0.merchant_id))
    else {
        return Err(ApiError::not_found("no such settlement"));
    };
    let rrn: std::collections::HashMap<i64, &str> =
        txns.iter().map(|t| (t.txn_id, t.rrn.as_str())).collect();
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "txn_id": i.txn_id,
                "rrn": rrn.get(&i.txn_id),
                "fee_minor": i.fee_minor,
                "net_minor": i.net_minor,
            })
        })
        .collect();
    Ok(Json(json!({
        "settlement": money::settlement_json(&s),
        "items": items,
        "payouts": payouts.iter().map(money::payout_json).collect::<Vec<_>>(),
    })))
}

const RUN_COLUMNS: &[&str] = &["business_date", "ran_at", "merchants", "items", "net_minor"];

pub async fn settlement_runs(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ListQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::SettlementRunRead)?;
    let Query(q) = query(q)?;
    let all = api.db(|db| Ok(db.settlement_runs()?)).await?;
    let items = all.iter().map(money::settlement_run_json).collect();
    answer(items, &q, "settlement-runs", RUN_COLUMNS)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateBody {
    /// The business date (YYYY-MM-DD).
    #[schema(format = Date)]
    business_date: String,
}

/// Settles a business date (idempotent: a settled date answers its first run).
pub async fn run_settlement(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<DateBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::SettlementRun)?;
    let d = date("business_date", &b.business_date)?;
    let cfg = api.money();
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let report = api
        .db(move |db| Ok(money::settle_date(db, d, &cfg, &actor, &at)?))
        .await?;
    let run = json!({
        "business_date": d.to_string(),
        "already_done": report.already_done,
        "merchants": report.settlements.len(),
        "net_minor": report.total(|s| s.net_minor),
        "fees_minor": report.total(|s| s.fees_minor),
        "held_minor": report.total(|s| s.held_minor),
        "held": report.held.len(),
        "captured_at_cutoff": report.captured_at_cutoff,
        "payouts": report.payouts.iter().map(money::payout_json).collect::<Vec<_>>(),
    });
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

/// One of a settled date's files: `settlement` (a line a merchant) or `payouts` (the
/// bank's transfer instructions), made from the store as the run wrote them.
pub async fn settlement_file(
    State(api): State<Api>,
    p: Principal,
    Path((business_date, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    p.require(Permission::SettlementRunRead)?;
    let d = date("business_date", &business_date)?;
    let index = match file.as_str() {
        "settlement" => 0,
        "payouts" => 1,
        _ => return Err(ApiError::not_found("the files are settlement and payouts")),
    };
    let files = api
        .db(move |db| {
            let ds = d.to_string();
            if db.settlement_run(&ds)?.is_none() {
                return Err(ApiError::not_found(format!("{ds} is not settled")));
            }
            let settlements = db.settlements(Some(&ds), None)?;
            let mut payouts = Vec::new();
            for s in &settlements {
                payouts.extend(db.payouts(&s.settlement_id)?);
            }
            Ok(money::settlement_files(&ds, &settlements, &payouts)?)
        })
        .await?;
    let [settlement, payouts] = files;
    let (name, bytes) = if index == 0 { settlement } else { payouts };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutBody {
    /// Payouts due on or before this value date (YYYY-MM-DD) are confirmed paid.
    #[schema(format = Date)]
    value_date: String,
}

/// Confirms the payouts due by a value date as paid by the bank (idempotent).
pub async fn confirm_payouts(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<PayoutBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SettlementRun)?;
    let d = date("value_date", &b.value_date)?;
    let currency = api.money().currency;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let (n, amount) = api
        .db(move |db| Ok(money::confirm_payouts(db, d, currency, &actor, &at)?))
        .await?;
    Ok(Json(json!({"confirmed": n, "amount_minor": amount})))
}

// ---- reconciliation ---------------------------------------------------------------

/// The largest clearing file accepted (bytes).
pub const MAX_CLEARING_FILE: usize = 64 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    business_date: String,
    name: Option<String>,
}

/// Ingests the issuer's clearing file of a business date (CSV body; idempotent by
/// content).
pub async fn ingest_clearing(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<FileQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Permission::ReconRun)?;
    let Query(q) = query(q)?;
    let d = date("business_date", &q.business_date)?;
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the clearing file as text/csv",
        ));
    }
    let name = q.name.unwrap_or_else(|| format!("api upload {d}"));
    check_text("name", &name, 200)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let ing = api
        .db(move |db| {
            Ok(services::reconcile::ingest(
                db, &body, d, &name, &actor, &at,
            )?)
        })
        .await?;
    let bad: Vec<Value> = ing
        .bad
        .iter()
        .take(100)
        .map(|(line, why)| json!({"line": line, "reason": why}))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "file": ing.hash,
            "already_ingested": ing.already,
            "lines": ing.lines,
            "bad_lines": ing.bad.len(),
            "bad": bad,
        })),
    )
        .into_response())
}

/// Reconciles a business date against the files ingested (its report is stored).
pub async fn run_recon(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<DateBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::ReconRun)?;
    let d = date("business_date", &b.business_date)?;
    let cfg = api.money();
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let report = api
        .db(move |db| {
            Ok(services::reconcile::reconcile_date(
                db, d, &cfg, &actor, &at,
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(services::reconcile::report_json(&report)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconRunQuery {
    date: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn recon_runs(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ReconRunQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ReconRead)?;
    let Query(q) = query(q)?;
    let d = opt_date("date", &q.date)?.map(|d| d.to_string());
    let all = api.db(move |db| Ok(db.recon_runs(d.as_deref())?)).await?;
    let items = all
        .iter()
        .map(|r| {
            json!({
                "business_date": r.business_date,
                "ran_at": r.ran_at,
                "report": serde_json::from_str::<Value>(&r.report).unwrap_or(Value::Null),
            })
        })
        .collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(
        items,
        &list,
        "recon-runs",
        &["business_date", "ran_at", "report"],
    )
}

const FINDING_COLUMNS: &[&str] = &[
    "finding_id",
    "business_date",
    "class",
    "rrn",
    "amount_minor",
    "status",
    "owner",
    "deadline",
    "action",
    "created_at",
    "updated_at",
];

fn finding_json(f: &store::FindingRow) -> Value {
    json!({
        "finding_id": f.finding_id,
        "business_date": f.business_date,
        "class": f.class,
        "rrn": f.rrn,
        "txn_id": f.txn_id,
        "amount_minor": f.amount_minor,
        "status": f.status,
        "owner": f.owner,
        "deadline": f.deadline,
        "action": f.action,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    status: Option<String>,
    class: Option<String>,
    date: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn findings(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<FindingQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ReconRead)?;
    let Query(q) = query(q)?;
    let d = opt_date("date", &q.date)?.map(|d| d.to_string());
    let status = q.status.clone();
    let all = api
        .db(move |db| Ok(db.findings(status.as_deref())?))
        .await?;
    let items = all
        .iter()
        .filter(|f| q.class.as_ref().is_none_or(|c| *c == f.class))
        .filter(|f| d.as_ref().is_none_or(|d| *d == f.business_date))
        .map(finding_json)
        .collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(items, &list, "findings", FINDING_COLUMNS)
}

async fn one_finding(api: &Api, id: String) -> Result<store::FindingRow, ApiError> {
    let all = api.db(|db| Ok(db.findings(None)?)).await?;
    all.into_iter()
        .find(|f| f.finding_id == id)
        .ok_or_else(|| ApiError::not_found("no such finding"))
}

pub async fn finding(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ReconRead)?;
    let f = one_finding(&api, id).await?;
    let mut out = finding_json(&f);
    out["evidence"] = Value::String(f.evidence.clone());
    out["notes"] = Value::String(f.notes.clone());
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// Who takes it.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    assignee: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// What was done or found.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    note: String,
}

pub async fn assign_finding(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<AssignBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ExceptionWrite)?;
    check_text("assignee", &b.assignee, 64)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let fid = id.clone();
    api.db(move |db| {
        Ok(services::reconcile::assign_exception(
            db,
            &fid,
            &b.assignee,
            &actor,
            &at,
        )?)
    })
    .await?;
    Ok(Json(finding_json(&one_finding(&api, id).await?)))
}

pub async fn resolve_finding(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ExceptionWrite)?;
    check_text("note", &b.note, 2000)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let fid = id.clone();
    api.db(move |db| {
        Ok(services::reconcile::resolve_exception(
            db,
            &fid,
            &actor.name.clone(),
            &b.note,
            &actor,
            &at,
        )?)
    })
    .await?;
    Ok(Json(finding_json(&one_finding(&api, id).await?)))
}

// ---- risk -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    status: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn cases(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<CaseQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::RiskRead)?;
    let Query(q) = query(q)?;
    let status = q.status.clone();
    let all = api
        .db(move |db| Ok(services::risk::list_cases(db, status.as_deref())?))
        .await?;
    let items = all
        .iter()
        .map(|(c, n)| {
            let mut v = services::risk::case_json(c);
            v["entries"] = json!(n);
            v
        })
        .collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(
        items,
        &list,
        "cases",
        &[
            "case_id",
            "subject",
            "status",
            "assignee",
            "opened_at",
            "updated_at",
            "entries",
        ],
    )
}

fn case_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("no such case"))
}

async fn case_detail(api: &Api, id: i64) -> Result<Json<Value>, ApiError> {
    let (c, entries) = api.db(move |db| Ok(services::risk::case(db, id)?)).await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": e.at, "kind": e.kind, "txn_id": e.txn_id,
                "author": e.author, "text": e.text,
            })
        })
        .collect();
    Ok(Json(
        json!({"case": services::risk::case_json(&c), "entries": entries}),
    ))
}

pub async fn case(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::RiskRead)?;
    case_detail(&api, case_id(&id)?).await
}

pub async fn assign_case(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<AssignBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::CaseWrite)?;
    let id = case_id(&id)?;
    check_text("assignee", &b.assignee, 64)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    api.db(move |db| {
        Ok(services::risk::assign_case(
            db,
            id,
            &b.assignee,
            &actor,
            &at,
        )?)
    })
    .await?;
    case_detail(&api, id).await
}

pub async fn note_case(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::CaseWrite)?;
    let id = case_id(&id)?;
    check_text("note", &b.note, 2000)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    api.db(move |db| {
        Ok(services::risk::note_case(
            db,
            id,
            &actor.name.clone(),
            &b.note,
            &actor,
            &at,
        )?)
    })
    .await?;
    case_detail(&api, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// `fraud` or `not-fraud` (labels the back-tests' fraud counts).
    #[schema(pattern = "^(fraud|not-fraud)$")]
    verdict: String,
}

pub async fn close_case(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<CloseBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::CaseWrite)?;
    let id = case_id(&id)?;
    let verdict = services::risk::CaseVerdict::parse(&b.verdict)
        .ok_or_else(|| ApiError::field("verdict", "verdict is fraud or not-fraud"))?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    api.db(move |db| {
        Ok(services::risk::close_case(
            db,
            id,
            verdict,
            &actor.name.clone(),
            &actor,
            &at,
        )?)
    })
    .await?;
    case_detail(&api, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestBody {
    /// The candidate rule set (TOML, as `posguard acquirer --rules` reads it).
    #[schema(min_length = 1, max_length = 60000)]
    rules: String,
    /// First business date counted (YYYY-MM-DD).
    #[schema(format = Date)]
    from: Option<String>,
    /// Last business date counted (YYYY-MM-DD).
    #[schema(format = Date)]
    to: Option<String>,
}

/// Back-tests a candidate rule set over the journal: what each rule would have
/// matched, the amounts, and the fraud it would have caught.
pub async fn backtest(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<BacktestBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::Backtest)?;
    let from = opt_date("from", &b.from)?.map(|d| d.to_string());
    let to = opt_date("to", &b.to)?.map(|d| d.to_string());
    let rules = risk::RuleSet::from_toml(&b.rules)
        .map_err(|e| ApiError::field("rules", format!("the rule set is refused: {e}")))?;
    let result = api
        .db(move |db| {
            Ok(services::risk::backtest(
                db,
                rules,
                from.as_deref(),
                to.as_deref(),
            )?)
        })
        .await?;
    let rules: Vec<Value> = result
        .rules
        .iter()
        .map(|r| {
            json!({
                "rule": r.rule, "action": r.action, "mode": r.mode, "matched": r.matched,
                "amount_minor": r.amount_minor, "fraud": r.fraud,
                "live_matched": r.live_matched,
                "matched_where_live_complete": r.matched_where_live_complete,
            })
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "version": result.version,
            "decided": result.decided,
            "fraud_labelled": result.fraud_labelled,
            "live_timed_out": result.live_timed_out,
            "rules": rules,
        })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    /// The rule file (TOML, as `posguard acquirer --rules` reads it); its `version`
    /// names it.
    #[schema(min_length = 1, max_length = 60000)]
    rules: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `active` or `shadow` (in force; the version in force before is retired), or
    /// `retired`.
    #[schema(pattern = "^(active|shadow|retired)$")]
    status: String,
}

pub async fn rule_sets(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ListQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::RiskRead)?;
    let Query(q) = query(q)?;
    let all = api.db(|db| Ok(db.rule_sets()?)).await?;
    let items = all.iter().map(services::rules::rule_set_json).collect();
    answer(
        items,
        &q,
        "rule-sets",
        &[
            "version",
            "status",
            "rules",
            "uploaded_by",
            "uploaded_at",
            "changed_at",
        ],
    )
}

pub async fn rule_set(
    State(api): State<Api>,
    p: Principal,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::RiskRead)?;
    let all = api.db(|db| Ok(db.rule_sets()?)).await?;
    let r = all
        .into_iter()
        .find(|r| r.version == version)
        .ok_or_else(|| ApiError::not_found("no such rule set"))?;
    let mut out = services::rules::rule_set_json(&r);
    out["text"] = json!(r.rules);
    Ok(Json(out))
}

/// Uploads a rule-set version (validated; a candidate until put in force).
pub async fn upload_rules(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<RulesBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::RulesWrite)?;
    if b.rules.len() > services::rules::MAX_RULES {
        return Err(ApiError::field(
            "rules",
            "a rule file is at most 60,000 bytes",
        ));
    }
    if let Err(e) = risk::RuleSet::from_toml(&b.rules) {
        return Err(ApiError::field(
            "rules",
            format!("the rule set is refused: {e}"),
        ));
    }
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| Ok(services::rules::upload(db, &b.rules, &actor, &at)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(services::rules::rule_set_json(&row)),
    )
        .into_response())
}

/// Puts a version in force (active or shadow) or retires it.
pub async fn set_rules_status(
    State(api): State<Api>,
    p: Principal,
    Path(version): Path<String>,
    Body(b): Body<StatusBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::RulesWrite)?;
    let status = services::rules::RuleStatus::parse(&b.status)
        .ok_or_else(|| ApiError::field("status", "status is active, shadow or retired"))?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| {
            Ok(services::rules::set_status(
                db, &version, status, &actor, &at,
            )?)
        })
        .await?;
    Ok(Json(services::rules::rule_set_json(&row)))
}

// ---- the store-and-forward queue ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafQuery {
    state: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

const SAF_COLUMNS: &[&str] = &[
    "saf_id",
    "txn_id",
    "kind",
    "state",
    "attempts",
    "next_at_ms",
    "reason",
    "owner",
    "created_at",
    "updated_at",
];

pub async fn saf(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<SafQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::SafRead)?;
    let Query(q) = query(q)?;
    let states: Vec<SafState> = match &q.state {
        None => SafState::ALL.to_vec(),
        Some(s) => vec![SafState::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| ApiError::field("state", "state is pending, done or exception"))?],
    };
    let mut all = api
        .db(move |db| {
            let mut all = Vec::new();
            for s in states {
                all.extend(db.saf_in_state(s)?);
            }
            Ok(all)
        })
        .await?;
    all.sort_by_key(|s| s.saf_id);
    let items = all.iter().map(services::saf::saf_json).collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(items, &list, "saf", SAF_COLUMNS)
}

/// The queue's depth: entries per state, and the age of the oldest waiting one.
pub async fn saf_depth(State(api): State<Api>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SafRead)?;
    let now_ms = api.now().timestamp_millis();
    let (counts, oldest) = api
        .db(move |db| {
            let mut counts = serde_json::Map::new();
            let mut oldest = None;
            for s in SafState::ALL {
                let rows = db.saf_in_state(s)?;
                if s == SafState::Pending {
                    oldest = rows
                        .iter()
                        .filter_map(|r| chrono::DateTime::parse_from_rfc3339(&r.created_at).ok())
                        .map(|t| (now_ms - t.timestamp_millis()).max(0) / 1000)
                        .max();
                }
                counts.insert(s.name().to_owned(), json!(rows.len()));
            }
            Ok((counts, oldest))
        })
        .await?;
    Ok(Json(json!({
        "by_state": counts,
        "oldest_pending_age_secs": oldest,
    })))
}

fn saf_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such queue entry"))
}

pub async fn saf_entry(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SafRead)?;
    let id = saf_id(&id)?;
    let found = api.db(move |db| Ok(db.saf_entry(id)?)).await?;
    found
        .map(|s| Json(services::saf::saf_json(&s)))
        .ok_or_else(|| ApiError::not_found("no such queue entry"))
}

pub async fn retry_saf(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SafWrite)?;
    let id = saf_id(&id)?;
    let now = api.now();
    let (actor, at, ms) = (p.actor(), now.to_rfc3339(), now.timestamp_millis());
    let row = api
        .db(move |db| Ok(services::saf::retry(db, id, ms, &actor, &at)?))
        .await?;
    Ok(Json(services::saf::saf_json(&row)))
}

pub async fn resolve_saf(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::SafWrite)?;
    let id = saf_id(&id)?;
    check_text("note", &b.note, 2000)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| Ok(services::saf::resolve(db, id, &b.note, &actor, &at)?))
        .await?;
    Ok(Json(services::saf::saf_json(&row)))
}
