//! The handlers. Each names its permission first; JSON bodies go through [`Body`],
//! which refuses unknown fields and names the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use services::accounts::{self, Role};
use store::{SafState, TxnFilter, TxnKind, TxnRow, TxnState};

use crate::auth::{request_meta, throttle_key, Permission, Principal};
use crate::error::ApiError;
use crate::lists::{answer, ListQuery};
use crate::metrics::StoreGauges;
use crate::Api;

/// A JSON request body: `application/json`, at most [`crate::MAX_BODY`] bytes, no
/// unknown fields (the target types say `deny_unknown_fields`).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("a request body is at most {} bytes", crate::MAX_BODY),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(Body).map_err(json_error)
    }
}

/// A serde error as a 400 naming the field when serde names one.
pub(crate) fn json_error(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    let field = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| msg.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_owned());
    match field {
        Some(f) => ApiError::field(&f, msg),
        None => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", msg),
    }
}

pub(crate) fn check_text(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            format!("{field} is 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

// ---- sessions -------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    #[schema(max_length = 1024)]
    password: String,
    /// For the browser console: the session is set as an HttpOnly, SameSite=Strict
    /// cookie and the response carries its CSRF token instead of the bearer token.
    #[serde(default)]
    cookie: bool,
}

pub async fn login(State(api): State<Api>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (request_id, source) = request_meta(&parts);
    let Body(b): Body<LoginBody> =
        Body::from_request(Request::from_parts(parts, body), &api).await?;
    // A name or password that cannot be an account's is simply a failed login.
    if b.name.chars().count() > 64 || b.password.chars().count() > 1024 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "wrong name or password",
        ));
    }
    let now = api.now();
    let ip = throttle_key(&source);
    let blocked = api
        .inner
        .throttle
        .lock()
        .ok()
        .and_then(|mut t| t.blocked(&b.name, &ip, now.timestamp()));
    if let Some(wait) = blocked {
        tracing::warn!(operator = %b.name, source = %source, "login throttled");
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins: wait before trying again",
        )
        .into_response();
        if let Ok(v) = wait.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let name = b.name.clone();
    let cookie = b.cookie;
    let (src, rid) = (source.clone(), request_id.clone());
    let result = api
        .db(
            move |db| match accounts::login(db, &b.name, &b.password, &src, &rid, now) {
                Ok(s) => Ok(Some(s)),
                Err(services::ServiceError::BadInput(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
        )
        .await?;
    let Some(session) = result else {
        if let Ok(mut t) = api.inner.throttle.lock() {
            t.failed(&name, &ip, now.timestamp());
        }
        tracing::warn!(operator = %name, source = %source, "login failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "wrong name or password",
        ));
    };
    if let Ok(mut t) = api.inner.throttle.lock() {
        t.succeeded(&name);
    }
    if cookie {
        let body = json!({
            "csrf_token": accounts::csrf_token(&session.token),
            "expires_at": session.row.expires_at,
            "operator": accounts::operator_json(&session.operator),
        });
        let mut resp = (StatusCode::CREATED, Json(body)).into_response();
        let max_age = accounts::SESSION_HOURS * 3600;
        let value = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            crate::auth::SESSION_COOKIE,
            session.token,
            if api.cookie_secure() { "; Secure" } else { "" }
        );
        if let Ok(v) = value.parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return Ok(resp);
    }
    let body = json!({
        "token": session.token,
        "expires_at": session.row.expires_at,
        "operator": accounts::operator_json(&session.operator),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn logout(State(api): State<Api>, p: Principal) -> Result<Response, ApiError> {
    p.require(Permission::LoggedIn)?;
    let at = api.now().to_rfc3339();
    let actor = p.actor();
    let session = p.session.clone();
    api.db(move |db| Ok(accounts::logout(db, &session, &actor, &at)?))
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if p.csrf.is_some() {
        let clear = format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
            crate::auth::SESSION_COOKIE
        );
        if let Ok(v) = clear.parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

pub async fn me(p: Principal) -> Result<Json<Value>, ApiError> {
    p.require(Permission::LoggedIn)?;
    let mut body = json!({
        "operator": accounts::operator_json(&p.operator),
        "session": {"kind": p.session.kind, "expires_at": p.session.expires_at},
    });
    // A console page that reloads learns its CSRF token here (same origin only).
    if let Some(c) = &p.csrf {
        body["csrf_token"] = json!(c);
    }
    Ok(Json(body))
}

// ---- transactions ---------------------------------------------------------------

fn txn_json(t: &TxnRow) -> Value {
    json!({
        "txn_id": t.txn_id,
        "rrn": t.rrn,
        "kind": t.kind.name(),
        "state": t.state.name(),
        "terminal_id": t.terminal_id,
        "merchant_id": t.merchant_id,
        "batch": t.batch,
        "stan": t.stan,
        "amount_minor": t.amount_minor,
        "currency": t.currency,
        "masked_pan": t.masked_pan,
        "response_code": t.response_code,
        "auth_code": t.auth_code,
        "original_rrn": t.original_rrn,
        "local_date": t.local_date,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnQuery {
    rrn: Option<String>,
    terminal: Option<String>,
    merchant: Option<String>,
    masked_pan: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    response_code: Option<String>,
    amount_minor: Option<i64>,
    from: Option<String>,
    to: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    /// `json` (the default) or `csv`: every matching transaction (up to
    /// [`MAX_EXPORT`]) as a CSV file.
    format: Option<String>,
}

/// Rows one CSV export holds at most.
pub(crate) const MAX_EXPORT: usize = 100_000;

/// A query string, or a 400 saying why it does not parse.
pub(crate) fn query<T>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<Query<T>, ApiError> {
    q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
}

/// A page's cursor and size, checked.
pub(crate) fn page(after: Option<i64>, limit: Option<usize>) -> Result<(i64, usize), ApiError> {
    let limit = limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("limit is 1 to {MAX_PAGE}"),
        ));
    }
    let after = after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::field("after", "after is a cursor: 0 or more"));
    }
    Ok((after, limit))
}

/// Page size when none is asked for, and the most one page holds.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub(crate) fn date_param(field: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(d) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() => Ok(Some(d.clone())),
        Some(_) => Err(ApiError::field(
            field,
            format!("{field} is a date YYYY-MM-DD"),
        )),
    }
}

