//! The working-day calendar: in China public holidays are moved and some weekends
//! become working days (调休), so a deadline or a settlement date counted in working
//! days needs both kinds of exception, loaded as data per year
//! (`crates/merchants/calendars/cn-YYYY.txt`, from the State Council's yearly notice).
//!
//! A year with no data loaded counts Monday to Friday; [`WorkCalendar::is_loaded`] lets
//! callers warn about it.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Why a calendar file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("calendar line {line}: {reason}")]
pub struct CalendarError {
    /// The line (from 1).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// Days off and make-up working days, for the years loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkCalendar {
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    years: BTreeSet<i32>,
}

/// The years shipped with posguard.
const CHINA: &[&str] = &[include_str!("../calendars/cn-2026.txt")];

/// Working days counted at most by one call (a bound on the loop).
pub const MAX_WORKING_DAYS: u32 = 3_660;

impl WorkCalendar {
    /// China's calendar for every year shipped.
    pub fn china() -> WorkCalendar {
        let mut c = WorkCalendar::default();
        for text in CHINA {
            // The shipped files are tested to parse.
            if let Ok(year) = WorkCalendar::parse(text) {
                c.merge(year);
            }
        }
        c
    }

    /// Reads a calendar file: `year YYYY`, `holiday FROM[..TO] name`, `workday DATE
    /// name`, `#` comments. Every date must fall in a declared year; a workday must be
    /// a Saturday or Sunday and no day both.
    pub fn parse(text: &str) -> Result<WorkCalendar, CalendarError> {
        let mut c = WorkCalendar::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| CalendarError {
                line: i + 1,
                reason,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (kind, value) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let date = |s: &str| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| err(format!("{s:?} is not a date YYYY-MM-DD")))
            };
            match kind {
                "year" => {
                    let y: i32 = value
                        .parse()
                        .map_err(|_| err(format!("{value:?} is not a year")))?;
                    c.years.insert(y);
                }
                "holiday" => {
                    let (from, to) = match value.split_once("..") {
                        Some((a, b)) => (date(a)?, date(b)?),
                        None => (date(value)?, date(value)?),
                    };
                    if to < from || (to - from).num_days() > 31 {
                        return Err(err(format!("{value} is not a range of at most a month")));
                    }
                    let mut d = from;
                    while d <= to {
                        c.holidays.insert(d);
                        d += Duration::days(1);
                    }
                }
                "workday" => {
                    let d = date(value)?;
                    if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                        return Err(err(format!("{d} is not a Saturday or Sunday")));
                    }
                    c.workdays.insert(d);
                }
                other => return Err(err(format!("{other:?}: expected year, holiday or workday"))),
            }
        }
        for d in c.holidays.iter().chain(&c.workdays) {
            if !c.years.contains(&d.year()) {
                return Err(CalendarError {
                    line: 0,
                    reason: format!("{d} is outside the years declared"),
                });
            }
        }
        if let Some(d) = c.holidays.intersection(&c.workdays).next() {
            return Err(CalendarError {
                line: 0,
                reason: format!("{d} is both a holiday and a working day"),
            });
        }
        Ok(c)
    }

    /// Puts another calendar's years in place of this one's same years (an
    /// administrator's corrected or new year).
    pub fn replace_years(&mut self, other: WorkCalendar) {
        let theirs = |d: &NaiveDate| other.years.contains(&d.year());
        self.holidays.retain(|d| !theirs(d));
        self.workdays.retain(|d| !theirs(d));
        self.merge(other);
    }

    /// The years loaded.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Adds another calendar's years (a later year replaces nothing: years are disjoint
    /// in practice; a day in both keeps both marks, holiday winning).
    pub fn merge(&mut self, other: WorkCalendar) {
        self.holidays.extend(other.holidays);
        self.workdays.extend(other.workdays);
        self.years.extend(other.years);
    }

    /// Whether `year`'s holidays are loaded (otherwise Monday to Friday are counted).
    pub fn is_loaded(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// Whether `d` is a working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.holidays.contains(&d) {
            return false;
        }
        if self.workdays.contains(&d) {
            return true;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`th working day after `d` (`n` = 0: `d` itself if it is a working day,
    /// else the next one). `n` is bounded by [`MAX_WORKING_DAYS`].
    pub fn add_working_days(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut day = d;
        if n == 0 {
            while !self.is_working_day(day) {
                day += Duration::days(1);
            }
            return day;
        }
        let mut left = n.min(MAX_WORKING_DAYS);
        while left > 0 {
            day += Duration::days(1);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// Working days after `from` up to and including `to` (0 when `to` ≤ `from`).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let mut n = 0;
        let mut day = from;
        while day < to && n < MAX_WORKING_DAYS {
            day += Duration::days(1);
            if self.is_working_day(day) {
                n += 1;
            }
        }
        n
    }
}
