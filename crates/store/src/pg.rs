//! The PostgreSQL backend, for several acquirer nodes sharing one database.
//!
//! Uses the synchronous `postgres` client: it must run on a thread of its own (the
//! journal writer, a command-line tool), never on an async runtime's worker.

use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Row};

use crate::rows::{
    CaseEntryRow, CaseRow, DecisionRow, EventRow, MerchantRow, SafRow, TerminalRow, TxnRow, Write,
};
use crate::sqlite::{
    DECISION_COLUMNS, MERCHANT_COLUMNS, SAF_COLUMNS, SQL_CASE, SQL_CASE_ENTRY, SQL_DECISION,
    SQL_EVENT, SQL_MERCHANT, SQL_NEW_TXN, SQL_SAF, SQL_TERMINAL, SQL_TXN_STATE, SQL_UPDATE_TXN,
    TERMINAL_COLUMNS, TXN_COLUMNS,
};
use crate::{Backend, StoreError, Tx, Val, MIGRATIONS};

/// A PostgreSQL connection, optionally confined to one schema.
pub struct PgBackend {
    client: Client,
    cache: HashMap<String, postgres::Statement>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgBackend")
    }
}

impl PgBackend {
    /// Connects to `postgres://…`.
    pub fn connect(url: &str) -> Result<PgBackend, StoreError> {
        Ok(PgBackend {
            client: Client::connect(url, NoTls)?,
            cache: HashMap::new(),
        })
    }

    /// Connects and confines every statement to `schema` (created if missing); tests
    /// use a schema each so they can run side by side in one database.
    pub fn connect_in_schema(url: &str, schema: &str) -> Result<PgBackend, StoreError> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Open {
                what: schema.into(),
                reason: "schema name must be [A-Za-z0-9_]".into(),
            });
        }
        let mut client = Client::connect(url, NoTls)?;
        client.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
        ))?;
        Ok(PgBackend {
            client,
            cache: HashMap::new(),
        })
    }

    /// Drops a schema and everything in it (test clean-up).
    pub fn drop_schema(&mut self, schema: &str) -> Result<(), StoreError> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Open {
                what: schema.into(),
                reason: "schema name must be [A-Za-z0-9_]".into(),
            });
        }
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        Ok(())
    }
}

fn pg_err(e: postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Duplicate(e.to_string())
    } else {
        e.into()
    }
}

/// Binds values; a NULL takes the type the statement expects.
fn bind<'a>(
    st: &postgres::Statement,
    p: &'a [Val],
) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    static NULL_INT: Option<i64> = None;
    static NULL_TEXT: Option<String> = None;
    p.iter()
        .enumerate()
        .map(|(i, v)| -> &(dyn postgres::types::ToSql + Sync) {
            match v {
                Val::I(i) => i,
                Val::T(s) => s,
                Val::Null if st.params().get(i) == Some(&postgres::types::Type::INT8) => &NULL_INT,
                Val::Null => &NULL_TEXT,
            }
        })
        .collect()
}

/// An open transaction with the connection's prepared statements (prepared once per
/// connection: prepared statements outlive transactions, committed or not).
struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    cache: &'a mut HashMap<String, postgres::Statement>,
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(st) = self.cache.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql).map_err(pg_err)?;
        if self.cache.len() < 256 {
            self.cache.insert(sql.to_owned(), st.clone());
        }
        Ok(st)
    }
}

impl Tx for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, p: &[Val]) -> Result<usize, StoreError> {
        let st = self.statement(sql)?;
        let n = self.tx.execute(&st, &bind(&st, p)).map_err(pg_err)?;
        Ok(n as usize)
    }

    fn query(&mut self, sql: &str, p: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        use postgres::types::Type;
        let st = self.statement(sql)?;
        let rows = self.tx.query(&st, &bind(&st, p)).map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, c) in r.columns().iter().enumerate() {
                let v = match *c.type_() {
                    Type::INT8 => r.get::<_, Option<i64>>(i).map(Val::I),
                    Type::INT4 => r.get::<_, Option<i32>>(i).map(|v| Val::I(i64::from(v))),
                    _ => r.get::<_, Option<String>>(i).map(Val::T),
                };
                row.push(v.unwrap_or(Val::Null));
            }
            out.push(row);
        }
        Ok(out)
    }
}

fn decision_from(r: &Row) -> DecisionRow {
    DecisionRow {
        txn_id: r.get(0),
        version: r.get(1),
        verdict: r.get(2),
        score: r.get(3),
        hold: r.get::<_, i64>(4) != 0,
        alert: r.get::<_, i64>(5) != 0,
        policy: r.get(6),
        matched: r.get(7),
        shadow: r.get(8),
        details: r.get(9),
        at: r.get(10),
        facts: r.get(11),
    }
}

fn saf_from(r: &Row) -> SafRow {
    SafRow {
        saf_id: r.get(0),
        txn_id: r.get(1),
        kind: r.get(2),
        message_hex: r.get(3),
        attempts: r.get(4),
        next_at_ms: r.get(5),
        state: r.get(6),
        reason: r.get(7),
        owner: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    }
}

