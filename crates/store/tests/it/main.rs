//! The store's contract: the same suite against SQLite and, when
//! `POSGUARD_TEST_PG_URL` is set, PostgreSQL.

mod contract;
mod ledger;
mod velocity;

use std::sync::atomic::{AtomicU32, Ordering};

use store::{Backend, PgBackend, SqliteBackend};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A backend under test that cleans up after itself.
pub struct TestBackend {
    /// Which backend (`sqlite` or `postgres`).
    pub name: &'static str,
    /// Opens another connection to the same database (for the writer thread).
    pub open: Box<dyn Fn() -> Box<dyn Backend>>,
    /// The data directory (SQLite's; empty for PostgreSQL).
    pub dir: std::path::PathBuf,
    cleanup: Box<dyn Fn()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        (self.cleanup)();
    }
}

/// SQLite in a fresh directory, and PostgreSQL in a fresh schema when configured.
pub fn backends() -> Vec<TestBackend> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("posguard-store-test-{}-{n}", std::process::id()));
    let d1 = dir.clone();
    let mut out = vec![TestBackend {
        name: "sqlite",
        open: Box::new(move || Box::new(SqliteBackend::open_dir(&d1).expect("open sqlite"))),
        dir: dir.clone(),
        cleanup: Box::new(move || {
            let _ = std::fs::remove_dir_all(&dir);
        }),
    }];
    match std::env::var("POSGUARD_TEST_PG_URL") {
        Ok(url) => {
            let schema = format!("store_test_{}_{n}", std::process::id());
            let (u1, s1, u2, s2) = (url.clone(), schema.clone(), url, schema);
            out.push(TestBackend {
                name: "postgres",
                dir: std::path::PathBuf::new(),
                open: Box::new(move || {
                    Box::new(PgBackend::connect_in_schema(&u1, &s1).expect("connect postgres"))
                }),
                cleanup: Box::new(move || {
                    if let Ok(mut b) = PgBackend::connect(&u2) {
                        let _ = b.drop_schema(&s2);
                    }
                }),
            });
        }
        Err(_) => eprintln!("POSGUARD_TEST_PG_URL not set: PostgreSQL store tests skipped"),
    }
    out
}