fn masked_pan_param(v: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(m) = v else { return Ok(None) };
    // First six and last four with the middle masked: never a clear PAN.
    let ok = (12..=19).contains(&m.len())
        && m.bytes().take(6).all(|b| b.is_ascii_digit())
        && m.bytes().rev().take(4).all(|b| b.is_ascii_digit())
        && m.bytes().skip(6).take(m.len() - 10).all(|b| b == b'*');
    if ok {
        Ok(Some(m.clone()))
    } else {
        Err(ApiError::field(
            "masked_pan",
            "masked_pan is the first six and last four digits with '*' between (622848******1234); a clear card number is never accepted",
        ))
    }
}

pub async fn transactions(
    State(api): State<Api>,
    p: Principal,
    q: Result<Query<TxnQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    p.require(Permission::TxnRead)?;
    let Query(q) = query(q)?;
    let (after, limit) = page(q.after, q.limit)?;
    let state = match &q.state {
        None => None,
        Some(s) => Some(
            TxnState::parse(s)
                .ok_or_else(|| ApiError::field("state", format!("no state {s:?}")))?,
        ),
    };
    let kind = match &q.kind {
        None => None,
        Some(s) => Some(
            TxnKind::parse(s).ok_or_else(|| ApiError::field("kind", format!("no kind {s:?}")))?,
        ),
    };
    let merchant_ids = match (p.merchant_scope(), &q.merchant) {
        (None, None) => None,
        (None, Some(m)) => Some(vec![m.clone()]),
        (Some(own), None) => Some(own.to_vec()),
        (Some(own), Some(m)) => Some(own.iter().filter(|o| *o == m).cloned().collect()),
    };
    let filter = TxnFilter {
        rrn: q.rrn.clone(),
        terminal_id: q.terminal.clone(),
        merchant_ids,
        masked_pan: masked_pan_param(&q.masked_pan)?,
        state,
        kind,
        response_code: q.response_code.clone(),
        date_from: date_param("from", &q.from)?,
        date_to: date_param("to", &q.to)?,
        amount_minor: match q.amount_minor {
            Some(a) if a < 0 => {
                return Err(ApiError::field(
                    "amount_minor",
                    "amount_minor is 0 or more (minor units)",
                ))
            }
            a => a,
        },
    };
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("csv") => return export_csv(&api, filter, after).await,
        Some(_) => return Err(ApiError::field("format", "format is json or csv")),
    }
    let rows = api
        .db(move |db| Ok(db.search_transactions(&filter, after, limit)?))
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|t| t.txn_id))
        .flatten();
    Ok(Json(json!({
        "items": rows.iter().map(txn_json).collect::<Vec<_>>(),
        "next": next,
    }))
    .into_response())
}

