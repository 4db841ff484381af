//! `posguard acquirer`, `posguard issuer-sim` and `posguard terminals`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDateTime;
use clap::Args;
use issuer::{Bank, Faults, IssuerConfig};
use terminal::{Card, EntryKind, FleetConfig, Mix, TerminalSetup};

use crate::args::{now_rfc3339, StoreArgs};
use crate::demo_data::{demo_data, CardFate, DemoData};
use crate::node::{open_store, run_node, NodeKeys, NodeOptions};

/// The demo data set's shape.
#[derive(Debug, Clone, Args)]
pub struct DemoDataArgs {
    /// Seed of the demo data set (terminals, keys, cards).
    #[arg(long, default_value_t = 8583)]
    pub data_seed: u64,
    /// Terminals in the demo data set.
    #[arg(long, default_value_t = 20)]
    pub terminals: usize,
    /// Good cards in the demo data set.
    #[arg(long, default_value_t = 2_000)]
    pub cards: usize,
}

impl DemoDataArgs {
    /// Builds the data set.
    pub fn data(&self) -> DemoData {
        demo_data(self.data_seed, self.terminals, self.cards)
    }
}

/// `posguard acquirer`.
#[derive(Debug, Args)]
pub struct AcquirerArgs {
    /// The node's settings (TOML, `docs/configuration.md`); flags override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    demo: DemoDataArgs,
    /// Node number 0–9 (part of every transaction id and RRN; 0 when not given).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    node: Option<u8>,
    /// Terminal listener (127.0.0.1:8583 when not given).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Issuer link address (127.0.0.1:9583 when not given).
    #[arg(long)]
    issuer: Option<SocketAddr>,
    /// Also accept terminals speaking iso87-ascii (bare messages, X9.19 MAC) here.
    #[arg(long)]
    ascii_listen: Option<SocketAddr>,
    /// Also serve the operators' HTTP API, health and metrics here (`docs/api.md`).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Where settlement runs started through the API write their files.
    #[arg(long, default_value = "settlement")]
    settlement_dir: std::path::PathBuf,
    #[command(flatten)]
    pii: crate::api_cli::PiiArgs,
    #[command(flatten)]
    complaints: crate::api_cli::ComplaintArgs,
    /// TLS on the terminal listeners (--listen and --ascii-listen alike).
    #[command(flatten)]
    tls: crate::tls_cli::ListenerTlsArgs,
    /// TLS on the issuer link.
    #[command(flatten)]
    issuer_tls: crate::tls_cli::IssuerLinkTlsArgs,
    /// Issuer timeout in milliseconds (10000 when not given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    issuer_timeout_ms: Option<u64>,
    #[command(flatten)]
    lmk: crate::keys_cli::LmkArgs,
    /// Onboard the demo merchants (application, review, provisioning) into an empty
    /// store and write their terminals' key-injection output to `--terminal-keys`;
    /// without an LMK, run on the public demo keys (logged as such).
    #[arg(long)]
    demo_data: bool,
    /// Where `--demo-data` writes the demo terminals' master keys under the demo KEK,
    /// for `posguard terminals` to load.
    #[arg(long, default_value = TERMINAL_KEYS)]
    terminal_keys: std::path::PathBuf,
    /// Risk rules (TOML), watched and reloaded when they change; the default rule set
    /// when absent.
    #[arg(long)]
    rules: Option<std::path::PathBuf>,
    /// What risk control does when it runs out of time: fail-open, fail-closed or
    /// approve-and-hold (the default).
    #[arg(long)]
    risk_policy: Option<String>,
    /// Share risk counters with other nodes in Redis (`redis://host:6379`).
    #[arg(long)]
    redis_url: Option<String>,
    /// Terminal connections accepted from one address (64 when not given; raise it
    /// behind a NAT or a proxy that hides terminals' addresses).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_ip: Option<u64>,
    /// Sign-ons accepted from one address in a minute, over all its terminals (120
    /// when not given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_sign_ons_per_ip: Option<u64>,
    /// How often (seconds) the node reads the key table for new zone and token key
    /// versions loaded with `posguard keys` while it runs (10 when not given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    key_check_secs: Option<u64>,
}