fn txn_from(r: &Row) -> TxnRow {
    TxnRow {
        txn_id: r.get(0),
        request_key: r.get(1),
        terminal_id: r.get(2),
        merchant_id: r.get(3),
        batch: r.get(4),
        stan: r.get(5),
        mti: r.get(6),
        kind: r.get(7),
        amount_minor: r.get(8),
        currency: r.get(9),
        pan_token: r.get(10),
        masked_pan: r.get(11),
        rrn: r.get(12),
        auth_code: r.get(13),
        response_code: r.get(14),
        state: r.get(15),
        original_rrn: r.get(16),
        link_stan: r.get(17),
        reply_hex: r.get(18),
        local_date: r.get(19),
        created_at: r.get(20),
        updated_at: r.get(21),
    }
}

impl Backend for PgBackend {
    fn migrate(&mut self) -> Result<u32, StoreError> {
        let mut tx = self.client.transaction()?;
        // Several nodes may start at once: one migrates, the others wait.
        tx.batch_execute("SELECT pg_advisory_xact_lock(8583)")?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let have: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now()::text)",
                &[&(i as i64 + 1)],
            )?;
        }
        tx.commit()?;
        Ok(MIGRATIONS.len() as u32)
    }

    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        for w in writes {
            if crate::money::is_money(w) {
                crate::money::write(
                    &mut PgTx {
                        tx: &mut tx,
                        cache: &mut self.cache,
                    },
                    w,
                )?;
                continue;
            }
            let r = match w {
                Write::Merchant(m) => tx.execute(
                    SQL_MERCHANT,
                    &[
                        &m.merchant_id,
                        &m.name,
                        &m.city,
                        &m.mcc,
                        &m.status,
                        &m.created_at,
                        &m.merchant_class,
                        &m.risk_class,
                    ],
                ),
                Write::Decision(d) => tx.execute(
                    SQL_DECISION,
                    &[
                        &d.txn_id,
                        &d.version,
                        &d.verdict,
                        &d.score,
                        &i64::from(d.hold),
                        &i64::from(d.alert),
                        &d.policy,
                        &d.matched,
                        &d.shadow,
                        &d.details,
                        &d.at,
                        &d.facts,
                    ],
                ),
                Write::Case(c) => tx.execute(
                    SQL_CASE,
                    &[
                        &c.case_id,
                        &c.subject,
                        &c.status,
                        &c.assignee,
                        &c.opened_at,
                        &c.updated_at,
                    ],
                ),
                Write::CaseEntry(e) => tx.execute(
                    SQL_CASE_ENTRY,
                    &[
                        &e.case_id, &e.seq, &e.at, &e.kind, &e.txn_id, &e.author, &e.text,
                    ],
                ),
                Write::Terminal(t) => tx.execute(
                    SQL_TERMINAL,
                    &[
                        &t.terminal_id,
                        &t.merchant_id,
                        &t.status,
                        &t.tmk,
                        &t.pik,
                        &t.mak,
                        &t.mak_prev,
                        &t.key_version,
                        &t.batch,
                        &i64::from(t.signed_on),
                        &t.install_location,
                        &t.updated_at,
                    ],
                ),
                Write::NewTxn(t) => tx.execute(
                    SQL_NEW_TXN,
                    &[
                        &t.txn_id,
                        &t.request_key,
                        &t.terminal_id,
                        &t.merchant_id,
                        &t.batch,
                        &t.stan,
                        &t.mti,
                        &t.kind,
                        &t.amount_minor,
                        &t.currency,
                        &t.pan_token,
                        &t.masked_pan,
                        &t.rrn,
                        &t.auth_code,
                        &t.response_code,
                        &t.state,
                        &t.original_rrn,
                        &t.link_stan,
                        &t.reply_hex,
                        &t.local_date,
                        &t.created_at,
                        &t.updated_at,
                    ],
                ),
                Write::UpdateTxn(t) => tx.execute(
                    SQL_UPDATE_TXN,
                    &[
                        &t.txn_id,
                        &t.auth_code,
                        &t.response_code,
                        &t.state,
                        &t.original_rrn,
                        &t.link_stan,
                        &t.reply_hex,
                        &t.updated_at,
                    ],
                ),
                Write::Event(e) => {
                    tx.execute(SQL_EVENT, &[&e.txn_id, &e.seq, &e.at, &e.kind, &e.detail])
                }
                Write::TxnState {
                    txn_id,
                    state,
                    updated_at,
                } => tx.execute(SQL_TXN_STATE, &[txn_id, state, updated_at]),
                Write::Saf(r) => tx.execute(
                    SQL_SAF,
                    &[
                        &r.saf_id,
                        &r.txn_id,
                        &r.kind,
                        &r.message_hex,
                        &r.attempts,
                        &r.next_at_ms,
                        &r.state,
                        &r.reason,
                        &r.owner,
                        &r.created_at,
                        &r.updated_at,
                    ],
                ),
                _ => unreachable!("money writes are handled above"),
            };
            if let Err(e) = r {
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
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
        let mut tx = self.client.transaction()?;
        f(&mut PgTx {
            tx: &mut tx,
            cache: &mut self.cache,
        })?;
        tx.commit()?;
        Ok(())
    }

    fn merchants(&mut self) -> Result<Vec<MerchantRow>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT {MERCHANT_COLUMNS} FROM merchants ORDER BY merchant_id"),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| MerchantRow {
                merchant_id: r.get(0),
                name: r.get(1),
                city: r.get(2),
                mcc: r.get(3),
                status: r.get(4),
                created_at: r.get(5),
                merchant_class: r.get(6),
                risk_class: r.get(7),
            })
            .collect())
    }

    fn terminals(&mut self) -> Result<Vec<TerminalRow>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT {TERMINAL_COLUMNS} FROM terminals ORDER BY terminal_id"),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| TerminalRow {
                terminal_id: r.get(0),
                merchant_id: r.get(1),
                status: r.get(2),
                tmk: r.get(3),
                pik: r.get(4),
                mak: r.get(5),
                mak_prev: r.get(6),
                key_version: r.get(7),
                batch: r.get(8),
                signed_on: r.get::<_, i64>(9) != 0,
                install_location: r.get(10),
                updated_at: r.get(11),
            })
            .collect())
    }

    fn transactions_after(&mut self, after: i64, limit: usize) -> Result<Vec<TxnRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {TXN_COLUMNS} FROM transactions WHERE txn_id > $1 ORDER BY txn_id LIMIT $2"
            ),
            &[&after, &(limit as i64)],
        )?;
        Ok(rows.iter().map(txn_from).collect())
    }

    fn transaction_by_rrn(&mut self, rrn: &str) -> Result<Option<TxnRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {TXN_COLUMNS} FROM transactions WHERE rrn = $1"),
            &[&rrn],
        )?;
        Ok(row.as_ref().map(txn_from))
    }

    fn events(&mut self, txn_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = self.client.query(
            "SELECT txn_id, seq, at, kind, detail FROM txn_events WHERE txn_id = $1 ORDER BY seq",
            &[&txn_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| EventRow {
                txn_id: r.get(0),
                seq: r.get(1),
                at: r.get(2),
                kind: r.get(3),
                detail: r.get(4),
            })
            .collect())
    }

    fn max_txn_id(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .client
            .query_one("SELECT COALESCE(MAX(txn_id), 0) FROM transactions", &[])?
            .get(0))
    }

    fn decision(&mut self, txn_id: i64) -> Result<Option<DecisionRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE txn_id = $1"),
            &[&txn_id],
        )?;
        Ok(row.as_ref().map(decision_from))
    }

    fn decisions_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE txn_id > $1 ORDER BY txn_id LIMIT $2"),
            &[&after, &(limit as i64)],
        )?;
        Ok(rows.iter().map(decision_from).collect())
    }

    fn cases(&mut self, status: Option<&str>) -> Result<Vec<CaseRow>, StoreError> {
        let rows = self.client.query(
            "SELECT case_id, subject, status, assignee, opened_at, updated_at FROM cases \
             WHERE $1::TEXT IS NULL OR status = $1 ORDER BY case_id",
            &[&status],
        )?;
        Ok(rows
            .iter()
            .map(|r| CaseRow {
                case_id: r.get(0),
                subject: r.get(1),
                status: r.get(2),
                assignee: r.get(3),
                opened_at: r.get(4),
                updated_at: r.get(5),
            })
            .collect())
    }

    fn case_entries(&mut self, case_id: i64) -> Result<Vec<CaseEntryRow>, StoreError> {
        let rows = self.client.query(
            "SELECT case_id, seq, at, kind, txn_id, author, text FROM case_entries WHERE case_id = $1 ORDER BY seq",
            &[&case_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| CaseEntryRow {
                case_id: r.get(0),
                seq: r.get(1),
                at: r.get(2),
                kind: r.get(3),
                txn_id: r.get(4),
                author: r.get(5),
                text: r.get(6),
            })
            .collect())
    }

    fn saf_in_state(&mut self, state: &str) -> Result<Vec<SafRow>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT {SAF_COLUMNS} FROM saf WHERE state = $1 ORDER BY saf_id"),
            &[&state],
        )?;
        Ok(rows.iter().map(saf_from).collect())
    }

    fn claim_due_saf(
        &mut self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<SafRow>, StoreError> {
        let sql = format!(
            "UPDATE saf SET owner = $1, next_at_ms = $2 + $3 WHERE saf_id IN (\
             SELECT saf_id FROM saf WHERE state = 'pending' AND next_at_ms <= $2 \
             ORDER BY next_at_ms LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {SAF_COLUMNS}"
        );
        let rows = self
            .client
            .query(&sql, &[&owner, &now_ms, &lease_ms, &(limit as i64)])?;
        // RETURNING shows the pushed-ahead time; report when each was due instead.
        Ok(rows
            .iter()
            .map(|r| {
                let mut s = saf_from(r);
                s.next_at_ms -= lease_ms;
                s
            })
            .collect())
    }
}
