//! The posguard binary: parses the command line and runs one command.

mod iso_cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// posguard: a risk-controlled POS acquiring platform.
#[derive(Debug, Parser)]
#[command(name = "posguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode and encode ISO 8583 messages (for people who debug terminals).
    #[command(subcommand)]
    Iso(iso_cli::IsoCommand),
}

/// An error caused by the input rather than by posguard: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Iso(cmd) => iso_cli::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let bad_input = e.downcast_ref::<BadInput>().is_some();
            eprintln!("error: {e:#}");
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
