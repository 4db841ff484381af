//! Merchant applications: entered and submitted by operations (the acquirer's sales
//! staff, for the merchant), reviewed by risk analysts. Every step is audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use merchants::application::Form;
use merchants::review::Who;
use serde::Deserialize;
use serde_json::{json, Value};
use services::onboarding::{self, Step};

use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::lists::{answer, ListQuery};
use crate::routes::{query, Body};
use crate::Api;

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The form, as the applicant sends it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct FormBody(Form);

/// A review note: an assignee, a reason, what is asked for, or a risk rating.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// The assignee (assign), the reason (override, reject), what is asked for
    /// (request-info) or the risk rating `low`, `medium`, `high` (approve).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    note: String,
}

fn today(api: &Api) -> chrono::NaiveDate {
    (api.now() + chrono::Duration::hours(8)).date_naive()
}

fn key(api: &Api) -> Result<std::sync::Arc<onboarding::PiiKey>, ApiError> {
    api.pii_key().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pii_key_missing",
            "applications carry personal ID numbers: start the API with --pii-key-file",
        )
    })
}

pub async fn create(
    State(api): State<Api>,
    p: Principal,
    Body(FormBody(form)): Body<FormBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::ApplicationApply)?;
    let key = key(&api)?;
    let (actor, at, day) = (p.actor(), api.now().to_rfc3339(), today(&api));
    let row = api
        .db(move |db| Ok(onboarding::create(db, &form, &key, day, &actor, &at)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(onboarding::application_json(&row)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppQuery {
    status: Option<String>,
    overdue: Option<bool>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

pub async fn list(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<AppQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ApplicationRead)?;
    let Query(q) = query(q)?;
    let day = today(&api);
    let (status, overdue) = (q.status.clone(), q.overdue.unwrap_or(false));
    let rows = api
        .db(move |db| {
            if overdue {
                return Ok(onboarding::overdue(db, day)?);
            }
            Ok(db.applications(status.as_deref())?)
        })
        .await?;
    let items = rows.iter().map(onboarding::application_json).collect();
    let list = ListQuery {
        after: q.after,
        limit: q.limit,
        format: q.format,
    };
    answer(
        items,
        &list,
        "applications",
        &[
            "app_id",
            "status",
            "legal_name",
            "kind",
            "mcc",
            "risk_level",
            "applicant",
            "assignee",
            "sla_due",
            "merchant_id",
            "created_at",
            "updated_at",
        ],
    )
}

fn app_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such application"))
}

pub async fn detail(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationRead)?;
    let id = app_id(&id)?;
    let (row, events) = api
        .db(move |db| Ok((db.application(id)?, db.application_events(id)?)))
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found("no such application"))?;
    let mut out = onboarding::application_json(&row);
    out["events"] = events
        .iter()
        .map(|e| {
            json!({"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor,
                   "status": e.status, "note": e.note})
        })
        .collect();
    Ok(Json(out))
}

async fn take(
    api: &Api,
    p: &Principal,
    id: &str,
    step: Step,
    who: Who,
) -> Result<Json<Value>, ApiError> {
    let id = app_id(id)?;
    let key = key(api)?;
    let (actor, at, day) = (p.actor(), api.now().to_rfc3339(), today(api));
    let row = api
        .db(move |db| Ok(onboarding::step(db, id, step, who, &key, day, &actor, &at)?))
        .await?;
    Ok(Json(onboarding::application_json(&row)))
}

pub async fn submit(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationApply)?;
    take(&api, &p, &id, Step::Submit, Who::Applicant).await
}

pub async fn resubmit(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(FormBody(form)): Body<FormBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationApply)?;
    take(
        &api,
        &p,
        &id,
        Step::Resubmit(Box::new(form)),
        Who::Applicant,
    )
    .await
}

pub async fn withdraw(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationApply)?;
    take(&api, &p, &id, Step::Withdraw, Who::Applicant).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    r#type: String,
    expires_on: Option<String>,
}

/// Attaches a document (the body: a PDF, PNG or JPEG of at most 10 MiB).
pub async fn upload_document(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    q: QueryResult<DocumentQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(Permission::ApplicationApply)?;
    let id = app_id(&id)?;
    let Query(q) = query(q)?;
    let expires = match &q.expires_on {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::field("expires_on", "expires_on is a date YYYY-MM-DD"))?,
        ),
    };
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let sha = api
        .db(move |db| {
            Ok(onboarding::attach_document(
                db, id, &q.r#type, expires, &body, &actor, &at,
            )?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"sha256": sha}))).into_response())
}

