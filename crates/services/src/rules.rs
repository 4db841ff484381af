//! Risk rule-set versions kept in the store: uploaded (validated as the node would
//! load them), then put in force — `active` (each rule acts as its mode says) or
//! `shadow` (every rule evaluated and recorded, none acting) — or retired. At most
//! one version is in force; putting another in force retires it. Nodes started
//! without `--rules` read the version in force and pick up a change while they run.
//! Every change leaves an audit record.

use store::{Backend, RuleSetRow, Write};

use crate::accounts::Actor;
use crate::{Context, Result, ServiceError};

/// What a version may be set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleStatus {
    /// In force; its rules act as their modes say.
    Active,
    /// In force with every rule in shadow: evaluated and recorded, never acting.
    Shadow,
    /// Not in force.
    Retired,
}

impl RuleStatus {
    /// `active`, `shadow` or `retired`.
    pub fn parse(s: &str) -> Option<RuleStatus> {
        match s {
            "active" => Some(RuleStatus::Active),
            "shadow" => Some(RuleStatus::Shadow),
            "retired" => Some(RuleStatus::Retired),
            _ => None,
        }
    }

    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            RuleStatus::Active => "active",
            RuleStatus::Shadow => "shadow",
            RuleStatus::Retired => "retired",
        }
    }
}

/// The largest rule file accepted (bytes).
pub const MAX_RULES: usize = 60_000;

/// A version as the API and the audit trail show it (without its text).
pub fn rule_set_json(r: &RuleSetRow) -> serde_json::Value {
    let rules = risk::RuleSet::from_toml(&r.rules)
        .map(|s| s.rules.len())
        .unwrap_or(0);
    serde_json::json!({
        "version": r.version,
        "status": r.status,
        "rules": rules,
        "uploaded_by": r.uploaded_by,
        "uploaded_at": r.uploaded_at,
        "changed_at": r.changed_at,
    })
}

fn find(db: &mut dyn Backend, version: &str) -> Result<RuleSetRow> {
    db.rule_sets()
        .ctx("read rule sets")?
        .into_iter()
        .find(|r| r.version == version)
        .ok_or_else(|| ServiceError::NotFound(format!("no rule set {version}")))
}

/// Uploads a rule file as a `candidate` version, once it validates. Uploading the
/// same text again changes nothing; another text under a version that exists is a
/// conflict (versions are immutable: a decision names the version that made it).
pub fn upload(db: &mut dyn Backend, text: &str, actor: &Actor, at: &str) -> Result<RuleSetRow> {
    if text.len() > MAX_RULES {
        return Err(ServiceError::BadInput(format!(
            "a rule file is at most {MAX_RULES} bytes"
        )));
    }
    let set = risk::RuleSet::from_toml(text)
        .map_err(|e| ServiceError::BadInput(format!("the rule set is refused: {e}")))?;
    crate::text("a rule set's version", &set.version, 64)?;
    if let Some(old) = db
        .rule_sets()
        .ctx("read rule sets")?
        .into_iter()
        .find(|r| r.version == set.version)
    {
        if old.rules == text {
            return Ok(old);
        }
        return Err(ServiceError::Conflict(format!(
            "rule set {} exists with other rules: give the new rules a new version",
            set.version
        )));
    }
    let row = RuleSetRow {
        version: set.version.clone(),
        rules: text.into(),
        status: "candidate".into(),
        uploaded_by: actor.name.clone(),
        uploaded_at: at.into(),
        changed_at: at.into(),
    };
    db.apply(&[
        Write::RuleSet(row.clone()),
        actor.audit(
            at,
            "rules.upload",
            &format!("rule_set:{}", row.version),
            serde_json::Value::Null,
            rule_set_json(&row),
        ),
    ])
    .ctx("write rule set")?;
    Ok(row)
}

/// Sets a version's status: in force (`active` or `shadow`, retiring the version in
/// force before it) or `retired`. Setting the status it has changes nothing.
pub fn set_status(
    db: &mut dyn Backend,
    version: &str,
    status: RuleStatus,
    actor: &Actor,
    at: &str,
) -> Result<RuleSetRow> {
    let before = find(db, version)?;
    if before.status == status.name() {
        return Ok(before);
    }
    let mut writes = Vec::new();
    if status != RuleStatus::Retired {
        for other in db.rule_sets().ctx("read rule sets")? {
            if other.version != version && (other.status == "active" || other.status == "shadow") {
                let retired = RuleSetRow {
                    status: "retired".into(),
                    changed_at: at.into(),
                    ..other.clone()
                };
                writes.push(actor.audit(
                    at,
                    "rules.retired",
                    &format!("rule_set:{}", other.version),
                    rule_set_json(&other),
                    rule_set_json(&retired),
                ));
                writes.push(Write::RuleSet(retired));
            }
        }
    }
    let after = RuleSetRow {
        status: status.name().into(),
        changed_at: at.into(),
        ..before.clone()
    };
    writes.push(actor.audit(
        at,
        &format!("rules.{}", status.name()),
        &format!("rule_set:{version}"),
        rule_set_json(&before),
        rule_set_json(&after),
    ));
    writes.push(Write::RuleSet(after.clone()));
    db.apply(&writes).ctx("write rule set")?;
    Ok(after)
}

/// The version in force and its rules (in shadow when its status says so), if any.
pub fn in_force(db: &mut dyn Backend) -> Result<Option<(RuleSetRow, risk::RuleSet)>> {
    let Some(row) = db
        .rule_sets()
        .ctx("read rule sets")?
        .into_iter()
        .find(|r| r.status == "active" || r.status == "shadow")
    else {
        return Ok(None);
    };
    let set = risk::RuleSet::from_toml(&row.rules).map_err(|e| {
        ServiceError::Invalid(format!(
            "stored rule set {} does not load: {e}",
            row.version
        ))
    })?;
    let set = if row.status == "shadow" {
        set.in_shadow()
    } else {
        set
    };
    Ok(Some((row, set)))
}
