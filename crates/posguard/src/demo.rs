//! `posguard demo`: the issuer simulator, an acquirer node on embedded SQLite and a
//! terminal fleet in one process; then the fleet's summary and the consistency check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use issuer::{Bank, Faults, IssuerConfig, SmsKind};
use store::{SafRow, TxnKind, TxnRow, TxnState};

use crate::check::{clearing_dates, compare, load_journal, parse_clearing, CheckReport};
use crate::run_cli::{
    fleet_config, node_options, open_demo_accounts, seed_store, shanghai_now, DemoDataArgs,
};

/// `posguard demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The demo data set's shape.
    #[command(flatten)]
    pub demo: DemoDataArgs,
    /// Business days simulated (each trades, settles its terminal batches, and is
    /// settled to the merchants).
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Seconds the terminal fleet trades on each business day.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Financial requests per second for the whole fleet.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Where the demo's data directories go (a new one per run).
    #[arg(long, default_value = "./posguard-data")]
    pub data: String,
    /// Seed of the customers' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Turn off the fault mix (lost, late and duplicated issuer responses, customers
    /// cancelling after approval, one acquirer restart mid-run).
    #[arg(long)]
    pub no_faults: bool,
}

/// What a demo run produced.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The fleet's report, per business day.
    pub fleets: Vec<terminal::FleetReport>,
    /// The money of each business day.
    pub days: Vec<DayReport>,
    /// Every approved sale settled exactly once or held with a reason.
    pub settled: SettledCheck,
    /// The consistency check.
    pub check: CheckReport,
    /// Anomalies by kind and how they were resolved.
    pub resolution: Resolution,
    /// SMS sent per kind against the issuer's clearing lines.
    pub sms: SmsCheck,
    /// What risk control did.
    pub risk: RiskSummary,
    /// The complaints filed about what the faults did, and how they were resolved.
    pub complaints: ComplaintsSummary,
    /// The run's data directory.
    pub data_dir: String,
}

impl DemoOutcome {
    /// Financial requests over all days.
    pub fn transactions(&self) -> u64 {
        self.fleets.iter().map(|f| f.transactions).sum()
    }
}

/// The demo's clock: real time moved onto the simulated business day, so a business
/// day's trading takes seconds, and the node, the issuer and the settlement all agree
/// on the date.
#[derive(Debug)]
pub struct DemoClock {
    origin: std::time::Instant,
    base_ms: i64,
    day_ms: std::sync::atomic::AtomicI64,
}