/// Every transaction the filter matches, as CSV, with the list's columns.
async fn export_csv(api: &Api, filter: TxnFilter, after: i64) -> Result<Response, ApiError> {
    let rows = api
        .db(move |db| {
            let mut out = Vec::new();
            let mut cursor = after;
            while out.len() < MAX_EXPORT {
                let page = db.search_transactions(&filter, cursor, MAX_PAGE)?;
                let Some(last) = page.last() else { break };
                cursor = last.txn_id;
                let full = page.len() == MAX_PAGE;
                out.extend(page);
                if !full {
                    break;
                }
            }
            out.truncate(MAX_EXPORT);
            Ok(out)
        })
        .await?;
    let items: Vec<Value> = rows.iter().map(txn_json).collect();
    let columns = [
        "txn_id",
        "rrn",
        "kind",
        "state",
        "terminal_id",
        "merchant_id",
        "batch",
        "stan",
        "amount_minor",
        "currency",
        "masked_pan",
        "response_code",
        "auth_code",
        "original_rrn",
        "local_date",
        "created_at",
    ];
    crate::lists::csv(&items, "transactions", &columns)
}

async fn visible_txn(api: &Api, p: &Principal, rrn: String) -> Result<TxnRow, ApiError> {
    let found = api.db(move |db| Ok(db.transaction_by_rrn(&rrn)?)).await?;
    match found {
        Some(t) if p.sees_merchant(&t.merchant_id) => Ok(t),
        _ => Err(ApiError::not_found("no such transaction")),
    }
}

pub async fn transaction(
    State(api): State<Api>,
    p: Principal,
    Path(rrn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::TxnRead)?;
    let t = visible_txn(&api, &p, rrn).await?;
    let money = api
        .db(move |db| {
            Ok(services::money::money_of(
                db,
                t,
                &services::money::MoneyConfig::default(),
            )?)
        })
        .await?;
    Ok(Json(json!({
        "transaction": txn_json(&money.txn),
        "money": {"status": money.status, "story": money.lines},
    })))
}