/// Local time in the acquirer's zone (UTC+8), for the issuer simulator's clock.
#[allow(clippy::disallowed_methods)] // the edge
pub fn shanghai_now() -> NaiveDateTime {
    (chrono::Utc::now() + chrono::Duration::hours(8)).naive_utc()
}

/// Node options with the demo keys (zone keys agreed with the demo issuer).
pub fn node_options(store: String, issuer: SocketAddr, issuer_timeout_ms: u64) -> NodeOptions {
    NodeOptions {
        store,
        keys: NodeKeys::Demo,
        switch: switch::Config {
            issuer_timeout_ms,
            ..switch::Config::default()
        },
        gateway: gateway::GatewayConfig {
            issuer,
            ..gateway::GatewayConfig::default()
        },
        rules: None,
        risk_shadow: false,
        risk_policy: risk::Policy::ApproveAndHold,
        risk_budget_us: 2_000,
        redis_url: None,
        redis_prefix: "posguard".into(),
        clock: Arc::new(gateway::SystemClock),
    }
}

/// Onboards the demo data set's merchants into an empty store — through the
/// application, review and provisioning path every merchant takes — and returns the
/// key-injection output for its terminals; `None` if the store has terminals already.
pub fn onboard_store(
    opts: &NodeOptions,
    data: &DemoData,
) -> anyhow::Result<Option<Vec<crate::node::InjectedKey>>> {
    let mut db = open_store(&opts.store)?;
    let hsm = match &opts.keys {
        // Terminal master keys need only the LMK: made before the key table is filled.
        crate::node::NodeKeys::Configured(lmk, previous) => {
            Arc::new(crate::node::module(lmk, previous.as_deref()))
        }
        crate::node::NodeKeys::Demo => crate::node::security(&opts.keys, db.as_mut())?.hsm,
    };
    Ok(crate::node::onboard_demo(
        db.as_mut(),
        hsm.as_ref(),
        data,
        &now_rfc3339(),
    )?)
}

/// [`onboard_store`], then the data set with its terminals' identities and master
/// keys from the key-injection output (as given if the store was onboarded before).
pub fn seed_store(opts: &NodeOptions, data: &DemoData) -> anyhow::Result<DemoData> {
    Ok(match onboard_store(opts, data)? {
        Some(keys) => crate::node::with_injected(data.clone(), &keys)?,
        None => data.clone(),
    })
}

/// Where the demo terminals' key-injection output is kept by default.
pub const TERMINAL_KEYS: &str = "posguard-terminals.keys";

/// Writes the key-injection output (owner-only: the keys are under the public demo
/// KEK).
pub fn write_injected(
    path: &std::path::Path,
    keys: &[crate::node::InjectedKey],
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut text =
        String::from("# posguard demo terminals: TID MID TMK-under-the-demo-KEK KCV key-profile\n");
    for k in keys {
        text.push_str(&k.line());
        text.push('\n');
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("write {}", path.display()))
}

/// The demo data set with the terminals of a key-injection file.
pub fn injected_data(data: DemoData, path: &std::path::Path) -> anyhow::Result<DemoData> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "read {} (`posguard acquirer --demo-data` writes it when it onboards the demo merchants)",
            path.display()
        )
    })?;
    Ok(crate::node::with_injected(
        data,
        &crate::node::read_injected(&text)?,
    )?)
}

