//! Complaints over real sockets, on SQLite and PostgreSQL: a constructed money
//! situation (a double debit; an approval the terminal never heard of, reversed), the
//! complaint filed with what the cardholder remembers (or their bank's SMS), the
//! candidates found, the diagnosis and its evidence, the resolution — a refund above
//! the threshold approved by a second person, never by the one who asked — and the
//! money at the issuer after it.

use complaints::deadline::Standing;
use issuer::SmsKind;
use services::accounts::Actor;
use services::complaints::{self as cp, Filing, Outcome, Policies, Refund};
use services::ServiceError;

use crate::recon_money::{db, Day, AMOUNT};
use crate::scenarios::stores;

fn actor(name: &str) -> Actor {
    Actor {
        name: name.into(),
        role: "support".into(),
        request_id: "test".into(),
        source: "test".into(),
    }
}

/// The sale's local time, and a window around it as a cardholder remembers it.
fn window(d: &Day) -> (String, String) {
    let at = chrono::DateTime::parse_from_rfc3339(&d.txn.created_at).expect("time");
    let local = at.to_utc().naive_utc() + chrono::Duration::hours(8);
    let f = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
    (
        f(local - chrono::Duration::minutes(15)),
        f(local + chrono::Duration::minutes(15)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_debit_is_found_diagnosed_and_refunded_with_four_eyes() {
    for store in stores("cp_double") {
        let faults = issuer::Faults {
            double_debit_permille: 1000,
            ..issuer::Faults::default()
        };
        let d = Day::sell(&store, faults, "00").await;
        assert_eq!(
            d.balance(),
            d.before - 2 * AMOUNT,
            "debited twice ({store})"
        );
        let (from, to) = window(&d);
        let last4 = d.card.pan[d.card.pan.len() - 4..].to_owned();
        let txn_id = d.txn.txn_id;
        let at = d.txn.created_at.clone();
        let (diagnosis, after) = db(&store, move |db| {
            let f = Filing {
                source: "cardholder_phone".into(),
                category: "debited_twice".into(),
                contact: "13800000000".into(),
                language: "en".into(),
                amount_minor: Some(AMOUNT),
                from: Some(from),
                to: Some(to),
                last4: Some(last4),
                ..Filing::default()
            };
            let (support, lead) = (actor("support.li"), actor("support.lead"));
            let c = cp::file(db, &f, &Policies::default(), &support, &at).expect("file");
            // A full card number is refused at intake.
            let clear = Filing {
                masked_pan: Some("6228480000000000123".into()),
                ..f.clone()
            };
            assert!(matches!(
                cp::file(db, &clear, &Policies::default(), &support, &at),
                Err(ServiceError::BadInput(_))
            ));
            let found = cp::candidates(db, c.complaint_id, 5).expect("candidates");
            assert_eq!(
                found.first().map(|(_, t)| t.txn_id),
                Some(txn_id),
                "{found:?}"
            );
            assert!(found[0].0.matched.contains(&"amount"), "{found:?}");
            cp::acknowledge(db, c.complaint_id, &support, &at).expect("acknowledge");
            cp::link(db, c.complaint_id, &[txn_id], &support, &at).expect("link");
            let diagnosis = cp::diagnoses(db, c.complaint_id).expect("diagnosis");
            // Four-eyes: above the threshold the refund waits; the one who asked
            // cannot approve it; another person does.
            let a = match cp::request_refund(
                db,
                c.complaint_id,
                txn_id,
                AMOUNT,
                "the issuer debited twice",
                5_000,
                &support,
                &at,
            )
            .expect("request")
            {
                Refund::AwaitingApproval(a) => a,
                other => panic!("above the threshold it waits: {other:?}"),
            };
            assert_eq!(
                db.complaint(c.complaint_id)
                    .expect("read")
                    .expect("c")
                    .status,
                "awaiting_approval"
            );
            assert!(matches!(
                cp::decide_refund(db, a, true, &support, &at),
                Err(ServiceError::Forbidden(_))
            ));
            let after = cp::decide_refund(db, a, true, &lead, &at).expect("approve");
            let steps: Vec<String> = db
                .complaint_events(c.complaint_id)
                .expect("events")
                .into_iter()
                .map(|e| e.action)
                .collect();
            assert_eq!(
                steps,
                [
                    "file",
                    "acknowledge",
                    "link",
                    "request_refund",
                    "approve_refund"
                ]
            );
            let audited: Vec<String> = db
                .audit_after(0, 10_000)
                .expect("audit")
                .into_iter()
                .filter(|r| r.object == format!("complaint:{}", c.complaint_id))
                .map(|r| r.action)
                .collect();
            assert_eq!(audited.len(), 5, "{audited:?}");
            // No clear card number or contact in the audit trail.
            let trail = format!("{:?}", db.audit_after(0, 10_000).expect("audit"));
            assert!(!trail.contains("13800000000"));
            (diagnosis, after)
        })
        .await;
        let (_, g) = &diagnosis[0];
        assert_eq!(g.code, "approved_stands", "{g:?}");
        assert_eq!(g.evidence, [format!("txn:{}", d.txn.txn_id)]);
        assert!(g.en.contains("88.00"), "{}", g.en);
        assert_eq!(after.status, "resolved");
        assert_eq!(after.outcome.as_deref(), Some("refunded"));
        assert!(after.answer.as_deref().is_some_and(|a| a.contains("88.00")));
        // The refund went the way reconciliation's do: a credit adjustment through the
        // queue, applied by the issuer, its SMS sent.
        d.adjustment_done().await;
        assert_eq!(d.balance(), d.before - AMOUNT, "debited once ({store})");
        assert_eq!(d.sms(), [SmsKind::Sale, SmsKind::Sale, SmsKind::Adjustment]);
        d.w.finish(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sale_debited_per_the_sms_is_explained_by_its_reversal() {
    for store in stores("cp_reversed") {
        // The issuer debits and answers too late: the terminal is told 98, the
        // acquirer reverses, the issuer applies the reversal.
        let faults = issuer::Faults {
            late_permille: 1000,
            late_ms: 700,
            ..issuer::Faults::default()
        };
        let d = Day::sell(&store, faults, "98").await;
        assert_eq!(d.txn.state, store::TxnState::Reversed, "{store}");
        assert_eq!(d.balance(), d.before, "the reversal gave it back");
        // All the cardholder has is the sale's SMS.
        let sms = {
            let id = d.w.account(&d.card).id;
            let bank = d.w.issuer.bank();
            let b = bank.lock().expect("bank");
            b.sms()
                .iter()
                .find(|s| s.account == id && s.kind == SmsKind::Sale)
                .map(|s| s.text.clone())
                .expect("the sale's SMS")
        };
        let (txn_id, at) = (d.txn.txn_id, d.txn.created_at.clone());
        let c = db(&store, move |db| {
            let f = Filing {
                source: "cardholder_web".into(),
                category: "debited_but_failed".into(),
                contact: "someone@example.com".into(),
                language: "zh".into(),
                sms: Some(sms),
                ..Filing::default()
            };
            let support = actor("support.wang");
            let c = cp::file(db, &f, &Policies::default(), &support, &at).expect("file");
            let found = cp::candidates(db, c.complaint_id, 5).expect("candidates");
            assert_eq!(
                found.first().map(|(_, t)| t.txn_id),
                Some(txn_id),
                "{found:?}"
            );
            cp::link(db, c.complaint_id, &[txn_id], &support, &at).expect("link");
            let g = cp::diagnoses(db, c.complaint_id).expect("diagnosis");
            assert_eq!(g[0].1.code, "reversed", "{:?}", g[0].1);
            assert!(
                g[0].1.evidence.iter().any(|e| e.starts_with("saf:")),
                "{:?}",
                g[0].1
            );
            assert!(!g[0].1.debit_stands);
            // Nothing waits to be expedited: the reversal was acknowledged.
            assert!(matches!(
                cp::resolve(
                    db,
                    c.complaint_id,
                    Outcome::ReversalExpedited,
                    &support,
                    &at
                ),
                Err(ServiceError::Conflict(_))
            ));
            cp::resolve(db, c.complaint_id, Outcome::Explained, &support, &at).expect("resolve")
        })
        .await;
        assert_eq!(c.status, "resolved");
        assert_eq!(c.outcome.as_deref(), Some("explained"));
        // Answered in the complainant's language.
        assert!(
            c.answer.as_deref().is_some_and(|a| a.contains("冲正")),
            "{c:?}"
        );
        // Had the reversal still been waiting (in its back-off, an hour off), the
        // complaint would send it now: the node picks it up and the issuer answers.
        let (txn_id, at) = (d.txn.txn_id, d.txn.created_at.clone());
        let saf_id = db(&store, move |db| {
            let e = services::check::saf_of(db, txn_id)
                .expect("queue")
                .into_iter()
                .find(|e| e.kind == "reversal")
                .expect("the reversal");
            let now = posguard::args::now_rfc3339();
            let later = chrono::DateTime::parse_from_rfc3339(&now)
                .expect("time")
                .timestamp_millis()
                + 3_600_000;
            db.apply(&[store::Write::Saf(store::SafRow {
                state: store::SafState::Pending,
                next_at_ms: later,
                owner: None,
                ..e.clone()
            })])
            .expect("waiting");
            let support = actor("support.wang");
            let f = Filing {
                source: "cardholder_phone".into(),
                category: "debited_but_failed".into(),
                contact: "13800000001".into(),
                language: "en".into(),
                rrn: Some(db.transaction(txn_id).expect("read").expect("txn").rrn),
                ..Filing::default()
            };
            let again = cp::file(db, &f, &Policies::default(), &support, &at).expect("file");
            cp::link(db, again.complaint_id, &[txn_id], &support, &at).expect("link");
            let g = cp::diagnoses(db, again.complaint_id).expect("diagnosis");
            assert_eq!(g[0].1.code, "reversal_in_progress", "{:?}", g[0].1);
            assert_eq!(g[0].1.next, complaints::diagnose::Next::ExpediteReversal);
            let done = cp::resolve(
                db,
                again.complaint_id,
                Outcome::ReversalExpedited,
                &support,
                &now,
            )
            .expect("expedite");
            assert_eq!(done.outcome.as_deref(), Some("reversal_expedited"));
            e.saf_id
        })
        .await;
        // Bounded (20 s): the node's queue sweep runs every second.
        let mut state = None;
        for _ in 0..400 {
            state = db(&store, move |db| {
                db.saf_entry(saf_id).expect("saf").map(|e| e.state)
            })
            .await;
            if state == Some(store::SafState::Done) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            state,
            Some(store::SafState::Done),
            "the expedited reversal was sent ({store})"
        );
        assert_eq!(d.balance(), d.before, "and nothing moved twice");
        assert_eq!(d.sms(), [SmsKind::Sale, SmsKind::Reversal], "told of both");
        d.w.finish(&store).await;
    }
}

/// A complaint filed on Friday 13 February 2026, before the Spring Festival (15–23
/// February off, Saturday the 14th worked): its acknowledgement is due on the make-up
/// Saturday — due that day, breached after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_due_and_then_breached_across_the_holiday() {
    for store in stores("cp_deadline") {
        let s = store.clone();
        db(&store, move |db| {
            db.migrate().expect("migrate");
            let f = Filing {
                source: "regulator_hotline".into(),
                category: "unrecognised".into(),
                contact: "hotline ticket 12345".into(),
                language: "zh".into(),
                last4: Some("1234".into()),
                from: Some("2026-02-12 09:00".into()),
                to: Some("2026-02-12 18:00".into()),
                ..Filing::default()
            };
            let at = "2026-02-13T02:00:00+00:00";
            let c = cp::file(db, &f, &Policies::default(), &actor("support.li"), at).expect("file");
            assert_eq!(c.ack_due, "2026-02-14");
            assert_eq!(
                c.resolve_due, "2026-03-05",
                "10 working days for the hotline's"
            );
            let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
            assert_eq!(
                cp::standing(db, &c, day("2026-02-13")).expect("standing"),
                Some(Standing::Due)
            );
            assert_eq!(
                cp::standing(db, &c, day("2026-02-16")).expect("standing"),
                Some(Standing::Breached)
            );
            let c = cp::acknowledge(db, c.complaint_id, &actor("support.li"), at).expect("ack");
            assert_eq!(
                cp::standing(db, &c, day("2026-02-16")).expect("standing"),
                Some(Standing::OnTime)
            );
            assert_eq!(
                cp::standing(db, &c, day("2026-03-04")).expect("standing"),
                Some(Standing::Due)
            );
            assert_eq!(
                cp::standing(db, &c, day("2026-03-06")).expect("standing"),
                Some(Standing::Breached)
            );
            // Extended with a reason within the hotline's cap; beyond, refused.
            let c = cp::extend(
                db,
                c.complaint_id,
                20,
                "waiting for the issuer's records",
                false,
                &Policies::default(),
                &actor("support.li"),
                at,
            )
            .expect("extend");
            assert_eq!(c.resolve_due, "2026-03-19");
            assert!(cp::extend(
                db,
                c.complaint_id,
                25,
                "more",
                true,
                &Policies::default(),
                &actor("support.li"),
                at
            )
            .is_err());
            // Deadlines are configuration: the hotline's with 5 working days to resolve
            // (filed on the 13th: the make-up Saturday, then the 24th to the 27th).
            let cfg = cp::ComplaintConfig::from_toml(
                "four_eyes_minor = 10000\n[sources.regulator_hotline]\nacknowledge_working_days = 1\n\
                 resolve_days = 5\nresolve_in = \"working\"\nextend_to_days = 10\nmax_days = 10\n",
            )
            .expect("config");
            assert_eq!(cfg.four_eyes_minor, 10_000);
            let c = cp::file(db, &f, &cfg.policies, &actor("support.li"), at).expect("file");
            assert_eq!(c.resolve_due, "2026-02-27");
            for bad in [
                "[sources.nobody]\nacknowledge_working_days = 1\nresolve_days = 5\nresolve_in = \"working\"\nextend_to_days = 10\nmax_days = 10\n",
                "[sources.merchant]\nacknowledge_working_days = 1\nresolve_days = 50\nresolve_in = \"working\"\nextend_to_days = 10\nmax_days = 10\n",
                "four_eyes_minor = -1\n",
                "surprise = 1\n",
            ] {
                assert!(cp::ComplaintConfig::from_toml(bad).is_err(), "{bad}");
            }
        })
        .await;
        tokio::task::spawn_blocking(move || crate::scenarios::cleanup(&s))
            .await
            .expect("cleanup");
    }
}

/// Files `f` about `d`'s sale, checks the sale ranks first, links it, and returns its
/// diagnosis with the complaint.
async fn diagnosed(d: &Day, f: Filing) -> (store::ComplaintRow, complaints::diagnose::Diagnosis) {
    let (txn_id, at) = (d.txn.txn_id, d.txn.created_at.clone());
    db(&d.store, move |db| {
        let support = actor("support.li");
        let c = cp::file(db, &f, &Policies::default(), &support, &at).expect("file");
        let found = cp::candidates(db, c.complaint_id, 5).expect("candidates");
        assert_eq!(
            found.first().map(|(_, t)| t.txn_id),
            Some(txn_id),
            "{found:?}"
        );
        cp::link(db, c.complaint_id, &[txn_id], &support, &at).expect("link");
        let mut g = cp::diagnoses(db, c.complaint_id).expect("diagnosis");
        assert_eq!(g.len(), 1);
        (c, g.remove(0).1)
    })
    .await
}

fn cardholder(d: &Day, category: &str, amount: i64, tolerance: i64) -> Filing {
    let (from, to) = window(d);
    Filing {
        source: "cardholder_phone".into(),
        category: category.into(),
        contact: "13800000000".into(),
        language: "en".into(),
        amount_minor: Some(amount),
        tolerance_minor: Some(tolerance),
        from: Some(from),
        to: Some(to),
        last4: Some(d.card.pan[d.card.pan.len() - 4..].to_owned()),
        ..Filing::default()
    }
}

fn merchant(d: &Day, category: &str) -> Filing {
    let (from, to) = window(d);
    Filing {
        source: "merchant".into(),
        category: category.into(),
        contact: "the shop's manager".into(),
        language: "zh".into(),
        merchant_id: Some(d.txn.merchant_id.clone()),
        amount_minor: Some(AMOUNT),
        from: Some(from),
        to: Some(to),
        ..Filing::default()
    }
}

/// An unrecognised sale that is real: approved and answered, it stands — explained;
/// an amount the cardholder remembers wrong (80.00 for 88.00) is found within the
/// tolerance and the same sale is for staff to look into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_or_misremembered_sale_is_found_and_explained() {
    for store in stores("cp_sale") {
        let d = Day::sell(&store, issuer::Faults::default(), "00").await;
        let (c, g) = diagnosed(&d, cardholder(&d, "unrecognised", AMOUNT, 0)).await;
        assert_eq!(
            (g.code, g.next),
            ("approved_stands", complaints::diagnose::Next::Explain)
        );
        assert!(g.debit_stands);
        let (id, at) = (c.complaint_id, d.txn.created_at.clone());
        let c = db(&store, move |db| {
            cp::resolve(db, id, Outcome::Explained, &actor("support.li"), &at).expect("resolve")
        })
        .await;
        assert!(
            c.answer
                .as_deref()
                .is_some_and(|a| a.contains("the sale stands")),
            "{c:?}"
        );
        assert_eq!(d.sms(), [SmsKind::Sale]);
        let id = c.complaint_id;
        let steps = db(&store, move |db| {
            db.complaint_events(id)
                .expect("events")
                .into_iter()
                .map(|e| e.action)
                .collect::<Vec<_>>()
        })
        .await;
        assert_eq!(steps, ["file", "link", "resolve"]);
        let (c, g) = diagnosed(&d, cardholder(&d, "amount_wrong", 8_000, 1_000)).await;
        assert_eq!(
            (g.code, g.next),
            ("approved_stands", complaints::diagnose::Next::Investigate)
        );
        assert_eq!(d.balance(), d.before - AMOUNT, "nothing moved ({store})");
        // Staff escalate it to the issuer with the evidence; the dispute moves on as
        // the reference model does and, decided, resolves the complaint.
        let (id, txn_id, at) = (c.complaint_id, d.txn.txn_id, d.txn.created_at.clone());
        let c = db(&store, move |db| {
            let staff = actor("support.lead");
            let ev = |kind: &str, text: &str| cp::DisputeEvidence {
                kind: kind.into(),
                text: text.into(),
            };
            let d = cp::escalate(
                db,
                id,
                txn_id,
                &[ev("receipt", "the slip says 88.00")],
                10,
                &staff,
                &at,
            )
            .expect("escalate");
            assert_eq!(
                (d.stage.as_str(), d.status.as_str()),
                ("pre_dispute", "opened")
            );
            assert_eq!(
                db.complaint(id).expect("read").expect("c").status,
                "escalated"
            );
            // Backwards or out of order is refused.
            assert!(
                cp::update_dispute(db, d.dispute_id, Some("won"), None, &[], &staff, &at).is_err()
            );
            cp::update_dispute(
                db,
                d.dispute_id,
                Some("challenged"),
                Some("dispute"),
                &[ev("transaction_log", "journal: 88.00 approved")],
                &staff,
                &at,
            )
            .expect("challenged");
            assert!(cp::update_dispute(
                db,
                d.dispute_id,
                None,
                Some("pre_dispute"),
                &[],
                &staff,
                &at
            )
            .is_err());
            let done = cp::update_dispute(db, d.dispute_id, Some("lost"), None, &[], &staff, &at)
                .expect("decided");
            assert_eq!(done.status, "lost");
            db.complaint(id).expect("read").expect("c")
        })
        .await;
        assert_eq!(
            (c.status.as_str(), c.outcome.as_deref()),
            ("resolved", Some("escalated"))
        );
        assert!(
            c.answer
                .as_deref()
                .is_some_and(|a| a.contains("the transaction stands")),
            "{c:?}"
        );
        d.w.finish(&store).await;
    }
}

/// A merchant not credited: its settlement is held, and the diagnosis says why and
/// since when; a merchant credited "short": settled and paid, net of the fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_is_told_where_its_money_is() {
    for store in stores("cp_merchant") {
        let mut d = Day::sell(&store, issuer::Faults::default(), "00").await;
        // Reconciliation captures the approval the terminal has not batch-settled.
        d.reconcile(0, "").await;
        let m = d.txn.merchant_id.clone();
        let at = d.txn.created_at.clone();
        db(&store, move |db| {
            services::money::place_hold(
                db,
                &format!("merchant:{m}"),
                "chargeback ratio under review",
                "risk.zhao",
                &actor("risk.zhao"),
                &at,
            )
            .expect("hold")
        })
        .await;
        assert_eq!(d.settled().await, None, "held");
        let (first, g) = diagnosed(&d, merchant(&d, "merchant_not_credited")).await;
        assert_eq!(g.code, "held", "{g:?}");
        assert!(g.zh.contains("chargeback ratio under review"), "{}", g.zh);
        assert_eq!(g.next, complaints::diagnose::Next::ReviewHold);
        assert!(g.evidence.iter().any(|e| e.starts_with("hold:")), "{g:?}");
        // The complaint's resolution releases the hold; settled, the next complaint's
        // diagnosis names the settlement and its payouts.
        let (at, id) = (d.txn.created_at.clone(), first.complaint_id);
        let resolved = db(&store, move |db| {
            cp::resolve(db, id, Outcome::HoldReleased, &actor("risk.zhao"), &at).expect("release");
            assert!(db.holds(true).expect("holds").is_empty(), "released");
            db.complaint(id).expect("read").expect("complaint")
        })
        .await;
        assert_eq!(resolved.outcome.as_deref(), Some("hold_released"));
        assert!(
            resolved
                .answer
                .as_deref()
                .is_some_and(|a| a.contains("结算暂缓")),
            "answered in Chinese: {resolved:?}"
        );
        // The released sale settles in the next run (the held date's run is done).
        let (next, cfg, id) = (
            d.date + chrono::Duration::days(1),
            d.cfg.clone(),
            d.txn.txn_id,
        );
        let net = db(&store, move |db| {
            services::money::settle_date(
                db,
                next,
                &cfg,
                &actor("finance.qian"),
                "2030-01-01T00:00:00+00:00",
            )
            .expect("settle");
            db.settlement_item(id).expect("item").map(|i| i.net_minor)
        })
        .await
        .expect("settled after the release");
        assert!(net < AMOUNT, "net of the fee");
        // The ledger holds the payout on its way to the merchant's bank.
        let in_transit = db(&store, |db| {
            db.ledger_accounts()
                .expect("ledger")
                .into_iter()
                .find(|a| a.id == "settlement_in_transit")
                .map(|a| a.balance().abs())
        })
        .await;
        assert_eq!(in_transit, Some(net), "the payout in the ledger ({store})");
        let (_, g) = diagnosed(&d, merchant(&d, "merchant_credited_short")).await;
        assert!(matches!(g.code, "settled" | "paid_out"), "{g:?}");
        assert!(g.staff.contains(&format!("net {net}")), "{}", g.staff);
        assert!(
            g.evidence.iter().any(|e| e.starts_with("settlement:")),
            "{g:?}"
        );
        d.w.finish(&store).await;
    }
}

/// "My refund never came": a refund the terminal made is found by its amount and is
/// with the bank; a voided sale is found and its debit is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_or_void_not_seen_is_found_and_explained() {
    use posguard::demo_data::CardFate;

    use crate::scenarios::{card, code, World};
    for store in stores("cp_refund") {
        let w = World::start_with(&store, crate::scenarios::Setup::default()).await;
        let mut pos = w.pos(0).await;
        let c = w.card(CardFate::Good, 0).clone();
        let (before_c, before_o) = (
            w.account(&c).balance_minor,
            w.account(w.card(CardFate::Good, 1)).balance_minor,
        );
        let sale = {
            let r = pos.term.sale(&card(&c), 50_000).expect("sale");
            pos.send(r).await
        };
        assert_eq!(code(&sale), "00");
        let entry = sale.entry.clone().expect("entry");
        let refund = {
            let r = pos.term.refund(&card(&c), 20_000, &entry).expect("refund");
            pos.send(r).await
        };
        assert_eq!(code(&refund), "00");
        let other = w.card(CardFate::Good, 1).clone();
        let sale = {
            let r = pos.term.sale(&card(&other), 12_345).expect("sale");
            pos.send(r).await
        };
        let entry = sale.entry.clone().expect("entry");
        let void = {
            let r = pos.term.void(&card(&other), &entry).expect("void");
            pos.send(r).await
        };
        assert_eq!(code(&void), "00");
        let s = store.clone();
        let (c_last4, o_last4) = (
            c.pan[c.pan.len() - 4..].to_owned(),
            other.pan[other.pan.len() - 4..].to_owned(),
        );
        let codes = db(&s, move |db| {
            let journal = db.transactions_after(0, 100).expect("journal");
            let at = journal.last().expect("txns").created_at.clone();
            let local = chrono::DateTime::parse_from_rfc3339(&at)
                .expect("time")
                .to_utc()
                .naive_utc()
                + chrono::Duration::hours(8);
            let f = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
            let mut codes = Vec::new();
            for (amount, last4) in [(20_000, c_last4), (12_345, o_last4)] {
                let filing = Filing {
                    source: "cardholder_web".into(),
                    category: "refund_not_received".into(),
                    contact: "someone@example.com".into(),
                    language: "en".into(),
                    amount_minor: Some(amount),
                    from: Some(f(local - chrono::Duration::minutes(20))),
                    to: Some(f(local + chrono::Duration::minutes(5))),
                    last4: Some(last4),
                    ..Filing::default()
                };
                let support = actor("support.li");
                let cpl = cp::file(db, &filing, &Policies::default(), &support, &at).expect("file");
                let found = cp::candidates(db, cpl.complaint_id, 5).expect("candidates");
                let first = &found.first().expect("a candidate").1;
                assert_eq!(first.amount_minor, amount, "{found:?}");
                cp::link(db, cpl.complaint_id, &[first.txn_id], &support, &at).expect("link");
                let g = cp::diagnoses(db, cpl.complaint_id).expect("diagnosis");
                codes.push((first.kind, g[0].1.code));
                let done = cp::resolve(db, cpl.complaint_id, Outcome::Explained, &support, &at)
                    .expect("resolve");
                assert_eq!(
                    (done.status.as_str(), done.outcome.as_deref()),
                    ("resolved", Some("explained"))
                );
                let steps: Vec<String> = db
                    .complaint_events(cpl.complaint_id)
                    .expect("events")
                    .into_iter()
                    .map(|e| e.action)
                    .collect();
                assert_eq!(steps, ["file", "link", "resolve"]);
            }
            codes
        })
        .await;
        assert_eq!(
            codes,
            [
                (store::TxnKind::Refund, "refund_sent"),
                (store::TxnKind::Sale, "voided")
            ]
        );
        // The money as the answers say: 500.00 debited and 200.00 credited back; the
        // voided sale undone; each told by SMS.
        assert_eq!(w.account(&c).balance_minor, before_c - 30_000);
        assert_eq!(w.account(&other).balance_minor, before_o);
        assert_eq!(w.sms_count(&c), 2);
        assert_eq!(w.sms_count(&other), 2);
        w.finish(&store).await;
    }
}
