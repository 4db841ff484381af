//! The issuer simulator's error type.

use cardsec::SecError;

/// Why a simulator operation (setup, account opening, serving) failed.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// A key in the configuration is malformed or of the wrong length.
    #[error("bad key {which}: {source}")]
    Key {
        /// Which key (`lmk`, `zpk`, `zak`, `token`).
        which: &'static str,
        /// What the security layer said.
        source: SecError,
    },
    /// An account or card attribute is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The attribute.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A card with this PAN already exists.
    #[error("a card with this PAN already exists")]
    DuplicateCard,
    /// No account has this id.
    #[error("no account {0}")]
    UnknownAccount(u64),
    /// The link's TLS files could not be used (the error names the file).
    #[error("issuer link TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Binding or serving a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, verb + object.
        what: &'static str,
        /// The IO error.
        source: std::io::Error,
    },
}

impl IssuerError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> IssuerError {
        IssuerError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
