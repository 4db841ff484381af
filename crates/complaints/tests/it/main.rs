//! Complaints' rules: the SMS templates read back, candidates ranked, deadlines on
//! the working-day calendar across the 2026 Spring Festival.

use chrono::{NaiveDate, NaiveDateTime};
use complaints::deadline::{standing, Policy, Standing};
use complaints::kinds::{Category, Source};
use complaints::rank::{rank, Candidate, Clue};
use complaints::sms::{parse, SmsKind, SmsTime};
use merchants::calendar::WorkCalendar;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time")
}

#[test]
fn names_round_trip() {
    for s in Source::ALL {
        assert_eq!(Source::parse(s.name()), Some(s));
    }
    for c in Category::ALL {
        assert_eq!(Category::parse(c.name()), Some(c));
    }
    assert_eq!(Category::parse("lost_my_wallet"), None);
    assert!(Category::MerchantCreditedShort.is_merchants());
    assert_eq!(Category::DebitedTwice.transactions(), 2);
}

/// (text, masked card, merchant, kind, debit, amount, time) — or `None` for a text
/// neither template reads.
#[test]
fn the_issuers_sms_are_read_back() {
    type Want = Option<(&'static str, &'static str, SmsKind, bool, i64, SmsTime)>;
    let month_day = |m, d, hm: &str| SmsTime::MonthDay {
        month: m,
        day: d,
        time: chrono::NaiveTime::parse_from_str(hm, "%H:%M").expect("time"),
    };
    let cases: Vec<(&str, Want)> = vec![
        (
            "【posguard模拟银行】您的卡622848******1234于11月20日10:02在HAPPY MART消费，支出123.45 CNY，可用余额9876.55 CNY。",
            Some(("622848******1234", "HAPPY MART", SmsKind::Sale, true, 12_345, month_day(11, 20, "10:02"))),
        ),
        (
            "【posguard模拟银行】您的卡622848******1234于11月20日10:02在JADE TEA HOUSE冲正，存入88.00 CNY，可用余额9964.55 CNY。",
            Some(("622848******1234", "JADE TEA HOUSE", SmsKind::Reversal, false, 8_800, month_day(11, 20, "10:02"))),
        ),
        (
            "【posguard模拟银行】您的卡622848******9876于12月01日09:15在未知商户差错退款，存入5.00 CNY，可用余额1.00 CNY。",
            Some(("622848******9876", "未知商户", SmsKind::Adjustment, false, 500, month_day(12, 1, "09:15"))),
        ),
        (
            "[posguard SimBank] Card 431000******0042: sale at EAST WIND ELECTRONICS on 2026-11-21 18:40, debit 1999.00 CNY. Available balance 3000.00 CNY.",
            Some(("431000******0042", "EAST WIND ELECTRONICS", SmsKind::Sale, true, 199_900, SmsTime::Full(t("2026-11-21 18:40")))),
        ),
        (
            "[posguard SimBank] Card 431000******0042: refund of an erroneous debit at SHOP ON MAIN on 2026-11-22 08:00, credit 12.30 CNY. Available balance 3012.30 CNY.",
            Some(("431000******0042", "SHOP ON MAIN", SmsKind::Adjustment, false, 1_230, SmsTime::Full(t("2026-11-22 08:00")))),
        ),
        // A full card number is no masked one: not read.
        ("[posguard SimBank] Card 4310001234560042: sale at X on 2026-11-21 18:40, debit 1.00 CNY. Available balance 3.00 CNY.", None),
        ("【posguard模拟银行】您的卡622848******1234于13月40日10:02在HAPPY MART消费，支出123.45 CNY，可用余额1 CNY。", None),
        ("【某银行】您尾号1234的卡消费100元", None),
        ("", None),
    ];
    for (text, want) in cases {
        let got = parse(text).map(|f| {
            (
                f.masked_pan,
                f.merchant,
                f.kind,
                f.debit,
                f.amount_minor,
                f.time,
            )
        });
        let want = want.map(|(m, n, k, deb, a, tm)| (m.to_owned(), n.to_owned(), k, deb, a, tm));
        assert_eq!(got, want, "{text}");
    }
    let f = parse("【posguard模拟银行】您的卡622848******1234于12月31日23:59在A消费，支出1.00 CNY，可用余额1.00 CNY。")
        .expect("read");
    assert_eq!(f.last4, "1234");
    // A December SMS read in January is last year's.
    assert_eq!(f.time.resolve(d("2027-01-03")), Some(t("2026-12-31 23:59")));
    assert_eq!(f.time.resolve(d("2027-12-31")), Some(t("2027-12-31 23:59")));
}

