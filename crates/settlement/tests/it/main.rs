//! Settlement runs: exact numbers, idempotent re-runs, holds released the next day.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use domain::Currency;
use expect_test::expect;
use ledger::{AccountKind, Applied, Ledger, Limit};
use settlement::{business_date, fee, settle, CardType, Cycle, Item, ItemKind, Run, Terms};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn item(
    id: i64,
    merchant: &str,
    kind: ItemKind,
    amount: i64,
    card: CardType,
    date: &str,
    hold: Option<&str>,
) -> Item {
    Item {
        txn_id: id,
        rrn: format!("{id:012}"),
        merchant_id: merchant.into(),
        kind,
        amount_minor: amount,
        currency: Currency::CNY,
        card,
        business_date: d(date),
        hold: hold.map(str::to_owned),
    }
}

fn ledger_for(run: &Run) -> Ledger {
    let mut l = Ledger::new();
    l.open(
        settlement::accounts::ISSUERS,
        AccountKind::IssuerReceivable,
        Currency::CNY,
        Limit::None,
    )
    .unwrap();
    l.open(
        settlement::accounts::FEES,
        AccountKind::FeeIncome,
        Currency::CNY,
        Limit::None,
    )
    .unwrap();
    l.open(
        settlement::accounts::IN_TRANSIT,
        AccountKind::SettlementInTransit,
        Currency::CNY,
        Limit::None,
    )
    .unwrap();
    for s in &run.settlements {
        l.open(
            &settlement::accounts::payable(&s.merchant_id),
            AccountKind::MerchantPayable,
            Currency::CNY,
            Limit::DebitsWithinCredits,
        )
        .unwrap();
    }
    l
}

fn render(run: &Run) -> String {
    let mut out = String::new();
    for s in &run.settlements {
        out.push_str(&format!(
            "{} gross {} refunds {} fees {} held {} net {} count {} payouts {:?}\n",
            s.settlement_id,
            s.gross_minor,
            s.refunds_minor,
            s.fees_minor,
            s.held_minor,
            s.net_minor,
            s.count,
            s.payouts
        ));
    }
    for i in &run.items {
        out.push_str(&format!(
            "  txn {} fee {} net {} held {:?}\n",
            i.txn_id, i.fee_minor, i.net_minor, i.held
        ));
    }
    out
}

#[test]
fn business_date_follows_the_cut_off() {
    let cut = NaiveTime::from_hms_opt(23, 0, 0).unwrap();
    let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    assert_eq!(
        business_date(at("2026-11-20 22:59:59"), cut),
        d("2026-11-20")
    );
    assert_eq!(
        business_date(at("2026-11-20 23:00:00"), cut),
        d("2026-11-21")
    );
    // (business date, the next working day): weekends, and the 2026 holidays with
    // their make-up working days.
    for (day, next) in [
        ("2026-11-20", "2026-11-23"), // Friday → Monday
        ("2026-02-13", "2026-02-14"), // Friday → the make-up Saturday
        ("2026-02-14", "2026-02-24"), // across the Spring Festival
        ("2026-09-30", "2026-10-08"), // across National Day
        ("2026-10-09", "2026-10-10"), // Friday → the make-up Saturday
    ] {
        assert_eq!(settlement::next_working_day(d(day)), d(next), "{day}");
    }
}

#[test]
fn fees_round_half_up_with_minimum_and_cap() {
    // (amount, bps, min, cap) → fee
    for (amount, bps, min, cap, want) in [
        (10_000, 50, 1, 2_000, 50),       // 100.00 at 0.5% = 0.50
        (10_099, 50, 1, 2_000, 50),       // 50.495 → 50
        (10_100, 50, 1, 2_000, 51),       // 50.5 → 51 (half up)
        (100, 50, 1, 2_000, 1),           // 0.5 → 1 (also the minimum)
        (1_000_000, 50, 1, 2_000, 2_000), // 5,000.00 fee capped at 20.00
        (1_000_000, 60, 1, 0, 6_000),     // credit: no cap
    ] {
        assert_eq!(fee(amount, bps, min, cap), want, "{amount} at {bps}");
    }
}