/// Runs `posguard acquirer`.
pub fn acquirer(a: AcquirerArgs) -> anyhow::Result<()> {
    crate::init_logging("info");
    let file = match &a.config {
        Some(p) => crate::config::NodeFile::load(p)?,
        None => crate::config::NodeFile::default(),
    };
    let (opts, listen, ascii_listen) = acquirer_options(&a, &file)?;
    let terminal_tls = a.tls.load()?;
    let mut opts = opts;
    opts.gateway.issuer_tls = a.issuer_tls.load(opts.gateway.issuer)?;
    if a.demo_data {
        if let Some(keys) = onboard_store(&opts, &a.demo.data())? {
            write_injected(&a.terminal_keys, &keys)?;
            tracing::info!(terminals = keys.len(), keys = %a.terminal_keys.display(), "demo merchants onboarded; their terminals' keys written for key injection");
        }
    }
    let http = a.http.or(file.listen.http);
    let pii = a.pii.load()?;
    let complaints = a.complaints.load()?;
    // Provisioning through the node's API generates terminal keys under its LMK.
    let hsm = Some(std::sync::Arc::new(match &opts.keys {
        crate::node::NodeKeys::Configured(lmk, previous) => {
            crate::node::module(lmk, previous.as_deref())
        }
        crate::node::NodeKeys::Demo => {
            crate::node::module(&cardsec::Lmk::from_hex(crate::demo_data::DEMO_LMK)?, None)
        }
    }));
    let money = services::money::MoneyConfig {
        out_dir: a.settlement_dir.clone(),
        ..services::money::MoneyConfig::default()
    };
    let store = opts.store.clone();
    let a = AcquirerListen {
        listen,
        ascii_listen,
    };
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("bind {}", a.listen))?;
        let on = |listener, dialect| gateway::TerminalListener {
            listener,
            dialect,
            tls: terminal_tls.clone(),
        };
        let mut listeners = vec![on(listener, gateway::TerminalDialect::CupPos)];
        if let Some(addr) = a.ascii_listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind {addr}"))?;
            listeners.push(on(l, gateway::TerminalDialect::Iso87Ascii));
        }
        let stats = Arc::new(gateway::GatewayStats::default());
        let api = match http {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind {addr}"))?;
                let store = store.clone();
                let node = crate::api_cli::node_hooks(stats.clone())?;
                Some(tokio::spawn(async move {
                    let shutdown = async {
                        let _ = tokio::signal::ctrl_c().await;
                    };
                    let clock = crate::api_cli::system_clock();
                    let setup = crate::api_cli::ApiSetup {
                        clock,
                        money,
                        node: Some(node),
                        pii,
                        hsm,
                        complaints,
                    };
                    let served = crate::api_cli::serve(&store, l, setup, shutdown);
                    if let Err(e) = served.await {
                        tracing::error!(error = %e, "the operators' API stopped");
                    }
                }))
            }
            None => None,
        };
        let result = run_node(opts, listeners, stats, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        if let Some(api) = api {
            api.abort();
        }
        result.map_err(anyhow::Error::from)
    })
}

struct AcquirerListen {
    listen: SocketAddr,
    ascii_listen: Option<SocketAddr>,
}

