//! Complaints: filed, queued by deadline, acknowledged, assigned (in bulk), their
//! candidate transactions, linked, diagnosed, extended, resolved, refunded with a
//! second person's approval above the threshold (`services::complaints`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use services::complaints::{self as cp, Filing, Outcome, Refund};
use store::ComplaintRow;

use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::lists::{answer, ListQuery};
use crate::routes::{query, Body};
use crate::Api;

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn today(api: &Api) -> chrono::NaiveDate {
    (api.now() + chrono::Duration::hours(8)).date_naive()
}

fn id_of(s: &str, what: &str) -> Result<i64, ApiError> {
    s.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found(format!("no {what} {s}")))
}

/// Whether the principal sees the complaint: staff all of them; a merchant its own
/// (filed by the merchant, about its money) — never a cardholder's, which carries the
/// cardholder's contact.
fn sees(p: &Principal, c: &ComplaintRow) -> bool {
    p.merchant_scope().is_none()
        || (c.complainant == "merchant"
            && c.merchant_id.as_deref().is_some_and(|m| p.sees_merchant(m)))
}

async fn visible(api: &Api, p: &Principal, id: i64) -> Result<ComplaintRow, ApiError> {
    let c = api
        .db(move |db| Ok(db.complaint(id)?))
        .await?
        .filter(|c| sees(p, c))
        .ok_or_else(|| ApiError::not_found(format!("no complaint {id}")))?;
    Ok(c)
}

