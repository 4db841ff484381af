//! `posguard settle`, `payout`, `txn`, `merchant` and `hold`: the money commands.

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use store::TermsRow;

use crate::args::{cli_actor, now_rfc3339, StoreArgs};
use crate::node::open_store;
use crate::BadInput;
use services::money::{self, MoneyConfig};

fn date(s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| BadInput(format!("date must be YYYY-MM-DD, got {s:?}")).into())
}

/// `posguard settle`.
#[derive(Debug, Args)]
pub struct SettleArgs {
    /// Where the journal is.
    #[command(flatten)]
    store: StoreArgs,
    /// The business date to settle (YYYY-MM-DD).
    #[arg(long)]
    date: String,
    /// Where the settlement and payout files go.
    #[arg(long, default_value = ".")]
    out: std::path::PathBuf,
}

/// `posguard settle --date D`.
pub fn settle(a: SettleArgs) -> anyhow::Result<()> {
    let d = date(&a.date)?;
    let mut db = open_store(&a.store.location())?;
    let cfg = MoneyConfig {
        out_dir: a.out,
        ..MoneyConfig::default()
    };
    let report = money::settle_date(db.as_mut(), d, &cfg, &cli_actor(), &now_rfc3339())?;
    print!("{report}");
    Ok(())
}

/// `posguard payout …`.
#[derive(Debug, Subcommand)]
pub enum PayoutCommand {
    /// Confirm the payouts due on or before a value date as paid by the bank.
    Confirm {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Value date (YYYY-MM-DD).
        #[arg(long)]
        value_date: String,
    },
}

/// Runs `posguard payout …`.
pub fn payout(cmd: PayoutCommand) -> anyhow::Result<()> {
    match cmd {
        PayoutCommand::Confirm { store, value_date } => {
            let d = date(&value_date)?;
            let mut db = open_store(&store.location())?;
            let (n, amount) = money::confirm_payouts(
                db.as_mut(),
                d,
                domain::Currency::CNY,
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!(
                "{n} payout(s) confirmed paid, {} in total",
                money::major(amount)
            );
            Ok(())
        }
    }
}

/// `posguard txn …`.
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Where a transaction's money is.
    Show {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Its retrieval reference number.
        rrn: String,
    },
}

/// Runs `posguard txn …`.
pub fn txn(cmd: TxnCommand) -> anyhow::Result<()> {
    match cmd {
        TxnCommand::Show { store, rrn } => {
            let mut db = open_store(&store.location())?;
            print!(
                "{}",
                money::txn_money(db.as_mut(), &rrn, &MoneyConfig::default())?
            );
            Ok(())
        }
    }
}

/// `posguard merchant provision`: prints the new merchant and each terminal's key
/// delivery (the components' hex is shown here once and never stored).
fn provision(
    store: &StoreArgs,
    lmk: &crate::keys_cli::LmkArgs,
    application: i64,
    under_kek: bool,
) -> anyhow::Result<()> {
    let lmk = lmk.require()?;
    let hsm = crate::node::module(&lmk, None);
    let mut db = open_store(&store.location())?;
    let kek = if under_kek {
        let newest = db
            .keys()?
            .into_iter()
            .filter(|k| k.kind == cardsec::KeyKind::Zmk.name())
            .max_by_key(|k| k.version)
            .ok_or_else(|| {
                BadInput("no ZMK in the key table: `posguard keys import --kind zmk`".into())
            })?;
        Some(cardsec::WrappedKey::parse(&newest.wrapped)?)
    } else {
        None
    };
    let p = services::onboarding::provision(
        db.as_mut(),
        application,
        &hsm,
        kek.as_ref(),
        &cli_actor(),
        &now_rfc3339(),
    )?;
    println!(
        "merchant {} provisioned from application {application}",
        p.merchant_id
    );
    for t in &p.terminals {
        println!(
            "terminal {} at {} (pending install)",
            t.terminal_id, t.install_address
        );
        match &t.delivery {
            cardsec::KeyDelivery::Components { components, kcv } => {
                for (i, c) in components.iter().enumerate() {
                    println!(
                        "  TMK component {}: {} (kcv {})",
                        i + 1,
                        c.hex.as_str(),
                        c.kcv
                    );
                }
                println!("  TMK kcv {kcv}");
            }
            cardsec::KeyDelivery::UnderKek {
                cryptogram,
                kek_kcv,
                kcv,
            } => println!("  TMK under the KEK (kcv {kek_kcv}): {cryptogram} (TMK kcv {kcv})"),
        }
    }
    Ok(())
}

