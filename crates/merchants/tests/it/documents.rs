//! Which documents an application needs, how long they must last, what files pass.

use chrono::NaiveDate;
use merchants::application::ApplicantKind;
use merchants::documents::{check, required, sniff, DocType};
use merchants::mcc::Table;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

#[test]
fn completeness_expiry_and_file_types() {
    let today = d("2026-12-01");
    let company = required(ApplicantKind::Company, "5411", Table::builtin());
    assert!(
        company.contains(&DocType::IndustryLicence),
        "a grocery needs a food licence"
    );
    assert!(!required(ApplicantKind::Company, "5311", Table::builtin())
        .contains(&DocType::IndustryLicence));
    assert!(
        !required(ApplicantKind::Individual, "5311", Table::builtin())
            .contains(&DocType::BusinessLicence)
    );
    let all: Vec<(DocType, Option<NaiveDate>)> = company
        .iter()
        .map(|t| (*t, t.expires().then(|| d("2030-01-01"))))
        .collect();
    assert_eq!(
        check(
            ApplicantKind::Company,
            "5411",
            Table::builtin(),
            &all,
            today
        ),
        vec![]
    );
    // (what changes, the problem's code and field)
    type Given = Vec<(DocType, Option<NaiveDate>)>;
    let cases: Vec<(Given, &str, &str)> = vec![
        (
            all.iter()
                .filter(|(t, _)| *t != DocType::ShopPhoto)
                .cloned()
                .collect(),
            "document.missing",
            "documents.shop_photo",
        ),
        (
            all.iter()
                .map(|(t, e)| {
                    (
                        *t,
                        if *t == DocType::BusinessLicence {
                            Some(d("2027-05-31"))
                        } else {
                            *e
                        },
                    )
                })
                .collect(),
            "document.expiring",
            "documents.business_licence",
        ),
        (
            all.iter()
                .map(|(t, e)| (*t, if *t == DocType::IdBack { None } else { *e }))
                .collect(),
            "document.expiring",
            "documents.id_back",
        ),
    ];
    for (given, code, field) in cases {
        let p = check(
            ApplicantKind::Company,
            "5411",
            Table::builtin(),
            &given,
            today,
        );
        assert!(
            p.iter().any(|p| p.code == code && p.field == field),
            "{code} {field}: {p:?}"
        );
    }
    // Exactly six months left passes.
    let edge: Vec<(DocType, Option<NaiveDate>)> = all
        .iter()
        .map(|(t, e)| (*t, e.map(|_| d("2027-06-01"))))
        .collect();
    assert_eq!(
        check(
            ApplicantKind::Company,
            "5411",
            Table::builtin(),
            &edge,
            today
        ),
        vec![]
    );
    assert_eq!(sniff(b"%PDF-1.7 ..."), Some("application/pdf"));
    assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
    assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
    assert_eq!(sniff(b"MZ\x90\x00"), None);
    assert_eq!(sniff(b""), None);
    for t in DocType::ALL {
        assert_eq!(DocType::parse(t.name()), Some(t));
    }
}
