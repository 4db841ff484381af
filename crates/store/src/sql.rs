//! Portable SQL, written once for both backends.
//!
//! Each backend offers one small transaction interface ([`Tx`]: run a statement, run a
//! query, with `$N` parameters); every write and every read of the store is written
//! here over it. Rows map to and from their structs through one declaration each
//! ([`table_row!`]): the column list, the reader and the parameter list cannot drift
//! apart.

use crate::StoreError;
use records::{
    ApplicationDocumentRow, ApplicationEventRow, ApplicationRow, AuditRow, BatchDiffRow,
    BatchSettlementRow, BlockRow, CaptureRow, CaseEntryRow, CaseRow, ComplaintActionRow,
    ComplaintEventRow, ComplaintRow, ComplaintTxnRow, DecisionRow, DisputeRow, DocumentRow,
    EventRow, FindingRow, HoldRow, KeyRow, MerchantReviewRow, MerchantRow, OperatorRow, PayoutRow,
    ReconFileRow, ReconLineRow, ReconRunRow, ReferenceRow, RuleSetRow, SafRow, SessionRow,
    SettlementItemRow, SettlementRow, SettlementRunRow, Stored, TerminalRow, TermsRow, TxnRow,
    Write,
};

/// A value bound to a statement (borrowed from the row being written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// An integer.
    I(i64),
    /// Text.
    T(&'a str),
    /// NULL.
    Null,
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Arg<'a> {
        Arg::T(s)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Arg<'a> {
        Arg::T(s)
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::I(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Arg<'a> {
        v.as_deref().map_or(Arg::Null, Arg::T)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::Null, Arg::I)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::I(i64::from(v))
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An integer.
    I(i64),
    /// Text.
    T(String),
    /// NULL.
    Null,
}

impl Val {
    pub(crate) fn i(&self) -> i64 {
        match self {
            Val::I(v) => *v,
            Val::T(s) => s.parse().unwrap_or(0),
            Val::Null => 0,
        }
    }

    pub(crate) fn t(&self) -> String {
        match self {
            Val::T(s) => s.clone(),
            Val::I(v) => v.to_string(),
            Val::Null => String::new(),
        }
    }

    pub(crate) fn ot(&self) -> Option<String> {
        match self {
            Val::Null => None,
            v => Some(v.t()),
        }
    }

    pub(crate) fn oi(&self) -> Option<i64> {
        match self {
            Val::Null => None,
            v => Some(v.i()),
        }
    }

    pub(crate) fn b(&self) -> bool {
        self.i() != 0
    }
}

/// One open database transaction (statements use `$N` parameters).
pub trait Tx {
    /// Runs a statement; returns the rows changed. A unique-key violation is
    /// [`StoreError::Duplicate`].
    fn exec(&mut self, sql: &str, params: &[Arg<'_>]) -> Result<usize, StoreError>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Arg<'_>]) -> Result<Vec<Vec<Val>>, StoreError>;
    /// Tells the nodes following the change feed, when this transaction commits, that
    /// it holds a change for them ([`crate::FEED_ACTIONS`]): PostgreSQL `NOTIFY`;
    /// SQLite's readers poll instead.
    fn notify_changes(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Stores a document once under its SHA-256 (a second time changes nothing): its
    /// bytes in the data directory beside an SQLite database, in a `bytea` column on
    /// PostgreSQL; the row holds what it is.
    fn put_document(&mut self, d: &DocumentRow) -> Result<(), StoreError>;
    /// A stored document with its bytes.
    fn get_document(&mut self, sha256: &str) -> Result<Option<DocumentRow>, StoreError>;
}

/// Whether `s` is a SHA-256 in lowercase hex (a document's name: nothing else reaches a
/// path or a query).
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The bytes of a document row written before schema 13 (base64 in `data`).
pub(crate) fn legacy_bytes(sha256: &str, data: &str) -> Result<Vec<u8>, StoreError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| StoreError::Invalid(format!("stored document {sha256}: {e}")))
}

/// A struct stored as one table row.
pub(crate) trait TableRow: Sized {
    /// Its columns, in field order.
    const COLUMNS: &'static str;
    /// Reads it from a row of [`Self::COLUMNS`]; a stored name no enum knows is
    /// [`StoreError::Invalid`].
    fn from_row(r: &[Val]) -> Result<Self, StoreError>;
    /// Its fields as statement parameters, in [`Self::COLUMNS`] order.
    fn args(&self) -> Vec<Arg<'_>>;
}

