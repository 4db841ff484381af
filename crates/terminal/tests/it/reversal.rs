//! The pending reversal: stored before a reversible request leaves, sent before the next
//! transaction when no valid reply came, repeated until a valid 0410.

use expect_test::expect;
use terminal::{Terminal, TxKind, Verdict};

use crate::host::{render, FakeHost};
use crate::{answer, chip_card, signed_on};

/// A reply MAC failure means the keys disagree: the terminal must sign on again first.
fn sign_on_again(host: &mut FakeHost, t: &mut Terminal) {
    assert!(!t.is_signed_on(), "a MAC failure drops the sign-on");
    assert!(
        t.sale(&chip_card(), 1).is_err(),
        "nothing goes out before a new sign-on"
    );
    let so = t.sign_on().unwrap();
    let inc = host.receive(&so.frame);
    let r = host.reply(&inc, "00");
    assert!(t.on_reply(&host.frame(&inc, r)).unwrap().is_approved());
}

/// Asks for a sale and expects the 0400 instead; returns the host's view of it.
fn expect_reversal(host: &FakeHost, t: &mut Terminal, stan: &str, reason: &str) -> Vec<u8> {
    let req = t.sale(&chip_card(), 999).unwrap();
    assert_eq!(req.kind, TxKind::Reversal);
    assert_eq!(req.stan.to_string(), stan);
    let inc = host.receive(&req.frame);
    assert!(host.mac_ok(&inc), "the reversal is MACed");
    assert_eq!(inc.msg.mti().as_str(), "0400");
    assert_eq!(inc.str(11), stan, "a reversal carries its original's STAN");
    assert_eq!(inc.str(39), reason);
    assert!(!inc.msg.has(52), "a reversal never repeats the PIN block");
    req.frame
}

#[test]
fn timeout_leaves_a_98_reversal_sent_before_the_next_transaction_until_acknowledged() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let sale = t.sale(&chip_card(), 2500).unwrap();
    let stan = sale.stan.to_string();
    // No reply: the caller's timer fires.
    assert!(
        !t.on_timeout("000999".parse().unwrap()),
        "not the request in flight"
    );
    assert!(t.on_timeout(sale.stan));
    let first = expect_reversal(&host, &mut t, &stan, "98");
    expect![[r#"
        mti 0400
          3 000000
          4 000000002500
         11 000002
         14 2812
         22 051
         25 00
         35 [32 bytes]
         39 98
         41 00000001
         42 123456789012345
         49 156
         60 22000007000
         64 [8 bytes]
    "#]]
    .assert_eq(&render(&host.receive(&first).msg));
    // The reversal times out too: the next call hands it out again.
    assert!(t.on_timeout(sale.stan));
    let again = expect_reversal(&host, &mut t, &stan, "98");
    assert_eq!(t.pending_reversal().unwrap().attempts, 2);
    // A 0410 whose MAC fails does not clear it either.
    let (_, mut bad) = answer(&mut host, &again, "00");
    let n = bad.len();
    bad[n - 2] ^= 0x10;
    assert_eq!(t.on_reply(&bad).unwrap().verdict, Verdict::MacFailure);
    sign_on_again(&mut host, &mut t);
    let third = expect_reversal(&host, &mut t, &stan, "98");
    let (_, ok) = answer(&mut host, &third, "00");
    let out = t.on_reply(&ok).unwrap();
    assert_eq!(
        (out.kind, out.verdict),
        (TxKind::Reversal, Verdict::Approved)
    );
    assert!(t.pending_reversal().is_none());
    // Now the sale itself goes out, with a fresh STAN (000003 went to the new sign-on).
    let next = t.sale(&chip_card(), 999).unwrap();
    assert_eq!(
        (next.kind, next.stan.to_string().as_str()),
        (TxKind::Sale, "000004")
    );
    assert!(t.batch().is_empty(), "the reversed sale was never recorded");
}

#[test]
fn reply_with_a_bad_mac_leaves_an_a0_reversal() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let sale = t.sale(&chip_card(), 700).unwrap();
    let (_, mut reply) = answer(&mut host, &sale.frame, "00");
    let n = reply.len();
    reply[n - 8] ^= 0x01;
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.verdict, Verdict::MacFailure);
    assert_eq!(
        out.response_code.unwrap().as_str(),
        "00",
        "as received, untrusted"
    );
    let pending = t.pending_reversal().unwrap();
    assert_eq!((pending.stan, pending.reason.as_str()), (sale.stan, "A0"));
    sign_on_again(&mut host, &mut t);
    let rev = expect_reversal(&host, &mut t, &sale.stan.to_string(), "A0");
    let (_, ack) = answer(&mut host, &rev, "00");
    t.on_reply(&ack).unwrap();
    assert!(t.pending_reversal().is_none());
}

