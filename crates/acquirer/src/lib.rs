//! An acquirer node: store, security module, risk engine, switch engine, journal and
//! gateway wired together — what `posguard acquirer`, the demo, the benchmarks and
//! the loopback tests start. The errors are [`NodeError`]: what was being done, and
//! why it failed.

use std::net::SocketAddr;
use std::sync::Arc;

use cardsec::{DataKey, Key, KeyKind, Lmk, SecurityModule, SoftwareSecurityModule, WrappedKey};
use gateway::{GatewayConfig, GatewayStats};
use store::{Backend, Journal, JournalConfig, SafRow};
use switch::{Config, Engine, ZoneKeys};

pub mod demo;

pub use demo::{onboard_demo, read_injected, with_injected, InjectedKey};

/// Why a node could not be assembled or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A step failed: what was being done, and the cause.
    #[error("{what}: {source}")]
    Failed {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Something needed is missing or does not fit (a key, a rule file).
    #[error("{0}")]
    Invalid(String),
    /// A service over the store failed.
    #[error(transparent)]
    Service(#[from] services::ServiceError),
    /// The security module refused.
    #[error(transparent)]
    Security(#[from] cardsec::SecError),
}

/// A node operation's result.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

/// Says what was being done when an error happened.
trait Ctx<T> {
    fn ctx(self, what: impl Into<String>) -> Result<T>;
    fn with_ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| NodeError::Failed {
            what: what.into(),
            source: Box::new(e),
        })
    }
    fn with_ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| NodeError::Failed {
            what: what(),
            source: Box::new(e),
        })
    }
}

impl<T> Ctx<T> for Option<T> {
    fn ctx(self, what: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| NodeError::Invalid(what.into()))
    }
    fn with_ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| NodeError::Invalid(what()))
    }
}

impl std::fmt::Debug for NodeOptions {
    /// Keys are not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("store", &self.store)
            .field("switch", &self.switch)
            .field("gateway", &self.gateway)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// How to start an acquirer node.
#[derive(Clone)]
pub struct NodeOptions {
    /// SQLite data directory, or a `postgres://` URL.
    pub store: String,
    /// Where the node's keys come from.
    pub keys: NodeKeys,
    /// The switch's settings.
    pub switch: Config,
    /// The gateway's settings.
    pub gateway: GatewayConfig,
    /// Risk rules (TOML); the default rule set when `None`.
    pub rules: Option<std::path::PathBuf>,
    /// Every rule in shadow mode (evaluated and recorded, never acting): the
    /// benchmark measures the whole path to the issuer with risk's full cost.
    pub risk_shadow: bool,
    /// What risk control does when it runs out of time.
    pub risk_policy: risk::Policy,
    /// Risk control's time budget per decision.
    pub risk_budget_us: u64,
    /// Share velocity counters between nodes in Redis (`redis://…`); in memory when `None`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (one per deployment).
    pub redis_prefix: String,
    /// Where the node's time comes from (the system clock; the demo runs faster days).
    pub clock: Arc<dyn gateway::Clock>,
}

/// Where a node's keys come from.
#[derive(Clone)]
pub enum NodeKeys {
    /// The demo's well-known LMK, zone keys and token key (agreed with the demo issuer
    /// simulator): `posguard demo`, `--demo-data`, tests. Anyone can read them.
    Demo,
    /// A configured LMK (file, environment or key ceremony); the zone keys and the
    /// PAN-token key are the newest versions in the store's key table, wrapped under it.
    /// During an LMK rotation, the LMK being replaced too: keys still wrapped under it
    /// are read, everything new is wrapped under the new one.
    Configured(Arc<Lmk>, Option<Arc<Lmk>>),
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeKeys::Demo => f.write_str("NodeKeys::Demo"),
            NodeKeys::Configured(lmk, _) => {
                write!(f, "NodeKeys::Configured(LMK kcv {})", lmk.kcv_hex())
            }
        }
    }
}

/// A security module on `lmk` (and, during a rotation, the LMK it replaces).
pub fn module(lmk: &Lmk, previous: Option<&Lmk>) -> SoftwareSecurityModule {
    let hsm = SoftwareSecurityModule::new(lmk.clone(), Box::new(rand::rngs::OsRng));
    match previous {
        Some(p) => hsm.with_previous_lmk(p.clone()),
        None => hsm,
    }
}