impl DemoClock {
    /// A clock whose day 0 starts at 09:00 in Shanghai on `first_day`.
    #[allow(clippy::disallowed_methods)] // the edge: the demo's one real clock
    pub fn new(first_day: chrono::NaiveDate) -> DemoClock {
        let nine = first_day
            .and_hms_opt(9, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_millis()
            - 8 * 3_600_000;
        DemoClock {
            origin: std::time::Instant::now(),
            base_ms: nine,
            day_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Moves to business day `k` (09:00 plus the real time elapsed since the start).
    pub fn set_day(&self, k: u32) {
        self.day_ms.store(
            i64::from(k) * 86_400_000,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Milliseconds since the epoch, simulated.
    pub fn now_ms(&self) -> i64 {
        self.base_ms
            + self.origin.elapsed().as_millis() as i64
            + self.day_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Local time in Shanghai.
    pub fn shanghai(&self) -> chrono::NaiveDateTime {
        chrono::DateTime::from_timestamp_millis(self.now_ms() + 8 * 3_600_000)
            .unwrap_or_default()
            .naive_utc()
    }

    /// RFC 3339 in UTC.
    pub fn rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.now_ms())
            .unwrap_or_default()
            .to_rfc3339()
    }
}

impl gateway::Clock for DemoClock {
    fn now(&self) -> switch::Now {
        switch::Now {
            unix_ms: self.now_ms(),
        }
    }
}

/// One business day's money.
#[derive(Debug, Clone)]
pub struct DayReport {
    /// The settlement run.
    pub settlement: services::money::SettleReport,
    /// Terminal batches settled: (balanced, not balanced then uploaded).
    pub batches: (usize, usize),
    /// Payouts confirmed paid that day: (count, amount).
    pub paid: (usize, i64),
    /// The day's reconciliation against the issuer's clearing file.
    pub recon: services::reconcile::ReconReport,
}

impl std::fmt::Display for DayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use services::money::major;
        let s = &self.settlement;
        writeln!(
            f,
            "business day {}: {} merchants settled, {} txns; sales {} refunds {} fees {} held {} net to merchants {}",
            s.date,
            s.settlements.iter().filter(|x| x.txn_count > 0).count(),
            s.total(|x| x.txn_count),
            major(s.total(|x| x.gross_minor)),
            major(s.total(|x| x.refunds_minor)),
            major(s.total(|x| x.fees_minor)),
            major(s.total(|x| x.held_minor)),
            major(s.total(|x| x.net_minor)),
        )?;
        writeln!(
            f,
            "  terminal batches: {} balanced, {} not balanced and uploaded; {} txns captured at the cut-off",
            self.batches.0, self.batches.1, s.captured_at_cutoff
        )?;
        for (reason, (n, amount)) in s.held_by_reason() {
            writeln!(f, "  held: {n} txn(s) {} — {reason}", major(amount))?;
        }
        writeln!(
            f,
            "  payouts confirmed paid: {} ({}); settlement file {}",
            self.paid.0,
            major(self.paid.1),
            s.file.display()
        )?;
        write!(
            f,
            "  {}",
            self.recon.to_string().replace('\n', "\n  ").trim_end()
        )?;
        writeln!(f)
    }
}

/// Every approved sale, completion and refund up to the last settled business date
/// is settled exactly once, or held with a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledCheck {
    /// Approved money-moving transactions up to the last settled date.
    pub approved: usize,
    /// Settled (each at most once: the transaction is the key of its settlement).
    pub settled: usize,
    /// Held, with a reason.
    pub held: usize,
    /// Neither: a defect.
    pub missing: Vec<String>,
    /// The ledger's balances sum to zero.
    pub ledger_balanced: bool,
}

impl SettledCheck {
    /// Runs the check on a store.
    pub fn of(
        db: &mut dyn store::Backend,
        last: chrono::NaiveDate,
        cfg: &services::money::MoneyConfig,
    ) -> anyhow::Result<SettledCheck> {
        let settled = db.settled_ids()?;
        let holds = services::money::Holds::load(db)?;
        let mut c = SettledCheck::default();
        let mut after = 0;
        loop {
            let page = db.transactions_after(after, 10_000)?;
            let Some(last_row) = page.last() else { break };
            after = last_row.txn_id;
            for t in page {
                if t.state != store::TxnState::Approved
                    || !matches!(
                        t.kind,
                        TxnKind::Sale | TxnKind::Completion | TxnKind::Refund
                    )
                {
                    continue;
                }
                if cfg.business_date(&t.created_at).is_none_or(|d| d > last) {
                    continue;
                }
                c.approved += 1;
                if settled.contains(&t.txn_id) {
                    c.settled += 1;
                } else if holds.reason(&t.merchant_id, t.txn_id).is_some() {
                    c.held += 1;
                } else {
                    c.missing.push(t.rrn.clone());
                }
            }
        }
        c.ledger_balanced = db
            .ledger_accounts()?
            .iter()
            .map(|a| a.balance())
            .sum::<i64>()
            == 0;
        Ok(c)
    }

    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.ledger_balanced
    }
}

impl std::fmt::Display for SettledCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "settlement check: {} approved sales/completions/refunds, {} settled exactly once, {} held with a reason, {} neither{}; ledger {}",
            self.approved,
            self.settled,
            self.held,
            self.missing.len(),
            if self.missing.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.missing.iter().take(5).cloned().collect::<Vec<_>>().join(", "))
            },
            if self.ledger_balanced { "balances to zero" } else { "DOES NOT BALANCE" }
        )
    }
}

