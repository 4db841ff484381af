//! `posguard complaint …`: the complaint desk on the command line, over the same
//! services the API serves (every change audited as the operating-system user).

use anyhow::Context;
use clap::Subcommand;
use services::complaints::{self as cp, Filing, Outcome, Refund};

use crate::args::{cli_actor, now_rfc3339, StoreArgs};
use crate::node::open_store;
use crate::BadInput;

/// `posguard complaint …`.
#[derive(Debug, Subcommand)]
pub enum ComplaintCommand {
    /// File a complaint from a JSON filing (the API's `POST /api/v1/complaints` body).
    File {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The deadlines per source.
        #[command(flatten)]
        config: crate::api_cli::ComplaintArgs,
        /// The filing (JSON).
        #[arg(long)]
        filing: std::path::PathBuf,
    },
    /// The queue, nearest deadline first (`--due`: only due or breached).
    List {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Only due or breached.
        #[arg(long)]
        due: bool,
    },
    /// One complaint: its steps, and each linked transaction's diagnosis.
    Show {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The complaint.
        complaint_id: i64,
    },
    /// The candidate transactions, best first.
    Candidates {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The complaint.
        complaint_id: i64,
    },
    /// Link transactions to a complaint.
    Link {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The complaint.
        complaint_id: i64,
        /// The transactions.
        #[arg(long = "txn", required = true)]
        txns: Vec<i64>,
    },
    /// Close a complaint: explained by its diagnoses, or rejected with a reason.
    Resolve {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The complaint.
        complaint_id: i64,
        /// A rejection's reason (without it: explained).
        #[arg(long, conflicts_with_all = ["expedite", "release_hold"])]
        reject: Option<String>,
        /// Send the waiting reversals now.
        #[arg(long, conflicts_with = "release_hold")]
        expedite: bool,
        /// Release the holds on the linked transactions and their merchant.
        #[arg(long)]
        release_hold: bool,
    },
    /// Ask for a refund of a linked transaction (above the threshold it waits for a
    /// second person).
    Refund {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The four-eyes threshold.
        #[command(flatten)]
        config: crate::api_cli::ComplaintArgs,
        /// The complaint.
        complaint_id: i64,
        /// The transaction.
        #[arg(long)]
        txn: i64,
        /// Minor units.
        #[arg(long)]
        amount: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Approve (or with `--refuse` refuse) a waiting refund: never one's own.
    Approve {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The money action.
        action_id: i64,
        /// Refuse instead.
        #[arg(long)]
        refuse: bool,
    },
    /// The disclosure report of the complaints filed from `--from` to `--to`.
    Report {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// First local date (YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// Last local date.
        #[arg(long)]
        to: String,
    },
}

fn today() -> chrono::NaiveDate {
    chrono::DateTime::parse_from_rfc3339(&now_rfc3339())
        .map(|t| (t.to_utc() + chrono::Duration::hours(8)).date_naive())
        .unwrap_or_default()
}

fn date(s: &str) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| BadInput(format!("{s:?} is not a date YYYY-MM-DD")).into())
}

fn line(c: &store::ComplaintRow) -> String {
    format!(
        "complaint {} {} {} via {}: ack by {}, resolve by {}{}{}",
        c.complaint_id,
        c.status,
        c.category,
        c.source,
        c.ack_due,
        c.resolve_due,
        c.owner
            .as_ref()
            .map_or(String::new(), |o| format!(", owner {o}")),
        c.outcome
            .as_ref()
            .map_or(String::new(), |o| format!(", {o}")),
    )
}