/// Declares a row struct's columns (its fields, in order) and how each is typed:
/// `i` integer, `t` text, `ot` optional text, `oi` optional integer, `b` boolean, `e`
/// an enum stored by name ([`Stored`]).
macro_rules! table_row {
    ($ty:ident { $($field:ident : $kind:ident),* $(,)? }) => {
        impl TableRow for $ty {
            const COLUMNS: &'static str = stringify!($($field),*);
            fn from_row(r: &[Val]) -> Result<$ty, StoreError> {
                let mut it = r.iter();
                let mut next = || it.next().unwrap_or(&Val::Null);
                Ok($ty { $($field: table_row!(@read next(), $kind, $ty, $field),)* })
            }
            fn args(&self) -> Vec<Arg<'_>> {
                vec![$(table_row!(@arg self.$field, $kind)),*]
            }
        }
    };
    (@read $v:expr, e, $ty:ident, $field:ident) => {
        stored($v, concat!(stringify!($ty), ".", stringify!($field)))?
    };
    (@read $v:expr, $kind:ident, $ty:ident, $field:ident) => { $v.$kind() };
    (@arg $e:expr, e) => { Arg::T($e.name()) };
    (@arg $e:expr, i) => { Arg::I($e) };
    (@arg $e:expr, t) => { Arg::T(&$e) };
    (@arg $e:expr, ot) => { Arg::from(&$e) };
    (@arg $e:expr, oi) => { Arg::from($e) };
    (@arg $e:expr, b) => { Arg::from($e) };
}

/// Reads an enum stored by name; `what` names the column for the error.
fn stored<T: Stored>(v: &Val, what: &str) -> Result<T, StoreError> {
    let name = v.t();
    T::parse(&name).ok_or_else(|| StoreError::Invalid(format!("{what} holds '{name}'")))
}