/// Runs the demo and returns its outcome (used by `posguard demo` and by tests).
pub async fn demo(a: DemoArgs) -> anyhow::Result<DemoOutcome> {
    let data = a.demo.data();
    let run_id = shanghai_now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let data_dir = format!("{}/demo-{run_id}", a.data.trim_end_matches('/'));
    let clock = Arc::new(DemoClock::new(shanghai_now().date()));

    // The issuer, with the demo cardholders and (unless turned off) its fault mix.
    let faults = if a.no_faults {
        Faults::default()
    } else {
        Faults {
            drop_after_debit_permille: 15,
            late_permille: 10,
            late_ms: 2_500,
            duplicate_permille: 10,
            ..Faults::default()
        }
    };
    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        faults: faults.clone(),
        seed: a.seed,
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys)
        .context("issuer keys")?
        .with_faults(faults, a.seed);
    open_demo_accounts(&mut bank, &data, clock.shanghai())?;
    let c2 = clock.clone();
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(move || c2.shanghai()))
        .await
        .context("start issuer")?;

    // The acquirer, on a fresh embedded store with the demo merchants and terminals.
    let mut opts = node_options(data_dir.clone(), issuer.iso_addr(), 2_000);
    opts.switch.saf_backoff_ms = 500;
    opts.switch.saf_backoff_max_ms = 5_000;
    opts.clock = clock.clone();
    // The whole fleet connects and signs on from 127.0.0.1.
    opts.gateway.max_connections_per_ip = opts.gateway.max_connections_per_ip.max(a.demo.terminals);
    opts.gateway.max_sign_ons_per_ip_per_minute = opts
        .gateway
        .max_sign_ons_per_ip_per_minute
        .max(a.demo.terminals * 4);
    let o = opts.clone();
    let d2 = data.clone();
    let data = tokio::task::spawn_blocking(move || seed_store(&o, &d2))
        .await
        .context("join seeding")??;
    let (s, d) = (data_dir.clone(), data.clone());
    tokio::task::spawn_blocking(move || seed_money(&s, &d))
        .await
        .context("join")??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind terminal port")?;
    let acquirer_addr = listener.local_addr().context("terminal port")?;
    let stats = Arc::new(gateway::GatewayStats::default());
    let money_cfg = services::money::MoneyConfig {
        out_dir: std::path::PathBuf::from(&data_dir),
        ..services::money::MoneyConfig::default()
    };

    let mut node: Option<NodeHandle> = None;
    let mut listener = Some(listener);
    let mut fleets = Vec::new();
    let mut days = Vec::new();
    let mut last_date = clock.shanghai().date();
    for day in 0..a.days.max(1) {
        clock.set_day(day);
        let mut fleet = fleet_config(
            &data,
            acquirer_addr,
            a.rate,
            Duration::from_secs(a.duration),
            a.seed + u64::from(day),
        );
        fleet.progress = !a.quiet;
        fleet.reply_timeout = Duration::from_secs(5);
        fleet.settle_at_end = true;
        let fleet_task = tokio::spawn(terminal::run_fleet(fleet));
        if node.is_none() {
            let l = listener.take().context("listener")?;
            node = Some(if a.no_faults {
                start_node(opts.clone(), l, stats.clone())
            } else {
                // One acquirer restart at 40% of the first day: stopped without
                // draining (what was waiting for the issuer stays in the journal as in
                // flight), started again on the same port, recovering from its store.
                let mut abrupt = opts.clone();
                abrupt.gateway.drain_timeout = Duration::ZERO;
                let (tx, task) = start_node(abrupt, l, stats.clone());
                tokio::time::sleep(Duration::from_millis(a.duration * 400)).await;
                let _ = tx.send(());
                task.await.context("join acquirer")??;
                let l = tokio::net::TcpListener::bind(acquirer_addr)
                    .await
                    .context("rebind terminal port")?;
                start_node(opts.clone(), l, stats.clone())
            });
        }
        let report = fleet_task.await.context("join fleet")?;
        let batches = (
            report.batches_balanced as usize,
            report.batches_uploaded as usize,
        );
        fleets.push(report);
        drain_saf(&data_dir).await?;

        // The day is over: settle it to the merchants, and confirm the payouts due. On
        // the last day onboarding has the missing document and releases its hold first.
        let date = clock.shanghai().date();
        last_date = date;
        let s = data_dir.clone();
        let cfg = money_cfg.clone();
        let at = clock.rfc3339();
        let release = day + 1 == a.days.max(1) && day > 0;
        let clearing_file = {
            let b = issuer
                .bank()
                .lock()
                .map_err(|_| anyhow::anyhow!("issuer state poisoned"))?
                .clearing_csv(date);
            b
        };
        let day_report = tokio::task::spawn_blocking(move || -> anyhow::Result<DayReport> {
            let mut db = crate::node::open_store(&s)?;
            let actor = services::accounts::Actor::cli("demo", std::process::id());
            if release {
                services::money::release_hold(db.as_mut(), "manual:1", "onboarding", &actor, &at)?;
            }
            let settlement = services::money::settle_date(db.as_mut(), date, &cfg, &actor, &at)?;
            let paid =
                services::money::confirm_payouts(db.as_mut(), date, cfg.currency, &actor, &at)?;
            services::reconcile::ingest(
                db.as_mut(),
                clearing_file.as_bytes(),
                date,
                &format!("issuer clearing {date}"),
                &actor,
                &at,
            )?;
            let recon = services::reconcile::reconcile_date(db.as_mut(), date, &cfg, &actor, &at)?;
            Ok(DayReport {
                settlement,
                batches,
                paid,
                recon,
            })
        })
        .await
        .context("join settlement")??;
        if !a.quiet {
            print!("{day_report}");
        }
        days.push(day_report);
    }
    if let Some((stop, task)) = node {
        let _ = stop.send(());
        task.await.context("join acquirer")??;
    }
    let store = data_dir.clone();
    let bank = issuer.bank();
    let journal = tokio::task::spawn_blocking(move || load_journal(&store))
        .await
        .context("join journal read")??;
    let s = data_dir.clone();
    let saf = tokio::task::spawn_blocking(move || crate::check::load_saf(&s))
        .await
        .context("join")??;
    let mut lines = Vec::new();
    let sms = {
        let b = bank
            .lock()
            .map_err(|_| anyhow::anyhow!("issuer state poisoned"))?;
        for d in clearing_dates(&journal) {
            lines.extend(parse_clearing(&b.clearing_csv(d), d)?);
        }
        SmsCheck::of(&b, &journal)
    };
    issuer.stop().await;
    let approved: Vec<String> = fleets
        .iter()
        .flat_map(|f| f.approved_entries().map(|(_, e)| e.rrn.to_string()))
        .collect();
    let check = compare(&journal, &lines, Some(&approved));
    let resolution = Resolution::of(&journal, &saf);
    let s = data_dir.clone();
    let risk = tokio::task::spawn_blocking(move || RiskSummary::load(&s))
        .await
        .context("join")??;
    let (s, j, d, at) = (
        data_dir.clone(),
        journal.clone(),
        data.clone(),
        clock.rfc3339(),
    );
    let first_date = days.first().map_or(last_date, |d| d.settlement.date);
    let complaints = tokio::task::spawn_blocking(move || {
        let mut db = crate::node::open_store(&s)?;
        complain(db.as_mut(), &j, &d, (first_date, last_date), &at)
    })
    .await
    .context("join complaints")??;
    let s = data_dir.clone();
    let cfg = money_cfg.clone();
    let settled = tokio::task::spawn_blocking(move || {
        let mut db = crate::node::open_store(&s)?;
        SettledCheck::of(db.as_mut(), last_date, &cfg)
    })
    .await
    .context("join")??;
    Ok(DemoOutcome {
        fleets,
        days,
        settled,
        check,
        resolution,
        sms,
        risk,
        complaints,
        data_dir,
    })
}

