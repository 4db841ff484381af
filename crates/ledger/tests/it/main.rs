//! The ledger: scenarios and property tests of its invariants.

use domain::Currency;
use ledger::{AccountKind, Applied, Flow, Ledger, LedgerError, Limit, Transfer};
use proptest::prelude::*;

fn t(id: &str, debit: &str, credit: &str, amount: i64, flow: Flow, linked: bool) -> Transfer {
    Transfer {
        id: id.into(),
        debit: debit.into(),
        credit: credit.into(),
        amount,
        flow,
        code: "test".into(),
        linked,
    }
}

fn ledger() -> Ledger {
    let mut l = Ledger::new();
    l.open(
        "issuer",
        AccountKind::IssuerReceivable,
        Currency::CNY,
        Limit::None,
    )
    .unwrap();
    l.open(
        "m1",
        AccountKind::MerchantPayable,
        Currency::CNY,
        Limit::DebitsWithinCredits,
    )
    .unwrap();
    l.open(
        "m2",
        AccountKind::MerchantPayable,
        Currency::CNY,
        Limit::DebitsWithinCredits,
    )
    .unwrap();
    l.open("fees", AccountKind::FeeIncome, Currency::CNY, Limit::None)
        .unwrap();
    l.open(
        "transit",
        AccountKind::SettlementInTransit,
        Currency::CNY,
        Limit::None,
    )
    .unwrap();
    l.open("usd", AccountKind::Suspense, Currency::USD, Limit::None)
        .unwrap();
    l
}

#[test]
fn capture_fee_payout_and_corrections() {
    let mut l = ledger();
    let r = l.apply(&[
        t("cap1", "issuer", "m1", 10_000, Flow::Posted, false),
        t("fee1", "m1", "fees", 60, Flow::Posted, false),
        t("pay1", "m1", "transit", 9_940, Flow::Posted, false),
    ]);
    assert!(r.iter().all(|r| r == &Ok(Applied::Done)), "{r:?}");
    assert_eq!(l.account("m1").unwrap().balance(), 0);
    assert_eq!(l.account("fees").unwrap().balance(), 60);
    // The same transfer again: nothing changes. A different one under its id: refused.
    assert_eq!(
        l.apply(&[t("cap1", "issuer", "m1", 10_000, Flow::Posted, false)]),
        [Ok(Applied::AlreadyDone)]
    );
    assert_eq!(
        l.apply(&[t("cap1", "issuer", "m1", 10_001, Flow::Posted, false)]),
        [Err(LedgerError::ExistsDifferent("cap1".into()))]
    );
    // Paying a merchant more than it is owed is refused by its limit.
    assert_eq!(
        l.apply(&[t("pay2", "m1", "transit", 1, Flow::Posted, false)]),
        [Err(LedgerError::ExceedsLimit("m1".into()))]
    );
    assert_eq!(
        l.apply(&[t("x", "m1", "usd", 1, Flow::Posted, false)]),
        [Err(LedgerError::CurrencyMismatch)]
    );
    l.check().unwrap();
}

#[test]
fn pending_post_and_void() {
    let mut l = ledger();
    l.apply(&[t("cap", "issuer", "m1", 5_000, Flow::Posted, false)]);
    assert_eq!(
        l.apply(&[t("hold", "m1", "transit", 3_000, Flow::Pending, false)]),
        [Ok(Applied::Done)]
    );
    // While held, a second payout beyond the rest is refused.
    assert_eq!(
        l.apply(&[t("p", "m1", "transit", 2_001, Flow::Posted, false)]),
        [Err(LedgerError::ExceedsLimit("m1".into()))]
    );
    // Post part of the hold; the rest is released.
    let post = Flow::PostPending {
        pending: "hold".into(),
    };
    assert_eq!(
        l.apply(&[t("post", "m1", "transit", 2_500, post.clone(), false)]),
        [Ok(Applied::Done)]
    );
    assert_eq!(l.account("m1").unwrap().balance(), 2_500);
    assert_eq!(l.account("m1").unwrap().pending(), 0);
    assert_eq!(
        l.apply(&[t("post2", "m1", "transit", 1, post, false)]),
        [Err(LedgerError::PendingResolved("hold".into()))]
    );
    l.apply(&[t("hold2", "m1", "transit", 1_000, Flow::Pending, false)]);
    let void = Flow::VoidPending {
        pending: "hold2".into(),
    };
    assert_eq!(
        l.apply(&[t("void", "m1", "transit", 999, void.clone(), false)]),
        [Err(LedgerError::PendingMismatch("hold2".into()))]
    );
    assert_eq!(
        l.apply(&[t("void", "m1", "transit", 1_000, void, false)]),
        [Ok(Applied::Done)]
    );
    assert_eq!(l.account("m1").unwrap().balance(), 2_500);
    l.check().unwrap();
}

