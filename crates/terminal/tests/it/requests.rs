//! Requests as the protocol page lays them out, and replies as the terminal reads them.

use expect_test::{expect, Expect};
use terminal::{BatchEntry, Card, EntryKind, ReplyError, Terminal, TerminalError, TxKind, Verdict};

use crate::host::{render, FakeHost};
use crate::{answer, chip_card, config, signed_on, signed_on_with, PAN, PIN};

#[test]
fn sign_on_asks_for_double_keys_and_installs_them() {
    let mut host = FakeHost::new();
    let mut t = Terminal::new(config());
    assert_eq!(t.sale(&chip_card(), 100), Err(TerminalError::NotSignedOn));
    let req = t.sign_on().unwrap();
    let inc = host.receive(&req.frame);
    expect![[r#"
        mti 0800
         11 000001
         41 00000001
         42 123456789012345
         60 00000001003
         63 001
    "#]]
    .assert_eq(&render(&inc.msg));
    assert_eq!(inc.tpdu.to_bytes(), [0x60, 0x00, 0x03, 0x00, 0x00]);
    let reply = host.reply(&inc, "00");
    let out = t.on_reply(&host.frame(&inc, reply)).unwrap();
    assert_eq!(out.verdict, Verdict::Approved);
    assert!(t.is_signed_on());
    assert_eq!(t.batch_number(), 7, "the sign-on reply sets the batch");
}

#[test]
fn sign_on_with_a_tampered_key_block_does_not_sign_on() {
    let mut host = FakeHost::new();
    let mut t = Terminal::new(config());
    let req = t.sign_on().unwrap();
    let inc = host.receive(&req.frame);
    let mut reply = host.reply(&inc, "00");
    let mut block = reply.get(62).unwrap().to_vec();
    block[0] ^= 1;
    reply.set(62, block);
    let out = t.on_reply(&host.frame(&inc, reply)).unwrap();
    assert_eq!(out.verdict, Verdict::BadReply("working keys do not unwrap"));
    assert!(!t.is_signed_on());
}

/// Builds one request of each kind after a sign-on and an approved sale and pre-auth.
fn check(kind: TxKind, expect: Expect) {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let card = chip_card();
    let sale = approve(&mut host, &mut t, |t| t.sale(&card, 1234));
    let pre = approve(&mut host, &mut t, |t| t.pre_auth(&card, 5000));
    let manual = Card::new(PAN, None, "2812", EntryKind::Manual);
    let req = match kind {
        TxKind::Echo => t.echo(),
        TxKind::SignOff => t.sign_off(),
        TxKind::Balance => t.balance(&card),
        TxKind::Sale => t.sale(&manual, 99),
        TxKind::Void => t.void(&card, &sale),
        TxKind::Refund => t.refund(&card, 234, &sale),
        TxKind::PreAuth => t.pre_auth(&card, 5000),
        TxKind::PreAuthCancel => t.pre_auth_cancel(&pre),
        TxKind::Completion => t.completion(4800, &pre),
        other => panic!("no case for {other}"),
    }
    .unwrap();
    assert_eq!(req.kind, kind);
    let inc = host.receive(&req.frame);
    if kind.is_maced() {
        assert!(host.mac_ok(&inc), "MAC of {kind}");
    } else {
        assert!(!inc.msg.has(64));
    }
    expect.assert_eq(&render(&inc.msg));
}

/// Sends a request and lets the host approve it; returns the batch entry.
fn approve(
    host: &mut FakeHost,
    t: &mut Terminal,
    build: impl FnOnce(&mut Terminal) -> Result<terminal::Request, TerminalError>,
) -> BatchEntry {
    let req = build(t).unwrap();
    let (_, reply) = answer(host, &req.frame, "00");
    let out = t.on_reply(&reply).unwrap();
    assert!(out.is_approved(), "{out:?}");
    out.entry.unwrap()
}

#[test]
fn echo_and_sign_off() {
    check(
        TxKind::Echo,
        expect![[r#"
            mti 0820
             11 000004
             41 00000001
             42 123456789012345
             60 00000007301
        "#]],
    );
    check(
        TxKind::SignOff,
        expect![[r#"
            mti 0820
             11 000004
             41 00000001
             42 123456789012345
             60 00000007002
        "#]],
    );
}

#[test]
fn balance_and_sales() {
    check(
        TxKind::Balance,
        expect![[r#"
            mti 0200
              3 310000
             11 000004
             14 2812
             22 051
             25 00
             35 [32 bytes]
             41 00000001
             42 123456789012345
             52 [8 bytes]
             60 01000007000
             64 [8 bytes]
        "#]],
    );
    check(
        TxKind::Sale,
        expect![[r#"
            mti 0200
              2 [19 bytes]
              3 000000
              4 000000000099
             11 000004
             14 2812
             22 012
             25 00
             41 00000001
             42 123456789012345
             49 156
             60 22000007000
             64 [8 bytes]
        "#]],
    );
    check(
        TxKind::PreAuth,
        expect![[r#"
            mti 0100
              3 030000
              4 000000005000
             11 000004
             14 2812
             22 051
             25 06
             35 [32 bytes]
             41 00000001
             42 123456789012345
             49 156
             52 [8 bytes]
             60 10000007000
             64 [8 bytes]
        "#]],
    );
}

#[test]
fn requests_that_name_an_original() {
    check(
        TxKind::Void,
        expect![[r#"
            mti 0200
              3 200000
              4 000000001234
             11 000004
             25 00
             35 [32 bytes]
             37 000000000002
             38 A00002
             41 00000001
             42 123456789012345
             49 156
             60 23000007000
             61 000007000002
             64 [8 bytes]
        "#]],
    );
    check(
        TxKind::Refund,
        expect![[r#"
            mti 0220
              3 200000
              4 000000000234
             11 000004
             25 00
             35 [32 bytes]
             37 000000000002
             41 00000001
             42 123456789012345
             49 156
             60 25000007000
             61 0000070000020321
             64 [8 bytes]
        "#]],
    );
    check(
        TxKind::PreAuthCancel,
        expect![[r#"
            mti 0100
              3 200000
              4 000000005000
             11 000004
             25 06
             37 000000000003
             38 A00003
             41 00000001
             42 123456789012345
             49 156
             60 11000007000
             61 000007000003
             64 [8 bytes]
        "#]],
    );
    check(
        TxKind::Completion,
        expect![[r#"
            mti 0200
              3 000000
              4 000000004800
             11 000004
             25 06
             37 000000000003
             38 A00003
             41 00000001
             42 123456789012345
             49 156
             60 20000007000
             61 000007000003
             64 [8 bytes]
        "#]],
    );
}

#[test]
fn sale_with_pin_reaches_the_host_intact_and_is_recorded() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.sale(&chip_card(), 12_345).unwrap();
    assert_eq!(t.pending_reversal().map(|p| p.stan), Some(req.stan));
    let (inc, reply) = answer(&mut host, &req.frame, "00");
    assert_eq!(host.pin(&inc).as_deref(), Some(PIN));
    assert_eq!(host.pan(&inc).as_deref(), Some(PAN));
    let out = t.on_reply(&reply).unwrap();
    assert!(out.is_approved());
    assert!(t.pending_reversal().is_none(), "a valid reply clears it");
    let e = &t.batch()[0];
    assert_eq!(
        (
            e.kind,
            e.stan.get(),
            e.batch,
            e.amount_minor,
            e.rrn.as_str()
        ),
        (TxKind::Sale, 2, 7, 12_345, "000000000002")
    );
    assert_eq!(e.date_mmdd.as_deref(), Some("0321"));
}

#[test]
fn declines_are_not_recorded_and_clear_the_reversal() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.sale(&chip_card(), 500).unwrap();
    let (_, reply) = answer(&mut host, &req.frame, "51");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.verdict, Verdict::Declined);
    assert_eq!(out.response_code.unwrap().as_str(), "51");
    assert!(t.batch().is_empty());
    assert!(t.pending_reversal().is_none());
}

#[test]
fn balance_reply_carries_the_balance() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.balance(&chip_card()).unwrap();
    assert!(
        t.pending_reversal().is_none(),
        "inquiries are not reversible"
    );
    let (_, reply) = answer(&mut host, &req.frame, "00");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.balance_minor, Some(123_456));
    assert!(t.batch().is_empty());
}

#[test]
fn voids_close_their_original_and_cannot_repeat() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let card = chip_card();
    let sale = approve(&mut host, &mut t, |t| t.sale(&card, 800));
    let void = approve(&mut host, &mut t, |t| t.void(&card, &sale));
    assert_eq!(void.original, Some((sale.batch, sale.stan)));
    assert!(t.batch()[0].closed);
    assert_eq!(
        t.void(&card, &t.batch()[0].clone()),
        Err(TerminalError::Original(
            "already voided, refunded or completed"
        ))
    );
    let pre = approve(&mut host, &mut t, |t| t.pre_auth(&card, 1000));
    assert_eq!(
        t.completion(1001, &pre),
        Err(TerminalError::Amount(
            "completion above the pre-authorization"
        ))
    );
    assert_eq!(
        t.void(&card, &pre),
        Err(TerminalError::Original("wrong kind of original"))
    );
}

#[test]
fn reply_mac_is_checked() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.sale(&chip_card(), 100).unwrap();
    let (_, mut reply) = answer(&mut host, &req.frame, "00");
    let n = reply.len();
    reply[n - 1] ^= 1;
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.verdict, Verdict::MacFailure);
    assert!(
        t.batch().is_empty(),
        "an unverified approval is not recorded"
    );
}

#[test]
fn stray_and_malformed_replies_leave_the_request_in_flight() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let first = t.sale(&chip_card(), 100).unwrap();
    let (_, first_reply) = answer(&mut host, &first.frame, "00");
    assert!(t.on_timeout(first.stan));
    // The reversal goes out; the late approval of the sale is not its reply.
    let rev = t.sale(&chip_card(), 100).unwrap();
    assert_eq!(rev.kind, TxKind::Reversal);
    assert!(matches!(
        t.on_reply(&first_reply),
        Err(ReplyError::Unexpected { .. })
    ));
    assert!(matches!(
        t.on_reply(&[0x60, 1, 2]),
        Err(ReplyError::Malformed(_))
    ));
    assert_eq!(t.in_flight(), Some((TxKind::Reversal, first.stan)));
    assert!(matches!(t.echo(), Err(TerminalError::Busy(s)) if s == first.stan));
}

#[test]
fn stan_wraps_from_999999_to_000001() {
    let mut host = FakeHost::new();
    let mut cfg = config();
    cfg.first_stan = "999998".parse().unwrap();
    let mut t = signed_on_with(&mut host, cfg);
    let req = t.sale(&chip_card(), 100).unwrap();
    assert_eq!(req.stan.to_string(), "999999");
    let (_, reply) = answer(&mut host, &req.frame, "00");
    t.on_reply(&reply).unwrap();
    let req = t.sale(&chip_card(), 100).unwrap();
    assert_eq!(req.stan.to_string(), "000001");
    assert_eq!(host.receive(&req.frame).str(11), "000001");
}

#[test]
fn batch_mismatch_reply_requires_a_new_sign_on() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.sale(&chip_card(), 100).unwrap();
    let (_, reply) = answer(&mut host, &req.frame, "77");
    t.on_reply(&reply).unwrap();
    assert!(!t.is_signed_on());
    assert_eq!(t.sale(&chip_card(), 100), Err(TerminalError::NotSignedOn));
}

#[test]
fn bad_cards_are_refused_before_anything_is_sent() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let stan = t.next_stan();
    let bad = Card::new("1234", None, "2812", EntryKind::Magstripe);
    assert!(matches!(t.sale(&bad, 100), Err(TerminalError::Card(_))));
    let bad_pin = Card::new(PAN, Some("12"), "2812", EntryKind::Chip);
    assert!(matches!(t.sale(&bad_pin, 100), Err(TerminalError::Card(_))));
    assert!(matches!(
        t.sale(&chip_card(), 0),
        Err(TerminalError::Amount(_))
    ));
    assert_eq!(t.next_stan(), stan, "no STAN is used up");
    assert!(t.pending_reversal().is_none());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let card = chip_card();
    let req = t.sale(&card, 100).unwrap();
    let shown = format!("{card:?} {req:?} {t:?} {:?}", config());
    assert!(!shown.contains(PAN) && !shown.contains(PIN), "{shown}");
    assert!(!shown.contains(crate::host::TMK), "{shown}");
    assert!(shown.contains("622848*********0018"), "{shown}");
}
