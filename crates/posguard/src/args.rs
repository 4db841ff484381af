//! What several commands share: where the store is, and the clock reading records
//! created outside the engine carry (the edge).

use clap::Args;

/// Where the acquirer keeps its journal.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// SQLite data directory (the embedded default).
    #[arg(long, default_value = "./posguard-data")]
    pub data: String,
    /// PostgreSQL URL (`postgres://…`); overrides `--data`.
    #[arg(long)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The store location `store::open` understands.
    pub fn location(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data.clone())
    }
}

/// The acquirer's clock reading as RFC 3339 (for records created outside the engine).
#[allow(clippy::disallowed_methods)] // the edge
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339()
}
