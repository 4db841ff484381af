//! Reconciliation over the store, on SQLite and (when configured) PostgreSQL: a day
//! with one discrepancy of each class, the file ingested once, findings recorded with
//! evidence, the uncaptured approval captured, and a late clearing line resolving its
//! "missing at issuer" exception the next day.

use chrono::NaiveDate;
use recon::Class;
use services::money::MoneyConfig;
use services::reconcile::{ingest, reconcile_date};
use store::{CaptureRow, Write};

use crate::scenarios::{cleanup, stores};
use crate::settle::{merchant, txn};

const M: &str = "898310005411001";
const HEADER: &str =
    "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n";

fn line(id: i64, amount: i64, kind: &str, day: u32) -> String {
    format!(
        "R{id:011},123456,{id:06},10000001,{M},622848******1234,t1.ab,{amount},CNY,{kind},2026-11-{day:02}T10:00:00\n"
    )
}

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).expect("date")
}

#[test]
fn each_class_is_found_recorded_and_acted_on() {
    for store in stores("recon") {
        let mut db = posguard::node::open_store(&store).expect("open");
        let day = "2026-11-20";
        let mut w = vec![merchant(M)];
        // 1 clean, 2 phantom (timed out but debited), 3 double debit, 4 missing,
        // 5 amount mismatch, 6 reversal not applied, 7 uncaptured; 99 unknown.
        for (id, state) in [
            (1, "approved"),
            (2, "timed_out"),
            (3, "approved"),
            (4, "approved"),
            (5, "approved"),
            (6, "reversed"),
            (7, "approved"),
        ] {
            w.push(txn(
                id,
                M,
                "10000001",
                "sale",
                state,
                1_000 * id,
                "622848******1234",
                &format!("{day} 10:00"),
            ));
        }
        for id in [1, 3, 4, 5] {
            w.push(Write::Capture(CaptureRow {
                txn_id: id,
                how: "batch".into(),
                business_date: day.into(),
                at: "2026-11-20T14:00:00+00:00".into(),
            }));
        }
        db.apply(&w).expect("seed");
        let file = format!(
            "{HEADER}{}{}{}{}{}{}{}{}garbage line\n",
            line(1, 1_000, "sale", 20),
            line(2, 2_000, "sale", 20),
            line(3, 3_000, "sale", 20),
            line(3, 3_000, "sale", 20),
            line(5, 50_000, "sale", 20),
            line(6, 6_000, "sale", 20),
            line(7, 7_000, "sale", 20),
            line(99, 9_900, "sale", 20),
        );
        let at = "2026-11-21T01:00:00+00:00";
        let ing = ingest(
            db.as_mut(),
            file.as_bytes(),
            d(20),
            "issuer-20",
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("ingest");
        assert_eq!(
            (ing.lines, ing.bad.len(), ing.already),
            (8, 1, false),
            "{store}"
        );
        assert_eq!(ing.bad[0].0, 10, "the bad line's number");
        let again = ingest(
            db.as_mut(),
            file.as_bytes(),
            d(20),
            "issuer-20",
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("again");
        assert!(again.already, "same content is ingested once");
        // The next day's file arrives with sale 4's line published late.
        let next = format!("{HEADER}{}", line(4, 4_000, "sale", 20));
        let cfg = MoneyConfig::default();
        let r = reconcile_date(
            db.as_mut(),
            d(20),
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("recon");
        let found = |c: Class| r.classes.get(&c).map_or(0, |x| x.0);
        for c in [
            Class::PhantomDebit,
            Class::DoubleDebit,
            Class::AmountMismatch,
            Class::ReversalNotApplied,
            Class::Uncaptured,
            Class::UnknownAtPosguard,
        ] {
            assert_eq!(found(c), 1, "{c} in {store}:\n{r}");
        }
        assert_eq!(
            found(Class::MissingAtIssuer),
            0,
            "sale 4 is awaited, not missing yet"
        );
        assert_eq!(r.awaiting, 1);
        // The uncaptured approval was captured (and will settle); the rest are queued.
        assert!(db.captured_ids().expect("captured").contains(&7));
        let open: Vec<String> = db
            .findings(Some("open"))
            .expect("findings")
            .into_iter()
            .map(|f| f.finding_id)
            .collect();
        // Phantom debit, double debit and the unapplied reversal queued credit
        // adjustments for the acquirer to send; a person gets the mismatch and the
        // unknown line.
        assert_eq!(open.len(), 2, "{open:?}");
        let queued: Vec<(i64, String)> = db
            .saf_in_state(store::SafState::Pending)
            .expect("queue")
            .into_iter()
            .map(|e| (e.saf_id, e.kind))
            .collect();
        assert_eq!(
            queued,
            [6, 3, 2].map(|t| (switch::adjustment_id(t, 1), "adjustment".to_owned()))
        );
        let f = db
            .findings(None)
            .expect("findings")
            .into_iter()
            .find(|f| f.finding_id == "double_debit:R00000000003")
            .expect("double debit finding");
        assert_eq!(
            f.evidence.lines().count(),
            3,
            "posguard's record and both lines"
        );
        assert!(!f.evidence.contains("6228480"), "no clear PAN in evidence");
        // Reconciling again records nothing new.
        reconcile_date(
            db.as_mut(),
            d(20),
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("recon again");
        assert_eq!(db.findings(None).expect("findings").len(), 6);
        // Day 21: with no file for the 21st yet, the 20th's sale 4 is now missing…
        let r = reconcile_date(
            db.as_mut(),
            d(21),
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("recon 21");
        assert_eq!(
            r.classes.get(&Class::MissingAtIssuer).map(|x| x.0),
            Some(1),
            "{r}"
        );
        // …until its late line arrives in the file of the 21st.
        ingest(
            db.as_mut(),
            next.as_bytes(),
            d(21),
            "issuer-21",
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("ingest 21");
        let r = reconcile_date(
            db.as_mut(),
            d(21),
            &cfg,
            &services::accounts::Actor::cli("test", 0),
            at,
        )
        .expect("recon 21 again");
        assert_eq!(
            r.classes.get(&Class::MissingAtIssuer).map(|x| x.0),
            None,
            "{r}"
        );
        let missing = db
            .findings(None)
            .expect("findings")
            .into_iter()
            .find(|f| f.class == "missing_at_issuer")
            .expect("missing finding");
        assert_eq!(missing.status, "auto_resolved", "{missing:?}");
        drop(db);
        cleanup(&store);
    }
}