#[test]
fn linked_transfers_succeed_or_fail_together() {
    let mut l = ledger();
    let r = l.apply(&[
        t("a", "issuer", "m1", 100, Flow::Posted, true),
        t("b", "m1", "fees", 200, Flow::Posted, false), // over m1's limit: the chain fails
        t("c", "issuer", "m2", 50, Flow::Posted, false),
    ]);
    assert_eq!(
        r,
        [
            Err(LedgerError::LinkedFailed),
            Err(LedgerError::ExceedsLimit("m1".into())),
            Ok(Applied::Done)
        ]
    );
    assert_eq!(l.account("m1").unwrap().balance(), 0);
    assert!(
        l.transfer("a").is_none(),
        "the failed chain left nothing behind"
    );
    assert_eq!(l.account("m2").unwrap().balance(), 50);
    l.check().unwrap();
}

fn op() -> impl Strategy<Value = (u8, u8, u8, i64, u8, bool)> {
    (0u8..6, 0u8..5, 0u8..5, 1i64..5_000, 0u8..20, any::<bool>())
}

proptest! {
    /// Any sequence of operations keeps every balance equation and the zero sum, and
    /// replaying the whole sequence changes nothing.
    #[test]
    fn any_sequence_keeps_the_books_balanced(ops in prop::collection::vec(op(), 1..120)) {
        let accounts = ["issuer", "m1", "m2", "fees", "transit"];
        let mut l = ledger();
        let mut batch = Vec::new();
        let mut pendings: Vec<(String, String, String, i64)> = Vec::new();
        for (i, (kind, d, c, amount, pick, linked)) in ops.into_iter().enumerate() {
            let id = format!("t{i}");
            let (debit, credit) = (accounts[d as usize].to_owned(), accounts[c as usize].to_owned());
            let tr = match kind {
                0 | 1 => t(&id, &debit, &credit, amount, Flow::Posted, linked),
                2 => {
                    pendings.push((id.clone(), debit.clone(), credit.clone(), amount));
                    t(&id, &debit, &credit, amount, Flow::Pending, linked)
                }
                3 | 4 if !pendings.is_empty() => {
                    let (pid, pd, pc, pa) = pendings[pick as usize % pendings.len()].clone();
                    let flow = if kind == 3 { Flow::PostPending { pending: pid } } else { Flow::VoidPending { pending: pid } };
                    let amt = if kind == 3 { 1 + amount % pa } else { pa };
                    t(&id, &pd, &pc, amt, flow, linked)
                }
                _ => t(&id, "issuer", &credit, amount, Flow::Posted, linked),
            };
            batch.push(tr);
        }
        let first: Vec<bool> = l.apply(&batch).iter().map(|r| r.is_ok()).collect();
        prop_assert!(l.check().is_ok(), "{:?}", l.check());
        let balances: Vec<(i64, i64)> = l.accounts().map(|a| (a.balance(), a.pending())).collect();
        // Idempotent replay of what was applied: all AlreadyDone, nothing moves. (A
        // transfer refused the first time may legitimately succeed later, so only the
        // applied ones are replayed.)
        let applied: Vec<Transfer> = batch
            .iter()
            .zip(&first)
            .filter(|(_, ok)| **ok)
            .map(|(t, _)| t.clone())
            .collect();
        for r in l.apply(&applied) {
            prop_assert_eq!(r, Ok(Applied::AlreadyDone));
        }
        let after: Vec<(i64, i64)> = l.accounts().map(|a| (a.balance(), a.pending())).collect();
        prop_assert_eq!(balances, after);
        prop_assert!(l.check().is_ok());
    }
}
