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
//!
//! With a token configured ([`IssuerConfig::api_token`](crate::IssuerConfig),
//! `posguard issuer-sim --api-token`), every route needs `Authorization: Bearer
//! <token>` and answers 401 without it; without one the API is open to anyone who can
//! reach it, and says so in a warning at start.
//!
//! Every input has a bound, checked before the bank is touched; a violation is a 400
//! whose JSON body names the field, `{"error": "…", "field": "…"}`:
//!
//! | input | accepted |
//! |---|---|
//! | body | JSON object, `Content-Type: application/json` (415 otherwise), at most [`MAX_BODY_BYTES`] (413), no unknown members |
//! | `pan` | 12–19 digits passing Luhn |
//! | `pin` | 4–12 digits |
//! | `expiry` | `YYMM`, month 01–12 |
//! | `balance_minor` | 0 to [`MAX_ACCOUNT_MINOR`] (default 0); a negative balance is refused: spending beyond the money is `credit_limit_minor` |
//! | `credit_limit_minor` | 0 to [`MAX_ACCOUNT_MINOR`] (default 0) |
//! | `daily_limit_minor` | 0 to [`MAX_ACCOUNT_MINOR`] (default 10,000,000) |
//! | `status` | `active`, `lost`, `stolen`, `blocked` (default `active`) |
//! | `holder` | up to [`MAX_HOLDER_CHARS`] letters, digits, spaces and `.'-·` (default empty) |
//! | `phone` | empty, or 5–15 digits after an optional `+` |
//! | `language` | `zh` or `en` (default `zh`) |
//! | `currency` | an ISO 4217 code posguard knows, alphabetic or numeric (default `CNY`) |
//! | `{id}`, `?account=` | 1–20 digits; `/sms` takes no other parameter |
//! | `{YYYY-MM-DD}` | a calendar date written so |

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cardsec::{Expiry, Pan, Pin};
use chrono::NaiveDate;
use domain::Currency;
use serde::Serialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use crate::bank::{AccountId, CardStatus, NewAccount, MAX_ACCOUNT_MINOR};
use crate::server::{lock, Clock};
use crate::{Bank, IssuerError};

/// The largest request body the API reads, in bytes. The largest valid body is
/// well under 1 KiB; the rest is room for whitespace.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest cardholder name, in characters.
pub const MAX_HOLDER_CHARS: usize = 64;

/// The most digits an account id has (`u64::MAX` has 20).
const MAX_ID_DIGITS: usize = 20;

