//! Benchmarks that need a whole store, run by `posguard api-bench` and
//! `posguard money-bench` ([`money`]: ledger, settlement run, reconciliation; it
//! prints each figure as it measures).
//!
//! [`api_search`] fills a SQLite store with a deterministic journal (N transactions of
//! a few hundred merchants, thousands of terminals and tens of thousands of cards over
//! thirty days, three events each), serves the operators' API on loopback, and times
//! the searches operators make and one transaction's timeline — over HTTP with login,
//! role checks, JSON and the store layer — next to the same queries in bare SQL on
//! the same file in the same run (prepared `rusqlite` statements, rows read, nothing
//! else). Latencies are printed as p50/p99 from HDR histograms.

pub mod money;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use store::{EventRow, MerchantRow, TxnKind, TxnRow, TxnState, Write};

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The store refused.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// A bare SQL query failed.
    #[error("sql: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The API failed or answered wrongly.
    #[error("api: {0}")]
    Api(String),
    /// Setting up (files, runtime, listener).
    #[error("{0}")]
    Setup(String),
    /// A service refused.
    #[error(transparent)]
    Service(#[from] services::ServiceError),
    /// A clearing file did not parse.
    #[error("clearing file: {0}")]
    Clearing(#[from] recon::FileError),
}

/// How big and how long.
#[derive(Debug, Clone)]
pub struct SearchBench {
    /// Transactions in the store.
    pub transactions: usize,
    /// Queries of each kind.
    pub queries: usize,
    /// Where the store is made (its own directory, removed afterwards).
    pub dir: std::path::PathBuf,
    /// Seed of the journal and of the queries.
    pub seed: u64,
}

/// One query's figures.
#[derive(Debug, Clone)]
pub struct QueryFigures {
    /// What was asked.
    pub name: &'static str,
    /// Through the API: p50, p99, max (µs).
    pub api: (u64, u64, u64),
    /// In bare SQL: p50, p99, max (µs).
    pub sql: (u64, u64, u64),
    /// Rows the bare SQL returned, summed over the queries (the API returns the same).
    pub rows: usize,
}

/// The benchmark's result.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// Transactions in the store.
    pub transactions: usize,
    /// Seconds filling the store.
    pub fill_secs: f64,
    /// Queries of each kind.
    pub queries: usize,
    /// Per query.
    pub figures: Vec<QueryFigures>,
}

/// The p99 target of the brief, microseconds.
pub const TARGET_P99_US: u64 = 50_000;

impl fmt::Display for SearchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "API search and timeline over {} transactions on SQLite (filled in {:.1} s), {} queries each, one client:",
            self.transactions, self.fill_secs, self.queries
        )?;
        writeln!(
            f,
            "  {:<38} {:>10} {:>10} {:>10}   {:>10} {:>10}   target p99",
            "query", "API p50", "API p99", "API max", "SQL p50", "SQL p99"
        )?;
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        for q in &self.figures {
            writeln!(
                f,
                "  {:<38} {:>10} {:>10} {:>10}   {:>10} {:>10}   {} {}",
                q.name,
                ms(q.api.0),
                ms(q.api.1),
                ms(q.api.2),
                ms(q.sql.0),
                ms(q.sql.1),
                if q.api.1 <= TARGET_P99_US {
                    "met"
                } else {
                    "MISSED"
                },
                ms(TARGET_P99_US)
            )?;
        }
        Ok(())
    }
}

const MERCHANTS: usize = 500;
const TERMINALS: usize = 5_000;
const CARDS: usize = 50_000;
const DAYS: usize = 30;
const PASSWORD: &str = "benchmark password";

fn merchant_id(i: usize) -> String {
    format!("8983100{:08}", i)
}

fn terminal_of(i: usize) -> (String, String) {
    (format!("{:08}", 20_000_000 + i), merchant_id(i % MERCHANTS))
}

fn masked(card: usize) -> String {
    format!("622848******{:04}", card % 10_000)
}

fn day(d: usize) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default()
        + chrono::Duration::days(d as i64)
}

