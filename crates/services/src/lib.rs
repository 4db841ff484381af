//! posguard's operations over the store, for every way in: the command line today, the
//! HTTP API next. Each function takes an open [`store::Backend`] and plain arguments
//! and returns data (with a `Display` for people where the CLI prints it) or a
//! [`ServiceError`] that says whose fault it was.
//!
//! - [`money`]: settlement runs, payout confirmation, holds, a merchant's statement
//!   and "where is my money" for one transaction;
//! - [`reconcile`]: clearing-file ingestion and reconciliation runs, findings and the
//!   credit adjustments they queue;
//! - [`check`]: the journal against the issuer's clearing files (phantom and double
//!   debits, missing and unknown sales), the queue and in-flight counts;
//! - [`risk`]: risk back-tests over the journal, and cases;
//! - [`onboarding`]: merchant applications: entered, checked, reviewed with an SLA;
//! - [`rules`]: risk rule-set versions: upload, put in force (active or shadow), retire;
//! - [`saf`]: the store-and-forward queue's operator actions (send again, resolve);
//! - [`accounts`]: operators, roles, sessions and API keys, and the audit trail every
//!   change leaves in the same database transaction.

use store::StoreError;

pub mod accounts;
pub mod check;
pub mod complaints;
pub mod money;
pub mod onboarding;
pub mod reconcile;
pub mod reference;
pub mod risk;
pub mod rules;
pub mod saf;

/// What went wrong, and whose fault it was.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong (a command exits 2, the API answers 400).
    #[error("{0}")]
    BadInput(String),
    /// What was asked for does not exist (the API answers 404).
    #[error("{0}")]
    NotFound(String),
    /// It exists already, or conflicts with what exists (the API answers 409).
    #[error("{0}")]
    Conflict(String),
    /// This person may not do it, whatever their role (four-eyes: nobody approves
    /// their own request; the API answers 403).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A file could not be written.
    #[error("{what}: {source}")]
    File {
        /// Which file, doing what.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

impl ServiceError {
    /// Whether the caller's input caused it (not found included).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ServiceError::BadInput(_)
                | ServiceError::NotFound(_)
                | ServiceError::Conflict(_)
                | ServiceError::Forbidden(_)
        )
    }
}

impl From<StoreError> for ServiceError {
    fn from(source: StoreError) -> ServiceError {
        ServiceError::Store {
            what: "store".into(),
            source,
        }
    }
}

/// Reports are written into `String`s, which cannot fail; `?` on them needs this.
impl From<std::fmt::Error> for ServiceError {
    fn from(_: std::fmt::Error) -> ServiceError {
        ServiceError::Invalid("report formatting failed".into())
    }
}

/// The services' result.
pub type Result<T> = std::result::Result<T, ServiceError>;

/// Names what a store call was doing when it failed.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, StoreError> {
    fn ctx(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| ServiceError::Store {
            what: what.into(),
            source,
        })
    }
}

/// Checks free text a person gives (a name, a reason, a note): 1 to `max` bytes, not
/// blank, no control characters. `what` names it in the error ("a note").
pub(crate) fn text(what: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ServiceError::BadInput(format!(
            "{what} is 1 to {max} printable characters"
        )));
    }
    Ok(())
}

/// A file error naming the file.
pub(crate) fn file_error(
    path: &std::path::Path,
    source: impl Into<std::io::Error>,
) -> ServiceError {
    ServiceError::File {
        what: path.display().to_string(),
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule for every piece of free text the services take (the API's bodies had it,
    /// the command line's did not: a note with a terminal escape went into the case).
    #[test]
    fn free_text_is_printable_not_blank_and_bounded() {
        assert!(text("a note", "three cards in a minute", 4000).is_ok());
        for bad in ["", "   ", "ok\u{1b}[31m", "two\nlines", &"x".repeat(4001)] {
            let e = text("a note", bad, 4000).expect_err(bad);
            assert_eq!(e.to_string(), "a note is 1 to 4000 printable characters");
        }
    }
}
