//! The OpenAPI 3.1 document (utoipa), built from [`crate::ROUTES`] — the same table the
//! access test walks — with the request bodies' own types (`ToSchema` on the structs
//! the handlers deserialize) and the one error shape. Served at
//! `/api/v1/openapi.json`.

use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, HttpMethod, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, Required, ResponseBuilder, Type,
};

use crate::back_office::{
    AssignBody, BacktestBody, CloseBody, DateBody, NoteBody, PayoutBody, RulesBody, StatusBody,
};
use crate::error::ErrorBody;
use crate::routes::{HoldBody, LoginBody, OperatorBody};
use crate::ROUTES;

fn method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "DELETE" => HttpMethod::Delete,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(min: i64, max: Option<i64>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min as f64))
        .maximum(max.map(|m| m as f64))
}

fn one_of(values: &[&str]) -> ObjectBuilder {
    string().enum_values(Some(values.iter().map(|v| (*v).to_owned())))
}

fn date() -> ObjectBuilder {
    string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
        utoipa::openapi::KnownFormat::Date,
    )))
}

/// A list's own filters, then its paging and format.
fn list(
    mut q: Vec<(&'static str, ObjectBuilder, &'static str)>,
) -> Vec<(&'static str, ObjectBuilder, &'static str)> {
    q.extend([
        (
            "after",
            integer(0, None),
            "the cursor: the previous page's next",
        ),
        ("limit", integer(1, Some(500)), "page size, 1-500 (50)"),
        (
            "format",
            one_of(&["json", "csv"]),
            "json (default) or csv (every match)",
        ),
    ]);
    q
}

/// Whether a query parameter must be given.
fn required(path: &str, name: &str) -> bool {
    matches!(
        (path, name),
        ("/api/v1/merchants/{merchant_id}/statement", "date")
            | ("/api/v1/clearing-files", "business_date")
            | ("/api/v1/applications/{app_id}/documents", "type")
            | ("/api/v1/complaints/report", "from" | "to")
    )
}

/// Routes answering CSV (a list's export or a file).
fn answers_csv(path: &str) -> bool {
    query(path).iter().any(|(n, _, _)| *n == "format") || path.ends_with("/files/{file}")
}

