//! `posguard api`: the operators' HTTP API on the store, without terminal traffic (to
//! run the API apart from the switching nodes). `posguard acquirer --http` serves the
//! same API inside a node.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::args::StoreArgs;

/// `posguard api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Where settlement runs started through the API write their files.
    #[arg(long, default_value = "settlement")]
    settlement_dir: std::path::PathBuf,
    #[command(flatten)]
    pii: PiiArgs,
    #[command(flatten)]
    complaints: ComplaintArgs,
    /// The LMK, for provisioning through the API (terminal master keys are generated
    /// under it); without one the API does not provision.
    #[command(flatten)]
    lmk: crate::keys_cli::LmkArgs,
}

/// The key personal ID numbers in merchant applications are tokenized with.
#[derive(Debug, Clone, Args)]
pub struct PiiArgs {
    /// A file holding the PII tokenization key (64 hex digits; or the environment's
    /// `POSGUARD_PII_KEY`). Without it the API refuses merchant applications.
    #[arg(long)]
    pub pii_key_file: Option<std::path::PathBuf>,
}

impl PiiArgs {
    /// The key, if one is configured.
    pub fn load(&self) -> anyhow::Result<Option<services::onboarding::PiiKey>> {
        let text = match &self.pii_key_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("read the PII key file {}", p.display()))?,
            ),
            None => std::env::var("POSGUARD_PII_KEY").ok(),
        };
        text.map(|t| services::onboarding::PiiKey::from_hex(&t))
            .transpose()
            .context("load the PII key")
    }
}

/// The system clock (the edge).
#[allow(clippy::disallowed_methods)]
pub fn system_clock() -> api::Clock {
    Arc::new(chrono::Utc::now)
}

/// What an API serves with besides its store.
pub struct ApiSetup {
    /// The clock.
    pub clock: api::Clock,
    /// Settlement runs' configuration (where their files go).
    pub money: services::money::MoneyConfig,
    /// A switching node's metrics and readiness, inside a node.
    pub node: Option<api::NodeHooks>,
    /// The key personal ID numbers are tokenized with.
    pub pii: Option<services::onboarding::PiiKey>,
    /// The security module provisioning generates terminal keys in.
    pub hsm: Option<Arc<cardsec::SoftwareSecurityModule>>,
    /// The complaint desk's deadlines and four-eyes threshold.
    pub complaints: Option<services::complaints::ComplaintConfig>,
}

/// Where the complaint desk's configuration comes from.
#[derive(Debug, Clone, Args)]
pub struct ComplaintArgs {
    /// A TOML file of the complaint desk's deadlines per source and four-eyes
    /// threshold (`docs/complaints.md`); the defaults without it.
    #[arg(long)]
    pub complaints_config: Option<std::path::PathBuf>,
}

impl ComplaintArgs {
    /// The configuration, if a file is given.
    pub fn load(&self) -> anyhow::Result<Option<services::complaints::ComplaintConfig>> {
        self.complaints_config
            .as_ref()
            .map(|p| {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                Ok(services::complaints::ComplaintConfig::from_toml(&text)?)
            })
            .transpose()
    }
}

/// Starts the API on `listener` over the store at `store`; returns when `shutdown`
/// resolves.
pub async fn serve(
    store: &str,
    listener: tokio::net::TcpListener,
    setup: ApiSetup,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ApiSetup {
        clock,
        money,
        node,
        pii,
        hsm,
        complaints,
    } = setup;
    let s = store.to_owned();
    let db = tokio::task::spawn_blocking(move || crate::node::open_store(&s))
        .await
        .context("open store")??;
    let addr = listener.local_addr().context("API address")?;
    tracing::info!(%addr, "operators' API listening (/api/v1, /health, /metrics)");
    let api = api::Api::with_money(db, clock, money);
    if let Some(n) = node {
        api.attach_node(n);
    }
    if let Some(k) = pii {
        api.set_pii_key(k);
    }
    if let Some(h) = hsm {
        api.set_security_module(h);
    }
    if let Some(c) = complaints {
        api.set_complaints(c);
    }
    api::serve(listener, api, shutdown)
        .await
        .context("serve the API")
}

/// A switching node's metrics and readiness for its API: installs the process's
/// Prometheus recorder (the gateway and the journal record into it) and reads the
/// issuer links from the gateway's counters.
pub fn node_hooks(stats: Arc<gateway::GatewayStats>) -> anyhow::Result<api::NodeHooks> {
    let group_writes: Vec<f64> = (0..14).map(|i| f64::from(1u32 << i)).collect();
    let handle = api::install_node_recorder(
        &gateway::node_metrics::BUCKETS,
        &[(store::JOURNAL_GROUP_WRITES, &group_writes)],
    )
    .map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    gateway::node_metrics::describe();
    store::describe_journal_metrics();
    let ready = move || {
        let up = stats
            .issuer_links_up
            .load(std::sync::atomic::Ordering::Relaxed);
        if up > 0 {
            Ok(())
        } else {
            Err("down".to_owned())
        }
    };
    Ok(api::NodeHooks {
        handle,
        ready: Arc::new(ready),
    })
}

/// Runs `posguard api`.
pub fn run(a: ApiArgs) -> anyhow::Result<()> {
    crate::init_logging("info");
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.http)
            .await
            .with_context(|| format!("bind {}", a.http))?;
        let pii = a.pii.load()?;
        let previous = a.lmk.previous()?;
        let hsm = a
            .lmk
            .load()?
            .map(|l| Arc::new(crate::node::module(&l, previous.as_ref())));
        let money = services::money::MoneyConfig {
            out_dir: a.settlement_dir,
            ..services::money::MoneyConfig::default()
        };
        let setup = ApiSetup {
            clock: system_clock(),
            money,
            node: None,
            pii,
            hsm,
            complaints: a.complaints.load()?,
        };
        serve(&a.store.location(), listener, setup, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}
