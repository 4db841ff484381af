//! One case per class: a constructed discrepancy, and what reconciliation finds and
//! proposes. Plus the parser's handling of bad lines.

use chrono::NaiveDate;
use recon::{reconcile, Action, Class, ClearingParser, IssuerCsv, JournalEntry};

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).expect("date")
}

fn txn(id: i64, kind: &str, state: &str, amount: i64, day: u32) -> JournalEntry {
    JournalEntry {
        txn_id: id,
        rrn: format!("R{id:011}"),
        auth_code: Some(format!("{id:06}")),
        terminal: "10000001".into(),
        link_stan: Some(id),
        kind: kind.into(),
        state: state.into(),
        amount_minor: amount,
        original_rrn: None,
        date: d(day),
        captured: true,
        acknowledged_adjustments: Vec::new(),
    }
}

/// `t` with credit adjustments of `amounts` acknowledged by the issuer.
fn acked(mut t: JournalEntry, amounts: &[i64]) -> JournalEntry {
    t.acknowledged_adjustments = amounts.to_vec();
    t
}

const HEADER: &str =
    "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n";

fn line(id: i64, amount: i64, kind: &str) -> String {
    format!(
        "R{id:011},{id:06},{id:06},10000001,898310005411001,622848******1234,t1.ab,{amount},CNY,{kind},2026-11-20T10:00:00\n"
    )
}

fn file(lines: &[String]) -> Vec<recon::ClearingRecord> {
    let text = format!("{HEADER}{}", lines.concat());
    let parsed = IssuerCsv::default()
        .parse(text.as_bytes(), d(20))
        .expect("parse");
    assert!(parsed.bad_lines.is_empty(), "{:?}", parsed.bad_lines);
    parsed.records
}

/// (name, journal, clearing lines, next file seen, expected (class, rrn, action kind))
type Case = (
    &'static str,
    Vec<JournalEntry>,
    Vec<String>,
    bool,
    Vec<(Class, &'static str, &'static str)>,
);

#[test]
fn every_class() {
    let mut uncaptured = txn(6, "sale", "approved", 600, 20);
    uncaptured.captured = false;
    let mut by_fallback = txn(8, "sale", "approved", 800, 20);
    by_fallback.rrn = "X00000000008".into();
    let cases: Vec<Case> = vec![
        (
            "clean day: approved sale debited once, voided sale debited and credited",
            vec![
                txn(1, "sale", "approved", 100, 20),
                txn(2, "sale", "voided", 200, 20),
                {
                    let mut v = txn(3, "void", "approved", 200, 20);
                    v.original_rrn = Some("R00000000002".into());
                    v
                },
            ],
            vec![
                line(1, 100, "sale"),
                line(2, 200, "sale"),
                line(3, 200, "void"),
            ],
            true,
            vec![],
        ),
        (
            "phantom debit: the issuer debited a sale posguard timed out",
            vec![txn(1, "sale", "timed_out", 100, 20)],
            vec![line(1, 100, "sale")],
            true,
            vec![(Class::PhantomDebit, "R00000000001", "reverse")],
        ),
        (
            "double debit",
            vec![txn(2, "sale", "approved", 200, 20)],
            vec![line(2, 200, "sale"), line(2, 200, "sale")],
            true,
            vec![(Class::DoubleDebit, "R00000000002", "reverse")],
        ),
        (
            "missing at the issuer (next file seen)",
            vec![txn(3, "sale", "approved", 300, 20)],
            vec![],
            true,
            vec![(Class::MissingAtIssuer, "R00000000003", "exception")],
        ),
        (
            "missing but the next file is not in yet: awaiting, not a finding",
            vec![txn(3, "sale", "approved", 300, 20)],
            vec![],
            false,
            vec![],
        ),
        (
            "amount mismatch",
            vec![txn(4, "sale", "approved", 400, 20)],
            vec![line(4, 4_000, "sale")],
            true,
            vec![(Class::AmountMismatch, "R00000000004", "exception")],
        ),
        (
            "reversal posguard recorded, the issuer did not apply",
            vec![txn(5, "sale", "reversed", 500, 20)],
            vec![line(5, 500, "sale")],
            true,
            vec![(Class::ReversalNotApplied, "R00000000005", "reverse")],
        ),
        (
            "approved and debited, never captured",
            vec![uncaptured],
            vec![line(6, 600, "sale")],
            true,
            vec![(Class::Uncaptured, "R00000000006", "capture")],
        ),
        (
            "unknown at posguard",
            vec![],
            vec![line(7, 700, "sale")],
            true,
            vec![(Class::UnknownAtPosguard, "R00000000007", "exception")],
        ),
        (
            "phantom debit given back by a credit adjustment: settled",
            vec![acked(txn(1, "sale", "timed_out", 100, 20), &[100])],
            vec![line(1, 100, "sale"), line(1, 100, "adjustment")],
            true,
            vec![],
        ),
        (
            "double debit given back by a credit adjustment: settled, and still captured",
            vec![acked(txn(2, "sale", "approved", 200, 20), &[200])],
            vec![
                line(2, 200, "sale"),
                line(2, 200, "sale"),
                line(2, 200, "adjustment"),
            ],
            true,
            vec![],
        ),
        (
            "an adjustment short of the extra debit: the rest is still owed back",
            vec![acked(txn(2, "sale", "approved", 200, 20), &[150])],
            vec![
                line(2, 200, "sale"),
                line(2, 200, "sale"),
                line(2, 150, "adjustment"),
            ],
            true,
            vec![(Class::DoubleDebit, "R00000000002", "reverse")],
        ),
        (
            "adjusted back more than was debited in error",
            vec![acked(txn(5, "sale", "reversed", 500, 20), &[600])],
            vec![line(5, 500, "sale"), line(5, 600, "adjustment")],
            true,
            vec![(Class::AmountMismatch, "R00000000005", "exception")],
        ),
        (
            // The adjustment's line comes a day late, when the sale's first line may
            // already be out of the window: what the issuer acknowledged counts.
            "a double debit given back by an acknowledged adjustment not yet published",
            vec![acked(txn(2, "sale", "approved", 200, 20), &[200])],
            vec![line(2, 200, "sale"), line(2, 200, "sale")],
            true,
            vec![],
        ),
        (
            // A corrupt line: the issuer acknowledged 200, the file says 201. Computing
            // from the line left the cardholder debited 1 (seen in the fault matrix).
            "an adjustment line of an amount the issuer never acknowledged: a person's",
            vec![acked(txn(2, "sale", "approved", 200, 20), &[200])],
            vec![
                line(2, 200, "sale"),
                line(2, 200, "sale"),
                line(2, 201, "adjustment"),
            ],
            true,
            vec![(Class::AmountMismatch, "R00000000002", "exception")],
        ),
        (
            "matched by terminal + link STAN + amount when the RRN differs",
            vec![by_fallback],
            vec![line(8, 800, "sale")],
            true,
            vec![],
        ),
    ];
    for (name, journal, lines, next, want) in cases {
        let out = reconcile(d(20), &journal, &file(&lines), next);
        let got: Vec<(Class, String, &str)> = out
            .findings
            .iter()
            .map(|f| {
                (
                    f.class,
                    f.rrn.clone(),
                    match f.action {
                        Action::ReverseAtIssuer { .. } => "reverse",
                        Action::Capture { .. } => "capture",
                        Action::Exception => "exception",
                    },
                )
            })
            .collect();
        let want: Vec<(Class, String, &str)> = want
            .into_iter()
            .map(|(c, r, a)| (c, r.to_owned(), a))
            .collect();
        assert_eq!(got, want, "{name}");
        for f in &out.findings {
            assert!(!f.evidence.is_empty(), "{name}: evidence");
        }
    }
}

