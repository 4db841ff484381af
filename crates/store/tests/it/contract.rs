//! Behaviour every backend must share.

use std::sync::{Arc, Mutex};

use store::{
    Backend, EventRow, Journal, JournalConfig, MerchantRow, StoreError, TerminalRow, TxnRow, Write,
};

use crate::backends;

fn merchant() -> MerchantRow {
    MerchantRow {
        merchant_id: "952718182217875".into(),
        name: "DEMO STORE".into(),
        city: "SHANGHAI".into(),
        mcc: "5411".into(),
        status: "active".into(),
        created_at: "2026-11-21T00:00:00Z".into(),
        merchant_class: "small".into(),
        risk_class: "low".into(),
    }
}

fn terminal() -> TerminalRow {
    TerminalRow {
        terminal_id: "00000001".into(),
        merchant_id: "952718182217875".into(),
        status: "active".into(),
        tmk: "TMK:1:00112233445566778899AABBCCDDEEFF:123456".into(),
        pik: None,
        mak: None,
        mak_prev: None,
        key_version: 0,
        batch: 1,
        signed_on: false,
        install_location: "31.2304,121.4737".into(),
        updated_at: "2026-11-21T00:00:00Z".into(),
        key_profile: "003".into(),
        pending_pik: None,
        pending_mak: None,
        tdk: None,
        pending_tdk: None,
    }
}

fn txn(id: i64, stan: i64) -> TxnRow {
    TxnRow {
        txn_id: id,
        request_key: format!("00000001/1/{stan}/2"),
        terminal_id: "00000001".into(),
        merchant_id: "952718182217875".into(),
        batch: 1,
        stan,
        mti: "0200".into(),
        kind: store::TxnKind::Sale,
        amount_minor: 12_345,
        currency: "156".into(),
        pan_token: "t1.00".into(),
        masked_pan: "622848*********0018".into(),
        rrn: format!("6325{id:08}"),
        auth_code: None,
        response_code: None,
        state: store::TxnState::Authorizing,
        original_rrn: None,
        link_stan: Some(id),
        reply_hex: None,
        local_date: "2026-11-21".into(),
        created_at: "2026-11-21T01:00:00Z".into(),
        updated_at: "2026-11-21T01:00:00Z".into(),
    }
}

#[test]
fn migrations_are_idempotent_and_rows_round_trip() {
    for b in backends() {
        let mut db = (b.open)();
        assert_eq!(
            db.migrate().unwrap(),
            store::MIGRATIONS.len() as u32,
            "{}",
            b.name
        );
        assert_eq!(
            db.migrate().unwrap(),
            store::MIGRATIONS.len() as u32,
            "{} second run",
            b.name
        );
        let mut t = terminal();
        db.apply(&[Write::Merchant(merchant()), Write::Terminal(t.clone())])
            .unwrap();
        t.signed_on = true;
        t.key_version = 2;
        t.mak = Some("TAK:2:00:000000".into());
        db.apply(&[Write::Terminal(t.clone())]).unwrap();
        assert_eq!(db.merchants().unwrap(), vec![merchant()], "{}", b.name);
        assert_eq!(db.terminals().unwrap(), vec![t], "{}", b.name);

        let mut x = txn(1, 7);
        db.apply(&[
            Write::NewTxn(x.clone()),
            Write::Event(EventRow {
                txn_id: 1,
                seq: 1,
                at: x.created_at.clone(),
                kind: "received".into(),
                detail: "sale".into(),
            }),
        ])
        .unwrap();
        x.state = store::TxnState::Approved;
        x.auth_code = Some("A1B2C3".into());
        x.response_code = Some("00".into());
        x.reply_hex = Some("0210".into());
        db.apply(&[
            Write::UpdateTxn(x.clone()),
            Write::Event(EventRow {
                txn_id: 1,
                seq: 2,
                at: x.created_at.clone(),
                kind: "approved".into(),
                detail: "00".into(),
            }),
        ])
        .unwrap();
        assert_eq!(
            db.transaction_by_rrn(&x.rrn).unwrap(),
            Some(x.clone()),
            "{}",
            b.name
        );
        assert_eq!(db.transaction_by_rrn("000000000000").unwrap(), None);
        assert_eq!(db.transactions_after(0, 10).unwrap(), vec![x], "{}", b.name);
        assert_eq!(
            db.events(1)
                .unwrap()
                .iter()
                .map(|e| e.kind.as_str())
                .collect::<Vec<_>>(),
            ["received", "approved"]
        );
        assert_eq!(db.max_txn_id().unwrap(), 1);
    }
}