/// The documents an application carries.
pub async fn documents(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationRead)?;
    let id = app_id(&id)?;
    let (app, docs) = api
        .db(move |db| Ok((db.application(id)?, db.application_documents(id)?)))
        .await?;
    if app.is_none() {
        return Err(ApiError::not_found("no such application"));
    }
    let items: Vec<Value> = docs
        .iter()
        .map(|d| {
            json!({"doc_type": d.doc_type, "sha256": d.sha256, "expires_on": d.expires_on,
                   "uploaded_by": d.uploaded_by, "uploaded_at": d.uploaded_at})
        })
        .collect();
    Ok(Json(json!({"items": items, "next": null})))
}

/// A document's bytes.
pub async fn document(
    State(api): State<Api>,
    p: Principal,
    Path(sha): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Permission::ApplicationRead)?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("no such document"));
    }
    let (ctype, bytes) = api
        .db(move |db| Ok(onboarding::document_bytes(db, &sha)?))
        .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, ctype)], bytes).into_response())
}

/// A blocklist entry to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    /// `uscc`, `representative` (a resident ID number, kept only as its token) or
    /// `account`.
    #[schema(pattern = "^(uscc|representative|account)$")]
    kind: String,
    /// The code, ID number or account number.
    #[schema(min_length = 1, max_length = 32)]
    value: String,
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

fn block_json(b: &store::BlockRow) -> Value {
    json!({"kind": b.kind, "value": b.value, "reason": b.reason,
           "added_by": b.added_by, "added_at": b.added_at})
}

/// The onboarding blocklist (representatives as tokens).
pub async fn blocklist(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<ListQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::BlocklistRead)?;
    let Query(q) = query(q)?;
    let rows = api.db(|db| Ok(db.blocklist()?)).await?;
    let items = rows.iter().map(block_json).collect();
    answer(
        items,
        &q,
        "blocklist",
        &["kind", "value", "reason", "added_by", "added_at"],
    )
}

/// Adds a blocklist entry.
pub async fn block(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<BlockBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::BlocklistWrite)?;
    let key = key(&api)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| {
            Ok(onboarding::block(
                db, &b.kind, &b.value, &b.reason, &key, &actor, &at,
            )?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(block_json(&row))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RereviewQuery {
    due: Option<bool>,
    after: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

/// Merchants' re-review schedules (`due=true`: those due today or before).
pub async fn rereviews(
    State(api): State<Api>,
    p: Principal,
    q: QueryResult<RereviewQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::ApplicationRead)?;
    let Query(q) = query(q)?;
    let day = today(&api);
    let due = q.due.unwrap_or(false);
    let rows = api
        .db(move |db| {
            if due {
                return Ok(onboarding::rereviews_due(db, day)?);
            }
            Ok(db.merchant_reviews()?)
        })
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            json!({"merchant_id": r.merchant_id, "risk_level": r.risk_level,
                   "due_on": r.due_on, "last_on": r.last_on})
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
        "rereviews",
        &["merchant_id", "risk_level", "due_on", "last_on"],
    )
}

/// A merchant's periodic re-review done.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RereviewBody {
    /// The risk rating now.
    #[schema(pattern = "^(low|medium|high)$")]
    risk_rating: String,
    /// What was found.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    note: String,
}

