//! `posguard api-bench`: the operators' API's transaction search and timeline over a
//! SQLite store of a million transactions, p50/p99, next to the same queries in bare
//! SQL in the same run (the `benches` crate does the work).

use clap::Args;

/// `posguard api-bench`.
#[derive(Debug, Clone, Args)]
pub struct ApiBenchArgs {
    /// Transactions in the store.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1_000..=20_000_000))]
    pub transactions: u64,
    /// Queries of each kind.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub queries: u64,
    /// Where the store is made (removed afterwards).
    #[arg(long, default_value = "target/api-bench")]
    pub dir: std::path::PathBuf,
    /// Seed of the journal and the queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `posguard api-bench`.
pub fn run(a: ApiBenchArgs) -> anyhow::Result<()> {
    crate::init_logging("warn");
    println!(
        "filling a SQLite store with {} transactions (3 events each) …",
        a.transactions
    );
    let report = benches::api_search(&benches::SearchBench {
        transactions: a.transactions as usize,
        queries: a.queries as usize,
        dir: a.dir,
        seed: a.seed,
    })?;
    print!("{report}");
    Ok(())
}
