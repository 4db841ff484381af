//! The embedded backend: SQLite in WAL mode, `synchronous = FULL`.

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, ErrorCode};

use crate::sql::{all, select, Arg, Tx, Val};
use crate::{Backend, StoreError, MIGRATIONS};
use records::{DocumentRow, SafRow};

/// SQLite in a data directory (`posguard.db`).
pub struct SqliteBackend {
    conn: Connection,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteBackend")
    }
}

/// SQLite numbers parameters `?N`; the shared statements use `$N`.
fn q(sql: &str) -> String {
    sql.replace('$', "?")
}

impl SqliteBackend {
    /// Opens (creating if needed) `posguard.db` in `dir`.
    ///
    /// The directory is created 0700 and the database 0600 (SQLite gives its WAL and
    /// shared-memory files the database's permissions): the journal holds tokens,
    /// masked PANs and wrapped keys, for the acquirer's user alone.
    pub fn open_dir(dir: &Path) -> Result<SqliteBackend, StoreError> {
        let file = dir.join("posguard.db");
        private_files(dir, &file).map_err(|e| StoreError::Open {
            what: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let conn = Connection::open(&file)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteBackend { conn })
    }
}

/// Creates `dir` (0700) and `file` (0600) if missing, and narrows them if they exist.
fn private_files(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // Only a missing file is opened here: closing a descriptor of a database file
    // releases every POSIX lock this process holds on it, so opening an existing
    // database outside SQLite while another connection of this process uses it (a
    // node's journal, its key watch, a test reading along) would drop that
    // connection's locks (seen as short reads and "disk I/O error").
    if !file.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)?;
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    for side in ["posguard.db-wal", "posguard.db-shm"] {
        let p = dir.join(side);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::I(v) => ValueRef::Integer(*v),
            Arg::T(s) => ValueRef::Text(s.as_bytes()),
            Arg::Null => ValueRef::Null,
        }))
    }
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            StoreError::Duplicate(e.to_string())
        }
        _ => e.into(),
    }
}

/// Where a document's bytes are kept beside the database file:
/// `<data directory>/documents/<first two hex digits>/<sha256>`.
fn document_path(
    db: &rusqlite::Connection,
    sha256: &str,
) -> Result<std::path::PathBuf, StoreError> {
    let file = db.path().filter(|p| !p.is_empty()).ok_or_else(|| {
        StoreError::Invalid("documents are kept beside a database file, not in memory".into())
    })?;
    let dir = std::path::Path::new(file)
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    Ok(dir.join("documents").join(&sha256[..2]).join(sha256))
}

impl Tx for rusqlite::Transaction<'_> {
    fn put_document(&mut self, d: &DocumentRow) -> Result<(), StoreError> {
        use std::io::Write as _;
        if !crate::sql::is_sha256(&d.sha256) {
            return Err(StoreError::Invalid(format!(
                "{:?} is not a SHA-256",
                d.sha256
            )));
        }
        let path = document_path(self, &d.sha256)?;
        if !path.exists() {
            // Written whole under a temporary name, made durable, then renamed: a file
            // under a document's name is always that document. A transaction that then
            // fails leaves at most an unreferenced file, which a retry reuses.
            let io = |e: std::io::Error| {
                StoreError::Invalid(format!("document {}: {e}", path.display()))
            };
            // Owner-only, like the database: the documents are ID cards and licences.
            let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(io)?;
            let tmp = dir.join(format!(".{}.{}", d.sha256, std::process::id()));
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let mut f = o.open(&tmp).map_err(io)?;
            f.write_all(&d.bytes)
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
        }
        self.prepare_cached(
            "INSERT INTO documents (sha256, content_type, size, data, created_at) \
             VALUES (?1, ?2, ?3, '', ?4) ON CONFLICT (sha256) DO NOTHING",
        )?
        .execute(rusqlite::params![
            d.sha256,
            d.content_type,
            d.size,
            d.created_at
        ])
        .map_err(sqlite_err)?;
        Ok(())
    }

    fn get_document(&mut self, sha256: &str) -> Result<Option<DocumentRow>, StoreError> {
        let row = self
            .prepare_cached(
                "SELECT content_type, size, data, created_at FROM documents WHERE sha256 = ?1",
            )?
            .query_row([sha256], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            });
        let (content_type, size, data, created_at) = match row {
            Ok(r) => r,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = if data.is_empty() {
            let path = document_path(self, sha256)?;
            std::fs::read(&path)
                .map_err(|e| StoreError::Invalid(format!("document {}: {e}", path.display())))?
        } else {
            crate::sql::legacy_bytes(sha256, &data)?
        };
        Ok(Some(DocumentRow {
            sha256: sha256.into(),
            content_type,
            size,
            bytes,
            created_at,
        }))
    }

    fn exec(&mut self, sql: &str, p: &[Arg<'_>]) -> Result<usize, StoreError> {
        self.prepare_cached(&q(sql))?
            .execute(rusqlite::params_from_iter(p))
            .map_err(sqlite_err)
    }

    fn query(&mut self, sql: &str, p: &[Arg<'_>]) -> Result<Vec<Vec<Val>>, StoreError> {
        let mut st = self.prepare_cached(&q(sql))?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(p))?;
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

    fn with_tx(
        &mut self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut tx = self.conn.transaction()?;
        f(&mut tx)?;
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
        // One writer at a time in SQLite: a transaction is enough to claim.
        let mut due: Vec<SafRow> = Vec::new();
        self.with_tx(&mut |tx| {
            due = all(
                tx,
                &select::<SafRow>(
                    "saf WHERE state = 'pending' AND next_at_ms <= $1 ORDER BY next_at_ms LIMIT $2",
                ),
                &[now_ms.into(), (limit as i64).into()],
            )?;
            for r in &due {
                tx.exec(
                    "UPDATE saf SET owner = $2, next_at_ms = $3 WHERE saf_id = $1",
                    &[r.saf_id.into(), owner.into(), (now_ms + lease_ms).into()],
                )?;
            }
            Ok(())
        })?;
        for r in &mut due {
            r.owner = Some(owner.to_owned());
        }
        Ok(due)
    }
}
