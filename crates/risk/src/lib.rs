//! posguard's risk engine.
//!
//! Rules are data ([`RuleSet::from_toml`]): a condition in a small typed language over
//! the transaction's attributes and velocity counters, an action (decline with a code,
//! review, hold, alert), a score and a mode (active, shadow, disabled). [`Engine::decide`]
//! evaluates every enabled rule and returns a [`Decision`] with the matched rules, the
//! values that matched and the rule-set version. A time budget bounds each call; when it
//! is exceeded the configured [`Policy`] decides, and the decision says so. No IO: time
//! comes from the caller.

pub mod expr;
pub mod facts;
pub mod rules;
pub mod velocity;

use std::fmt;

pub use facts::{Attr, Counter, Facts, Metric, Subject, Window};
pub use rules::{Mode, Rule, RuleAction, RuleError, RuleSet};
pub use velocity::{Keys, MemoryVelocity, Velocity};

/// The rule id a decline for the merchant's daily limit names (the limit is the
/// merchant's terms, not a rule of the set).
pub const DAY_LIMIT_RULE: &str = "terms.day_limit";

/// What the transaction may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the issuer.
    Approve,
    /// Decline with this field 39 code; nothing reaches the issuer.
    Decline(String),
    /// Go on to the issuer, but flag for review and hold settlement.
    Review,
}

/// What to do when the engine cannot decide in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Approve as if no rule matched.
    FailOpen,
    /// Decline (96).
    FailClosed,
    /// Approve and hold the merchant's settlement of it.
    ApproveAndHold,
}

impl Policy {
    /// Parses `fail-open`, `fail-closed` or `approve-and-hold`.
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "fail-open" => Some(Policy::FailOpen),
            "fail-closed" => Some(Policy::FailClosed),
            "approve-and-hold" => Some(Policy::ApproveAndHold),
            _ => None,
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::FailOpen => "fail-open",
            Policy::FailClosed => "fail-closed",
            Policy::ApproveAndHold => "approve-and-hold",
        }
    }
}

/// A rule that matched, with the values it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Rule id.
    pub rule: String,
    /// Its action.
    pub action: RuleAction,
    /// Whether it is a shadow rule (recorded, not acting).
    pub shadow: bool,
    /// Attribute = value for every attribute its condition reads.
    pub values: Vec<(String, String)>,
}

/// The engine's answer for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approve, decline or review.
    pub verdict: Verdict,
    /// Hold the merchant's settlement of this transaction.
    pub hold: bool,
    /// Raise an alert for staff.
    pub alert: bool,
    /// 0–100, the sum of the active matched rules' scores (capped).
    pub score: u8,
    /// The rule-set version that decided.
    pub version: String,
    /// Every matched rule, active and shadow.
    pub matched: Vec<Matched>,
    /// The policy used if the engine ran out of time, else `None`.
    pub policy: Option<Policy>,
    /// The facts record (filled by the caller that stores the decision).
    pub facts: String,
}

impl Decision {
    /// The active rules that matched, comma-separated (for logs and journals).
    pub fn reasons(&self) -> String {
        let ids: Vec<&str> = self
            .matched
            .iter()
            .filter(|m| !m.shadow)
            .map(|m| m.rule.as_str())
            .collect();
        ids.join(",")
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match &self.verdict {
            Verdict::Approve => "approve".to_owned(),
            Verdict::Decline(c) => format!("decline {c}"),
            Verdict::Review => "review".to_owned(),
        };
        write!(f, "{v} score {}", self.score)?;
        if self.hold {
            f.write_str(" hold")?;
        }
        if self.alert {
            f.write_str(" alert")?;
        }
        for m in &self.matched {
            let vals: Vec<String> = m.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(
                f,
                " [{}{} {}]",
                m.rule,
                if m.shadow { " shadow" } else { "" },
                vals.join(" ")
            )?;
        }
        if let Some(p) = self.policy {
            write!(f, " (policy {})", p.name())?;
        }
        Ok(())
    }
}

/// The risk engine: a rule set (replaceable while running) and the counters.
pub struct Engine {
    rules: RuleSet,
    velocity: Box<dyn Velocity>,
    policy: Policy,
    budget_ns: u64,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "risk::Engine(version {}, {} rules)",
            self.rules.version,
            self.rules.rules.len()
        )
    }
}

impl Engine {
    /// An engine with a rule set, counters, a timeout policy and a per-call budget.
    pub fn new(
        rules: RuleSet,
        velocity: Box<dyn Velocity>,
        policy: Policy,
        budget_ns: u64,
    ) -> Engine {
        Engine {
            rules,
            velocity,
            policy,
            budget_ns,
        }
    }

    /// Replaces the rule set (hot reload): the next decision uses the new version.
    pub fn reload(&mut self, rules: RuleSet) {
        self.rules = rules;
    }

