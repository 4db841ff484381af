//! Batch settlement end to end: a real terminal settles its batch with the engine;
//! the test reads the captures, settlement records and differences the engine wrote.

use std::collections::BTreeSet;

use expect_test::{expect, Expect};
use iso8583::subfields::BatchTotals;
use iso8583::Message;
use terminal::{BatchEntry, Outcome, SettlementResult, Terminal, TxKind, Verdict};

use crate::harness::{card, World, MID, TID};

/// Sales of 1000, 2000 and 300, a void of the 2000 and a refund of 100 on the first:
/// posguard's debits 1300 (2), credits 100 (1). Returns the sales' entries.
fn trade(w: &mut World, t: &mut Terminal) -> Vec<BatchEntry> {
    let c = card();
    let mut sales = Vec::new();
    for amount in [1_000, 2_000, 300] {
        sales.push(w.approve(t, |t| t.sale(&c, amount)).entry.unwrap());
    }
    w.approve(t, |t| t.void(&c, &sales[1]));
    w.approve(t, |t| t.refund(&c, 100, &sales[0]));
    sales
}

/// Runs the upload the terminal owes; `edit` may replace a message before it leaves
/// (a tampered terminal record). Returns the last outcome (the batch end's).
fn upload(
    w: &mut World,
    t: &mut Terminal,
    mut edit: impl FnMut(&mut World, &Message) -> Option<Vec<u8>>,
) -> Outcome {
    let mut last = None;
    for _ in 0..100 {
        let Some(req) = t.next_upload().unwrap() else {
            break;
        };
        let frame = edit(w, &World::open(&req.frame)).unwrap_or(req.frame);
        let out = w.exchange_as(t, &frame);
        assert!(out.is_approved(), "{out:?}");
        last = Some(out);
    }
    last.expect("an upload")
}

/// STANs the last settlement captured.
fn captured_stans(w: &World, since: usize) -> BTreeSet<i64> {
    w.writes[since..]
        .iter()
        .filter_map(|x| match x {
            records::Write::Capture(c) => Some(w.txns[&c.txn_id].stan),
            _ => None,
        })
        .collect()
}

