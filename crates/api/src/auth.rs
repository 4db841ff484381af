//! Who is asking and what their role may do. Permissions are data: every route names
//! the one it needs ([`crate::ROUTES`]), and [`GRANTS`] says which role has which.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use services::accounts::{self, Role};
use store::{OperatorRow, SessionRow};

use crate::error::ApiError;
use crate::Api;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Any logged-in operator (own session, own account).
    LoggedIn,
    /// Read transactions, their money and timelines.
    TxnRead,
    /// Read merchants and their statements.
    MerchantRead,
    /// Read terminals (never their keys).
    TerminalRead,
    /// Change a merchant's or a terminal's status (suspend, close, disable).
    MerchantWrite,
    /// Provision an approved application: merchant, terms, terminals and their keys.
    MerchantProvision,
    /// Read settlement holds.
    HoldRead,
    /// Place and release settlement holds.
    HoldWrite,
    /// Read merchant settlements and their payouts (a merchant: its own).
    SettlementRead,
    /// Read settlement runs and their files (the whole acquirer's).
    SettlementRunRead,
    /// Run settlement and confirm payouts paid.
    SettlementRun,
    /// Read reconciliation runs and findings.
    ReconRead,
    /// Ingest clearing files and run reconciliation.
    ReconRun,
    /// Assign and resolve reconciliation exceptions.
    ExceptionWrite,
    /// Read risk cases.
    RiskRead,
    /// Assign, annotate and close risk cases.
    CaseWrite,
    /// Back-test a candidate rule set.
    Backtest,
    /// Upload rule-set versions and put them in force.
    RulesWrite,
    /// Read the store-and-forward queue.
    SafRead,
    /// Send a queue entry again, or resolve it by hand.
    SafWrite,
    /// Read merchant applications.
    ApplicationRead,
    /// Enter, submit, correct and withdraw merchant applications.
    ApplicationApply,
    /// Review merchant applications: assign, ask for information, override a check,
    /// approve, reject.
    ApplicationReview,
    /// Read the onboarding blocklist.
    BlocklistRead,
    /// Add to the onboarding blocklist.
    BlocklistWrite,
    /// Read the audit trail.
    AuditRead,
    /// Read operator accounts.
    OperatorRead,
    /// Create operator accounts.
    OperatorWrite,
    /// Load the reference tables: working-day calendar years, the MCC table.
    ReferenceWrite,
    /// Read complaints, their candidates and diagnoses (a merchant: its own).
    ComplaintRead,
    /// File a complaint (a merchant: its own, about its money).
    ComplaintFile,
    /// Read every complaint's report and the disputes (staff).
    ComplaintReport,
    /// File, acknowledge, assign, link, extend, resolve complaints and ask for refunds.
    ComplaintWrite,
    /// Approve or refuse a complaint's refund above the threshold (never one's own),
    /// extend a deadline beyond its first extension.
    ComplaintApprove,
}

use Permission::*;

