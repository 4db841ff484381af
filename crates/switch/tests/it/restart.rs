//! What a restarted engine still knows about the transactions it reloads.

use domain::ResponseCode;

use crate::harness::{card, World};

#[test]
fn refunds_taken_before_a_restart_still_count_against_the_sale() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let c = card();
    let sale = w.approve(&mut t, |t| t.sale(&c, 10_000)).entry.unwrap();
    w.approve(&mut t, |t| t.refund(&c, 6_000, &sale));
    w.restart();
    // 6,000 of the 10,000 are already refunded: another 6,000 is too much.
    let req = t.refund(&c, 6_000, &sale).unwrap();
    let out = w.exchange(&mut t, req);
    assert_eq!(
        out.response_code,
        Some(ResponseCode::INVALID_AMOUNT),
        "{out:?}"
    );
    // The remaining 4,000 still can be.
    w.approve(&mut t, |t| t.refund(&c, 4_000, &sale));
}

#[test]
fn what_the_engine_remembers_stays_bounded() {
    let mut w = World::with_config(switch::Config {
        max_remembered: 10,
        ..switch::Config::default()
    });
    let mut t = w.terminal(1);
    let c = card();
    for _ in 0..30 {
        // A sale the customer cancels after approval: the terminal reverses it, the
        // engine sends a reversal advice and the issuer acknowledges it.
        w.approve(&mut t, |t| t.sale(&c, 1_000));
        t.cancel_after_approval().unwrap();
        let req = t.reversal().unwrap().expect("a reversal owed");
        let out = w.exchange(&mut t, req);
        assert!(out.is_approved(), "{out:?}");
    }
    let (txns, links, saf) = w.engine.remembered();
    assert!(txns <= 10, "transactions {txns}");
    assert!(links <= 10, "issuer-link keys {links}");
    assert_eq!(saf, 0, "acknowledged advices are forgotten");
    // Every reversal reached the journal as acknowledged.
    let reversed = w
        .txns
        .values()
        .filter(|r| r.state == records::TxnState::Reversed)
        .count();
    assert_eq!(reversed, 30);
}

#[test]
fn a_failed_first_write_answers_96_and_forgets_the_transaction() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let c = card();
    let req = t.sale(&c, 1_000).unwrap();
    let frame = req.frame.clone();
    w.fail_next_persist = true;
    let out = w.exchange(&mut t, req);
    assert_eq!(
        out.response_code,
        Some(ResponseCode::SYSTEM_MALFUNCTION),
        "{out:?}"
    );
    assert_eq!(w.engine.in_flight(), 0);
    assert!(w.txns.is_empty(), "nothing reached the journal");
    // The same request again is handled afresh, not treated as a duplicate of nothing.
    let replies = w.deliver(&frame);
    assert_eq!(replies.len(), 1, "a retransmission is answered");
    assert_eq!(w.txns.len(), 1);
    assert_eq!(
        w.txns.values().next().unwrap().state,
        records::TxnState::Approved
    );
}

#[test]
fn past_the_in_flight_limit_requests_are_refused_91_and_not_sent() {
    let mut w = World::with_config(switch::Config {
        max_in_flight: 1,
        ..switch::Config::default()
    });
    let mut t = w.terminal(1);
    let c = card();
    w.issuer_silent = true;
    let first = t.sale(&c, 1_000).unwrap();
    assert!(w.deliver(&first.frame).is_empty(), "waiting for the issuer");
    assert_eq!(w.engine.in_flight(), 1);
    let sent = w.to_issuer.len();
    // A second terminal's sale: refused 91, nothing sent to the issuer.
    let mut t2 = w.terminal(500);
    let req = t2.sale(&c, 2_000).unwrap();
    let out = w.exchange(&mut t2, req);
    assert_eq!(
        out.response_code,
        Some(ResponseCode::ISSUER_INOPERATIVE),
        "{out:?}"
    );
    assert_eq!(w.to_issuer.len(), sent);
}