/// `posguard merchant …`.
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Load a year of the working-day calendar (public holidays and make-up working
    /// days, the file format of `crates/merchants/calendars/cn-2026.txt`) from
    /// standard input, in place of the shipped year: review SLAs and settlement dates
    /// count on it.
    Calendar {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The year the file declares.
        #[arg(long)]
        year: i32,
    },
    /// Load the MCC table (`code | fee class | risk | licence | name` a line, the format
    /// of `crates/merchants/calendars/mcc.txt`) from standard input, in place of the
    /// shipped one.
    MccTable {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Status, relocation, limits, re-reviews and the blocklist.
    #[command(flatten)]
    Onboarded(crate::onboarding_cli::OnboardedCommand),
    /// A merchant's settlement statement for a business date.
    Statement {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The merchant.
        merchant_id: String,
        /// Business date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
    },
    /// Provision an approved merchant application: the merchant, its terms and its
    /// terminals, each terminal's master key printed for injection (two components,
    /// or under the newest ZMK of the key table with `--under-kek`). Shown once.
    Provision {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The LMK the new keys are wrapped under.
        #[command(flatten)]
        lmk: crate::keys_cli::LmkArgs,
        /// The application.
        #[arg(long)]
        application: i64,
        /// Deliver the master keys under the key table's newest ZMK instead of as
        /// components.
        #[arg(long)]
        under_kek: bool,
    },
    /// Set a merchant's pricing and settlement terms.
    Terms {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The merchant.
        merchant_id: String,
        /// Bank account for payouts.
        #[arg(long)]
        account: String,
        /// `T+1` or `D+0:<daily limit in minor units>`.
        #[arg(long, default_value = "T+1")]
        cycle: String,
        /// Debit-card rate (basis points).
        #[arg(long, default_value_t = 50)]
        debit_bps: i64,
        /// Credit-card rate (basis points).
        #[arg(long, default_value_t = 60)]
        credit_bps: i64,
        /// Debit-card fee cap per transaction (minor units, 0 = none).
        #[arg(long, default_value_t = 2_000)]
        debit_cap: i64,
        /// Minimum fee per transaction (minor units).
        #[arg(long, default_value_t = 1)]
        min_fee: i64,
        /// Largest sale (minor units, 0 = none); the terms' current one when absent.
        #[arg(long)]
        txn_limit: Option<i64>,
        /// Most sales a day (minor units, 0 = none); the terms' current one when absent.
        #[arg(long)]
        day_limit: Option<i64>,
    },
}

/// Standard input as UTF-8 text of at most `max` bytes.
fn stdin_text(max: usize) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .context("read standard input")?;
    if bytes.len() > max {
        return Err(crate::BadInput(format!("the input is over {max} bytes")).into());
    }
    String::from_utf8(bytes).map_err(|_| crate::BadInput("the input is not UTF-8".into()).into())
}

