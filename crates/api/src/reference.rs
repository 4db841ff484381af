//! The reference tables an administrator loads: a year of the working-day calendar
//! and the MCC table, each as `text/plain` in its file format, validated and audited
//! (`services::reference`); anyone signed in reads them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Datelike as _;
use serde_json::{json, Value};

use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::Api;

/// The body as UTF-8 text sent as `text/plain`.
fn text_body(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let plain = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the table as text/plain in its file format",
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::field("body", "the table is UTF-8 text"))
}

fn year_of(s: &str) -> Result<i32, ApiError> {
    s.parse::<i32>()
        .ok()
        .filter(|y| services::reference::YEARS.contains(y))
        .ok_or_else(|| ApiError::field("year", "a year from 2020 to 2100"))
}

/// Loads a year of the working-day calendar in place of the shipped one.
pub async fn put_calendar(
    State(api): State<Api>,
    p: Principal,
    Path(year): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ReferenceWrite)?;
    let year = year_of(&year)?;
    let text = text_body(&headers, &body)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| {
            Ok(services::reference::load_calendar(
                db, year, &text, &actor, &at,
            )?)
        })
        .await?;
    Ok(Json(
        json!({"name": row.name, "loaded_by": row.loaded_by, "loaded_at": row.loaded_at}),
    ))
}

/// A year of the calendar as posguard counts on it: the weekdays off (public
/// holidays) and the weekend days worked (make-up working days), and whether the year
/// is the shipped one, an administrator's, or not known (weekends only).
pub async fn get_calendar(
    State(api): State<Api>,
    p: Principal,
    Path(year): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::LoggedIn)?;
    let year = year_of(&year)?;
    let (calendar, loaded) = api
        .db(move |db| {
            let loaded = db
                .references()
                .map_err(services::ServiceError::from)?
                .into_iter()
                .find(|r| r.name == format!("calendar:{year}"));
            Ok((services::reference::calendar(db)?, loaded))
        })
        .await?;
    let days = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .into_iter()
        .flat_map(|d| d.iter_days().take_while(move |x| x.year() == year));
    let weekend = |d: &chrono::NaiveDate| d.weekday().number_from_monday() >= 6;
    let (mut off, mut worked) = (Vec::new(), Vec::new());
    for d in days {
        match (weekend(&d), calendar.is_working_day(d)) {
            (false, false) => off.push(d.to_string()),
            (true, true) => worked.push(d.to_string()),
            _ => {}
        }
    }
    let source = match (&loaded, calendar.is_loaded(year)) {
        (Some(_), _) => "loaded",
        (None, true) => "shipped",
        (None, false) => "weekends only",
    };
    Ok(Json(json!({
        "year": year,
        "source": source,
        "loaded_by": loaded.as_ref().map(|r| r.loaded_by.clone()),
        "loaded_at": loaded.as_ref().map(|r| r.loaded_at.clone()),
        "holidays": off,
        "workdays": worked,
    })))
}

/// Loads the MCC table in place of the shipped one.
pub async fn put_mcc_table(
    State(api): State<Api>,
    p: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(Permission::ReferenceWrite)?;
    let text = text_body(&headers, &body)?;
    let (actor, at) = (p.actor(), api.now().to_rfc3339());
    let row = api
        .db(move |db| Ok(services::reference::load_mcc_table(db, &text, &actor, &at)?))
        .await?;
    Ok(Json(
        json!({"name": row.name, "loaded_by": row.loaded_by, "loaded_at": row.loaded_at}),
    ))
}

/// The MCC table posguard checks applications on (a list: pages and `format=csv`).
pub async fn get_mcc_table(
    State(api): State<Api>,
    p: Principal,
    q: Result<
        axum::extract::Query<crate::lists::ListQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<axum::response::Response, ApiError> {
    p.require(Permission::LoggedIn)?;
    let axum::extract::Query(q) = crate::routes::query(q)?;
    let table = api
        .db(move |db| Ok(services::reference::mcc_table(db)?))
        .await?;
    let items: Vec<Value> = table
        .entries()
        .iter()
        .map(|m| {
            json!({"mcc": m.code, "fee_class": m.class.name(), "high_risk": m.high_risk,
                   "licence": m.licence, "name": m.name})
        })
        .collect();
    crate::lists::answer(
        items,
        &q,
        "mcc-table",
        &["mcc", "fee_class", "high_risk", "licence", "name"],
    )
}