/// The `i`th of `n` transactions of the journal (deterministic from the seed's generator).
fn txn(i: usize, n: usize, rng: &mut ChaCha8Rng) -> (TxnRow, [EventRow; 3]) {
    let id = i as i64 + 1;
    let t = rng.gen_range(0..TERMINALS);
    let (terminal_id, merchant_id) = terminal_of(t);
    let card = rng.gen_range(0..CARDS);
    // Ids grow with time: the journal covers the days in order.
    let d = day(i * DAYS / n.max(1));
    let secs = rng.gen_range(0..86_400);
    let at = format!(
        "{}T{:02}:{:02}:{:02}+08:00",
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let roll = rng.gen_range(0..100);
    let (state, code) = match roll {
        0..=89 => (TxnState::Approved, "00"),
        90..=95 => (TxnState::Declined, "51"),
        96..=97 => (TxnState::Declined, "55"),
        _ => (TxnState::Reversed, "98"),
    };
    let row = TxnRow {
        txn_id: id,
        request_key: format!("{terminal_id}/1/{id}/2"),
        terminal_id,
        merchant_id,
        batch: 1,
        stan: id % 1_000_000,
        mti: "0200".into(),
        kind: TxnKind::Sale,
        amount_minor: rng.gen_range(100..500_000),
        currency: "156".into(),
        pan_token: format!("tok{card}"),
        masked_pan: masked(card),
        rrn: format!("B{id:011}"),
        auth_code: (code == "00").then(|| format!("{:06}", id % 1_000_000)),
        response_code: Some(code.into()),
        state,
        original_rrn: None,
        link_stan: Some(id % 1_000_000),
        reply_hex: None,
        local_date: d.to_string(),
        created_at: at.clone(),
        updated_at: at.clone(),
    };
    let ev = |seq: i64, kind: &str, detail: &str| EventRow {
        txn_id: id,
        seq,
        at: at.clone(),
        kind: kind.into(),
        detail: detail.into(),
    };
    let events = [
        ev(1, "received", "sale checked"),
        ev(2, "sent_to_issuer", "0200 sent"),
        ev(3, state.name(), code),
    ];
    (row, events)
}

fn sqlite_err(e: impl fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// Fills the store: merchants, then the journal in batches of 10,000 transactions.
fn fill(dir: &std::path::Path, n: usize, seed: u64) -> Result<(), BenchError> {
    let loc = dir.display().to_string();
    let mut db = store::open(&loc)?;
    db.migrate()?;
    let merchants: Vec<Write> = (0..MERCHANTS)
        .map(|i| {
            Write::Merchant(MerchantRow {
                merchant_id: merchant_id(i),
                name: format!("Shop {i}"),
                city: "Shanghai".into(),
                mcc: "5411".into(),
                status: "active".into(),
                created_at: "2026-10-01T00:00:00+08:00".into(),
                merchant_class: "standard".into(),
                risk_class: "low".into(),
            })
        })
        .collect();
    db.apply(&merchants)?;
    let actor = services::accounts::Actor::cli("bench", std::process::id());
    services::accounts::add_operator(
        db.as_mut(),
        "bench",
        services::accounts::Role::Support,
        PASSWORD,
        &[],
        &actor,
        "2026-12-01T00:00:00+00:00",
    )
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let mut writes = Vec::with_capacity((end - i) * 4);
        for k in i..end {
            let (row, events) = txn(k, n, &mut rng);
            writes.push(Write::NewTxn(row));
            writes.extend(events.into_iter().map(Write::Event));
        }
        db.apply(&writes)?;
        i = end;
    }
    Ok(())
}

/// One query: the API path and the bare SQL with its parameters.
struct Query {
    path: String,
    sql: &'static str,
    params: Vec<rusqlite::types::Value>,
}

/// The queries of each kind for a sample transaction `t`.
fn queries(t: &TxnRow) -> Vec<(&'static str, Query)> {
    use rusqlite::types::Value::{Integer, Text};
    let d = chrono::NaiveDate::parse_from_str(&t.local_date, "%Y-%m-%d").unwrap_or_default();
    let (from, to) = (
        (d - chrono::Duration::days(1)).to_string(),
        (d + chrono::Duration::days(1)).to_string(),
    );
    vec![
        (
            "by RRN",
            Query {
                path: format!("/api/v1/transactions?rrn={}", t.rrn),
                sql: "SELECT txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at FROM transactions WHERE txn_id > 0 AND rrn = ?1 ORDER BY txn_id LIMIT 50",
                params: vec![Text(t.rrn.clone())],
            },
        ),
        (
            "terminal + day (page of 50)",
            Query {
                path: format!(
                    "/api/v1/transactions?terminal={}&from={}&to={}",
                    t.terminal_id, t.local_date, t.local_date
                ),
                sql: "SELECT txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at FROM transactions WHERE txn_id > 0 AND terminal_id = ?1 AND local_date >= ?2 AND local_date <= ?3 ORDER BY txn_id LIMIT 50",
                params: vec![
                    Text(t.terminal_id.clone()),
                    Text(t.local_date.clone()),
                    Text(t.local_date.clone()),
                ],
            },
        ),
        (
            "merchant (page of 50)",
            Query {
                path: format!("/api/v1/transactions?merchant={}", t.merchant_id),
                sql: "SELECT txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at FROM transactions WHERE txn_id > 0 AND merchant_id IN (?1) ORDER BY txn_id LIMIT 50",
                params: vec![Text(t.merchant_id.clone())],
            },
        ),
        (
            "masked PAN + amount + 3 days",
            Query {
                path: format!(
                    "/api/v1/transactions?masked_pan={}&amount_minor={}&from={from}&to={to}",
                    t.masked_pan, t.amount_minor
                ),
                sql: "SELECT txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at FROM transactions WHERE txn_id > 0 AND masked_pan = ?1 AND amount_minor = ?2 AND local_date >= ?3 AND local_date <= ?4 ORDER BY txn_id LIMIT 50",
                params: vec![
                    Text(t.masked_pan.clone()),
                    Integer(t.amount_minor),
                    Text(from.clone()),
                    Text(to.clone()),
                ],
            },
        ),
        (
            "declined 51 (page of 50)",
            Query {
                path: format!("/api/v1/transactions?response_code=51&after={}", t.txn_id),
                sql: "SELECT txn_id, request_key, terminal_id, merchant_id, batch, stan, mti, kind, amount_minor, currency, pan_token, masked_pan, rrn, auth_code, response_code, state, original_rrn, link_stan, reply_hex, local_date, created_at, updated_at FROM transactions WHERE txn_id > ?1 AND response_code = ?2 ORDER BY txn_id LIMIT 50",
                params: vec![Integer(t.txn_id), Text("51".into())],
            },
        ),
        (
            "timeline of one transaction",
            Query {
                path: format!("/api/v1/transactions/{}/timeline", t.rrn),
                // The transaction, then its events: what the timeline is made of.
                sql: "SELECT t.txn_id, t.rrn, t.state, e.seq, e.at, e.kind, e.detail FROM transactions t JOIN txn_events e ON e.txn_id = t.txn_id WHERE t.rrn = ?1 ORDER BY e.seq",
                params: vec![Text(t.rrn.clone())],
            },
        ),
    ]
}

fn figures(h: &Histogram<u64>) -> (u64, u64, u64) {
    (
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.max(),
    )
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError::Setup(e.to_string()))
}

