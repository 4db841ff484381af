//! Who may do what: operator accounts with argon2id password hashes, login sessions and
//! API keys known only by the hash of their token, roles, and the audit trail every
//! change leaves in the same database transaction as the change itself.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use store::{AuditRow, Backend, OperatorRow, SessionRow, Write};

use crate::{Context, Result, ServiceError};

/// What an operator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Accounts, roles and everything operations can do.
    Admin,
    /// Day-to-day running: transactions, holds, the queue, exceptions.
    Operations,
    /// Risk rules, back-tests, cases and alerts.
    RiskAnalyst,
    /// Settlement, payouts, holds, reconciliation.
    Finance,
    /// Answers cardholders and merchants: reads transactions and their money.
    Support,
    /// Reads everything, changes nothing, reads the audit trail.
    Auditor,
    /// A merchant: sees only its own merchant ids.
    Merchant,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Operations,
        Role::RiskAnalyst,
        Role::Finance,
        Role::Support,
        Role::Auditor,
        Role::Merchant,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operations => "operations",
            Role::RiskAnalyst => "risk_analyst",
            Role::Finance => "finance",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Merchant => "merchant",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who is making a change, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The operator's name, or `os:<user>` on the command line.
    pub name: String,
    /// The role (`cli` on the command line).
    pub role: String,
    /// The API request's id, or `pid:<n>` on the command line.
    pub request_id: String,
    /// The client's address, or `cli`.
    pub source: String,
}

impl Actor {
    /// The command line's actor: the OS user running it.
    pub fn cli(os_user: &str, pid: u32) -> Actor {
        Actor {
            name: format!("os:{os_user}"),
            role: "cli".into(),
            request_id: format!("pid:{pid}"),
            source: "cli".into(),
        }
    }

    /// The audit record of `action` on `object`, before and after as JSON.
    pub fn audit(
        &self,
        at: &str,
        action: &str,
        object: &str,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> Write {
        Write::Audit(AuditRow {
            seq: 0,
            at: at.into(),
            actor: self.name.clone(),
            role: self.role.clone(),
            action: action.into(),
            object: object.into(),
            before: before.to_string(),
            after: after.to_string(),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
        })
    }
}

/// An operator as the API shows it (never the password hash).
pub fn operator_json(o: &OperatorRow) -> serde_json::Value {
    serde_json::json!({
        "name": o.name,
        "role": o.role,
        "merchant_ids": merchant_ids(o),
        "disabled": o.disabled,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    })
}

/// The merchant ids a merchant account sees.
pub fn merchant_ids(o: &OperatorRow) -> Vec<String> {
    o.merchant_ids
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD: usize = 12;
/// Longer ones too (argon2 works on any length; a bound keeps a request cheap).
pub const MAX_PASSWORD: usize = 256;

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadInput(
            "an operator name is 1-64 letters, digits, '.', '_', '-' or '@'".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ServiceError::BadInput(format!(
            "a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )))
    }
}

/// argon2id with the crate's default parameters (19 MiB, 2 passes), a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Invalid(format!("hash password: {e}")))
}

/// Whether `password` is the one `hash` was made from (constant time in the hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Creates an operator.
pub fn add_operator(
    db: &mut dyn Backend,
    name: &str,
    role: Role,
    password: &str,
    merchant_ids: &[String],
    actor: &Actor,
    at: &str,
) -> Result<OperatorRow> {
    check_name(name)?;
    check_password(password)?;
    if role == Role::Merchant && merchant_ids.is_empty() {
        return Err(ServiceError::BadInput(
            "a merchant account names the merchant ids it sees".into(),
        ));
    }
    if role != Role::Merchant && !merchant_ids.is_empty() {
        return Err(ServiceError::BadInput(
            "only merchant accounts are limited to merchant ids".into(),
        ));
    }
    for m in merchant_ids {
        if db.merchant(m).ctx("read merchant")?.is_none() {
            return Err(ServiceError::BadInput(format!("no merchant {m}")));
        }
    }
    if db.operator(name).ctx("read operator")?.is_some() {
        return Err(ServiceError::Conflict(format!("operator {name} exists")));
    }
    let row = OperatorRow {
        name: name.into(),
        role: role.name().into(),
        password_hash: hash_password(password)?,
        merchant_ids: merchant_ids.join(","),
        disabled: false,
        created_at: at.into(),
        updated_at: at.into(),
    };
    db.apply(&[
        Write::Operator(row.clone()),
        actor.audit(
            at,
            "operator.add",
            &format!("operator:{name}"),
            serde_json::Value::Null,
            operator_json(&row),
        ),
    ])
    .ctx("write operator")?;
    Ok(row)
}

fn find(db: &mut dyn Backend, name: &str) -> Result<OperatorRow> {
    db.operator(name)
        .ctx("read operator")?
        .ok_or_else(|| ServiceError::NotFound(format!("no operator {name}")))
}

/// Disables an operator: it cannot log in, and its sessions and keys stop working.
pub fn disable_operator(db: &mut dyn Backend, name: &str, actor: &Actor, at: &str) -> Result<()> {
    let before = find(db, name)?;
    let after = OperatorRow {
        disabled: true,
        updated_at: at.into(),
        ..before.clone()
    };
    db.apply(&[
        Write::Operator(after.clone()),
        actor.audit(
            at,
            "operator.disable",
            &format!("operator:{name}"),
            operator_json(&before),
            operator_json(&after),
        ),
    ])
    .ctx("write operator")
}

/// Sets an operator's password.
pub fn set_password(
    db: &mut dyn Backend,
    name: &str,
    password: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    check_password(password)?;
    let before = find(db, name)?;
    let after = OperatorRow {
        password_hash: hash_password(password)?,
        updated_at: at.into(),
        ..before.clone()
    };
    // The audit record says the password changed, never what to.
    let mut shown = operator_json(&after);
    shown["password"] = "changed".into();
    db.apply(&[
        Write::Operator(after),
        actor.audit(
            at,
            "operator.passwd",
            &format!("operator:{name}"),
            operator_json(&before),
            shown,
        ),
    ])
    .ctx("write operator")
}

/// A session's life.
pub const SESSION_HOURS: i64 = 8;

/// SHA-256 of a token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of a console session: derived from the session's token (SHA-256 of
/// a label and the token), so the server checks it without storing it, and a page
/// that cannot read the HttpOnly cookie learns it only from same-origin responses.
pub fn csrf_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"posguard-csrf:");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// A new session: the clear token (shown once) and its row.
pub struct NewSession {
    /// The bearer token; the store keeps only its hash.
    pub token: String,
    /// The stored row.
    pub row: SessionRow,
    /// Whose.
    pub operator: OperatorRow,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"[redacted]")
            .field("operator", &self.operator.name)
            .field("expires_at", &self.row.expires_at)
            .finish()
    }
}

