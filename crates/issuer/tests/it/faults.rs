//! Bank-side faults: double debits, unapplied reversals, late and corrupt clearing lines.

use issuer::Faults;

use super::{day, Req, World};

#[test]
fn double_debit_debits_twice_and_shows_twice() {
    let mut w = World::with_faults(Faults {
        double_debit_permille: 1000,
        ..Faults::default()
    });
    let id = w.open_default();
    let sale = Req::sale(1, 10_000);
    assert_eq!(w.rc(&sale).0, "00");
    assert_eq!(w.acct(id).balance_minor, 80_000);
    assert_eq!(w.bank.clearing_records().len(), 2);
    assert_eq!(w.bank.sms().len(), 2);
    // The reversal undoes the sale once; the extra debit is left for reconciliation.
    w.send_msg(Req::reversal(&sale, false));
    assert_eq!(w.acct(id).balance_minor, 90_000);
    w.assert_books();
}

#[test]
fn reversal_acknowledged_without_being_applied() {
    let mut w = World::with_faults(Faults {
        reversal_ack_without_apply_permille: 1000,
        ..Faults::default()
    });
    let id = w.open_default();
    let sale = Req::sale(1, 10_000);
    w.send(&sale);
    assert_eq!(
        w.send_msg(Req::reversal(&sale, false)).get_str(39),
        Some("00")
    );
    assert_eq!(
        w.send_msg(Req::reversal(&sale, true)).get_str(39),
        Some("00")
    );
    assert_eq!(w.acct(id).balance_minor, 90_000, "still debited");
    assert_eq!(w.bank.sms().len(), 1, "no reversal SMS: nothing happened");
}

/// A credit adjustment (0220, processing code 22) gives back what reconciliation found
/// debited in error: once, never more than the net debit, with an SMS and a clearing
/// line carrying the sale's RRN and authorization code.
#[test]
fn credit_adjustment_gives_back_the_extra_debit_once() {
    let mut w = World::with_faults(Faults {
        double_debit_permille: 1000,
        ..Faults::default()
    });
    let id = w.open_default();
    let sale = Req::sale(1, 10_000);
    let (rc, auth) = w.rc(&sale);
    assert_eq!(rc, "00");
    assert_eq!(w.acct(id).balance_minor, 80_000, "debited twice");
    let adjust = |amount| Req::follow_up(&sale, &auth, "0220", "220000", amount);
    // More than the cardholder is net debited for a sale: refused, no effect.
    let other = Req::sale(2, 1_000);
    let (_, other_auth) = w.rc(&other);
    assert_eq!(w.acct(id).balance_minor, 78_000);
    let too_much = Req::follow_up(&other, &other_auth, "0220", "220000", 2_001);
    assert_eq!(w.rc(&too_much).0, "13");
    assert_eq!(w.acct(id).balance_minor, 78_000);
    // An adjustment of an unknown sale: 25.
    let mut unknown = adjust(10_000);
    unknown.rrn = "000000000099".into();
    unknown.original = Some(("0200", 99));
    assert_eq!(w.rc(&unknown).0, "25");
    // The extra debit, given back.
    assert_eq!(w.rc(&adjust(10_000)).0, "00");
    assert_eq!(w.acct(id).balance_minor, 88_000);
    let mut repeat = adjust(10_000);
    repeat.mti = "0221";
    assert_eq!(
        w.rc(&repeat).0,
        "00",
        "a repeat is answered from the record"
    );
    assert_eq!(w.acct(id).balance_minor, 88_000, "and has no second effect");
    let sms = w.bank.sms().last().expect("sms").clone();
    assert_eq!(sms.kind, issuer::SmsKind::Adjustment);
    assert!(sms.text.contains("差错退款"), "{}", sms.text);
    let line = w.bank.clearing_records().last().expect("line").clone();
    assert_eq!(
        (
            line.kind.as_str(),
            line.rrn.as_str(),
            line.auth_code.as_str(),
            line.amount_minor
        ),
        ("adjustment", "000000000001", auth.as_str(), 10_000)
    );
    // The sale is still there: a reversal now takes back the one remaining debit only.
    w.send_msg(Req::reversal(&sale, false));
    assert_eq!(w.acct(id).balance_minor, 98_000);
    w.assert_books();
}

#[test]
fn late_and_corrupt_clearing_lines() {
    let mut w = World::with_faults(Faults {
        late_clearing_line_permille: 1000,
        ..Faults::default()
    });
    w.open_default();
    w.send(&Req::sale(1, 10_000));
    assert_eq!(w.bank.clearing_csv(day()).lines().count(), 1, "header only");
    let next = day().succ_opt().expect("date");
    assert_eq!(w.bank.clearing_csv(next).lines().count(), 2);

    let mut w = World::with_faults(Faults {
        corrupt_clearing_line_permille: 1000,
        ..Faults::default()
    });
    let id = w.open_default();
    w.send(&Req::sale(1, 10_000));
    assert!(w.bank.clearing_csv(day()).contains(",10001,CNY,sale,"));
    assert_eq!(
        w.acct(id).balance_minor,
        90_000,
        "the account is right, the file is not"
    );
}

#[test]
fn faults_are_off_by_default_and_parse_from_json() {
    let f: Faults =
        serde_json::from_str(r#"{"late_permille": 100, "late_ms": 5000}"#).expect("json");
    assert_eq!(f.late_permille, 100);
    assert_eq!(f.duplicate_permille, 0);
    assert!(!Faults::default().any_transport());
    assert!(serde_json::from_str::<Faults>(r#"{"nope": 1}"#).is_err());
}