/// A node's security module and the zone keys it uses on the issuer link.
pub struct NodeSecurity {
    /// The module (LMK, token key, PIN verification key).
    pub hsm: Arc<SoftwareSecurityModule>,
    /// ZPK and ZAK, wrapped under the module's LMK.
    pub zone: ZoneKeys,
}

/// Follows the audit trail — written in the same transaction as every change — for
/// the changes of [`store::FEED_ACTIONS`] made since the node started (or last read):
/// a change feed the nodes follow instead of reading whole tables. It waits for the
/// store's announcement (PostgreSQL `LISTEN`, woken by the `NOTIFY` the change's
/// transaction sends; SQLite is read every tenth of a second) and reads from where it
/// stopped.
fn status_watch(opts: &NodeOptions, from_seq: i64) -> gateway::StatusWatch {
    let store = opts.store.clone();
    let mut db = OffRuntime(None);
    let mut last = from_seq;
    Box::new(move |wait| {
        if db.0.is_none() {
            db.0 = Some(open_store(&store).map_err(|e| e.to_string())?);
        }
        let Some(conn) = db.0.as_mut() else {
            return Ok((Vec::new(), last));
        };
        if let Err(e) = conn.wait_for_changes(wait) {
            db.0 = None;
            return Err(e.to_string());
        }
        let mut changes = Vec::new();
        loop {
            let page = match conn.audit_after(last, 1_000) {
                Ok(p) => p,
                Err(e) => {
                    // Open the store afresh next time (the connection may be what failed).
                    db.0 = None;
                    return Err(e.to_string());
                }
            };
            let Some(end) = page.last().map(|a| a.seq) else {
                break;
            };
            changes.extend(page.iter().filter_map(feed_change));
            last = end;
            if page.len() < 1_000 {
                break;
            }
        }
        Ok((changes, last))
    })
}

/// A change of the switch's view of a merchant or terminal, from an audit record of
/// the change feed (status, limits, install location), if it is one: the record's
/// `after` is read once.
fn feed_change(a: &store::AuditRow) -> Option<switch::StatusChange> {
    if !store::FEED_ACTIONS.contains(&a.action.as_str()) {
        return None;
    }
    let after: serde_json::Value = serde_json::from_str(&a.after).ok()?;
    let text = |k: &str| after[k].as_str().map(str::to_owned);
    match a.action.as_str() {
        "merchant.limits" | "terms.set" => Some(switch::StatusChange::Limits {
            merchant_id: text("merchant_id")?,
            per_txn_minor: after["txn_limit_minor"].as_i64()?,
            per_day_minor: after["day_limit_minor"].as_i64()?,
        }),
        "terminal.location" => Some(switch::StatusChange::Location {
            terminal_id: a.object.strip_prefix("terminal:")?.to_owned(),
            install_location: text("install_location")?,
        }),
        "merchant.status" => Some(switch::StatusChange::Merchant {
            merchant_id: a.object.strip_prefix("merchant:")?.to_owned(),
            status: text("status")?,
        }),
        "terminal.status" => Some(switch::StatusChange::Terminal {
            terminal_id: a.object.strip_prefix("terminal:")?.to_owned(),
            status: text("status")?,
        }),
        _ => None,
    }
}

/// A store connection held by a watch, closed off the async workers when the watch
/// is dropped (a PostgreSQL client blocks while it closes).
struct OffRuntime(Option<Box<dyn Backend>>);

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("posguard-watch-close".into())
                .spawn(move || drop(db));
        }
    }
}

/// Watches the store's rule-set version in force, for a node started without a rule
/// file: what the engine gets when the version or its status changes.
fn rules_watch(opts: &NodeOptions) -> Option<gateway::RulesWatch> {
    if opts.rules.is_some() {
        return None;
    }
    let (store, shadow_all) = (opts.store.clone(), opts.risk_shadow);
    let mut db = OffRuntime(None);
    let mut seen: Option<(String, String)> = None;
    let mut first = true;
    Some(Box::new(move || {
        if db.0.is_none() {
            db.0 = Some(open_store(&store).map_err(|e| format!("{e:#}"))?);
        }
        let Some(conn) = db.0.as_mut() else {
            return Ok(None);
        };
        let now = match services::rules::in_force(conn.as_mut()) {
            Ok(n) => n,
            Err(e) => {
                // Open the store afresh next time (the connection may be what failed).
                db.0 = None;
                return Err(e.to_string());
            }
        };
        let key = now
            .as_ref()
            .map(|(r, _)| (r.version.clone(), r.status.clone()));
        // The first read learns what the node started with.
        if std::mem::take(&mut first) || key == seen {
            seen = key;
            return Ok(None);
        }
        seen = key;
        let Some((row, set)) = now else {
            tracing::warn!("no rule set in force any more; the rules in use stay");
            return Ok(None);
        };
        tracing::info!(version = %row.version, status = %row.status, "risk rules in force changed");
        Ok(Some(if shadow_all { set.in_shadow() } else { set }))
    }))
}

