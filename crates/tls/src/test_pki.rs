//! A throwaway public-key infrastructure for loopback tests, generated at test time
//! (rcgen): a CA, a server certificate for `localhost` and `127.0.0.1`, a client
//! certificate, and a second, untrusted CA with a client certificate of its own. Only
//! with the `test-pki` feature, which only dev-dependencies turn on.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{ClientFiles, ServerFiles};

/// The PEM files of a test PKI, in one directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The directory holding every file.
    pub dir: PathBuf,
    /// The CA certificate that issued the server and client certificates.
    pub ca: PathBuf,
    /// The server's certificate (`localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate issued by [`TestPki::ca`].
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// Another CA, which nothing here trusts.
    pub other_ca: PathBuf,
    /// A client certificate issued by [`TestPki::other_ca`].
    pub rogue_cert: PathBuf,
    /// Its key.
    pub rogue_key: PathBuf,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = named(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("self-sign CA");
    Ca { cert, key }
}

fn named(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A leaf certificate issued by `ca`, and its key.
fn leaf(
    ca: &Ca,
    name: &str,
    alt_names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let alt: Vec<String> = alt_names.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(alt).expect("leaf params");
    params.distinguished_name = named(name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Generates every certificate and key and writes them into `dir` (created, and
    /// emptied first).
    pub fn generate(dir: &Path) -> TestPki {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("create the test PKI directory");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write a test PKI file");
            path
        };
        let root = ca("posguard test CA");
        let other = ca("someone else's CA");
        let server = leaf(
            &root,
            "posguard test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &root,
            "posguard test terminal",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let rogue = leaf(
            &other,
            "a terminal of someone else's",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestPki {
            dir: dir.to_owned(),
            ca: write("ca.pem", &root.cert.pem()),
            server_cert: write("server.pem", &server.0),
            server_key: write("server.key", &server.1),
            client_cert: write("client.pem", &client.0),
            client_key: write("client.key", &client.1),
            other_ca: write("other-ca.pem", &other.cert.pem()),
            rogue_cert: write("rogue.pem", &rogue.0),
            rogue_key: write("rogue.key", &rogue.1),
        }
    }

    /// The server's files; with `mutual`, clients must have a certificate from the CA.
    pub fn server_files(&self, mutual: bool) -> ServerFiles {
        ServerFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: mutual.then(|| self.ca.clone()),
        }
    }

    /// A client trusting the CA and expecting `server_name`; with `identity`, it
    /// presents the client certificate.
    pub fn client_files(&self, server_name: &str, identity: bool) -> ClientFiles {
        ClientFiles {
            ca: self.ca.clone(),
            server_name: server_name.to_owned(),
            cert: identity.then(|| self.client_cert.clone()),
            key: identity.then(|| self.client_key.clone()),
        }
    }

    /// Removes the directory.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
