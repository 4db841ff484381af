//! A complaint's deadlines: to acknowledge it and to resolve it, per source, in
//! working days on the working-day calendar (China's public holidays and make-up
//! working days) or in calendar days where the rule says so, and how far the
//! resolution may be extended — with a reason — as the published rules do
//! (`shared/spec/people.md` §2: decide within 15 days, complex ones 30, at most 60 with
//! approval; a central-bank branch's 10 working days, at most 20, for what its hotline
//! forwards). The defaults are configuration: [`Policy`] deserializes.

use chrono::{Duration, NaiveDate};
use merchants::calendar::WorkCalendar;
use serde::{Deserialize, Serialize};

use crate::kinds::Source;

/// How the days of a deadline count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Days {
    /// Working days on the calendar.
    Working,
    /// Calendar days.
    Calendar,
}

/// The deadlines of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Working days to acknowledge the complaint.
    pub acknowledge_working_days: u32,
    /// Days to resolve it.
    pub resolve_days: u32,
    /// How `resolve_days` (and its extensions) count.
    pub resolve_in: Days,
    /// How far an extension with a reason may go.
    pub extend_to_days: u32,
    /// How far it may go at most (a second extension, approved).
    pub max_days: u32,
}

impl Policy {
    /// The default for a source: the regulator's hotline forwards with its own clock
    /// (10 working days, at most 20); everything else 15 calendar days, extendable to
    /// 30 and at most 60. Every complaint is acknowledged within 1 working day.
    pub fn default_for(source: Source) -> Policy {
        match source {
            Source::RegulatorHotline => Policy {
                acknowledge_working_days: 1,
                resolve_days: 10,
                resolve_in: Days::Working,
                extend_to_days: 20,
                max_days: 20,
            },
            _ => Policy {
                acknowledge_working_days: 1,
                resolve_days: 15,
                resolve_in: Days::Calendar,
                extend_to_days: 30,
                max_days: 60,
            },
        }
    }

    /// Checks the policy makes sense (every deadline at least a day, extensions not
    /// shorter than the deadline, at most a year).
    pub fn validate(&self) -> Result<(), DeadlineError> {
        let ok = self.acknowledge_working_days >= 1
            && self.resolve_days >= 1
            && self.resolve_days <= self.extend_to_days
            && self.extend_to_days <= self.max_days
            && self.max_days <= 366;
        if ok {
            Ok(())
        } else {
            Err(DeadlineError::Policy(format!(
                "deadlines need 1 ≤ acknowledge, 1 ≤ resolve ≤ extend_to ≤ max ≤ 366: {self:?}"
            )))
        }
    }

    /// When the complaint must be acknowledged.
    pub fn acknowledge_by(&self, cal: &WorkCalendar, opened: NaiveDate) -> NaiveDate {
        cal.add_working_days(opened, self.acknowledge_working_days)
    }

    /// When it must be resolved, given `days` (the policy's, or an extension's).
    pub fn resolve_by(&self, cal: &WorkCalendar, opened: NaiveDate, days: u32) -> NaiveDate {
        match self.resolve_in {
            Days::Working => cal.add_working_days(opened, days),
            Days::Calendar => opened + Duration::days(i64::from(days)),
        }
    }

    /// An extension to `days` with `reason`, from `current` days: longer than now, at
    /// most `extend_to_days` — or `max_days` when `approved` by a second person.
    pub fn extend(
        &self,
        current: u32,
        days: u32,
        reason: &str,
        approved: bool,
    ) -> Result<u32, DeadlineError> {
        if reason.trim().is_empty() {
            return Err(DeadlineError::Extension(
                "an extension needs its reason".into(),
            ));
        }
        let cap = if approved {
            self.max_days
        } else {
            self.extend_to_days
        };
        if days <= current || days > cap {
            return Err(DeadlineError::Extension(format!(
                "the deadline goes from {current} days to more, at most {cap}{}",
                if approved {
                    ""
                } else {
                    " (beyond, a second person approves)"
                }
            )));
        }
        Ok(days)
    }
}

/// Where a complaint stands against a deadline on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// More than a working day left.
    OnTime,
    /// Due today or on the next working day.
    Due,
    /// Past it.
    Breached,
}

/// How a deadline `due` stands on `today`.
pub fn standing(cal: &WorkCalendar, due: NaiveDate, today: NaiveDate) -> Standing {
    if today > due {
        Standing::Breached
    } else if cal.add_working_days(today, 1) >= due {
        Standing::Due
    } else {
        Standing::OnTime
    }
}

/// Why a deadline was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    /// The policy does not make sense.
    #[error("{0}")]
    Policy(String),
    /// The extension is not allowed.
    #[error("{0}")]
    Extension(String),
}