/// Which role has which permission. Operations run the switch and the queue and work
/// exceptions; risk analysts work cases, rules and holds; finance settles, pays and
/// reconciles; support reads what it needs to answer a customer; auditors read
/// everything and change nothing; a merchant reads its own transactions, terminals,
/// settlements and statements.
pub const GRANTS: &[(Role, &[Permission])] = &[
    (
        Role::Admin,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            HoldWrite,
            SettlementRead,
            SettlementRunRead,
            SettlementRun,
            ReconRead,
            ReconRun,
            ExceptionWrite,
            RiskRead,
            CaseWrite,
            Backtest,
            RulesWrite,
            SafRead,
            SafWrite,
            AuditRead,
            OperatorRead,
            OperatorWrite,
            ApplicationRead,
            ApplicationApply,
            ApplicationReview,
            MerchantWrite,
            BlocklistRead,
            BlocklistWrite,
            MerchantProvision,
            ReferenceWrite,
            ComplaintRead,
            ComplaintWrite,
            ComplaintApprove,
            ComplaintFile,
            ComplaintReport,
        ],
    ),
    (
        Role::Operations,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            HoldWrite,
            SettlementRead,
            SettlementRunRead,
            ReconRead,
            ExceptionWrite,
            RiskRead,
            SafRead,
            SafWrite,
            ApplicationRead,
            ApplicationApply,
            MerchantWrite,
            MerchantProvision,
            ComplaintRead,
            ComplaintWrite,
            ComplaintApprove,
            ComplaintFile,
            ComplaintReport,
        ],
    ),
    (
        Role::RiskAnalyst,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            HoldWrite,
            SettlementRead,
            ReconRead,
            RiskRead,
            CaseWrite,
            Backtest,
            RulesWrite,
            ApplicationRead,
            ApplicationReview,
            MerchantWrite,
            BlocklistRead,
        ],
    ),
    (
        Role::Finance,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            HoldWrite,
            SettlementRead,
            SettlementRunRead,
            SettlementRun,
            ReconRead,
            ReconRun,
            ExceptionWrite,
            SafRead,
            ComplaintRead,
            ComplaintApprove,
            ComplaintReport,
        ],
    ),
    (
        Role::Support,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            SettlementRead,
            ReconRead,
            RiskRead,
            SafRead,
            ApplicationRead,
            ComplaintRead,
            ComplaintWrite,
            ComplaintFile,
            ComplaintReport,
        ],
    ),
    (
        Role::Auditor,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            HoldRead,
            SettlementRead,
            SettlementRunRead,
            ReconRead,
            RiskRead,
            SafRead,
            AuditRead,
            OperatorRead,
            ApplicationRead,
            BlocklistRead,
            ComplaintRead,
            ComplaintReport,
        ],
    ),
    (
        Role::Merchant,
        &[
            LoggedIn,
            TxnRead,
            MerchantRead,
            TerminalRead,
            SettlementRead,
            ComplaintRead,
            ComplaintFile,
        ],
    ),
];

/// Whether `role` has `p`.
pub fn allowed(role: Role, p: Permission) -> bool {
    GRANTS.iter().any(|(r, ps)| *r == role && ps.contains(&p))
}

/// The operator behind a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account.
    pub operator: OperatorRow,
    /// Its role.
    pub role: Role,
    /// The session or API key used.
    pub session: SessionRow,
    /// The request's id.
    pub request_id: String,
    /// The client's address.
    pub source: String,
    /// The console's CSRF token when the request came with the session cookie.
    pub csrf: Option<String>,
    /// A merchant account's merchant ids, read once from the account; `None` for staff.
    scope: Option<Vec<String>>,
}

impl Principal {
    /// Whether the role has `p`.
    pub fn may(&self, p: Permission) -> bool {
        allowed(self.role, p)
    }

    /// Refuses the request unless the role has `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if allowed(self.role, p) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// For a merchant account, the merchant ids it sees; `None` for staff (all).
    pub fn merchant_scope(&self) -> Option<&[String]> {
        self.scope.as_deref()
    }

    /// Whether the principal may see `merchant_id`'s objects.
    pub fn sees_merchant(&self, merchant_id: &str) -> bool {
        self.merchant_scope()
            .is_none_or(|ids| ids.iter().any(|m| m == merchant_id))
    }

    /// The audit actor.
    pub fn actor(&self) -> accounts::Actor {
        accounts::Actor {
            name: self.operator.name.clone(),
            role: self.role.name().into(),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
        }
    }
}

/// The console's session cookie's name.
pub const SESSION_COOKIE: &str = "posguard_session";

/// The session token in the request's `Cookie` header, if any.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// The request's id (set by the request-id layer) and client address.
pub(crate) fn request_meta(parts: &Parts) -> (String, String) {
    let id = parts
        .extensions
        .get::<crate::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    (id, source)
}