table_row!(OperatorRow {
    name: t,
    role: t,
    password_hash: t,
    merchant_ids: t,
    disabled: b,
    created_at: t,
    updated_at: t,
});
table_row!(SessionRow {
    token_hash: t,
    operator: t,
    kind: t,
    created_at: t,
    expires_at: t,
    ended_at: ot,
});
table_row!(AuditRow {
    seq: i,
    at: t,
    actor: t,
    role: t,
    action: t,
    object: t,
    before: t,
    after: t,
    request_id: t,
    source: t,
});
table_row!(MerchantRow {
    merchant_id: t,
    name: t,
    city: t,
    mcc: t,
    status: t,
    created_at: t,
    merchant_class: t,
    risk_class: t,
});
table_row!(TerminalRow {
    terminal_id: t,
    merchant_id: t,
    status: t,
    tmk: t,
    pik: ot,
    mak: ot,
    mak_prev: ot,
    key_version: i,
    batch: i,
    signed_on: b,
    install_location: t,
    updated_at: t,
    key_profile: t,
    pending_pik: ot,
    pending_mak: ot,
    tdk: ot,
    pending_tdk: ot,
});
table_row!(KeyRow {
    kind: t,
    version: i,
    wrapped: t,
    kcv: t,
    created_at: t,
    created_by: t,
});
table_row!(TxnRow {
    txn_id: i,
    request_key: t,
    terminal_id: t,
    merchant_id: t,
    batch: i,
    stan: i,
    mti: t,
    kind: e,
    amount_minor: i,
    currency: t,
    pan_token: t,
    masked_pan: t,
    rrn: t,
    auth_code: ot,
    response_code: ot,
    state: e,
    original_rrn: ot,
    link_stan: oi,
    reply_hex: ot,
    local_date: t,
    created_at: t,
    updated_at: t,
});
table_row!(EventRow {
    txn_id: i,
    seq: i,
    at: t,
    kind: t,
    detail: t
});
table_row!(SafRow {
    saf_id: i,
    txn_id: i,
    kind: t,
    message_hex: t,
    attempts: i,
    next_at_ms: i,
    state: e,
    reason: t,
    owner: ot,
    created_at: t,
    updated_at: t,
});
table_row!(DecisionRow {
    txn_id: i,
    version: t,
    verdict: t,
    score: i,
    hold: b,
    alert: b,
    policy: ot,
    matched: t,
    shadow: t,
    details: t,
    facts: t,
    at: t,
});
table_row!(CaseRow {
    case_id: i,
    subject: t,
    status: t,
    assignee: ot,
    opened_at: t,
    updated_at: t
});
table_row!(CaseEntryRow {
    case_id: i,
    seq: i,
    at: t,
    kind: t,
    txn_id: oi,
    author: t,
    text: t
});
table_row!(TermsRow {
    merchant_id: t,
    settlement_account: t,
    cycle: t,
    debit_bps: i,
    credit_bps: i,
    debit_cap_minor: i,
    min_fee_minor: i,
    updated_at: t,
    txn_limit_minor: i,
    day_limit_minor: i,
    reserve_bps: i,
    reserve_days: i,
});
table_row!(HoldRow {
    hold_id: t,
    subject: t,
    reason: t,
    placed_by: t,
    placed_at: t,
    released_by: ot,
    released_at: ot,
});
table_row!(CaptureRow {
    txn_id: i,
    how: t,
    business_date: t,
    at: t
});
table_row!(SettlementRunRow {
    business_date: t,
    ran_at: t,
    merchants: i,
    items: i,
    net_minor: i,
    file: t,
});
table_row!(ApplicationRow {
    app_id: i,
    status: t,
    legal_name: t,
    kind: t,
    mcc: t,
    risk_level: t,
    form: t,
    problems: t,
    uscc: t,
    rep_id_token: t,
    account_number: t,
    applicant: t,
    assignee: ot,
    sla_due: ot,
    merchant_id: ot,
    created_at: t,
    updated_at: t,
});
table_row!(ApplicationEventRow {
    app_id: i,
    seq: i,
    at: t,
    action: t,
    actor: t,
    status: t,
    note: t,
});
table_row!(MerchantReviewRow {
    merchant_id: t,
    risk_level: t,
    due_on: t,
    last_on: t,
});
table_row!(ComplaintRow {
    complaint_id: i,
    source: t,
    category: t,
    complainant: t,
    contact: t,
    language: t,
    merchant_id: ot,
    clue: t,
    status: t,
    owner: ot,
    ack_due: t,
    resolve_due: t,
    resolve_days: i,
    acknowledged_at: ot,
    resolved_at: ot,
    outcome: ot,
    answer: ot,
    created_at: t,
    updated_at: t,
});
table_row!(ComplaintTxnRow {
    complaint_id: i,
    txn_id: i,
    linked_by: t,
    linked_at: t,
});
table_row!(ComplaintEventRow {
    complaint_id: i,
    seq: i,
    at: t,
    action: t,
    actor: t,
    note: t,
});
table_row!(DisputeRow {
    dispute_id: i,
    complaint_id: i,
    txn_id: i,
    stage: t,
    status: t,
    evidence: t,
    respond_by: t,
    created_at: t,
    updated_at: t,
});
table_row!(ComplaintActionRow {
    action_id: i,
    complaint_id: i,
    kind: t,
    txn_id: i,
    amount_minor: i,
    reason: t,
    requested_by: t,
    requested_at: t,
    decided_by: ot,
    decided_at: ot,
    status: t,
});
table_row!(ReferenceRow {
    name: t,
    body: t,
    loaded_by: t,
    loaded_at: t,
});
table_row!(BlockRow {
    kind: t,
    value: t,
    reason: t,
    added_by: t,
    added_at: t,
});
table_row!(ApplicationDocumentRow {
    app_id: i,
    doc_type: t,
    sha256: t,
    expires_on: ot,
    uploaded_by: t,
    uploaded_at: t,
});
table_row!(RuleSetRow {
    version: t,
    rules: t,
    status: t,
    uploaded_by: t,
    uploaded_at: t,
    changed_at: t,
});
table_row!(ReconRunRow {
    business_date: t,
    ran_at: t,
    report: t,
});
table_row!(SettlementRow {
    settlement_id: t,
    merchant_id: t,
    business_date: t,
    settlement_account: t,
    gross_minor: i,
    refunds_minor: i,
    fees_minor: i,
    held_minor: i,
    net_minor: i,
    txn_count: i,
    created_at: t,
});
table_row!(SettlementItemRow {
    txn_id: i,
    settlement_id: t,
    fee_minor: i,
    net_minor: i
});
table_row!(PayoutRow {
    settlement_id: t,
    seq: i,
    value_date: t,
    amount_minor: i,
    settlement_account: t,
    status: t,
});
table_row!(BatchSettlementRow {
    terminal_id: t,
    batch: i,
    at: t,
    result: t,
    terminal_totals: t,
    posguard_totals: t,
    uploaded: i,
});
table_row!(BatchDiffRow {
    terminal_id: t,
    batch: i,
    stan: i,
    side: t,
    rrn: ot,
    kind: t,
    amount_minor: i,
    detail: t,
});
table_row!(ReconFileRow {
    file_hash: t,
    file_date: t,
    name: t,
    lines: i,
    bad_lines: i,
    ingested_at: t,
});
table_row!(ReconLineRow {
    file_hash: t,
    line: i,
    file_date: t,
    valid: b,
    problem: t,
    rrn: t,
    auth_code: t,
    stan: t,
    terminal: t,
    merchant: t,
    masked_pan: t,
    amount_minor: i,
    currency: t,
    kind: t,
    at: t,
});
table_row!(FindingRow {
    finding_id: t,
    business_date: t,
    class: t,
    rrn: t,
    txn_id: oi,
    amount_minor: i,
    evidence: t,
    action: t,
    status: t,
    owner: ot,
    deadline: ot,
    notes: t,
    created_at: t,
    updated_at: t,
});

