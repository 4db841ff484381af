//! `posguard application …` and the onboarding side of `posguard merchant …`: the
//! command line over the same services the API serves (every change audited as the
//! operating-system user), for operators working on the acquirer's host.

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;
use merchants::review::Who;
use services::onboarding::{self, Step};

use crate::api_cli::PiiArgs;
use crate::args::{cli_actor, now_rfc3339, StoreArgs};
use crate::node::open_store;
use crate::BadInput;

/// `posguard application …`.
#[derive(Debug, Subcommand)]
pub enum ApplicationCommand {
    /// Enter an application from a JSON form (the API's `POST /api/v1/applications`
    /// body); its own checks run at once.
    Create {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The key personal ID numbers are tokenized with.
        #[command(flatten)]
        pii: PiiArgs,
        /// The form (JSON).
        #[arg(long)]
        form: std::path::PathBuf,
    },
    /// Attach a document (PDF, PNG or JPEG, at most 10 MiB).
    Document {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The application.
        app_id: i64,
        /// `business_licence`, `id_front`, `id_back`, `account_proof`,
        /// `premises_proof`, `shop_photo` or `industry_licence`.
        #[arg(long = "type")]
        doc_type: String,
        /// Until when it is valid (licences, the ID's back), YYYY-MM-DD.
        #[arg(long)]
        expires_on: Option<String>,
        /// The file.
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// A step of the review: submit, withdraw, resubmit (with --form), assign
    /// (--note the analyst), request-info, override, approve (--note the rating low,
    /// medium or high), reject (--note the reason).
    Step {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The key personal ID numbers are tokenized with.
        #[command(flatten)]
        pii: PiiArgs,
        /// The application.
        app_id: i64,
        /// submit, withdraw, resubmit, assign, request-info, override, approve, reject.
        step: String,
        /// The assignee, what is asked for, the reason or the rating.
        #[arg(long, default_value = "")]
        note: String,
        /// The corrected form (resubmit).
        #[arg(long)]
        form: Option<std::path::PathBuf>,
    },
    /// Applications, oldest first: all, by status, or the reviews past their SLA.
    List {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only reviews past their SLA.
        #[arg(long)]
        overdue: bool,
    },
    /// One application with every step.
    Show {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The application.
        app_id: i64,
    },
}

/// The onboarding commands of `posguard merchant …`.
#[derive(Debug, Subcommand)]
pub enum OnboardedCommand {
    /// Suspend, close or reactivate a merchant (every node obeys from its next sale).
    Status {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The merchant.
        merchant_id: String,
        /// active, suspended or closed.
        status: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Disable or re-enable a terminal.
    TerminalStatus {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The terminal.
        terminal_id: String,
        /// active or disabled.
        status: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Register a terminal's new install location.
    Relocate {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The terminal.
        terminal_id: String,
        /// Latitude, degrees.
        #[arg(long)]
        latitude: f64,
        /// Longitude, degrees.
        #[arg(long)]
        longitude: f64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Set a merchant's limits (minor units; 0 = none).
    Limits {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The merchant.
        merchant_id: String,
        /// Largest sale.
        #[arg(long)]
        txn_limit: i64,
        /// Most sales a day.
        #[arg(long)]
        day_limit: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The periodic re-reviews, soonest due first (`--due`: due today or before).
    Rereviews {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Only those due.
        #[arg(long)]
        due: bool,
    },
    /// Record a merchant's re-review with its rating (low, medium, high).
    Rereview {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The merchant.
        merchant_id: String,
        /// low, medium or high.
        #[arg(long)]
        rating: String,
        /// What was reviewed.
        #[arg(long)]
        note: String,
    },
    /// Add to the blocklist: a `uscc`, a `representative` (resident ID number, kept
    /// only as its token) or a settlement `account`; a merchant with it is exited.
    Block {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The key personal ID numbers are tokenized with.
        #[command(flatten)]
        pii: PiiArgs,
        /// uscc, representative or account.
        kind: String,
        /// The value.
        value: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

fn pii(p: &PiiArgs) -> anyhow::Result<onboarding::PiiKey> {
    p.load()?.ok_or_else(|| {
        BadInput(
            "merchant applications need the PII key: --pii-key-file FILE or POSGUARD_PII_KEY"
                .into(),
        )
        .into()
    })
}

fn read_form(path: &std::path::Path) -> anyhow::Result<merchants::application::Form> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{}: not an application form: {e}", path.display())).into())
}

/// Today in the acquirer's time zone (UTC+8).
fn today() -> NaiveDate {
    let now = chrono::DateTime::parse_from_rfc3339(&now_rfc3339())
        .map(|t| t.to_utc())
        .unwrap_or_default();
    (now + chrono::Duration::hours(8)).date_naive()
}

fn date(s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| BadInput(format!("{s:?} is not a date YYYY-MM-DD")).into())
}

fn print_application(a: &store::ApplicationRow) {
    println!(
        "application {} {} ({}, MCC {}, {} risk){}{}",
        a.app_id,
        a.status,
        a.legal_name,
        a.mcc,
        a.risk_level,
        a.sla_due
            .as_ref()
            .map_or(String::new(), |d| format!(", review due {d}")),
        a.merchant_id
            .as_ref()
            .map_or(String::new(), |m| format!(", merchant {m}")),
    );
    let problems: Vec<merchants::application::Problem> =
        serde_json::from_str(&a.problems).unwrap_or_default();
    for p in problems {
        println!("  problem {} ({}): {}", p.code, p.field, p.message);
    }
}

/// Runs `posguard application …`.
pub fn application(cmd: ApplicationCommand) -> anyhow::Result<()> {
    let (actor, at) = (cli_actor(), now_rfc3339());
    match cmd {
        ApplicationCommand::Create {
            store,
            pii: p,
            form,
        } => {
            let (key, f) = (pii(&p)?, read_form(&form)?);
            let mut db = open_store(&store.location())?;
            let a = onboarding::create(db.as_mut(), &f, &key, today(), &actor, &at)?;
            print_application(&a);
        }
        ApplicationCommand::Document {
            store,
            app_id,
            doc_type,
            expires_on,
            file,
        } => {
            let expires = expires_on.as_deref().map(date).transpose()?;
            let len = std::fs::metadata(&file)
                .with_context(|| format!("read {}", file.display()))?
                .len();
            if len > merchants::documents::MAX_DOCUMENT as u64 {
                return Err(BadInput(format!(
                    "{} is over {} bytes",
                    file.display(),
                    merchants::documents::MAX_DOCUMENT
                ))
                .into());
            }
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let mut db = open_store(&store.location())?;
            let sha = onboarding::attach_document(
                db.as_mut(),
                app_id,
                &doc_type,
                expires,
                &bytes,
                &actor,
                &at,
            )?;
            println!("document {doc_type} {sha} attached to application {app_id}");
        }
        ApplicationCommand::Step {
            store,
            pii: p,
            app_id,
            step,
            note,
            form,
        } => {
            let (step, who) = match step.as_str() {
                "submit" => (Step::Submit, Who::Applicant),
                "withdraw" => (Step::Withdraw, Who::Applicant),
                "resubmit" => {
                    let f = form.ok_or_else(|| BadInput("resubmit needs --form".into()))?;
                    (Step::Resubmit(Box::new(read_form(&f)?)), Who::Applicant)
                }
                "assign" => (Step::Assign(note), Who::Reviewer),
                "request-info" => (Step::RequestInfo(note), Who::Reviewer),
                "override" => (Step::Override(note), Who::Reviewer),
                "approve" => (Step::Approve(note), Who::Reviewer),
                "reject" => (Step::Reject(note), Who::Reviewer),
                other => {
                    return Err(BadInput(format!(
                        "{other:?}: the steps are submit, withdraw, resubmit, assign, request-info, override, approve, reject"
                    ))
                    .into())
                }
            };
            let key = pii(&p)?;
            let mut db = open_store(&store.location())?;
            let a = onboarding::step(db.as_mut(), app_id, step, who, &key, today(), &actor, &at)?;
            print_application(&a);
        }
        ApplicationCommand::List {
            store,
            status,
            overdue,
        } => {
            let mut db = open_store(&store.location())?;
            let list = if overdue {
                onboarding::overdue(db.as_mut(), today())?
            } else {
                db.applications(status.as_deref())?
            };
            for a in &list {
                print_application(a);
            }
        }
        ApplicationCommand::Show { store, app_id } => {
            let mut db = open_store(&store.location())?;
            let a = db
                .application(app_id)?
                .ok_or_else(|| BadInput(format!("no application {app_id}")))?;
            print_application(&a);
            for e in db.application_events(app_id)? {
                println!(
                    "  {} {} by {} → {}{}",
                    e.at,
                    e.action,
                    e.actor,
                    e.status,
                    if e.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.note)
                    }
                );
            }
            for d in db.application_documents(app_id)? {
                println!(
                    "  document {} {}{}",
                    d.doc_type,
                    d.sha256,
                    d.expires_on
                        .map_or(String::new(), |e| format!(" valid until {e}"))
                );
            }
        }
    }
    Ok(())
}

/// Runs the onboarding commands of `posguard merchant …`.
pub fn onboarded(cmd: OnboardedCommand) -> anyhow::Result<()> {
    let (actor, at) = (cli_actor(), now_rfc3339());
    match cmd {
        OnboardedCommand::Status {
            store,
            merchant_id,
            status,
            reason,
        } => {
            let mut db = open_store(&store.location())?;
            let m = onboarding::set_merchant_status(
                db.as_mut(),
                &merchant_id,
                &status,
                &reason,
                &actor,
                &at,
            )?;
            println!("merchant {} {}", m.merchant_id, m.status);
        }
        OnboardedCommand::TerminalStatus {
            store,
            terminal_id,
            status,
            reason,
        } => {
            let mut db = open_store(&store.location())?;
            let t = onboarding::set_terminal_status(
                db.as_mut(),
                &terminal_id,
                &status,
                &reason,
                &actor,
                &at,
            )?;
            println!("terminal {} {}", t.terminal_id, t.status);
        }
        OnboardedCommand::Relocate {
            store,
            terminal_id,
            latitude,
            longitude,
            reason,
        } => {
            let mut db = open_store(&store.location())?;
            let t = onboarding::set_terminal_location(
                db.as_mut(),
                &terminal_id,
                latitude,
                longitude,
                &reason,
                &actor,
                &at,
            )?;
            println!(
                "terminal {} installed at {}",
                t.terminal_id, t.install_location
            );
        }
        OnboardedCommand::Limits {
            store,
            merchant_id,
            txn_limit,
            day_limit,
            reason,
        } => {
            let mut db = open_store(&store.location())?;
            let t = onboarding::set_limits(
                db.as_mut(),
                &merchant_id,
                txn_limit,
                day_limit,
                &reason,
                &actor,
                &at,
            )?;
            println!(
                "merchant {} limits: {} a sale, {} a day (minor units)",
                t.merchant_id, t.txn_limit_minor, t.day_limit_minor
            );
        }
        OnboardedCommand::Rereviews { store, due } => {
            let mut db = open_store(&store.location())?;
            let list = if due {
                onboarding::rereviews_due(db.as_mut(), today())?
            } else {
                db.merchant_reviews()?
            };
            for r in list {
                println!(
                    "merchant {} rated {}: re-review due {} (last {})",
                    r.merchant_id, r.risk_level, r.due_on, r.last_on
                );
            }
        }
        OnboardedCommand::Rereview {
            store,
            merchant_id,
            rating,
            note,
        } => {
            let mut db = open_store(&store.location())?;
            let r = onboarding::complete_rereview(
                db.as_mut(),
                &merchant_id,
                &rating,
                &note,
                today(),
                &actor,
                &at,
            )?;
            println!(
                "merchant {} rated {}: next re-review due {}",
                r.merchant_id, r.risk_level, r.due_on
            );
        }
        OnboardedCommand::Block {
            store,
            pii: p,
            kind,
            value,
            reason,
        } => {
            let key = pii(&p)?;
            let mut db = open_store(&store.location())?;
            let row = onboarding::block(db.as_mut(), &kind, &value, &reason, &key, &actor, &at)?;
            // The representative's ID number is shown as its token, never clear.
            println!(
                "blocked {} {}: a merchant with it is suspended and its terminals disabled",
                row.kind, row.value
            );
        }
    }
    Ok(())
}
