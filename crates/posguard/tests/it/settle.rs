//! Settlement scenarios on SQLite and, when `POSGUARD_TEST_PG_URL` is set, PostgreSQL:
//! a business day of sales, voids, refunds, a terminal batch that never settled, a held
//! merchant and a risk hold → the settlement is exact to the cent, fees included;
//! rerunning the day changes nothing; released holds settle the next day.

use chrono::NaiveDate;
use services::money::{self, MoneyConfig};
use store::{Backend, CaptureRow, DecisionRow, HoldRow, MerchantRow, TermsRow, TxnRow, Write};

use crate::scenarios::{cleanup, stores};

const MA: &str = "898310005411001";
const MB: &str = "898310005411002";
const MC: &str = "898310005411003";
const DEBIT: &str = "622848******1234";
const CREDIT: &str = "400000******0002";

pub fn merchant(id: &str) -> Write {
    Write::Merchant(MerchantRow {
        merchant_id: id.into(),
        name: format!("shop {id}"),
        city: "Shanghai".into(),
        mcc: "5411".into(),
        status: "active".into(),
        created_at: "2026-01-01T00:00:00+00:00".into(),
        merchant_class: "standard".into(),
        risk_class: "low".into(),
    })
}

fn terms(id: &str, cycle: &str) -> Write {
    Write::Terms(TermsRow {
        merchant_id: id.into(),
        settlement_account: format!("6222-{}", &id[11..]),
        cycle: cycle.into(),
        debit_bps: 50,
        credit_bps: 60,
        debit_cap_minor: 2_000,
        min_fee_minor: 1,
        updated_at: "2026-01-01T00:00:00+00:00".into(),
        txn_limit_minor: 0,
        day_limit_minor: 0,
        reserve_bps: 0,
        reserve_days: 0,
    })
}

/// A transaction at a local (UTC+8) time.
#[allow(clippy::too_many_arguments)]
pub fn txn(
    id: i64,
    merchant: &str,
    terminal: &str,
    kind: &str,
    state: &str,
    amount_minor: i64,
    pan: &str,
    local: &str,
) -> Write {
    let local = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("time");
    let utc = local - chrono::Duration::hours(8);
    let at = format!("{}+00:00", utc.format("%Y-%m-%dT%H:%M:%S"));
    Write::NewTxn(TxnRow {
        txn_id: id,
        request_key: format!("{terminal}/1/{id}/2"),
        terminal_id: terminal.into(),
        merchant_id: merchant.into(),
        batch: 1,
        stan: id,
        mti: "0200".into(),
        kind: store::TxnKind::parse(kind).expect("kind"),
        amount_minor,
        currency: "156".into(),
        pan_token: format!("tok{id}"),
        masked_pan: pan.into(),
        rrn: format!("R{id:011}"),
        auth_code: Some("123456".into()),
        response_code: Some(if state == "declined" { "51" } else { "00" }.into()),
        state: store::TxnState::parse(state).expect("state"),
        original_rrn: None,
        link_stan: None,
        reply_hex: None,
        local_date: local.date().to_string(),
        created_at: at.clone(),
        updated_at: at,
    })
}

