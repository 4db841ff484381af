//! The reference tables an administrator loads in place of the shipped ones: a year of
//! the working-day calendar (public holidays and make-up working days, from the State
//! Council's notice each November) and the MCC table (fee class, risk, licence). Both
//! are kept in the store in their file formats, validated before they are written and
//! audited; review SLAs, settlement's T+1 and D+0 and exception deadlines count on the
//! calendar [`calendar`] gives, the application checks on the table [`mcc_table`]
//! gives.

use chrono::Datelike as _;
use merchants::calendar::WorkCalendar;
use merchants::mcc;
use store::{Backend, ReferenceRow, Write};

use crate::accounts::Actor;
use crate::{Context, Result, ServiceError};

/// A calendar year loaded is at most this long (a year's notice is a page).
pub const MAX_CALENDAR: usize = 16 * 1024;

/// An MCC table loaded is at most this long.
pub const MAX_MCC_TABLE: usize = 256 * 1024;

/// Years a calendar may be loaded for.
pub const YEARS: std::ops::RangeInclusive<i32> = 2020..=2100;

fn calendar_name(year: i32) -> String {
    format!("calendar:{year}")
}

/// The working-day calendar: the shipped years, each year an administrator loaded in
/// place of the shipped one.
pub fn calendar(db: &mut dyn Backend) -> Result<WorkCalendar> {
    let mut c = WorkCalendar::china();
    for r in db.references().ctx("read reference tables")? {
        if r.name.starts_with("calendar:") {
            let loaded = WorkCalendar::parse(&r.body)
                .map_err(|e| ServiceError::Invalid(format!("stored {}: {e}", r.name)))?;
            c.replace_years(loaded);
        }
    }
    Ok(c)
}

/// The MCC table: the one an administrator loaded, else the shipped one.
pub fn mcc_table(db: &mut dyn Backend) -> Result<mcc::Table> {
    match db
        .references()
        .ctx("read reference tables")?
        .into_iter()
        .find(|r| r.name == "mcc")
    {
        Some(r) => mcc::Table::parse(&r.body)
            .map_err(|e| ServiceError::Invalid(format!("stored MCC table: {e}"))),
        None => Ok(mcc::Table::builtin().clone()),
    }
}

/// Loads a calendar year (`year YYYY`, `holiday FROM[..TO] name`, `workday DATE
/// name`): it must declare exactly that year and read whole. Audited with the
/// holidays and working days counted.
pub fn load_calendar(
    db: &mut dyn Backend,
    year: i32,
    body: &str,
    actor: &Actor,
    at: &str,
) -> Result<ReferenceRow> {
    if !YEARS.contains(&year) {
        return Err(ServiceError::BadInput(format!(
            "a calendar year is {} to {}",
            YEARS.start(),
            YEARS.end()
        )));
    }
    if body.len() > MAX_CALENDAR {
        return Err(ServiceError::BadInput(format!(
            "a calendar year is at most {MAX_CALENDAR} bytes"
        )));
    }
    let c = WorkCalendar::parse(body)
        .map_err(|e| ServiceError::BadInput(format!("the calendar: {e}")))?;
    let years: Vec<i32> = c.years().collect();
    if years != [year] {
        return Err(ServiceError::BadInput(format!(
            "the calendar must declare `year {year}` and no other (it declares {years:?})"
        )));
    }
    let name = calendar_name(year);
    let in_force = calendar(db)?;
    let row = ReferenceRow {
        name: name.clone(),
        body: body.into(),
        loaded_by: actor.name.clone(),
        loaded_at: at.into(),
    };
    let summary = |c: &WorkCalendar, year: i32| {
        let days = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
            .into_iter()
            .flat_map(|d| d.iter_days().take_while(move |x| x.year() == year));
        let off = days.filter(|d| !c.is_working_day(*d)).count();
        serde_json::json!({"year": year, "days_off": off, "loaded": c.is_loaded(year)})
    };
    let before_json = summary(&in_force, year);
    db.apply(&[
        Write::Reference(row.clone()),
        actor.audit(
            at,
            "reference.calendar",
            &format!("reference:{name}"),
            before_json,
            summary(&c, year),
        ),
    ])
    .ctx("write the calendar")?;
    Ok(row)
}

/// Loads the MCC table (`code | fee class | risk | licence | name` a line): it must
/// read whole and keep every MCC a merchant or an open application has. Audited with
/// the MCCs added and removed.
pub fn load_mcc_table(
    db: &mut dyn Backend,
    body: &str,
    actor: &Actor,
    at: &str,
) -> Result<ReferenceRow> {
    if body.len() > MAX_MCC_TABLE {
        return Err(ServiceError::BadInput(format!(
            "an MCC table is at most {MAX_MCC_TABLE} bytes"
        )));
    }
    let table = mcc::Table::parse(body)
        .map_err(|e| ServiceError::BadInput(format!("the MCC table: {e}")))?;
    let in_use: std::collections::BTreeSet<String> = db
        .merchants()
        .ctx("read merchants")?
        .into_iter()
        .map(|m| m.mcc)
        .chain(
            db.applications(None)
                .ctx("read applications")?
                .into_iter()
                .filter(|a| {
                    a.merchant_id.is_none() && a.status != "rejected" && a.status != "withdrawn"
                })
                .map(|a| a.mcc),
        )
        .collect();
    let missing: Vec<&String> = in_use
        .iter()
        .filter(|m| table.lookup(m).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "the table leaves out MCCs in use: {}",
            missing
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let before = mcc_table(db)?;
    let codes = |t: &mcc::Table| -> std::collections::BTreeSet<String> {
        t.entries().iter().map(|m| m.code.clone()).collect()
    };
    let (old, new) = (codes(&before), codes(&table));
    let row = ReferenceRow {
        name: "mcc".into(),
        body: body.into(),
        loaded_by: actor.name.clone(),
        loaded_at: at.into(),
    };
    db.apply(&[
        Write::Reference(row.clone()),
        actor.audit(
            at,
            "reference.mcc",
            "reference:mcc",
            serde_json::json!({"mccs": old.len()}),
            serde_json::json!({
                "mccs": new.len(),
                "added": new.difference(&old).collect::<Vec<_>>(),
                "removed": old.difference(&new).collect::<Vec<_>>(),
            }),
        ),
    ])
    .ctx("write the MCC table")?;
    Ok(row)
}
