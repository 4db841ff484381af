//! The LMK's sources and `posguard keys`: the acquirer's own keys (zone keys agreed
//! with the issuer, the PAN-token key) loaded, generated, listed and re-wrapped.
//!
//! The LMK comes from a file (`--lmk-file`), the environment (`POSGUARD_LMK`), or a
//! key ceremony: two or three component files (`--lmk-component`, each `HEX [KCV]`)
//! held by different custodians and XORed together. Clear keys are read from standard
//! input, never from the command line (which other users can see in the process list).
//! Every key loaded leaves a row naming who loaded it and its check value.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cardsec::{Key, KeyKind, Lmk, SecurityModule, SoftwareSecurityModule, WrappedKey};
use clap::{Args, Subcommand};
use store::{KeyRow, TerminalRow, Write};
use zeroize::Zeroize;

use crate::args::{now_rfc3339, StoreArgs};
use crate::BadInput;

/// Where the LMK comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct LmkArgs {
    /// A file holding the LMK (32 hex characters; readable by the acquirer's user only).
    #[arg(long)]
    pub lmk_file: Option<PathBuf>,
    /// An LMK component file (`HEX [KCV]`), given two or three times: the key ceremony.
    #[arg(long = "lmk-component")]
    pub lmk_components: Vec<PathBuf>,
    /// During an LMK rotation, the LMK being replaced (32 hex in a file): keys still
    /// wrapped under it are read, everything new is wrapped under the new one.
    #[arg(long)]
    pub previous_lmk_file: Option<PathBuf>,
}

impl LmkArgs {
    /// These flags, or — when none of them is given — the configuration file's
    /// `[keys]` (flags override the file as a whole: an LMK is given one way).
    pub fn or_file(&self, file: &crate::config::KeysSection) -> LmkArgs {
        if self.lmk_file.is_some() || !self.lmk_components.is_empty() {
            return self.clone();
        }
        LmkArgs {
            lmk_file: file.lmk_file.clone(),
            lmk_components: file.lmk_components.clone(),
            previous_lmk_file: self
                .previous_lmk_file
                .clone()
                .or_else(|| file.previous_lmk_file.clone()),
        }
    }

    /// The configured LMK, or `None` when none is configured at all.
    pub fn load(&self) -> anyhow::Result<Option<Lmk>> {
        let env = std::env::var("POSGUARD_LMK").ok();
        let given = [
            self.lmk_file.is_some(),
            !self.lmk_components.is_empty(),
            env.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(BadInput(
                "give the LMK one way: --lmk-file, --lmk-component (2 or 3), or POSGUARD_LMK"
                    .into(),
            )
            .into());
        }
        if let Some(path) = &self.lmk_file {
            return lmk_file(path, "the LMK").map(Some);
        }
        if !self.lmk_components.is_empty() {
            let mut parts = Vec::new();
            for path in &self.lmk_components {
                let mut text = read_secret_file(path)?;
                let part = component(&text)
                    .with_context(|| format!("read LMK component {}", path.display()));
                text.zeroize();
                parts.push(part?);
            }
            return Lmk::from_components(&parts)
                .context("combine the LMK components (a check value that does not match names a mistyped component)")
                .map(Some);
        }
        match env {
            Some(mut hex) => {
                let lmk = Lmk::from_hex(&hex).context("read POSGUARD_LMK");
                hex.zeroize();
                lmk.map(Some)
            }
            None => Ok(None),
        }
    }

    /// The LMK being replaced, when one is given.
    pub fn previous(&self) -> anyhow::Result<Option<Lmk>> {
        self.previous_lmk_file
            .as_deref()
            .map(|p| lmk_file(p, "the previous LMK"))
            .transpose()
    }

    /// The configured LMK, or an error naming the ways to give one.
    pub fn require(&self) -> anyhow::Result<Lmk> {
        self.load()?.ok_or_else(missing_lmk)
    }
}

