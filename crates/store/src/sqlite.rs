//! The embedded backend: SQLite in WAL mode, `synchronous = FULL`.

use std::path::Path;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use crate::rows::{
    CaseEntryRow, CaseRow, DecisionRow, EventRow, MerchantRow, SafRow, TerminalRow, TxnRow, Write,
};
use crate::{Backend, StoreError, Tx, Val, MIGRATIONS};

/// SQLite in a data directory (`posguard.db`).
pub struct SqliteBackend {
    conn: Connection,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteBackend")
    }
}

pub(crate) const TXN_COLUMNS: &str =
    "txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, \
     amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, \
     original_rrn, link_stan, reply_hex, local_date, created_at, updated_at";

pub(crate) const TERMINAL_COLUMNS: &str =
    "terminal_id, merchant_id, status, tmk, pik, mak, mak_prev, \
     key_version, batch, signed_on, install_location, updated_at";

pub(crate) const SQL_MERCHANT: &str =
    "INSERT INTO merchants (merchant_id, name, city, mcc, status, created_at, merchant_class, risk_class) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (merchant_id) DO UPDATE SET name = excluded.name, \
     city = excluded.city, mcc = excluded.mcc, status = excluded.status, \
     merchant_class = excluded.merchant_class, risk_class = excluded.risk_class";

pub(crate) const MERCHANT_COLUMNS: &str =
    "merchant_id, name, city, mcc, status, created_at, merchant_class, risk_class";

pub(crate) const SQL_DECISION: &str =
    "INSERT INTO risk_decisions (txn_id, version, verdict, score, hold, alert, \
     policy, matched, shadow, details, at, facts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) const DECISION_COLUMNS: &str =
    "txn_id, version, verdict, score, hold, alert, policy, matched, shadow, details, at, facts";

pub(crate) const SQL_CASE: &str =
    "INSERT INTO cases (case_id, subject, status, assignee, opened_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO UPDATE SET status = excluded.status, \
     assignee = excluded.assignee, updated_at = excluded.updated_at";

pub(crate) const SQL_CASE_ENTRY: &str =
    "INSERT INTO case_entries (case_id, seq, at, kind, txn_id, author, text) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const SQL_TERMINAL: &str = "INSERT INTO terminals (terminal_id, merchant_id, status, tmk, pik, mak, \
     mak_prev, key_version, batch, signed_on, install_location, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (terminal_id) DO UPDATE SET \
     merchant_id = excluded.merchant_id, status = excluded.status, tmk = excluded.tmk, pik = excluded.pik, \
     mak = excluded.mak, mak_prev = excluded.mak_prev, key_version = excluded.key_version, \
     batch = excluded.batch, signed_on = excluded.signed_on, \
     install_location = excluded.install_location, updated_at = excluded.updated_at";

pub(crate) const SQL_NEW_TXN: &str = "INSERT INTO transactions (txn_id, request_key, terminal_id, merchant_id, \
     batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, \
     state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at) VALUES ($1, $2, $3, $4, \
     $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

pub(crate) const SQL_UPDATE_TXN: &str = "UPDATE transactions SET auth_code = $2, response_code = $3, \
     state = $4, original_rrn = $5, link_stan = $6, reply_hex = $7, updated_at = $8 WHERE txn_id = $1";

pub(crate) const SQL_EVENT: &str =
    "INSERT INTO txn_events (txn_id, seq, at, kind, detail) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const SQL_TXN_STATE: &str =
    "UPDATE transactions SET state = $2, updated_at = $3 WHERE txn_id = $1";

pub(crate) const SAF_COLUMNS: &str = "saf_id, txn_id, kind, message_hex, attempts, next_at_ms, state, reason, owner, created_at, updated_at";

pub(crate) const SQL_SAF: &str = "INSERT INTO saf (saf_id, txn_id, kind, message_hex, attempts, next_at_ms, \
     state, reason, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (saf_id) DO UPDATE SET attempts = excluded.attempts, next_at_ms = excluded.next_at_ms, \
     state = excluded.state, reason = excluded.reason, owner = excluded.owner, updated_at = excluded.updated_at";

/// SQLite numbers parameters `?N`; the shared statements use `$N`.
fn q(sql: &str) -> String {
    sql.replace('$', "?")
}

impl SqliteBackend {
    /// Opens (creating if needed) `posguard.db` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<SqliteBackend, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            what: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let conn = Connection::open(dir.join("posguard.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteBackend { conn })
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::I(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Val::T(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Duplicate(e.to_string())
    } else {
        e.into()
    }
}

impl Tx for rusqlite::Transaction<'_> {
    fn exec(&mut self, sql: &str, p: &[Val]) -> Result<usize, StoreError> {
        self.prepare_cached(&q(sql))?
            .execute(rusqlite::params_from_iter(p.iter()))
            .map_err(sqlite_err)
    }

    fn query(&mut self, sql: &str, p: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut st = self.prepare_cached(&q(sql))?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Integer(v) => Val::I(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Val::T(String::from_utf8_lossy(t).into_owned())
                    }
                    ValueRef::Real(f) => Val::I(f as i64),
                    ValueRef::Null => Val::Null,
                });
            }
            out.push(row);
        }
        Ok(out)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

