//! Batch settlement: the 0500 totals, the balanced close, and the 0320 upload sequence.

use expect_test::{expect, Expect};
use terminal::{BatchEntry, SettlementResult, Terminal, TerminalError, TxKind, Verdict};

use crate::host::{render, FakeHost};
use crate::{answer, chip_card, signed_on};

/// What a customer did, in order; `usize` names an earlier step's approved entry.
#[derive(Clone, Copy)]
enum Op {
    Sale(i64),
    Void(usize),
    Refund(usize, i64),
    PreAuth(i64),
    Completion(usize, i64),
    Cancel(usize),
}

/// Runs the steps against an approving host; returns each step's entry.
fn run(host: &mut FakeHost, t: &mut Terminal, ops: &[Op]) -> Vec<BatchEntry> {
    let card = chip_card();
    let mut entries: Vec<BatchEntry> = Vec::new();
    for op in ops {
        let req = match *op {
            Op::Sale(a) => t.sale(&card, a),
            Op::Void(i) => t.void(&card, &entries[i]),
            Op::Refund(i, a) => t.refund(&card, a, &entries[i]),
            Op::PreAuth(a) => t.pre_auth(&card, a),
            Op::Completion(i, a) => t.completion(a, &entries[i]),
            Op::Cancel(i) => t.pre_auth_cancel(&entries[i]),
        }
        .unwrap();
        let (_, reply) = answer(host, &req.frame, "00");
        let out = t.on_reply(&reply).unwrap();
        assert!(out.is_approved(), "{out:?}");
        entries.push(out.entry.unwrap());
    }
    entries
}

/// The 0500 after the steps.
fn check(ops: &[Op], expect: Expect) {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    run(&mut host, &mut t, ops);
    let req = t.settle().unwrap();
    assert_eq!(req.kind, TxKind::Settle);
    let inc = host.receive(&req.frame);
    assert!(host.mac_ok(&inc), "the 0500 is MACed");
    expect.assert_eq(&render(&inc.msg));
}