/// Records a merchant's re-review (the next is due by its rating).
pub async fn rereview(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<RereviewBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationReview)?;
    let (actor, at, day) = (p.actor(), api.now().to_rfc3339(), today(&api));
    let r = api
        .db(move |db| {
            Ok(onboarding::complete_rereview(
                db,
                &id,
                &b.risk_rating,
                &b.note,
                day,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok(Json(
        json!({"merchant_id": r.merchant_id, "risk_level": r.risk_level,
                   "due_on": r.due_on, "last_on": r.last_on}),
    ))
}

/// Provisions an approved application. Through the API the terminals' master keys
/// are delivered only under the key table's newest ZMK (the injection facility's
/// KEK): clear components are for two custodians at `posguard merchant provision`.
pub async fn provision(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Permission::MerchantProvision)?;
    let id = app_id(&id)?;
    let hsm = api.security_module().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_security_module",
            "this API has no LMK: provision from a node's API (acquirer --http) or with posguard merchant provision",
        )
    })?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let done = api
        .db(move |db| {
            let kek = db
                .keys()?
                .into_iter()
                .filter(|k| k.kind == cardsec::KeyKind::Zmk.name())
                .max_by_key(|k| k.version)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "no_kek",
                        "no ZMK in the key table to deliver the terminal keys under: posguard keys import --kind zmk, or provision with the CLI's components",
                    )
                })?;
            let kek = cardsec::WrappedKey::parse(&kek.wrapped).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
            Ok(onboarding::provision(db, id, &hsm, Some(&kek), &actor, &at)?)
        })
        .await?;
    let terminals: Vec<Value> = done
        .terminals
        .iter()
        .map(|t| {
            let mut v = json!({"terminal_id": t.terminal_id, "install_address": t.install_address});
            if let cardsec::KeyDelivery::UnderKek {
                cryptogram,
                kek_kcv,
                kcv,
            } = &t.delivery
            {
                v["tmk_under_kek"] = json!(cryptogram);
                v["kek_kcv"] = json!(kek_kcv);
                v["tmk_kcv"] = json!(kcv);
            }
            v
        })
        .collect();
    let mut resp = (
        StatusCode::OK,
        Json(json!({"merchant_id": done.merchant_id, "terminals": terminals})),
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// A status change: the new status and why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeBody {
    /// A merchant: `active`, `suspended`, `closed`; a terminal: `active`, `disabled`.
    #[schema(pattern = "^(active|suspended|closed|disabled)$")]
    status: String,
    /// Why (shown in the audit trail and the settlement hold).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

/// Suspends, closes or reactivates a merchant.
pub async fn merchant_status(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<StatusChangeBody>,
) -> Result<Json<Value>, ApiError> {
    change_status(&api, &p, Subject::Merchant, id, b).await
}

/// Disables or re-enables a terminal.
pub async fn terminal_status(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<StatusChangeBody>,
) -> Result<Json<Value>, ApiError> {
    change_status(&api, &p, Subject::Terminal, id, b).await
}

/// A merchant's new limits and why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Largest sale or pre-authorization, minor units (0: none beyond the switch's).
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    txn_limit_minor: i64,
    /// Most sales and pre-authorizations a day, minor units (0: none).
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    day_limit_minor: i64,
    /// Why (shown in the audit trail).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

/// Sets a merchant's limits: every node enforces them from its next transaction.
pub async fn merchant_limits(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<LimitsBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::MerchantWrite)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let t = api
        .db(move |db| {
            Ok(onboarding::set_limits(
                db,
                &id,
                b.txn_limit_minor,
                b.day_limit_minor,
                &b.reason,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok(Json(json!({
        "merchant_id": t.merchant_id,
        "txn_limit_minor": t.txn_limit_minor,
        "day_limit_minor": t.day_limit_minor,
    })))
}

/// A terminal's new install location and why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    /// Latitude, degrees.
    #[schema(minimum = 3.0, maximum = 54.0)]
    latitude: f64,
    /// Longitude, degrees.
    #[schema(minimum = 73.0, maximum = 136.0)]
    longitude: f64,
    /// Why it moved (shown in the audit trail).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

/// Registers a terminal's new install location.
pub async fn terminal_location(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<LocationBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::MerchantWrite)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let t = api
        .db(move |db| {
            Ok(onboarding::set_terminal_location(
                db,
                &id,
                b.latitude,
                b.longitude,
                &b.reason,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok(Json(
        json!({"terminal_id": t.terminal_id, "install_location": t.install_location}),
    ))
}

/// Whose status changes.
#[derive(Clone, Copy)]
enum Subject {
    Merchant,
    Terminal,
}

async fn change_status(
    api: &Api,
    p: &Principal,
    subject: Subject,
    id: String,
    b: StatusChangeBody,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::MerchantWrite)?;
    let (allowed, key): (&[&str], &str) = match subject {
        Subject::Merchant => (&onboarding::MERCHANT_STATUSES, "merchant_id"),
        Subject::Terminal => (&onboarding::TERMINAL_STATUSES, "terminal_id"),
    };
    if !allowed.contains(&b.status.as_str()) {
        return Err(ApiError::field(
            "status",
            format!("the status is one of {}", allowed.join(", ")),
        ));
    }
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let status = api
        .db(move |db| {
            Ok(match subject {
                Subject::Merchant => {
                    onboarding::set_merchant_status(db, &id, &b.status, &b.reason, &actor, &at)
                        .map(|m| (m.merchant_id, m.status))?
                }
                Subject::Terminal => {
                    onboarding::set_terminal_status(db, &id, &b.status, &b.reason, &actor, &at)
                        .map(|t| (t.terminal_id, t.status))?
                }
            })
        })
        .await?;
    Ok(Json(json!({key: status.0, "status": status.1})))
}

/// The reviewer's steps, by the route's last segment.
pub async fn review(
    State(api): State<Api>,
    p: Principal,
    Path((id, what)): Path<(String, String)>,
    Body(b): Body<ReviewBody>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ApplicationReview)?;
    let step = match what.as_str() {
        "assign" => Step::Assign(b.note),
        "request-info" => Step::RequestInfo(b.note),
        "override" => Step::Override(b.note),
        "approve" => Step::Approve(b.note),
        "reject" => Step::Reject(b.note),
        _ => return Err(ApiError::not_found("no such review step")),
    };
    take(&api, &p, &id, step, Who::Reviewer).await
}
