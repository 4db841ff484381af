//! One test per reconciliation class over real sockets (terminal, acquirer node, issuer
//! simulator), on SQLite and, when configured, PostgreSQL: each starts from a
//! constructed discrepancy, reconciles, lets the acquirer carry out what was queued,
//! reconciles the next day's file, and asserts the money — the cardholder's balance at
//! the issuer, the SMS they got, the capture and the merchant's settlement.

use std::time::Duration;

use chrono::NaiveDate;
use issuer::{ClearingRecord, Faults, SmsKind};
use posguard::demo_data::{CardFate, DemoCard};
use recon::Class;
use services::money::MoneyConfig;
use services::reconcile::{ingest, reconcile_date, ReconReport};
use store::{Backend, FindingRow, TxnRow, Write};

use crate::scenarios::{card, code, stores, Setup, World};

/// Runs `f` on a store connection off the async workers (the PostgreSQL client blocks).
pub(crate) async fn db<T: Send + 'static>(
    store: &str,
    f: impl FnOnce(&mut dyn Backend) -> T + Send + 'static,
) -> T {
    let s = store.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut db = posguard::node::open_store(&s).expect("open");
        f(db.as_mut())
    })
    .await
    .expect("join")
}

/// A clearing file of these lines, as the issuer writes it.
fn csv(lines: &[ClearingRecord]) -> String {
    let mut out = issuer::CLEARING_HEADER.join(",");
    out.push('\n');
    for r in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.rrn,
            r.auth_code,
            r.stan,
            r.terminal,
            r.merchant,
            r.masked_pan,
            r.token,
            r.published_amount_minor,
            r.currency.code(),
            r.kind.as_str(),
            r.time.format("%Y-%m-%dT%H:%M:%S")
        ));
    }
    out
}

/// One sale on a running world, and where reconciliation picks it up.
pub(crate) struct Day {
    pub(crate) w: World,
    pub(crate) store: String,
    pub(crate) card: DemoCard,
    pub(crate) before: i64,
    pub(crate) txn: TxnRow,
    pub(crate) date: NaiveDate,
    pub(crate) cfg: MoneyConfig,
    /// Clearing lines already published in the day's file.
    pub(crate) published: usize,
}

pub(crate) const AMOUNT: i64 = 8_800;

impl Day {
    /// Starts a world with `faults` and sells once; the terminal sees `want_code`.
    pub(crate) async fn sell(store: &str, faults: Faults, want_code: &str) -> Day {
        let setup = Setup {
            faults,
            issuer_timeout_ms: 300,
            saf_backoff_ms: 200,
            sweep_fast: true,
            ..Setup::default()
        };
        let w = World::start_with(store, setup).await;
        let mut pos = w.pos(0).await;
        let c = w.card(CardFate::Good, 0).clone();
        let before = w.account(&c).balance_minor;
        let r = pos.term.sale(&card(&c), AMOUNT).expect("sale");
        assert_eq!(code(&pos.send(r).await), want_code, "{store}");
        // Whatever the acquirer queued for the sale itself (a reversal) is finished.
        let s = store.to_owned();
        for _ in 0..200 {
            let pending = db(&s, |db| {
                db.saf_in_state(store::SafState::Pending)
                    .expect("saf")
                    .len()
            })
            .await;
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let txn = db(store, |db| {
            db.transactions_after(0, 100)
                .expect("journal")
                .into_iter()
                .find(|t| t.kind == store::TxnKind::Sale)
                .expect("the sale")
        })
        .await;
        let out_dir = std::env::temp_dir().join(format!(
            "posguard-recon-money-{}-{}",
            std::process::id(),
            txn.rrn
        ));
        let cfg = MoneyConfig {
            out_dir,
            ..MoneyConfig::default()
        };
        let date = cfg.business_date(&txn.created_at).expect("business date");
        Day {
            w,
            store: store.to_owned(),
            card: c,
            before,
            txn,
            date,
            cfg,
            published: 0,
        }
    }

    fn lines(&self) -> Vec<ClearingRecord> {
        let bank = self.w.issuer.bank();
        let b = bank.lock().expect("bank");
        b.clearing_records().to_vec()
    }

    pub(crate) fn balance(&self) -> i64 {
        self.w.account(&self.card).balance_minor
    }

    pub(crate) fn sms(&self) -> Vec<SmsKind> {
        let id = self.w.account(&self.card).id;
        let bank = self.w.issuer.bank();
        let b = bank.lock().expect("bank");
        b.sms()
            .iter()
            .filter(|s| s.account == id)
            .map(|s| s.kind)
            .collect()
    }

    /// Publishes the lines not yet published (plus `extra`) as the file of
    /// `date + offset` days, and reconciles `date + offset`.
    pub(crate) async fn reconcile(&mut self, offset: i64, extra: &str) -> ReconReport {
        let lines = self.lines();
        let text = format!("{}{extra}", csv(&lines[self.published..]));
        self.published = lines.len();
        let date = self.date + chrono::Duration::days(offset);
        let cfg = self.cfg.clone();
        db(&self.store, move |db| {
            let at = "2030-01-01T00:00:00+00:00";
            ingest(
                db,
                text.as_bytes(),
                date,
                "issuer file",
                &services::accounts::Actor::cli("test", 0),
                at,
            )
            .expect("ingest");
            reconcile_date(
                db,
                date,
                &cfg,
                &services::accounts::Actor::cli("test", 0),
                at,
            )
            .expect("reconcile")
        })
        .await
    }

    async fn finding(&self, class: Class) -> FindingRow {
        let id = format!("{}:{}", class.name(), self.txn.rrn);
        db(&self.store, move |db| {
            db.findings(None)
                .expect("findings")
                .into_iter()
                .find(|f| f.finding_id == id)
                .unwrap_or_else(|| panic!("no finding {id}"))
        })
        .await
    }

    /// Waits (bounded) until the acquirer has sent the queued adjustment and the
    /// issuer answered it.
    pub(crate) async fn adjustment_done(&self) {
        let id = switch::adjustment_id(self.txn.txn_id, 1);
        for _ in 0..300 {
            let state = db(&self.store, move |db| {
                db.saf_entry(id).expect("saf").map(|e| e.state)
            })
            .await;
            if state == Some(store::SafState::Done) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the adjustment was not applied ({})", self.store);
    }

    /// Settles the sale's date: `Some(net)` when the sale was paid to the merchant.
    pub(crate) async fn settled(&self) -> Option<i64> {
        let (date, cfg, id) = (self.date, self.cfg.clone(), self.txn.txn_id);
        db(&self.store, move |db| {
            services::money::settle_date(
                db,
                date,
                &cfg,
                &services::accounts::Actor::cli("test", 0),
                "2030-01-01T00:00:00+00:00",
            )
            .expect("settle");
            db.settlement_item(id).expect("item").map(|i| i.net_minor)
        })
        .await
    }

    async fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.cfg.out_dir);
        self.w.finish(&self.store).await;
    }
}

