//! One way to answer a list: a page of it as JSON (`{"items", "next"}`), or all of it
//! (up to [`MAX_EXPORT`]) as CSV with the list's columns, honouring the same filters.
//!
//! The lists served here (settlements, runs, findings, cases, queue entries,
//! terminals, holds, merchants, operators) are read whole and sorted by a stable key;
//! the cursor is the number of items already seen. The transaction list, which can
//! hold millions, pages in the database by transaction id instead.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::routes::{page, MAX_EXPORT};

/// The paging and format parameters every list takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items already seen (the previous page's `next`).
    pub after: Option<i64>,
    /// Page size, 1–500.
    pub limit: Option<usize>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// How a list is answered.
pub enum Format {
    /// A page of JSON.
    Json,
    /// Everything as CSV.
    Csv,
}

impl ListQuery {
    /// The format asked for.
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(_) => Err(ApiError::field("format", "format is json or csv")),
        }
    }
}

/// Answers `items` (already filtered and in their stable order) as the query asks:
/// a page of JSON, or every item as `file.csv` with `columns`.
pub fn answer(
    items: Vec<Value>,
    q: &ListQuery,
    file: &str,
    columns: &[&str],
) -> Result<Response, ApiError> {
    let (after, limit) = page(q.after, q.limit)?;
    match q.format()? {
        Format::Json => {
            let start = usize::try_from(after)
                .unwrap_or(usize::MAX)
                .min(items.len());
            let end = (start + limit).min(items.len());
            let next = (end < items.len()).then_some(end);
            let page: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
            Ok(Json(json!({"items": page, "next": next})).into_response())
        }
        Format::Csv => csv(&items, file, columns),
    }
}

/// `items` as a CSV attachment: one column per name, nested values as JSON text.
pub fn csv(items: &[Value], file: &str, columns: &[&str]) -> Result<Response, ApiError> {
    let internal = |e: csv::Error| {
        tracing::error!(error = %e, file, "CSV export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "CSV export failed",
        )
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns).map_err(internal)?;
    for item in items.iter().take(MAX_EXPORT) {
        let row = columns.iter().map(|c| match &item[*c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        w.write_record(row).map_err(internal)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| internal(e.into_error().into()))?;
    let disposition = format!("attachment; filename=\"{file}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
