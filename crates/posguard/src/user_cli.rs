//! `posguard user …`: operator accounts from the command line — how the first admin is
//! made. Every change leaves an audit record naming the OS user who ran the command.

use std::io::Read;

use clap::Subcommand;
use services::accounts::{self, Role};
use zeroize::Zeroize;

use crate::args::{cli_actor, now_rfc3339, StoreArgs};
use crate::node::open_store;
use crate::BadInput;

/// `posguard user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an operator; the password is read from standard input (never a flag:
    /// other users can read a command line).
    Add {
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        name: String,
        /// admin, operations, risk_analyst, finance, support, auditor or merchant.
        #[arg(long)]
        role: String,
        /// For a merchant account: a merchant id it sees (repeat for several).
        #[arg(long = "merchant")]
        merchants: Vec<String>,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List operators (never their password hashes).
    List {
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable an operator: it cannot log in, and its sessions and API keys stop working.
    Disable {
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        name: String,
    },
    /// Set an operator's password, read from standard input.
    Passwd {
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        name: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Create an API key for a system acting as this operator; it is printed once.
    ApiKey {
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        name: String,
        /// How long it works.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| BadInput(format!("read the password from standard input: {e}")))?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    text.zeroize();
    Ok(password)
}

/// Runs `posguard user …`.
pub fn run(cmd: UserCommand) -> anyhow::Result<()> {
    let actor = cli_actor();
    match cmd {
        UserCommand::Add {
            store,
            name,
            role,
            merchants,
            password_stdin: _,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                BadInput(
                    "--role is admin, operations, risk_analyst, finance, support, auditor or merchant"
                        .into(),
                )
            })?;
            let mut password = read_password()?;
            let mut db = open_store(&store.location())?;
            let r = accounts::add_operator(
                db.as_mut(),
                &name,
                role,
                &password,
                &merchants,
                &actor,
                &now_rfc3339(),
            );
            password.zeroize();
            let op = r?;
            println!("operator {} ({}) created", op.name, op.role);
        }
        UserCommand::List { store } => {
            let mut db = open_store(&store.location())?;
            for o in db.operators()? {
                println!(
                    "{:<24} {:<13} {:<8} merchants {}  since {}",
                    o.name,
                    o.role,
                    if o.disabled { "disabled" } else { "active" },
                    if o.merchant_ids.is_empty() {
                        "-"
                    } else {
                        &o.merchant_ids
                    },
                    o.created_at
                );
            }
        }
        UserCommand::Disable { store, name } => {
            let mut db = open_store(&store.location())?;
            accounts::disable_operator(db.as_mut(), &name, &actor, &now_rfc3339())?;
            println!("operator {name} disabled");
        }
        UserCommand::Passwd {
            store,
            name,
            password_stdin: _,
        } => {
            let mut password = read_password()?;
            let mut db = open_store(&store.location())?;
            let r = accounts::set_password(db.as_mut(), &name, &password, &actor, &now_rfc3339());
            password.zeroize();
            r?;
            println!("password of {name} changed");
        }
        UserCommand::ApiKey { store, name, days } => {
            let mut db = open_store(&store.location())?;
            let key = accounts::create_api_key(db.as_mut(), &name, days, &actor, now())?;
            println!("{}", key.token);
            eprintln!(
                "API key for {name}, valid until {}: shown once, posguard keeps only its hash",
                key.row.expires_at
            );
        }
    }
    Ok(())
}

#[allow(clippy::disallowed_methods)] // the edge
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
