//! posguard's operators' API: HTTP/JSON under `/api/v1`, over the `services` crate.
//!
//! Every route under `/api/v1` except logging in needs a bearer token (a session from
//! `POST /api/v1/session`, or an API key from `posguard user api-key`) and names the
//! permission it needs ([`ROUTES`]); [`auth::GRANTS`] says which role has which. Every
//! change writes an audit record in the same database transaction as the change.
//! Errors have one shape (`{"error": {"code", "message", "field"}}`, [`ApiError`]).
//! `/health/live`, `/health/ready` and `/metrics` (Prometheus text) are for the
//! machines that watch the node; they show no cardholder or merchant data.

pub mod auth;
mod back_office;
mod complaints;
pub mod error;
mod lists;
pub mod metrics;
mod onboarding;
pub mod openapi;
mod reference;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use store::Backend;

pub use auth::{Permission, Principal};
pub use error::ApiError;
pub use metrics::{install_node_recorder, NodeHooks};

/// Every route under `/api/v1`: method, path, and the permission it needs (`None`:
/// open — logging in and the OpenAPI document). The table-driven access test and the
/// OpenAPI document walk this table.
pub const ROUTES: &[(&str, &str, Option<Permission>)] = &[
    ("POST", "/api/v1/session", None),
    ("GET", "/api/v1/openapi.json", None),
    ("DELETE", "/api/v1/session", Some(Permission::LoggedIn)),
    ("GET", "/api/v1/me", Some(Permission::LoggedIn)),
    ("GET", "/api/v1/transactions", Some(Permission::TxnRead)),
    (
        "GET",
        "/api/v1/transactions/{rrn}",
        Some(Permission::TxnRead),
    ),
    (
        "GET",
        "/api/v1/transactions/{rrn}/timeline",
        Some(Permission::TxnRead),
    ),
    ("GET", "/api/v1/merchants", Some(Permission::MerchantRead)),
    (
        "GET",
        "/api/v1/merchants/{merchant_id}",
        Some(Permission::MerchantRead),
    ),
    ("GET", "/api/v1/holds", Some(Permission::HoldRead)),
    ("POST", "/api/v1/holds", Some(Permission::HoldWrite)),
    (
        "DELETE",
        "/api/v1/holds/{hold_id}",
        Some(Permission::HoldWrite),
    ),
    (
        "POST",
        "/api/v1/merchants/{merchant_id}/status",
        Some(Permission::MerchantWrite),
    ),
    (
        "POST",
        "/api/v1/merchants/{merchant_id}/limits",
        Some(Permission::MerchantWrite),
    ),
    (
        "POST",
        "/api/v1/terminals/{terminal_id}/location",
        Some(Permission::MerchantWrite),
    ),
    ("GET", "/api/v1/terminals", Some(Permission::TerminalRead)),
    (
        "POST",
        "/api/v1/terminals/{terminal_id}/status",
        Some(Permission::MerchantWrite),
    ),
    (
        "GET",
        "/api/v1/terminals/{terminal_id}",
        Some(Permission::TerminalRead),
    ),
    (
        "GET",
        "/api/v1/merchants/{merchant_id}/statement",
        Some(Permission::MerchantRead),
    ),
    (
        "GET",
        "/api/v1/settlements",
        Some(Permission::SettlementRead),
    ),
    (
        "GET",
        "/api/v1/settlements/{settlement_id}",
        Some(Permission::SettlementRead),
    ),
    (
        "GET",
        "/api/v1/settlement-runs",
        Some(Permission::SettlementRunRead),
    ),
    (
        "POST",
        "/api/v1/settlement-runs",
        Some(Permission::SettlementRun),
    ),
    (
        "GET",
        "/api/v1/settlement-runs/{business_date}/files/{file}",
        Some(Permission::SettlementRunRead),
    ),
    (
        "POST",
        "/api/v1/payouts/confirm",
        Some(Permission::SettlementRun),
    ),
    ("POST", "/api/v1/clearing-files", Some(Permission::ReconRun)),
    ("GET", "/api/v1/recon-runs", Some(Permission::ReconRead)),
    ("POST", "/api/v1/recon-runs", Some(Permission::ReconRun)),
    ("GET", "/api/v1/findings", Some(Permission::ReconRead)),
    (
        "GET",
        "/api/v1/findings/{finding_id}",
        Some(Permission::ReconRead),
    ),
    (
        "POST",
        "/api/v1/findings/{finding_id}/assign",
        Some(Permission::ExceptionWrite),
    ),
    (
        "POST",
        "/api/v1/findings/{finding_id}/resolve",
        Some(Permission::ExceptionWrite),
    ),
    ("GET", "/api/v1/risk/cases", Some(Permission::RiskRead)),
    (
        "GET",
        "/api/v1/risk/cases/{case_id}",
        Some(Permission::RiskRead),
    ),
    (
        "POST",
        "/api/v1/risk/cases/{case_id}/assign",
        Some(Permission::CaseWrite),
    ),
    (
        "POST",
        "/api/v1/risk/cases/{case_id}/note",
        Some(Permission::CaseWrite),
    ),
    (
        "POST",
        "/api/v1/risk/cases/{case_id}/close",
        Some(Permission::CaseWrite),
    ),
    ("POST", "/api/v1/risk/backtests", Some(Permission::Backtest)),
    ("GET", "/api/v1/risk/rule-sets", Some(Permission::RiskRead)),
    (
        "POST",
        "/api/v1/risk/rule-sets",
        Some(Permission::RulesWrite),
    ),
    (
        "GET",
        "/api/v1/risk/rule-sets/{version}",
        Some(Permission::RiskRead),
    ),
    (
        "POST",
        "/api/v1/risk/rule-sets/{version}/status",
        Some(Permission::RulesWrite),
    ),
    ("GET", "/api/v1/saf", Some(Permission::SafRead)),
    ("GET", "/api/v1/saf/depth", Some(Permission::SafRead)),
    ("GET", "/api/v1/saf/{saf_id}", Some(Permission::SafRead)),
    (
        "POST",
        "/api/v1/saf/{saf_id}/retry",
        Some(Permission::SafWrite),
    ),
    (
        "POST",
        "/api/v1/saf/{saf_id}/resolve",
        Some(Permission::SafWrite),
    ),
    (
        "GET",
        "/api/v1/applications",
        Some(Permission::ApplicationRead),
    ),
    (
        "POST",
        "/api/v1/applications",
        Some(Permission::ApplicationApply),
    ),
    (
        "GET",
        "/api/v1/applications/{app_id}",
        Some(Permission::ApplicationRead),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/submit",
        Some(Permission::ApplicationApply),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/assign",
        Some(Permission::ApplicationReview),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/request-info",
        Some(Permission::ApplicationReview),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/resubmit",
        Some(Permission::ApplicationApply),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/override",
        Some(Permission::ApplicationReview),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/approve",
        Some(Permission::ApplicationReview),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/reject",
        Some(Permission::ApplicationReview),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/withdraw",
        Some(Permission::ApplicationApply),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/documents",
        Some(Permission::ApplicationApply),
    ),
    (
        "POST",
        "/api/v1/applications/{app_id}/provision",
        Some(Permission::MerchantProvision),
    ),
    (
        "GET",
        "/api/v1/applications/{app_id}/documents",
        Some(Permission::ApplicationRead),
    ),
    (
        "GET",
        "/api/v1/documents/{sha256}",
        Some(Permission::ApplicationRead),
    ),
    (
        "GET",
        "/api/v1/rereviews",
        Some(Permission::ApplicationRead),
    ),
    (
        "POST",
        "/api/v1/merchants/{merchant_id}/rereview",
        Some(Permission::ApplicationReview),
    ),
    ("GET", "/api/v1/blocklist", Some(Permission::BlocklistRead)),
    (
        "GET",
        "/api/v1/calendars/{year}",
        Some(Permission::LoggedIn),
    ),
    (
        "PUT",
        "/api/v1/calendars/{year}",
        Some(Permission::ReferenceWrite),
    ),
    ("GET", "/api/v1/mcc-table", Some(Permission::LoggedIn)),
    ("GET", "/api/v1/complaints", Some(Permission::ComplaintRead)),
    (
        "GET",
        "/api/v1/complaints/report",
        Some(Permission::ComplaintReport),
    ),
    (
        "POST",
        "/api/v1/complaints",
        Some(Permission::ComplaintFile),
    ),
    (
        "POST",
        "/api/v1/complaints/assign",
        Some(Permission::ComplaintWrite),
    ),
    (
        "GET",
        "/api/v1/complaints/{complaint_id}",
        Some(Permission::ComplaintRead),
    ),
    (
        "GET",
        "/api/v1/complaints/{complaint_id}/candidates",
        Some(Permission::ComplaintRead),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/acknowledge",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/link",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/extend",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/resolve",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/refund",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaints/{complaint_id}/escalate",
        Some(Permission::ComplaintWrite),
    ),
    ("GET", "/api/v1/disputes", Some(Permission::ComplaintReport)),
    (
        "POST",
        "/api/v1/disputes/{dispute_id}",
        Some(Permission::ComplaintWrite),
    ),
    (
        "POST",
        "/api/v1/complaint-actions/{action_id}/approve",
        Some(Permission::ComplaintApprove),
    ),
    (
        "POST",
        "/api/v1/complaint-actions/{action_id}/refuse",
        Some(Permission::ComplaintApprove),
    ),
    ("PUT", "/api/v1/mcc-table", Some(Permission::ReferenceWrite)),
    (
        "POST",
        "/api/v1/blocklist",
        Some(Permission::BlocklistWrite),
    ),
    ("GET", "/api/v1/audit", Some(Permission::AuditRead)),
    ("GET", "/api/v1/operators", Some(Permission::OperatorRead)),
    ("POST", "/api/v1/operators", Some(Permission::OperatorWrite)),
];

