//! A merchant application as the applicant fills it in, and the automatic checks run
//! at submission. The form's fields take any text: what is wrong with them is a
//! [`Problem`] on the draft, shown to the applicant, not a refusal of the request (the ones that need no store: duplicates and the blocklist are the
//! services' — they look at the other merchants). Every problem has a stable code and
//! names its field.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::checks;
use crate::mcc;

/// Company or individual (个体工商户 / a person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApplicantKind {
    /// A company with a unified social credit code.
    Company,
    /// An individual merchant, identified by the owner's resident ID.
    Individual,
}

/// The person who represents the merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Name as on the ID card.
    pub name: String,
    /// Resident identity number (stored tokenized and masked, never clear).
    pub id_number: String,
    /// Mobile phone (11 digits).
    pub phone: String,
}

/// Where the merchant is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The bank.
    pub bank: String,
    /// The account's name: the legal name (company) or the owner's (individual).
    pub name: String,
    /// The account number (digits).
    pub number: String,
}

/// A terminal asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TerminalRequest {
    /// Where it is installed.
    pub install_address: String,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// A terminal model that encrypts track 2 under a track key of its own (key profile
    /// `004`); else it is provisioned for the PIN and MAC keys alone (`003`).
    #[serde(default)]
    pub encrypts_track: bool,
}

/// The application's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Form {
    /// Legal name (company) or the shop's registered name (individual).
    pub legal_name: String,
    /// Company or individual.
    pub kind: ApplicantKind,
    /// Unified social credit code (a company's; an individual merchant may have one).
    pub uscc: Option<String>,
    /// The legal representative (an individual merchant's owner).
    pub representative: Person,
    /// Registered address.
    pub registered_address: String,
    /// Business address.
    pub business_address: String,
    /// Merchant category code.
    pub mcc: String,
    /// Where the merchant is paid.
    pub settlement_account: Account,
    /// Expected monthly volume, minor units.
    pub monthly_volume_minor: i64,
    /// Expected average ticket, minor units.
    pub average_ticket_minor: i64,
    /// Terminals asked for (1 to 50).
    pub terminals: Vec<TerminalRequest>,
}

/// One problem found: a stable code, the field, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable, for programs (`uscc.check`, `account.name_mismatch`, …).
    pub code: String,
    /// The field at fault (`uscc`, `representative.id_number`, …).
    pub field: String,
    /// For people.
    pub message: String,
}

fn problem(code: &str, field: &str, message: impl Into<String>) -> Problem {
    Problem {
        code: code.into(),
        field: field.into(),
        message: message.into(),
    }
}

/// The problems a reviewer may override, with a recorded reason: a duplicate (a branch
/// of the same company, the same owner's second shop) and the check character of an
/// early pilot-region unified social credit code (issued with one that does not
/// verify, `shared/spec/people.md` §1.1). Everything else — the blocklist, a closed
/// merchant's details, documents, the account's name, an ID number — must be fixed.
pub const OVERRIDABLE: [&str; 3] = ["duplicate", "uscc.check", "uscc.org_check"];

/// Terminals one application may ask for at most.
pub const MAX_TERMINALS: usize = 50;