#[test]
fn settle_totals() {
    check(
        &[],
        expect![[r#"
            mti 0500
             11 000002
             41 00000001
             42 123456789012345
             48 00000000000000000000000000000000000000000000000000000000000000
             49 156
             60 00000007201
             64 [8 bytes]
        "#]],
    );
    // Debits: sales 1000 + 300 and the completion 4000; the voided sale is out; the
    // refund is a credit; pre-auths, their cancel and the void itself count nowhere.
    check(
        &[
            Op::Sale(1_000),
            Op::Sale(2_000),
            Op::Sale(300),
            Op::Void(1),
            Op::Refund(0, 100),
            Op::PreAuth(5_000),
            Op::Completion(5, 4_000),
            Op::PreAuth(700),
            Op::Cancel(7),
        ],
        expect![[r#"
            mti 0500
             11 000011
             41 00000001
             42 123456789012345
             48 00000000530000300000000010000100000000000000000000000000000000
             49 156
             60 00000007201
             64 [8 bytes]
        "#]],
    );
}

#[test]
fn balanced_settlement_closes_the_batch() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    run(&mut host, &mut t, &[Op::Sale(1_000), Op::Sale(250)]);
    let req = t.settle().unwrap();
    let (_, reply) = answer(&mut host, &req.frame, "00");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.settlement, Some(SettlementResult::Balanced));
    assert!(t.batch().is_empty());
    assert_eq!(t.batch_number(), 8);
    assert_eq!(t.next_upload(), Ok(None));
    // The next sale goes into the new batch.
    let e = run(&mut host, &mut t, &[Op::Sale(5)]);
    assert_eq!(e[0].batch, 8);
}

#[test]
fn not_balanced_uploads_each_entry_then_the_batch_end() {
    let mut host = FakeHost::new();
    host.settle_result = 2;
    let mut t = signed_on(&mut host);
    run(
        &mut host,
        &mut t,
        &[
            Op::Sale(1_000),
            Op::Sale(2_000),
            Op::Void(1),
            Op::Refund(0, 100),
        ],
    );
    let req = t.settle().unwrap();
    let (_, reply) = answer(&mut host, &req.frame, "00");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.settlement, Some(SettlementResult::NotBalanced));
    assert!(t.is_uploading());
    assert_eq!(
        t.batch_number(),
        7,
        "the batch stays open until the upload ends"
    );
    let card = chip_card();
    assert_eq!(t.sale(&card, 1), Err(TerminalError::Settling));
    assert_eq!(t.settle(), Err(TerminalError::Settling));

    let mut shown = String::new();
    let mut last = None;
    for _ in 0..10 {
        let Some(req) = t.next_upload().unwrap() else {
            break;
        };
        let (inc, reply) = answer(&mut host, &req.frame, "00");
        shown.push_str(&render(&inc.msg));
        last = Some(t.on_reply(&reply).unwrap());
    }
    expect![[r#"
        mti 0320
          3 000000
          4 000000001000
         11 000002
         25 00
         37 000000000002
         41 00000001
         42 123456789012345
         49 156
         60 22000007201
         64 [8 bytes]
        mti 0320
          3 200000
          4 000000000100
         11 000005
         25 00
         37 000000000005
         41 00000001
         42 123456789012345
         49 156
         60 25000007201
         64 [8 bytes]
        mti 0320
         11 000007
         41 00000001
         42 123456789012345
         48 0002
         60 00000007202
         64 [8 bytes]
    "#]]
    .assert_eq(&shown);
    assert_eq!(last.unwrap().settlement, Some(SettlementResult::Uploaded));
    assert!(!t.is_uploading());
    assert!(t.batch().is_empty());
    assert_eq!(t.batch_number(), 8);
    assert_eq!(t.next_upload(), Ok(None));
}

#[test]
fn unanswered_settlement_messages_are_repeated_with_their_stan() {
    let mut host = FakeHost::new();
    host.settle_result = 2;
    let mut t = signed_on(&mut host);
    run(&mut host, &mut t, &[Op::Sale(1_000)]);
    let first = t.settle().unwrap();
    assert!(t.on_timeout(first.stan));
    let again = t.settle().unwrap();
    assert_eq!(again.stan, first.stan, "a repeated 0500 keeps its STAN");
    let (_, reply) = answer(&mut host, &again.frame, "00");
    t.on_reply(&reply).unwrap();

    let detail = t.next_upload().unwrap().unwrap();
    assert_eq!(
        detail.stan,
        t.batch()[0].stan,
        "a detail carries its original's STAN"
    );
    assert!(t.on_timeout(detail.stan));
    assert_eq!(t.next_upload().unwrap().unwrap().frame, detail.frame);
    let (_, reply) = answer(&mut host, &detail.frame, "00");
    t.on_reply(&reply).unwrap();

    let end = t.next_upload().unwrap().unwrap();
    assert_eq!(end.kind, TxKind::BatchEnd);
    assert!(t.on_timeout(end.stan));
    let end_again = t.next_upload().unwrap().unwrap();
    assert_eq!(
        end_again.stan, end.stan,
        "a repeated batch end keeps its STAN"
    );
    let (_, reply) = answer(&mut host, &end_again.frame, "00");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.settlement, Some(SettlementResult::Uploaded));
}

#[test]
fn a_refused_upload_leaves_the_batch_open() {
    let mut host = FakeHost::new();
    host.settle_result = 2;
    let mut t = signed_on(&mut host);
    run(&mut host, &mut t, &[Op::Sale(1_000)]);
    let req = t.settle().unwrap();
    let (_, reply) = answer(&mut host, &req.frame, "00");
    t.on_reply(&reply).unwrap();
    let detail = t.next_upload().unwrap().unwrap();
    let (_, reply) = answer(&mut host, &detail.frame, "12");
    let out = t.on_reply(&reply).unwrap();
    assert_eq!(out.verdict, Verdict::Declined);
    assert_eq!(out.settlement, None);
    assert!(!t.is_uploading());
    assert_eq!(t.next_upload(), Ok(None));
    assert_eq!((t.batch().len(), t.batch_number()), (1, 7));
}

#[test]
fn a_settlement_reply_without_totals_is_unusable() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let req = t.settle().unwrap();
    let inc = host.receive(&req.frame);
    let mut reply = host.reply(&inc, "00");
    reply.remove(48);
    let out = t.on_reply(&host.frame(&inc, reply)).unwrap();
    assert_eq!(
        out.verdict,
        Verdict::BadReply("settlement reply without totals")
    );
    assert_eq!((out.settlement, t.batch_number()), (None, 7));
}

#[test]
fn settle_sends_the_pending_reversal_first() {
    let mut host = FakeHost::new();
    let mut t = signed_on(&mut host);
    let sale = t.sale(&chip_card(), 1_000).unwrap();
    assert!(t.on_timeout(sale.stan));
    let req = t.settle().unwrap();
    assert_eq!((req.kind, req.stan), (TxKind::Reversal, sale.stan));
}
