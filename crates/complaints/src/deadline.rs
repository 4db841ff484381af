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

/// One complaint as the disclosure report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    /// What about.
    pub category: crate::kinds::Category,
    /// From where.
    pub source: Source,
    /// When filed (local).
    pub opened: chrono::NaiveDateTime,
    /// When resolved or rejected (local), if it is.
    pub closed: Option<chrono::NaiveDateTime>,
    /// Its resolution deadline.
    pub resolve_due: NaiveDate,
}

/// The figures large acquirers publish about their complaints.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Complaints filed.
    pub total: usize,
    /// By category.
    pub by_category: std::collections::BTreeMap<crate::kinds::Category, usize>,
    /// By source.
    pub by_source: std::collections::BTreeMap<Source, usize>,
    /// Transactions in the period.
    pub transactions: u64,
    /// Complaints per 10,000 transactions.
    pub per_10k: f64,
    /// Closed (resolved or rejected).
    pub closed: usize,
    /// Closed within 1 working day of filing.
    pub within_1: usize,
    /// Closed after 1 and within 3 working days.
    pub within_1_3: usize,
    /// Median hours from filing to closing.
    pub p50_hours: f64,
    /// 90th percentile hours from filing to closing.
    pub p90_hours: f64,
    /// Closed after their deadline, or still open past it on `today`.
    pub breaches: usize,
}

/// The report over `filed` (with the period's transaction count), on `today`.
pub fn report(cal: &WorkCalendar, filed: &[Filed], transactions: u64, today: NaiveDate) -> Report {
    let mut r = Report {
        total: filed.len(),
        transactions,
        ..Report::default()
    };
    let mut hours = Vec::new();
    for f in filed {
        *r.by_category.entry(f.category).or_default() += 1;
        *r.by_source.entry(f.source).or_default() += 1;
        match f.closed {
            Some(c) => {
                r.closed += 1;
                let days = cal.working_days_between(f.opened.date(), c.date());
                if days <= 1 {
                    r.within_1 += 1;
                } else if days <= 3 {
                    r.within_1_3 += 1;
                }
                hours.push((c - f.opened).num_minutes().max(0) as f64 / 60.0);
                if c.date() > f.resolve_due {
                    r.breaches += 1;
                }
            }
            None if today > f.resolve_due => r.breaches += 1,
            None => {}
        }
    }
    hours.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if hours.is_empty() {
            0.0
        } else {
            hours[((hours.len() as f64 * q).ceil() as usize).clamp(1, hours.len()) - 1]
        }
    };
    r.p50_hours = pct(0.5);
    r.p90_hours = pct(0.9);
    r.per_10k = if transactions == 0 {
        0.0
    } else {
        r.total as f64 * 10_000.0 / transactions as f64
    };
    r
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = |n: usize| {
            if self.total == 0 {
                0.0
            } else {
                n as f64 * 100.0 / self.total as f64
            }
        };
        writeln!(
            f,
            "complaints: {} ({:.2} per 10,000 transactions of {}); closed {} ({:.0}%), within 1 working day {} ({:.0}%), within 1-3 {} ({:.0}%); time to close p50 {:.1} h, p90 {:.1} h; breaches {}",
            self.total,
            self.per_10k,
            self.transactions,
            self.closed,
            share(self.closed),
            self.within_1,
            share(self.within_1),
            self.within_1_3,
            share(self.within_1_3),
            self.p50_hours,
            self.p90_hours,
            self.breaches
        )?;
        for (c, n) in &self.by_category {
            writeln!(f, "    {:<26}{n:>6}", c.name())?;
        }
        for (s, n) in &self.by_source {
            writeln!(f, "    via {:<22}{n:>6}", s.name())?;
        }
        Ok(())
    }
}
