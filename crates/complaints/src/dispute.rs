//! A dispute: a complaint escalated to the card's issuer or the network, modelled on
//! the references (`shared/spec/people.md` §3): a stage that only moves forward
//! (pre-dispute → dispute → pre-arbitration), a status (opened → expired, accepted,
//! cancelled or challenged; challenged → won or lost), typed evidence and a deadline to
//! respond by.

use serde::{Deserialize, Serialize};

/// How far the dispute has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Raised with the issuer, before a formal dispute.
    PreDispute,
    /// A formal dispute.
    Dispute,
    /// Taken to the network's arbitration.
    PreArbitration,
}

/// Where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Raised, waiting for a response.
    Opened,
    /// Nobody responded in time.
    Expired,
    /// The other side accepted it.
    Accepted,
    /// Withdrawn.
    Cancelled,
    /// Challenged with evidence.
    Challenged,
    /// Decided for the complainant.
    Won,
    /// Decided against.
    Lost,
}

/// The kinds of evidence a dispute carries.
pub const EVIDENCE_KINDS: [&str; 6] = [
    "receipt",
    "transaction_log",
    "customer_communication",
    "refund_policy",
    "issuer_statement",
    "other",
];

impl Stage {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::PreDispute => "pre_dispute",
            Stage::Dispute => "dispute",
            Stage::PreArbitration => "pre_arbitration",
        }
    }

    /// The stage of a stored name.
    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::PreDispute, Stage::Dispute, Stage::PreArbitration]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 7] = [
        Status::Opened,
        Status::Expired,
        Status::Accepted,
        Status::Cancelled,
        Status::Challenged,
        Status::Won,
        Status::Lost,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Opened => "opened",
            Status::Expired => "expired",
            Status::Accepted => "accepted",
            Status::Cancelled => "cancelled",
            Status::Challenged => "challenged",
            Status::Won => "won",
            Status::Lost => "lost",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether nothing follows it.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Opened | Status::Challenged)
    }
}

/// The status moves allowed: (from, to).
pub const MOVES: [(Status, Status); 6] = [
    (Status::Opened, Status::Expired),
    (Status::Opened, Status::Accepted),
    (Status::Opened, Status::Cancelled),
    (Status::Opened, Status::Challenged),
    (Status::Challenged, Status::Won),
    (Status::Challenged, Status::Lost),
];

/// Why a dispute's change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DisputeError(pub String);

/// A status move, if the table allows it.
pub fn move_status(from: Status, to: Status) -> Result<Status, DisputeError> {
    if MOVES.contains(&(from, to)) {
        Ok(to)
    } else {
        Err(DisputeError(format!(
            "a dispute {} does not become {}",
            from.name(),
            to.name()
        )))
    }
}

/// A stage move: forward only, and only while the dispute is open or challenged.
pub fn move_stage(from: Stage, to: Stage, status: Status) -> Result<Stage, DisputeError> {
    if status.is_final() {
        return Err(DisputeError(format!(
            "the dispute is {}: its stage no longer moves",
            status.name()
        )));
    }
    if to <= from {
        return Err(DisputeError(format!(
            "a dispute's stage moves forward only: {} cannot go to {}",
            from.name(),
            to.name()
        )));
    }
    Ok(to)
}