/// The node's options from its flags over its configuration file over the defaults;
/// also the terminal listeners' addresses.
pub fn acquirer_options(
    a: &AcquirerArgs,
    file: &crate::config::NodeFile,
) -> anyhow::Result<(NodeOptions, SocketAddr, Option<SocketAddr>)> {
    let sw_defaults = switch::Config::default();
    let gw_defaults = gateway::GatewayConfig::default();
    let store = a
        .store
        .given()
        .or_else(|| file.store.database_url.clone())
        .or_else(|| file.store.data.clone())
        .unwrap_or_else(|| crate::args::DEFAULT_DATA.into());
    let issuer = a.issuer.or(file.issuer.addr).unwrap_or(gw_defaults.issuer);
    let timeout = a
        .issuer_timeout_ms
        .or(file.issuer.timeout_ms)
        .unwrap_or(sw_defaults.issuer_timeout_ms);
    let mut opts = node_options(store, issuer, timeout);
    opts.switch.node = a.node.or(file.node).unwrap_or(sw_defaults.node);
    if let Some(id) = &file.acquirer_id {
        opts.switch.acquirer_id = id.clone();
    }
    if let Some(h) = file.time.utc_offset_hours {
        opts.switch.utc_offset_secs = i32::from(h) * 3600;
    }
    let l = &file.limits;
    if let Some(v) = l.max_amount_minor {
        opts.switch.max_amount_minor = v;
    }
    if let Some(v) = l.max_in_flight {
        opts.switch.max_in_flight = v;
    }
    if let Some(v) = l.max_sign_ons_per_terminal {
        opts.switch.max_sign_ons_per_minute = v;
    }
    if let Some(v) = l.saf_max_attempts {
        opts.switch.saf_max_attempts = v;
    }
    if let Some(v) = l.max_connections {
        opts.gateway.max_connections = v;
    }
    if let Some(v) = file.issuer.connections {
        opts.gateway.issuer_connections = v;
    }
    opts.gateway.max_connections_per_ip = a
        .max_connections_per_ip
        .map(|v| v as usize)
        .or(l.max_connections_per_ip)
        .unwrap_or(gw_defaults.max_connections_per_ip);
    opts.gateway.max_sign_ons_per_ip_per_minute = a
        .max_sign_ons_per_ip
        .map(|v| v as usize)
        .or(l.max_sign_ons_per_ip)
        .unwrap_or(gw_defaults.max_sign_ons_per_ip_per_minute);
    opts.gateway.key_check_secs = a
        .key_check_secs
        .or(file.keys.key_check_secs)
        .unwrap_or(gw_defaults.key_check_secs);
    let lmk = a.lmk.or_file(&file.keys);
    opts.keys = match lmk.load()? {
        Some(k) => NodeKeys::Configured(Arc::new(k), lmk.previous()?.map(Arc::new)),
        None if a.demo_data => NodeKeys::Demo,
        None => return Err(crate::keys_cli::missing_lmk()),
    };
    let policy = a
        .risk_policy
        .clone()
        .or_else(|| file.risk.policy.clone())
        .unwrap_or_else(|| "approve-and-hold".into());
    opts.risk_policy = risk::Policy::parse(&policy).ok_or_else(|| {
        crate::BadInput("--risk-policy is fail-open, fail-closed or approve-and-hold".into())
    })?;
    let rules = a.rules.clone().or_else(|| file.risk.rules.clone());
    opts.rules = rules.clone();
    opts.gateway.rules_path = rules;
    opts.redis_url = a.redis_url.clone().or_else(|| file.redis.url.clone());
    if let Some(p) = &file.redis.prefix {
        opts.redis_prefix = p.clone();
    }
    let listen = a
        .listen
        .or(file.listen.terminals)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8583)));
    let ascii = a.ascii_listen.or(file.listen.ascii);
    Ok((opts, listen, ascii))
}

/// `posguard issuer-sim`.
#[derive(Debug, Args)]
pub struct IssuerArgs {
    #[command(flatten)]
    demo: DemoDataArgs,
    /// Host-to-host link listener.
    #[arg(long, default_value = "127.0.0.1:9583")]
    listen: SocketAddr,
    /// HTTP API listener.
    #[arg(long, default_value = "127.0.0.1:9080")]
    http: SocketAddr,
    /// Do not open the demo cardholder accounts.
    #[arg(long)]
    no_demo_accounts: bool,
    /// Seed of fault decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Response latency, lowest (ms).
    #[arg(long, default_value_t = 0)]
    latency_min_ms: u64,
    /// Response latency, highest (ms).
    #[arg(long, default_value_t = 0)]
    latency_max_ms: u64,
    /// Per mille of debits whose response is dropped.
    #[arg(long, default_value_t = 0)]
    drop_after_debit_permille: u16,
    /// Per mille of responses sent late.
    #[arg(long, default_value_t = 0)]
    late_permille: u16,
    /// How late a late response is (ms).
    #[arg(long, default_value_t = 15_000)]
    late_ms: u64,
    /// Per mille of responses sent twice.
    #[arg(long, default_value_t = 0)]
    duplicate_permille: u16,
    /// Refuse every connection.
    #[arg(long)]
    refuse_connections: bool,
    /// Bearer token the HTTP API requires on every request (16 to 256 letters,
    /// digits or -._~+/=); without it anyone who can reach the API may use it.
    #[arg(long)]
    api_token: Option<String>,
    /// TLS on the host-to-host link (the HTTP API stays plain).
    #[command(flatten)]
    tls: crate::tls_cli::ListenerTlsArgs,
}

/// Opens the demo cardholders' accounts at the issuer.
pub fn open_demo_accounts(
    bank: &mut Bank,
    data: &DemoData,
    now: NaiveDateTime,
) -> anyhow::Result<()> {
    sim::demo_data::open_accounts(bank, data, now)
        .map_err(|e| anyhow::anyhow!("open demo accounts: {e}"))
}