/// Largest request body accepted (bytes); more is answered 413.
pub const MAX_BODY: usize = 64 * 1024;

/// The clock the API reads (the edge passes the system clock; tests a fixed one).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The API's state: one store connection (requests take turns on it, off the async
/// workers), the login throttle, the metrics, the clock.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Mutex<Store>>,
    throttle: Mutex<auth::Throttle>,
    metrics: metrics::Metrics,
    clock: Clock,
    money: services::money::MoneyConfig,
    node: std::sync::OnceLock<metrics::NodeHooks>,
    pii: std::sync::OnceLock<Arc<services::onboarding::PiiKey>>,
    hsm: std::sync::OnceLock<Arc<cardsec::SoftwareSecurityModule>>,
    complaints: std::sync::OnceLock<services::complaints::ComplaintConfig>,
    cookie_secure: std::sync::atomic::AtomicBool,
}

/// The store connection, dropped off the async workers: a PostgreSQL client blocks
/// when it closes, which must not happen on a runtime thread.
struct Store(Option<Box<dyn Backend>>);

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("posguard-api-close".into())
                .spawn(move || drop(db));
        }
    }
}

/// A request's id, for logs and audit records (also sent back as `x-request-id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl Api {
    /// The API over an open (migrated) store, settling with the default money
    /// configuration (files in the working directory).
    pub fn new(db: Box<dyn Backend>, clock: Clock) -> Api {
        Api::with_money(db, clock, services::money::MoneyConfig::default())
    }

    /// The API over an open (migrated) store; settlement runs and reconciliation use
    /// `money` (cut-off, zone, where the settlement files go).
    pub fn with_money(
        db: Box<dyn Backend>,
        clock: Clock,
        money: services::money::MoneyConfig,
    ) -> Api {
        Api {
            inner: Arc::new(Inner {
                db: Arc::new(Mutex::new(Store(Some(db)))),
                throttle: Mutex::new(auth::Throttle::default()),
                metrics: metrics::Metrics::default(),
                clock,
                money,
                node: std::sync::OnceLock::new(),
                pii: std::sync::OnceLock::new(),
                hsm: std::sync::OnceLock::new(),
                complaints: std::sync::OnceLock::new(),
                cookie_secure: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    /// Whether the console's session cookie is marked `Secure` (sent over HTTPS only;
    /// browsers accept it from `http://localhost` too). On by default: turn it off
    /// only for a console reached over plain HTTP on a trusted network.
    pub fn set_cookie_secure(&self, secure: bool) {
        self.inner
            .cookie_secure
            .store(secure, std::sync::atomic::Ordering::Relaxed);
    }

    fn cookie_secure(&self) -> bool {
        self.inner
            .cookie_secure
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key personal ID numbers in merchant applications are tokenized with;
    /// without it the API refuses applications (503).
    pub fn set_complaints(&self, c: services::complaints::ComplaintConfig) {
        let _ = self.inner.complaints.set(c);
    }

    /// The complaint desk's configuration (the defaults unless one was set).
    pub fn complaints(&self) -> services::complaints::ComplaintConfig {
        self.inner.complaints.get().cloned().unwrap_or_default()
    }

    /// Sets the key personal ID numbers are tokenized with.
    pub fn set_pii_key(&self, key: services::onboarding::PiiKey) {
        let _ = self.inner.pii.set(Arc::new(key));
    }

    fn pii_key(&self) -> Option<Arc<services::onboarding::PiiKey>> {
        self.inner.pii.get().cloned()
    }

    /// The security module provisioning generates terminal master keys in (the node's
    /// LMK); without it the API does not provision.
    pub fn set_security_module(&self, hsm: Arc<cardsec::SoftwareSecurityModule>) {
        let _ = self.inner.hsm.set(hsm);
    }

    fn security_module(&self) -> Option<Arc<cardsec::SoftwareSecurityModule>> {
        self.inner.hsm.get().cloned()
    }

    /// Serves a switching node's metrics too, and counts its issuer link in readiness.
    pub fn attach_node(&self, hooks: metrics::NodeHooks) {
        let _ = self.inner.node.set(hooks);
    }

    fn node_ready(&self) -> Option<Result<(), String>> {
        self.inner.node.get().map(|n| (n.ready)())
    }

    fn render_metrics(&self, gauges: metrics::StoreGauges) -> String {
        let mut text = self.inner.metrics.render(gauges);
        if let Some(n) = self.inner.node.get() {
            text.push('\n');
            text.push_str(&n.handle.render());
        }
        text
    }

    /// The money configuration runs use.
    pub fn money(&self) -> services::money::MoneyConfig {
        self.inner.money.clone()
    }

    /// Now, by the API's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Runs `f` on the store on a blocking thread.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = db.lock().map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store connection is unusable",
                )
            })?;
            match guard.0.as_mut() {
                Some(db) => f(db.as_mut()),
                None => Err(ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store connection is closed",
                )),
            }
        })
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request's worker failed",
            )
        })?
    }

    /// The router: `/api/v1`, health and metrics.
    pub fn router(&self) -> Router {
        let v1 = Router::new()
            .route("/session", post(routes::login).delete(routes::logout))
            .route("/me", get(routes::me))
            .route("/openapi.json", get(routes::openapi))
            .route("/transactions", get(routes::transactions))
            .route("/transactions/{rrn}", get(routes::transaction))
            .route("/transactions/{rrn}/timeline", get(routes::timeline))
            .route("/merchants", get(routes::merchants))
            .route("/merchants/{merchant_id}", get(routes::merchant))
            .route("/holds", get(routes::holds).post(routes::place_hold))
            .route("/holds/{hold_id}", delete(routes::release_hold))
            .route("/terminals", get(back_office::terminals))
            .route("/terminals/{terminal_id}", get(back_office::terminal))
            .route(
                "/terminals/{terminal_id}/status",
                post(onboarding::terminal_status),
            )
            .route(
                "/merchants/{merchant_id}/status",
                post(onboarding::merchant_status),
            )
            .route(
                "/merchants/{merchant_id}/limits",
                post(onboarding::merchant_limits),
            )
            .route(
                "/terminals/{terminal_id}/location",
                post(onboarding::terminal_location),
            )
            .route(
                "/merchants/{merchant_id}/statement",
                get(back_office::statement),
            )
            .route("/settlements", get(back_office::settlements))
            .route("/settlements/{settlement_id}", get(back_office::settlement))
            .route(
                "/settlement-runs",
                get(back_office::settlement_runs).post(back_office::run_settlement),
            )
            .route(
                "/settlement-runs/{business_date}/files/{file}",
                get(back_office::settlement_file),
            )
            .route("/payouts/confirm", post(back_office::confirm_payouts))
            .route(
                "/clearing-files",
                post(back_office::ingest_clearing)
                    .layer(DefaultBodyLimit::max(back_office::MAX_CLEARING_FILE)),
            )
            .route(
                "/recon-runs",
                get(back_office::recon_runs).post(back_office::run_recon),
            )
            .route("/findings", get(back_office::findings))
            .route("/findings/{finding_id}", get(back_office::finding))
            .route(
                "/findings/{finding_id}/assign",
                post(back_office::assign_finding),
            )
            .route(
                "/findings/{finding_id}/resolve",
                post(back_office::resolve_finding),
            )
            .route("/risk/cases", get(back_office::cases))
            .route("/risk/cases/{case_id}", get(back_office::case))
            .route(
                "/risk/cases/{case_id}/assign",
                post(back_office::assign_case),
            )
            .route("/risk/cases/{case_id}/note", post(back_office::note_case))
            .route("/risk/cases/{case_id}/close", post(back_office::close_case))
            .route("/risk/backtests", post(back_office::backtest))
            .route(
                "/risk/rule-sets",
                get(back_office::rule_sets).post(back_office::upload_rules),
            )
            .route("/risk/rule-sets/{version}", get(back_office::rule_set))
            .route(
                "/risk/rule-sets/{version}/status",
                post(back_office::set_rules_status),
            )
            .route("/saf", get(back_office::saf))
            .route("/saf/depth", get(back_office::saf_depth))
            .route("/saf/{saf_id}", get(back_office::saf_entry))
            .route("/saf/{saf_id}/retry", post(back_office::retry_saf))
            .route("/saf/{saf_id}/resolve", post(back_office::resolve_saf))
            .route(
                "/applications",
                get(onboarding::list).post(onboarding::create),
            )
            .route("/applications/{app_id}", get(onboarding::detail))
            .route("/applications/{app_id}/submit", post(onboarding::submit))
            .route(
                "/applications/{app_id}/resubmit",
                post(onboarding::resubmit),
            )
            .route(
                "/applications/{app_id}/withdraw",
                post(onboarding::withdraw),
            )
            .route(
                "/applications/{app_id}/documents",
                get(onboarding::documents)
                    .post(onboarding::upload_document)
                    .layer(DefaultBodyLimit::max(
                        merchants::documents::MAX_DOCUMENT + 1024,
                    )),
            )
            .route("/documents/{sha256}", get(onboarding::document))
            .route(
                "/applications/{app_id}/provision",
                post(onboarding::provision),
            )
            .route("/applications/{app_id}/{step}", post(onboarding::review))
            .route("/rereviews", get(onboarding::rereviews))
            .route(
                "/merchants/{merchant_id}/rereview",
                post(onboarding::rereview),
            )
            .route(
                "/blocklist",
                get(onboarding::blocklist).post(onboarding::block),
            )
            .route(
                "/calendars/{year}",
                get(reference::get_calendar).put(reference::put_calendar),
            )
            .route(
                "/mcc-table",
                get(reference::get_mcc_table).put(reference::put_mcc_table),
            )
            .route("/complaints", get(complaints::list).post(complaints::file))
            .route("/complaints/assign", post(complaints::assign))
            .route("/complaints/report", get(complaints::report))
            .route("/complaints/{complaint_id}", get(complaints::detail))
            .route(
                "/complaints/{complaint_id}/candidates",
                get(complaints::candidates),
            )
            .route(
                "/complaints/{complaint_id}/acknowledge",
                post(complaints::acknowledge),
            )
            .route("/complaints/{complaint_id}/link", post(complaints::link))
            .route(
                "/complaints/{complaint_id}/extend",
                post(complaints::extend),
            )
            .route(
                "/complaints/{complaint_id}/resolve",
                post(complaints::resolve),
            )
            .route(
                "/complaints/{complaint_id}/refund",
                post(complaints::refund),
            )
            .route(
                "/complaints/{complaint_id}/escalate",
                post(complaints::escalate),
            )
            .route("/disputes", get(complaints::disputes))
            .route("/disputes/{dispute_id}", post(complaints::update_dispute))
            .route(
                "/complaint-actions/{action_id}/{decision}",
                post(complaints::decide),
            )
            .route("/audit", get(routes::audit))
            .route(
                "/operators",
                get(routes::operators).post(routes::add_operator),
            )
            .fallback(routes::no_route);
        Router::new()
            .nest("/api/v1", v1)
            .route("/health/live", get(routes::live))
            .route("/health/ready", get(routes::ready))
            .route("/metrics", get(routes::metrics))
            .fallback(routes::no_route)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn_with_state(self.clone(), observe))
            .with_state(self.clone())
    }
}

/// Gives every request an id, counts it by route and status, and logs failures.
#[allow(clippy::disallowed_methods)] // the edge: a request's latency
async fn observe(
    axum::extract::State(api): axum::extract::State<Api>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut b = [0u8; 8];
    OsRng.fill_bytes(&mut b);
    let id = hex::encode(b);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    let route = route.unwrap_or_else(|| "unmatched".into());
    api.inner
        .metrics
        .request(&method, &route, status, started.elapsed().as_secs_f64());
    if status >= 500 {
        tracing::error!(request = %id, %method, route = %route, status, "API request failed");
    } else if status >= 400 {
        tracing::info!(request = %id, %method, route = %route, status, "API request refused");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The method names [`ROUTES`] uses.
pub fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}
