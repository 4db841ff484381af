//! Data in transit: TLS for posguard's connections, on rustls with the `ring` provider.
//!
//! [`ServerTls`] is what a listener needs (its certificate chain and key, and, for
//! mutual TLS, the CA whose client certificates it accepts); [`ClientTls`] is what a
//! connecting side needs (the CA it trusts, the name it expects the server to prove,
//! and optionally its own certificate and key). Both are read from PEM files named in
//! [`ServerFiles`] and [`ClientFiles`], once, at start: a missing or unreadable file, a
//! file without the expected PEM item, or a key that does not fit its certificate is a
//! [`TlsError`] naming the file. The handshakes themselves ([`ServerTls::accept`],
//! [`ClientTls::connect`]) are not bounded here: each caller bounds them by its own
//! deadline.
//!
//! No cryptography is implemented here: rustls does the protocol, `ring` the
//! primitives, webpki the certificate checks.

#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use zeroize::Zeroizing;

/// A server's end of a TLS connection over `IO`.
pub type ServerStream<IO> = tokio_rustls::server::TlsStream<IO>;
/// A client's end of a TLS connection over `IO`.
pub type ClientStream<IO> = tokio_rustls::client::TlsStream<IO>;

/// Why a TLS configuration could not be built. Every variant about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("read {what} {}: {source}", path.display())]
    Read {
        /// Which file it is (`TLS certificate chain`, `TLS private key`, …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// A file was read but does not hold what it should (no PEM item of the expected
    /// kind, or broken PEM).
    #[error("{what} {}: {detail}", path.display())]
    Content {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// rustls refused a certificate or key read from a file (a key that does not fit
    /// its certificate, a CA certificate it cannot use).
    #[error("{what} {}: {source}", path.display())]
    Refused {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The name a client expects the server to prove is neither a DNS name nor an IP
    /// address.
    #[error("TLS server name {0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
    /// A client certificate was given without its key, or a key without its
    /// certificate.
    #[error(
        "a TLS client certificate needs its key and the key its certificate: give both or neither"
    )]
    HalfIdentity,
    /// rustls refused the configuration as a whole.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS #8, PKCS #1 or SEC1).
    pub key: PathBuf,
    /// When set, every client must present a certificate issued by one of the CA
    /// certificates in this PEM file (mutual TLS); otherwise clients are not asked for
    /// one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The files and the expected name of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFiles {
    /// The CA certificates to trust, PEM; the server's chain must lead to one of them.
    pub ca: PathBuf,
    /// The name the server's certificate must carry: a DNS name, or an IP address.
    pub server_name: String,
    /// The client's own certificate chain, PEM (mutual TLS); with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client's private key, PEM; with `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// A listener's TLS: accepts handshakes with its certificate, and checks client
/// certificates when it requires them. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    mutual: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("requires_client_cert", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the certificate chain, the key and the client CA (if any).
    pub fn from_files(files: &ServerFiles) -> Result<ServerTls, TlsError> {
        let chain = read_certs(&files.cert, "TLS certificate chain")?;
        let key = read_key(&files.key, "TLS private key")?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let what = "TLS client CA";
                let roots = read_roots(ca, what)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Content {
                            what,
                            path: ca.clone(),
                            detail: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|source| TlsError::Refused {
                what: "TLS private key (for its certificate chain)",
                path: files.key.clone(),
                source,
            })?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mutual: files.client_ca.is_some(),
        })
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.mutual
    }

    /// The server's side of the handshake over `io`; unbounded: bound it with a
    /// timeout. A failed handshake hands `io` back with the error, so the caller
    /// decides when the connection closes (after its own bookkeeping).
    pub async fn accept<IO>(&self, io: IO) -> Result<ServerStream<IO>, (io::Error, IO)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.acceptor.accept(io).into_fallible().await
    }
}

/// A client's TLS: the CA it trusts, the name it checks, its certificate if it has
/// one. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    mutual: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("client_cert", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads the trusted CA, and the client's certificate and key if given.
    pub fn from_files(files: &ClientFiles) -> Result<ClientTls, TlsError> {
        let server_name = ServerName::try_from(files.server_name.clone())
            .map_err(|_| TlsError::ServerName(files.server_name.clone()))?;
        let roots = read_roots(&files.ca, "TLS CA")?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots);
        let config = match (&files.cert, &files.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key_path)) => {
                let chain = read_certs(cert, "TLS client certificate")?;
                let key = read_key(key_path, "TLS client key")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::Refused {
                        what: "TLS client key (for its certificate)",
                        path: key_path.clone(),
                        source,
                    })?
            }
            _ => return Err(TlsError::HalfIdentity),
        };
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            mutual: files.cert.is_some(),
        })
    }

    /// The name the server must prove.
    pub fn server_name(&self) -> String {
        self.server_name.to_str().into_owned()
    }

    /// The client's side of the handshake over `io`; unbounded: bound it with a
    /// timeout. A server that cannot prove the name, or whose chain does not lead to
    /// the trusted CA, fails it.
    pub async fn connect<IO>(&self, io: IO) -> io::Result<ClientStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.connector.connect(self.server_name.clone(), io).await
    }
}

/// The one crypto provider: ring.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A file's bytes, wiped from memory when dropped (it may hold a private key).
fn read(path: &Path, what: &'static str) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
}

fn content(path: &Path, what: &'static str, detail: impl fmt::Display) -> TlsError {
    TlsError::Content {
        what,
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, what, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content(path, what, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn read_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => content(
            path,
            what,
            "no PRIVATE KEY (PKCS #8), RSA PRIVATE KEY or EC PRIVATE KEY in the file",
        ),
        e => content(path, what, format!("bad PEM: {e}")),
    })
}