/// Runs `posguard issuer-sim`.
pub fn issuer_sim(a: IssuerArgs) -> anyhow::Result<()> {
    crate::init_logging("info");
    let faults = Faults {
        latency_min_ms: a.latency_min_ms,
        latency_max_ms: a.latency_max_ms.max(a.latency_min_ms),
        drop_after_debit_permille: a.drop_after_debit_permille,
        late_permille: a.late_permille,
        late_ms: a.late_ms,
        duplicate_permille: a.duplicate_permille,
        refuse_connections: a.refuse_connections,
        ..Faults::default()
    };
    let config = IssuerConfig {
        listen_addr: a.listen,
        http_addr: a.http,
        faults,
        seed: a.seed,
        api_token: a.api_token,
        tls: a.tls.files()?,
        ..IssuerConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    rt.block_on(async {
        let mut bank = Bank::from_clear_keys(&config.keys).context("issuer keys")?.with_faults(config.faults.clone(), config.seed);
        if !a.no_demo_accounts {
            open_demo_accounts(&mut bank, &a.demo.data(), shanghai_now())?;
        }
        let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now)).await.context("start issuer")?;
        tracing::info!(link = %issuer.iso_addr(), http = %issuer.http_addr(), "issuer simulator running");
        let _ = tokio::signal::ctrl_c().await;
        issuer.stop().await;
        Ok(())
    })
}

/// `posguard terminals`.
#[derive(Debug, Args)]
pub struct TerminalsArgs {
    #[command(flatten)]
    demo: DemoDataArgs,
    /// The acquirer's terminal port.
    #[arg(long, default_value = "127.0.0.1:8583")]
    acquirer: SocketAddr,
    /// TLS to the acquirer.
    #[command(flatten)]
    tls: crate::tls_cli::TerminalTlsArgs,
    /// Financial requests per second for the whole fleet (0: as fast as possible).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Stop after this many requests.
    #[arg(long)]
    transactions: Option<u64>,
    /// Seed of the customers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The demo terminals' key-injection output `posguard acquirer --demo-data`
    /// wrote: their ids and master keys.
    #[arg(long, default_value = TERMINAL_KEYS)]
    terminal_keys: std::path::PathBuf,
    /// Only sales with good cards.
    #[arg(long)]
    sales_only: bool,
    /// Where each terminal's next STAN and batch are kept between runs (a POS keeps
    /// them across power-offs): read at start if present, written at the end.
    #[arg(long, default_value = "posguard-terminals.state")]
    state: std::path::PathBuf,
    /// Print the demo terminals' identities and clear master keys (TID, MID, TMK, its
    /// check value, key profile) from `--terminal-keys` and exit: what a terminal
    /// written elsewhere needs to talk to a demo acquirer (they are under the public
    /// demo KEK: demo keys only).
    #[arg(long)]
    print_keys: bool,
}

/// Reads the terminals' counters (`TID next-STAN batch` per line); none if absent.
pub fn read_terminal_state(
    path: &std::path::Path,
) -> anyhow::Result<std::collections::HashMap<String, terminal::Resume>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = || {
                crate::BadInput(format!(
                    "{} line {}: TID next-STAN batch",
                    path.display(),
                    i + 1
                ))
            };
            let mut w = line.split_whitespace();
            let (Some(tid), Some(stan), Some(batch), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                return Err(bad().into());
            };
            let resume = terminal::Resume {
                next_stan: stan.parse().map_err(|_| bad())?,
                batch: batch.parse().map_err(|_| bad())?,
            };
            Ok((tid.to_owned(), resume))
        })
        .collect()
}