/// Every row of a query over `T`'s columns.
pub(crate) fn all<T: TableRow>(
    tx: &mut dyn Tx,
    sql: &str,
    params: &[Arg<'_>],
) -> Result<Vec<T>, StoreError> {
    tx.query(sql, params)?
        .iter()
        .map(|r| T::from_row(r))
        .collect()
}

/// The first row of a query over `T`'s columns.
pub(crate) fn one<T: TableRow>(
    tx: &mut dyn Tx,
    sql: &str,
    params: &[Arg<'_>],
) -> Result<Option<T>, StoreError> {
    tx.query(sql, params)?
        .first()
        .map(|r| T::from_row(r))
        .transpose()
}

/// `SELECT <T's columns> FROM <rest>`.
pub(crate) fn select<T: TableRow>(rest: &str) -> String {
    format!("SELECT {} FROM {rest}", T::COLUMNS)
}

/// The first column of every row, as integers.
pub(crate) fn ids(
    tx: &mut dyn Tx,
    sql: &str,
    params: &[Arg<'_>],
) -> Result<std::collections::BTreeSet<i64>, StoreError> {
    Ok(tx.query(sql, params)?.iter().map(|r| r[0].i()).collect())
}

// The statements of every write. Column lists follow the row declarations above.

const SQL_MERCHANT: &str = "INSERT INTO merchants (merchant_id, name, city, mcc, status, created_at, \
     merchant_class, risk_class) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (merchant_id) \
     DO UPDATE SET name = excluded.name, city = excluded.city, mcc = excluded.mcc, \
     status = excluded.status, merchant_class = excluded.merchant_class, risk_class = excluded.risk_class";
const SQL_TERMINAL: &str = "INSERT INTO terminals (terminal_id, merchant_id, status, tmk, pik, mak, \
     mak_prev, key_version, batch, signed_on, install_location, updated_at, key_profile, pending_pik, \
     pending_mak, tdk, pending_tdk) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17) \
     ON CONFLICT (terminal_id) DO UPDATE SET \
     merchant_id = excluded.merchant_id, status = excluded.status, tmk = excluded.tmk, pik = excluded.pik, \
     mak = excluded.mak, mak_prev = excluded.mak_prev, key_version = excluded.key_version, \
     batch = excluded.batch, signed_on = excluded.signed_on, \
     install_location = excluded.install_location, updated_at = excluded.updated_at, \
     key_profile = excluded.key_profile, pending_pik = excluded.pending_pik, \
     pending_mak = excluded.pending_mak, tdk = excluded.tdk, pending_tdk = excluded.pending_tdk";
const SQL_KEY: &str = "INSERT INTO security_keys (kind, version, wrapped, kcv, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, version) DO UPDATE SET wrapped = excluded.wrapped";
const SQL_NEW_TXN: &str = "INSERT INTO transactions (txn_id, request_key, terminal_id, merchant_id, \
     batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, \
     state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at) VALUES ($1, $2, $3, $4, \
     $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";
const SQL_UPDATE_TXN: &str = "UPDATE transactions SET auth_code = $2, response_code = $3, \
     state = $4, original_rrn = $5, link_stan = $6, reply_hex = $7, updated_at = $8 WHERE txn_id = $1";
const SQL_TXN_STATE: &str = "UPDATE transactions SET state = $2, updated_at = $3 WHERE txn_id = $1";
const SQL_EVENT: &str =
    "INSERT INTO txn_events (txn_id, seq, at, kind, detail) VALUES ($1, $2, $3, $4, $5)";
const SQL_OPERATOR: &str = "INSERT INTO operators (name, role, password_hash, merchant_ids, disabled, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET \
     role = excluded.role, password_hash = excluded.password_hash, merchant_ids = excluded.merchant_ids, \
     disabled = excluded.disabled, updated_at = excluded.updated_at";
const SQL_SESSION: &str =
    "INSERT INTO sessions (token_hash, operator, kind, created_at, expires_at, \
     ended_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_hash) DO UPDATE SET \
     ended_at = excluded.ended_at";
// The sequence is the next one inside the same database transaction: audit records of
// one store never share a number (a concurrent PostgreSQL writer taking the same one
// fails on the key and its batch is retried).
const SQL_AUDIT: &str = "INSERT INTO audit (seq, at, actor, role, action, object, before, after, \
     request_id, source) SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM audit";
const SQL_SAF: &str = "INSERT INTO saf (saf_id, txn_id, kind, message_hex, attempts, next_at_ms, \
     state, reason, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (saf_id) DO UPDATE SET attempts = excluded.attempts, next_at_ms = excluded.next_at_ms, \
     state = excluded.state, reason = excluded.reason, owner = excluded.owner, updated_at = excluded.updated_at";
const SQL_DECISION: &str = "INSERT INTO risk_decisions (txn_id, version, verdict, score, hold, alert, \
     policy, matched, shadow, details, facts, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const SQL_CASE: &str =
    "INSERT INTO cases (case_id, subject, status, assignee, opened_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO UPDATE SET status = excluded.status, \
     assignee = excluded.assignee, updated_at = excluded.updated_at";
const SQL_CASE_ENTRY: &str =
    "INSERT INTO case_entries (case_id, seq, at, kind, txn_id, author, text) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SQL_TERMS: &str =
    "INSERT INTO merchant_terms (merchant_id, settlement_account, cycle, debit_bps, \
     credit_bps, debit_cap_minor, min_fee_minor, updated_at, txn_limit_minor, day_limit_minor, \
     reserve_bps, reserve_days) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (merchant_id) DO UPDATE SET settlement_account = excluded.settlement_account, \
     cycle = excluded.cycle, debit_bps = excluded.debit_bps, credit_bps = excluded.credit_bps, \
     debit_cap_minor = excluded.debit_cap_minor, min_fee_minor = excluded.min_fee_minor, \
     updated_at = excluded.updated_at, txn_limit_minor = excluded.txn_limit_minor, \
     day_limit_minor = excluded.day_limit_minor, reserve_bps = excluded.reserve_bps, \
     reserve_days = excluded.reserve_days";
const SQL_HOLD: &str =
    "INSERT INTO holds (hold_id, subject, reason, placed_by, placed_at, released_by, \
     released_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hold_id) DO UPDATE SET \
     released_by = excluded.released_by, released_at = excluded.released_at";
const SQL_CAPTURE: &str =
    "INSERT INTO captures (txn_id, how, business_date, at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (txn_id) DO NOTHING";
const SQL_RUN: &str =
    "INSERT INTO settlement_runs (business_date, ran_at, merchants, items, net_minor, file) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const SQL_RECON_RUN: &str =
    "INSERT INTO recon_runs (business_date, ran_at, report) VALUES ($1, $2, $3) \
     ON CONFLICT (business_date, ran_at) DO UPDATE SET report = excluded.report";
const SQL_RULE_SET: &str =
    "INSERT INTO rule_sets (version, rules, status, uploaded_by, uploaded_at, changed_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO UPDATE SET \
     status = excluded.status, changed_at = excluded.changed_at";
const SQL_APPLICATION: &str = "INSERT INTO applications (app_id, status, legal_name, kind, mcc, \
     risk_level, form, problems, uscc, rep_id_token, account_number, applicant, assignee, sla_due, \
     merchant_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17) ON CONFLICT (app_id) DO UPDATE SET status = excluded.status, \
     legal_name = excluded.legal_name, kind = excluded.kind, mcc = excluded.mcc, \
     risk_level = excluded.risk_level, form = excluded.form, problems = excluded.problems, \
     uscc = excluded.uscc, rep_id_token = excluded.rep_id_token, \
     account_number = excluded.account_number, assignee = excluded.assignee, \
     sla_due = excluded.sla_due, merchant_id = excluded.merchant_id, \
     updated_at = excluded.updated_at";
const SQL_APPLICATION_EVENT: &str = "INSERT INTO application_events (app_id, seq, at, action, \
     actor, status, note) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SQL_MERCHANT_REVIEW: &str = "INSERT INTO merchant_reviews (merchant_id, risk_level, \
     due_on, last_on) VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id) DO UPDATE SET \
     risk_level = excluded.risk_level, due_on = excluded.due_on, last_on = excluded.last_on";
const SQL_COMPLAINT: &str = "INSERT INTO complaints (complaint_id, source, category, complainant, \
     contact, language, merchant_id, clue, status, owner, ack_due, resolve_due, resolve_days, \
     acknowledged_at, resolved_at, outcome, answer, created_at, updated_at) VALUES ($1, $2, $3, \
     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT (complaint_id) DO UPDATE SET status = excluded.status, owner = excluded.owner, \
     resolve_due = excluded.resolve_due, resolve_days = excluded.resolve_days, \
     acknowledged_at = excluded.acknowledged_at, resolved_at = excluded.resolved_at, \
     outcome = excluded.outcome, answer = excluded.answer, merchant_id = excluded.merchant_id, \
     updated_at = excluded.updated_at";
const SQL_COMPLAINT_TXN: &str = "INSERT INTO complaint_txns (complaint_id, txn_id, linked_by, \
     linked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (complaint_id, txn_id) DO NOTHING";
const SQL_COMPLAINT_EVENT: &str = "INSERT INTO complaint_events (complaint_id, seq, at, action, \
     actor, note) VALUES ($1, $2, $3, $4, $5, $6)";
const SQL_DISPUTE: &str = "INSERT INTO disputes (dispute_id, complaint_id, txn_id, stage, status, \
     evidence, respond_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (dispute_id) DO UPDATE SET stage = excluded.stage, status = excluded.status, \
     evidence = excluded.evidence, respond_by = excluded.respond_by, updated_at = excluded.updated_at";
const SQL_COMPLAINT_ACTION: &str = "INSERT INTO complaint_actions (action_id, complaint_id, kind, \
     txn_id, amount_minor, reason, requested_by, requested_at, decided_by, decided_at, status) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (action_id) DO UPDATE SET \
     decided_by = excluded.decided_by, decided_at = excluded.decided_at, status = excluded.status";
const SQL_REFERENCE: &str = "INSERT INTO reference_tables (name, body, loaded_by, loaded_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET body = excluded.body, \
     loaded_by = excluded.loaded_by, loaded_at = excluded.loaded_at";
const SQL_BLOCK: &str = "INSERT INTO blocklist (kind, value, reason, added_by, added_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason";
const SQL_APPLICATION_DOCUMENT: &str = "INSERT INTO application_documents (app_id, doc_type, \
     sha256, expires_on, uploaded_by, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (app_id, doc_type, sha256) DO UPDATE SET expires_on = excluded.expires_on";
const SQL_SETTLEMENT: &str = "INSERT INTO settlements (settlement_id, merchant_id, business_date, \
     settlement_account, gross_minor, refunds_minor, fees_minor, held_minor, net_minor, txn_count, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const SQL_ITEM: &str =
    "INSERT INTO settlement_items (txn_id, settlement_id, fee_minor, net_minor) \
     VALUES ($1, $2, $3, $4)";
const SQL_PAYOUT: &str = "INSERT INTO payouts (settlement_id, seq, value_date, amount_minor, \
     settlement_account, status) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (settlement_id, seq) \
     DO UPDATE SET status = excluded.status";
const SQL_BATCH: &str = "INSERT INTO batch_settlements (terminal_id, batch, at, result, terminal_totals, \
     posguard_totals, uploaded) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (terminal_id, batch) \
     DO UPDATE SET at = excluded.at, result = excluded.result, terminal_totals = excluded.terminal_totals, \
     posguard_totals = excluded.posguard_totals, uploaded = excluded.uploaded";
const SQL_DIFF: &str = "INSERT INTO batch_differences (terminal_id, batch, stan, side, rrn, kind, \
     amount_minor, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (terminal_id, batch, stan, side) DO NOTHING";
const SQL_RECON_FILE: &str =
    "INSERT INTO recon_files (file_hash, file_date, name, lines, bad_lines, \
     ingested_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (file_hash) DO NOTHING";
const SQL_RECON_LINE: &str =
    "INSERT INTO recon_lines (file_hash, line, file_date, valid, problem, rrn, \
     auth_code, stan, terminal, merchant, masked_pan, amount_minor, currency, kind, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (file_hash, line) DO NOTHING";
const SQL_FINDING: &str = "INSERT INTO recon_findings (finding_id, business_date, class, rrn, txn_id, \
     amount_minor, evidence, action, status, owner, deadline, notes, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (finding_id) ";

/// Applies one write.
pub(crate) fn write(tx: &mut dyn Tx, w: &Write) -> Result<(), StoreError> {
    let (sql, args) = match w {
        Write::Merchant(r) => (SQL_MERCHANT, r.args()),
        Write::Terminal(r) => (SQL_TERMINAL, r.args()),
        Write::Key(r) => (SQL_KEY, r.args()),
        Write::NewTxn(r) => (SQL_NEW_TXN, r.args()),
        Write::UpdateTxn(t) => (
            SQL_UPDATE_TXN,
            vec![
                Arg::I(t.txn_id),
                Arg::from(&t.auth_code),
                Arg::from(&t.response_code),
                Arg::T(t.state.name()),
                Arg::from(&t.original_rrn),
                Arg::from(t.link_stan),
                Arg::from(&t.reply_hex),
                Arg::T(&t.updated_at),
            ],
        ),
        Write::TxnState {
            txn_id,
            state,
            updated_at,
        } => (
            SQL_TXN_STATE,
            vec![Arg::I(*txn_id), Arg::T(state.name()), Arg::T(updated_at)],
        ),
        Write::Event(r) => (SQL_EVENT, r.args()),
        Write::Saf(r) => (SQL_SAF, r.args()),
        Write::Operator(r) => (SQL_OPERATOR, r.args()),
        Write::Session(r) => (SQL_SESSION, r.args()),
        Write::Audit(r) => {
            if crate::FEED_ACTIONS.contains(&r.action.as_str()) {
                tx.notify_changes()?;
            }
            (SQL_AUDIT, r.args()[1..].to_vec())
        }
        Write::Decision(r) => (SQL_DECISION, r.args()),
        Write::Case(r) => (SQL_CASE, r.args()),
        Write::CaseEntry(r) => (SQL_CASE_ENTRY, r.args()),
        Write::Terms(r) => (SQL_TERMS, r.args()),
        Write::Hold(r) => (SQL_HOLD, r.args()),
        Write::Capture(r) => (SQL_CAPTURE, r.args()),
        Write::SettlementRun(r) => (SQL_RUN, r.args()),
        Write::ReconRun(r) => (SQL_RECON_RUN, r.args()),
        Write::RuleSet(r) => (SQL_RULE_SET, r.args()),
        Write::Application(r) => (SQL_APPLICATION, r.args()),
        Write::ApplicationEvent(r) => (SQL_APPLICATION_EVENT, r.args()),
        Write::Document(r) => return tx.put_document(r),
        Write::Block(r) => (SQL_BLOCK, r.args()),
        Write::MerchantReview(r) => (SQL_MERCHANT_REVIEW, r.args()),
        Write::Reference(r) => (SQL_REFERENCE, r.args()),
        Write::Complaint(r) => (SQL_COMPLAINT, r.args()),
        Write::ComplaintTxn(r) => (SQL_COMPLAINT_TXN, r.args()),
        Write::ComplaintEvent(r) => (SQL_COMPLAINT_EVENT, r.args()),
        Write::ComplaintAction(r) => (SQL_COMPLAINT_ACTION, r.args()),
        Write::Dispute(r) => (SQL_DISPUTE, r.args()),
        Write::ApplicationDocument(r) => (SQL_APPLICATION_DOCUMENT, r.args()),
        Write::Settlement(r) => (SQL_SETTLEMENT, r.args()),
        Write::SettlementItem(r) => (SQL_ITEM, r.args()),
        Write::Payout(r) => (SQL_PAYOUT, r.args()),
        Write::BatchSettlement(r) => (SQL_BATCH, r.args()),
        Write::BatchDiff(r) => (SQL_DIFF, r.args()),
        Write::ReconFile(r) => (SQL_RECON_FILE, r.args()),
        Write::ReconLine(r) => (SQL_RECON_LINE, r.args()),
        Write::Finding(r) => {
            return tx
                .exec(&format!("{SQL_FINDING}DO NOTHING"), &r.args())
                .map(drop)
        }
        Write::FindingUpdate(r) => {
            return tx
                .exec(
                    &format!(
                        "{SQL_FINDING}DO UPDATE SET status = excluded.status, owner = excluded.owner, \
                         deadline = excluded.deadline, action = excluded.action, notes = excluded.notes, \
                         updated_at = excluded.updated_at"
                    ),
                    &r.args(),
                )
                .map(drop)
        }
    };
    tx.exec(sql, &args).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_the_insert_statements() {
        // The insert statements name their columns by hand; they must be the row's.
        for (sql, cols) in [
            (SQL_MERCHANT, MerchantRow::COLUMNS),
            (SQL_TERMINAL, TerminalRow::COLUMNS),
            (SQL_KEY, KeyRow::COLUMNS),
            (SQL_NEW_TXN, TxnRow::COLUMNS),
            (SQL_EVENT, EventRow::COLUMNS),
            (SQL_SAF, SafRow::COLUMNS),
            (SQL_OPERATOR, OperatorRow::COLUMNS),
            (SQL_SESSION, SessionRow::COLUMNS),
            (SQL_AUDIT, AuditRow::COLUMNS),
            (SQL_DECISION, DecisionRow::COLUMNS),
            (SQL_CASE, CaseRow::COLUMNS),
            (SQL_CASE_ENTRY, CaseEntryRow::COLUMNS),
            (SQL_TERMS, TermsRow::COLUMNS),
            (SQL_HOLD, HoldRow::COLUMNS),
            (SQL_CAPTURE, CaptureRow::COLUMNS),
            (SQL_RUN, SettlementRunRow::COLUMNS),
            (SQL_RECON_RUN, ReconRunRow::COLUMNS),
            (SQL_RULE_SET, RuleSetRow::COLUMNS),
            (SQL_APPLICATION, ApplicationRow::COLUMNS),
            (SQL_APPLICATION_EVENT, ApplicationEventRow::COLUMNS),
            (SQL_BLOCK, BlockRow::COLUMNS),
            (SQL_MERCHANT_REVIEW, MerchantReviewRow::COLUMNS),
            (SQL_REFERENCE, ReferenceRow::COLUMNS),
            (SQL_COMPLAINT, ComplaintRow::COLUMNS),
            (SQL_COMPLAINT_TXN, ComplaintTxnRow::COLUMNS),
            (SQL_COMPLAINT_EVENT, ComplaintEventRow::COLUMNS),
            (SQL_COMPLAINT_ACTION, ComplaintActionRow::COLUMNS),
            (SQL_DISPUTE, DisputeRow::COLUMNS),
            (SQL_APPLICATION_DOCUMENT, ApplicationDocumentRow::COLUMNS),
            (SQL_SETTLEMENT, SettlementRow::COLUMNS),
            (SQL_ITEM, SettlementItemRow::COLUMNS),
            (SQL_PAYOUT, PayoutRow::COLUMNS),
            (SQL_BATCH, BatchSettlementRow::COLUMNS),
            (SQL_DIFF, BatchDiffRow::COLUMNS),
            (SQL_RECON_FILE, ReconFileRow::COLUMNS),
            (SQL_RECON_LINE, ReconLineRow::COLUMNS),
            (SQL_FINDING, FindingRow::COLUMNS),
        ] {
            let named = sql
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(c, _)| c.split(',').map(str::trim).collect::<Vec<_>>())
                .unwrap_or_default();
            let declared: Vec<&str> = cols.split(',').map(str::trim).collect();
            assert_eq!(named, declared, "{sql}");
        }
    }
}