fn candidate(
    id: i64,
    at: &str,
    amount: i64,
    card: &str,
    merchant: &str,
    terminal: &str,
) -> Candidate {
    Candidate {
        txn_id: id,
        rrn: format!("R{id:011}"),
        at: t(at),
        amount_minor: amount,
        masked_pan: card.into(),
        merchant_id: format!("89831000541100{id}"),
        merchant_name: merchant.into(),
        terminal_id: terminal.into(),
    }
}

#[test]
fn the_right_transaction_ranks_first_and_contradictions_are_left_out() {
    let a = "622848******1234";
    let b = "622848******5678";
    let all = vec![
        candidate(1, "2026-11-20 10:02", 12_345, a, "HAPPY MART", "30000001"),
        candidate(2, "2026-11-20 10:03", 12_345, b, "HAPPY MART", "30000001"),
        candidate(
            3,
            "2026-11-20 10:40",
            12_300,
            a,
            "JADE TEA HOUSE",
            "30000002",
        ),
        candidate(4, "2026-11-20 10:05", 12_345, a, "HAPPY MART", "30000001"),
        candidate(5, "2026-11-19 10:02", 12_345, a, "HAPPY MART", "30000001"),
    ];
    let window = |from: &str, to: &str| (Some(t(from)), Some(t(to)));
    let (from, to) = window("2026-11-20 10:00", "2026-11-20 10:10");
    // Amount, time and last four: card B and yesterday are out; 1 and 4 both match
    // (a double debit), 4 first: nearer the window's middle (10:05).
    let clue = Clue {
        amount_minor: Some(12_345),
        from,
        to,
        last4: Some("1234".into()),
        ..Clue::default()
    };
    let ids: Vec<i64> = rank(&clue, &all, 10).iter().map(|r| r.txn_id).collect();
    assert_eq!(ids, [4, 1]);
    // A tolerance lets a rounded amount in; the merchant's name breaks the tie.
    let clue = Clue {
        amount_minor: Some(12_300),
        tolerance_minor: 100,
        from,
        to: Some(t("2026-11-20 11:00")),
        masked_pan: Some(a.into()),
        merchant: Some("jade".into()),
        ..Clue::default()
    };
    let r = rank(&clue, &all, 10);
    assert_eq!(r[0].txn_id, 3, "{r:?}");
    assert_eq!(r[0].matched, ["amount", "time", "card", "merchant"]);
    assert!(r[1..].iter().all(|x| x.matched.contains(&"amount_near")));
    // The RRN alone finds one; a wrong one finds none.
    let by_rrn = |rrn: &str| {
        rank(
            &Clue {
                rrn: Some(rrn.into()),
                ..Clue::default()
            },
            &all,
            10,
        )
    };
    assert_eq!(by_rrn("R00000000002").len(), 1);
    assert!(by_rrn("R99999999999").is_empty());
    assert!(Clue::default().is_empty());
    // The limit holds.
    let any = Clue {
        last4: Some("1234".into()),
        ..Clue::default()
    };
    assert_eq!(rank(&any, &all, 2).len(), 2);
}