fn decision_from(r: &Row<'_>) -> rusqlite::Result<DecisionRow> {
    Ok(DecisionRow {
        txn_id: r.get(0)?,
        version: r.get(1)?,
        verdict: r.get(2)?,
        score: r.get(3)?,
        hold: r.get::<_, i64>(4)? != 0,
        alert: r.get::<_, i64>(5)? != 0,
        policy: r.get(6)?,
        matched: r.get(7)?,
        shadow: r.get(8)?,
        details: r.get(9)?,
        at: r.get(10)?,
        facts: r.get(11)?,
    })
}

fn saf_from(r: &Row<'_>) -> rusqlite::Result<SafRow> {
    Ok(SafRow {
        saf_id: r.get(0)?,
        txn_id: r.get(1)?,
        kind: r.get(2)?,
        message_hex: r.get(3)?,
        attempts: r.get(4)?,
        next_at_ms: r.get(5)?,
        state: r.get(6)?,
        reason: r.get(7)?,
        owner: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn txn_from(r: &Row<'_>) -> rusqlite::Result<TxnRow> {
    Ok(TxnRow {
        txn_id: r.get(0)?,
        request_key: r.get(1)?,
        terminal_id: r.get(2)?,
        merchant_id: r.get(3)?,
        batch: r.get(4)?,
        stan: r.get(5)?,
        mti: r.get(6)?,
        kind: r.get(7)?,
        amount_minor: r.get(8)?,
        currency: r.get(9)?,
        pan_token: r.get(10)?,
        masked_pan: r.get(11)?,
        rrn: r.get(12)?,
        auth_code: r.get(13)?,
        response_code: r.get(14)?,
        state: r.get(15)?,
        original_rrn: r.get(16)?,
        link_stan: r.get(17)?,
        reply_hex: r.get(18)?,
        local_date: r.get(19)?,
        created_at: r.get(20)?,
        updated_at: r.get(21)?,
    })
}

impl Backend for SqliteBackend {
    fn migrate(&mut self) -> Result<u32, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let have: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))",
                params![i as i64 + 1],
            )?;
        }
        tx.commit()?;
        Ok(MIGRATIONS.len() as u32)
    }

    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let mut tx = self.conn.transaction()?;
        for w in writes {
            if crate::money::is_money(w) {
                crate::money::write(&mut tx, w)?;
                continue;
            }
            let r = match w {
                Write::Merchant(m) => tx.prepare_cached(&q(SQL_MERCHANT))?.execute(params![
                    m.merchant_id,
                    m.name,
                    m.city,
                    m.mcc,
                    m.status,
                    m.created_at,
                    m.merchant_class,
                    m.risk_class
                ]),
                Write::Decision(d) => tx.prepare_cached(&q(SQL_DECISION))?.execute(params![
                    d.txn_id,
                    d.version,
                    d.verdict,
                    d.score,
                    i64::from(d.hold),
                    i64::from(d.alert),
                    d.policy,
                    d.matched,
                    d.shadow,
                    d.details,
                    d.at,
                    d.facts
                ]),
                Write::Case(c) => tx.prepare_cached(&q(SQL_CASE))?.execute(params![
                    c.case_id,
                    c.subject,
                    c.status,
                    c.assignee,
                    c.opened_at,
                    c.updated_at
                ]),
                Write::CaseEntry(e) => tx.prepare_cached(&q(SQL_CASE_ENTRY))?.execute(params![
                    e.case_id, e.seq, e.at, e.kind, e.txn_id, e.author, e.text
                ]),
                Write::Terminal(t) => tx.prepare_cached(&q(SQL_TERMINAL))?.execute(params![
                    t.terminal_id,
                    t.merchant_id,
                    t.status,
                    t.tmk,
                    t.pik,
                    t.mak,
                    t.mak_prev,
                    t.key_version,
                    t.batch,
                    i64::from(t.signed_on),
                    t.install_location,
                    t.updated_at
                ]),
                Write::NewTxn(t) => tx.prepare_cached(&q(SQL_NEW_TXN))?.execute(params![
                    t.txn_id,
                    t.request_key,
                    t.terminal_id,
                    t.merchant_id,
                    t.batch,
                    t.stan,
                    t.mti,
                    t.kind,
                    t.amount_minor,
                    t.currency,
                    t.pan_token,
                    t.masked_pan,
                    t.rrn,
                    t.auth_code,
                    t.response_code,
                    t.state,
                    t.original_rrn,
                    t.link_stan,
                    t.reply_hex,
                    t.local_date,
                    t.created_at,
                    t.updated_at
                ]),
                Write::UpdateTxn(t) => tx.prepare_cached(&q(SQL_UPDATE_TXN))?.execute(params![
                    t.txn_id,
                    t.auth_code,
                    t.response_code,
                    t.state,
                    t.original_rrn,
                    t.link_stan,
                    t.reply_hex,
                    t.updated_at
                ]),
                Write::Event(e) => tx
                    .prepare_cached(&q(SQL_EVENT))?
                    .execute(params![e.txn_id, e.seq, e.at, e.kind, e.detail]),
                Write::TxnState {
                    txn_id,
                    state,
                    updated_at,
                } => tx
                    .prepare_cached(&q(SQL_TXN_STATE))?
                    .execute(params![txn_id, state, updated_at]),
                Write::Saf(r) => tx.prepare_cached(&q(SQL_SAF))?.execute(params![
                    r.saf_id,
                    r.txn_id,
                    r.kind,
                    r.message_hex,
                    r.attempts,
                    r.next_at_ms,
                    r.state,
                    r.reason,
                    r.owner,
                    r.created_at,
                    r.updated_at
                ]),
                _ => unreachable!("money writes are handled above"),
            };
            if let Err(e) = r {
                if is_unique_violation(&e) {
                    return Err(StoreError::Duplicate(e.to_string()));
                }
                return Err(e.into());
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn with_tx(
        &mut self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut tx = self.conn.transaction()?;
        f(&mut tx)?;
        tx.commit()?;
        Ok(())
    }

    fn merchants(&mut self) -> Result<Vec<MerchantRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants ORDER BY merchant_id"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(MerchantRow {
                merchant_id: r.get(0)?,
                name: r.get(1)?,
                city: r.get(2)?,
                mcc: r.get(3)?,
                status: r.get(4)?,
                created_at: r.get(5)?,
                merchant_class: r.get(6)?,
                risk_class: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn terminals(&mut self) -> Result<Vec<TerminalRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {TERMINAL_COLUMNS} FROM terminals ORDER BY terminal_id"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(TerminalRow {
                terminal_id: r.get(0)?,
                merchant_id: r.get(1)?,
                status: r.get(2)?,
                tmk: r.get(3)?,
                pik: r.get(4)?,
                mak: r.get(5)?,
                mak_prev: r.get(6)?,
                key_version: r.get(7)?,
                batch: r.get(8)?,
                signed_on: r.get::<_, i64>(9)? != 0,
                install_location: r.get(10)?,
                updated_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn transactions_after(&mut self, after: i64, limit: usize) -> Result<Vec<TxnRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLUMNS} FROM transactions WHERE txn_id > ?1 ORDER BY txn_id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![after, limit as i64], txn_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn transaction_by_rrn(&mut self, rrn: &str) -> Result<Option<TxnRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLUMNS} FROM transactions WHERE rrn = ?1"
        ))?;
        Ok(st.query_row(params![rrn], txn_from).optional()?)
    }

    fn events(&mut self, txn_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT txn_id, seq, at, kind, detail FROM txn_events WHERE txn_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![txn_id], |r| {
            Ok(EventRow {
                txn_id: r.get(0)?,
                seq: r.get(1)?,
                at: r.get(2)?,
                kind: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn max_txn_id(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(txn_id), 0) FROM transactions",
            [],
            |r| r.get(0),
        )?)
    }

    fn decision(&mut self, txn_id: i64) -> Result<Option<DecisionRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE txn_id = ?1"
        ))?;
        Ok(st.query_row(params![txn_id], decision_from).optional()?)
    }

    fn decisions_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE txn_id > ?1 ORDER BY txn_id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![after, limit as i64], decision_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cases(&mut self, status: Option<&str>) -> Result<Vec<CaseRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT case_id, subject, status, assignee, opened_at, updated_at FROM cases \
             WHERE ?1 IS NULL OR status = ?1 ORDER BY case_id",
        )?;
        let rows = st.query_map(params![status], |r| {
            Ok(CaseRow {
                case_id: r.get(0)?,
                subject: r.get(1)?,
                status: r.get(2)?,
                assignee: r.get(3)?,
                opened_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn case_entries(&mut self, case_id: i64) -> Result<Vec<CaseEntryRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT case_id, seq, at, kind, txn_id, author, text FROM case_entries WHERE case_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![case_id], |r| {
            Ok(CaseEntryRow {
                case_id: r.get(0)?,
                seq: r.get(1)?,
                at: r.get(2)?,
                kind: r.get(3)?,
                txn_id: r.get(4)?,
                author: r.get(5)?,
                text: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn saf_in_state(&mut self, state: &str) -> Result<Vec<SafRow>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SAF_COLUMNS} FROM saf WHERE state = ?1 ORDER BY saf_id"
        ))?;
        let rows = st.query_map(params![state], saf_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn claim_due_saf(
        &mut self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<SafRow>, StoreError> {
        // One writer at a time in SQLite: a transaction is enough to claim.
        let tx = self.conn.transaction()?;
        let due: Vec<SafRow> = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {SAF_COLUMNS} FROM saf WHERE state = 'pending' AND next_at_ms <= ?1 ORDER BY next_at_ms LIMIT ?2"
            ))?;
            let rows = st.query_map(params![now_ms, limit as i64], saf_from)?;
            rows.collect::<Result<_, _>>()?
        };
        for r in &due {
            tx.execute(
                "UPDATE saf SET owner = ?2, next_at_ms = ?3 WHERE saf_id = ?1",
                params![r.saf_id, owner, now_ms + lease_ms],
            )?;
        }
        tx.commit()?;
        Ok(due
            .into_iter()
            .map(|mut r| {
                r.owner = Some(owner.to_owned());
                r
            })
            .collect())
    }
}
