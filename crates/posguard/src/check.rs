//! `posguard check`: the acquirer's journal against the issuer's clearing file
//! (`services::check` compares; this fetches the files and prints).

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
pub use services::check::{clearing_dates, compare, parse_clearing, CheckReport};

use crate::args::StoreArgs;

/// `posguard check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The issuer simulator's HTTP API.
    #[arg(long, default_value = "127.0.0.1:9080")]
    issuer_http: String,
}

/// Every transaction in the store at `store`.
pub fn load_journal(store: &str) -> anyhow::Result<Vec<store::TxnRow>> {
    let mut db = crate::node::open_store(store)?;
    Ok(services::check::load_journal(db.as_mut())?)
}

/// Fetches the issuer simulator's clearing file for `date` over its HTTP API, with the
/// bearer token from `POSGUARD_ISSUER_API_TOKEN` when the simulator requires one (an
/// environment variable, not a flag: other users can read a command line).
pub fn fetch_clearing(issuer_http: &str, date: NaiveDate) -> anyhow::Result<String> {
    let url = format!("http://{issuer_http}/clearing/{}", date.format("%Y-%m-%d"));
    let mut req = ureq::get(&url);
    if let Ok(token) = std::env::var("POSGUARD_ISSUER_API_TOKEN") {
        req = req.set("Authorization", &format!("Bearer {}", token.trim()));
    }
    match req.call() {
        Ok(resp) => resp.into_string().context("read clearing file"),
        Err(ureq::Error::Status(401, _)) => anyhow::bail!(
            "fetch {url}: the issuer wants its API token (set POSGUARD_ISSUER_API_TOKEN)"
        ),
        Err(e) => Err(e).with_context(|| format!("fetch {url}")),
    }
}

/// Runs `posguard check`.
pub fn run(a: CheckArgs) -> anyhow::Result<()> {
    let journal = load_journal(&a.store.location())?;
    let mut lines = Vec::new();
    for d in clearing_dates(&journal) {
        let body = fetch_clearing(&a.issuer_http, d)?;
        lines.extend(parse_clearing(&body, d)?);
    }
    let report = compare(&journal, &lines, None);
    print!("{report}");
    if report.anomalies() > 0 {
        anyhow::bail!("{} anomalies", report.anomalies());
    }
    Ok(())
}

/// Store-and-forward entries waiting and transactions still waiting for the issuer.
pub fn pending_work(store: &str) -> anyhow::Result<(usize, usize)> {
    let mut db = crate::node::open_store(store)?;
    Ok(services::check::pending_work(db.as_mut())?)
}

/// Every store-and-forward entry, whatever its state.
pub fn load_saf(store: &str) -> anyhow::Result<Vec<store::SafRow>> {
    let mut db = crate::node::open_store(store)?;
    Ok(services::check::load_saf(db.as_mut())?)
}
