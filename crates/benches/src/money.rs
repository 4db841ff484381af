//! The money benchmark (`posguard money-bench`): ledger transfers per second (batched, durable) on SQLite and
//! PostgreSQL next to plain inserts of the same rows measured in the same run, and the
//! settlement run's time for a day of N transactions (the pure computation, and the
//! whole run over the store: read, compute, write ledger, settlements and items).

use std::time::Duration;

use chrono::NaiveDate;
use domain::Currency;
use ledger::{Account, AccountKind, Flow, Limit, Transfer};
use settlement::{accounts, CardType, Item, ItemKind};
use store::{Arg, Backend, MerchantRow, TxnRow, Write};

use crate::BenchError;
use tokio::time::Instant;

/// How big: the figures `posguard money-bench` takes.
#[derive(Debug, Clone)]
pub struct MoneyBench {
    /// Ledger transfers per backend.
    pub transfers: usize,
    /// Transfers per durable batch (one database transaction).
    pub batch: usize,
    /// Transactions in the settlement run.
    pub transactions: usize,
    /// Merchants the transactions belong to.
    pub merchants: usize,
    /// Lines in the reconciliation benchmark's clearing file.
    pub recon_lines: usize,
    /// PostgreSQL URL for the PostgreSQL figures (a fresh schema is used and dropped).
    pub database_url: Option<String>,
    /// Where the SQLite databases go (fresh directories, removed afterwards).
    pub data: String,
}

/// Runs the money benchmark, printing each figure as it is measured.
#[allow(clippy::disallowed_methods)] // a benchmark reads the clock
pub fn run(a: &MoneyBench) -> Result<(), BenchError> {
    let stamp = format!(
        "{}-{}",
        chrono::Utc::now().timestamp_millis(),
        std::process::id()
    );
    let dir = std::path::PathBuf::from(&a.data).join(format!("money-bench-{stamp}"));
    println!(
        "ledger: {} transfers in batches of {} (durable commits), against plain inserts of the same rows",
        a.transfers, a.batch
    );
    {
        let mut db: Box<dyn Backend> =
            Box::new(store::SqliteBackend::open_dir(&dir.join("ledger"))?);
        db.migrate()?;
        ledger_bench("sqlite", db.as_mut(), a.transfers, a.batch)?;
    }
    if let Some(url) = &a.database_url {
        let schema = format!("money_bench_{}", std::process::id());
        {
            let mut db: Box<dyn Backend> =
                Box::new(store::PgBackend::connect_in_schema(url, &schema)?);
            db.migrate()?;
            ledger_bench("postgres", db.as_mut(), a.transfers, a.batch)?;
        }
        store::PgBackend::connect(url)?.drop_schema(&schema)?;
    } else {
        println!("  postgres: skipped (no --database-url)");
    }

    println!(
        "settlement run: {} transactions, {} merchants",
        a.transactions, a.merchants
    );
    settle_bench(&dir, a.transactions, a.merchants.max(1))?;
    println!("reconciliation: a clearing file of {} lines", a.recon_lines);
    recon_bench(&dir, a.recon_lines)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn accounts(merchants: usize) -> Vec<Account> {
    std::iter::once(Account::new(
        accounts::ISSUERS,
        AccountKind::IssuerReceivable,
        Currency::CNY,
        Limit::None,
    ))
    .chain((0..merchants).map(|m| {
        Account::new(
            &accounts::payable(&format!("M{m:05}")),
            AccountKind::MerchantPayable,
            Currency::CNY,
            Limit::None,
        )
    }))
    .collect()
}

#[allow(clippy::disallowed_methods)]
fn ledger_bench(
    name: &str,
    db: &mut dyn Backend,
    n: usize,
    batch: usize,
) -> Result<(), BenchError> {
    let batch = batch.max(1);
    let transfers: Vec<Transfer> = (0..n)
        .map(|i| Transfer {
            id: format!("capture:{i}"),
            debit: accounts::ISSUERS.into(),
            credit: accounts::payable(&format!("M{:05}", i % 100)),
            amount: 1_000 + (i as i64 % 9_000),
            flow: Flow::Posted,
            code: "capture".into(),
            linked: false,
        })
        .collect();
    // Baseline: the same rows, plain INSERTs, same batches, same durability.
    db.with_tx(&mut |tx| {
        tx.exec(
            "CREATE TABLE IF NOT EXISTS bench_plain_transfers (transfer_id TEXT PRIMARY KEY, \
             debit_account TEXT NOT NULL, credit_account TEXT NOT NULL, amount_minor BIGINT NOT NULL, \
             flow TEXT NOT NULL, pending_id TEXT, code TEXT NOT NULL, linked BIGINT NOT NULL, \
             resolved BIGINT NOT NULL, at TEXT NOT NULL)",
            &[],
        )?;
        Ok(())
    })?;
    let t0 = Instant::now();
    for chunk in transfers.chunks(batch) {
        db.with_tx(&mut |tx| {
            for t in chunk {
                tx.exec(
                    "INSERT INTO bench_plain_transfers (transfer_id, debit_account, credit_account, \
                     amount_minor, flow, pending_id, code, linked, resolved, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
                    &[
                        Arg::from(&t.id),
                        Arg::from(&t.debit),
                        Arg::from(&t.credit),
                        Arg::I(t.amount),
                        Arg::from("posted"),
                        Arg::Null,
                        Arg::from(&t.code),
                        Arg::I(0),
                        Arg::from("2026-11-21T00:00:00Z"),
                    ],
                )?;
            }
            Ok(())
        })?;
    }
    let plain = t0.elapsed();
    let open = accounts(100);
    let t0 = Instant::now();
    for chunk in transfers.chunks(batch) {
        db.ledger_apply(&open, chunk, &[], "2026-11-21T00:00:00Z")?;
    }
    let ledger_time = t0.elapsed();
    // Replaying everything is a no-op (idempotency), and the books balance.
    let t0 = Instant::now();
    let mut again = 0;
    for chunk in transfers.chunks(batch) {
        again += db.ledger_apply(&open, chunk, &[], "2026-11-21T00:00:00Z")?;
    }
    let replay = t0.elapsed();
    let sum: i64 = db.ledger_accounts()?.iter().map(|a| a.balance()).sum();
    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "  {name:<9} plain inserts {:>9.0} rows/s | ledger transfers {:>9.0}/s ({:.0}% of baseline) | idempotent replay {:>9.0}/s, {} re-applied | balances sum {}",
        rate(plain),
        rate(ledger_time),
        100.0 * rate(ledger_time) / rate(plain),
        rate(replay),
        again,
        sum
    );
    Ok(())
}