/// The 2026 Spring Festival: 15–23 February off, Saturday the 14th and Saturday the
/// 28th working days.
#[test]
fn deadlines_count_working_days_across_the_spring_festival() {
    let cal = WorkCalendar::china();
    let card = Policy::default_for(Source::CardholderPhone);
    let hotline = Policy::default_for(Source::RegulatorHotline);
    card.validate().expect("valid");
    hotline.validate().expect("valid");
    let opened = d("2026-02-13"); // a Friday
                                  // Acknowledged the next working day: the make-up Saturday.
    assert_eq!(card.acknowledge_by(&cal, opened), d("2026-02-14"));
    // 15 calendar days for a cardholder; 10 working days for the hotline's.
    assert_eq!(
        card.resolve_by(&cal, opened, card.resolve_days),
        d("2026-02-28")
    );
    assert_eq!(
        hotline.resolve_by(&cal, opened, hotline.resolve_days),
        d("2026-03-05")
    );
    // Near a deadline it is due, past it breached — counted in working days, so ten
    // calendar days before a deadline behind the holiday it is due already.
    let due = d("2026-02-24");
    for (today, want) in [
        ("2026-02-13", Standing::OnTime),
        ("2026-02-14", Standing::Due),
        ("2026-02-20", Standing::Due),
        ("2026-02-24", Standing::Due),
        ("2026-02-25", Standing::Breached),
    ] {
        assert_eq!(standing(&cal, due, d(today)), want, "{today}");
    }
    // Extensions: with a reason, to 30; beyond, up to 60 only when approved.
    assert_eq!(
        card.extend(15, 30, "waiting for the issuer's records", false),
        Ok(30)
    );
    assert!(card.extend(15, 45, "complex", false).is_err());
    assert_eq!(card.extend(30, 45, "complex", true), Ok(45));
    assert!(card.extend(30, 61, "complex", true).is_err());
    assert!(card.extend(15, 30, "  ", false).is_err());
    assert!(card.extend(30, 30, "same", false).is_err());
    assert!(hotline.extend(10, 21, "long", true).is_err());
    // A policy from configuration is checked.
    let bad = Policy {
        resolve_days: 40,
        ..card
    };
    assert!(bad.validate().is_err());
}

mod diagnosis {
    use complaints::diagnose::{diagnose, Advice, Evidence, Finding, Hold, Next, Settled, Txn};
    use complaints::kinds::Category;
    use records::{SafState, TxnKind, TxnState};

    use super::d;

    fn sec(s: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("time")
    }

    fn txn(state: TxnState, code: &str) -> Evidence {
        Evidence {
            txn: Txn {
                txn_id: 1,
                rrn: "R00000000001".into(),
                kind: TxnKind::Sale,
                state,
                response_code: Some(code.into()),
                amount_minor: 12_345,
                at: sec("2026-11-20 10:02:00"),
            },
            advices: vec![],
            findings: vec![],
            settled: None,
            hold: None,
        }
    }

    fn advice(kind: &str, state: SafState, attempts: i64) -> Advice {
        Advice {
            saf_id: 7,
            kind: kind.into(),
            state,
            attempts,
            at: sec("2026-11-20 10:02:03"),
        }
    }

    /// (what, category, evidence, code, words the English answer holds, a standing
    /// debit, what is next, the evidence named)
    type Case = (
        &'static str,
        Category,
        Evidence,
        &'static str,
        &'static str,
        bool,
        Next,
        Vec<&'static str>,
    );