fn complaint_json(c: &ComplaintRow, standing: Option<complaints::deadline::Standing>) -> Value {
    json!({
        "complaint_id": c.complaint_id, "source": c.source, "category": c.category,
        "complainant": c.complainant, "contact": c.contact, "language": c.language,
        "merchant_id": c.merchant_id,
        "clue": serde_json::from_str::<Value>(&c.clue).unwrap_or(Value::Null),
        "status": c.status, "owner": c.owner, "ack_due": c.ack_due,
        "resolve_due": c.resolve_due, "resolve_days": c.resolve_days,
        "standing": standing, "acknowledged_at": c.acknowledged_at,
        "resolved_at": c.resolved_at, "outcome": c.outcome, "answer": c.answer,
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

/// Files a complaint.
pub async fn file(
    State(api): State<Api>,
    p: Principal,
    Body(mut f): Body<Filing>,
) -> Result<Response, ApiError> {
    p.require(Permission::ComplaintFile)?;
    // A merchant files about its own money, as itself.
    if let Some(scope) = p.merchant_scope() {
        let cat = complaints::kinds::Category::parse(&f.category);
        if !cat.is_some_and(|c| c.is_merchants()) {
            return Err(ApiError::field(
                "category",
                "a merchant files merchant_not_credited or merchant_credited_short",
            ));
        }
        f.merchant_id = match (f.merchant_id.take(), scope) {
            (Some(m), _) if p.sees_merchant(&m) => Some(m),
            (None, [only]) => Some(only.clone()),
            _ => return Err(ApiError::field("merchant_id", "one of your own merchants")),
        };
        f.source = complaints::kinds::Source::Merchant.name().into();
    }
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let policies = api.complaints().policies;
    let c = api
        .db(move |db| Ok(cp::file(db, &f, &policies, &actor, &at)?))
        .await?;
    Ok((StatusCode::CREATED, Json(complaint_json(&c, None))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintQuery {
    status: Option<String>,
    /// Only those due or breached.
    due: Option<bool>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

/// The queue: open complaints by their next deadline (or all with a status).
pub async fn list(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ComplaintQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ComplaintRead)?;
    let Query(q) = query(q)?;
    let day = today(&api);
    let (status, due_only) = (q.status.clone(), q.due.unwrap_or(false));
    let who = p.clone();
    let rows = api
        .db(move |db| {
            let mut out = Vec::new();
            let cal = services::reference::calendar(db)?;
            for c in db.complaints(status.as_deref())? {
                if !sees(&who, &c) {
                    continue;
                }
                let s = cp::standing_on(&cal, &c, day)?;
                if due_only
                    && !matches!(
                        s,
                        Some(
                            complaints::deadline::Standing::Due
                                | complaints::deadline::Standing::Breached
                        )
                    )
                {
                    continue;
                }
                out.push((c, s));
            }
            // The queue by SLA: the nearest deadline first.
            out.sort_by(|a, b| {
                let due = |c: &ComplaintRow| {
                    if c.status == "open" {
                        c.ack_due.clone()
                    } else {
                        c.resolve_due.clone()
                    }
                };
                due(&a.0)
                    .cmp(&due(&b.0))
                    .then(a.0.complaint_id.cmp(&b.0.complaint_id))
            });
            Ok(out)
        })
        .await?;
    let items = rows.iter().map(|(c, s)| complaint_json(c, *s)).collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(
        items,
        &list,
        "complaints",
        &[
            "complaint_id",
            "source",
            "category",
            "status",
            "owner",
            "ack_due",
            "resolve_due",
            "standing",
            "outcome",
            "created_at",
        ],
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: String,
    to: String,
    format: Option<String>,
}

/// The disclosure report: complaints by category and source, per 10,000
/// transactions, closed within 1 and within 1–3 working days, percentiles, breaches;
/// `format=csv` gives it as `metric,value` lines.
pub async fn report(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ReportQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ComplaintReport)?;
    let Query(q) = query(q)?;
    let date = |field: &str, s: &str| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| ApiError::field(field, "a date YYYY-MM-DD"))
    };
    let (from, to, day) = (date("from", &q.from)?, date("to", &q.to)?, today(&api));
    let r = api.db(move |db| Ok(cp::report(db, from, to, day)?)).await?;
    let mut items = vec![
        json!({"metric": "total", "value": r.total}),
        json!({"metric": "transactions", "value": r.transactions}),
        json!({"metric": "per_10k_transactions", "value": r.per_10k}),
        json!({"metric": "closed", "value": r.closed}),
        json!({"metric": "closed_within_1_working_day", "value": r.within_1}),
        json!({"metric": "closed_within_1_3_working_days", "value": r.within_1_3}),
        json!({"metric": "p50_hours", "value": r.p50_hours}),
        json!({"metric": "p90_hours", "value": r.p90_hours}),
        json!({"metric": "breaches", "value": r.breaches}),
    ];
    items.extend(
        r.by_category
            .iter()
            .map(|(c, n)| json!({"metric": format!("category.{}", c.name()), "value": n})),
    );
    items.extend(
        r.by_source
            .iter()
            .map(|(s, n)| json!({"metric": format!("source.{}", s.name()), "value": n})),
    );
    if q.format.as_deref() == Some("csv") {
        let list = ListQuery {
            after: None,
            limit: None,
            format: q.format,
        };
        return answer(items, &list, "complaints-report", &["metric", "value"]);
    }
    Ok(Json(json!({"from": q.from, "to": q.to, "report": r, "items": items})).into_response())
}

/// One complaint: its steps, transactions with their diagnoses, money actions.
pub async fn detail(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintRead)?;
    let id = id_of(&id, "complaint")?;
    visible(&api, &p, id).await?;
    let day = today(&api);
    let (c, standing, events, diagnoses, actions) = api
        .db(move |db| {
            let c = db
                .complaint(id)?
                .ok_or_else(|| services::ServiceError::NotFound(format!("no complaint {id}")))?;
            let s = cp::standing(db, &c, day)?;
            Ok((
                c,
                s,
                db.complaint_events(id)?,
                cp::diagnoses(db, id)?,
                db.complaint_actions(Some(id))?,
            ))
        })
        .await?;
    let mut out = complaint_json(&c, standing);
    out["events"] = events
        .iter()
        .map(|e| json!({"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor, "note": e.note}))
        .collect();
    out["transactions"] = diagnoses
        .iter()
        .map(|(t, d)| {
            json!({"txn_id": t.txn_id, "rrn": t.rrn, "masked_pan": t.masked_pan,
                   "amount_minor": t.amount_minor, "state": t.state.name(), "diagnosis": d})
        })
        .collect();
    out["actions"] = actions
        .iter()
        .map(|a| {
            json!({"action_id": a.action_id, "kind": a.kind, "txn_id": a.txn_id,
                   "amount_minor": a.amount_minor, "reason": a.reason,
                   "requested_by": a.requested_by, "decided_by": a.decided_by, "status": a.status})
        })
        .collect();
    Ok(Json(out))
}

/// The candidate transactions, best first.
pub async fn candidates(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintRead)?;
    let id = id_of(&id, "complaint")?;
    visible(&api, &p, id).await?;
    let found = api.db(move |db| Ok(cp::candidates(db, id, 20)?)).await?;
    let items: Vec<Value> = found
        .iter()
        .map(|(r, t)| {
            json!({"txn_id": t.txn_id, "rrn": t.rrn, "score": r.score, "matched": r.matched,
                   "masked_pan": t.masked_pan, "amount_minor": t.amount_minor,
                   "merchant_id": t.merchant_id, "terminal_id": t.terminal_id,
                   "state": t.state.name(), "created_at": t.created_at})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// Acknowledges a complaint.
pub async fn acknowledge(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let c = api
        .db(move |db| Ok(cp::acknowledge(db, id, &actor, &at)?))
        .await?;
    Ok(Json(complaint_json(&c, None)))
}

/// Complaints to give an owner.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignComplaintsBody {
    /// The complaints (1 to 500).
    #[schema(min_items = 1, max_items = 500)]
    complaint_ids: Vec<i64>,
    /// Who works them.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    owner: String,
}

/// Gives complaints to an owner (bulk).
pub async fn assign(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<AssignComplaintsBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let rows = api
        .db(move |db| Ok(cp::assign(db, &b.complaint_ids, &b.owner, &actor, &at)?))
        .await?;
    Ok(Json(
        json!({"items": rows.iter().map(|c| complaint_json(c, None)).collect::<Vec<_>>()}),
    ))
}

/// Transactions to link.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The transactions (1 to 20).
    #[schema(min_items = 1, max_items = 20)]
    txn_ids: Vec<i64>,
}

/// Links transactions to a complaint.
pub async fn link(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<LinkBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let c = api
        .db(move |db| Ok(cp::link(db, id, &b.txn_ids, &actor, &at)?))
        .await?;
    Ok(Json(complaint_json(&c, None)))
}

/// An extension of the resolution deadline.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The new deadline in days from filing.
    #[schema(minimum = 1, maximum = 366)]
    days: u32,
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

/// Extends the resolution deadline (beyond the first extension: the complaints'
/// approvers only).
pub async fn extend(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<ExtendBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let approved = p.may(Permission::ComplaintApprove);
    let policies = api.complaints().policies;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let c = api
        .db(move |db| {
            Ok(cp::extend(
                db, id, b.days, &b.reason, approved, &policies, &actor, &at,
            )?)
        })
        .await?;
    Ok(Json(complaint_json(&c, None)))
}

/// How a complaint is closed.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `explained` (the diagnoses answer it), `reversal_expedited` (waiting reversals
    /// sent now), `hold_released` (the holds released: needs the approval permission)
    /// or `rejected`.
    #[schema(pattern = "^(explained|reversal_expedited|hold_released|rejected)$")]
    outcome: String,
    /// A rejection's reason.
    #[serde(default)]
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// Closes a complaint.
pub async fn resolve(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<ResolveBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let outcome = match (b.outcome.as_str(), b.reason) {
        ("explained", _) => Outcome::Explained,
        ("reversal_expedited", _) => Outcome::ReversalExpedited,
        ("hold_released", _) => {
            p.require(Permission::ComplaintApprove)?;
            Outcome::HoldReleased
        }
        ("rejected", Some(r)) => Outcome::Rejected(r),
        ("rejected", None) => {
            return Err(ApiError::field("reason", "a rejection gives its reason"))
        }
        _ => {
            return Err(ApiError::field(
                "outcome",
                "explained, reversal_expedited, hold_released or rejected",
            ))
        }
    };
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let c = api
        .db(move |db| Ok(cp::resolve(db, id, outcome, &actor, &at)?))
        .await?;
    Ok(Json(complaint_json(&c, None)))
}

/// A refund asked for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// The linked transaction given back.
    txn_id: i64,
    /// How much, minor units.
    #[schema(minimum = 1)]
    amount_minor: i64,
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

/// Asks for a refund: at most the threshold it is queued at once, above it waits for
/// a second person.
pub async fn refund(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<RefundBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let threshold = api.complaints().four_eyes_minor;
    let r = api
        .db(move |db| {
            Ok(cp::request_refund(
                db,
                id,
                b.txn_id,
                b.amount_minor,
                &b.reason,
                threshold,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok(Json(match r {
        Refund::Queued(saf) => json!({"status": "queued", "saf_id": saf}),
        Refund::AwaitingApproval(a) => json!({"status": "awaiting_approval", "action_id": a}),
    }))
}

/// A second person approves or refuses a waiting refund (`/approve`, `/refuse`).
pub async fn decide(
    State(api): State<Api>,
    p: Principal,
    Path((id, what)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintApprove)?;
    let id = id_of(&id, "complaint action")?;
    let approve = match what.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => return Err(ApiError::not_found("no such decision")),
    };
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let c = api
        .db(move |db| Ok(cp::decide_refund(db, id, approve, &actor, &at)?))
        .await?;
    Ok(Json(complaint_json(&c, None)))
}

/// A complaint escalated to the issuer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateBody {
    /// The linked transaction disputed.
    txn_id: i64,
    /// The evidence sent with it.
    #[serde(default)]
    #[schema(max_items = 20)]
    evidence: Vec<cp::DisputeEvidence>,
    /// Working days the issuer has to respond (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 60)]
    respond_working_days: Option<u32>,
}

fn dispute_json(d: &store::DisputeRow) -> Value {
    json!({
        "dispute_id": d.dispute_id, "complaint_id": d.complaint_id, "txn_id": d.txn_id,
        "stage": d.stage, "status": d.status,
        "evidence": serde_json::from_str::<Value>(&d.evidence).unwrap_or(Value::Null),
        "respond_by": d.respond_by, "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

/// Escalates a complaint: a dispute with the issuer about one of its transactions.
pub async fn escalate(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<EscalateBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "complaint")?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let d = api
        .db(move |db| {
            Ok(cp::escalate(
                db,
                id,
                b.txn_id,
                &b.evidence,
                b.respond_working_days
                    .unwrap_or(cp::DISPUTE_RESPOND_WORKING_DAYS),
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(dispute_json(&d))).into_response())
}

/// Disputes, oldest first.
pub async fn disputes(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ListQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ComplaintReport)?;
    let Query(q) = query(q)?;
    let rows = api.db(|db| Ok(db.disputes(None)?)).await?;
    answer(
        rows.iter().map(dispute_json).collect(),
        &q,
        "disputes",
        &[
            "dispute_id",
            "complaint_id",
            "txn_id",
            "stage",
            "status",
            "respond_by",
            "updated_at",
        ],
    )
}

/// A dispute's move.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeBody {
    /// The new status (`challenged`, `accepted`, `expired`, `cancelled`, `won`, `lost`).
    #[serde(default)]
    #[schema(pattern = "^(opened|challenged|accepted|expired|cancelled|won|lost)$")]
    status: Option<String>,
    /// The new stage (`dispute`, `pre_arbitration`: forward only).
    #[serde(default)]
    #[schema(pattern = "^(pre_dispute|dispute|pre_arbitration)$")]
    stage: Option<String>,
    /// Evidence to add.
    #[serde(default)]
    #[schema(max_items = 20)]
    evidence: Vec<cp::DisputeEvidence>,
}

/// Moves a dispute on; a decided one resolves its complaint.
pub async fn update_dispute(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<DisputeBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ComplaintWrite)?;
    let id = id_of(&id, "dispute")?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let d = api
        .db(move |db| {
            Ok(cp::update_dispute(
                db,
                id,
                b.status.as_deref(),
                b.stage.as_deref(),
                &b.evidence,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok(Json(dispute_json(&d)))
}
