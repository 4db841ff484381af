//! The documents an application carries: their types, the files accepted (PDF, PNG,
//! JPEG up to [`MAX_DOCUMENT`] bytes, recognised by their first bytes, not by what
//! the sender says), which ones a merchant must give (by company or individual and by
//! the MCC's industry licence) and how long they must still be valid.

use chrono::{Months, NaiveDate};

use crate::application::{ApplicantKind, Problem};

/// The largest document accepted (bytes).
pub const MAX_DOCUMENT: usize = 10 * 1024 * 1024;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DocType {
    /// Business licence (营业执照).
    BusinessLicence,
    /// Legal representative's ID, front.
    IdFront,
    /// Legal representative's ID, back.
    IdBack,
    /// Proof of the settlement account.
    AccountProof,
    /// Lease or deed of the premises.
    PremisesProof,
    /// Shop front and interior.
    ShopPhoto,
    /// The industry licence the MCC needs.
    IndustryLicence,
}

impl DocType {
    /// Every type.
    pub const ALL: [DocType; 7] = [
        DocType::BusinessLicence,
        DocType::IdFront,
        DocType::IdBack,
        DocType::AccountProof,
        DocType::PremisesProof,
        DocType::ShopPhoto,
        DocType::IndustryLicence,
    ];

    /// The name stored and in the API.
    pub fn name(self) -> &'static str {
        match self {
            DocType::BusinessLicence => "business_licence",
            DocType::IdFront => "id_front",
            DocType::IdBack => "id_back",
            DocType::AccountProof => "account_proof",
            DocType::PremisesProof => "premises_proof",
            DocType::ShopPhoto => "shop_photo",
            DocType::IndustryLicence => "industry_licence",
        }
    }

    /// The type of a name.
    pub fn parse(s: &str) -> Option<DocType> {
        DocType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Whether the document has an expiry date that must be given (licences, IDs).
    pub fn expires(self) -> bool {
        matches!(
            self,
            DocType::BusinessLicence | DocType::IdBack | DocType::IndustryLicence
        )
    }
}

/// The file types accepted, recognised from the content.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// The documents a merchant must give.
pub fn required(kind: ApplicantKind, mcc: &str, mccs: &crate::mcc::Table) -> Vec<DocType> {
    let mut out = match kind {
        ApplicantKind::Company => vec![
            DocType::BusinessLicence,
            DocType::IdFront,
            DocType::IdBack,
            DocType::AccountProof,
            DocType::PremisesProof,
            DocType::ShopPhoto,
        ],
        ApplicantKind::Individual => vec![
            DocType::IdFront,
            DocType::IdBack,
            DocType::AccountProof,
            DocType::ShopPhoto,
        ],
    };
    if mccs.lookup(mcc).is_some_and(|m| m.licence.is_some()) {
        out.push(DocType::IndustryLicence);
    }
    out
}

/// Months a document must still be valid at submission.
pub const MIN_VALID_MONTHS: u32 = 6;

/// The documents' problems: missing ones, and ones expiring within
/// [`MIN_VALID_MONTHS`] of `today` (or with no expiry date where one is needed).
pub fn check(
    kind: ApplicantKind,
    mcc: &str,
    mccs: &crate::mcc::Table,
    given: &[(DocType, Option<NaiveDate>)],
    today: NaiveDate,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let limit = today
        .checked_add_months(Months::new(MIN_VALID_MONTHS))
        .unwrap_or(today);
    for need in required(kind, mcc, mccs) {
        let docs: Vec<&Option<NaiveDate>> = given
            .iter()
            .filter(|(t, _)| *t == need)
            .map(|(_, e)| e)
            .collect();
        if docs.is_empty() {
            out.push(Problem {
                code: "document.missing".into(),
                field: format!("documents.{}", need.name()),
                message: format!("the {} is missing", need.name().replace('_', " ")),
            });
            continue;
        }
        if need.expires() {
            let valid = docs.iter().any(|e| e.is_some_and(|d| d >= limit));
            if !valid {
                out.push(Problem {
                    code: "document.expiring".into(),
                    field: format!("documents.{}", need.name()),
                    message: format!(
                        "the {} must be valid until at least {limit} ({MIN_VALID_MONTHS} months)",
                        need.name().replace('_', " ")
                    ),
                });
            }
        }
    }
    out
}
