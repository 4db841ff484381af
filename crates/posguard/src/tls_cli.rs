//! The TLS flags of `posguard acquirer`, `posguard issuer-sim` and `posguard
//! terminals`, and the configurations they make. Every file is read when the command
//! starts: a missing or unusable one stops it with exit code 2 and an error naming the
//! file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tls::{ClientFiles, ClientTls, ServerFiles, ServerTls, TlsError};

use crate::BadInput;

/// A listener's TLS: `--tls-cert`, `--tls-key`, `--tls-client-ca`.
#[derive(Debug, Clone, Default, Args)]
pub struct ListenerTlsArgs {
    /// TLS certificate chain (PEM, leaf first): with --tls-key, the listener takes TLS
    /// connections only (the acquirer: every terminal listener).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM): clients must present a certificate issued by one (mutual
    /// TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ListenerTlsArgs {
    fn named(&self) -> Option<ServerFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(ServerFiles {
            cert,
            key,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The listener's TLS; `None` without `--tls-cert`.
    pub fn load(&self) -> anyhow::Result<Option<ServerTls>> {
        self.named()
            .map(|f| ServerTls::from_files(&f).map_err(bad))
            .transpose()
    }

    /// The files named, for a server that reads them itself, checked now; `None`
    /// without `--tls-cert`.
    pub fn files(&self) -> anyhow::Result<Option<ServerFiles>> {
        self.load()?;
        Ok(self.named())
    }
}

/// The acquirer's TLS to the issuer: `--issuer-tls-ca`, `--issuer-tls-name`,
/// `--issuer-tls-cert`, `--issuer-tls-key`.
#[derive(Debug, Clone, Default, Args)]
pub struct IssuerLinkTlsArgs {
    /// CA certificates (PEM) to trust for the issuer's certificate: the link runs over
    /// TLS.
    #[arg(long, value_name = "FILE")]
    pub issuer_tls_ca: Option<PathBuf>,
    /// The name the issuer's certificate must carry (default: the --issuer address).
    #[arg(long, value_name = "NAME", requires = "issuer_tls_ca")]
    pub issuer_tls_name: Option<String>,
    /// The acquirer's certificate chain for the issuer (PEM; mutual TLS), with
    /// --issuer-tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["issuer_tls_ca", "issuer_tls_key"]
    )]
    pub issuer_tls_cert: Option<PathBuf>,
    /// The private key of --issuer-tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "issuer_tls_cert")]
    pub issuer_tls_key: Option<PathBuf>,
}

impl IssuerLinkTlsArgs {
    /// The link's TLS to the issuer at `issuer`; `None` without `--issuer-tls-ca`.
    pub fn load(&self, issuer: SocketAddr) -> anyhow::Result<Option<ClientTls>> {
        let Some(ca) = &self.issuer_tls_ca else {
            return Ok(None);
        };
        let files = ClientFiles {
            ca: ca.clone(),
            server_name: server_name(self.issuer_tls_name.as_deref(), issuer),
            cert: self.issuer_tls_cert.clone(),
            key: self.issuer_tls_key.clone(),
        };
        ClientTls::from_files(&files).map(Some).map_err(bad)
    }
}

/// A terminal's TLS to the acquirer: `--tls-ca`, `--tls-name`.
#[derive(Debug, Clone, Default, Args)]
pub struct TerminalTlsArgs {
    /// CA certificates (PEM) to trust for the acquirer's certificate: terminals connect
    /// over TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The name the acquirer's certificate must carry (default: the --acquirer
    /// address).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_name: Option<String>,
}

impl TerminalTlsArgs {
    /// The terminals' TLS to the acquirer at `acquirer`; `None` without `--tls-ca`.
    pub fn load(&self, acquirer: SocketAddr) -> anyhow::Result<Option<ClientTls>> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let files = ClientFiles {
            ca: ca.clone(),
            server_name: server_name(self.tls_name.as_deref(), acquirer),
            cert: None,
            key: None,
        };
        ClientTls::from_files(&files).map(Some).map_err(bad)
    }
}

/// The name given, or the address's IP (its certificate must then carry that IP).
fn server_name(name: Option<&str>, addr: SocketAddr) -> String {
    name.map_or_else(|| addr.ip().to_string(), str::to_owned)
}

fn bad(e: TlsError) -> anyhow::Error {
    BadInput(e.to_string()).into()
}
