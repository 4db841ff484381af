//! The PostgreSQL backend, for several acquirer nodes sharing one database.
//!
//! Uses the synchronous `postgres` client: it must run on a thread of its own (the
//! journal writer, a command-line tool), never on an async runtime's worker.

use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use crate::sql::{all, Arg, TableRow, Tx, Val};
use crate::{Backend, StoreError, MIGRATIONS};
use records::{DocumentRow, SafRow};

/// A PostgreSQL connection, optionally confined to one schema.
pub struct PgBackend {
    client: Client,
    cache: HashMap<String, postgres::Statement>,
    /// Whether this connection has `LISTEN`ed for the change feed.
    listening: bool,
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
            listening: false,
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
            listening: false,
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
    p: &'a [Arg<'a>],
) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    static NULL_INT: Option<i64> = None;
    static NULL_TEXT: Option<String> = None;
    p.iter()
        .enumerate()
        .map(|(i, v)| -> &(dyn postgres::types::ToSql + Sync) {
            match v {
                Arg::I(i) => i,
                Arg::T(s) => s,
                Arg::Null if st.params().get(i) == Some(&postgres::types::Type::INT8) => &NULL_INT,
                Arg::Null => &NULL_TEXT,
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
    fn put_document(&mut self, d: &DocumentRow) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO documents (sha256, content_type, size, data, content, created_at) \
                 VALUES ($1, $2, $3, '', $4, $5) ON CONFLICT (sha256) DO NOTHING",
                &[&d.sha256, &d.content_type, &d.size, &d.bytes, &d.created_at],
            )
            .map_err(pg_err)?;
        Ok(())
    }

    fn get_document(&mut self, sha256: &str) -> Result<Option<DocumentRow>, StoreError> {
        let Some(r) = self
            .tx
            .query_opt(
                "SELECT content_type, size, data, content, created_at FROM documents WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(pg_err)?
        else {
            return Ok(None);
        };
        let data: String = r.get(2);
        let bytes = match r.get::<_, Option<Vec<u8>>>(3) {
            Some(b) => b,
            None => crate::sql::legacy_bytes(sha256, &data)?,
        };
        Ok(Some(DocumentRow {
            sha256: sha256.into(),
            content_type: r.get(0),
            size: r.get(1),
            bytes,
            created_at: r.get(4),
        }))
    }

    fn notify_changes(&mut self) -> Result<(), StoreError> {
        // Delivered to the listeners when (and only if) the transaction commits.
        self.tx
            .batch_execute(concat!("NOTIFY ", "posguard_changes"))
            .map_err(pg_err)
    }

    fn exec(&mut self, sql: &str, p: &[Arg<'_>]) -> Result<usize, StoreError> {
        let st = self.statement(sql)?;
        let n = self.tx.execute(&st, &bind(&st, p)).map_err(pg_err)?;
        Ok(n as usize)
    }

    fn query(&mut self, sql: &str, p: &[Arg<'_>]) -> Result<Vec<Vec<Val>>, StoreError> {
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

impl Backend for PgBackend {
    fn wait_for_changes(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        if !self.listening {
            self.client.batch_execute("LISTEN posguard_changes")?;
            self.listening = true;
        }
        use postgres::fallible_iterator::FallibleIterator as _;
        let mut n = self.client.notifications();
        if n.timeout_iter(timeout).next()?.is_some() {
            // Several changes committed together wake the reader once.
            while n.iter().next()?.is_some() {}
        }
        Ok(())
    }

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
             ORDER BY next_at_ms LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {}",
            SafRow::COLUMNS
        );
        let mut due: Vec<SafRow> = Vec::new();
        self.with_tx(&mut |tx| {
            due = all(
                tx,
                &sql,
                &[
                    owner.into(),
                    now_ms.into(),
                    lease_ms.into(),
                    (limit as i64).into(),
                ],
            )?;
            Ok(())
        })?;
        // RETURNING shows the pushed-ahead time; report when each was due instead.
        for r in &mut due {
            r.next_at_ms -= lease_ms;
        }
        Ok(due)
    }
}