/// The query parameters a route takes: (name, schema, description).
fn query(path: &str) -> Vec<(&'static str, ObjectBuilder, &'static str)> {
    let page = || {
        vec![
            (
                "after",
                integer(0, None),
                "the cursor: the last id of the previous page",
            ),
            ("limit", integer(1, Some(500)), "page size, 1-500 (50)"),
        ]
    };
    match path {
        "/api/v1/transactions" => {
            let mut q = vec![
                ("rrn", string(), "retrieval reference number"),
                ("terminal", string(), "terminal id (field 41)"),
                ("merchant", string(), "merchant id (field 42)"),
                (
                    "masked_pan",
                    string().pattern(Some(r"^[0-9]{6}\*{2,9}[0-9]{4}$")),
                    "first six and last four digits, '*' between; never a clear card number",
                ),
                (
                    "state",
                    one_of(&store::TxnState::ALL.map(store::TxnState::name)),
                    "where it stands",
                ),
                (
                    "kind",
                    one_of(&store::TxnKind::ALL.map(store::TxnKind::name)),
                    "what it is",
                ),
                ("response_code", string(), "field 39 sent to the terminal"),
                (
                    "amount_minor",
                    integer(0, None),
                    "the amount in minor units (with masked_pan and a date window: a cardholder's sale)",
                ),
                (
                    "from",
                    string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Date,
                    ))),
                    "first local business date",
                ),
                (
                    "to",
                    string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Date,
                    ))),
                    "last local business date",
                ),
                (
                    "format",
                    one_of(&["json", "csv"]),
                    "json (default) or csv (every match)",
                ),
            ];
            q.extend(page());
            q
        }
        "/api/v1/audit" => {
            let mut q = page();
            q.push((
                "format",
                one_of(&["json", "csv"]),
                "json (default) or csv (up to 100,000 records from the cursor)",
            ));
            q
        }
        "/api/v1/merchants" | "/api/v1/holds" | "/api/v1/operators" => list(vec![]),
        "/api/v1/applications/{app_id}/documents" => vec![
            (
                "type",
                one_of(&merchants::documents::DocType::ALL.map(|d| d.name())),
                "what the document is (required)",
            ),
            (
                "expires_on",
                date(),
                "until when it is valid (licences, IDs)",
            ),
        ],
        "/api/v1/merchants/{merchant_id}/statement" => {
            vec![("date", date(), "the business date (required)")]
        }
        "/api/v1/clearing-files" => vec![
            (
                "business_date",
                date(),
                "the file's business date (required)",
            ),
            ("name", string(), "what to call the file in the audit trail"),
        ],
        "/api/v1/settlements" => list(vec![
            ("date", date(), "business date"),
            ("merchant", string(), "merchant id"),
        ]),
        "/api/v1/terminals" => list(vec![
            ("merchant", string(), "merchant id"),
            ("status", string(), "terminal status"),
        ]),
        "/api/v1/recon-runs" => list(vec![("date", date(), "business date")]),
        "/api/v1/findings" => list(vec![
            (
                "status",
                string(),
                "open, investigating, auto_resolving, auto_resolved, resolved",
            ),
            ("class", string(), "the finding's class"),
            ("date", date(), "business date"),
        ]),
        "/api/v1/risk/cases" => list(vec![("status", string(), "the case's status")]),
        "/api/v1/complaints" => list(vec![
            (
                "status",
                string(),
                "open, acknowledged, awaiting_approval, resolved, rejected",
            ),
            (
                "due",
                ObjectBuilder::new().schema_type(Type::Boolean),
                "only those due or breached",
            ),
        ]),
        "/api/v1/complaints/report" => vec![
            ("from", date(), "first local date of filing (required)"),
            ("to", date(), "last local date of filing (required)"),
            ("format", one_of(&["json", "csv"]), "json (default) or csv"),
        ],
        "/api/v1/saf" => list(vec![(
            "state",
            one_of(&store::SafState::ALL.map(store::SafState::name)),
            "the entry's state",
        )]),
        "/api/v1/settlement-runs"
        | "/api/v1/risk/rule-sets"
        | "/api/v1/blocklist"
        | "/api/v1/mcc-table"
        | "/api/v1/disputes" => list(vec![]),
        "/api/v1/rereviews" => list(vec![(
            "due",
            ObjectBuilder::new().schema_type(Type::Boolean),
            "only re-reviews due today or before",
        )]),
        "/api/v1/applications" => list(vec![
            ("status", string(), "where the review stands"),
            (
                "overdue",
                ObjectBuilder::new().schema_type(Type::Boolean),
                "only reviews past their SLA",
            ),
        ]),
        _ => Vec::new(),
    }
}

/// The success status of a route: 201 for what creates (a session, a hold, an
/// operator, a run, an ingested file, a back-test), 200 for actions on an object.
fn success(m: &str, path: &str) -> &'static str {
    match (m, path) {
        ("POST", p) if p.contains('{') || p.ends_with("/confirm") => "200",
        ("POST", _) => "201",
        ("DELETE", _) => "204",
        _ => "200",
    }
}