/// The checks that need nothing but the form (and today, for birth dates): check
/// digits, the account's name against the legal or the owner's name, the MCC, the
/// shape of every field. An empty list: the form passes.
pub fn automatic_checks(f: &Form, today: NaiveDate, mccs: &mcc::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    let text = |out: &mut Vec<Problem>, field: &str, v: &str, max: usize| {
        if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
            out.push(problem(
                "text.invalid",
                field,
                format!("{field} is 1 to {max} printable characters"),
            ));
        }
    };
    text(&mut out, "legal_name", &f.legal_name, 200);
    text(&mut out, "representative.name", &f.representative.name, 100);
    text(&mut out, "registered_address", &f.registered_address, 300);
    text(&mut out, "business_address", &f.business_address, 300);
    text(
        &mut out,
        "settlement_account.bank",
        &f.settlement_account.bank,
        100,
    );
    text(
        &mut out,
        "settlement_account.name",
        &f.settlement_account.name,
        200,
    );
    match (&f.uscc, f.kind) {
        (Some(code), _) => {
            if let Err(e) = checks::uscc(code) {
                out.push(problem(e.code, "uscc", e.message));
            }
        }
        (None, ApplicantKind::Company) => out.push(problem(
            "uscc.missing",
            "uscc",
            "a company gives its unified social credit code",
        )),
        (None, ApplicantKind::Individual) => {}
    }
    if let Err(e) = checks::resident_id(&f.representative.id_number, today) {
        out.push(problem(e.code, "representative.id_number", e.message));
    }
    let phone = &f.representative.phone;
    if !(phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit())) {
        out.push(problem(
            "phone.invalid",
            "representative.phone",
            "a mobile number is 11 digits starting with 1",
        ));
    }
    // The money goes to the merchant itself (一清): the account's name is the legal
    // name, or for an individual merchant the owner's own.
    let owner = match f.kind {
        ApplicantKind::Company => f.legal_name.trim(),
        ApplicantKind::Individual => f.representative.name.trim(),
    };
    if f.settlement_account.name.trim() != owner {
        out.push(problem(
            "account.name_mismatch",
            "settlement_account.name",
            format!(
                "the settlement account must be in the name of {owner:?}, not {:?}",
                f.settlement_account.name
            ),
        ));
    }
    let number = &f.settlement_account.number;
    if !(8..=32).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        out.push(problem(
            "account.number",
            "settlement_account.number",
            "an account number is 8 to 32 digits",
        ));
    } else if checks::is_card_form(number) {
        if let Err(e) = checks::luhn(number) {
            out.push(problem(e.code, "settlement_account.number", e.message));
        }
    }
    if mccs.lookup(&f.mcc).is_none() {
        out.push(problem(
            "mcc.unknown",
            "mcc",
            format!(
                "{:?} is not a merchant category code posguard accepts",
                f.mcc
            ),
        ));
    }
    if f.monthly_volume_minor < 0 || f.average_ticket_minor < 0 {
        out.push(problem(
            "amount.negative",
            "monthly_volume_minor",
            "expected volumes are 0 or more",
        ));
    }
    if f.terminals.is_empty() || f.terminals.len() > MAX_TERMINALS {
        out.push(problem(
            "terminals.count",
            "terminals",
            format!("ask for 1 to {MAX_TERMINALS} terminals"),
        ));
    }
    for (i, t) in f.terminals.iter().enumerate() {
        let field = format!("terminals[{i}]");
        text(
            &mut out,
            &format!("{field}.install_address"),
            &t.install_address,
            300,
        );
        let in_china = (3.0..=54.0).contains(&t.latitude) && (73.0..=136.0).contains(&t.longitude);
        if !in_china {
            out.push(problem(
                "terminals.location",
                &field,
                "the install location's coordinates are not in China",
            ));
        }
    }
    out
}

/// The review's risk level: high for a high-risk MCC or a large expected volume.
pub fn risk_level(f: &Form, mccs: &mcc::Table) -> &'static str {
    let high_mcc = mccs.lookup(&f.mcc).is_some_and(|m| m.high_risk);
    if high_mcc || f.monthly_volume_minor > 500_000_000 {
        "high"
    } else if f.kind == ApplicantKind::Individual || f.monthly_volume_minor > 50_000_000 {
        "medium"
    } else {
        "low"
    }
}

/// Working days the review may take, by risk level (`shared/spec/people.md` §2: 3–7
/// at banks).
pub fn sla_working_days(risk: &str) -> u32 {
    match risk {
        "high" => 7,
        "medium" => 5,
        _ => 3,
    }
}

/// Masks a personal ID number for display: the first 6 and last 4 characters.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..6].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 10));
    out.extend(&chars[chars.len() - 4..]);
    out
}