#[test]
fn reply_without_a_mac_counts_as_a_mac_failure() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let sale = t.sale(&chip_card(), 700).unwrap();
    let inc = host.receive(&sale.frame);
    let reply = host.reply(&inc, "00");
    // Packed as network management would be: no field 64.
    let mut packed = iso8583::Dialect::cup_pos().pack(&reply).unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&inc.tpdu.reply().to_bytes());
    body.extend_from_slice(&inc.header.0);
    body.append(&mut packed);
    assert_eq!(t.on_reply(&body).unwrap().verdict, Verdict::MacFailure);
    assert_eq!(t.pending_reversal().unwrap().reason.as_str(), "A0");
}

#[test]
fn customer_cancel_after_approval_reverses_with_06() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    assert!(t.cancel_after_approval().is_err(), "nothing approved yet");
    let sale = t.sale(&chip_card(), 4200).unwrap();
    let (_, reply) = answer(&mut host, &sale.frame, "00");
    assert!(t.on_reply(&reply).unwrap().is_approved());
    assert_eq!(t.batch().len(), 1);
    assert_eq!(t.cancel_after_approval().unwrap(), sale.stan);
    assert!(t.batch().is_empty(), "a cancelled sale leaves the batch");
    let rev = expect_reversal(&host, &mut t, &sale.stan.to_string(), "06");
    let inc = host.receive(&rev);
    assert_eq!(inc.str(4), "000000004200");
    let (_, ack) = answer(&mut host, &rev, "00");
    t.on_reply(&ack).unwrap();
    assert!(t.pending_reversal().is_none());
}

#[test]
fn cancelled_void_reopens_its_sale() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let card = chip_card();
    let sale = t.sale(&card, 300).unwrap();
    let (_, r) = answer(&mut host, &sale.frame, "00");
    let sale = t.on_reply(&r).unwrap().entry.unwrap();
    let void = t.void(&card, &sale).unwrap();
    let (_, r) = answer(&mut host, &void.frame, "00");
    assert!(t.on_reply(&r).unwrap().is_approved());
    assert!(t.batch()[0].closed);
    t.cancel_after_approval().unwrap();
    assert_eq!(t.batch().len(), 1);
    assert!(
        !t.batch()[0].closed,
        "the void is reversed, the sale stands"
    );
}

#[test]
fn non_reversible_requests_leave_no_reversal() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let card = chip_card();
    let bal = t.balance(&card).unwrap();
    assert!(t.on_timeout(bal.stan));
    assert!(t.pending_reversal().is_none());
    let sale = t.sale(&card, 300).unwrap();
    let (_, r) = answer(&mut host, &sale.frame, "00");
    let sale = t.on_reply(&r).unwrap().entry.unwrap();
    let refund = t.refund(&card, 100, &sale).unwrap();
    assert!(
        t.pending_reversal().is_none(),
        "refunds are advices, not reversed"
    );
    assert!(t.on_timeout(refund.stan));
    assert_eq!(t.sale(&card, 1).unwrap().kind, TxKind::Sale);
}

#[test]
fn a_reversal_survives_a_new_sign_on() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let sale = t.sale(&chip_card(), 700).unwrap();
    let (_, reply) = answer(&mut host, &sale.frame, "00");
    let mut reply = reply;
    let n = reply.len();
    reply[n - 3] ^= 0x04;
    t.on_reply(&reply).unwrap();
    // Sign on again (as after a MAC problem); the reversal is still owed afterwards.
    let so = t.sign_on().unwrap();
    let inc = host.receive(&so.frame);
    let r = host.reply(&inc, "00");
    t.on_reply(&host.frame(&inc, r)).unwrap();
    expect_reversal(&host, &mut t, &sale.stan.to_string(), "A0");
}
