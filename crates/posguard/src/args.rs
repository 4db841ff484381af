//! What several commands share: where the store is, and the clock reading records
//! created outside the engine carry (the edge).

use clap::Args;

/// The SQLite data directory when none is given.
pub const DEFAULT_DATA: &str = "./posguard-data";

/// Where the acquirer keeps its journal.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// SQLite data directory (the embedded default; `./posguard-data` when not given).
    #[arg(long)]
    pub data: Option<String>,
    /// PostgreSQL URL (`postgres://…`); overrides `--data`.
    #[arg(long)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The store location `store::open` understands.
    pub fn location(&self) -> String {
        self.given().unwrap_or_else(|| DEFAULT_DATA.into())
    }

    /// The location given on the command line, if any.
    pub fn given(&self) -> Option<String> {
        self.database_url.clone().or_else(|| self.data.clone())
    }
}

/// The acquirer's clock reading as RFC 3339 (for records created outside the engine).
#[allow(clippy::disallowed_methods)] // the edge
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The command line's actor in audit records: the OS user running the command.
pub fn cli_actor() -> services::accounts::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    services::accounts::Actor::cli(&user, std::process::id())
}