#[allow(clippy::disallowed_methods)]
fn settle_bench(dir: &std::path::Path, n: usize, merchants: usize) -> Result<(), BenchError> {
    let date =
        NaiveDate::from_ymd_opt(2026, 11, 20).ok_or_else(|| BenchError::Setup("date".into()))?;
    // The pure computation.
    let items: Vec<Item> = (0..n)
        .map(|i| Item {
            txn_id: i as i64 + 1,
            rrn: format!("{:012}", i + 1),
            merchant_id: format!("M{:05}", i % merchants),
            kind: if i % 50 == 0 {
                ItemKind::Refund
            } else {
                ItemKind::Sale
            },
            amount_minor: 100 + (i as i64 * 7_919) % 500_000,
            currency: Currency::CNY,
            card: if i % 3 == 0 {
                CardType::Credit
            } else {
                CardType::Debit
            },
            business_date: date,
            hold: None,
        })
        .collect();
    let t0 = Instant::now();
    let run = settlement::settle(date, &items, &Default::default(), &Default::default());
    let pure = t0.elapsed();
    println!(
        "  computation (sans IO): {:.3} s for {} items → {} settlements, {} ledger transfers",
        pure.as_secs_f64(),
        items.len(),
        run.settlements.len(),
        run.transfers.len()
    );
    // The whole run over SQLite: the journal holds the day, `settle_date` does the rest.
    let mut db: Box<dyn Backend> = Box::new(store::SqliteBackend::open_dir(&dir.join("settle"))?);
    db.migrate()?;
    let mut writes: Vec<Write> = (0..merchants)
        .map(|m| {
            Write::Merchant(MerchantRow {
                merchant_id: format!("M{m:05}"),
                name: format!("merchant {m}"),
                city: "Shanghai".into(),
                mcc: "5411".into(),
                status: "active".into(),
                created_at: "2026-01-01T00:00:00+00:00".into(),
                merchant_class: "standard".into(),
                risk_class: "low".into(),
            })
        })
        .collect();
    db.apply(&writes)?;
    let t0 = Instant::now();
    for chunk in items.chunks(10_000) {
        writes = chunk
            .iter()
            .map(|it| {
                Write::NewTxn(TxnRow {
                    txn_id: it.txn_id,
                    request_key: format!("T/1/{}/2", it.txn_id),
                    terminal_id: "T".into(),
                    merchant_id: it.merchant_id.clone(),
                    batch: 1,
                    stan: it.txn_id,
                    mti: "0200".into(),
                    kind: if it.kind == ItemKind::Refund {
                        store::TxnKind::Refund
                    } else {
                        store::TxnKind::Sale
                    },
                    amount_minor: it.amount_minor,
                    currency: "156".into(),
                    pan_token: format!("tok{}", it.txn_id % 10_000),
                    masked_pan: if it.card == CardType::Debit {
                        "622848******0001"
                    } else {
                        "400000******0002"
                    }
                    .into(),
                    rrn: it.rrn.clone(),
                    auth_code: Some("000001".into()),
                    response_code: Some("00".into()),
                    state: store::TxnState::Approved,
                    original_rrn: None,
                    link_stan: None,
                    reply_hex: None,
                    local_date: date.to_string(),
                    created_at: "2026-11-20T04:00:00+00:00".into(),
                    updated_at: "2026-11-20T04:00:00+00:00".into(),
                })
            })
            .collect();
        db.apply(&writes)?;
    }
    let load = t0.elapsed();
    let cfg = services::money::MoneyConfig {
        out_dir: dir.join("files"),
        ..services::money::MoneyConfig::default()
    };
    let t0 = Instant::now();
    let actor = services::accounts::Actor::cli("money-bench", std::process::id());
    let report =
        services::money::settle_date(db.as_mut(), date, &cfg, &actor, "2026-11-20T15:05:00+00:00")?;
    let whole = t0.elapsed();
    let t0 = Instant::now();
    let again =
        services::money::settle_date(db.as_mut(), date, &cfg, &actor, "2026-11-20T15:10:00+00:00")?;
    let rerun = t0.elapsed();
    println!(
        "  whole run on SQLite: {:.1} s for {} transactions ({:.0} txns/s; writing the day's journal took {:.1} s), net {} to {} merchants; rerun {:.2} s, already settled: {}",
        whole.as_secs_f64(),
        report.total(|s| s.txn_count),
        report.total(|s| s.txn_count) as f64 / whole.as_secs_f64().max(1e-9),
        load.as_secs_f64(),
        services::money::major(report.total(|s| s.net_minor)),
        report.settlements.len(),
        rerun.as_secs_f64(),
        again.already_done
    );
    Ok(())
}