    /// The rule set in force.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Decides one transaction. `clock_ns` is a monotonic clock the caller provides
    /// (for the time budget); `now_secs` is the transaction's time.
    pub fn decide(
        &mut self,
        facts: &mut Facts,
        keys: &Keys<'_>,
        now_secs: i64,
        clock_ns: &dyn Fn() -> u64,
    ) -> Decision {
        let start = clock_ns();
        facts.counters.clear();
        for c in &self.rules.counters {
            let v = self.velocity.query(keys, facts.amount, *c, now_secs);
            facts.counters.push((*c, v));
        }
        if let Some(d) = self.over_day_limit(facts, keys, now_secs) {
            return d;
        }
        let mut matched = Vec::new();
        for rule in &self.rules.rules {
            if rule.mode == Mode::Disabled {
                continue;
            }
            if clock_ns().saturating_sub(start) > self.budget_ns {
                return self.timed_out(matched);
            }
            if rule.when.eval(facts) != expr::Value::Bool(true) {
                continue;
            }
            let values = rule
                .attrs
                .iter()
                .map(|a| (a.name(), facts.get(*a).to_string()))
                .collect();
            matched.push(Matched {
                rule: rule.id.clone(),
                action: rule.action.clone(),
                shadow: rule.mode == Mode::Shadow,
                values,
            });
        }
        let active = || matched.iter().filter(|m| !m.shadow);
        let score: u32 = active()
            .filter_map(|m| {
                self.rules
                    .rules
                    .iter()
                    .find(|r| r.id == m.rule)
                    .map(|r| u32::from(r.score))
            })
            .sum();
        let decline = active().find_map(|m| match &m.action {
            RuleAction::Decline(c) => Some(c.clone()),
            _ => None,
        });
        let review = active().any(|m| m.action == RuleAction::Review);
        let hold = review || active().any(|m| m.action == RuleAction::Hold);
        let alert = active().any(|m| matches!(m.action, RuleAction::Alert | RuleAction::Review));
        let verdict = match (decline, review) {
            (Some(c), _) => Verdict::Decline(c),
            (None, true) => Verdict::Review,
            (None, false) => Verdict::Approve,
        };
        Decision {
            verdict,
            hold,
            alert,
            score: score.min(100) as u8,
            version: self.rules.version.clone(),
            matched,
            policy: None,
            facts: String::new(),
        }
    }

    /// The merchant's daily limit from its terms, checked before any rule and
    /// whatever the rule set or its mode: a sale that would take the merchant's day
    /// (every terminal, every node sharing the counters) over it is declined with 61.
    fn over_day_limit(
        &mut self,
        facts: &Facts,
        keys: &Keys<'_>,
        now_secs: i64,
    ) -> Option<Decision> {
        if facts.merchant_day_limit <= 0 {
            return None;
        }
        let counter = Counter {
            subject: Subject::Merchant,
            metric: Metric::Sum,
            window: Window::D1,
        };
        let sum = match facts.counters.iter().find(|(c, _)| *c == counter) {
            Some((_, v)) => *v,
            None => self.velocity.query(keys, facts.amount, counter, now_secs),
        };
        (sum + facts.amount > facts.merchant_day_limit).then(|| Decision {
            verdict: Verdict::Decline("61".into()),
            hold: false,
            alert: false,
            score: 0,
            version: self.rules.version.clone(),
            matched: vec![Matched {
                rule: DAY_LIMIT_RULE.into(),
                action: RuleAction::Decline("61".into()),
                shadow: false,
                values: vec![
                    ("merchant.sum_1d".into(), sum.to_string()),
                    (
                        "merchant.day_limit".into(),
                        facts.merchant_day_limit.to_string(),
                    ),
                ],
            }],
            policy: None,
            facts: String::new(),
        })
    }

    fn timed_out(&self, matched: Vec<Matched>) -> Decision {
        let (verdict, hold) = match self.policy {
            Policy::FailOpen => (Verdict::Approve, false),
            Policy::FailClosed => (Verdict::Decline("96".into()), false),
            Policy::ApproveAndHold => (Verdict::Approve, true),
        };
        Decision {
            verdict,
            hold,
            alert: true,
            score: 0,
            version: self.rules.version.clone(),
            matched,
            policy: Some(self.policy),
            facts: String::new(),
        }
    }

    /// Records an attempt in the counters (call after deciding).
    pub fn record(&mut self, keys: &Keys<'_>, amount: i64, now_secs: i64) {
        self.velocity.record(keys, amount, now_secs);
    }

    /// Records that the attempt was declined (by risk, the acquirer or the issuer).
    pub fn record_decline(&mut self, keys: &Keys<'_>, amount: i64, now_secs: i64) {
        self.velocity.record_decline(keys, amount, now_secs);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_rules_load() {
        let r = super::RuleSet::default_rules();
        assert!(r.rules.len() >= 15);
    }
}
