//! The posguard binary: parses the command line and runs one command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use posguard::{
    api_bench, api_cli, bench, check, complaint_cli, demo, iso_cli, keys_cli, money_bench,
    money_cli, onboarding_cli, risk_cli, run_cli, simulate, user_cli, BadInput,
};

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
    /// Run an acquirer node: terminal server, switch, journal, issuer link.
    Acquirer(Box<run_cli::AcquirerArgs>),
    /// The acquirer's own keys: list, import, generate, re-wrap under a new LMK.
    #[command(subcommand)]
    Keys(keys_cli::KeysCommand),
    /// Run the issuer simulator: host-to-host link and HTTP API.
    IssuerSim(run_cli::IssuerArgs),
    /// Run a fleet of simulated terminals against an acquirer.
    Terminals(run_cli::TerminalsArgs),
    /// Start everything embedded, run a terminal fleet, and report.
    Demo(demo::DemoArgs),
    /// Compare the acquirer's journal with the issuer's book and clearing file.
    Check(check::CheckArgs),
    /// Measure sales per second and latency end to end, next to a loopback baseline.
    Bench(bench::BenchArgs),
    /// Run the deterministic simulation (faults, crashes) and check the invariants.
    Simulate(simulate::SimulateArgs),
    /// Risk control: back-test a rule set on the journal.
    #[command(subcommand)]
    Risk(risk_cli::RiskCommand),
    /// Risk cases: list, show, assign, note, close.
    #[command(subcommand)]
    Case(risk_cli::CaseCommand),
    /// Settle a business date: fees, holds, merchant net, ledger, files (idempotent).
    Settle(money_cli::SettleArgs),
    /// Payouts: confirm them paid.
    #[command(subcommand)]
    Payout(money_cli::PayoutCommand),
    /// Transactions: where is my money.
    #[command(subcommand)]
    Txn(money_cli::TxnCommand),
    /// Merchants: statement, terms and limits, provisioning, status, relocation,
    /// re-reviews, the blocklist, the calendar and the MCC table.
    #[command(subcommand)]
    Merchant(money_cli::MerchantCommand),
    /// Merchant applications: enter, attach documents, review, list, show.
    #[command(subcommand)]
    Application(onboarding_cli::ApplicationCommand),
    /// Complaints: file, queue, show, candidates, link, resolve, refund, approve,
    /// report.
    #[command(subcommand)]
    Complaint(complaint_cli::ComplaintCommand),
    /// Settlement holds: place, release, list.
    #[command(subcommand)]
    Hold(money_cli::HoldCommand),
    /// Reconcile a business date against the issuer's clearing file.
    Recon(money_cli::ReconArgs),
    /// The reconciliation exception queue: list, show, assign, resolve.
    #[command(subcommand)]
    Exception(money_cli::ExceptionCommand),
    /// Measure ledger transfers/s (SQLite, PostgreSQL) and a settlement run's time.
    MoneyBench(money_bench::MoneyBenchArgs),
    /// Operator accounts: add (the first admin), list, disable, passwd, api-key.
    #[command(subcommand)]
    User(user_cli::UserCommand),
    /// Serve the operators' HTTP API on the store, without terminal traffic.
    Api(api_cli::ApiArgs),
    /// Measure the API's search and timeline over a million transactions, next to bare SQL.
    ApiBench(api_bench::ApiBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Iso(cmd) => iso_cli::run(cmd),
        Command::Acquirer(a) => run_cli::acquirer(*a),
        Command::Keys(c) => keys_cli::run(c),
        Command::IssuerSim(a) => run_cli::issuer_sim(a),
        Command::Terminals(a) => run_cli::terminals(a),
        Command::Demo(a) => demo::run(a),
        Command::Check(a) => check::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Risk(c) => risk_cli::run(c),
        Command::Case(c) => risk_cli::run_case(c),
        Command::Settle(a) => money_cli::settle(a),
        Command::Payout(c) => money_cli::payout(c),
        Command::Txn(c) => money_cli::txn(c),
        Command::Merchant(c) => money_cli::merchant(c),
        Command::Application(c) => onboarding_cli::application(c),
        Command::Complaint(c) => complaint_cli::run(c),
        Command::Hold(c) => money_cli::hold(c),
        Command::MoneyBench(a) => money_bench::run(a),
        Command::Recon(a) => money_cli::recon(a),
        Command::Exception(c) => money_cli::exception(c),
        Command::User(c) => user_cli::run(c),
        Command::Api(a) => api_cli::run(a),
        Command::ApiBench(a) => api_bench::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let bad_input = e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<services::ServiceError>()
                    .is_some_and(services::ServiceError::is_bad_input);
            eprintln!("error: {e:#}");
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
