//! `posguard risk backtest` and `posguard case …`: risk control for staff.

use clap::{Args, Subcommand};
pub use services::risk::{backtest, load_decisions, replay, Backtest, CaseVerdict, RuleImpact};

use crate::args::{cli_actor, now_rfc3339, StoreArgs};
use crate::node::{load_rules, open_store};

/// `posguard risk …`.
#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Replay the journal through a candidate rule set and report what each rule would do.
    Backtest(BacktestArgs),
}

/// `posguard risk backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The candidate rule file (TOML); the default rule set when absent.
    #[arg(long)]
    rules: Option<std::path::PathBuf>,
    /// First business date counted (YYYY-MM-DD); earlier history still warms the counters.
    #[arg(long)]
    from: Option<String>,
    /// Last business date counted (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
}

/// Runs `posguard risk …`.
pub fn run(cmd: RiskCommand) -> anyhow::Result<()> {
    match cmd {
        RiskCommand::Backtest(a) => {
            let rules = load_rules(a.rules.as_deref())?;
            let mut db = open_store(&a.store.location())?;
            let result = backtest(db.as_mut(), rules, a.from.as_deref(), a.to.as_deref())?;
            print!("{result}");
            Ok(())
        }
    }
}

/// `posguard case …`.
#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// List cases.
    List {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Only cases in this status (open, investigating, closed_fraud, closed_not_fraud).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a case and its timeline.
    Show {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The case.
        case_id: i64,
    },
    /// Assign a case to someone (it becomes `investigating`).
    Assign {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The case.
        case_id: i64,
        /// Who works it.
        who: String,
    },
    /// Add a note to a case.
    Note {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The case.
        case_id: i64,
        /// The note.
        text: String,
        /// Who writes it.
        #[arg(long, default_value = "operator")]
        author: String,
    },
    /// Close a case as fraud or not fraud.
    Close {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The case.
        case_id: i64,
        /// `fraud` or `not-fraud`.
        verdict: String,
        /// Who closes it.
        #[arg(long, default_value = "operator")]
        author: String,
    },
}

/// Runs `posguard case …`.
pub fn run_case(cmd: CaseCommand) -> anyhow::Result<()> {
    match cmd {
        CaseCommand::List { store, status } => {
            let mut db = open_store(&store.location())?;
            for (c, n) in services::risk::list_cases(db.as_mut(), status.as_deref())? {
                println!(
                    "case {:>5}  {:<18} {:<52} {:>4} entries  assignee {}  opened {}",
                    c.case_id,
                    c.status,
                    c.subject,
                    n,
                    c.assignee.as_deref().unwrap_or("-"),
                    c.opened_at
                );
            }
        }
        CaseCommand::Show { store, case_id } => {
            let mut db = open_store(&store.location())?;
            let (c, entries) = services::risk::case(db.as_mut(), case_id)?;
            println!(
                "case {} {} — {} (assignee {})",
                c.case_id,
                c.subject,
                c.status,
                c.assignee.as_deref().unwrap_or("-")
            );
            for e in entries {
                let txn = e.txn_id.map(|t| format!(" txn {t}")).unwrap_or_default();
                println!(
                    "  {:>3} {} {:<7} {:<10}{txn} {}",
                    e.seq, e.at, e.kind, e.author, e.text
                );
            }
        }
        CaseCommand::Assign {
            store,
            case_id,
            who,
        } => {
            let mut db = open_store(&store.location())?;
            services::risk::assign_case(db.as_mut(), case_id, &who, &cli_actor(), &now_rfc3339())?;
        }
        CaseCommand::Note {
            store,
            case_id,
            text,
            author,
        } => {
            let mut db = open_store(&store.location())?;
            services::risk::note_case(
                db.as_mut(),
                case_id,
                &author,
                &text,
                &cli_actor(),
                &now_rfc3339(),
            )?;
        }
        CaseCommand::Close {
            store,
            case_id,
            verdict,
            author,
        } => {
            let verdict = CaseVerdict::parse(&verdict)
                .ok_or_else(|| crate::BadInput("verdict is fraud or not-fraud".into()))?;
            let mut db = open_store(&store.location())?;
            services::risk::close_case(
                db.as_mut(),
                case_id,
                verdict,
                &author,
                &cli_actor(),
                &now_rfc3339(),
            )?;
        }
    }
    Ok(())
}