#[test]
fn duplicate_request_key_or_rrn_fails_the_whole_batch() {
    for b in backends() {
        let mut db = (b.open)();
        db.migrate().unwrap();
        db.apply(&[Write::NewTxn(txn(1, 7))]).unwrap();
        let mut dup = txn(2, 7);
        dup.rrn = "632599999999".into();
        let ev = EventRow {
            txn_id: 2,
            seq: 1,
            at: "x".into(),
            kind: "received".into(),
            detail: String::new(),
        };
        let err = db
            .apply(&[Write::Event(ev), Write::NewTxn(dup)])
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{}: {err}", b.name);
        assert!(
            db.events(2).unwrap().is_empty(),
            "{}: the batch is all or nothing",
            b.name
        );
        let mut same_rrn = txn(3, 8);
        same_rrn.rrn = txn(1, 7).rrn;
        assert!(matches!(
            db.apply(&[Write::NewTxn(same_rrn)]),
            Err(StoreError::Duplicate(_))
        ));
    }
}

#[test]
fn journal_group_commit_isolates_a_bad_batch() {
    for b in backends() {
        let mut db = (b.open)();
        db.migrate().unwrap();
        let journal = Journal::start(
            (b.open)(),
            JournalConfig {
                queue_depth: 64,
                max_group_writes: 1000,
            },
        );
        let results = Arc::new(Mutex::new(Vec::new()));
        for i in 1..=200i64 {
            // Batch 100 reuses batch 50's request key: it alone must fail.
            let stan = if i == 100 { 50 } else { i };
            let r = results.clone();
            journal.submit(vec![Write::NewTxn(txn(i, stan))], move |res| {
                r.lock().unwrap().push((i, res.is_ok()))
            });
        }
        let stats_batches = {
            journal.write_sync(vec![]).unwrap();
            journal
                .stats()
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        journal.close();
        let mut res = results.lock().unwrap().clone();
        res.sort();
        assert_eq!(res.len(), 200);
        let failed: Vec<i64> = res.iter().filter(|(_, ok)| !ok).map(|(i, _)| *i).collect();
        assert_eq!(failed, [100], "{}", b.name);
        assert_eq!(db.max_txn_id().unwrap(), 200);
        assert_eq!(
            db.count_in_state(store::TxnState::Authorizing).unwrap(),
            199,
            "{}",
            b.name
        );
        assert_eq!(
            db.count_in_state(store::TxnState::Approved).unwrap(),
            0,
            "{}",
            b.name
        );
        // A restarting node remembers the newest transactions, oldest first.
        let recent: Vec<i64> = db
            .recent_transactions(3)
            .unwrap()
            .iter()
            .map(|t| t.txn_id)
            .collect();
        assert_eq!(recent, [198, 199, 200], "{}", b.name);
        assert_eq!(
            db.transactions_after(0, 1000).unwrap().len(),
            199,
            "{}",
            b.name
        );
        assert_eq!(
            stats_batches, 200,
            "{}: 199 good batches plus the empty one",
            b.name
        );
    }
}

#[test]
fn bad_pg_url_and_bad_dir_are_errors_not_panics() {
    assert!(store::open("postgres://nobody@127.0.0.1:1/none").is_err());
    assert!(store::open("/proc/posguard-cannot-create-this").is_err());
}

fn saf(id: i64, next_at_ms: i64) -> store::SafRow {
    store::SafRow {
        saf_id: id,
        txn_id: id,
        kind: "reversal".into(),
        message_hex: "30343230".into(),
        attempts: 1,
        next_at_ms,
        state: store::SafState::Pending,
        reason: "98 no response".into(),
        owner: None,
        created_at: "2026-11-21T01:00:00Z".into(),
        updated_at: "2026-11-21T01:00:00Z".into(),
    }
}

#[test]
fn saf_entries_are_claimed_when_due_and_leased() {
    for b in backends() {
        let mut db = (b.open)();
        db.migrate().unwrap();
        db.apply(
            &(1..=5)
                .map(|i| Write::Saf(saf(i, i * 1000)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut done = saf(2, 2000);
        done.state = store::SafState::Done;
        db.apply(&[Write::Saf(done)]).unwrap();
        let claimed: Vec<i64> = db
            .claim_due_saf("node-a", 3500, 60_000, 10)
            .unwrap()
            .iter()
            .map(|r| r.saf_id)
            .collect();
        assert_eq!(claimed, [1, 3], "{}: due, pending entries only", b.name);
        assert!(
            db.claim_due_saf("node-b", 3500, 60_000, 10)
                .unwrap()
                .is_empty(),
            "{}: leased entries are not claimed again",
            b.name
        );
        let pending: Vec<i64> = db
            .saf_in_state(store::SafState::Pending)
            .unwrap()
            .iter()
            .map(|r| r.saf_id)
            .collect();
        assert_eq!(pending, [1, 3, 4, 5]);
        assert_eq!(
            db.saf_in_state(store::SafState::Pending).unwrap()[0]
                .owner
                .as_deref(),
            Some("node-a")
        );
        let later: Vec<i64> = db
            .claim_due_saf("node-b", 70_000, 60_000, 2)
            .unwrap()
            .iter()
            .map(|r| r.saf_id)
            .collect();
        assert_eq!(later.len(), 2, "{}: the limit holds", b.name);
    }
}

#[test]
fn concurrent_claims_on_postgres_never_overlap() {
    let Ok(url) = std::env::var("POSGUARD_TEST_PG_URL") else {
        eprintln!("POSGUARD_TEST_PG_URL not set: PostgreSQL SKIP LOCKED test skipped");
        return;
    };
    let schema = format!("store_skip_{}", std::process::id());
    let mut db = store::PgBackend::connect_in_schema(&url, &schema).unwrap();
    db.migrate().unwrap();
    db.apply(&(1..=200).map(|i| Write::Saf(saf(i, 0))).collect::<Vec<_>>())
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let (url, schema) = (url.clone(), schema.clone());
            std::thread::spawn(move || {
                let mut db = store::PgBackend::connect_in_schema(&url, &schema).unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = db
                        .claim_due_saf(&format!("node-{n}"), 1, 600_000, 7)
                        .unwrap();
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|r| r.saf_id));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<_>>(),
        "every entry claimed exactly once"
    );
    db.drop_schema(&schema).unwrap();
}

/// A document is stored once under its SHA-256 and read back whole: beside an SQLite
/// database as a file in the data directory (its row holds what it is, not the bytes),
/// on PostgreSQL in a `bytea` column. A name that is not a SHA-256 reaches no file
/// and no query.
#[test]
fn documents_are_content_addressed_files_or_bytea() {
    use sha2::Digest as _;
    for b in backends() {
        let mut db = (b.open)();
        db.migrate().unwrap();
        let bytes: Vec<u8> = b"%PDF-1.4\n"
            .iter()
            .copied()
            .chain((0..=255u8).cycle().take(70_000))
            .collect();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let row = store::DocumentRow {
            sha256: sha.clone(),
            content_type: "application/pdf".into(),
            size: bytes.len() as i64,
            bytes: bytes.clone(),
            created_at: "2026-12-01T00:00:00+00:00".into(),
        };
        db.apply(&[Write::Document(row.clone())]).unwrap();
        db.apply(&[Write::Document(row.clone())]).unwrap();
        let got = db.document(&sha).unwrap().expect("stored");
        assert_eq!(got.bytes, bytes, "{}", b.name);
        assert_eq!(got.content_type, "application/pdf");
        for name in ["../../etc/passwd", &sha.to_uppercase(), "00"] {
            assert!(db.document(name).unwrap().is_none(), "{} {name}", b.name);
        }
        if b.name == "sqlite" {
            let file = b.dir.join("documents").join(&sha[..2]).join(&sha);
            assert_eq!(std::fs::read(&file).expect("the file"), bytes);
        }
    }
}
