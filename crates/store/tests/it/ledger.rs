//! The persisted ledger and the money rows, on every backend.

use domain::Currency;
use ledger::{Account, AccountKind, Flow, Limit, Transfer};
use store::{HoldRow, StoreError, Write};

use crate::backends;

fn account(id: &str, kind: AccountKind, limit: Limit) -> Account {
    Account {
        id: id.into(),
        kind,
        currency: Currency::CNY,
        limit,
        debits_posted: 0,
        debits_pending: 0,
        credits_posted: 0,
        credits_pending: 0,
    }
}

fn t(id: &str, debit: &str, credit: &str, amount: i64, flow: Flow) -> Transfer {
    Transfer {
        id: id.into(),
        debit: debit.into(),
        credit: credit.into(),
        amount,
        flow,
        code: "test".into(),
        linked: false,
    }
}

#[test]
fn transfers_persist_balance_and_replay_as_no_ops() {
    for b in backends() {
        let mut s = (b.open)();
        s.migrate().expect("migrate");
        let open = [
            account(
                "issuer_receivable",
                AccountKind::IssuerReceivable,
                Limit::None,
            ),
            account(
                "merchant_payable:M1",
                AccountKind::MerchantPayable,
                Limit::DebitsWithinCredits,
            ),
            account("fee_income", AccountKind::FeeIncome, Limit::None),
        ];
        let batch = [
            t(
                "capture:1",
                "issuer_receivable",
                "merchant_payable:M1",
                10_000,
                Flow::Posted,
            ),
            t(
                "fee:1",
                "merchant_payable:M1",
                "fee_income",
                50,
                Flow::Posted,
            ),
            t(
                "hold:1",
                "merchant_payable:M1",
                "fee_income",
                1_000,
                Flow::Pending,
            ),
        ];
        let n = s
            .ledger_apply(&open, &batch, &[], "2026-11-21T00:00:00Z")
            .expect("apply");
        assert_eq!(n, 3, "{}", b.name);
        // Replaying the same batch changes nothing.
        let n = s
            .ledger_apply(&open, &batch, &[], "2026-11-21T00:00:01Z")
            .expect("replay");
        assert_eq!(n, 0, "{}", b.name);
        // Void the pending transfer; a second void is refused and writes nothing.
        let void = [t(
            "void:1",
            "merchant_payable:M1",
            "fee_income",
            1_000,
            Flow::VoidPending {
                pending: "hold:1".into(),
            },
        )];
        assert_eq!(s.ledger_apply(&[], &void, &[], "x").expect("void"), 1);
        let again = [t(
            "void:2",
            "merchant_payable:M1",
            "fee_income",
            1_000,
            Flow::VoidPending {
                pending: "hold:1".into(),
            },
        )];
        assert!(matches!(
            s.ledger_apply(&[], &again, &[], "x"),
            Err(StoreError::Ledger(ledger::LedgerError::PendingResolved(_)))
        ));
        // Over the limit: the whole unit fails, including the rows written with it.
        let hold = Write::Hold(HoldRow {
            hold_id: "manual:1".into(),
            subject: "merchant:M1".into(),
            reason: "test".into(),
            placed_by: "ops".into(),
            placed_at: "x".into(),
            released_by: None,
            released_at: None,
        });
        let too_much = [
            t(
                "payout:a",
                "merchant_payable:M1",
                "fee_income",
                9_000,
                Flow::Posted,
            ),
            t(
                "payout:b",
                "merchant_payable:M1",
                "fee_income",
                9_000,
                Flow::Posted,
            ),
        ];
        assert!(s
            .ledger_apply(&[], &too_much, std::slice::from_ref(&hold), "x")
            .is_err());
        assert!(s.holds(false).expect("holds").is_empty(), "{}", b.name);
        assert_eq!(
            s.ledger_apply(&[], &too_much[..1], &[hold], "x")
                .expect("ok"),
            1
        );
        assert_eq!(s.holds(true).expect("holds").len(), 1);

        let accounts = s.ledger_accounts().expect("accounts");
        let bal: Vec<(String, i64, i64)> = accounts
            .iter()
            .map(|a| (a.id.clone(), a.balance(), a.pending()))
            .collect();
        assert_eq!(
            bal,
            vec![
                ("fee_income".into(), 9_050, 0),
                ("issuer_receivable".into(), -10_000, 0),
                ("merchant_payable:M1".into(), 950, 0),
            ],
            "{}",
            b.name
        );
        assert_eq!(accounts.iter().map(|a| a.balance()).sum::<i64>(), 0);
        let caps = s.ledger_transfers("capture:").expect("transfers");
        assert_eq!(caps.len(), 1);
        assert_eq!(caps[0], batch[0]);
    }
}