#[test]
fn double_debit_reverses_exactly_the_extra_amount() {
    let out = reconcile(
        d(20),
        &[txn(2, "sale", "approved", 250, 20)],
        &file(&[line(2, 250, "sale"), line(2, 250, "sale")]),
        true,
    );
    assert_eq!(
        out.findings[0].action,
        Action::ReverseAtIssuer {
            txn_id: 2,
            amount_minor: 250
        }
    );
    assert_eq!(
        out.findings[0].evidence.len(),
        3,
        "posguard's record and both lines"
    );
}

#[test]
fn a_partial_adjustment_leaves_exactly_the_rest_to_reverse() {
    let out = reconcile(
        d(20),
        &[acked(txn(2, "sale", "approved", 200, 20), &[150])],
        &file(&[
            line(2, 200, "sale"),
            line(2, 200, "sale"),
            line(2, 150, "adjustment"),
        ]),
        true,
    );
    assert_eq!(
        out.findings[0].action,
        Action::ReverseAtIssuer {
            txn_id: 2,
            amount_minor: 50
        }
    );
}

#[test]
fn bad_lines_are_reported_with_their_numbers_and_the_rest_kept() {
    let text = format!(
        "{HEADER}{}R1,000001,000001,T,M,P,t,100,CNY,sale,2026-11-20T10:00:00\n{}R00000000003,000003,000003,T,M,P,t,abc,CNY,sale,2026-11-20T10:00:00\nR00000000004,000004,000004,T,M,P,t,100,CNY,teleport,2026-11-20T10:00:00\nR00000000005,000005,000005,T,M,P,t,100,CNY,sale,yesterday\n",
        line(1, 100, "sale"),
        line(2, 200, "sale")
    );
    let parsed = IssuerCsv::default()
        .parse(text.as_bytes(), d(20))
        .expect("parse");
    assert_eq!(parsed.records.len(), 2);
    let lines: Vec<usize> = parsed.bad_lines.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![3, 5, 6, 7]);
    assert_eq!(parsed.hash.len(), 64);
    assert!(IssuerCsv::default()
        .parse(b"rrn,amount_minor\n", d(20))
        .is_err());
}

/// A corrupt adjustment line (it says 201, the issuer acknowledged 200) of a reversed
/// sale the issuer still debits twice: the money owed back is computed from what the
/// issuer acknowledged (400 − 200), never from the line (400 − 201 left the cardholder
/// debited 1, as the fault matrix found), and the line goes to a person.
#[test]
fn a_corrupt_adjustment_line_never_decides_the_money() {
    let out = reconcile(
        d(20),
        &[acked(txn(3, "sale", "reversed", 200, 20), &[200])],
        &file(&[
            line(3, 200, "sale"),
            line(3, 200, "sale"),
            line(3, 201, "adjustment"),
        ]),
        true,
    );
    let actions: Vec<(Class, &Action)> =
        out.findings.iter().map(|f| (f.class, &f.action)).collect();
    assert_eq!(
        actions,
        vec![
            (Class::AmountMismatch, &Action::Exception),
            (
                Class::ReversalNotApplied,
                &Action::ReverseAtIssuer {
                    txn_id: 3,
                    amount_minor: 200
                }
            ),
        ]
    );
}