pub async fn timeline(
    State(api): State<Api>,
    p: Principal,
    Path(rrn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::TxnRead)?;
    let t = visible_txn(&api, &p, rrn).await?;
    let id = t.txn_id;
    let (rrn, business_date) = (
        t.rrn.clone(),
        api.money()
            .business_date(&t.created_at)
            .map(|d| d.to_string()),
    );
    let found = api
        .db(move |db| {
            let events = db.events(id)?;
            let decision = db.decision(id)?;
            let capture = db.capture(id)?;
            let saf = services::check::saf_of(db, id)?;
            let item = db.settlement_item(id)?;
            let (settlement, payouts) = match &item {
                Some(i) => (
                    db.settlement(&i.settlement_id)?,
                    db.payouts(&i.settlement_id)?,
                ),
                None => (None, Vec::new()),
            };
            let lines = db.recon_lines_of(&rrn)?;
            let findings = db.findings_of(&rrn)?;
            let runs = match &business_date {
                Some(d) => db.recon_runs(Some(d))?,
                None => Vec::new(),
            };
            Ok(Later {
                events,
                decision,
                capture,
                saf,
                item,
                settlement,
                payouts,
                lines,
                findings,
                runs,
            })
        })
        .await?;
    let Later {
        events,
        decision,
        capture,
        saf,
        item,
        settlement,
        payouts,
        lines,
        findings,
        runs,
    } = found;
    let mut steps: Vec<Value> = events
        .iter()
        .map(|e| json!({"at": e.at, "kind": e.kind, "detail": e.detail}))
        .collect();
    if let Some(d) = &decision {
        // The decision's rule matches and the values they saw; never its raw facts
        // record (which holds the card's token).
        steps.push(json!({
            "at": d.at,
            "kind": "risk_decision",
            "detail": format!("{} (score {}, rules {})", d.verdict, d.score, d.version),
            "matched": d.matched,
            "shadow": d.shadow,
            "details": d.details,
            "hold": d.hold,
            "alert": d.alert,
        }));
    }
    if let Some(c) = &capture {
        steps.push(json!({
            "at": c.at,
            "kind": "captured",
            "detail": format!("captured ({}) for business date {}", c.how, c.business_date),
        }));
    }
    // RFC 3339 times of one zone sort as text. Within one instant the request is
    // received, then risk decides, then the rest in journal order (the sort is stable).
    let rank = |s: &Value| match s["kind"].as_str() {
        Some("received") => 0,
        Some("risk_decision") => 1,
        _ => 2,
    };
    steps.sort_by(|a, b| (a["at"].as_str(), rank(a)).cmp(&(b["at"].as_str(), rank(b))));
    // What followed, in the order money moves: the advices' outcome, settlement and
    // payout, the issuer's clearing lines, reconciliation.
    for s in &saf {
        steps.push(json!({
            "at": s.updated_at,
            "kind": format!("saf_{}", s.kind),
            "detail": format!("{} after {} send(s): {}", s.state.name(), s.attempts, s.reason),
        }));
    }
    if let Some(i) = &item {
        steps.push(json!({
            "at": settlement.as_ref().map(|s| s.created_at.clone()),
            "kind": "settled",
            "detail": format!("settlement {}: fee {} net {}", i.settlement_id, i.fee_minor, i.net_minor),
        }));
    }
    for p in &payouts {
        steps.push(json!({
            "at": Value::Null,
            "kind": "payout",
            "detail": format!(
                "payout {} of the settlement: {} on value date {} ({})",
                p.seq, p.amount_minor, p.value_date, p.status
            ),
        }));
    }
    for l in lines.iter().filter(|l| l.valid) {
        steps.push(json!({
            "at": Value::Null,
            "kind": "clearing_line",
            "detail": format!(
                "in the issuer's clearing file of {}: {} {} {} (auth {})",
                l.file_date, l.kind, l.amount_minor, l.currency, l.auth_code
            ),
        }));
    }
    if let Some(run) = runs.first() {
        steps.push(json!({
            "at": run.ran_at,
            "kind": "reconciled",
            "detail": if findings.is_empty() {
                format!("reconciled for business date {}: matches the issuer's records", run.business_date)
            } else {
                format!(
                    "reconciled for business date {}: {} finding(s)",
                    run.business_date,
                    findings.len()
                )
            },
        }));
    }
    for f in &findings {
        steps.push(json!({
            "at": f.updated_at,
            "kind": "recon_finding",
            "detail": format!("{}: {} ({}); {}", f.class, f.status, f.amount_minor, f.action),
        }));
    }
    Ok(Json(
        json!({"transaction": txn_json(&t), "timeline": steps}),
    ))
}

/// What a timeline reads after the journal's own events.
struct Later {
    events: Vec<store::EventRow>,
    decision: Option<store::DecisionRow>,
    capture: Option<store::CaptureRow>,
    saf: Vec<store::SafRow>,
    item: Option<store::SettlementItemRow>,
    settlement: Option<store::SettlementRow>,
    payouts: Vec<store::PayoutRow>,
    lines: Vec<store::ReconLineRow>,
    findings: Vec<store::FindingRow>,
    runs: Vec<store::ReconRunRow>,
}

// ---- merchants ------------------------------------------------------------------

fn merchant_json(m: &store::MerchantRow) -> Value {
    json!({
        "merchant_id": m.merchant_id,
        "name": m.name,
        "city": m.city,
        "mcc": m.mcc,
        "status": m.status,
        "merchant_class": m.merchant_class,
        "risk_class": m.risk_class,
        "created_at": m.created_at,
    })
}

