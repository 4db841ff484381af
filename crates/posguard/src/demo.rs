//! `posguard demo`: the issuer simulator, an acquirer node on embedded SQLite and a
//! terminal fleet in one process; then the fleet's summary and the consistency check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use issuer::{Bank, ClearingType, Faults, IssuerConfig, SmsKind};
use store::{SafRow, TxnRow};

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
    /// Seconds the terminal fleet runs.
    #[arg(long, default_value_t = 30)]
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
    /// The fleet's report.
    pub fleet: terminal::FleetReport,
    /// The consistency check.
    pub check: CheckReport,
    /// Anomalies by kind and how they were resolved.
    pub resolution: Resolution,
    /// SMS sent per kind against the issuer's clearing lines.
    pub sms: SmsCheck,
    /// What risk control did.
    pub risk: RiskSummary,
    /// The run's data directory.
    pub data_dir: String,
}

/// Runs the demo and returns its outcome (used by `posguard demo` and by tests).
pub async fn demo(a: DemoArgs) -> anyhow::Result<DemoOutcome> {
    let data = a.demo.data();
    let run_id = shanghai_now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let data_dir = format!("{}/demo-{run_id}", a.data.trim_end_matches('/'));

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
    open_demo_accounts(&mut bank, &data, shanghai_now())?;
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .context("start issuer")?;

    // The acquirer, on a fresh embedded store with the demo merchants and terminals.
    let mut opts = node_options(data_dir.clone(), issuer.iso_addr(), 2_000);
    opts.switch.saf_backoff_ms = 500;
    opts.switch.saf_backoff_max_ms = 5_000;
    let o = opts.clone();
    let d2 = data.clone();
    tokio::task::spawn_blocking(move || seed_store(&o, &d2))
        .await
        .context("join seeding")??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind terminal port")?;
    let acquirer_addr = listener.local_addr().context("terminal port")?;
    let stats = Arc::new(gateway::GatewayStats::default());

    // The fleet.
    let mut fleet = fleet_config(
        &data,
        acquirer_addr,
        a.rate,
        Duration::from_secs(a.duration),
        a.seed,
    );
    fleet.progress = !a.quiet;
    fleet.reply_timeout = Duration::from_secs(5);
    let fleet_task = tokio::spawn(terminal::run_fleet(fleet));

    let (stop, node) = if a.no_faults {
        start_node(opts.clone(), listener, stats.clone())
    } else {
        // One acquirer restart at 40% of the run: stopped without draining (what was
        // waiting for the issuer stays in the journal as in flight), started again on
        // the same port, recovering from its store.
        let mut abrupt = opts.clone();
        abrupt.gateway.drain_timeout = Duration::ZERO;
        let (tx, task) = start_node(abrupt, listener, stats.clone());
        tokio::time::sleep(Duration::from_millis(a.duration * 400)).await;
        let _ = tx.send(());
        task.await.context("join acquirer")??;
        let listener = tokio::net::TcpListener::bind(acquirer_addr)
            .await
            .context("rebind terminal port")?;
        start_node(opts.clone(), listener, stats.clone())
    };
    let report = fleet_task.await.context("join fleet")?;

    // Let the store-and-forward queue drain (bounded), then stop and compare.
    let store = data_dir.clone();
    for _ in 0..600 {
        let s = store.clone();
        let (pending, in_flight) =
            tokio::task::spawn_blocking(move || crate::check::pending_work(&s))
                .await
                .context("join")??;
        if pending == 0 && in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    node.await.context("join acquirer")??;
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
            lines.extend(parse_clearing(&b.clearing_csv(d))?);
        }
        SmsCheck::of(&b)
    };
    issuer.stop().await;
    let approved: Vec<String> = report
        .approved_entries()
        .map(|(_, e)| e.rrn.to_string())
        .collect();
    let check = compare(&journal, &lines, Some(&approved));
    let resolution = Resolution::of(&journal, &saf);
    let s = data_dir.clone();
    let risk = tokio::task::spawn_blocking(move || RiskSummary::load(&s))
        .await
        .context("join")??;
    Ok(DemoOutcome {
        fleet: report,
        check,
        resolution,
        sms,
        risk,
        data_dir,
    })
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
    let task = tokio::spawn(crate::node::run_node(
        opts,
        vec![(listener, gateway::TerminalDialect::CupPos)],
        stats,
        async {
            let _ = stop_rx.await;
        },
    ));
    (stop_tx, task)
}

/// Runs `posguard demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    println!(
        "posguard demo: issuer simulator, acquirer (SQLite under {}), {} terminals at {}/s for {} s",
        a.data, a.demo.terminals, a.rate, a.duration
    );
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    let out = rt.block_on(demo(a))?;
    println!("{}", out.fleet);
    print!("{}", out.risk);
    print!("{}", out.resolution);
    print!("{}", out.sms);
    print!("{}", out.check);
    println!("journal: {}/posguard.db", out.data_dir);
    let unresolved =
        out.check.anomalies() + out.resolution.unresolved() + usize::from(!out.sms.matches());
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
            if e.state == "exception" {
                exceptions += 1;
            }
            if let (Some(t), "done") = (by_id.get(&e.txn_id), e.state.as_str()) {
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

/// SMS the issuer sent against its clearing lines: every debit and reversal notified.
#[derive(Debug, Default, Clone, Copy)]
pub struct SmsCheck {
    /// Debit SMS (sales and completions).
    pub debit_sms: usize,
    /// Debit clearing lines.
    pub debits: usize,
    /// Reversal SMS.
    pub reversal_sms: usize,
    /// Reversal clearing lines.
    pub reversals: usize,
}

impl SmsCheck {
    /// Counts both sides at the issuer.
    pub fn of(bank: &Bank) -> SmsCheck {
        let sms = bank.sms();
        let lines = bank.clearing_records();
        SmsCheck {
            debit_sms: sms
                .iter()
                .filter(|s| matches!(s.kind, SmsKind::Sale | SmsKind::Completion))
                .count(),
            debits: lines
                .iter()
                .filter(|r| matches!(r.kind, ClearingType::Sale | ClearingType::Completion))
                .count(),
            reversal_sms: sms.iter().filter(|s| s.kind == SmsKind::Reversal).count(),
            reversals: lines
                .iter()
                .filter(|r| {
                    matches!(
                        r.kind,
                        ClearingType::Reversal
                            | ClearingType::VoidReversal
                            | ClearingType::RefundReversal
                    )
                })
                .count(),
        }
    }

    /// Whether the cardholders' messages match the final state.
    pub fn matches(&self) -> bool {
        self.debit_sms == self.debits && self.reversal_sms == self.reversals
    }
}

impl std::fmt::Display for SmsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cardholder SMS: {} debit messages for {} debits, {} reversal messages for {} reversals: {}",
            self.debit_sms,
            self.debits,
            self.reversal_sms,
            self.reversals,
            if self.matches() { "match" } else { "MISMATCH" }
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
    /// Rules by how often they matched, most first.
    pub top_rules: Vec<(String, usize)>,
    /// Rule-set versions that decided.
    pub versions: Vec<String>,
}

impl RiskSummary {
    /// Reads the decisions and cases of a store.
    pub fn load(store: &str) -> anyhow::Result<RiskSummary> {
        let mut db = crate::node::open_store(store)?;
        let decisions = crate::risk_cli::load_decisions(db.as_mut())?;
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
            "risk control ({}): {} decisions, {} declined, {} reviewed, {} settlements held, {} alerts, {} cases opened",
            self.versions.join(", "),
            self.decisions,
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