impl FromRequestParts<Api> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Principal, ApiError> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        // The console's session cookie, when no bearer token is given; a change made
        // with it must carry the session's CSRF token in `x-csrf-token`.
        let (token, csrf) = match bearer {
            Some(t) => (t, None),
            None => {
                let t = session_cookie(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
                let csrf = accounts::csrf_token(&t);
                let unsafe_method = !matches!(
                    parts.method,
                    axum::http::Method::GET
                        | axum::http::Method::HEAD
                        | axum::http::Method::OPTIONS
                );
                let sent = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok());
                if unsafe_method && sent != Some(csrf.as_str()) {
                    tracing::warn!(method = %parts.method, "cookie request without its CSRF token refused");
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "csrf",
                        "a change made with the console's session needs its x-csrf-token header",
                    ));
                }
                (t, Some(csrf))
            }
        };
        let (request_id, source) = request_meta(parts);
        let now = api.now();
        let found = api
            .db(move |db| Ok(accounts::authenticate(db, &token, now)?))
            .await?;
        let Some((operator, session)) = found else {
            return Err(ApiError::unauthenticated());
        };
        let Some(role) = Role::parse(&operator.role) else {
            tracing::error!(operator = %operator.name, role = %operator.role, "operator with an unknown role refused");
            return Err(ApiError::unauthenticated());
        };
        let scope = (role == Role::Merchant).then(|| accounts::merchant_ids(&operator));
        Ok(Principal {
            operator,
            role,
            session,
            request_id,
            source,
            csrf,
            scope,
        })
    }
}

/// Failed logins remembered per account and per address: more than
/// [`Throttle::MAX_FAILURES`] within [`Throttle::WINDOW_SECS`] and further attempts are
/// refused (429) until the window passes. Bounded: at most [`Throttle::MAX_KEYS`] keys.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: BTreeMap<String, VecDeque<i64>>,
}

impl Throttle {
    /// Failures allowed in a window.
    pub const MAX_FAILURES: usize = 5;
    /// The window.
    pub const WINDOW_SECS: i64 = 900;
    /// Keys remembered at most (the oldest are forgotten first).
    pub const MAX_KEYS: usize = 100_000;

    fn keys(name: &str, ip: &str) -> [String; 2] {
        [format!("user:{name}"), format!("ip:{ip}")]
    }

    /// Seconds to wait before another attempt, if the account or address is throttled.
    pub fn blocked(&mut self, name: &str, ip: &str, now: i64) -> Option<i64> {
        let mut wait = None;
        for k in Throttle::keys(name, ip) {
            if let Some(q) = self.failures.get_mut(&k) {
                while q.front().is_some_and(|&t| t <= now - Throttle::WINDOW_SECS) {
                    q.pop_front();
                }
                if q.len() >= Throttle::MAX_FAILURES {
                    let until = q.front().copied().unwrap_or(now) + Throttle::WINDOW_SECS;
                    wait = Some(wait.unwrap_or(0).max(until - now));
                }
            }
        }
        wait
    }

    /// Records a failed login.
    pub fn failed(&mut self, name: &str, ip: &str, now: i64) {
        if self.failures.len() >= Throttle::MAX_KEYS {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, q)| q.back().copied().unwrap_or(i64::MIN))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.failures.remove(&k);
            }
        }
        for k in Throttle::keys(name, ip) {
            let q = self.failures.entry(k).or_default();
            q.push_back(now);
            while q.len() > Throttle::MAX_FAILURES {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&mut self, name: &str) {
        self.failures.remove(&format!("user:{name}"));
    }
}

/// An address as text for throttling (IPv6 addresses by their /64).
pub fn throttle_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_the_account_and_the_address_for_the_window() {
        let mut t = Throttle::default();
        for i in 0..5 {
            assert_eq!(t.blocked("alice", "10.0.0.1", 100 + i), None);
            t.failed("alice", "10.0.0.1", 100 + i);
        }
        assert_eq!(t.blocked("alice", "10.0.0.9", 110), Some(900 - 10));
        assert_eq!(t.blocked("bob", "10.0.0.1", 110), Some(900 - 10));
        assert_eq!(t.blocked("bob", "10.0.0.9", 110), None);
        assert_eq!(t.blocked("alice", "10.0.0.9", 100 + 900), None);
        t.succeeded("alice");
        assert_eq!(t.blocked("alice", "10.0.0.9", 110), None);
    }

    #[test]
    fn every_role_is_granted_something_and_only_admin_manages_operators() {
        for r in Role::ALL {
            assert!(allowed(r, LoggedIn), "{r}");
            assert_eq!(allowed(r, OperatorWrite), r == Role::Admin, "{r}");
        }
        assert!(!allowed(Role::Auditor, HoldWrite));
        assert!(!allowed(Role::Merchant, AuditRead));
    }
}
