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