/// Runs `posguard merchant …`.
pub fn merchant(cmd: MerchantCommand) -> anyhow::Result<()> {
    match cmd {
        MerchantCommand::Statement {
            store,
            merchant_id,
            date: d,
        } => {
            let d = date(&d)?;
            let mut db = open_store(&store.location())?;
            print!(
                "{}",
                money::statement(db.as_mut(), &merchant_id, d, &MoneyConfig::default())?
            );
            Ok(())
        }
        MerchantCommand::Provision {
            store,
            lmk,
            application,
            under_kek,
        } => provision(&store, &lmk, application, under_kek),
        MerchantCommand::Onboarded(c) => crate::onboarding_cli::onboarded(c),
        MerchantCommand::Calendar { store, year } => {
            let text = stdin_text(services::reference::MAX_CALENDAR)?;
            let mut db = open_store(&store.location())?;
            services::reference::load_calendar(
                db.as_mut(),
                year,
                &text,
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!("calendar {year} loaded");
            Ok(())
        }
        MerchantCommand::MccTable { store } => {
            let text = stdin_text(services::reference::MAX_MCC_TABLE)?;
            let mut db = open_store(&store.location())?;
            services::reference::load_mcc_table(db.as_mut(), &text, &cli_actor(), &now_rfc3339())?;
            println!("MCC table loaded");
            Ok(())
        }
        MerchantCommand::Terms {
            store,
            merchant_id,
            account,
            cycle,
            debit_bps,
            credit_bps,
            debit_cap,
            min_fee,
            txn_limit,
            day_limit,
        } => {
            let mut db = open_store(&store.location())?;
            let now = db.terms_of(&merchant_id)?;
            let current = |f: fn(&TermsRow) -> i64| now.as_ref().map_or(0, f);
            money::set_terms(
                db.as_mut(),
                TermsRow {
                    merchant_id: merchant_id.clone(),
                    settlement_account: account,
                    cycle,
                    debit_bps,
                    credit_bps,
                    debit_cap_minor: debit_cap,
                    min_fee_minor: min_fee,
                    updated_at: String::new(),
                    txn_limit_minor: txn_limit.unwrap_or_else(|| current(|t| t.txn_limit_minor)),
                    day_limit_minor: day_limit.unwrap_or_else(|| current(|t| t.day_limit_minor)),
                    // The reserve is the risk rating's (provisioning, re-review).
                    reserve_bps: current(|t| t.reserve_bps),
                    reserve_days: current(|t| t.reserve_days),
                },
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!("terms of {merchant_id} set");
            Ok(())
        }
    }
}

/// `posguard hold …`.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Hold a merchant's or a transaction's settlement.
    Place {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// Hold every transaction of this merchant.
        #[arg(long, conflicts_with = "rrn")]
        merchant: Option<String>,
        /// Hold this transaction.
        #[arg(long)]
        rrn: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who places it.
        #[arg(long)]
        by: String,
    },
    /// Release a hold: what it held settles in the next run.
    Release {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The hold.
        hold_id: String,
        /// Who releases it.
        #[arg(long)]
        by: String,
    },
    /// List holds in force.
    List {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `posguard hold …`.
pub fn hold(cmd: HoldCommand) -> anyhow::Result<()> {
    match cmd {
        HoldCommand::Place {
            store,
            merchant,
            rrn,
            reason,
            by,
        } => {
            let mut db = open_store(&store.location())?;
            let subject = match (merchant, rrn) {
                (Some(m), None) => format!("merchant:{m}"),
                (None, Some(r)) => {
                    let t = db
                        .transaction_by_rrn(&r)?
                        .ok_or_else(|| BadInput(format!("no transaction with RRN {r}")))?;
                    format!("txn:{}", t.txn_id)
                }
                _ => return Err(BadInput("give --merchant or --rrn".into()).into()),
            };
            let id = money::place_hold(
                db.as_mut(),
                &subject,
                &reason,
                &by,
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!("hold {id} placed on {subject}");
            Ok(())
        }
        HoldCommand::Release { store, hold_id, by } => {
            let mut db = open_store(&store.location())?;
            money::release_hold(db.as_mut(), &hold_id, &by, &cli_actor(), &now_rfc3339())?;
            println!("hold {hold_id} released");
            Ok(())
        }
        HoldCommand::List { store } => {
            let mut db = open_store(&store.location())?;
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for h in db.holds(true)? {
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(
                    out,
                    "{} {} {} (by {}, since {})",
                    h.hold_id, h.subject, h.reason, h.placed_by, h.placed_at
                )
                .is_err()
                {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// `posguard recon`.
#[derive(Debug, Args)]
pub struct ReconArgs {
    /// Where the journal is.
    #[command(flatten)]
    store: StoreArgs,
    /// The business date to reconcile (YYYY-MM-DD).
    #[arg(long)]
    date: String,
    /// The issuer's clearing file for that date (CSV); fetched from `--issuer-http`
    /// when absent.
    #[arg(long)]
    issuer_file: Option<std::path::PathBuf>,
    /// The issuer simulator's HTTP API.
    #[arg(long, default_value = "127.0.0.1:9080")]
    issuer_http: String,
}

/// `posguard recon --date D`.
pub fn recon(a: ReconArgs) -> anyhow::Result<()> {
    let d = date(&a.date)?;
    let bytes = match &a.issuer_file {
        Some(p) => std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
        None => crate::check::fetch_clearing(&a.issuer_http, d)?.into_bytes(),
    };
    let name = a
        .issuer_file
        .as_ref()
        .map_or_else(|| format!("issuer-http:{d}"), |p| p.display().to_string());
    let mut db = open_store(&a.store.location())?;
    let at = now_rfc3339();
    let ing = services::reconcile::ingest(db.as_mut(), &bytes, d, &name, &cli_actor(), &at)?;
    println!(
        "clearing file {name}: {} lines, {} refused{}",
        ing.lines,
        ing.bad.len(),
        if ing.already {
            " (already ingested: same content)"
        } else {
            ""
        }
    );
    for (line, why) in ing.bad.iter().take(20) {
        println!("  line {line}: {why}");
    }
    let report = services::reconcile::reconcile_date(
        db.as_mut(),
        d,
        &MoneyConfig::default(),
        &cli_actor(),
        &at,
    )?;
    print!("{report}");
    Ok(())
}

/// `posguard exception …`: the reconciliation exception queue.
#[derive(Debug, Subcommand)]
pub enum ExceptionCommand {
    /// List findings (open ones by default).
    List {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// `open`, `investigating`, `resolved`, `auto_resolved`, or `all`.
        #[arg(long, default_value = "open")]
        status: String,
    },
    /// Show one finding with its evidence.
    Show {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The finding (`<class>:<rrn>`).
        id: String,
    },
    /// Take a finding (it becomes `investigating`).
    Assign {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The finding.
        id: String,
        /// Who works it.
        who: String,
    },
    /// Resolve a finding, saying what was done.
    Resolve {
        /// Where the journal is.
        #[command(flatten)]
        store: StoreArgs,
        /// The finding.
        id: String,
        /// Who resolved it.
        #[arg(long)]
        by: String,
        /// What was done.
        #[arg(long)]
        note: String,
    },
}

/// Runs `posguard exception …`.
pub fn exception(cmd: ExceptionCommand) -> anyhow::Result<()> {
    let find = |db: &mut dyn store::Backend, id: &str| -> anyhow::Result<store::FindingRow> {
        db.findings(None)?
            .into_iter()
            .find(|f| f.finding_id == id)
            .ok_or_else(|| BadInput(format!("no finding {id}")).into())
    };
    match cmd {
        ExceptionCommand::List { store, status } => {
            let mut db = open_store(&store.location())?;
            let filter = (status != "all").then_some(status.as_str());
            for f in db.findings(filter)? {
                println!(
                    "{} {} {} {} owner {} deadline {} — {}",
                    f.finding_id,
                    f.business_date,
                    f.status,
                    money::major(f.amount_minor),
                    f.owner.as_deref().unwrap_or("-"),
                    f.deadline.as_deref().unwrap_or("-"),
                    f.action
                );
            }
            Ok(())
        }
        ExceptionCommand::Show { store, id } => {
            let mut db = open_store(&store.location())?;
            let f = find(db.as_mut(), &id)?;
            println!(
                "{} ({}), found for {}, {} {}, owner {}, deadline {}\naction: {}\nevidence:\n  {}\nnotes:\n{}",
                f.finding_id,
                f.class,
                f.business_date,
                f.status,
                money::major(f.amount_minor),
                f.owner.as_deref().unwrap_or("-"),
                f.deadline.as_deref().unwrap_or("-"),
                f.action,
                f.evidence.replace('\n', "\n  "),
                f.notes
            );
            Ok(())
        }
        ExceptionCommand::Assign { store, id, who } => {
            let mut db = open_store(&store.location())?;
            services::reconcile::assign_exception(
                db.as_mut(),
                &id,
                &who,
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!("{id} assigned to {who}");
            Ok(())
        }
        ExceptionCommand::Resolve {
            store,
            id,
            by,
            note,
        } => {
            let mut db = open_store(&store.location())?;
            services::reconcile::resolve_exception(
                db.as_mut(),
                &id,
                &by,
                &note,
                &cli_actor(),
                &now_rfc3339(),
            )?;
            println!("{id} resolved");
            Ok(())
        }
    }
}