/// The sale that must be given back: a finding that queued a credit adjustment, sent by
/// the acquirer, applied by the issuer (balance restored, SMS), settled by the next
/// day's file, and never paid to the merchant.
async fn given_back(mut d: Day, class: Class, sms_before: &[SmsKind]) {
    let r = d.reconcile(0, "").await;
    assert_eq!(
        r.classes.get(&class).map(|c| (c.0, c.2)),
        Some((1, 1)),
        "{r}"
    );
    let f = d.finding(class).await;
    assert_eq!(f.status, "auto_resolving", "{f:?}");
    assert!(
        f.action.contains("credit adjustment of 88.00"),
        "{}",
        f.action
    );
    d.adjustment_done().await;
    assert_eq!(
        d.balance(),
        d.before,
        "the cardholder has the money back ({})",
        d.store
    );
    let mut sms = sms_before.to_vec();
    sms.push(SmsKind::Adjustment);
    assert_eq!(d.sms(), sms, "the cardholder is told ({})", d.store);
    let r = d.reconcile(1, "").await;
    assert!(r.classes.is_empty(), "the next day's file settles it: {r}");
    assert_eq!(d.finding(class).await.status, "auto_resolved");
    assert_eq!(
        d.settled().await,
        None,
        "the merchant is not paid a failed sale"
    );
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phantom_debit_is_given_back() {
    for store in stores("rc_phantom") {
        let d = Day::sell(&store, Faults::default(), "00").await;
        // The discrepancy: the journal lost the approval (recorded as timed out, no
        // reversal), while the issuer debited the cardholder.
        let id = d.txn.txn_id;
        db(&store, move |db| {
            db.apply(&[Write::TxnState {
                txn_id: id,
                state: store::TxnState::TimedOut,
                updated_at: "2030-01-01T00:00:00+00:00".into(),
            }])
            .expect("state")
        })
        .await;
        assert_eq!(d.balance(), d.before - AMOUNT);
        given_back(d, Class::PhantomDebit, &[SmsKind::Sale]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_not_applied_is_given_back() {
    for store in stores("rc_unapplied") {
        // The issuer debits and answers too late, then acknowledges the acquirer's
        // reversal without applying it: the journal says reversed, the cardholder is
        // still debited.
        let faults = Faults {
            late_permille: 1000,
            late_ms: 700,
            reversal_ack_without_apply_permille: 1000,
            ..Faults::default()
        };
        let d = Day::sell(&store, faults, "98").await;
        assert_eq!(d.txn.state, store::TxnState::Reversed, "{store}");
        assert_eq!(d.balance(), d.before - AMOUNT);
        given_back(d, Class::ReversalNotApplied, &[SmsKind::Sale]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_debit_gives_back_the_extra_and_the_sale_still_settles() {
    for store in stores("rc_double") {
        let faults = Faults {
            double_debit_permille: 1000,
            ..Faults::default()
        };
        let mut d = Day::sell(&store, faults, "00").await;
        assert_eq!(d.balance(), d.before - 2 * AMOUNT);
        let r = d.reconcile(0, "").await;
        assert_eq!(
            r.classes.get(&Class::DoubleDebit).map(|c| (c.0, c.2)),
            Some((1, 1)),
            "{r}"
        );
        d.adjustment_done().await;
        assert_eq!(d.balance(), d.before - AMOUNT, "debited once ({store})");
        assert_eq!(d.sms(), [SmsKind::Sale, SmsKind::Sale, SmsKind::Adjustment]);
        // The next day's file nets the sale to one debit: the approved sale, never
        // batch-settled by its terminal, is captured by reconciliation and paid.
        let r = d.reconcile(1, "").await;
        assert_eq!(r.classes.get(&Class::DoubleDebit).map(|c| c.0), None, "{r}");
        assert_eq!(d.finding(Class::DoubleDebit).await.status, "auto_resolved");
        assert_eq!(d.finding(Class::Uncaptured).await.status, "auto_resolved");
        let net = d
            .settled()
            .await
            .expect("the merchant is paid the sale once");
        assert!(net > 0 && net < AMOUNT, "net of the fee: {net}");
        d.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncaptured_approval_is_captured_and_settled() {
    for store in stores("rc_uncaptured") {
        let mut d = Day::sell(&store, Faults::default(), "00").await;
        // The terminal never settled its batch: the sale is approved, debited, and
        // not captured.
        let r = d.reconcile(0, "").await;
        assert_eq!(
            r.classes.get(&Class::Uncaptured).map(|c| (c.0, c.2)),
            Some((1, 1)),
            "{r}"
        );
        let id = d.txn.txn_id;
        let how = db(&store, move |db| {
            db.capture(id).expect("capture").map(|c| c.how)
        })
        .await;
        assert_eq!(how.as_deref(), Some("recon"), "{store}");
        assert_eq!(d.balance(), d.before - AMOUNT, "the cardholder paid once");
        assert_eq!(d.sms(), [SmsKind::Sale]);
        let net = d.settled().await.expect("the merchant is paid");
        assert!(net > 0 && net < AMOUNT, "{net}");
        d.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_at_issuer_is_flagged_and_its_money_left_alone() {
    for store in stores("rc_missing") {
        let mut d = Day::sell(&store, Faults::default(), "00").await;
        // The issuer's files of the day and the next lack the sale's line.
        d.published = d.lines().len();
        let r = d.reconcile(0, "").await;
        assert_eq!(
            (r.awaiting, r.classes.len()),
            (1, 0),
            "awaited, not missing yet: {r}"
        );
        let r = d.reconcile(1, "").await;
        assert_eq!(
            r.classes.get(&Class::MissingAtIssuer).map(|c| (c.0, c.2)),
            Some((1, 0)),
            "{r}"
        );
        let f = d.finding(Class::MissingAtIssuer).await;
        assert_eq!(
            (f.status.as_str(), f.owner.as_deref()),
            ("open", Some("operations"))
        );
        let id = switch::adjustment_id(d.txn.txn_id, 1);
        assert!(db(&store, move |db| db.saf_entry(id).expect("saf"))
            .await
            .is_none());
        assert_eq!(
            d.balance(),
            d.before - AMOUNT,
            "nothing is moved on a guess"
        );
        assert_eq!(d.sms(), [SmsKind::Sale]);
        d.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amount_mismatch_is_an_exception_and_the_true_debit_stands() {
    for store in stores("rc_mismatch") {
        // The issuer's file shows the amount wrong by one fen; the account is right.
        let faults = Faults {
            corrupt_clearing_line_permille: 1000,
            ..Faults::default()
        };
        let mut d = Day::sell(&store, faults, "00").await;
        let r = d.reconcile(0, "").await;
        assert_eq!(
            r.classes
                .get(&Class::AmountMismatch)
                .map(|c| (c.0, c.1, c.2)),
            Some((1, 1, 0)),
            "{r}"
        );
        let f = d.finding(Class::AmountMismatch).await;
        assert_eq!(f.status, "open");
        assert!(f.evidence.contains(" 8801 CNY"), "{}", f.evidence);
        assert_eq!(d.balance(), d.before - AMOUNT);
        assert_eq!(d.sms(), [SmsKind::Sale]);
        d.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_at_posguard_is_an_exception_and_nothing_moves() {
    for store in stores("rc_unknown") {
        let mut d = Day::sell(&store, Faults::default(), "00").await;
        let stranger = "ZZ0000000001,999999,000777,99999999,898999999999999,622848******0000,t7.00,12300,CNY,sale,2030-01-01T10:00:00\n";
        let r = d.reconcile(0, stranger).await;
        assert_eq!(
            r.classes
                .get(&Class::UnknownAtPosguard)
                .map(|c| (c.0, c.1, c.2)),
            Some((1, 12_300, 0)),
            "{r}"
        );
        let f = db(&store, |db| {
            db.findings(None)
                .expect("findings")
                .into_iter()
                .find(|f| f.class == "unknown_at_posguard")
                .expect("finding")
        })
        .await;
        assert_eq!((f.status.as_str(), f.txn_id), ("open", None));
        assert_eq!(d.balance(), d.before - AMOUNT);
        assert_eq!(d.sms(), [SmsKind::Sale]);
        d.finish().await;
    }
}
