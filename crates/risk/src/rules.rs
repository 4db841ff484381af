//! Rule sets: rules as data (TOML), validated and versioned.

use serde::Deserialize;

use crate::expr::{Expr, ExprError};
use crate::facts::{Attr, Counter};

/// What a matched rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Decline with this field 39 code.
    Decline(String),
    /// Approve, flag for review and hold the merchant's settlement of it.
    Review,
    /// Approve and hold the merchant's settlement of it.
    Hold,
    /// Approve; raise an alert for staff.
    Alert,
}

/// Whether a rule acts, only records what it would have done, or is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Evaluated and acting.
    Active,
    /// Evaluated and recorded, never acting.
    Shadow,
    /// Not evaluated.
    Disabled,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: String,
    /// What it catches, for people.
    pub description: String,
    /// Its condition (source text).
    pub when_src: String,
    /// Its condition.
    pub when: Expr,
    /// What it does when it matches.
    pub action: RuleAction,
    /// Score contribution 0–100.
    pub score: u8,
    /// Active, shadow or disabled.
    pub mode: Mode,
    /// The attributes it reads (for explanations).
    pub attrs: Vec<Attr>,
}

/// A validated, versioned set of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Version label, recorded with every decision.
    pub version: String,
    /// The rules in file order.
    pub rules: Vec<Rule>,
    /// Every counter the enabled rules read.
    pub counters: Vec<Counter>,
}

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The TOML does not parse or has unknown keys.
    #[error("rule file: {0}")]
    Toml(String),
    /// A rule's condition does not parse or type-check.
    #[error("rule {id}: condition {at}")]
    Condition {
        /// The rule.
        id: String,
        /// Where and why.
        at: ExprError,
    },
    /// Anything else wrong with a rule.
    #[error("rule {id}: {reason}")]
    Invalid {
        /// The rule.
        id: String,
        /// Why.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSet {
    version: String,
    #[serde(default, rename = "rule")]
    rules: Vec<FileRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    id: String,
    description: String,
    when: String,
    action: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    score: u8,
    #[serde(default = "active")]
    mode: String,
}

fn active() -> String {
    "active".into()
}

impl RuleSet {
    /// Parses and validates a rule file.
    pub fn from_toml(text: &str) -> Result<RuleSet, RuleError> {
        let file: FileSet = toml::from_str(text).map_err(|e| RuleError::Toml(e.to_string()))?;
        if file.version.trim().is_empty() {
            return Err(RuleError::Toml("version must not be empty".into()));
        }
        let mut rules = Vec::new();
        let mut counters = Vec::new();
        for r in file.rules {
            let invalid = |reason: &str| RuleError::Invalid {
                id: r.id.clone(),
                reason: reason.into(),
            };
            if r.id.is_empty() || rules.iter().any(|x: &Rule| x.id == r.id) {
                return Err(invalid("ids must be present and unique"));
            }
            if r.score > 100 {
                return Err(invalid("score must be 0-100"));
            }
            let when = Expr::parse_condition(&r.when).map_err(|at| RuleError::Condition {
                id: r.id.clone(),
                at,
            })?;
            let action = match (r.action.as_str(), &r.code) {
                ("decline", Some(c))
                    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    RuleAction::Decline(c.clone())
                }
                ("decline", _) => return Err(invalid("decline needs a two-character code")),
                ("review", None) => RuleAction::Review,
                ("hold", None) => RuleAction::Hold,
                ("alert", None) => RuleAction::Alert,
                (_, Some(_)) => return Err(invalid("only decline takes a code")),
                _ => return Err(invalid("action is decline, review, hold or alert")),
            };
            let mode = match r.mode.as_str() {
                "active" => Mode::Active,
                "shadow" => Mode::Shadow,
                "disabled" => Mode::Disabled,
                _ => return Err(invalid("mode is active, shadow or disabled")),
            };
            let mut attrs = Vec::new();
            when.attrs(&mut attrs);
            attrs.sort();
            attrs.dedup();
            if mode != Mode::Disabled {
                for a in &attrs {
                    if let Attr::Counter(c) = a {
                        if !counters.contains(c) {
                            counters.push(*c);
                        }
                    }
                }
            }
            rules.push(Rule {
                id: r.id,
                description: r.description,
                when_src: r.when,
                when,
                action,
                score: r.score,
                mode,
                attrs,
            });
        }
        counters.sort();
        Ok(RuleSet {
            version: file.version,
            rules,
            counters,
        })
    }

    /// The same rules, every one in shadow mode: evaluated and recorded, never acting.
    pub fn in_shadow(mut self) -> RuleSet {
        for r in &mut self.rules {
            if r.mode == Mode::Active {
                r.mode = Mode::Shadow;
            }
        }
        self
    }

    /// The default rule set shipped with posguard.
    pub fn default_rules() -> RuleSet {
        // Shipped data, checked by a unit test.
        RuleSet::from_toml(include_str!("../rules/default.toml"))
            .unwrap_or_else(|e| panic!("default rules: {e}"))
    }
}