/// The bearer token every request must carry when one is configured. Redacted in
/// `Debug`.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    /// Shortest token accepted: guessing one stays out of reach.
    pub const MIN_LEN: usize = 16;
    /// Longest token accepted.
    pub const MAX_LEN: usize = 256;

    /// A token of [`ApiToken::MIN_LEN`] to [`ApiToken::MAX_LEN`] characters from the
    /// bearer token alphabet (letters, digits, `-._~+/=`), so that it fits an
    /// `Authorization` header as it is.
    pub fn new(token: &str) -> Result<ApiToken, IssuerError> {
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&token.len()) || !token.bytes().all(alphabet) {
            let reason = format!(
                "must be {} to {} letters, digits or -._~+/=",
                Self::MIN_LEN,
                Self::MAX_LEN
            );
            return Err(IssuerError::invalid("api_token", reason));
        }
        Ok(ApiToken(token.into()))
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`; the token
    /// is compared in constant time (its length is not a secret).
    fn admits(&self, authorization: &[u8]) -> bool {
        let Some(space) = authorization.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, presented) = authorization.split_at(space);
        let presented = presented.trim_ascii_start();
        scheme.eq_ignore_ascii_case(b"bearer") && bool::from(presented.ct_eq(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The bank.
    pub bank: Arc<Mutex<Bank>>,
    /// The local time for postings made through the API (opening balances).
    pub clock: Clock,
    /// The token every request must carry; `None` leaves the API open.
    pub api_token: Option<ApiToken>,
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Refuses a request without the configured token before any handler reads it.
async fn require_token(State(st): State<HttpState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.api_token {
        let authorization = req.headers().get(header::AUTHORIZATION);
        if !authorization.is_some_and(|v| token.admits(v.as_bytes())) {
            tracing::warn!(path = %req.uri().path(), "issuer API request without a valid token refused");
            let error = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API needs Authorization: Bearer <token>",
            );
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(req).await
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

/// An error answer: a status and a JSON `{"error": …, "field": …}` body.
struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }

    fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// A 400 naming `field`: "`field` `why`".
    fn field(field: &str, why: impl fmt::Display) -> ApiError {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::bad_request(format!("{field} {why}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, field = ?self.field, error = %self.error, "issuer API refused a request");
        let mut body = json!({ "error": self.error });
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<IssuerError> for ApiError {
    fn from(e: IssuerError) -> ApiError {
        let status = match e {
            IssuerError::DuplicateCard => StatusCode::CONFLICT,
            IssuerError::UnknownAccount(_) => StatusCode::NOT_FOUND,
            IssuerError::Invalid { .. } => StatusCode::BAD_REQUEST,
            IssuerError::Key { .. } | IssuerError::Io { .. } | IssuerError::Tls(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let field = match &e {
            IssuerError::DuplicateCard => Some("pan"),
            IssuerError::UnknownAccount(_) => Some("id"),
            IssuerError::Invalid { field, .. } => Some(*field),
            IssuerError::Key { .. } | IssuerError::Io { .. } | IssuerError::Tls(_) => None,
        };
        ApiError {
            field: field.map(str::to_owned),
            ..ApiError::new(status, e.to_string())
        }
    }
}

/// axum's own refusals (body too large or unreadable, path or query undecodable),
/// with axum's status, as a JSON error.
fn rejected(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        );
    }
    ApiError::new(status, text)
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

/// A request body's members, taken out one at a time so that every refusal names
/// its field. Holds a clear PAN and PIN only until they are parsed into their secret
/// types; it has no `Debug`.
struct Body(Map<String, Value>);

impl Body {
    /// The JSON object of a request whose members are all in `fields`.
    fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
        fields: &[&str],
    ) -> Result<Body, ApiError> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let map = match serde_json::from_slice(&body?) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ApiError::bad_request("the body must be a JSON object")),
            Err(e) => return Err(ApiError::bad_request(format!("bad JSON: {e}"))),
        };
        if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
            let name: String = unknown.chars().take(MAX_HOLDER_CHARS).collect();
            return Err(ApiError::field(&name, "is not a field of this request"));
        }
        Ok(Body(map))
    }

    /// A string member, `None` when absent.
    fn text(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::field(name, "must be a string")),
        }
    }

    /// A string member that must be present.
    fn required(&mut self, name: &str) -> Result<String, ApiError> {
        self.text(name)?
            .ok_or_else(|| ApiError::field(name, "is required"))
    }

    /// An amount member in minor units, 0 to [`MAX_ACCOUNT_MINOR`].
    fn minor(&mut self, name: &str, default: i64) -> Result<i64, ApiError> {
        let range = format!("between 0 and {MAX_ACCOUNT_MINOR}");
        match self.0.remove(name) {
            None => Ok(default),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n
                .as_i64()
                .filter(|minor| (0..=MAX_ACCOUNT_MINOR).contains(minor))
                .ok_or_else(|| ApiError::field(name, format!("must be {range}"))),
            Some(_) => Err(ApiError::field(name, format!("must be an integer {range}"))),
        }
    }

    /// A member that is one of a few lower-case words (an enum's serde names).
    fn word<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        words: &str,
    ) -> Result<Option<T>, ApiError> {
        let Some(v) = self.0.remove(name) else {
            return Ok(None);
        };
        serde_json::from_value(v)
            .map(Some)
            .map_err(|_| ApiError::field(name, format!("must be one of {words}")))
    }
}

fn default_daily_limit() -> i64 {
    // 100,000 yuan, the daily limit the brief gives for a class of merchants.
    10_000_000
}

#[derive(Serialize)]
struct Opened {
    id: AccountId,
    masked_pan: String,
}

/// The members of `POST /accounts`.
const OPEN_FIELDS: &[&str] = &[
    "pan",
    "pin",
    "expiry",
    "balance_minor",
    "credit_limit_minor",
    "daily_limit_minor",
    "status",
    "holder",
    "phone",
    "language",
    "currency",
];

/// The account a `POST /accounts` body describes, every member checked.
fn new_account(mut b: Body) -> Result<NewAccount, ApiError> {
    Ok(NewAccount {
        pan: pan(&b.required("pan")?)?,
        pin: Pin::new(&b.required("pin")?)
            .map_err(|_| ApiError::field("pin", "must be 4 to 12 digits"))?,
        expiry: Expiry::parse(&b.required("expiry")?)
            .ok_or_else(|| ApiError::field("expiry", "must be YYMM with a month 01 to 12"))?,
        balance_minor: b.minor("balance_minor", 0)?,
        credit_limit_minor: b.minor("credit_limit_minor", 0)?,
        daily_limit_minor: b.minor("daily_limit_minor", default_daily_limit())?,
        status: b
            .word("status", "active, lost, stolen, blocked")?
            .unwrap_or_default(),
        holder: holder(b.text("holder")?.unwrap_or_default())?,
        phone: phone(b.text("phone")?.unwrap_or_default())?,
        language: b.word("language", "zh, en")?.unwrap_or_default(),
        currency: match b.text("currency")? {
            None => Currency::CNY,
            Some(c) => Currency::parse(&c).map_err(|_| {
                ApiError::field("currency", "must be an ISO 4217 code posguard knows")
            })?,
        },
    })
}

fn pan(digits: &str) -> Result<Pan, ApiError> {
    let pan = Pan::new(digits).map_err(|_| ApiError::field("pan", "must be 12 to 19 digits"))?;
    if !pan.luhn_ok() {
        return Err(ApiError::field("pan", "fails the Luhn check"));
    }
    Ok(pan)
}

fn holder(name: String) -> Result<String, ApiError> {
    let allowed = |c: char| c.is_alphanumeric() || " .'-·".contains(c);
    if name.chars().count() > MAX_HOLDER_CHARS || !name.chars().all(allowed) {
        let why = format!("must be at most {MAX_HOLDER_CHARS} letters, digits, spaces or .'-·");
        return Err(ApiError::field("holder", why));
    }
    Ok(name)
}

fn phone(number: String) -> Result<String, ApiError> {
    let digits = number.strip_prefix('+').unwrap_or(&number);
    let ok = (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if !number.is_empty() && !ok {
        return Err(ApiError::field(
            "phone",
            "must be 5 to 15 digits, optionally after a +",
        ));
    }
    Ok(number)
}

async fn open_account(
    State(st): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new = new_account(Body::parse(&headers, body, OPEN_FIELDS)?)?;
    let masked_pan = new.pan.masked().to_string();
    let now = (st.clock)();
    let id = lock(&st.bank).open_account(now, new)?;
    Ok((StatusCode::CREATED, Json(Opened { id, masked_pan })).into_response())
}

/// An account id as a path or query parameter named `field`: 1 to 20 digits.
fn parse_id(field: &str, s: &str) -> Result<AccountId, ApiError> {
    let digits = (1..=MAX_ID_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| s.parse().ok())
        .flatten()
        .map(AccountId)
        .ok_or_else(|| ApiError::field(field, "must be an account number (1 to 20 digits)"))
}

async fn get_account(
    State(st): State<HttpState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id("id", &id?.0)?;
    let view = lock(&st.bank)
        .account(id)
        .ok_or(IssuerError::UnknownAccount(id.0))?;
    Ok(Json(view).into_response())
}

async fn list_accounts(State(st): State<HttpState>) -> Response {
    Json(lock(&st.bank).accounts()).into_response()
}

async fn set_status(
    State(st): State<HttpState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id("id", &id?.0)?;
    let mut body = Body::parse(&headers, body, &["status"])?;
    let status: CardStatus = body
        .word("status", "active, lost, stolen, blocked")?
        .ok_or_else(|| ApiError::field("status", "is required"))?;
    lock(&st.bank).set_card_status(id, status)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_sms(
    State(st): State<HttpState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(mut q) = q?;
    let account = q.remove("account").map(|id| parse_id("account", &id));
    if let Some(other) = q.keys().next() {
        let name: String = other.chars().take(MAX_HOLDER_CHARS).collect();
        return Err(ApiError::field(&name, "is not a parameter of /sms"));
    }
    let bank = lock(&st.bank);
    let list = match account.transpose()? {
        Some(id) => bank.sms_for(id),
        None => bank.sms().to_vec(),
    };
    Ok(Json(list).into_response())
}

async fn clearing(
    State(st): State<HttpState>,
    date: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let date = date?.0;
    let shaped = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = shaped
        .then(|| NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ApiError::field("date", "must be a date written YYYY-MM-DD"))?;
    let csv = lock(&st.bank).clearing_csv(date);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn book(State(st): State<HttpState>) -> Response {
    Json(lock(&st.bank).book().totals()).into_response()
}