/// After a restart the link STAN goes on from where it was: a new reversal advice
/// never takes the STAN of one still waiting for the issuer (with the counter back at
/// 1 it did, the issuer's answer to the old advice was taken for the new one, and the
/// old one was repeated for ever).
#[test]
fn advices_sent_after_a_restart_never_reuse_a_waiting_advices_stan() {
    use iso8583::Dialect;
    let stan_of = |m: &[u8]| {
        Dialect::iso87_ascii()
            .unpack(m)
            .unwrap()
            .stan()
            .unwrap()
            .get()
    };
    let mut w = World::new();
    let mut t = w.terminal(1);
    let c = card();
    w.approve(&mut t, |t| t.sale(&c, 1_000));
    t.cancel_after_approval().unwrap();
    w.issuer_silent = true;
    let req = t.reversal().unwrap().expect("a reversal owed");
    assert!(w.exchange(&mut t, req).is_approved());
    let waiting = stan_of(w.to_issuer.last().unwrap());
    w.restart();
    w.recover();
    w.issuer_silent = false;
    let mut t = w.terminal(100);
    w.approve(&mut t, |t| t.sale(&c, 2_000));
    t.cancel_after_approval().unwrap();
    let req = t.reversal().unwrap().expect("a reversal owed");
    assert!(w.exchange(&mut t, req).is_approved());
    let since_restart: Vec<u32> = w.to_issuer[w.to_issuer.len() - 2..]
        .iter()
        .map(|m| stan_of(m))
        .collect();
    assert!(
        !since_restart.contains(&waiting),
        "STAN {waiting} of the waiting advice reused: {since_restart:?}"
    );
    // The old advice is answered when repeated; both sales end reversed.
    let saf_ids: std::collections::BTreeSet<i64> = w
        .writes
        .iter()
        .filter_map(|x| match x {
            records::Write::Saf(s) => Some(s.saf_id),
            _ => None,
        })
        .collect();
    for saf_id in saf_ids {
        w.feed(switch::Input::SafTimer { saf_id });
    }
    assert_eq!(w.engine.remembered().2, 0, "every advice acknowledged");
    let reversed = w
        .txns
        .values()
        .filter(|r| r.state == records::TxnState::Reversed)
        .count();
    assert_eq!(reversed, 2);
}

/// A terminal reversal whose amount differs from its original still names it (by
/// terminal, batch and STAN): the original is reversed at the issuer for its own
/// amount and the difference is recorded. Answered 25, it left the cardholder debited
/// for a sale the terminal reported as failed.
#[test]
fn a_reversal_with_another_amount_reverses_its_original_for_the_originals_amount() {
    use iso8583::Dialect;
    let mut w = World::new();
    let mut t = w.terminal(1);
    let c = card();
    w.approve(&mut t, |t| t.sale(&c, 1_000));
    t.cancel_after_approval().unwrap();
    let req = t.reversal().unwrap().expect("a reversal owed");
    let other = w.tamper(&req.frame, |m| {
        m.set(4, "000000000999");
    });
    let sent = w.to_issuer.len();
    let out = w.exchange_as(&mut t, &other);
    assert!(out.is_approved(), "{out:?}");
    let advice = Dialect::iso87_ascii()
        .unpack(&w.to_issuer[sent])
        .expect("a reversal advice went to the issuer");
    assert_eq!(advice.mti().as_str(), "0420");
    assert_eq!(
        advice.get_str(4),
        Some("000000001000"),
        "the original's amount"
    );
    let sale = w
        .txns
        .values()
        .find(|r| r.kind == records::TxnKind::Sale)
        .unwrap();
    assert_eq!(sale.state, records::TxnState::Reversed);
    assert!(w
        .writes
        .iter()
        .any(|x| matches!(x, records::Write::Event(e) if e.kind == "reversal_amount_differs")));
}

/// A terminal reversal of an original older than what the node keeps in memory is
/// answered 25 (the engine cannot tell whether it was approved) and becomes an
/// operator exception with the evidence, never a silent 25.
#[test]
fn a_reversal_of_a_forgotten_original_is_an_operator_exception() {
    let mut w = World::with_config(switch::Config {
        max_remembered: 2,
        ..switch::Config::default()
    });
    let mut t = w.terminal(1);
    let c = card();
    for amount in [1_000, 1_001, 1_002, 1_003] {
        w.approve(&mut t, |t| t.sale(&c, amount));
    }
    t.cancel_after_approval().unwrap();
    let req = t.reversal().unwrap().expect("a reversal owed");
    // The same reversal, naming the first sale (STAN 1), long forgotten.
    let first = w.tamper(&req.frame, |m| {
        m.set(11, "000001");
        m.set(4, "000000001000");
    });
    let replies = w.replies(&first);
    assert_eq!(replies[0].get_str(39), Some("25"));
    assert!(w
        .writes
        .iter()
        .any(|x| matches!(x, records::Write::Event(e) if e.kind == "reversal_exception")));
}