fn body_schema(m: &str, path: &str) -> Option<&'static str> {
    match (m, path) {
        ("POST", "/api/v1/session") => Some("LoginBody"),
        ("POST", "/api/v1/holds") => Some("HoldBody"),
        ("POST", "/api/v1/operators") => Some("OperatorBody"),
        ("POST", "/api/v1/settlement-runs" | "/api/v1/recon-runs") => Some("DateBody"),
        ("POST", "/api/v1/payouts/confirm") => Some("PayoutBody"),
        ("POST", p) if p.ends_with("/assign") && !p.starts_with("/api/v1/applications/") => {
            Some("AssignBody")
        }
        ("POST", p) if p.ends_with("/resolve") || p.ends_with("/note") => Some("NoteBody"),
        ("POST", "/api/v1/risk/cases/{case_id}/close") => Some("CloseBody"),
        ("POST", "/api/v1/risk/backtests") => Some("BacktestBody"),
        ("POST", "/api/v1/risk/rule-sets") => Some("RulesBody"),
        ("POST", "/api/v1/blocklist") => Some("BlockBody"),
        ("POST", "/api/v1/merchants/{merchant_id}/rereview") => Some("RereviewBody"),
        (
            "POST",
            "/api/v1/merchants/{merchant_id}/status" | "/api/v1/terminals/{terminal_id}/status",
        ) => Some("StatusChangeBody"),
        ("POST", "/api/v1/merchants/{merchant_id}/limits") => Some("LimitsBody"),
        ("POST", "/api/v1/complaints") => Some("Filing"),
        ("POST", "/api/v1/complaints/assign") => Some("AssignComplaintsBody"),
        ("POST", "/api/v1/complaints/{complaint_id}/link") => Some("LinkBody"),
        ("POST", "/api/v1/complaints/{complaint_id}/extend") => Some("ExtendBody"),
        ("POST", "/api/v1/complaints/{complaint_id}/resolve") => Some("ResolveBody"),
        ("POST", "/api/v1/complaints/{complaint_id}/refund") => Some("RefundBody"),
        ("POST", "/api/v1/complaints/{complaint_id}/escalate") => Some("EscalateBody"),
        ("POST", "/api/v1/disputes/{dispute_id}") => Some("DisputeBody"),
        ("POST", "/api/v1/terminals/{terminal_id}/location") => Some("LocationBody"),
        ("POST", "/api/v1/applications" | "/api/v1/applications/{app_id}/resubmit") => Some("Form"),
        (
            "POST",
            "/api/v1/applications/{app_id}/submit"
            | "/api/v1/applications/{app_id}/withdraw"
            | "/api/v1/applications/{app_id}/documents"
            | "/api/v1/applications/{app_id}/provision",
        ) => None,
        ("POST", p) if p.starts_with("/api/v1/applications/") => Some("ReviewBody"),
        ("POST", "/api/v1/risk/rule-sets/{version}/status") => Some("StatusBody"),
        _ => None,
    }
}

