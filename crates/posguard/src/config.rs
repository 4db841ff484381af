//! A node's settings from a TOML file (`posguard acquirer --config FILE`); flags given
//! on the command line override the file, the file overrides the defaults.
//! Every key is documented in `docs/configuration.md`; an unknown key is an error (a
//! misspelt limit must not silently fall back to its default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BadInput;

/// The file, as written. Every key is optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Node number 0–9 (part of every transaction id and RRN).
    pub node: Option<u8>,
    /// Acquiring institution id (field 32), up to 11 digits.
    pub acquirer_id: Option<String>,
    /// Where the journal is.
    #[serde(default)]
    pub store: StoreSection,
    /// The terminal listeners.
    #[serde(default)]
    pub listen: ListenSection,
    /// The issuer link.
    #[serde(default)]
    pub issuer: IssuerSection,
    /// Shared risk counters.
    #[serde(default)]
    pub redis: RedisSection,
    /// The acquirer's time zone.
    #[serde(default)]
    pub time: TimeSection,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The LMK's source and key checks.
    #[serde(default)]
    pub keys: KeysSection,
    /// Risk control.
    #[serde(default)]
    pub risk: RiskSection,
}

/// `[store]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite data directory.
    pub data: Option<String>,
    /// PostgreSQL URL; overrides `data`.
    pub database_url: Option<String>,
}

/// `[listen]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// The `cup-pos` terminal listener.
    pub terminals: Option<SocketAddr>,
    /// An `iso87-ascii` terminal listener.
    pub ascii: Option<SocketAddr>,
    /// The operators' HTTP API, health and metrics.
    pub http: Option<SocketAddr>,
}

/// `[issuer]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    /// The issuer's address.
    pub addr: Option<SocketAddr>,
    /// How long to wait for an answer.
    pub timeout_ms: Option<u64>,
    /// Connections kept to the issuer.
    pub connections: Option<usize>,
}

/// `[redis]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://host:port`.
    pub url: Option<String>,
    /// Key prefix (several deployments on one Redis).
    pub prefix: Option<String>,
}

/// `[time]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    /// The acquirer's offset from UTC in hours (China: 8).
    pub utc_offset_hours: Option<i8>,
}

/// `[limits]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest amount of one transaction, minor units.
    pub max_amount_minor: Option<i64>,
    /// Requests waiting for the issuer at once.
    pub max_in_flight: Option<usize>,
    /// Terminal connections at once.
    pub max_connections: Option<usize>,
    /// Terminal connections at once from one address.
    pub max_connections_per_ip: Option<usize>,
    /// Sign-ons from one address in a minute.
    pub max_sign_ons_per_ip: Option<usize>,
    /// Sign-ons of one terminal in a minute.
    pub max_sign_ons_per_terminal: Option<usize>,
    /// Sends of an advice before operators are alerted (it is repeated on).
    pub saf_max_attempts: Option<u32>,
}

/// `[keys]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// A file holding the LMK.
    pub lmk_file: Option<PathBuf>,
    /// Two or three LMK component files.
    #[serde(default)]
    pub lmk_components: Vec<PathBuf>,
    /// During an LMK rotation, the LMK being replaced.
    pub previous_lmk_file: Option<PathBuf>,
    /// Seconds between reads of the key table for new zone and token keys.
    pub key_check_secs: Option<u64>,
}

/// `[risk]`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// A rule file (TOML), watched and reloaded.
    pub rules: Option<PathBuf>,
    /// `fail-open`, `fail-closed` or `approve-and-hold`.
    pub policy: Option<String>,
}

impl NodeFile {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<NodeFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput(format!("read config {}: {e}", path.display())))?;
        NodeFile::parse(&text)
            .map_err(|e| BadInput(format!("config {}: {e}", path.display())).into())
    }

    /// Parses a configuration and checks its values' ranges.
    pub fn parse(text: &str) -> Result<NodeFile, String> {
        let f: NodeFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(n) = f.node {
            if n > 9 {
                return Err(format!("node is 0-9, got {n}"));
            }
        }
        if let Some(id) = &f.acquirer_id {
            if id.is_empty() || id.len() > 11 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("acquirer_id is 1-11 digits, got {id:?}"));
            }
        }
        if let Some(h) = f.time.utc_offset_hours {
            if !(-12..=14).contains(&h) {
                return Err(format!("time.utc_offset_hours is -12..14, got {h}"));
            }
        }
        if let Some(a) = f.limits.max_amount_minor {
            if !(1..=999_999_999_999).contains(&a) {
                return Err(format!(
                    "limits.max_amount_minor is 1..999999999999 (12 digits), got {a}"
                ));
            }
        }
        for (key, v) in [
            ("issuer.connections", f.issuer.connections),
            ("limits.max_in_flight", f.limits.max_in_flight),
            ("limits.max_connections", f.limits.max_connections),
            (
                "limits.max_connections_per_ip",
                f.limits.max_connections_per_ip,
            ),
            ("limits.max_sign_ons_per_ip", f.limits.max_sign_ons_per_ip),
            (
                "limits.max_sign_ons_per_terminal",
                f.limits.max_sign_ons_per_terminal,
            ),
        ] {
            if v == Some(0) {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if let Some(ms) = f.issuer.timeout_ms {
            if !(100..=120_000).contains(&ms) {
                return Err(format!("issuer.timeout_ms is 100..120000, got {ms}"));
            }
        }
        if let Some(s) = f.keys.key_check_secs {
            if !(1..=3600).contains(&s) {
                return Err(format!("keys.key_check_secs is 1..3600, got {s}"));
            }
        }
        if f.limits.saf_max_attempts == Some(0) {
            return Err("limits.saf_max_attempts must be at least 1".into());
        }
        if let Some(p) = &f.risk.policy {
            if risk::Policy::parse(p).is_none() {
                return Err(format!(
                    "risk.policy is fail-open, fail-closed or approve-and-hold, got {p:?}"
                ));
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example parses to what it says.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```toml\n").expect("example") + 8;
        let end = start + doc[start..].find("```").expect("end of example");
        let f = NodeFile::parse(&doc[start..end]).expect("parse");
        assert_eq!(f.node, Some(1));
        assert_eq!(
            f.store.database_url.as_deref(),
            Some("postgres://posguard@db.internal/posguard")
        );
        assert_eq!(f.listen.terminals, Some("0.0.0.0:8583".parse().unwrap()));
        assert_eq!(f.issuer.timeout_ms, Some(10_000));
        assert_eq!(f.limits.max_connections_per_ip, Some(64));
        assert_eq!(f.keys.lmk_components.len(), 2);
        assert_eq!(f.risk.policy.as_deref(), Some("approve-and-hold"));
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        for (text, says) in [
            ("nod = 1", "unknown field `nod`"),
            ("node = 12", "node is 0-9"),
            (
                "[limits]\nmax_conections = 5",
                "unknown field `max_conections`",
            ),
            (
                "[limits]\nmax_connections = 0",
                "limits.max_connections must be at least 1",
            ),
            ("[issuer]\ntimeout_ms = 5", "issuer.timeout_ms"),
            ("[time]\nutc_offset_hours = 20", "time.utc_offset_hours"),
            ("acquirer_id = \"48A\"", "acquirer_id is 1-11 digits"),
            ("[risk]\npolicy = \"yolo\"", "risk.policy"),
            ("[keys]\nkey_check_secs = 0", "keys.key_check_secs"),
            (
                "[listen]\nterminals = \"nowhere\"",
                "invalid socket address",
            ),
        ] {
            let e = NodeFile::parse(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(NodeFile::parse("").unwrap(), NodeFile::default());
    }
}