/// Reads a rule file, or the default rule set.
pub fn load_rules(path: Option<&std::path::Path>) -> Result<risk::RuleSet> {
    match path {
        None => Ok(risk::RuleSet::default_rules()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_ctx(|| format!("read rules {}", p.display()))?;
            risk::RuleSet::from_toml(&text).with_ctx(|| format!("load rules {}", p.display()))
        }
    }
}

/// A monotonic clock in nanoseconds, for risk control's time budget (the edge).
#[allow(clippy::disallowed_methods)]
pub fn monotonic() -> Arc<dyn Fn() -> u64 + Send + Sync> {
    let start = std::time::Instant::now();
    Arc::new(move || start.elapsed().as_nanos() as u64)
}

/// Opens the store named by `NodeOptions::store` and migrates it.
pub fn open_store(store: &str) -> Result<Box<dyn Backend>> {
    let mut b = store::open(store).with_ctx(|| format!("open store {store}"))?;
    b.migrate().ctx("migrate store")?;
    Ok(b)
}

/// The acquirer's security module and zone keys: the demo's, or the configured LMK
/// with the newest zone and token keys of the store's key table (refusing to start,
/// and naming what is missing, when one is not there).
pub fn security(keys: &NodeKeys, db: &mut dyn Backend) -> Result<NodeSecurity> {
    match keys {
        NodeKeys::Demo => {
            tracing::warn!("DEMO KEYS IN USE: the LMK, zone keys and PAN-token key are public; never use them with real cards");
            let clear = issuer::ClearKeys::demo();
            let lmk = Lmk::from_hex(sim::demo_data::DEMO_LMK).ctx("read demo LMK")?;
            let mut hsm = SoftwareSecurityModule::new(lmk, Box::new(rand::rngs::OsRng));
            let token = hex::decode(&clear.token_key_hex).ctx("token key hex")?;
            hsm.set_data_key(DataKey::new(clear.token_key_id, &token).ctx("token key")?);
            let import = |kind, hex: &str| -> Result<WrappedKey> {
                hsm.import_key(kind, 1, &Key::from_hex(hex).ctx("a demo key")?)
                    .ctx("import a demo key")
            };
            let zone = ZoneKeys {
                zpk: import(KeyKind::Zpk, &clear.zpk_hex).ctx("demo ZPK")?,
                zak: import(KeyKind::Zak, &clear.zak_hex).ctx("demo ZAK")?,
            };
            Ok(NodeSecurity {
                hsm: Arc::new(hsm),
                zone,
            })
        }
        NodeKeys::Configured(lmk, previous) => {
            let mut hsm = module(lmk, previous.as_deref());
            let (zone, dek) = keys_in_force(&hsm, lmk, db)?;
            hsm.set_wrapped_data_key(&dek)
                .ctx("install the token key")?;
            tracing::info!(lmk_kcv = %lmk.kcv_hex(), zpk = zone.zpk.version(), zak = zone.zak.version(), token_key = dek.version(), "keys loaded");
            Ok(NodeSecurity {
                hsm: Arc::new(hsm),
                zone,
            })
        }
    }
}

