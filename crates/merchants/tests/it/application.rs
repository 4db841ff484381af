//! The automatic checks of a merchant application: a good form passes; each fault
//! is found with its code and field.

use chrono::NaiveDate;
use merchants::application::{
    automatic_checks, mask_id, risk_level, sla_working_days, Account, ApplicantKind, Form, Person,
    TerminalRequest,
};
use merchants::mcc::Table;

fn good() -> Form {
    Form {
        legal_name: "上海示例便利店有限公司".into(),
        kind: ApplicantKind::Company,
        uscc: Some("91110108MA01PQ7K31".into()),
        representative: Person {
            name: "张伟".into(),
            id_number: "110105199003071239".into(),
            phone: "13800138000".into(),
        },
        registered_address: "上海市黄浦区南京东路1号".into(),
        business_address: "上海市黄浦区南京东路1号".into(),
        mcc: "5411".into(),
        settlement_account: Account {
            bank: "中国工商银行上海分行".into(),
            name: "上海示例便利店有限公司".into(),
            number: "1001234509876543210".into(),
        },
        monthly_volume_minor: 30_000_000,
        average_ticket_minor: 4_500,
        terminals: vec![TerminalRequest {
            install_address: "收银台1".into(),
            latitude: 31.24,
            longitude: 121.49,
            encrypts_track: false,
        }],
    }
}

#[test]
fn each_fault_is_found_with_its_code_and_field() {
    let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    assert_eq!(automatic_checks(&good(), today, Table::builtin()), vec![]);
    // (what is changed, the code, the field)
    type Change = fn(&mut Form);
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            |f| f.uscc = Some("91110108MA01PQ7K32".into()),
            "uscc.check",
            "uscc",
        ),
        (|f| f.uscc = None, "uscc.missing", "uscc"),
        (
            |f| f.representative.id_number = "110105199003071230".into(),
            "id.check",
            "representative.id_number",
        ),
        (
            |f| f.representative.phone = "2380013800".into(),
            "phone.invalid",
            "representative.phone",
        ),
        (
            |f| f.settlement_account.name = "某某贸易公司".into(),
            "account.name_mismatch",
            "settlement_account.name",
        ),
        (
            |f| f.settlement_account.number = "6222020000000000001".into(),
            "luhn.check",
            "settlement_account.number",
        ),
        (
            |f| f.settlement_account.number = "12ab".into(),
            "account.number",
            "settlement_account.number",
        ),
        (|f| f.mcc = "0001".into(), "mcc.unknown", "mcc"),
        (|f| f.terminals.clear(), "terminals.count", "terminals"),
        (
            |f| f.terminals[0].latitude = -33.0,
            "terminals.location",
            "terminals[0]",
        ),
        (|f| f.legal_name = " ".into(), "text.invalid", "legal_name"),
        (
            |f| f.monthly_volume_minor = -1,
            "amount.negative",
            "monthly_volume_minor",
        ),
    ];
    for (change, code, field) in cases {
        let mut f = good();
        change(&mut f);
        let found = automatic_checks(&f, today, Table::builtin());
        assert!(
            found.iter().any(|p| p.code == code && p.field == field),
            "{code} on {field} not found in {found:?}"
        );
    }
    // An individual merchant: no USCC needed, the account in the owner's name.
    let mut f = good();
    f.kind = ApplicantKind::Individual;
    f.uscc = None;
    f.settlement_account.name = "张伟".into();
    assert_eq!(automatic_checks(&f, today, Table::builtin()), vec![]);
    assert_eq!(risk_level(&f, Table::builtin()), "medium");
    assert_eq!(risk_level(&good(), Table::builtin()), "low");
    let mut high = good();
    high.mcc = "7995".into();
    assert_eq!(risk_level(&high, Table::builtin()), "high");
    assert_eq!(
        [
            sla_working_days("low"),
            sla_working_days("medium"),
            sla_working_days("high")
        ],
        [3, 5, 7]
    );
    assert_eq!(mask_id("110105199003071239"), "110105********1239");
}
