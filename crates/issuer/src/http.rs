//! The issuer's HTTP API (JSON): open and list accounts, read the SMS outbox, the
//! clearing file and the book's totals. No route returns a PAN.
//!
//! | route | does |
//! |---|---|
//! | `POST /accounts` | open an account with its card → `{id, masked_pan}` |
//! | `GET /accounts` | every account's balances |
//! | `GET /accounts/{id}` | one account's balances |
//! | `POST /accounts/{id}/status` | `{"status": "lost"}`: change the card's status |
//! | `GET /sms[?account=id]` | the SMS outbox |
//! | `GET /clearing/{YYYY-MM-DD}` | the clearing file of that local date (CSV) |
//! | `GET /book` | balances and per-currency sums proving the book balances |

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cardsec::{Expiry, Pan, Pin};
use chrono::NaiveDate;
use domain::Currency;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bank::{AccountId, CardStatus, Language, NewAccount};
use crate::server::{lock, Clock};
use crate::{Bank, IssuerError};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The bank.
    pub bank: Arc<Mutex<Bank>>,
    /// The local time for postings made through the API (opening balances).
    pub clock: Clock,
}

/// The API's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/accounts", post(open_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account))
        .route("/accounts/{id}/status", post(set_status))
        .route("/sms", get(list_sms))
        .route("/clearing/{date}", get(clearing))
        .route("/book", get(book))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error answer: a status and a JSON `{"error": …}` body.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<IssuerError> for ApiError {
    fn from(e: IssuerError) -> ApiError {
        let status = match e {
            IssuerError::DuplicateCard => StatusCode::CONFLICT,
            IssuerError::UnknownAccount(_) => StatusCode::NOT_FOUND,
            IssuerError::Invalid { .. } => StatusCode::BAD_REQUEST,
            IssuerError::Key { .. } | IssuerError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

/// The body of `POST /accounts`. Holds a clear PAN and PIN only until they are
/// parsed into their secret types; it has no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccount {
    pan: String,
    pin: String,
    expiry: String,
    #[serde(default)]
    balance_minor: i64,
    #[serde(default)]
    credit_limit_minor: i64,
    #[serde(default = "default_daily_limit")]
    daily_limit_minor: i64,
    #[serde(default)]
    status: CardStatus,
    #[serde(default)]
    holder: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    language: Language,
    #[serde(default = "default_currency")]
    currency: String,
}

fn default_daily_limit() -> i64 {
    // 100,000 yuan, the daily limit the brief gives for a class of merchants.
    10_000_000
}

fn default_currency() -> String {
    "CNY".into()
}

#[derive(Serialize)]
struct Opened {
    id: AccountId,
    masked_pan: String,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))
}

impl OpenAccount {
    fn into_new_account(self) -> Result<NewAccount, ApiError> {
        let pan = Pan::new(&self.pan).map_err(|e| ApiError::bad_request(format!("pan: {e}")))?;
        let pin = Pin::new(&self.pin).map_err(|e| ApiError::bad_request(format!("pin: {e}")))?;
        let expiry = Expiry::parse(&self.expiry)
            .ok_or_else(|| ApiError::bad_request("expiry: expected YYMM"))?;
        let currency = Currency::parse(&self.currency)
            .map_err(|e| ApiError::bad_request(format!("currency: {e}")))?;
        Ok(NewAccount {
            pan,
            pin,
            expiry,
            currency,
            balance_minor: self.balance_minor,
            credit_limit_minor: self.credit_limit_minor,
            daily_limit_minor: self.daily_limit_minor,
            status: self.status,
            holder: self.holder,
            phone: self.phone,
            language: self.language,
        })
    }
}

async fn open_account(State(st): State<HttpState>, body: Bytes) -> Result<Response, ApiError> {
    let req: OpenAccount = parse_json(&body)?;
    let new = req.into_new_account()?;
    let masked_pan = new.pan.masked().to_string();
    let now = (st.clock)();
    let id = lock(&st.bank).open_account(now, new)?;
    Ok((StatusCode::CREATED, Json(Opened { id, masked_pan })).into_response())
}

fn parse_id(s: &str) -> Result<AccountId, ApiError> {
    s.parse()
        .map(AccountId)
        .map_err(|_| ApiError::bad_request("account id must be a number"))
}

async fn get_account(
    State(st): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let view = lock(&st.bank)
        .account(id)
        .ok_or(IssuerError::UnknownAccount(id.0))?;
    Ok(Json(view).into_response())
}

async fn list_accounts(State(st): State<HttpState>) -> Response {
    Json(lock(&st.bank).accounts()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: CardStatus,
}

async fn set_status(
    State(st): State<HttpState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let change: StatusChange = parse_json(&body)?;
    lock(&st.bank).set_card_status(id, change.status)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_sms(
    State(st): State<HttpState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bank = lock(&st.bank);
    let list = match q.get("account") {
        Some(id) => bank.sms_for(parse_id(id)?),
        None => bank.sms().to_vec(),
    };
    Ok(Json(list).into_response())
}

async fn clearing(
    State(st): State<HttpState>,
    Path(date): Path<String>,
) -> Result<Response, ApiError> {
    let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request("date must be YYYY-MM-DD"))?;
    let csv = lock(&st.bank).clearing_csv(date);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn book(State(st): State<HttpState>) -> Response {
    Json(lock(&st.bank).book().totals()).into_response()
}
