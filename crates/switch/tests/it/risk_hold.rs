//! A risk decision that holds settlement places its hold in the same durable batch.

use records::Write;

use crate::harness::{card, World, START_MS};

#[test]
fn a_held_decision_writes_its_hold_with_it() {
    // Onboarded five days before: a sale over 20,000.00 trips merchant.new_volume (hold).
    let created = chrono::DateTime::from_timestamp_millis(START_MS - 5 * 86_400_000)
        .unwrap()
        .to_rfc3339();
    let mut w = World::with_merchant(|m| m.created_at = created);
    let mut t = w.terminal(1);
    let c = card();
    let small = w.approve(&mut t, |t| t.sale(&c, 10_000)).entry.unwrap();
    let large = w.approve(&mut t, |t| t.sale(&c, 2_500_000)).entry.unwrap();
    let id_of = |w: &World, rrn: &str| {
        w.txns
            .values()
            .find(|r| r.rrn == rrn)
            .map(|r| r.txn_id)
            .unwrap()
    };
    let (small_id, large_id) = (id_of(&w, small.rrn.as_str()), id_of(&w, large.rrn.as_str()));
    let holds: Vec<_> = w
        .writes
        .iter()
        .filter_map(|x| match x {
            Write::Hold(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(holds.len(), 1, "{holds:?}");
    let h = &holds[0];
    assert_eq!(h.hold_id, format!("risk:{large_id}"));
    assert_eq!(h.subject, format!("txn:{large_id}"));
    assert!(h.reason.contains("merchant.new_volume"), "{h:?}");
    assert!(h.placed_by.starts_with("risk rules "), "{h:?}");
    assert!(h.released_at.is_none());
    assert_ne!(small_id, large_id);
    // The hold is written in the same batch as the decision it comes from.
    let decision_at = w
        .writes
        .iter()
        .position(|x| matches!(x, Write::Decision(d) if d.txn_id == large_id && d.hold))
        .expect("a held decision");
    assert!(matches!(&w.writes[decision_at + 1], Write::Hold(x) if x == h));
}

/// Case ids carry the node number, as transaction ids do: two nodes sharing one
/// database never open two cases with the same id (a second node's first case once
/// collided with the first node's, and the sale in the same batch failed with 96).
#[test]
fn case_ids_carry_the_node_number() {
    let mut w = World::with_config(switch::Config {
        node: 2,
        ..switch::Config::default()
    });
    let mut t = w.terminal(1);
    // A large round amount: the cash-out alert opens a case.
    w.approve(&mut t, |t| t.sale(&card(), 500_000));
    let cases: Vec<i64> = w
        .writes
        .iter()
        .filter_map(|x| match x {
            Write::Case(c) => Some(c.case_id),
            _ => None,
        })
        .collect();
    assert_eq!(cases, vec![2_000_000_000_001]);
}

/// An issuer decline is counted under the BIN risk control saw, also for a PAN so
/// short that its masked form keeps fewer than six leading digits (it was read back
/// from the masked PAN, and a 12-digit card's declines went to BIN `62****`).
#[test]
fn an_issuer_decline_of_a_short_pan_counts_under_its_bin() {
    let mut w = World::new();
    w.engine.reload_rules(
        risk::RuleSet::from_toml(
            r#"
version = "bin-test"
[[rule]]
id = "bin.declined"
description = "A BIN declined in the last ten minutes"
when = "bin.declines_10m >= 1"
action = "decline"
code = "05"
"#,
        )
        .unwrap(),
    );
    let mut t = w.terminal(1);
    let short = terminal::Card::new("622848000031", None, "2812", terminal::EntryKind::Chip);
    w.issuer_rc = "51";
    let first = t.sale(&short, 1_000).unwrap();
    let first = w.exchange(&mut t, first);
    assert_eq!(
        first.response_code.map(|c| c.to_string()),
        Some("51".into())
    );
    let second = t.sale(&short, 2_000).unwrap();
    let second = w.exchange(&mut t, second);
    assert_eq!(
        second.response_code.map(|c| c.to_string()),
        Some("05".into())
    );
    assert_eq!(
        w.to_issuer.len(),
        1,
        "the second is declined before the issuer"
    );
}
