//! `posguard money-bench`: the `benches` crate's money benchmark (ledger transfers per
//! second on SQLite and PostgreSQL next to plain inserts, a settlement run's time, a
//! clearing file's ingestion and reconciliation).

use clap::Args;

/// `posguard money-bench`.
#[derive(Debug, Clone, Args)]
pub struct MoneyBenchArgs {
    /// Ledger transfers per backend.
    #[arg(long, default_value_t = 100_000)]
    pub transfers: usize,
    /// Transfers per durable batch (one database transaction).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Transactions in the settlement run.
    #[arg(long, default_value_t = 1_000_000)]
    pub transactions: usize,
    /// Merchants the transactions belong to.
    #[arg(long, default_value_t = 1_000)]
    pub merchants: usize,
    /// Lines in the reconciliation benchmark's clearing file.
    #[arg(long, default_value_t = 1_000_000)]
    pub recon_lines: usize,
    /// PostgreSQL URL for the PostgreSQL figures (a fresh schema is used and dropped).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Where the SQLite databases go (fresh directories, removed afterwards).
    #[arg(long, default_value = "./posguard-data")]
    pub data: String,
}

/// Runs `posguard money-bench`.
pub fn run(a: MoneyBenchArgs) -> anyhow::Result<()> {
    benches::money::run(&benches::money::MoneyBench {
        transfers: a.transfers,
        batch: a.batch,
        transactions: a.transactions,
        merchants: a.merchants,
        recon_lines: a.recon_lines,
        database_url: a.database_url,
        data: a.data,
    })?;
    Ok(())
}
