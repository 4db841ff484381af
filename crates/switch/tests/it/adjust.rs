//! Credit adjustments queued by reconciliation: taken from the queue, numbered,
//! signed and sent as 0220; closed by the issuer's 0230, or handed to operators when
//! the issuer refuses.

use iso8583::Dialect;
use records::{SafRow, Write};

use crate::harness::{card, World};

fn saf_writes(w: &World) -> Vec<SafRow> {
    w.writes
        .iter()
        .filter_map(|x| match x {
            Write::Saf(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// A sale approved through the engine, and the queued adjustment for `amount`.
fn approved_sale_and_entry(w: &mut World, amount: i64) -> (i64, SafRow) {
    let mut t = w.terminal(1);
    let c = card();
    w.approve(&mut t, |t| t.sale(&c, 10_000));
    let row = w.txns.values().next_back().expect("the sale").clone();
    assert_eq!(row.state, records::TxnState::Approved);
    let entry = switch::adjustment_entry(&row, 1, amount, "reconciliation: double_debit", "t0")
        .expect("a sale can be adjusted");
    (row.txn_id, entry)
}

#[test]
fn a_queued_adjustment_is_sent_once_and_closed_by_the_issuer() {
    let mut w = World::new();
    let (txn_id, entry) = approved_sale_and_entry(&mut w, 10_000);
    assert_eq!(
        (entry.saf_id, entry.attempts),
        (switch::adjustment_id(txn_id, 1), 0)
    );
    let sent_before = w.to_issuer.len();
    w.feed(switch::Input::SafAdopt { entry });
    assert_eq!(w.to_issuer.len(), sent_before + 1, "sent once");
    let m = Dialect::iso87_ascii()
        .unpack(w.to_issuer.last().expect("sent"))
        .expect("unpacks");
    let row = &w.txns[&txn_id];
    assert_eq!(m.mti().to_string(), "0220");
    assert_eq!(m.get_str(3), Some("220000"));
    assert_eq!(m.get_str(4), Some("000000010000"));
    // Its own RRN; the sale is named by its link reference (MTI, STAN, field 7).
    assert_eq!(
        m.get_str(37),
        Some(format!("A{:011}", txn_id * 8 + 1).as_str())
    );
    let f90 = m.get_str(90).expect("field 90");
    assert!(
        f90.starts_with(&format!("0200{:06}", row.link_stan.expect("link STAN"))),
        "{f90}"
    );
    assert_eq!(m.get_str(38), row.auth_code.as_deref());
    assert_ne!(m.get_str(11), Some("000000"), "numbered when taken");
    assert!(m.has(128), "signed (field 90 makes the MAC field 128)");
    let saf = saf_writes(&w);
    let states: Vec<(&str, i64)> = saf.iter().map(|s| (s.state.name(), s.attempts)).collect();
    assert_eq!(
        states,
        [("pending", 1), ("done", 1)],
        "stored as sent, then closed"
    );
    assert!(
        saf[1].reason.ends_with("issuer answered 00"),
        "{}",
        saf[1].reason
    );
    assert_eq!(
        w.txns[&txn_id].state,
        records::TxnState::Approved,
        "the sale itself stands"
    );
    assert_eq!(w.engine.remembered().2, 0, "nothing left to send");
    assert!(w
        .writes
        .iter()
        .any(|x| matches!(x, Write::Event(e) if e.kind == "adjusted")));
}

#[test]
fn an_adjustment_the_issuer_refuses_goes_to_operators() {
    let mut w = World::new();
    let (_, entry) = approved_sale_and_entry(&mut w, 10_000);
    w.issuer_rc = "13";
    w.feed(switch::Input::SafAdopt { entry });
    let last = saf_writes(&w).pop().expect("written");
    assert_eq!(last.state, records::SafState::Exception);
    assert!(
        last.reason.ends_with("issuer answered 13"),
        "{}",
        last.reason
    );
    assert_eq!(w.engine.remembered().2, 0);
}

#[test]
fn only_sales_and_completions_with_a_positive_amount_are_adjusted() {
    let mut w = World::new();
    let (_, _) = approved_sale_and_entry(&mut w, 1);
    let mut row = w.txns.values().next_back().expect("sale").clone();
    assert!(switch::adjustment_entry(&row, 1, 0, "", "t0").is_none());
    assert!(switch::adjustment_entry(&row, 0, 100, "", "t0").is_none());
    assert!(switch::adjustment_entry(&row, switch::MAX_ADJUSTMENTS + 1, 100, "", "t0").is_none());
    row.kind = records::TxnKind::Refund;
    assert!(switch::adjustment_entry(&row, 1, 100, "", "t0").is_none());
    row.kind = records::TxnKind::Completion;
    assert!(switch::adjustment_entry(&row, 1, 100, "", "t0").is_some());
}

#[test]
fn an_advice_escalated_for_a_transaction_not_remembered_writes_no_guessed_event() {
    // A node that adopted another node's advice does not know the transaction's event
    // numbering: an event numbered 1 would collide with the stored ones and fail the
    // whole batch, the queue entry with it.
    let mut w = World::with_config(switch::Config {
        saf_max_attempts: 1,
        ..switch::Config::default()
    });
    let (_, mut entry) = approved_sale_and_entry(&mut w, 10_000);
    entry.txn_id = 999;
    entry.attempts = 1;
    let saf_id = entry.saf_id;
    w.feed(switch::Input::SafAdopt { entry });
    let before = w.writes.len();
    w.feed(switch::Input::SafTimer { saf_id });
    let after = &w.writes[before..];
    assert!(
        after.iter().any(|x| matches!(x, Write::Saf(s)
            if s.state == records::SafState::Pending && s.attempts == 2 && s.reason.contains("escalated"))),
        "{after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|x| matches!(x, Write::Event(e) if e.txn_id == 999)),
        "{after:?}"
    );
}

#[test]
fn the_next_adjustment_rule() {
    use switch::NextAdjustment::{ByHand, Send, Waiting};
    let e = |state: &str| SafRow {
        saf_id: 0,
        txn_id: 1,
        kind: switch::ADJUSTMENT.into(),
        message_hex: String::new(),
        attempts: 1,
        next_at_ms: 0,
        state: records::SafState::parse(state).expect("state"),
        reason: String::new(),
        owner: None,
        created_at: String::new(),
        updated_at: String::new(),
    };
    // (adjustments so far, what next)
    let cases: Vec<(Vec<SafRow>, switch::NextAdjustment)> = vec![
        (vec![], Send(1)),
        (vec![e("pending")], Waiting),
        (vec![e("done")], Send(2)),
        (vec![e("exception")], Send(2)),
        (vec![e("done"), e("exception")], Send(3)),
        (vec![e("done"), e("pending")], Waiting),
        (vec![e("done"), e("done"), e("done")], ByHand(e("done"))),
        (
            vec![e("exception"), e("exception"), e("exception")],
            ByHand(e("exception")),
        ),
    ];
    for (so_far, want) in cases {
        let states: Vec<&str> = so_far.iter().map(|e| e.state.name()).collect();
        assert_eq!(switch::next_adjustment(&so_far), want, "{states:?}");
    }
}

/// A reversal advice the issuer does not answer is never abandoned: past the
/// configured attempts operators get one exception on the transaction, and the advice
/// is repeated on until the issuer acknowledges it; then the sale is reversed.
#[test]
fn a_reversal_advice_is_repeated_past_its_attempts_until_the_issuer_answers() {
    let mut w = World::with_config(switch::Config {
        saf_max_attempts: 3,
        ..switch::Config::default()
    });
    let mut t = w.terminal(1);
    let c = card();
    w.approve(&mut t, |t| t.sale(&c, 1_000));
    t.cancel_after_approval().unwrap();
    w.issuer_silent = true;
    let req = t.reversal().unwrap().expect("a reversal owed");
    assert!(w.exchange(&mut t, req).is_approved());
    let saf_id = saf_writes(&w).last().expect("the advice is queued").saf_id;
    for _ in 0..12 {
        w.feed(switch::Input::SafTimer { saf_id });
    }
    let last = saf_writes(&w).pop().unwrap();
    assert_eq!(
        (last.state.name(), last.attempts),
        ("pending", 13),
        "{last:?}"
    );
    let alerts = w
        .writes
        .iter()
        .filter(|x| matches!(x, Write::Event(e) if e.kind == "reversal_exception"))
        .count();
    assert_eq!(alerts, 1, "operators are alerted once");
    w.issuer_silent = false;
    w.feed(switch::Input::SafTimer { saf_id });
    assert_eq!(saf_writes(&w).pop().unwrap().state, records::SafState::Done);
    assert!(w
        .txns
        .values()
        .any(|r| r.state == records::TxnState::Reversed));
    assert_eq!(w.engine.remembered().2, 0, "nothing left to send");
}
