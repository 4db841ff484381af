//! The working-day calendar across the 2026 Spring Festival (15–23 February off, the
//! Saturdays 14 and 28 February working) and the other loaded exceptions.

use chrono::NaiveDate;
use merchants::calendar::WorkCalendar;

fn d(m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, day).expect("date")
}

#[test]
fn the_spring_festival_week_of_2026() {
    let c = WorkCalendar::china();
    assert!(c.is_loaded(2026) && !c.is_loaded(2031));
    // (day, working)
    for (day, working) in [
        (d(2, 13), true),  // Friday
        (d(2, 14), true),  // Saturday, a make-up working day
        (d(2, 15), false), // the holiday begins (a Sunday)
        (d(2, 16), false), // Monday, off
        (d(2, 20), false),
        (d(2, 23), false), // Monday, the last day off
        (d(2, 24), true),
        (d(2, 28), true), // Saturday, a make-up working day
        (d(3, 1), false), // Sunday
        (d(1, 1), false),
        (d(1, 4), true), // Sunday, worked
        (d(10, 8), true),
        (d(10, 10), true), // Saturday, worked
        (d(10, 11), false),
    ] {
        assert_eq!(c.is_working_day(day), working, "{day}");
    }
    // (from, working days, the day reached): settlement's T+1 and review SLAs.
    for (from, n, want) in [
        (d(2, 12), 1, d(2, 13)),
        (d(2, 13), 1, d(2, 14)),
        (d(2, 14), 1, d(2, 24)),
        (d(2, 13), 3, d(2, 25)),
        (d(2, 10), 7, d(2, 26)),
        (d(2, 16), 0, d(2, 24)),
        (d(2, 24), 0, d(2, 24)),
        (d(2, 27), 1, d(2, 28)),
        (d(2, 28), 1, d(3, 2)),
        (d(9, 30), 1, d(10, 8)),
    ] {
        assert_eq!(c.add_working_days(from, n), want, "{from} + {n}");
    }
    assert_eq!(c.working_days_between(d(2, 13), d(2, 24)), 2);
    assert_eq!(c.working_days_between(d(2, 24), d(2, 13)), 0);
    // A year not loaded counts Monday to Friday.
    let y = NaiveDate::from_ymd_opt(2031, 1, 31).expect("date"); // a Friday
    assert_eq!(
        c.add_working_days(y, 1),
        NaiveDate::from_ymd_opt(2031, 2, 3).expect("date")
    );
}

#[test]
fn bad_calendar_files_are_refused_with_the_line() {
    for (text, reason) in [
        ("year 2026\nholiday 2026-13-01 x", "is not a date"),
        (
            "year 2026\nworkday 2026-02-16 x",
            "is not a Saturday or Sunday",
        ),
        (
            "year 2026\nholiday 2027-01-01 x",
            "outside the years declared",
        ),
        (
            "year 2026\nholiday 2026-02-14 x\nworkday 2026-02-14 y",
            "both a holiday",
        ),
        (
            "year 2026\nvacation 2026-02-14",
            "expected year, holiday or workday",
        ),
        ("year 2026\nholiday 2026-03-01..2026-02-01 x", "a range"),
    ] {
        let e = WorkCalendar::parse(text).expect_err(text);
        assert!(e.to_string().contains(reason), "{text}: {e}");
    }
}