/// Runs `posguard complaint …`.
pub fn run(cmd: ComplaintCommand) -> anyhow::Result<()> {
    let (actor, at) = (cli_actor(), now_rfc3339());
    match cmd {
        ComplaintCommand::File {
            store,
            config,
            filing,
        } => {
            let cfg = config.load()?.unwrap_or_default();
            let text = std::fs::read_to_string(&filing)
                .with_context(|| format!("read {}", filing.display()))?;
            let f: Filing = serde_json::from_str(&text)
                .map_err(|e| BadInput(format!("{}: not a filing: {e}", filing.display())))?;
            let mut db = open_store(&store.location())?;
            let c = cp::file(db.as_mut(), &f, &cfg.policies, &actor, &at)?;
            println!("{}", line(&c));
        }
        ComplaintCommand::List { store, due } => {
            let mut db = open_store(&store.location())?;
            let day = today();
            let cal = services::reference::calendar(db.as_mut())?;
            for c in db.complaints(None)? {
                let s = cp::standing_on(&cal, &c, day)?;
                if due
                    && !matches!(
                        s,
                        Some(
                            complaints::deadline::Standing::Due
                                | complaints::deadline::Standing::Breached
                        )
                    )
                {
                    continue;
                }
                println!(
                    "{}{}",
                    line(&c),
                    s.map_or(String::new(), |s| format!(" [{s:?}]"))
                );
            }
        }
        ComplaintCommand::Show {
            store,
            complaint_id,
        } => {
            let mut db = open_store(&store.location())?;
            let c = db
                .complaint(complaint_id)?
                .ok_or_else(|| BadInput(format!("no complaint {complaint_id}")))?;
            println!("{}", line(&c));
            for e in db.complaint_events(complaint_id)? {
                println!("  {} {} by {}: {}", e.at, e.action, e.actor, e.note);
            }
            for (t, d) in cp::diagnoses(db.as_mut(), complaint_id)? {
                println!(
                    "  txn {} {} {}: {} — {}",
                    t.txn_id,
                    t.rrn,
                    d.code,
                    d.staff,
                    d.evidence.join(", ")
                );
                println!("    zh: {}", d.zh);
                println!("    en: {}", d.en);
            }
            if let Some(a) = &c.answer {
                println!("  answer: {a}");
            }
        }
        ComplaintCommand::Candidates {
            store,
            complaint_id,
        } => {
            let mut db = open_store(&store.location())?;
            for (r, t) in cp::candidates(db.as_mut(), complaint_id, 20)? {
                println!(
                    "txn {} {} score {} ({}): {} {} {} {}",
                    t.txn_id,
                    t.rrn,
                    r.score,
                    r.matched.join(", "),
                    t.masked_pan,
                    t.amount_minor,
                    t.state.name(),
                    t.created_at
                );
            }
        }
        ComplaintCommand::Link {
            store,
            complaint_id,
            txns,
        } => {
            let mut db = open_store(&store.location())?;
            let c = cp::link(db.as_mut(), complaint_id, &txns, &actor, &at)?;
            println!("{}", line(&c));
        }
        ComplaintCommand::Resolve {
            store,
            complaint_id,
            reject,
            expedite,
            release_hold,
        } => {
            let outcome = match (reject, expedite, release_hold) {
                (Some(r), _, _) => Outcome::Rejected(r),
                (None, true, _) => Outcome::ReversalExpedited,
                (None, _, true) => Outcome::HoldReleased,
                (None, false, false) => Outcome::Explained,
            };
            let mut db = open_store(&store.location())?;
            let c = cp::resolve(db.as_mut(), complaint_id, outcome, &actor, &at)?;
            println!("{}", line(&c));
            if let Some(a) = &c.answer {
                println!("  answer: {a}");
            }
        }
        ComplaintCommand::Refund {
            store,
            config,
            complaint_id,
            txn,
            amount,
            reason,
        } => {
            let threshold = config.load()?.unwrap_or_default().four_eyes_minor;
            let mut db = open_store(&store.location())?;
            match cp::request_refund(
                db.as_mut(),
                complaint_id,
                txn,
                amount,
                &reason,
                threshold,
                &actor,
                &at,
            )? {
                Refund::Queued(saf) => println!("refund queued to the issuer (queue entry {saf})"),
                Refund::AwaitingApproval(a) => {
                    println!("refund waits for a second person's approval (action {a})")
                }
            }
        }
        ComplaintCommand::Approve {
            store,
            action_id,
            refuse,
        } => {
            let mut db = open_store(&store.location())?;
            let c = cp::decide_refund(db.as_mut(), action_id, !refuse, &actor, &at)?;
            println!("{}", line(&c));
        }
        ComplaintCommand::Report { store, from, to } => {
            let mut db = open_store(&store.location())?;
            let r = cp::report(db.as_mut(), date(&from)?, date(&to)?, today())?;
            print!("{r}");
        }
    }
    Ok(())
}