/// The demo's complaints, filed after the last day: cardholders whose sale the
/// terminal showed as failed while their bank's SMS said debited (approvals lost and
/// reversed), cardholders given a debit back by reconciliation, and the merchant whose
/// settlement was held — each filed with what the complainant remembers, matched,
/// diagnosed and, when the diagnosis answers it, resolved through the complaint path.
#[derive(Debug, Default)]
pub struct ComplaintsSummary {
    /// Filed.
    pub filed: usize,
    /// Whose transaction ranked first among the candidates.
    pub matched_first: usize,
    /// Resolved as explained by their diagnosis, with nobody's action.
    pub explained: usize,
    /// Left open for staff (the diagnosis asks for an action).
    pub open: usize,
    /// Diagnoses by code.
    pub by_code: std::collections::BTreeMap<String, usize>,
    /// The disclosure report over the demo's days.
    pub report: complaints::deadline::Report,
}

impl std::fmt::Display for ComplaintsSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "complaints: {} filed, {} matched to their transaction first, {} explained automatically from the evidence, {} left for staff",
            self.filed, self.matched_first, self.explained, self.open
        )?;
        for (code, n) in &self.by_code {
            writeln!(f, "    diagnosis {code:<24}{n:>6}")?;
        }
        write!(f, "  {}", self.report)
    }
}