#[test]
fn balanced_batch_is_captured_and_the_terminal_moves_on() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let sales = trade(&mut w, &mut t);
    // Signed on before the settlement, this one keeps believing in batch 1 (it signs
    // on after `t` has used its keys: keys a terminal has not used yet are replaced by
    // the next sign-on).
    let mut stale = w.terminal(500);
    let since = w.writes.len();
    let req = t.settle().unwrap();
    let out = w.exchange(&mut t, req);
    assert_eq!(out.settlement, Some(SettlementResult::Balanced), "{out:?}");
    let reply = w.last_reply.take().unwrap();
    expect![[r#"
        0510 39 00 48 00000000130000200000000010000110000000000000000000000000000001
    "#]]
    .assert_eq(&format!(
        "{} 39 {} 48 {}\n",
        reply.mti(),
        reply.get_str(39).unwrap(),
        reply.get_str(48).unwrap()
    ));
    expect![[r#"
        settlement 00000001 batch 1 balanced uploaded 0
          terminal 00000000130000200000000010000100000000000000000000000000000000
          posguard 00000000130000200000000010000100000000000000000000000000000000
        capture sale stan 2 1000 (approved) how batch date 2026-11-18
        capture sale stan 4 300 (approved) how batch date 2026-11-18
        capture refund stan 6 100 (approved) how batch date 2026-11-18
        terminal 00000001 now in batch 2
    "#]]
    .assert_eq(&w.settlement_writes(since));
    assert_eq!(t.batch_number(), 2);
    assert!(t.batch().is_empty());

    // The old batch is closed: a sale in it gets 77, a void of its sale 12.
    let c = card();
    let old = stale.sale(&c, 700).unwrap();
    let old = w.exchange(&mut stale, old);
    assert_eq!(old.response_code.map(|r| r.to_string()), Some("77".into()));
    let void = t.void(&c, &sales[2]).unwrap();
    let void = w.exchange(&mut t, void);
    assert_eq!(void.response_code.map(|r| r.to_string()), Some("12".into()));
    // The new batch works.
    let new = w.approve(&mut t, |t| t.sale(&c, 800));
    assert_eq!(new.entry.unwrap().batch, 2);
}

#[test]
fn a_repeated_settlement_gets_the_same_answer() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    trade(&mut w, &mut t);
    let req = t.settle().unwrap();
    let first = w.deliver(&req.frame);
    let writes = w.writes.len();
    // The 0510 was lost: the terminal times out and sends the same 0500 again.
    assert!(t.on_timeout(req.stan));
    let again = t.settle().unwrap();
    assert_eq!(again.frame, req.frame);
    let second = w.deliver(&again.frame);
    assert_eq!(second, first, "answered from memory, not with 77");
    assert_eq!(w.writes.len(), writes, "nothing settled twice");
    let out = t.on_reply(&second[0]).unwrap();
    assert_eq!(out.settlement, Some(SettlementResult::Balanced));
}

#[test]
fn posguard_only_when_the_terminal_lost_an_approval() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    trade(&mut w, &mut t);
    // posguard approves a sale the terminal never recorded (another instance of the
    // same terminal stands in for the approval it lost).
    let mut lost = w.terminal(500);
    let c = card();
    w.approve(&mut lost, |t| t.sale(&c, 4_200));
    let since = w.writes.len();
    let req = t.settle().unwrap();
    let out = w.exchange(&mut t, req);
    assert_eq!(out.settlement, Some(SettlementResult::NotBalanced));
    let f48 = w.last_reply.take().unwrap().get_str(48).unwrap().to_owned();
    assert_eq!((&f48[30..31], &f48[61..62]), ("2", "1"), "{f48}");
    let end = upload(&mut w, &mut t, |_, _| None);
    assert_eq!(end.settlement, Some(SettlementResult::Uploaded));
    expect![[r#"
        settlement 00000001 batch 1 not_balanced uploaded 0
          terminal 00000000130000200000000010000100000000000000000000000000000000
          posguard 00000000550000300000000010000100000000000000000000000000000000
        settlement 00000001 batch 1 uploaded uploaded 3
          terminal 00000000130000200000000010000100000000000000000000000000000000
          posguard 00000000550000300000000010000100000000000000000000000000000000
        diff posguard_only stan 501 sale 4200 rrn 063220000006 : approved in posguard's journal; the terminal did not upload it
        capture sale stan 2 1000 (approved) how batch date 2026-11-18
        capture sale stan 4 300 (approved) how batch date 2026-11-18
        capture refund stan 6 100 (approved) how batch date 2026-11-18
        capture sale stan 501 4200 (approved) how batch date 2026-11-18
        terminal 00000001 now in batch 2
    "#]]
    .assert_eq(&w.settlement_writes(since));
    assert_eq!(t.batch_number(), 2);
}

/// A not-balanced settlement whose 0500 and upload the test rewrites, to stand for a
/// terminal whose record disagrees with posguard's journal.
fn check_upload(
    tamper_totals: impl FnOnce(&mut BatchTotals),
    edit: impl FnMut(&mut World, &Message) -> Option<Vec<u8>>,
    expect: Expect,
) {
    let mut w = World::new();
    let mut t = w.terminal(1);
    trade(&mut w, &mut t);
    let since = w.writes.len();
    let req = t.settle().unwrap();
    let frame = w.tamper(&req.frame, |m| {
        let mut totals = BatchTotals::read(m).unwrap();
        tamper_totals(&mut totals);
        m.set(48, totals.to_text().unwrap());
    });
    let out = w.exchange_as(&mut t, &frame);
    assert_eq!(out.settlement, Some(SettlementResult::NotBalanced));
    let end = upload(&mut w, &mut t, edit);
    assert_eq!(end.settlement, Some(SettlementResult::Uploaded));
    assert_eq!(
        captured_stans(&w, since),
        [2, 4, 6].into(),
        "posguard's set"
    );
    expect.assert_eq(&w.settlement_writes(since));
}

/// A 0320 detail the terminal's record might hold.
fn detail(w: &World, stan: u32, tx_type: &str, amount: &str) -> Vec<u8> {
    let mut m = Message::new(iso8583::Mti::lit("0320"));
    m.set(3, "000000").set(4, amount).set(25, "00");
    m.set(11, format!("{stan:06}")).set(37, "999999999999");
    m.set(41, TID).set(42, MID).set(49, "156");
    m.set(60, format!("{tx_type}000001201"));
    w.craft(&mut m)
}

#[test]
fn terminal_only_when_the_terminal_holds_what_posguard_does_not() {
    // The terminal's record holds a sale of 777 (STAN 77) posguard never saw: its
    // totals and upload count it, and the batch end announces 4 details.
    check_upload(
        |t| {
            t.domestic.debit_minor += 777;
            t.domestic.debit_count += 1;
        },
        |w, m| match m.get_str(60).unwrap() {
            "00000001202" => {
                let extra = detail(w, 77, "22", "000000000777");
                let injected = w.replies(&extra);
                assert_eq!(injected[0].get_str(39), Some("00"));
                Some(w.rewrite(m, |m| {
                    m.set(48, "0004");
                }))
            }
            _ => None,
        },
        expect![[r#"
            settlement 00000001 batch 1 not_balanced uploaded 0
              terminal 00000000207700300000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            settlement 00000001 batch 1 uploaded uploaded 4
              terminal 00000000207700300000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            diff terminal_only stan 77 sale 777 rrn 999999999999 : unknown to posguard's journal: not captured
            capture sale stan 2 1000 (approved) how batch date 2026-11-18
            capture sale stan 4 300 (approved) how batch date 2026-11-18
            capture refund stan 6 100 (approved) how batch date 2026-11-18
            terminal 00000001 now in batch 2
        "#]],
    );
}

#[test]
fn terminal_only_when_posguard_knows_it_voided() {
    // The terminal missed the void of its 2000 sale (STAN 3): it still counts it.
    check_upload(
        |t| {
            t.domestic.debit_minor += 2_000;
            t.domestic.debit_count += 1;
        },
        |w, m| match m.get_str(60).unwrap() {
            "00000001202" => {
                let extra = detail(w, 3, "22", "000000002000");
                let injected = w.replies(&extra);
                assert_eq!(injected[0].get_str(39), Some("00"));
                None
            }
            _ => None,
        },
        expect![[r#"
            settlement 00000001 batch 1 not_balanced uploaded 0
              terminal 00000000330000300000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            settlement 00000001 batch 1 uploaded uploaded 4
              terminal 00000000330000300000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            diff terminal_only stan 3 sale 2000 rrn 999999999999 : posguard's journal has it as sale voided: not captured
            diff count_differs stan 0  0 rrn - : the batch end announces 3 uploads; posguard received 4
            capture sale stan 2 1000 (approved) how batch date 2026-11-18
            capture sale stan 4 300 (approved) how batch date 2026-11-18
            capture refund stan 6 100 (approved) how batch date 2026-11-18
            terminal 00000001 now in batch 2
        "#]],
    );
}

#[test]
fn amount_differs_when_the_terminal_recorded_another_amount() {
    // The terminal's record says 999 for the sale posguard approved at 1000 (STAN 2).
    check_upload(
        |t| t.domestic.debit_minor -= 1,
        |w, m| {
            (m.get_str(11) == Some("000002") && m.mti().as_str() == "0320").then(|| {
                w.rewrite(m, |m| {
                    m.set(4, "000000000999");
                })
            })
        },
        expect![[r#"
            settlement 00000001 batch 1 not_balanced uploaded 0
              terminal 00000000129900200000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            settlement 00000001 batch 1 uploaded uploaded 3
              terminal 00000000129900200000000010000100000000000000000000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            diff amount_differs stan 2 sale 1000 rrn 063220000001 : the terminal uploaded 999
            capture sale stan 2 1000 (approved) how batch date 2026-11-18
            capture sale stan 4 300 (approved) how batch date 2026-11-18
            capture refund stan 6 100 (approved) how batch date 2026-11-18
            terminal 00000001 now in batch 2
        "#]],
    );
}

#[test]
fn foreign_totals_never_balance() {
    check_upload(
        |t| {
            t.foreign.debit_minor = 50;
            t.foreign.debit_count = 1;
        },
        |_, _| None,
        expect![[r#"
            settlement 00000001 batch 1 not_balanced uploaded 0
              terminal 00000000130000200000000010000100000000000500010000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            settlement 00000001 batch 1 uploaded uploaded 3
              terminal 00000000130000200000000010000100000000000500010000000000000000
              posguard 00000000130000200000000010000100000000000000000000000000000000
            capture sale stan 2 1000 (approved) how batch date 2026-11-18
            capture sale stan 4 300 (approved) how batch date 2026-11-18
            capture refund stan 6 100 (approved) how batch date 2026-11-18
            terminal 00000001 now in batch 2
        "#]],
    );
}

/// Replies to settlement messages that posguard refuses: `case` names a message the
/// test builds from a signed-on terminal with some trade in batch 1.
fn refused(case: &str) -> String {
    let mut w = World::new();
    let mut t = w.terminal(1);
    trade(&mut w, &mut t);
    let settle = t.settle().unwrap().frame;
    let writes = w.writes.len();
    let frame = match case {
        "bad MAC" => {
            let mut f = settle;
            *f.last_mut().unwrap() ^= 1;
            f
        }
        "wrong batch" => w.tamper(&settle, |m| {
            m.set(60, "00000005201");
        }),
        "other merchant" => w.tamper(&settle, |m| {
            m.set(42, "999999999999999");
        }),
        "totals malformed" => w.tamper(&settle, |m| {
            m.set(48, "1234");
        }),
        "unknown 60.3" => w.tamper(&settle, |m| {
            m.set(60, "00000001209");
        }),
        "detail without session" => detail(&w, 2, "22", "000000001000"),
        "detail of a void" => detail(&w, 3, "23", "000000002000"),
        "end without session" => w.tamper(&settle, |m| {
            m.set_mti(iso8583::Mti::lit("0320"));
            m.set(48, "0003");
            m.set(60, "00000001202");
        }),
        other => panic!("no case {other}"),
    };
    let replies = w.replies(&frame);
    assert_eq!(w.writes.len(), writes, "{case}: nothing written");
    let r = &replies[0];
    format!(
        "{case}: {} 39 {} mac {}",
        r.mti(),
        r.get_str(39).unwrap_or("-"),
        r.has(64)
    )
}

#[test]
fn refused_settlement_messages() {
    let shown: Vec<String> = [
        "bad MAC",
        "wrong batch",
        "other merchant",
        "totals malformed",
        "unknown 60.3",
        "detail without session",
        "detail of a void",
        "end without session",
    ]
    .into_iter()
    .map(refused)
    .collect();
    expect![[r#"
        bad MAC: 0510 39 A0 mac false
        wrong batch: 0510 39 77 mac true
        other merchant: 0510 39 03 mac true
        totals malformed: 0510 39 30 mac true
        unknown 60.3: 0510 39 12 mac true
        detail without session: 0330 39 12 mac true
        detail of a void: 0330 39 12 mac true
        end without session: 0330 39 12 mac true
    "#]]
    .assert_eq(&(shown.join("\n") + "\n"));
}

#[test]
fn the_terminal_reads_a_refused_settlement() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    trade(&mut w, &mut t);
    let req = t.settle().unwrap();
    let frame = w.tamper(&req.frame, |m| {
        m.set(60, "00000005201");
    });
    let writes = w.writes.len();
    let out = w.exchange_as(&mut t, &frame);
    assert_eq!(out.verdict, Verdict::Declined);
    assert_eq!(out.settlement, None);
    assert_eq!((t.batch_number(), t.batch().len()), (1, 5));
    assert_eq!(TxKind::Settle.mti().as_str(), "0500");
    assert_eq!(
        w.writes.len(),
        writes,
        "a refused settlement writes nothing"
    );
}