/// Runs the benchmark.
#[allow(clippy::disallowed_methods)] // a benchmark reads the clock
pub fn api_search(b: &SearchBench) -> Result<SearchReport, BenchError> {
    let _ = std::fs::remove_dir_all(&b.dir);
    std::fs::create_dir_all(&b.dir).map_err(sqlite_err)?;
    let started = std::time::Instant::now();
    fill(&b.dir, b.transactions, b.seed)?;
    let fill_secs = started.elapsed().as_secs_f64();
    // The sample: transactions drawn across the journal, regenerated from the seed.
    let mut pick = ChaCha8Rng::seed_from_u64(b.seed ^ 0x5eed);
    let wanted: std::collections::BTreeSet<usize> = (0..b.queries)
        .map(|_| pick.gen_range(0..b.transactions))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(b.seed);
    let mut sample = Vec::new();
    for i in 0..b.transactions {
        let (row, _) = txn(i, b.transactions, &mut rng);
        if wanted.contains(&i) {
            sample.push(row);
        }
    }
    // The API on loopback, on its own runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(sqlite_err)?;
    let db = store::open(&b.dir.display().to_string())?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(sqlite_err)?;
    let addr = listener.local_addr().map_err(sqlite_err)?;
    let clock: api::Clock = Arc::new(chrono::Utc::now);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(api::serve(listener, api::Api::new(db, clock), async {
        let _ = stopped.await;
    }));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let login: serde_json::Value = agent
        .post(&format!("http://{addr}/api/v1/session"))
        .send_json(serde_json::json!({"name": "bench", "password": PASSWORD}))
        .map_err(|e| BenchError::Api(e.to_string()))?
        .into_json()
        .map_err(|e| BenchError::Api(e.to_string()))?;
    let token = login["token"]
        .as_str()
        .ok_or_else(|| BenchError::Api(format!("no token in {login}")))?
        .to_owned();
    let conn = rusqlite::Connection::open(b.dir.join("posguard.db"))?;
    let names: Vec<&'static str> = sample
        .first()
        .map(|t| queries(t).into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let (mut api_h, mut sql_h) = (histogram()?, histogram()?);
        let mut rows = 0;
        for t in &sample {
            let q = queries(t).swap_remove(k).1;
            // Bare SQL first, then the API, alternating per query so both see the same
            // cache.
            let t0 = std::time::Instant::now();
            let mut stmt = conn.prepare_cached(q.sql)?;
            let n = stmt
                .query_map(rusqlite::params_from_iter(q.params.iter()), |r| {
                    r.get::<_, i64>(0)
                })?
                .count();
            sql_h
                .record(t0.elapsed().as_micros().max(1) as u64)
                .map_err(sqlite_err)?;
            rows += n;
            let t0 = std::time::Instant::now();
            let resp = agent
                .get(&format!("http://{addr}{}", q.path))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .map_err(|e| BenchError::Api(format!("{}: {e}", q.path)))?;
            let body: serde_json::Value = resp
                .into_json()
                .map_err(|e| BenchError::Api(format!("{}: {e}", q.path)))?;
            api_h
                .record(t0.elapsed().as_micros().max(1) as u64)
                .map_err(sqlite_err)?;
            let got = body["items"]
                .as_array()
                .map(Vec::len)
                .or_else(|| {
                    body["timeline"].as_array().map(|s| {
                        s.iter()
                            .filter(|s| s["kind"] != "risk_decision" && s["kind"] != "captured")
                            .count()
                    })
                })
                .unwrap_or(0);
            if got != n {
                return Err(BenchError::Api(format!(
                    "{}: the API returned {got} rows, bare SQL {n}",
                    q.path
                )));
            }
        }
        out.push(QueryFigures {
            name,
            api: figures(&api_h),
            sql: figures(&sql_h),
            rows,
        });
    }
    let _ = stop.send(());
    let _ = rt.block_on(server);
    drop(conn);
    let _ = std::fs::remove_dir_all(&b.dir);
    Ok(SearchReport {
        transactions: b.transactions,
        fill_secs,
        queries: sample.len(),
        figures: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run: every query of the API returns what the same bare SQL returns
    /// (the benchmark refuses to print figures otherwise).
    #[test]
    fn the_api_and_the_bare_sql_agree_on_every_query() {
        let dir = std::env::temp_dir().join(format!("posguard-api-bench-{}", std::process::id()));
        let report = api_search(&SearchBench {
            transactions: 3_000,
            queries: 30,
            dir: dir.clone(),
            seed: 3,
        })
        .expect("bench");
        assert_eq!(report.figures.len(), 6, "{report}");
        let rows: Vec<usize> = report.figures.iter().map(|q| q.rows).collect();
        assert!(
            rows.iter().all(|r| *r > 0),
            "every query finds something: {rows:?}"
        );
        assert!(!dir.exists(), "the store is removed");
    }
}