/// Files and works the demo's complaints (see [`ComplaintsSummary`]).
fn complain(
    db: &mut dyn store::Backend,
    journal: &[TxnRow],
    data: &crate::demo_data::DemoData,
    (first, last): (chrono::NaiveDate, chrono::NaiveDate),
    at: &str,
) -> anyhow::Result<ComplaintsSummary> {
    use services::complaints::{self as cp, Filing, Outcome, Policies};
    let support = services::accounts::Actor {
        name: "demo:support".into(),
        role: "support".into(),
        request_id: "demo".into(),
        source: "demo".into(),
    };
    let local = |t: &TxnRow| {
        chrono::DateTime::parse_from_rfc3339(&t.created_at)
            .ok()
            .map(|d| d.to_utc().naive_utc() + chrono::Duration::hours(8))
    };
    let window = |t: &TxnRow| {
        local(t).map(|l| {
            let f = |x: chrono::NaiveDateTime| x.format("%Y-%m-%d %H:%M").to_string();
            (
                f(l - chrono::Duration::minutes(15)),
                f(l + chrono::Duration::minutes(15)),
            )
        })
    };
    // (the transaction, the category, the source)
    let mut cases: Vec<(&TxnRow, &str, &str)> = journal
        .iter()
        .filter(|t| t.kind == store::TxnKind::Sale && t.state == store::TxnState::Reversed)
        .take(8)
        .map(|t| (t, "debited_but_failed", "cardholder_phone"))
        .collect();
    let adjusted: Vec<i64> = db
        .saf_in_state(store::SafState::Done)?
        .into_iter()
        .filter(|e| e.kind == "adjustment")
        .map(|e| e.txn_id)
        .collect();
    cases.extend(
        journal
            .iter()
            .filter(|t| adjusted.contains(&t.txn_id))
            .take(4)
            .map(|t| (t, "debited_twice", "cardholder_web")),
    );
    let held = data.merchants.get(1).map(|m| m.merchant_id.clone());
    if let Some(t) = journal.iter().find(|t| {
        Some(&t.merchant_id) == held.as_ref()
            && t.kind == store::TxnKind::Sale
            && t.state == store::TxnState::Approved
    }) {
        cases.push((t, "merchant_not_credited", "merchant"));
    }
    let mut out = ComplaintsSummary::default();
    for (i, (t, category, source)) in cases.into_iter().enumerate() {
        let Some((from, to)) = window(t) else {
            continue;
        };
        let merchant = category == "merchant_not_credited";
        let f = Filing {
            source: source.into(),
            category: category.into(),
            contact: if merchant {
                format!("merchant {}", t.merchant_id)
            } else {
                format!("1390000{:04}", i)
            },
            language: if i % 2 == 0 { "zh" } else { "en" }.into(),
            merchant_id: merchant.then(|| t.merchant_id.clone()),
            amount_minor: Some(t.amount_minor),
            from: Some(from),
            to: Some(to),
            last4: (!merchant)
                .then(|| t.masked_pan[t.masked_pan.len().saturating_sub(4)..].to_owned()),
            ..Filing::default()
        };
        let c = cp::file(db, &f, &Policies::default(), &support, at)?;
        out.filed += 1;
        let found = cp::candidates(db, c.complaint_id, 5)?;
        let Some((_, first_txn)) = found.first() else {
            out.open += 1;
            continue;
        };
        if first_txn.txn_id == t.txn_id {
            out.matched_first += 1;
        }
        cp::acknowledge(db, c.complaint_id, &support, at)?;
        cp::link(db, c.complaint_id, &[first_txn.txn_id], &support, at)?;
        let diagnoses = cp::diagnoses(db, c.complaint_id)?;
        for (_, d) in &diagnoses {
            *out.by_code.entry(d.code.to_owned()).or_default() += 1;
        }
        if diagnoses
            .iter()
            .all(|(_, d)| d.next == complaints::diagnose::Next::Explain)
        {
            cp::resolve(db, c.complaint_id, Outcome::Explained, &support, at)?;
            out.explained += 1;
        } else {
            out.open += 1;
        }
    }
    let today = chrono::DateTime::parse_from_rfc3339(at)
        .map(|d| (d.to_utc() + chrono::Duration::hours(8)).date_naive())
        .unwrap_or(last);
    out.report = cp::report(db, first.min(today), last.max(today), today)?;
    Ok(out)
}