    #[test]
    fn each_money_situation_is_explained_with_its_evidence() {
        let reversed = |state, attempts| Evidence {
            advices: vec![advice("reversal", state, attempts)],
            ..txn(TxnState::Reversed, "00")
        };
        let adjusted = Evidence {
            advices: vec![advice("adjustment", SafState::Done, 1)],
            findings: vec![Finding {
                finding_id: "F20261120-0001".into(),
                class: "phantom_debit".into(),
                status: "auto_resolved".into(),
                business_date: d("2026-11-20"),
            }],
            ..txn(TxnState::Approved, "00")
        };
        let hold = Hold {
            hold_id: "risk:1".into(),
            reason: "risk review: merchant.new_volume".into(),
            since: sec("2026-11-20 10:02:00"),
            released: None,
        };
        let settled = Settled {
            settlement_id: "S20261120-898310005411001".into(),
            business_date: d("2026-11-20"),
            net_minor: 12_302,
            payouts: vec![(d("2026-11-23"), 12_302, true)],
        };
        let cases: Vec<Case> = vec![
            ("declined", Category::DebitedButFailed, txn(TxnState::Declined, "51"), "declined",
             "declined by your bank (51): no money moved", false, Next::Explain, vec!["txn:1"]),
            ("refused by the acquirer", Category::DebitedButFailed, txn(TxnState::Rejected, "03"), "declined",
             "declined by the acquirer (03)", false, Next::Explain, vec!["txn:1"]),
            ("timed out", Category::DebitedButFailed, txn(TxnState::TimedOut, "98"), "not_completed",
             "did not complete: no money moved", false, Next::Explain, vec!["txn:1"]),
            ("reversed", Category::DebitedButFailed, reversed(SafState::Done, 1), "reversed",
             "reversed automatically at 2026-11-20 10:02:03, acknowledged by your bank", false, Next::Explain, vec!["txn:1", "saf:7"]),
            ("reversal retried", Category::DebitedButFailed, reversed(SafState::Pending, 4), "reversal_in_progress",
             "still being sent to your bank (attempt 4)", true, Next::ExpediteReversal, vec!["txn:1", "saf:7"]),
            ("reversal refused", Category::DebitedButFailed, reversed(SafState::Exception, 9), "reversal_exception",
             "needs an operator", true, Next::OperatorException, vec!["txn:1", "saf:7"]),
            ("adjusted", Category::DebitedTwice, adjusted, "adjusted",
             "credit adjustment was sent to your bank and accepted at 2026-11-20 10:02:03", false, Next::Explain,
             vec!["txn:1", "saf:7", "finding:F20261120-0001"]),
            ("a refund accepted", Category::RefundNotReceived,
             Evidence { txn: Txn { kind: TxnKind::Refund, ..txn(TxnState::Approved, "00").txn }, ..txn(TxnState::Approved, "00") },
             "refund_sent", "accepted by your bank", false, Next::Explain, vec!["txn:1"]),
            ("voided", Category::RefundNotReceived, txn(TxnState::Voided, "00"), "voided",
             "was voided", false, Next::Explain, vec!["txn:1"]),
            ("a real sale", Category::Unrecognised, txn(TxnState::Approved, "00"), "approved_stands",
             "approved by your bank (00)", true, Next::Explain, vec!["txn:1"]),
            ("a real sale said failed", Category::DebitedButFailed, txn(TxnState::Approved, "00"), "approved_stands",
             "the sale stands", true, Next::Investigate, vec!["txn:1"]),
            ("held", Category::MerchantNotCredited, Evidence { hold: Some(hold.clone()), ..txn(TxnState::Approved, "00") }, "held",
             "held: risk review: merchant.new_volume (since 2026-11-20 10:02:00)", true, Next::ReviewHold, vec!["txn:1", "hold:risk:1"]),
            ("paid out after a release", Category::MerchantCreditedShort,
             Evidence {
                 hold: Some(Hold { released: Some(("risk.zhao".into(), sec("2026-11-21 09:00:00"))), ..hold }),
                 settled: Some(settled.clone()),
                 ..txn(TxnState::Approved, "00")
             },
             "paid_out", "settled for 2026-11-20 in S20261120-898310005411001, net 123.02; payouts: 2026-11-23 123.02", true, Next::Explain,
             vec!["txn:1", "settlement:S20261120-898310005411001", "hold:risk:1"]),
            ("scheduled", Category::MerchantNotCredited,
             Evidence {
                 settled: Some(Settled { payouts: vec![(d("2026-11-23"), 12_302, false)], ..settled }),
                 ..txn(TxnState::Approved, "00")
             },
             "settled", "2026-11-23 123.02 (scheduled)", true, Next::AwaitSettlement,
             vec!["txn:1", "settlement:S20261120-898310005411001"]),
            ("not settled yet", Category::MerchantNotCredited, txn(TxnState::Approved, "00"), "not_settled_yet",
             "settles in the next run", true, Next::AwaitSettlement, vec!["txn:1"]),
        ];
        for (what, category, e, code, words, stands, next, evidence) in cases {
            let g = diagnose(category, &e);
            assert_eq!(g.code, code, "{what}: {g:?}");
            assert!(g.en.contains(words), "{what}: {}", g.en);
            assert!(g.en.contains("123.45"), "{what}: the amount: {}", g.en);
            assert!(
                g.zh.contains("123.45"),
                "{what}: the amount in Chinese: {}",
                g.zh
            );
            assert!(
                !g.staff.is_empty() && g.staff.contains("txn 1"),
                "{what}: {}",
                g.staff
            );
            assert_eq!(g.debit_stands, stands, "{what}");
            assert_eq!(g.next, next, "{what}");
            assert_eq!(g.evidence, evidence, "{what}");
        }
    }
}

