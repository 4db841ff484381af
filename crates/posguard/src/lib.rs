//! posguard's wiring: the commands of the `posguard` binary as a library, so tests can
//! start nodes, simulators and fleets the way the binary does. The operations over the
//! store (settlement, reconciliation, the consistency check, risk back-tests, cases)
//! are the `services` crate's; the commands here parse arguments, open the store,
//! call them and print.

pub mod api_bench;
pub mod api_cli;
pub mod args;
pub mod bench;
pub mod check;
pub mod complaint_cli;
pub mod config;
pub use sim::demo_data;
pub mod demo;
pub mod iso_cli;
pub mod keys_cli;
pub mod money_bench;
pub mod money_cli;
pub mod onboarding_cli;
pub use acquirer as node;
pub mod risk_cli;
pub mod run_cli;
pub mod simulate;
pub mod tls_cli;
pub mod user_cli;

/// An error caused by the input rather than by posguard: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Starts logging to stderr at `default` level (or `RUST_LOG`).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
