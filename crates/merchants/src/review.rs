//! A merchant application's review, as an explicit state machine: one table,
//! [`TRANSITIONS`], says which action moves which state to which, and who may take
//! it. Everything else is refused with [`ReviewError`].
//!
//! ```text
//! draft ─submit→ submitted ─checks pass→ checks_passed ─assign→ in_review ─approve→ approved
//!                    │  ↑                    ↑                   │  │  ╰─reject→ rejected
//!          checks fail│  │submit        override (reviewer,      │  ╰─request info→ info_requested
//!                    ↓  │               with a reason)           │                       │
//!               checks_failed ───────────────┘                   ╰── assign (again) ─────┤
//!                                                      submitted ←─resubmit──────────────╯
//! ```
//! An applicant may withdraw before a decision.

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppState {
    /// Being filled in by the applicant.
    Draft,
    /// Submitted; the automatic checks run.
    Submitted,
    /// An automatic check refused it: the applicant corrects it (or a reviewer
    /// overrides the check with a reason).
    ChecksFailed,
    /// Every check passed: waiting for a reviewer.
    ChecksPassed,
    /// A risk analyst reviews it.
    InReview,
    /// The reviewer asked for more information or documents.
    InfoRequested,
    /// Approved: the merchant is provisioned.
    Approved,
    /// Rejected, with a reason.
    Rejected,
    /// Withdrawn by the applicant.
    Withdrawn,
}

impl AppState {
    /// Every state.
    pub const ALL: [AppState; 9] = [
        AppState::Draft,
        AppState::Submitted,
        AppState::ChecksFailed,
        AppState::ChecksPassed,
        AppState::InReview,
        AppState::InfoRequested,
        AppState::Approved,
        AppState::Rejected,
        AppState::Withdrawn,
    ];

    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            AppState::Draft => "draft",
            AppState::Submitted => "submitted",
            AppState::ChecksFailed => "checks_failed",
            AppState::ChecksPassed => "checks_passed",
            AppState::InReview => "in_review",
            AppState::InfoRequested => "info_requested",
            AppState::Approved => "approved",
            AppState::Rejected => "rejected",
            AppState::Withdrawn => "withdrawn",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<AppState> {
        AppState::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the review is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppState::Approved | AppState::Rejected | AppState::Withdrawn
        )
    }
}

/// What can be done to an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// The applicant submits (or resubmits after failed checks).
    Submit,
    /// The automatic checks passed.
    ChecksPass,
    /// An automatic check failed.
    ChecksFail,
    /// A reviewer overrides a failed check (a pilot-region code), with a reason.
    Override,
    /// A reviewer takes it (or it is handed to another).
    Assign,
    /// The reviewer asks for more information.
    RequestInfo,
    /// The applicant answers with the information asked for.
    Resubmit,
    /// The reviewer approves, with a risk rating.
    Approve,
    /// The reviewer rejects, with a reason.
    Reject,
    /// The applicant withdraws.
    Withdraw,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 10] = [
        Action::Submit,
        Action::ChecksPass,
        Action::ChecksFail,
        Action::Override,
        Action::Assign,
        Action::RequestInfo,
        Action::Resubmit,
        Action::Approve,
        Action::Reject,
        Action::Withdraw,
    ];

    /// The name in the audit trail (`application.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::ChecksPass => "checks_pass",
            Action::ChecksFail => "checks_fail",
            Action::Override => "override",
            Action::Assign => "assign",
            Action::RequestInfo => "request_info",
            Action::Resubmit => "resubmit",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Withdraw => "withdraw",
        }
    }
}

/// Who takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    /// The merchant applying (or operations entering it for them).
    Applicant,
    /// A risk analyst.
    Reviewer,
    /// posguard's automatic checks.
    System,
}

impl Who {
    /// Every kind of actor.
    pub const ALL: [Who; 3] = [Who::Applicant, Who::Reviewer, Who::System];
}

use Action as A;
use AppState as S;

/// Every allowed move: (from, action, who, to).
pub const TRANSITIONS: &[(AppState, Action, Who, AppState)] = &[
    (S::Draft, A::Submit, Who::Applicant, S::Submitted),
    (S::Submitted, A::ChecksPass, Who::System, S::ChecksPassed),
    (S::Submitted, A::ChecksFail, Who::System, S::ChecksFailed),
    (S::ChecksFailed, A::Submit, Who::Applicant, S::Submitted),
    (S::ChecksFailed, A::Override, Who::Reviewer, S::ChecksPassed),
    (S::ChecksPassed, A::Assign, Who::Reviewer, S::InReview),
    (S::InReview, A::Assign, Who::Reviewer, S::InReview),
    (S::InReview, A::RequestInfo, Who::Reviewer, S::InfoRequested),
    (S::InfoRequested, A::Resubmit, Who::Applicant, S::Submitted),
    (S::InfoRequested, A::Assign, Who::Reviewer, S::InfoRequested),
    (S::InReview, A::Approve, Who::Reviewer, S::Approved),
    (S::InReview, A::Reject, Who::Reviewer, S::Rejected),
    (S::Draft, A::Withdraw, Who::Applicant, S::Withdrawn),
    (S::Submitted, A::Withdraw, Who::Applicant, S::Withdrawn),
    (S::ChecksFailed, A::Withdraw, Who::Applicant, S::Withdrawn),
    (S::ChecksPassed, A::Withdraw, Who::Applicant, S::Withdrawn),
    (S::InReview, A::Withdraw, Who::Applicant, S::Withdrawn),
    (S::InfoRequested, A::Withdraw, Who::Applicant, S::Withdrawn),
];

/// Why a move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The application is not in a state the action applies to.
    #[error("an application that is {} cannot be {}", .from.name(), .action.name())]
    NotNow {
        /// Where it stands.
        from: AppState,
        /// What was asked.
        action: Action,
    },
    /// The action is not this actor's to take.
    #[error("{} is not the {who:?}'s to take", .action.name())]
    NotYours {
        /// What was asked.
        action: Action,
        /// Who asked.
        who: Who,
    },
}

/// The state `action` by `who` moves `from` to, or why not.
pub fn next(from: AppState, action: Action, who: Who) -> Result<AppState, ReviewError> {
    let mut applies = false;
    for (f, a, w, to) in TRANSITIONS {
        if *f == from && *a == action {
            applies = true;
            if *w == who {
                return Ok(*to);
            }
        }
    }
    if applies {
        Err(ReviewError::NotYours { action, who })
    } else {
        Err(ReviewError::NotNow { from, action })
    }
}
