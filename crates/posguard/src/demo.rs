//! `posguard demo`: the issuer simulator, an acquirer node on embedded SQLite and a
//! terminal fleet in one process; then the fleet's summary and the consistency check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use issuer::{Bank, IssuerConfig};

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
}

/// What a demo run produced.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The fleet's report.
    pub fleet: terminal::FleetReport,
    /// The consistency check.
    pub check: CheckReport,
    /// The run's data directory.
    pub data_dir: String,
}

/// Runs the demo and returns its outcome (used by `posguard demo` and by tests).
pub async fn demo(a: DemoArgs) -> anyhow::Result<DemoOutcome> {
    let data = a.demo.data();
    let run_id = shanghai_now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let data_dir = format!("{}/demo-{run_id}", a.data.trim_end_matches('/'));

    // The issuer, with the demo cardholders.
    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys).context("issuer keys")?;
    open_demo_accounts(&mut bank, &data, shanghai_now())?;
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .context("start issuer")?;

    // The acquirer, on a fresh embedded store with the demo merchants and terminals.
    let opts = node_options(data_dir.clone(), issuer.iso_addr(), 10_000);
    let o = opts.clone();
    let d2 = data.clone();
    tokio::task::spawn_blocking(move || seed_store(&o, &d2))
        .await
        .context("join seeding")??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind terminal port")?;
    let acquirer_addr = listener.local_addr().context("terminal port")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stats = Arc::new(gateway::GatewayStats::default());
    let node = tokio::spawn(crate::node::run_node(
        opts,
        vec![(listener, gateway::TerminalDialect::CupPos)],
        stats,
        async {
            let _ = stop_rx.await;
        },
    ));

    // The fleet.
    let mut fleet = fleet_config(
        &data,
        acquirer_addr,
        a.rate,
        Duration::from_secs(a.duration),
        a.seed,
    );
    fleet.progress = !a.quiet;
    let report = terminal::run_fleet(fleet).await;

    // Stop the acquirer (it drains in-flight work) and the issuer, then compare.
    let _ = stop_tx.send(());
    node.await.context("join acquirer")??;
    let bank = issuer.bank();
    let store = data_dir.clone();
    let journal = tokio::task::spawn_blocking(move || load_journal(&store))
        .await
        .context("join journal read")??;
    let mut lines = Vec::new();
    for d in clearing_dates(&journal) {
        let csv = bank
            .lock()
            .map_err(|_| anyhow::anyhow!("issuer state poisoned"))?
            .clearing_csv(d);
        lines.extend(parse_clearing(&csv)?);
    }
    issuer.stop().await;
    let approved: Vec<String> = report
        .approved_entries()
        .map(|(_, e)| e.rrn.to_string())
        .collect();
    let check = compare(&journal, &lines, Some(&approved));
    Ok(DemoOutcome {
        fleet: report,
        check,
        data_dir,
    })
}

/// Runs `posguard demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    crate::init_logging("warn");
    println!(
        "posguard demo: issuer simulator, acquirer (SQLite under {}), {} terminals at {}/s for {} s",
        a.data, a.demo.terminals, a.rate, a.duration
    );
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    let out = rt.block_on(demo(a))?;
    println!("{}", out.fleet);
    print!("{}", out.check);
    println!("journal: {}/posguard.db", out.data_dir);
    if out.check.anomalies() > 0 {
        anyhow::bail!("{} anomalies", out.check.anomalies());
    }
    Ok(())
}