/// Logs in: checks the password and starts a session (audited). A wrong name and a
/// wrong password are the same answer.
pub fn login(
    db: &mut dyn Backend,
    name: &str,
    password: &str,
    source: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<NewSession> {
    let denied = || ServiceError::BadInput("wrong name or password".into());
    let Some(op) = db.operator(name).ctx("read operator")? else {
        // Spend the same time as a real check, so a name's existence does not show.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy =
            DUMMY.get_or_init(|| hash_password("posguard-no-such-operator").unwrap_or_default());
        let _ = verify_password(dummy, password);
        return Err(denied());
    };
    if op.disabled || !verify_password(&op.password_hash, password) {
        return Err(denied());
    }
    start_session(
        db,
        op,
        "session",
        Duration::hours(SESSION_HOURS),
        source,
        request_id,
        now,
    )
}

/// An API key for a system: like a session, for `days`, shown once (audited).
pub fn create_api_key(
    db: &mut dyn Backend,
    name: &str,
    days: i64,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<NewSession> {
    if !(1..=366).contains(&days) {
        return Err(ServiceError::BadInput(
            "an API key lives 1 to 366 days".into(),
        ));
    }
    let op = find(db, name)?;
    if op.disabled {
        return Err(ServiceError::BadInput(format!(
            "operator {name} is disabled"
        )));
    }
    let token = new_token("pgk_");
    let row = SessionRow {
        token_hash: token_hash(&token),
        operator: op.name.clone(),
        kind: "api_key".into(),
        created_at: now.to_rfc3339(),
        expires_at: (now + Duration::days(days)).to_rfc3339(),
        ended_at: None,
    };
    let at = now.to_rfc3339();
    db.apply(&[
        Write::Session(row.clone()),
        actor.audit(
            &at,
            "api_key.create",
            &format!("operator:{name}"),
            serde_json::Value::Null,
            serde_json::json!({"operator": name, "expires_at": row.expires_at, "key": &row.token_hash[..12]}),
        ),
    ])
    .ctx("write api key")?;
    Ok(NewSession {
        token,
        row,
        operator: op,
    })
}

fn start_session(
    db: &mut dyn Backend,
    op: OperatorRow,
    kind: &str,
    life: Duration,
    source: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<NewSession> {
    let token = new_token("pgs_");
    let row = SessionRow {
        token_hash: token_hash(&token),
        operator: op.name.clone(),
        kind: kind.into(),
        created_at: now.to_rfc3339(),
        expires_at: (now + life).to_rfc3339(),
        ended_at: None,
    };
    let actor = Actor {
        name: op.name.clone(),
        role: op.role.clone(),
        request_id: request_id.into(),
        source: source.into(),
    };
    let at = now.to_rfc3339();
    db.apply(&[
        Write::Session(row.clone()),
        actor.audit(
            &at,
            "session.login",
            &format!("operator:{}", op.name),
            serde_json::Value::Null,
            serde_json::json!({"session": &row.token_hash[..12], "expires_at": row.expires_at}),
        ),
    ])
    .ctx("write session")?;
    Ok(NewSession {
        token,
        row,
        operator: op,
    })
}

/// The operator a bearer token belongs to, if the token is live and its operator
/// enabled.
pub fn authenticate(
    db: &mut dyn Backend,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(OperatorRow, SessionRow)>> {
    if token.len() > 128 {
        return Ok(None);
    }
    let Some(s) = db.session(&token_hash(token)).ctx("read session")? else {
        return Ok(None);
    };
    let live =
        s.ended_at.is_none() && DateTime::parse_from_rfc3339(&s.expires_at).is_ok_and(|e| e > now);
    if !live {
        return Ok(None);
    }
    match db.operator(&s.operator).ctx("read operator")? {
        Some(op) if !op.disabled => Ok(Some((op, s))),
        _ => Ok(None),
    }
}

/// Ends a session (logout; audited).
pub fn logout(db: &mut dyn Backend, session: &SessionRow, actor: &Actor, at: &str) -> Result<()> {
    let ended = SessionRow {
        ended_at: Some(at.into()),
        ..session.clone()
    };
    db.apply(&[
        Write::Session(ended),
        actor.audit(
            at,
            "session.logout",
            &format!("operator:{}", session.operator),
            serde_json::json!({"session": &session.token_hash[..12]}),
            serde_json::Value::Null,
        ),
    ])
    .ctx("write session")
}