/// Writes the terminals' counters after a run.
pub fn write_terminal_state(
    path: &std::path::Path,
    report: &terminal::FleetReport,
) -> anyhow::Result<()> {
    let text: String = report
        .terminals
        .iter()
        .filter_map(|t| {
            t.resume
                .map(|r| format!("{} {} {}\n", t.terminal_id, r.next_stan, r.batch))
        })
        .collect();
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// The fleet configuration for a demo data set.
pub fn fleet_config(
    data: &DemoData,
    acquirer: SocketAddr,
    rate: f64,
    duration: Duration,
    seed: u64,
) -> FleetConfig {
    let last = data.terminals.len().saturating_sub(1);
    let terminals = data
        .terminals
        .iter()
        .enumerate()
        .map(|(i, t)| TerminalSetup {
            terminal_id: t.terminal_id.clone(),
            merchant_id: t.merchant_id.clone(),
            tmk_hex: t.tmk_hex.clone(),
            key_layout: t.key_layout,
            // Every terminal reports where it is; the last one, once installed (its
            // first approved sale), is carried off to another city (a relocated
            // terminal: a fraud signal).
            location: Some(t.location.clone()),
            moves_to: (i == last && i > 0).then(|| "34.2600,108.9400".to_owned()),
        })
        .collect();
    let card = |c: &crate::demo_data::DemoCard, i: usize| {
        let chip = c.service_code.starts_with(['2', '6']);
        let entry = match (chip, i % 20) {
            // Stripe-only cards are swiped; chip cards go through the chip, except one in
            // twenty read from the stripe anyway (fallback: a fraud signal).
            (false, _) => EntryKind::Magstripe,
            (true, 0) => EntryKind::Fallback,
            (true, 1..=12) => EntryKind::Chip,
            (true, _) => EntryKind::Contactless,
        };
        let mut card = Card::new(&c.pan, Some(&c.pin), &c.expiry, entry);
        card.service_code = c.service_code.clone();
        card
    };
    let cards = data
        .cards
        .iter()
        .enumerate()
        .filter(|(_, c)| c.fate == CardFate::Good)
        .map(|(i, c)| card(c, i))
        .collect();
    let decline = data
        .cards
        .iter()
        .enumerate()
        .filter(|(_, c)| c.fate != CardFate::Good)
        .map(|(i, c)| card(c, i))
        .collect();
    let mut cfg = FleetConfig::new(acquirer, terminals, cards);
    cfg.decline_cards = decline;
    cfg.rate_per_sec = rate;
    cfg.duration = duration;
    cfg.seed = seed;
    cfg
}

/// Runs `posguard terminals`.
pub fn terminals(a: TerminalsArgs) -> anyhow::Result<()> {
    crate::init_logging("warn");
    let tls = (!a.print_keys)
        .then(|| a.tls.load(a.acquirer))
        .transpose()?
        .flatten();
    let data = injected_data(a.demo.data(), &a.terminal_keys)?;
    if a.print_keys {
        println!("# demo terminals (public demo keys: never use them with real cards)");
        println!("# terminal_id merchant_id tmk kcv key_profile");
        for t in &data.terminals {
            let kcv = cardsec::Key::from_hex(&t.tmk_hex)
                .map(|k| hex::encode_upper(cardsec::check_value(&k, 3)))
                .context("demo TMK")?;
            println!(
                "{} {} {} {kcv} {}",
                t.terminal_id,
                t.merchant_id,
                t.tmk_hex,
                t.key_layout.net_code()
            );
        }
        return Ok(());
    }
    let mut cfg = fleet_config(
        &data,
        a.acquirer,
        a.rate,
        Duration::from_secs(a.duration),
        a.seed,
    );
    cfg.max_transactions = a.transactions;
    cfg.tls = tls;
    cfg.progress = true;
    cfg.resume = read_terminal_state(&a.state)?;
    if a.sales_only {
        cfg.mix = Mix::sales_only();
    }
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    let report = rt.block_on(terminal::run_fleet(cfg));
    write_terminal_state(&a.state, &report)?;
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::NodeFile;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        a: AcquirerArgs,
    }

    fn options(args: &[&str], file: &str) -> (NodeOptions, SocketAddr, Option<SocketAddr>) {
        let cli = Cli::try_parse_from(std::iter::once("acquirer").chain(args.iter().copied()))
            .expect("flags");
        let file = NodeFile::parse(file).expect("file");
        acquirer_options(&cli.a, &file).expect("options")
    }

    /// Flags override the file, the file overrides the defaults, key by key.
    #[test]
    fn flags_override_the_file_and_the_file_the_defaults() {
        let file = "node = 3\nacquirer_id = \"12345678\"\n[store]\ndata = \"/srv/pg\"\n\
                    [listen]\nterminals = \"0.0.0.0:9000\"\n[issuer]\naddr = \"10.0.0.2:7000\"\n\
                    timeout_ms = 4000\nconnections = 2\n[time]\nutc_offset_hours = 9\n\
                    [limits]\nmax_connections_per_ip = 7\nmax_amount_minor = 500\n\
                    [keys]\nkey_check_secs = 30\n[risk]\npolicy = \"fail-closed\"";
        let (o, listen, ascii) = options(&["--demo-data"], file);
        assert_eq!(o.switch.node, 3);
        assert_eq!(o.switch.acquirer_id, "12345678");
        assert_eq!(o.store, "/srv/pg");
        assert_eq!(listen, "0.0.0.0:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(ascii, None);
        assert_eq!(
            o.gateway.issuer,
            "10.0.0.2:7000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(o.switch.issuer_timeout_ms, 4000);
        assert_eq!(o.gateway.issuer_connections, 2);
        assert_eq!(o.switch.utc_offset_secs, 9 * 3600);
        assert_eq!(o.gateway.max_connections_per_ip, 7);
        assert_eq!(o.switch.max_amount_minor, 500);
        assert_eq!(o.gateway.key_check_secs, 30);
        assert_eq!(o.risk_policy, risk::Policy::FailClosed);

        let (o, listen, _) = options(
            &[
                "--demo-data",
                "--node",
                "5",
                "--database-url",
                "postgres://x@y/z",
                "--listen",
                "127.0.0.1:7001",
                "--issuer-timeout-ms",
                "2000",
                "--max-connections-per-ip",
                "9",
                "--risk-policy",
                "fail-open",
            ],
            file,
        );
        assert_eq!(o.switch.node, 5);
        assert_eq!(o.store, "postgres://x@y/z");
        assert_eq!(listen, "127.0.0.1:7001".parse::<SocketAddr>().unwrap());
        assert_eq!(o.switch.issuer_timeout_ms, 2000);
        assert_eq!(o.gateway.max_connections_per_ip, 9);
        assert_eq!(o.risk_policy, risk::Policy::FailOpen);
        // Keys the flags did not name still come from the file.
        assert_eq!(
            o.gateway.issuer,
            "10.0.0.2:7000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(o.switch.acquirer_id, "12345678");

        let (o, listen, _) = options(&["--demo-data"], "");
        assert_eq!(o.switch.node, 0);
        assert_eq!(o.store, crate::args::DEFAULT_DATA);
        assert_eq!(listen, "127.0.0.1:8583".parse::<SocketAddr>().unwrap());
        assert_eq!(
            o.gateway.issuer,
            "127.0.0.1:9583".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(o.switch.issuer_timeout_ms, 10_000);
        assert_eq!(o.gateway.max_connections_per_ip, 64);
        assert_eq!(o.risk_policy, risk::Policy::ApproveAndHold);
        assert!(matches!(o.keys, NodeKeys::Demo));
    }

    /// Without `--demo-data` a node needs an LMK: from the file here.
    #[test]
    fn the_lmk_comes_from_the_file_and_nothing_runs_on_demo_keys_without_demo_data() {
        let cli = Cli::try_parse_from(["acquirer"]).expect("flags");
        let err = acquirer_options(&cli.a, &NodeFile::default()).expect_err("no LMK");
        assert!(err.to_string().contains("LMK"), "{err}");

        let dir = std::env::temp_dir().join(format!("posguard-cfg-lmk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let lmk = dir.join("lmk");
        std::fs::write(&lmk, b"0123456789ABCDEFFEDCBA9876543210\n").expect("write");
        let file = NodeFile::parse(&format!(
            "[keys]\nlmk_file = {:?}",
            lmk.display().to_string()
        ))
        .expect("file");
        let (o, _, _) = acquirer_options(&cli.a, &file).expect("options");
        assert!(matches!(o.keys, NodeKeys::Configured(..)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