/// Waits (bounded) until the store-and-forward queue is empty and nothing is in flight.
async fn drain_saf(store: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        let s = store.to_owned();
        let (pending, in_flight) =
            tokio::task::spawn_blocking(move || crate::check::pending_work(&s))
                .await
                .context("join")??;
        if pending == 0 && in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The demo's money settings, made with the services an operator uses (audited):
/// the first merchant is paid the same day (D+0, up to 5,000.00), the others T+1 as
/// provisioned; the merchant that joined ten days ago (the data set's second) is still
/// missing a document, so its settlement waits until onboarding releases the hold.
fn seed_money(store: &str, data: &crate::demo_data::DemoData) -> anyhow::Result<()> {
    let mut db = crate::node::open_store(store)?;
    let ops = services::accounts::Actor {
        name: "demo:operations".into(),
        role: "operations".into(),
        request_id: "demo".into(),
        source: "demo".into(),
    };
    let at = crate::args::now_rfc3339();
    let terms = db.terms()?;
    if let Some(t) = data
        .merchants
        .first()
        .and_then(|m| terms.iter().find(|t| t.merchant_id == m.merchant_id))
    {
        let same_day = store::TermsRow {
            cycle: "D+0:500000".into(),
            updated_at: at.clone(),
            ..t.clone()
        };
        services::money::set_terms(db.as_mut(), same_day, &ops, &at)?;
    }
    if let Some(m) = data.merchants.get(1) {
        services::money::place_hold(
            db.as_mut(),
            &format!("merchant:{}", m.merchant_id),
            "incomplete qualification (business licence pending)",
            "onboarding",
            &ops,
            &at,
        )?;
    }
    Ok(())
}

type NodeHandle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Starts an acquirer node on `listener`; the sender stops it.
fn start_node(
    opts: crate::node::NodeOptions,
    listener: tokio::net::TcpListener,
    stats: Arc<gateway::GatewayStats>,
) -> NodeHandle {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        crate::node::run_node(
            opts,
            vec![(listener, gateway::TerminalDialect::CupPos)],
            stats,
            async {
                let _ = stop_rx.await;
            },
        )
        .await
        .map_err(anyhow::Error::from)
    });
    (stop_tx, task)
}

/// Runs `posguard demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    println!(
        "posguard demo: issuer simulator, acquirer (SQLite under {}), {} terminals at {}/s, {} business days of {} s",
        a.data, a.demo.terminals, a.rate, a.days, a.duration
    );
    println!("keys: the public demo LMK, zone keys and PAN-token key (demonstrations only; `posguard acquirer` needs an LMK of its own)");
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    let out = rt.block_on(demo(a))?;
    for (i, (fleet, day)) in out.fleets.iter().zip(&out.days).enumerate() {
        println!("== business day {} ({}) ==", i + 1, day.settlement.date);
        println!("{fleet}");
        print!("{day}");
    }
    println!();
    print!("{}", out.risk);
    print!("{}", out.resolution);
    print!("{}", out.sms);
    print!("{}", out.check);
    print!("{}", out.settled);
    print!("{}", out.complaints);
    println!("journal: {}/posguard.db", out.data_dir);
    let unresolved = out.check.anomalies()
        + out.resolution.unresolved()
        + usize::from(!out.sms.matches())
        + usize::from(!out.settled.ok());
    if unresolved > 0 {
        anyhow::bail!("{unresolved} unresolved anomalies");
    }
    Ok(())
}