/// A trust store of every certificate of a PEM file.
fn read_roots(path: &Path, what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, what)? {
        roots.add(cert).map_err(|source| TlsError::Refused {
            what,
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::TestPki;

    fn pki(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("posguard-tls-{name}-{}", std::process::id()));
        TestPki::generate(&dir)
    }

    /// The error's message, which must name `file`.
    fn error_naming(e: TlsError, file: &Path) -> String {
        let msg = e.to_string();
        assert!(
            msg.contains(&file.display().to_string()),
            "{msg:?} does not name {}",
            file.display()
        );
        msg
    }

    #[test]
    fn test_pki_files_make_both_ends() {
        let p = pki("good");
        let server = ServerTls::from_files(&p.server_files(true)).expect("server");
        assert!(server.requires_client_cert());
        assert!(!ServerTls::from_files(&p.server_files(false))
            .expect("server")
            .requires_client_cert());
        let client = ClientTls::from_files(&p.client_files("localhost", true)).expect("client");
        assert_eq!(client.server_name(), "localhost");
        ClientTls::from_files(&p.client_files("127.0.0.1", false)).expect("by address");
        p.remove();
    }

    /// Runs both sides of a handshake over an in-memory pipe: the client's result and
    /// the server's.
    async fn handshake(
        server: &ServerFiles,
        client: &ClientFiles,
    ) -> (io::Result<()>, io::Result<()>) {
        let server = ServerTls::from_files(server).expect("server");
        let client = ClientTls::from_files(client).expect("client");
        let (a, b) = tokio::io::duplex(64 * 1024);
        // Each end stays open until both are done: the server writes its session
        // tickets after the client has finished.
        let both = async { tokio::join!(client.connect(a), server.accept(b)) };
        let (c, s) = tokio::time::timeout(std::time::Duration::from_secs(30), both)
            .await
            .expect("handshake within 30 s");
        (c.map(drop), s.map(drop).map_err(|(e, _)| e))
    }

    #[tokio::test]
    async fn handshakes_check_both_certificates() {
        let p = pki("handshakes");
        let ok = |(c, s): (io::Result<()>, io::Result<()>)| c.is_ok() && s.is_ok();
        assert!(ok(handshake(
            &p.server_files(false),
            &p.client_files("localhost", false)
        )
        .await));
        assert!(ok(handshake(
            &p.server_files(false),
            &p.client_files("127.0.0.1", false)
        )
        .await));
        assert!(ok(handshake(
            &p.server_files(true),
            &p.client_files("localhost", true)
        )
        .await));
        // The client does not trust the server's CA, or the server proves another name.
        let mut untrusting = p.client_files("localhost", false);
        untrusting.ca = p.other_ca.clone();
        let (client, _) = handshake(&p.server_files(false), &untrusting).await;
        let e = client.expect_err("untrusted server refused");
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        let (client, _) = handshake(
            &p.server_files(false),
            &p.client_files("posguard.example", false),
        )
        .await;
        let e = client.expect_err("wrong name refused");
        assert!(e.to_string().contains("not valid for name"), "{e}");
        // Mutual TLS: no client certificate, or one from another CA.
        let (_, server) =
            handshake(&p.server_files(true), &p.client_files("localhost", false)).await;
        let e = server.expect_err("client without a certificate refused");
        assert!(e.to_string().contains("no certificates"), "{e}");
        let mut rogue = p.client_files("localhost", true);
        (rogue.cert, rogue.key) = (Some(p.rogue_cert.clone()), Some(p.rogue_key.clone()));
        let (_, server) = handshake(&p.server_files(true), &rogue).await;
        let e = server.expect_err("client of another CA refused");
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        p.remove();
    }

    #[test]
    fn bad_files_are_errors_that_name_the_file() {
        let p = pki("bad");
        let missing = p.dir.join("missing.pem");
        let garbage = p.dir.join("garbage.pem");
        std::fs::write(&garbage, "not a PEM file\n").expect("write");
        let with = |f: &dyn Fn(&mut ServerFiles)| {
            let mut files = p.server_files(false);
            f(&mut files);
            ServerTls::from_files(&files).expect_err("refused")
        };
        let e = with(&|f| f.cert = missing.clone());
        assert!(error_naming(e, &missing).starts_with("read TLS certificate chain"));
        let e = with(&|f| f.key = garbage.clone());
        assert!(error_naming(e, &garbage).contains("no PRIVATE KEY"));
        // A certificate file given as the key, and a key given as the certificate.
        let e = with(&|f| f.key = p.server_cert.clone());
        assert!(error_naming(e, &p.server_cert).contains("no PRIVATE KEY"));
        let e = with(&|f| f.cert = p.server_key.clone());
        assert!(error_naming(e, &p.server_key).contains("no CERTIFICATE"));
        // Another certificate's key.
        let e = with(&|f| f.key = p.client_key.clone());
        error_naming(e, &p.client_key);
        let e = with(&|f| f.client_ca = Some(missing.clone()));
        assert!(error_naming(e, &missing).starts_with("read TLS client CA"));

        let mut files = p.client_files("localhost", false);
        files.ca = garbage.clone();
        let e = ClientTls::from_files(&files).expect_err("refused");
        assert!(error_naming(e, &garbage).contains("no CERTIFICATE"));
        let mut files = p.client_files("localhost", true);
        files.key = None;
        assert!(matches!(
            ClientTls::from_files(&files),
            Err(TlsError::HalfIdentity)
        ));
        let files = p.client_files("not a name!", false);
        assert!(matches!(
            ClientTls::from_files(&files),
            Err(TlsError::ServerName(_))
        ));
        p.remove();
    }
}