/// The document.
pub fn document() -> OpenApi {
    let error = || Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let mut paths = PathsBuilder::new().build();
    for (m, path, permission) in ROUTES {
        let mut op = OperationBuilder::new()
            .operation_id(Some(format!(
                "{}_{}",
                m.to_lowercase(),
                path.trim_start_matches("/api/v1/")
                    .replace(['/', '{', '}'], "_")
                    .trim_matches('_')
            )))
            .summary(Some(match permission {
                None => "open".to_owned(),
                Some(p) => format!("needs {p:?}"),
            }));
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(string())),
                );
            }
        }
        // A path's list parameters belong to its GET (POST to a list creates).
        let params = if (*m == "GET" && *path != "/api/v1/applications/{app_id}/documents")
            || *path == "/api/v1/clearing-files"
            || (*m == "POST" && *path == "/api/v1/applications/{app_id}/documents")
        {
            query(path)
        } else {
            Vec::new()
        };
        for (name, schema, description) in params {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(if required(path, name) {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(description))
                    .schema(Some(schema)),
            );
        }
        if let Some(schema) = body_schema(m, path) {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(schema))),
                    )
                    .build(),
            ));
        }
        let ok = success(m, path);
        let mut ok_response = ResponseBuilder::new().description("done");
        if ok != "204" {
            ok_response = ok_response.content(
                "application/json",
                Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
            );
        }
        if *m == "GET" && answers_csv(path) {
            ok_response = ok_response.content("text/csv", Content::new(Some(string())));
        }
        if *m == "POST" && *path == "/api/v1/applications/{app_id}/documents" {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/pdf", Content::new(Some(string())))
                    .content("image/png", Content::new(Some(string())))
                    .content("image/jpeg", Content::new(Some(string())))
                    .build(),
            ));
        }
        if *path == "/api/v1/documents/{sha256}" {
            ok_response = ok_response
                .content("application/pdf", Content::new(Some(string())))
                .content("image/png", Content::new(Some(string())))
                .content("image/jpeg", Content::new(Some(string())));
        }
        if *m == "PUT" && (path.starts_with("/api/v1/calendars/") || *path == "/api/v1/mcc-table") {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("text/plain", Content::new(Some(string())))
                    .build(),
            ));
        }
        if *path == "/api/v1/clearing-files" {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("text/csv", Content::new(Some(string())))
                    .build(),
            ));
        }
        op = op.response(ok, ok_response.build());
        let mut errors = vec![("400", "bad request"), ("500", "posguard failed")];
        if permission.is_some() {
            errors.extend([
                ("401", "no or bad credentials"),
                ("403", "the role may not"),
            ]);
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        } else {
            errors.extend([
                ("401", "wrong name or password"),
                ("429", "too many failed logins"),
            ]);
        }
        if path.contains('{') {
            errors.push(("404", "no such object"));
        }
        if body_schema(m, path).is_some() {
            errors.extend([("413", "body over 64 KiB"), ("415", "not application/json")]);
        }
        if *path == "/api/v1/clearing-files" {
            errors.extend([("413", "file over 64 MiB"), ("415", "not text/csv")]);
        }
        if *m == "PUT" && (path.starts_with("/api/v1/calendars/") || *path == "/api/v1/mcc-table") {
            errors.extend([
                ("409", "the table leaves out an MCC in use"),
                ("413", "body too large"),
                ("415", "not text/plain"),
            ]);
        }
        if *m == "POST" && *path == "/api/v1/risk/rule-sets" {
            errors.push(("409", "the version exists with other rules"));
        }
        if *m == "POST" && path.starts_with("/api/v1/applications/") {
            errors.push((
                "409",
                "the application is not in a state this step applies to",
            ));
        }
        if *m == "POST"
            && (path.starts_with("/api/v1/applications") || *path == "/api/v1/blocklist")
        {
            errors.push(("503", "no PII key configured"));
        }
        if *m == "POST" && path.starts_with("/api/v1/saf/") {
            errors.push(("409", "the entry is done"));
        }
        if *m == "POST" && *path == "/api/v1/operators" {
            errors.push(("409", "the name is taken"));
        }
        if *m == "POST" && *path == "/api/v1/holds" {
            errors.push(("404", "no such merchant or transaction"));
        }
        if *path == "/api/v1/merchants/{merchant_id}/statement" {
            errors.retain(|(s, _)| *s != "404");
            errors.push(("404", "no such merchant"));
        }
        for (status, what) in errors {
            op = op.response(
                status,
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", error())
                    .build(),
            );
        }
        paths.add_path_operation(*path, vec![method(m)], op.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("posguard operators' API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Sessions, roles, audit; transactions, merchants, terminals, holds, settlement, reconciliation, risk cases and back-tests, the store-and-forward queue. See docs/api.md.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schema_from::<ErrorBody>()
                .schema_from::<crate::error::ErrorDetail>()
                .schema_from::<LoginBody>()
                .schema_from::<HoldBody>()
                .schema_from::<OperatorBody>()
                .schema_from::<DateBody>()
                .schema_from::<PayoutBody>()
                .schema_from::<AssignBody>()
                .schema_from::<NoteBody>()
                .schema_from::<CloseBody>()
                .schema_from::<BacktestBody>()
                .schema_from::<RulesBody>()
                .schema_from::<StatusBody>()
                .schema_from::<merchants::application::Form>()
                .schema_from::<merchants::application::Person>()
                .schema_from::<merchants::application::Account>()
                .schema_from::<merchants::application::TerminalRequest>()
                .schema_from::<merchants::application::ApplicantKind>()
                .schema_from::<crate::onboarding::ReviewBody>()
                .schema_from::<crate::onboarding::StatusChangeBody>()
                .schema_from::<crate::onboarding::LimitsBody>()
                .schema_from::<services::complaints::Filing>()
                .schema_from::<crate::complaints::AssignComplaintsBody>()
                .schema_from::<crate::complaints::LinkBody>()
                .schema_from::<crate::complaints::ExtendBody>()
                .schema_from::<crate::complaints::ResolveBody>()
                .schema_from::<crate::complaints::RefundBody>()
                .schema_from::<crate::complaints::EscalateBody>()
                .schema_from::<crate::complaints::DisputeBody>()
                .schema_from::<services::complaints::DisputeEvidence>()
                .schema_from::<crate::onboarding::LocationBody>()
                .schema_from::<crate::onboarding::BlockBody>()
                .schema_from::<crate::onboarding::RereviewBody>()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                .build(),
        ))
        .build()
}