/// Anomalies the acquirer resolved itself: transactions it reversed, by cause, and how
/// long each took from the request to the issuer's acknowledgement.
#[derive(Debug, Default, Clone)]
pub struct Resolution {
    /// (cause, occurred, resolved, resolution times in ms).
    pub kinds: Vec<(String, usize, usize, Vec<i64>)>,
    /// Reversals handed to operators.
    pub exceptions: usize,
}

impl Resolution {
    /// Builds the report from the journal and the store-and-forward queue.
    pub fn of(journal: &[TxnRow], saf: &[SafRow]) -> Resolution {
        let by_id: std::collections::HashMap<i64, &TxnRow> =
            journal.iter().map(|t| (t.txn_id, t)).collect();
        let mut kinds: std::collections::BTreeMap<String, (usize, usize, Vec<i64>)> =
            std::collections::BTreeMap::new();
        let mut exceptions = 0;
        for e in saf {
            let cause = match e.reason.get(..2) {
                _ if e.reason.contains("restart") => "in flight at an acquirer restart",
                Some("98") => "issuer response lost or late (98)",
                Some("A0") => "issuer response failed its MAC (A0)",
                _ => "cancelled after approval or reply undeliverable (06)",
            };
            let slot = kinds.entry(cause.to_owned()).or_default();
            slot.0 += 1;
            if e.state == store::SafState::Exception {
                exceptions += 1;
            }
            if let (Some(t), store::SafState::Done) = (by_id.get(&e.txn_id), e.state) {
                slot.1 += 1;
                let ms = |s: &str| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|d| d.timestamp_millis())
                        .ok()
                };
                if let (Some(a), Some(b)) = (ms(&t.created_at), ms(&t.updated_at)) {
                    slot.2.push(b - a);
                }
            }
        }
        Resolution {
            kinds: kinds
                .into_iter()
                .map(|(k, (o, r, t))| (k, o, r, t))
                .collect(),
            exceptions,
        }
    }

    /// Reversals not acknowledged.
    pub fn unresolved(&self) -> usize {
        self.kinds.iter().map(|(_, o, r, _)| o - r).sum()
    }
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "anomalies resolved automatically (reversals through the store-and-forward queue):"
        )?;
        writeln!(
            f,
            "  {:<56} {:>8} {:>8} {:>10} {:>8} {:>8}",
            "cause", "occurred", "resolved", "unresolved", "p50 ms", "p99 ms"
        )?;
        for (cause, occurred, resolved, times) in &self.kinds {
            let mut t = times.clone();
            t.sort_unstable();
            writeln!(
                f,
                "  {cause:<56} {occurred:>8} {resolved:>8} {:>10} {:>8} {:>8}",
                occurred - resolved,
                percentile(&t, 0.5),
                percentile(&t, 0.99)
            )?;
        }
        if self.kinds.is_empty() {
            writeln!(f, "  (none)")?;
        }
        writeln!(f, "  operator exceptions: {}", self.exceptions)
    }
}

/// What cardholders were told against the journal's final state: for every sale and
/// completion, the debit notices minus the notices that undid it (reversal, void, and
/// back for a reversed void) must be 1 if the journal says approved, else 0.
#[derive(Debug, Default, Clone)]
pub struct SmsCheck {
    /// SMS sent.
    pub messages: usize,
    /// Sales and completions checked.
    pub sales: usize,
    /// RRNs whose notices disagree with the journal, or that the journal does not know.
    pub wrong: Vec<String>,
}