/// The newest ZPK, ZAK and token key of the key table, each checked to open under the
/// module's LMK (or the previous one during an LMK rotation).
fn keys_in_force(
    hsm: &SoftwareSecurityModule,
    lmk: &Lmk,
    db: &mut dyn Backend,
) -> Result<(ZoneKeys, WrappedKey)> {
    let stored = db.keys().ctx("read the key table")?;
    let newest = |kind: KeyKind| -> Result<WrappedKey> {
        let row = stored
            .iter()
            .filter(|k| k.kind == kind.name())
            .max_by_key(|k| k.version)
            .with_ctx(|| format!("no {} in the key table: load one with `posguard keys import --kind {}` (or `keys generate`)", kind.name(), kind.name().to_lowercase()))?;
        let key = WrappedKey::parse(&row.wrapped)
            .with_ctx(|| format!("read {} version {}", kind.name(), row.version))?;
        if !hsm.holds(&key) {
            return Err(NodeError::Invalid(format!(
                "{} version {} is not wrapped under this LMK (kcv {}) or the previous one: wrong LMK?",
                kind.name(),
                row.version,
                lmk.kcv_hex()
            )));
        }
        Ok(key)
    };
    let zone = ZoneKeys {
        zpk: newest(KeyKind::Zpk)?,
        zak: newest(KeyKind::Zak)?,
    };
    Ok((zone, newest(KeyKind::Dek)?))
}

/// What the running node checks for keys loaded while it runs (`posguard keys import`
/// or `generate` on another terminal): the newest zone and token keys of the key
/// table. The demo's keys never change, so it watches nothing.
pub fn key_watch(opts: &NodeOptions) -> Option<gateway::KeyWatch> {
    let NodeKeys::Configured(lmk, previous) = &opts.keys else {
        return None;
    };
    let (lmk, previous, store) = (lmk.clone(), previous.clone(), opts.store.clone());
    let mut db: Option<Box<dyn Backend>> = None;
    Some(Box::new(move || {
        let hsm = module(&lmk, previous.as_deref());
        let conn = match db.as_mut() {
            Some(c) => c,
            None => db.insert(open_store(&store).map_err(|e| format!("{e:#}"))?),
        };
        let result = keys_in_force(&hsm, &lmk, conn.as_mut()).map_err(|e| format!("{e:#}"));
        if result.is_err() {
            // Open the store afresh next time (the connection may be what failed).
            db = None;
        }
        result.map(|(zone, dek)| (zone, Some(dek)))
    }))
}

/// Loads the node's state and builds its engine and journal (blocking: call it before
/// the runtime or on a blocking thread).
pub fn prepare(opts: &NodeOptions) -> Result<(Engine, Journal, Vec<SafRow>)> {
    let (engine, pending_saf) = load_engine(opts)?;
    let writer = open_store(&opts.store)?;
    let journal = Journal::start(writer, JournalConfig::default());
    Ok((engine, journal, pending_saf))
}

/// Builds the node's engine from what the store holds, with the queue entries to
/// resume (blocking): at start, and again if the engine ever panics.
pub fn load_engine(opts: &NodeOptions) -> Result<(Engine, Vec<SafRow>)> {
    let mut db = open_store(&opts.store)?;
    let NodeSecurity { hsm, zone } = security(&opts.keys, db.as_mut())?;
    let merchants = db.merchants().ctx("load merchants")?;
    let terminals = db.terminals().ctx("load terminals")?;
    let limits: Vec<(String, i64, i64)> = db
        .terms()
        .ctx("load merchant terms")?
        .into_iter()
        .map(|t| (t.merchant_id, t.txn_limit_minor, t.day_limit_minor))
        .collect();
    let recent = db
        .recent_transactions(opts.switch.max_remembered)
        .ctx("load transactions")?;
    let max_id = db.max_txn_id().ctx("read last transaction id")?;
    let last_events = db
        .last_event_seqs(recent.first().map_or(0, |t| t.txn_id))
        .ctx("load event numbers")?;
    let pending_saf = db
        .saf_in_state(store::SafState::Pending)
        .ctx("load store-and-forward queue")?;
    tracing::info!(
        merchants = merchants.len(),
        terminals = terminals.len(),
        transactions = recent.len(),
        "acquirer state loaded"
    );
    // A rule file given wins; else the version in force in the store; else the default.
    let stored = match opts.rules {
        Some(_) => None,
        None => services::rules::in_force(db.as_mut()).ctx("read the rule set in force")?,
    };
    let mut rules = match stored {
        Some((row, set)) => {
            tracing::info!(version = %row.version, status = %row.status, "risk rules from the store");
            set
        }
        None => load_rules(opts.rules.as_deref())?,
    };
    if opts.risk_shadow {
        rules = rules.in_shadow();
    }
    let cases = db.cases(None).ctx("load cases")?;
    let case_ids: Vec<i64> = cases.iter().map(|c| c.case_id).collect();
    let open_cases: Vec<(store::CaseRow, i64)> = cases
        .into_iter()
        .filter(|c| !c.status.starts_with("closed"))
        .map(|c| {
            let seq = db
                .case_entries(c.case_id)
                .map(|e| e.len() as i64)
                .unwrap_or(0);
            (c, seq)
        })
        .collect();
    tracing::info!(version = %rules.version, rules = rules.rules.len(), "risk rules loaded");
    let velocity: Box<dyn risk::Velocity> = match &opts.redis_url {
        Some(url) => Box::new(
            store::RedisVelocity::connect(url, &opts.redis_prefix).ctx("connect to Redis")?,
        ),
        None => Box::new(risk::MemoryVelocity::new(1_000_000)),
    };
    let mut risk = risk::Engine::new(
        rules,
        velocity,
        opts.risk_policy,
        opts.risk_budget_us * 1_000,
    );
    // Counters live in memory: warm them from the last day of the journal, so a restart
    // does not forget who has been doing what. A day counter sums minute buckets, so
    // the minute before the day still counts: warm from a day and a minute back.
    if opts.redis_url.is_none() {
        let decisions = services::risk::load_decisions(db.as_mut())?;
        let day_ago = recent
            .last()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.created_at).ok())
            .map_or(0, |d| d.timestamp_millis() - 86_400_000 - 60_000);
        services::risk::replay(&recent, &decisions, day_ago, &mut risk, |_, _, _, _, _| {});
    }
    let engine = Engine::new(
        opts.switch.clone(),
        hsm,
        zone,
        merchants,
        terminals,
        switch::JournalState {
            recent,
            last_events,
            max_txn_id: max_id,
        },
    )
    .with_risk(risk, monotonic(), open_cases, case_ids)
    .with_limits(limits);
    Ok((engine, pending_saf))
}