fn day(db: &mut dyn Backend) {
    let d = "2026-11-20";
    let mut w = vec![merchant(MA), merchant(MB), merchant(MC)];
    w.push(terms(MA, "T+1"));
    w.push(terms(MB, "D+0:50000"));
    w.push(terms(MC, "T+1"));
    // Merchant A, terminal T1 (its batch settled: captured by the batch).
    w.push(txn(
        1,
        MA,
        "T1",
        "sale",
        "approved",
        100_000,
        DEBIT,
        &format!("{d} 09:00"),
    ));
    w.push(txn(
        2,
        MA,
        "T1",
        "sale",
        "approved",
        500_000,
        DEBIT,
        &format!("{d} 10:00"),
    ));
    w.push(txn(
        3,
        MA,
        "T1",
        "sale",
        "approved",
        30_000,
        CREDIT,
        &format!("{d} 11:00"),
    ));
    w.push(txn(
        4,
        MA,
        "T1",
        "sale",
        "voided",
        20_000,
        DEBIT,
        &format!("{d} 12:00"),
    ));
    w.push(txn(
        5,
        MA,
        "T1",
        "void",
        "approved",
        20_000,
        DEBIT,
        &format!("{d} 12:05"),
    ));
    w.push(txn(
        6,
        MA,
        "T1",
        "refund",
        "approved",
        10_000,
        DEBIT,
        &format!("{d} 13:00"),
    ));
    w.push(txn(
        7,
        MA,
        "T1",
        "sale",
        "declined",
        5_000,
        DEBIT,
        &format!("{d} 14:00"),
    ));
    // After the 23:00 cut-off: the next business day.
    w.push(txn(
        8,
        MA,
        "T1",
        "sale",
        "approved",
        8_000,
        DEBIT,
        &format!("{d} 23:30"),
    ));
    // Held by a risk decision.
    w.push(txn(
        13,
        MA,
        "T1",
        "sale",
        "approved",
        40_000,
        DEBIT,
        &format!("{d} 15:00"),
    ));
    w.push(Write::Decision(DecisionRow {
        txn_id: 13,
        version: "v7".into(),
        verdict: "review".into(),
        score: 70,
        hold: true,
        alert: true,
        policy: None,
        matched: "night_high_amount".into(),
        shadow: String::new(),
        details: String::new(),
        facts: String::new(),
        at: "2026-11-20T07:00:00+00:00".into(),
    }));
    // The switch places the hold with the decision.
    w.push(Write::Hold(HoldRow {
        hold_id: "risk:13".into(),
        subject: "txn:13".into(),
        reason: "risk review: night_high_amount".into(),
        placed_by: "risk rules v7".into(),
        placed_at: "2026-11-20T07:00:00+00:00".into(),
        released_by: None,
        released_at: None,
    }));
    for id in [1, 2, 3, 6, 13] {
        w.push(Write::Capture(CaptureRow {
            txn_id: id,
            how: "batch".into(),
            business_date: d.into(),
            at: "2026-11-20T14:00:00+00:00".into(),
        }));
    }
    // Merchant B, terminal T2: its batch never settled.
    w.push(txn(
        9,
        MB,
        "T2",
        "sale",
        "approved",
        88_888,
        CREDIT,
        &format!("{d} 16:00"),
    ));
    w.push(txn(
        10,
        MB,
        "T2",
        "sale",
        "approved",
        10,
        DEBIT,
        &format!("{d} 17:00"),
    ));
    w.push(txn(
        11,
        MB,
        "T2",
        "sale",
        "reversed",
        50_000,
        DEBIT,
        &format!("{d} 18:00"),
    ));
    // Merchant C: held by an operator.
    w.push(txn(
        12,
        MC,
        "T3",
        "sale",
        "approved",
        70_000,
        DEBIT,
        &format!("{d} 19:00"),
    ));
    w.push(Write::Hold(HoldRow {
        hold_id: "manual:1".into(),
        subject: format!("merchant:{MC}"),
        reason: "incomplete qualification".into(),
        placed_by: "ops.li".into(),
        placed_at: "2026-11-19T02:00:00+00:00".into(),
        released_by: None,
        released_at: None,
    }));
    db.apply(&w).expect("seed the day");
}