impl SmsCheck {
    /// Checks the issuer's outbox against the journal.
    pub fn of(bank: &Bank, journal: &[TxnRow]) -> SmsCheck {
        let by_rrn: std::collections::HashMap<&str, &TxnRow> =
            journal.iter().map(|t| (t.rrn.as_str(), t)).collect();
        let mut net: std::collections::BTreeMap<&str, i64> = Default::default();
        let mut wrong = std::collections::BTreeSet::new();
        for s in bank.sms() {
            let Some(t) = by_rrn.get(s.rrn.as_str()) else {
                wrong.insert(s.rrn.clone());
                continue;
            };
            let original = t.original_rrn.as_deref().unwrap_or(&t.rrn);
            let (key, delta) = match (s.kind, t.kind) {
                (SmsKind::Sale | SmsKind::Completion, _) => (t.rrn.as_str(), 1),
                (SmsKind::Reversal, TxnKind::Sale | TxnKind::Completion) => (t.rrn.as_str(), -1),
                (SmsKind::Void, _) => (original, -1),
                (SmsKind::Reversal, TxnKind::Void) => (original, 1),
                _ => continue,
            };
            *net.entry(key).or_default() += delta;
        }
        let sales: Vec<&TxnRow> = journal
            .iter()
            .filter(|t| matches!(t.kind, TxnKind::Sale | TxnKind::Completion))
            .collect();
        for t in &sales {
            let want = i64::from(t.state == TxnState::Approved);
            if net.get(t.rrn.as_str()).copied().unwrap_or(0) != want {
                wrong.insert(t.rrn.clone());
            }
        }
        SmsCheck {
            messages: bank.sms().len(),
            sales: sales.len(),
            wrong: wrong.into_iter().collect(),
        }
    }

    /// Whether the cardholders' messages match the final state.
    pub fn matches(&self) -> bool {
        self.wrong.is_empty()
    }
}

impl std::fmt::Display for SmsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cardholder SMS: {} messages against {} sales and completions: {}{}",
            self.messages,
            self.sales,
            if self.matches() { "match" } else { "MISMATCH" },
            if self.wrong.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} wrong, e.g. {})",
                    self.wrong.len(),
                    self.wrong
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )
    }
}

/// What risk control did during the demo.
#[derive(Debug, Clone, Default)]
pub struct RiskSummary {
    /// Decisions taken.
    pub decisions: usize,
    /// Declined by risk.
    pub declined: usize,
    /// Sent on for review (settlement held).
    pub reviewed: usize,
    /// Settlement held (reviews and holds).
    pub held: usize,
    /// Alerts raised.
    pub alerts: usize,
    /// Cases opened.
    pub cases: usize,
    /// Decisions that ran out of their time budget and applied the timeout policy.
    pub timed_out: usize,
    /// Rules by how often they matched, most first.
    pub top_rules: Vec<(String, usize)>,
    /// Rule-set versions that decided.
    pub versions: Vec<String>,
}

impl RiskSummary {
    /// Reads the decisions and cases of a store.
    pub fn load(store: &str) -> anyhow::Result<RiskSummary> {
        let mut db = crate::node::open_store(store)?;
        let decisions = services::risk::load_decisions(db.as_mut())?;
        let mut counts: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        let mut versions = std::collections::BTreeSet::new();
        let mut s = RiskSummary {
            decisions: decisions.len(),
            ..RiskSummary::default()
        };
        for d in decisions.values() {
            versions.insert(d.version.clone());
            s.declined += usize::from(d.verdict.starts_with("decline"));
            s.reviewed += usize::from(d.verdict == "review");
            s.held += usize::from(d.hold);
            s.alerts += usize::from(d.alert);
            s.timed_out += usize::from(d.policy.is_some());
            for r in d.matched.split(',').filter(|r| !r.is_empty()) {
                *counts.entry(r.to_owned()).or_default() += 1;
            }
        }
        s.cases = db.cases(None).context("read cases")?.len();
        let mut top: Vec<(String, usize)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s.top_rules = top;
        s.versions = versions.into_iter().collect();
        Ok(s)
    }
}

impl std::fmt::Display for RiskSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "risk control ({}): {} decisions ({} out of time: timeout policy applied), {} declined, {} reviewed, {} settlements held, {} alerts, {} cases opened",
            self.versions.join(", "),
            self.decisions,
            self.timed_out,
            self.declined,
            self.reviewed,
            self.held,
            self.alerts,
            self.cases
        )?;
        for (rule, n) in self.top_rules.iter().take(8) {
            writeln!(f, "  {n:>6}  {rule}")?;
        }
        Ok(())
    }
}