pub async fn merchants(
    State(api): State<Api>,
    p: Principal,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    p.require(Permission::MerchantRead)?;
    let Query(q) = query(q)?;
    let all = api.db(|db| Ok(db.merchants()?)).await?;
    let items: Vec<Value> = all
        .iter()
        .filter(|m| p.sees_merchant(&m.merchant_id))
        .map(merchant_json)
        .collect();
    let columns = [
        "merchant_id",
        "name",
        "city",
        "mcc",
        "status",
        "merchant_class",
        "risk_class",
        "created_at",
    ];
    answer(items, &q, "merchants", &columns)
}

pub async fn merchant(
    State(api): State<Api>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::MerchantRead)?;
    if !p.sees_merchant(&id) {
        return Err(ApiError::not_found("no such merchant"));
    }
    let found = api.db(move |db| Ok(db.merchant(&id)?)).await?;
    found
        .map(|m| Json(merchant_json(&m)))
        .ok_or_else(|| ApiError::not_found("no such merchant"))
}

// ---- holds ----------------------------------------------------------------------

pub async fn holds(
    State(api): State<Api>,
    p: Principal,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    p.require(Permission::HoldRead)?;
    let Query(q) = query(q)?;
    let all = api.db(|db| Ok(db.holds(false)?)).await?;
    let items = all.iter().map(services::money::hold_json).collect();
    let columns = [
        "hold_id",
        "subject",
        "reason",
        "placed_by",
        "placed_at",
        "released_by",
        "released_at",
    ];
    answer(items, &q, "holds", &columns)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// `merchant:<id>` or `txn:<rrn>`.
    #[schema(min_length = 1, max_length = 64, pattern = "^(merchant|txn):[!-~]+$")]
    subject: String,
    /// Why (shown to the merchant's account manager and in the audit trail).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    reason: String,
}

pub async fn place_hold(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<HoldBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::HoldWrite)?;
    check_text("subject", &b.subject, 64)?;
    check_text("reason", &b.reason, 500)?;
    let at = api.now().to_rfc3339();
    let actor = p.actor();
    let id = api
        .db(move |db| {
            let subject = match b.subject.split_once(':') {
                Some(("merchant", m)) => {
                    if db.merchant(m)?.is_none() {
                        return Err(ApiError::not_found(format!("no merchant {m}")));
                    }
                    format!("merchant:{m}")
                }
                Some(("txn", rrn)) => {
                    let t = db
                        .transaction_by_rrn(rrn)?
                        .ok_or_else(|| ApiError::not_found(format!("no transaction {rrn}")))?;
                    format!("txn:{}", t.txn_id)
                }
                _ => {
                    return Err(ApiError::field(
                        "subject",
                        "subject is merchant:<merchant id> or txn:<RRN>",
                    ))
                }
            };
            Ok(services::money::place_hold(
                db,
                &subject,
                &b.reason,
                &actor.name,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"hold_id": id}))).into_response())
}

pub async fn release_hold(
    State(api): State<Api>,
    p: Principal,
    Path(hold_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(Permission::HoldWrite)?;
    let at = api.now().to_rfc3339();
    let actor = p.actor();
    api.db(move |db| {
        Ok(services::money::release_hold(
            db,
            &hold_id,
            &actor.name,
            &actor,
            &at,
        )?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit and operators ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub(crate) after: Option<i64>,
    pub(crate) limit: Option<usize>,
    pub(crate) format: Option<String>,
}

pub async fn audit(
    State(api): State<Api>,
    p: Principal,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    p.require(Permission::AuditRead)?;
    let Query(q) = query(q)?;
    let (after, limit) = page(q.after, q.limit)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::field("format", "format is json or csv")),
    };
    let limit = if csv { MAX_EXPORT } else { limit };
    let rows = api.db(move |db| Ok(db.audit_after(after, limit)?)).await?;
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let items: Vec<Value> = rows
        .iter()
        .map(|a| {
            json!({
                "seq": a.seq, "at": a.at, "actor": a.actor, "role": a.role,
                "action": a.action, "object": a.object,
                "before": parse(&a.before), "after": parse(&a.after),
                "request_id": a.request_id, "source": a.source,
            })
        })
        .collect();
    if csv {
        let columns = [
            "seq",
            "at",
            "actor",
            "role",
            "action",
            "object",
            "before",
            "after",
            "request_id",
            "source",
        ];
        return crate::lists::csv(&items, "audit", &columns);
    }
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|a| a.seq))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})).into_response())
}