/// The refusal to start without an LMK, naming every way to give one.
pub fn missing_lmk() -> anyhow::Error {
    BadInput("no LMK: give --lmk-file FILE, --lmk-component FILE (two or three, the key ceremony), or POSGUARD_LMK; only `posguard demo` and `--demo-data` run on the public demo keys".into()).into()
}

/// An LMK from a file of 32 hex characters.
fn lmk_file(path: &std::path::Path, what: &str) -> anyhow::Result<Lmk> {
    let mut text = read_secret_file(path)?;
    let lmk =
        Lmk::from_hex(text.trim()).with_context(|| format!("read {what} in {}", path.display()));
    text.zeroize();
    lmk
}

fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("read {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "key file is readable by other users: chmod 600 it");
    }
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

/// One component: 32 hex characters, optionally followed by its 6-hex check value.
fn component(text: &str) -> anyhow::Result<(Key, Option<[u8; 3]>)> {
    let mut words = text.split_whitespace();
    let key = Key::from_hex(words.next().unwrap_or(""))?;
    let kcv = match words.next() {
        Some(k) => Some(
            hex::decode(k)
                .ok()
                .and_then(|b| <[u8; 3]>::try_from(b).ok())
                .context("a check value is 6 hex characters")?,
        ),
        None => None,
    };
    Ok((key, kcv))
}

/// `posguard keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the acquirer's keys: kind, version, check value, who loaded them.
    List(KeysArgs),
    /// Load a clear key agreed with a party (read as hex from standard input).
    Import(ImportArgs),
    /// Generate a random key (its check value is printed for the other party).
    Generate(ImportArgs),
    /// Re-wrap every key at rest (terminal keys too) under a new LMK, in one
    /// transaction; then start the nodes with the new LMK.
    Rewrap(RewrapArgs),
}

/// The store and the LMK.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    lmk: LmkArgs,
}

/// A key to load.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    keys: KeysArgs,
    /// zpk, zak, zmk or dek (the PAN-token key).
    #[arg(long)]
    kind: String,
    /// Who loads it (kept in the key table).
    #[arg(long)]
    by: String,
    /// The check value the other party gave (6 hex): the load is refused if it differs.
    #[arg(long)]
    kcv: Option<String>,
}

/// A new LMK.
#[derive(Debug, Args)]
pub struct RewrapArgs {
    #[command(flatten)]
    keys: KeysArgs,
    /// The new LMK (32 hex in a file).
    #[arg(long)]
    new_lmk_file: PathBuf,
}

/// Runs `posguard keys`.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    crate::init_logging("warn");
    match cmd {
        KeysCommand::List(a) => {
            let mut db = crate::node::open_store(&a.store.location())?;
            for k in db.keys().context("read the key table")? {
                println!(
                    "{} v{} kcv {} loaded {} by {}",
                    k.kind, k.version, k.kcv, k.created_at, k.created_by
                );
            }
            Ok(())
        }
        KeysCommand::Import(a) => load(a, false),
        KeysCommand::Generate(a) => load(a, true),
        KeysCommand::Rewrap(a) => rewrap(a),
    }
}

fn kind_of(s: &str) -> anyhow::Result<KeyKind> {
    match KeyKind::parse(s) {
        Some(k @ (KeyKind::Zpk | KeyKind::Zak | KeyKind::Zmk | KeyKind::Dek)) => Ok(k),
        _ => Err(BadInput("--kind is zpk, zak, zmk or dek".into()).into()),
    }
}