/// Starts a new peak-memory measurement: on Linux, writing 5 to `clear_refs` resets
/// the process's `VmHWM` to its current resident size.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %e, "cannot reset the peak-memory mark; figures include earlier stages");
    }
}

/// Current resident memory (Linux `VmRSS`), in MiB.
fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

/// Peak resident memory since the last [`reset_peak`] (Linux `VmHWM`), in MiB.
fn peak_mib() -> Option<f64> {
    proc_status_mib("VmHWM:")
}

fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[allow(clippy::disallowed_methods)]
fn recon_bench(dir: &std::path::Path, n: usize) -> Result<(), BenchError> {
    use recon::ClearingParser as _;
    let date =
        NaiveDate::from_ymd_opt(2026, 11, 20).ok_or_else(|| BenchError::Setup("date".into()))?;
    let mut csv = String::with_capacity(n * 110);
    csv.push_str(
        "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n",
    );
    let mut journal = Vec::with_capacity(n);
    for i in 0..n {
        let amount = 100 + (i as i64 * 7_919) % 500_000;
        csv.push_str(&format!(
            "{:012},{:06},{:06},{:08},898310005411001,622848******1234,t1.ab,{amount},CNY,sale,2026-11-20T10:00:00\n",
            i + 1,
            i % 999_999 + 1,
            i % 999_999 + 1,
            10_000_000 + i % 1_000
        ));
        journal.push(recon::JournalEntry {
            txn_id: i as i64 + 1,
            rrn: format!("{:012}", i + 1),
            auth_code: Some(format!("{:06}", i % 999_999 + 1)),
            terminal: format!("{:08}", 10_000_000 + i % 1_000),
            link_stan: Some((i % 999_999 + 1) as i64),
            kind: "sale".into(),
            // One in a thousand timed out at posguard: phantom debits to find.
            state: if i % 1_000 == 0 {
                "timed_out"
            } else {
                "approved"
            }
            .into(),
            amount_minor: amount,
            original_rrn: None,
            date,
            captured: true,
            acknowledged_adjustments: Vec::new(),
        });
    }
    // The generated file and journal are the inputs; the peak is measured from here.
    reset_peak();
    let before = rss_mib();
    let t0 = Instant::now();
    let parsed = recon::IssuerCsv::default().parse(csv.as_bytes(), date)?;
    let parse = t0.elapsed();
    let t0 = Instant::now();
    let out = recon::reconcile(date, &journal, &parsed.records, true);
    let matching = t0.elapsed();
    println!(
        "  parse {:.2} s, match and classify {:.2} s: {} lines, {} matched, {} findings ({} phantom debits); peak memory {:.0} MiB (of which the generated journal and file, resident before parsing: {:.0} MiB)",
        parse.as_secs_f64(),
        matching.as_secs_f64(),
        parsed.records.len(),
        out.matched_by_rrn + out.matched_by_fallback,
        out.findings.len(),
        out.of(recon::Class::PhantomDebit).count(),
        peak_mib().unwrap_or(0.0),
        before.unwrap_or(0.0)
    );
    let mut db: Box<dyn Backend> = Box::new(store::SqliteBackend::open_dir(&dir.join("recon"))?);
    db.migrate()?;
    drop(out);
    drop(parsed);
    reset_peak();
    let t0 = Instant::now();
    let ing = services::reconcile::ingest(
        db.as_mut(),
        csv.as_bytes(),
        date,
        "bench",
        &services::accounts::Actor::cli("money-bench", std::process::id()),
        "2026-11-21T01:00:00+00:00",
    )?;
    println!(
        "  ingest into SQLite (every line stored, idempotent by hash): {:.1} s for {} lines; peak memory {:.0} MiB",
        t0.elapsed().as_secs_f64(),
        ing.lines,
        peak_mib().unwrap_or(0.0)
    );
    Ok(())
}