#[test]
fn a_day_settles_exactly_and_a_rerun_changes_nothing() {
    let mut terms = BTreeMap::new();
    terms.insert(
        "M1".to_owned(),
        Terms {
            settlement_account: "6222-0001".into(),
            ..Terms::default()
        },
    );
    terms.insert(
        "M2".to_owned(),
        Terms {
            settlement_account: "6222-0002".into(),
            cycle: Cycle::D0 {
                daily_limit_minor: 50_000,
            },
            ..Terms::default()
        },
    );
    terms.insert(
        "M3".to_owned(),
        Terms {
            settlement_account: "6222-0003".into(),
            ..Terms::default()
        },
    );
    let items = vec![
        item(
            1,
            "M1",
            ItemKind::Sale,
            12_345,
            CardType::Debit,
            "2026-11-20",
            None,
        ),
        item(
            2,
            "M1",
            ItemKind::Sale,
            1_000_000,
            CardType::Debit,
            "2026-11-20",
            None,
        ),
        item(
            3,
            "M1",
            ItemKind::Sale,
            20_000,
            CardType::Credit,
            "2026-11-20",
            None,
        ),
        item(
            4,
            "M1",
            ItemKind::Refund,
            5_000,
            CardType::Debit,
            "2026-11-20",
            None,
        ),
        item(
            5,
            "M1",
            ItemKind::Sale,
            7_777,
            CardType::Debit,
            "2026-11-20",
            Some("risk review: entry.manual"),
        ),
        item(
            6,
            "M2",
            ItemKind::Completion,
            80_000,
            CardType::Credit,
            "2026-11-20",
            None,
        ),
        item(
            7,
            "M2",
            ItemKind::Sale,
            30_000,
            CardType::Debit,
            "2026-11-21",
            None,
        ), // tomorrow's
        item(
            8,
            "M3",
            ItemKind::Sale,
            9_999,
            CardType::Debit,
            "2026-11-20",
            None,
        ),
    ];
    let mut holds = BTreeMap::new();
    holds.insert("M3".to_owned(), "merchant under review".to_owned());
    let run = settle(d("2026-11-20"), &items, &terms, &holds);
    expect![[r#"
        S20261120-M1 gross 1032345 refunds 5000 fees 2182 held 7777 net 1025163 count 4 payouts [(2026-11-23, 1025163)]
        S20261120-M2 gross 80000 refunds 0 fees 480 held 0 net 79520 count 1 payouts [(2026-11-20, 50000), (2026-11-23, 29520)]
        S20261120-M3 gross 0 refunds 0 fees 0 held 9999 net 0 count 0 payouts []
          txn 1 fee 62 net 12283 held None
          txn 2 fee 2000 net 998000 held None
          txn 3 fee 120 net 19880 held None
          txn 4 fee 0 net -5000 held None
          txn 5 fee 0 net 0 held Some("risk review: entry.manual")
          txn 6 fee 480 net 79520 held None
          txn 8 fee 0 net 0 held Some("merchant under review")
    "#]]
    .assert_eq(&render(&run));

    // The ledger: every transfer applies, balances are exact, the books sum to zero.
    let mut l = ledger_for(&run);
    assert!(l
        .apply(&run.transfers)
        .iter()
        .all(|r| r == &Ok(Applied::Done)));
    l.check().unwrap();
    assert_eq!(l.account("fee_income").unwrap().balance(), 2_182 + 480);
    assert_eq!(
        l.account("merchant_payable:M1").unwrap().balance(),
        0,
        "everything owed was paid"
    );
    assert_eq!(
        l.account("settlement_in_transit").unwrap().balance(),
        1_025_163 + 79_520
    );
    // Running the same date again produces the same transfers: nothing moves.
    let again = settle(d("2026-11-20"), &items, &terms, &holds);
    assert_eq!(again, run);
    assert!(l
        .apply(&again.transfers)
        .iter()
        .all(|r| r == &Ok(Applied::AlreadyDone)));

    // The next day the hold on M3 is released and item 5's review cleared: they settle
    // then, with tomorrow's own item; what settled yesterday is not passed again.
    let settled: Vec<i64> = run
        .items
        .iter()
        .filter(|i| i.settlement_id.is_some())
        .map(|i| i.txn_id)
        .collect();
    let mut rest: Vec<Item> = items
        .iter()
        .filter(|i| !settled.contains(&i.txn_id))
        .cloned()
        .collect();
    for i in &mut rest {
        i.hold = None;
    }
    let next = settle(d("2026-11-21"), &rest, &terms, &BTreeMap::new());
    expect![[r#"
        S20261121-M1 gross 7777 refunds 0 fees 39 held 0 net 7738 count 1 payouts [(2026-11-23, 7738)]
        S20261121-M2 gross 30000 refunds 0 fees 150 held 0 net 29850 count 1 payouts [(2026-11-21, 29850)]
        S20261121-M3 gross 9999 refunds 0 fees 50 held 0 net 9949 count 1 payouts [(2026-11-23, 9949)]
          txn 5 fee 39 net 7738 held None
          txn 7 fee 150 net 29850 held None
          txn 8 fee 50 net 9949 held None
    "#]]
    .assert_eq(&render(&next));
    let mut l2 = l.clone();
    for s in &next.settlements {
        let _ = l2.open(
            &settlement::accounts::payable(&s.merchant_id),
            AccountKind::MerchantPayable,
            Currency::CNY,
            Limit::DebitsWithinCredits,
        );
    }
    assert!(l2
        .apply(&next.transfers)
        .iter()
        .all(|r| r == &Ok(Applied::Done)));
    l2.check().unwrap();
}

#[test]
fn merchants_without_terms_are_priced_by_their_mcc_class() {
    use settlement::{fee, MccClass};
    // (mcc, class, fee on a 1,000.00 debit sale, fee on a 10,000.00 debit sale, fee on a 1,000.00 credit sale)
    let cases = [
        ("5411", MccClass::Necessities, 350, 1_300, 380),
        ("8062", MccClass::PublicWelfare, 0, 0, 0),
        ("5812", MccClass::Standard, 500, 2_000, 600),
    ];
    for (mcc, class, debit_small, debit_large, credit) in cases {
        assert_eq!(MccClass::of(mcc), class, "{mcc}");
        let t = class.plan();
        let f = |amount, bps, cap| fee(amount, bps, t.min_fee_minor, cap);
        assert_eq!(
            f(100_000, t.debit_bps, t.debit_cap_minor),
            debit_small,
            "{mcc}"
        );
        assert_eq!(
            f(1_000_000, t.debit_bps, t.debit_cap_minor),
            debit_large,
            "{mcc}"
        );
        assert_eq!(f(100_000, t.credit_bps, 0), credit, "{mcc}");
    }
}

/// A high-risk merchant's rolling reserve: 10% of the run's payable is paid 90 days
/// on (the next working day after), the rest on its cycle; the ledger still balances
/// and the merchant is paid everything it is owed.
#[test]
fn a_reserve_is_paid_when_it_ends() {
    let mut terms = BTreeMap::new();
    terms.insert(
        "MR".to_owned(),
        Terms {
            settlement_account: "6222-0009".into(),
            reserve_bps: 1_000,
            reserve_days: 90,
            ..Terms::default()
        },
    );
    let items = vec![item(
        1,
        "MR",
        ItemKind::Sale,
        100_000,
        CardType::Credit,
        "2026-11-20",
        None,
    )];
    let run = settle(d("2026-11-20"), &items, &terms, &BTreeMap::new());
    let s = &run.settlements[0];
    let net = s.net_minor;
    assert_eq!(net, 100_000 - 600, "0.6% on a credit card");
    // 2026-11-20 is a Friday: T+1 is Monday the 23rd. 90 days from the 20th end on
    // 2027-02-17 (a year the shipped calendar does not hold: weekdays only).
    assert_eq!(
        s.payouts,
        vec![
            (d("2026-11-23"), net - net / 10),
            (d("2027-02-18"), net / 10)
        ]
    );
    let paid: i64 = run
        .transfers
        .iter()
        .filter(|t| t.code == "payout")
        .map(|t| t.amount)
        .sum();
    assert_eq!(paid, net, "everything owed is paid, a tenth later");
}