/// Runs a node on already bound terminal listeners (one dialect each, TCP or TLS; a
/// `(TcpListener, TerminalDialect)` pair is a plain one) until `shutdown`.
pub async fn run_node(
    opts: NodeOptions,
    listeners: impl IntoIterator<Item = impl Into<gateway::TerminalListener>>,
    stats: Arc<GatewayStats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listeners: Vec<gateway::TerminalListener> = listeners.into_iter().map(Into::into).collect();
    let o = opts.clone();
    let owner = format!("node-{}", opts.switch.node);
    let sweep_store = opts.store.clone();
    // Where the status feed stands before the engine loads today's statuses: a change
    // made in between is read again, and setting a status twice changes nothing.
    let (sweeper, feed_from) = tokio::task::spawn_blocking(move || {
        let mut db = open_store(&sweep_store)?;
        let seq = db.max_audit_seq().ctx("read the audit trail's end")?;
        Ok::<_, NodeError>((db, seq))
    })
    .await
    .ctx("join")??;
    let sweeper = Some((sweeper, owner));
    let (engine, journal, pending_saf) = tokio::task::spawn_blocking(move || prepare(&o))
        .await
        .ctx("join loader")??;
    let addrs: Vec<(Option<SocketAddr>, gateway::TerminalDialect, &str)> = listeners
        .iter()
        .map(|l| {
            let tls = match &l.tls {
                None => "plain",
                Some(t) if t.requires_client_cert() => "mutual TLS",
                Some(_) => "TLS",
            };
            (l.listener.local_addr().ok(), l.dialect, tls)
        })
        .collect();
    let issuer_tls = opts.gateway.issuer_tls.as_ref().map(|t| t.server_name());
    tracing::info!(listen = ?addrs, issuer = %opts.gateway.issuer, issuer_tls_name = ?issuer_tls, "acquirer node running");
    let keys = key_watch(&opts);
    let rules = rules_watch(&opts);
    let status = status_watch(&opts, feed_from);
    let reload: gateway::Reload = {
        let o = opts.clone();
        Box::new(move || load_engine(&o).map_err(|e| format!("{e:#}")))
    };
    gateway::run(
        opts.gateway,
        gateway::Core {
            engine,
            journal,
            pending_saf,
            sweeper,
            reload: Some(reload),
            keys,
            rules,
            status: Some(status),
        },
        listeners,
        opts.clock.clone(),
        stats,
        shutdown,
    )
    .await;
    Ok(())
}