pub async fn operators(
    State(api): State<Api>,
    p: Principal,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    p.require(Permission::OperatorRead)?;
    let Query(q) = query(q)?;
    let all = api.db(|db| Ok(db.operators()?)).await?;
    let items = all.iter().map(accounts::operator_json).collect();
    let columns = [
        "name",
        "role",
        "merchant_ids",
        "disabled",
        "created_at",
        "updated_at",
    ];
    answer(items, &q, "operators", &columns)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorBody {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    name: String,
    #[schema(pattern = "^(admin|operations|risk_analyst|finance|support|auditor|merchant)$")]
    role: String,
    #[schema(min_length = 12, max_length = 256)]
    password: String,
    #[serde(default)]
    merchant_ids: Vec<String>,
}

pub async fn add_operator(
    State(api): State<Api>,
    p: Principal,
    Body(b): Body<OperatorBody>,
) -> Result<Response, ApiError> {
    p.require(Permission::OperatorWrite)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError::field(
            "role",
            "role is admin, operations, risk_analyst, finance, support, auditor or merchant",
        )
    })?;
    if b.merchant_ids.len() > 100 {
        return Err(ApiError::field("merchant_ids", "at most 100 merchant ids"));
    }
    let at = api.now().to_rfc3339();
    let actor = p.actor();
    let row = api
        .db(move |db| {
            Ok(accounts::add_operator(
                db,
                &b.name,
                role,
                &b.password,
                &b.merchant_ids,
                &actor,
                &at,
            )?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(accounts::operator_json(&row))).into_response())
}

// ---- health, metrics, unknown routes ----------------------------------------------

pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// Ready when the store answers and, inside a switching node, an issuer link is up.
pub async fn ready(State(api): State<Api>) -> Response {
    let store = api.db(|db| Ok(db.operators().map(|_| ())?)).await.is_ok();
    let node = api.node_ready();
    let mut body = json!({
        "status": if store && node.as_ref().is_none_or(Result::is_ok) { "ready" } else { "not_ready" },
        "store": if store { "ok" } else { "unreachable" },
    });
    if let Some(n) = &node {
        body["issuer_link"] = match n {
            Ok(()) => json!("up"),
            Err(why) => json!(why),
        };
    }
    let status = if body["status"] == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn metrics(State(api): State<Api>) -> Response {
    let now_ms = api.now().timestamp_millis();
    let today = (api.now() + chrono::Duration::hours(8)).date_naive();
    let gauges = api
        .db(move |db| {
            let pending = db.saf_in_state(SafState::Pending)?;
            let exceptions = db.saf_in_state(SafState::Exception)?.len() as i64;
            let oldest = pending
                .iter()
                .filter_map(|s| chrono::DateTime::parse_from_rfc3339(&s.created_at).ok())
                .map(|t| (now_ms - t.timestamp_millis()).max(0) / 1000)
                .max()
                .unwrap_or(0);
            let open: Vec<store::ComplaintRow> = db
                .complaints(None)?
                .into_iter()
                .filter(|c| !matches!(c.status.as_str(), "resolved" | "rejected"))
                .collect();
            let mut breached = 0;
            let cal = services::reference::calendar(db)?;
            for c in &open {
                if services::complaints::standing_on(&cal, c, today)?
                    == Some(complaints::deadline::Standing::Breached)
                {
                    breached += 1;
                }
            }
            Ok(StoreGauges {
                saf_pending: pending.len() as i64,
                saf_oldest_age_secs: oldest,
                saf_exceptions: exceptions,
                in_flight: db.count_in_state(TxnState::Authorizing)? as i64,
                recon_open: db.findings(Some("open"))?.len() as i64,
                reviews_overdue: services::onboarding::overdue(db, today)?.len() as i64,
                rereviews_due: services::onboarding::rereviews_due(db, today)?.len() as i64,
                complaints_open: open.len() as i64,
                complaints_breached: breached,
            })
        })
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.render_metrics(gauges),
    )
        .into_response()
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}