/// The disclosure figures: by category and source, per 10,000 transactions, closed
/// within 1 and within 1–3 working days (counted across the Spring Festival),
/// percentiles, breaches.
#[test]
fn the_report_counts_what_acquirers_publish() {
    use complaints::deadline::{report, Filed};
    let cal = WorkCalendar::china();
    let filed = |category, source, opened: &str, closed: Option<&str>, due: &str| Filed {
        category,
        source,
        opened: t(opened),
        closed: closed.map(t),
        resolve_due: d(due),
    };
    let rows = [
        // Closed the same day: within 1.
        filed(
            Category::DebitedButFailed,
            Source::CardholderPhone,
            "2026-02-10 09:00",
            Some("2026-02-10 15:00"),
            "2026-02-25",
        ),
        // Friday 13th to Tuesday 24th: the make-up Saturday and the first day back,
        // 2 working days although 11 calendar days: within 1–3.
        filed(
            Category::DebitedTwice,
            Source::CardholderWeb,
            "2026-02-13 10:00",
            Some("2026-02-24 10:00"),
            "2026-02-28",
        ),
        // Closed after its deadline: a breach.
        filed(
            Category::MerchantNotCredited,
            Source::Merchant,
            "2026-02-02 10:00",
            Some("2026-03-02 10:00"),
            "2026-02-17",
        ),
        // Still open past its deadline: a breach.
        filed(
            Category::Unrecognised,
            Source::RegulatorHotline,
            "2026-02-02 10:00",
            None,
            "2026-02-14",
        ),
    ];
    let r = report(&cal, &rows, 20_000, d("2026-03-10"));
    assert_eq!(r.total, 4);
    assert_eq!(r.per_10k, 2.0);
    assert_eq!(
        (r.closed, r.within_1, r.within_1_3, r.breaches),
        (3, 1, 1, 2)
    );
    assert_eq!(r.by_category.get(&Category::DebitedTwice), Some(&1));
    assert_eq!(r.by_source.get(&Source::Merchant), Some(&1));
    assert_eq!(r.p50_hours, 264.0, "the middle of 6 h, 264 h and 672 h");
    assert_eq!(r.p90_hours, 672.0);
    let text = r.to_string();
    assert!(
        text.contains("complaints: 4 (2.00 per 10,000 transactions of 20000)"),
        "{text}"
    );
}

/// A dispute's status moves only as its table says; its stage only forward, and not
/// once it is decided.
#[test]
fn a_dispute_moves_as_the_reference_model_does() {
    use complaints::dispute::{move_stage, move_status, Stage, Status, MOVES};
    for from in Status::ALL {
        for to in Status::ALL {
            assert_eq!(
                move_status(from, to).is_ok(),
                MOVES.contains(&(from, to)),
                "{from:?} → {to:?}"
            );
        }
    }
    assert!(Status::Won.is_final() && !Status::Challenged.is_final());
    assert_eq!(
        move_stage(Stage::PreDispute, Stage::Dispute, Status::Opened),
        Ok(Stage::Dispute)
    );
    assert!(move_stage(Stage::Dispute, Stage::PreDispute, Status::Opened).is_err());
    assert!(move_stage(Stage::Dispute, Stage::Dispute, Status::Challenged).is_err());
    assert!(move_stage(Stage::Dispute, Stage::PreArbitration, Status::Lost).is_err());
    assert_eq!(Stage::parse("pre_arbitration"), Some(Stage::PreArbitration));
}