#[test]
fn a_day_settles_exactly_once_and_released_holds_settle_the_next_day() {
    for store in stores("settle") {
        let out = std::env::temp_dir().join(format!(
            "posguard-settle-files-{}-{}",
            std::process::id(),
            store.len()
        ));
        let mut db = posguard::node::open_store(&store).expect("open");
        day(db.as_mut());
        let cfg = MoneyConfig {
            out_dir: out.clone(),
            ..MoneyConfig::default()
        };
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
        let r = money::settle_date(
            db.as_mut(),
            d1,
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            "2026-11-20T15:30:00+00:00",
        )
        .expect("settle");
        assert!(!r.already_done);
        assert_eq!(r.captured_at_cutoff, 3, "T2 and T3 never settled, {store}");
        let csv = std::fs::read_to_string(out.join("settlement-2026-11-20.csv")).expect("csv");
        expect_test::expect![[r#"
            business_date,settlement_id,merchant_id,settlement_account,gross,fees,refunds,held,net,transactions
            2026-11-20,S20261120-898310005411001,898310005411001,6222-1001,6300.00,26.80,100.00,400.00,6173.20,4
            2026-11-20,S20261120-898310005411002,898310005411002,6222-1002,888.98,5.34,0.00,0.00,883.64,2
            2026-11-20,S20261120-898310005411003,898310005411003,6222-1003,0.00,0.00,0.00,700.00,0.00,0
        "#]]
        .assert_eq(&csv);
        let payouts = std::fs::read_to_string(out.join("payouts-2026-11-20.csv")).expect("csv");
        expect_test::expect![[r#"
            settlement_id,seq,settlement_account,value_date,amount
            S20261120-898310005411001,0,6222-1001,2026-11-23,6173.20
            S20261120-898310005411002,0,6222-1002,2026-11-20,500.00
            S20261120-898310005411002,1,6222-1002,2026-11-23,383.64
        "#]]
        .assert_eq(&payouts);
        let mut held: Vec<_> = r
            .held
            .iter()
            .map(|h| (h.txn_id, h.hold.to_string()))
            .collect();
        held.sort();
        assert_eq!(held.len(), 2);
        assert!(held[0].1.contains("incomplete qualification"), "{held:?}");
        assert_eq!(held[1].0, 13);
        assert!(
            held[1].1.contains("risk review: night_high_amount"),
            "{held:?}"
        );

        let ledger_before = db.ledger_accounts().expect("accounts");
        assert_eq!(ledger_before.iter().map(|a| a.balance()).sum::<i64>(), 0);
        let fees = ledger_before
            .iter()
            .find(|a| a.id == "fee_income")
            .map(|a| a.balance());
        assert_eq!(fees, Some(2_680 + 534));

        // Rerunning the day changes nothing.
        let again = money::settle_date(
            db.as_mut(),
            d1,
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            "2026-11-20T16:00:00+00:00",
        )
        .expect("rerun");
        assert!(again.already_done);
        assert_eq!(again.settlements, r.settlements);
        assert_eq!(db.ledger_accounts().expect("accounts"), ledger_before);
        assert_eq!(
            std::fs::read_to_string(out.join("settlement-2026-11-20.csv")).expect("csv"),
            csv
        );

        // Where is the money, before the payout is confirmed and after.
        let cfg0 = MoneyConfig::default();
        let m = money::txn_money(db.as_mut(), "R00000000001", &cfg0).expect("show");
        assert_eq!(m.status, "settled", "{m}");
        let m = money::txn_money(db.as_mut(), "R00000000013", &cfg0).expect("show");
        assert_eq!(m.status, "held", "{m}");
        let m = money::txn_money(db.as_mut(), "R00000000008", &cfg0).expect("show");
        assert_eq!(m.status, "authorized", "{m}");
        let m = money::txn_money(db.as_mut(), "R00000000004", &cfg0).expect("show");
        assert_eq!(m.status, "voided", "{m}");
        let m = money::txn_money(db.as_mut(), "R00000000011", &cfg0).expect("show");
        assert_eq!(m.status, "reversed", "{m}");
        let (n, amount) = money::confirm_payouts(
            db.as_mut(),
            d1,
            domain::Currency::CNY,
            &services::accounts::Actor::cli("test", 0),
            "2026-11-20T16:00:00+00:00",
        )
        .expect("confirm");
        assert_eq!((n, amount), (1, 50_000));
        let m = money::txn_money(db.as_mut(), "R00000000009", &cfg0).expect("show");
        assert_eq!(
            m.status, "settled",
            "half of B's payout is still instructed: {m}"
        );
        let (n, _) = money::confirm_payouts(
            db.as_mut(),
            NaiveDate::from_ymd_opt(2026, 11, 23).expect("date"),
            domain::Currency::CNY,
            &services::accounts::Actor::cli("test", 0),
            "2026-11-23T01:00:00+00:00",
        )
        .expect("confirm");
        assert_eq!(n, 2);
        let m = money::txn_money(db.as_mut(), "R00000000009", &cfg0).expect("show");
        assert_eq!(m.status, "paid_out", "{m}");

        // Release both holds: the next day settles them, with that day's sale.
        money::release_hold(
            db.as_mut(),
            "manual:1",
            "ops.wang",
            &services::accounts::Actor::cli("test", 1),
            "2026-11-21T01:00:00+00:00",
        )
        .expect("release");
        money::release_hold(
            db.as_mut(),
            "risk:13",
            "analyst.zhao",
            &services::accounts::Actor::cli("test", 1),
            "2026-11-21T01:00:00+00:00",
        )
        .expect("release");
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
        let r2 = money::settle_date(
            db.as_mut(),
            d2,
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            "2026-11-21T15:30:00+00:00",
        )
        .expect("settle day 2");
        let csv2 = std::fs::read_to_string(out.join("settlement-2026-11-21.csv")).expect("csv");
        expect_test::expect![[r#"
            business_date,settlement_id,merchant_id,settlement_account,gross,fees,refunds,held,net,transactions
            2026-11-21,S20261121-898310005411001,898310005411001,6222-1001,480.00,2.40,0.00,0.00,477.60,2
            2026-11-21,S20261121-898310005411003,898310005411003,6222-1003,700.00,3.50,0.00,0.00,696.50,1
        "#]]
        .assert_eq(&csv2);
        assert!(r2.held.is_empty());
        // Every approved, non-reversed sale and refund is settled exactly once.
        let settled = db.settled_ids().expect("settled");
        assert_eq!(
            settled.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 3, 6, 8, 9, 10, 12, 13]
        );
        let accounts = db.ledger_accounts().expect("accounts");
        assert_eq!(accounts.iter().map(|a| a.balance()).sum::<i64>(), 0);
        drop(db);
        cleanup(&store);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// What a command is asked for and does not exist is the caller's mistake: exit 2 and
/// a message naming it (the services' `NotFound`), not a failure of posguard (exit 1).
#[test]
fn commands_asked_for_what_does_not_exist_exit_2() {
    let dir = std::env::temp_dir().join(format!("posguard-notfound-{}", std::process::id()));
    let data = dir.display().to_string();
    for (args, says) in [
        (
            vec!["txn", "show", "--data", &data, "R00000000999"],
            "no transaction with RRN R00000000999",
        ),
        (vec!["case", "show", "--data", &data, "41"], "no case 41"),
        (
            vec![
                "hold", "release", "--data", &data, "--by", "ops", "manual:9",
            ],
            "no hold manual:9",
        ),
        (
            vec!["case", "close", "--data", &data, "41", "maybe"],
            "verdict is fraud or not-fraud",
        ),
    ] {
        let (code, _, err) = crate::run(&args, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