fn load(a: ImportArgs, generate: bool) -> anyhow::Result<()> {
    let kind = kind_of(&a.kind)?;
    let lmk = a.keys.lmk.require()?;
    let mut db = crate::node::open_store(&a.keys.store.location())?;
    let hsm = SoftwareSecurityModule::new(lmk, Box::new(rand::rngs::OsRng));
    let version = db
        .keys()?
        .iter()
        .filter(|k| k.kind == kind.name())
        .map(|k| k.version)
        .max()
        .unwrap_or(0)
        + 1;
    let wrapped = if generate {
        // A token key is an HMAC key: 24 bytes; zone keys are double-length TDES.
        let len = if kind == KeyKind::Dek { 24 } else { 16 };
        hsm.generate_key(kind, version as u32, len)?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read the clear key from standard input")?;
        let key = Key::from_hex(text.trim());
        text.zeroize();
        let key = key.map_err(|e| BadInput(format!("the key on standard input: {e}")))?;
        hsm.import_key(kind, version as u32, &key)?
    };
    if let Some(want) = &a.kcv {
        if !wrapped.kcv_hex().eq_ignore_ascii_case(want) {
            return Err(BadInput(format!(
                "check value {} does not match the {want} given: nothing loaded",
                wrapped.kcv_hex()
            ))
            .into());
        }
    }
    let at = now_rfc3339();
    // The audit record names the key by kind, version and check value: never the key.
    let audit = crate::args::cli_actor().audit(
        &at,
        if generate {
            "key.generate"
        } else {
            "key.import"
        },
        &format!("key:{}:v{version}", kind.name()),
        serde_json::Value::Null,
        serde_json::json!({
            "kind": kind.name(), "version": version, "kcv": wrapped.kcv_hex(), "by": a.by,
        }),
    );
    db.apply(&[
        Write::Key(KeyRow {
            kind: kind.name().into(),
            version,
            wrapped: wrapped.to_text(),
            kcv: wrapped.kcv_hex(),
            created_at: at.clone(),
            created_by: a.by.clone(),
        }),
        audit,
    ])
    .context("write the key")?;
    println!(
        "{} v{version} loaded, kcv {}; nodes use it from their next start",
        kind.name(),
        wrapped.kcv_hex()
    );
    Ok(())
}

fn rewrap(a: RewrapArgs) -> anyhow::Result<()> {
    let old = Arc::new(a.keys.lmk.require()?);
    let new = lmk_file(&a.new_lmk_file, "the new LMK")?;
    // Nodes may already run on the new LMK (with the old one as previous) and have
    // written keys under it: those stay as they are, so a re-run changes nothing.
    let hsm = crate::node::module(&new, Some(&old));
    let mut db = crate::node::open_store(&a.keys.store.location())?;
    let again = |text: &str| -> anyhow::Result<String> {
        let k = WrappedKey::parse(text)?;
        if hsm.holds_under_current(&k) {
            return Ok(text.to_owned());
        }
        Ok(hsm
            .rewrap(&k, &new)
            .context("unwrap under the current or the new LMK")?
            .to_text())
    };
    let mut writes = Vec::new();
    for mut k in db.keys()? {
        k.wrapped = again(&k.wrapped).with_context(|| format!("{} v{}", k.kind, k.version))?;
        writes.push(Write::Key(k));
    }
    for t in db.terminals()? {
        writes.push(Write::Terminal(rewrap_terminal(t, &again)?));
    }
    let n = writes.len();
    writes.push(crate::args::cli_actor().audit(
        &now_rfc3339(),
        "key.rewrap",
        "lmk",
        serde_json::json!({"lmk_kcv": old.kcv_hex()}),
        serde_json::json!({"lmk_kcv": new.kcv_hex(), "keys": n}),
    ));
    db.apply(&writes).context("write the re-wrapped keys")?;
    println!(
        "{n} keys re-wrapped from LMK kcv {} to kcv {}; start every node with the new LMK",
        old.kcv_hex(),
        new.kcv_hex()
    );
    Ok(())
}

fn rewrap_terminal(
    mut t: TerminalRow,
    again: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<TerminalRow> {
    let tid = t.terminal_id.clone();
    t.tmk = again(&t.tmk).with_context(|| format!("terminal {tid} TMK"))?;
    for key in [
        &mut t.pik,
        &mut t.mak,
        &mut t.mak_prev,
        &mut t.pending_pik,
        &mut t.pending_mak,
        &mut t.tdk,
        &mut t.pending_tdk,
    ] {
        if let Some(text) = key.as_mut() {
            *text = again(text).with_context(|| format!("terminal {tid} working key"))?;
        }
    }
    Ok(t)
}
