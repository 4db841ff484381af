//! posguard's issuer simulator.
//!
//! A card issuer for tests and the demo: cardholder accounts with balances, credit
//! lines, daily limits and PIN tries; authorization over the `iso87-ascii`
//! host-to-host link exactly as `docs/protocol.md` says; a double-entry book; an SMS
//! outbox; a daily clearing file; and configurable faults. [`Bank`] is the sans-IO
//! core; [`server`] puts it on TCP, [`http`] shows it over HTTP, and [`Issuer`] starts
//! both from an [`IssuerConfig`].

pub mod bank;
mod error;
pub mod faults;
pub mod http;
pub mod linkmac;
pub mod server;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use bank::{
    AccountId, AccountView, Bank, BankKeys, BankLimits, Book, BookAccount, BookTotals, CardStatus,
    ClearKeys, ClearingRecord, ClearingType, Language, NewAccount, Sms, SmsKind, CLEARING_HEADER,
    MAX_ACCOUNT_MINOR,
};
pub use error::IssuerError;
pub use faults::Faults;
pub use server::{local_clock, Clock, ServerConfig};

/// Everything `posguard issuer-sim` configures. Keys are redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// Where the `iso87-ascii` link listens (default `127.0.0.1:9583`).
    pub listen_addr: SocketAddr,
    /// Where the HTTP API listens (default `127.0.0.1:9080`).
    pub http_addr: SocketAddr,
    /// LMK, ZPK, ZAK and token key in clear hex (default: the demo keys).
    pub keys: ClearKeys,
    /// Faults to inject (default: none).
    pub faults: Faults,
    /// Seed of every fault decision.
    pub seed: u64,
    /// Link connections served at once.
    pub max_connections: usize,
    /// Delayed replies pending per connection.
    pub max_in_flight: usize,
    /// Reversals remembered for originals not yet seen.
    pub max_early_reversals: usize,
    /// The bearer token the HTTP API requires on every request (16 to 256 letters,
    /// digits or `-._~+/=`); `None`, the default, leaves the API open.
    pub api_token: Option<String>,
    /// TLS on the link: the certificate and key files, and the client CA when the
    /// acquirer must present a certificate (mutual TLS); `None`, the default, is plain
    /// TCP. The HTTP API stays plain HTTP either way.
    pub tls: Option<tls::ServerFiles>,
}

impl Default for IssuerConfig {
    fn default() -> IssuerConfig {
        let server = ServerConfig::default();
        IssuerConfig {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 9583)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9080)),
            keys: ClearKeys::demo(),
            faults: Faults::default(),
            seed: 0,
            max_connections: server.max_connections,
            max_in_flight: server.max_in_flight,
            max_early_reversals: BankLimits::default().max_early_reversals,
            api_token: None,
            tls: None,
        }
    }
}

impl fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("listen_addr", &self.listen_addr)
            .field("http_addr", &self.http_addr)
            .field("keys", &self.keys)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_early_reversals", &self.max_early_reversals)
            .field("api_token", &self.api_token.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl IssuerConfig {
    /// The bank this configuration describes: keys, bank faults and limits.
    pub fn build_bank(&self) -> Result<Bank, IssuerError> {
        Ok(Bank::from_clear_keys(&self.keys)?
            .with_faults(self.faults.clone(), self.seed)
            .with_limits(BankLimits {
                max_early_reversals: self.max_early_reversals,
            }))
    }
}

/// A running simulator: the link server and the HTTP API.
pub struct Issuer {
    iso_addr: SocketAddr,
    http_addr: SocketAddr,
    bank: Arc<Mutex<Bank>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iso_addr", &self.iso_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Builds the bank from `config` and starts both servers on the machine's clock.
    pub async fn start(config: IssuerConfig) -> Result<Issuer, IssuerError> {
        let bank = config.build_bank()?;
        Issuer::start_with(config, bank, local_clock()).await
    }

    /// Starts both servers around an existing bank and clock (tests, simulations).
    pub async fn start_with(
        config: IssuerConfig,
        bank: Bank,
        clock: Clock,
    ) -> Result<Issuer, IssuerError> {
        let api_token = config
            .api_token
            .as_deref()
            .map(http::ApiToken::new)
            .transpose()?;
        let tls = config
            .tls
            .as_ref()
            .map(tls::ServerTls::from_files)
            .transpose()?;
        let io = |what| move |source| IssuerError::Io { what, source };
        let iso = TcpListener::bind(config.listen_addr)
            .await
            .map_err(io("bind the issuer link"))?;
        let web = TcpListener::bind(config.http_addr)
            .await
            .map_err(io("bind the issuer HTTP API"))?;
        let iso_addr = iso.local_addr().map_err(io("read the link address"))?;
        let http_addr = web.local_addr().map_err(io("read the HTTP address"))?;
        let bank = Arc::new(Mutex::new(bank));
        let (stop, stop_rx) = watch::channel(false);
        let until_stop = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|&s| s).await;
        };
        let server_config = ServerConfig {
            faults: config.faults.clone(),
            seed: config.seed.rotate_left(17) ^ 0x5EED,
            max_connections: config.max_connections,
            max_in_flight: config.max_in_flight,
            clock: clock.clone(),
            tls,
            ..ServerConfig::default()
        };
        let link = tokio::spawn(server::serve(
            iso,
            bank.clone(),
            server_config,
            until_stop(stop_rx.clone()),
        ));
        if api_token.is_none() {
            tracing::warn!(%http_addr, "issuer HTTP API has no token: anyone who can reach it can open accounts and change card statuses (set --api-token)");
        }
        let state = http::HttpState {
            bank: bank.clone(),
            clock,
            api_token,
        };
        let api = tokio::spawn(async move {
            if let Err(e) = http::serve_http(web, state, until_stop(stop_rx)).await {
                tracing::error!(error = %e, "issuer HTTP API stopped");
            }
        });
        tracing::info!(%iso_addr, link_tls = config.tls.is_some(), %http_addr, "issuer simulator listening");
        Ok(Issuer {
            iso_addr,
            http_addr,
            bank,
            stop,
            tasks: vec![link, api],
        })
    }

    /// The address the link listens on.
    pub fn iso_addr(&self) -> SocketAddr {
        self.iso_addr
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bank, shared with the servers.
    pub fn bank(&self) -> Arc<Mutex<Bank>> {
        self.bank.clone()
    }

    /// Stops both servers and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "issuer task failed");
            }
        }
    }
}

/// Runs the simulator until `shutdown` completes: the whole of `posguard issuer-sim`.
pub async fn run(
    config: IssuerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IssuerError> {
    let issuer = Issuer::start(config).await?;
    shutdown.await;
    issuer.stop().await;
    Ok(())
}
