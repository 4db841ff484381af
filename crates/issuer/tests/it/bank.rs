//! Scenarios through `Bank::handle`: money, book, SMS and clearing file.

use cardsec::{DataKey, Pan};
use expect_test::{expect, Expect};
use iso8583::{Message, Mti};
use issuer::{BookAccount, CardStatus, ClearKeys, MAX_ACCOUNT_MINOR};

use super::{day, luhn_pan, new_account, now, Req, World, PAN, PIN};

fn sms_texts(w: &World) -> String {
    w.bank
        .sms()
        .iter()
        .map(|s| format!("#{} to {} ({:?}): {}\n", s.seq, s.phone, s.kind, s.text))
        .collect()
}

fn check_csv(w: &World, expect: Expect) {
    let csv = w.bank.clearing_csv(day());
    assert!(!csv.contains(PAN), "full PAN in the clearing file");
    expect.assert_eq(&csv);
}

fn no_pan_anywhere(w: &World) {
    for s in w.bank.sms() {
        assert!(!s.text.contains(PAN), "full PAN in an SMS");
    }
    assert!(!format!("{:?}", w.bank).contains(PAN));
}

#[test]
fn sale_debits_notifies_and_clears() {
    let mut w = World::new();
    let id = w.open_default();
    let reply = w.send(&Req::sale(1, 12_345));
    assert_eq!(reply.get_str(39), Some("00"));
    assert_eq!(reply.get_str(38), Some("000001"));
    assert_eq!(reply.get_str(37), Some("000000000001"));
    assert_eq!(reply.get_str(11), Some("000001"));
    assert_eq!(reply.get_str(41), Some("TERM0001"));
    assert!(
        !reply.has(2) && !reply.has(52) && !reply.has(35),
        "reply carries no card data"
    );
    assert!(
        reply.has(64) && !reply.has(128),
        "no secondary bitmap: MAC in 64"
    );

    let a = w.acct(id);
    assert_eq!(
        (a.balance_minor, a.available_minor, a.daily_spent_minor),
        (87_655, 87_655, 12_345)
    );
    w.assert_books();
    assert_eq!(
        w.bank
            .book()
            .balance(BookAccount::Settlement, domain::Currency::CNY),
        12_345
    );
    expect![[r#"
        #1 to 13800000000 (Sale): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai消费，支出123.45 CNY，可用余额876.55 CNY。
    "#]]
    .assert_eq(&sms_texts(&w));
    check_csv(
        &w,
        expect![[r#"
            rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time
            000000000001,000001,000001,TERM0001,MERCHANT0000001,622202*********0128,t7.6f34478927af600c8aaafcc1bf63b7e73b4436e9,12345,CNY,sale,2025-03-21T14:05:09
        "#]],
    );
    no_pan_anywhere(&w);
}

#[test]
fn clearing_token_is_what_the_acquirer_computes() {
    let mut w = World::new();
    w.open_default();
    w.send(&Req::sale(1, 100));
    let keys = ClearKeys::demo();
    let dk = DataKey::new(keys.token_key_id, &hex_bytes(&keys.token_key_hex)).expect("data key");
    let token = dk.tokenize(&Pan::new(PAN).expect("PAN")).to_string();
    assert_eq!(w.bank.clearing_records()[0].token, token);
    assert!(w.bank.clearing_csv(day()).contains(&token));
    let next_day = day().succ_opt().expect("date");
    assert_eq!(
        w.bank.clearing_csv(next_day).lines().count(),
        1,
        "only the header"
    );
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn english_notifications() {
    let mut w = World::new();
    let pan = super::luhn_pan("411111111111111");
    let id = w
        .bank
        .open_account(
            now(),
            issuer::NewAccount {
                pan: Pan::new(&pan).expect("PAN"),
                pin: cardsec::Pin::new(super::PIN).expect("PIN"),
                expiry: cardsec::Expiry::parse("2712").expect("expiry"),
                currency: domain::Currency::CNY,
                balance_minor: 5_000,
                credit_limit_minor: 0,
                daily_limit_minor: 100_000,
                status: issuer::CardStatus::Active,
                holder: "Jane Doe".into(),
                phone: "+85290000000".into(),
                language: issuer::Language::En,
            },
        )
        .expect("opens");
    let sale = Req {
        pan: Some(pan.clone()),
        ..Req::sale(1, 1_234)
    };
    assert_eq!(w.rc(&sale).0, "00");
    w.send_msg(Req::reversal(&sale, false));
    expect![[r#"
        #1 to +85290000000 (Sale): [posguard SimBank] Card 411111******1111: sale at Lucky Noodles Shanghai on 2025-03-21 14:05, debit 12.34 CNY. Available balance 37.66 CNY.
        #2 to +85290000000 (Reversal): [posguard SimBank] Card 411111******1111: reversal at Lucky Noodles Shanghai on 2025-03-21 14:05, credit 12.34 CNY. Available balance 50.00 CNY.
    "#]]
    .assert_eq(&sms_texts(&w));
    assert_eq!(w.bank.sms_for(id).len(), 2);
    assert!(w.bank.sms().iter().all(|s| !s.text.contains(&pan)));
}

#[test]
fn void_credits_the_sale_back_once() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 20_000);
    let (rc, auth) = w.rc(&sale);
    assert_eq!(rc, "00");
    let void = Req::follow_up(&sale, &auth, "0200", "200000", 20_000);
    assert_eq!(w.rc(&void), ("00".into(), "000002".into()));
    assert_eq!(
        w.rc(&void),
        ("00".into(), "000002".into()),
        "a repeat changes nothing"
    );
    let a = w.acct(id);
    assert_eq!((a.balance_minor, a.daily_spent_minor), (100_000, 0));
    w.assert_books();
    expect![[r#"
        #1 to 13800000000 (Sale): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai消费，支出200.00 CNY，可用余额800.00 CNY。
        #2 to 13800000000 (Void): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai撤销，存入200.00 CNY，可用余额1000.00 CNY。
    "#]]
    .assert_eq(&sms_texts(&w));
    check_csv(
        &w,
        expect![[r#"
            rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time
            000000000001,000001,000001,TERM0001,MERCHANT0000001,622202*********0128,t7.6f34478927af600c8aaafcc1bf63b7e73b4436e9,20000,CNY,sale,2025-03-21T14:05:09
            000000000001,000002,500001,TERM0001,MERCHANT0000001,622202*********0128,t7.6f34478927af600c8aaafcc1bf63b7e73b4436e9,20000,CNY,void,2025-03-21T14:05:09
        "#]],
    );
    // Another void under its own RRN finds the sale through field 90.
    let mut wrong_amount = Req::follow_up(&sale, &auth, "0200", "200000", 1);
    wrong_amount.rrn = "000000000009".into();
    assert_eq!(
        w.rc(&wrong_amount).0,
        "13",
        "a void is for the whole amount"
    );
    let mut wrong_auth = Req::follow_up(&sale, "999999", "0200", "200000", 20_000);
    wrong_auth.rrn = "000000000010".into();
    assert_eq!(
        w.rc(&wrong_auth).0,
        "25",
        "the authorization code must match"
    );
    let mut again = Req::follow_up(&sale, &auth, "0200", "200000", 20_000);
    again.rrn = "000000000011".into();
    let reply = w.send(&again);
    assert_eq!(
        reply.get_str(39),
        Some("00"),
        "already voided: approved, no effect"
    );
    assert!(
        reply.has(128) && !reply.has(64),
        "field 90 echoed: MAC in 128"
    );
    assert_eq!(w.acct(id).balance_minor, 100_000);
    assert_eq!(w.bank.sms().len(), 2);
}

#[test]
fn refunds_are_bounded_by_the_sale() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 30_000);
    let (_, auth) = w.rc(&sale);
    let refund = Req::follow_up(&sale, &auth, "0220", "200000", 10_000);
    assert_eq!(w.rc(&refund).0, "00");
    assert_eq!(w.acct(id).balance_minor, 80_000);
    // A second refund under its own RRN, found through field 90.
    let mut second = Req::follow_up(&sale, &auth, "0220", "200000", 25_000);
    second.rrn = "000000000077".into();
    assert_eq!(w.rc(&second).0, "13", "more than what is left of the sale");
    second.amount_minor = Some(20_000);
    assert_eq!(w.rc(&second).0, "94", "same RRN, other amount");
    let mut third = second.clone();
    third.rrn = "000000000078".into();
    assert_eq!(w.rc(&third).0, "00");
    assert_eq!(w.acct(id).balance_minor, 100_000);
    w.assert_books();
    let kinds = w.clearing_kinds();
    assert_eq!(kinds, ["sale", "refund", "refund"]);
    assert_eq!(w.bank.sms().len(), 3);
}

#[test]
fn preauth_holds_and_completion_debits() {
    let mut w = World::new();
    let id = w.open_default();
    let pre = Req::preauth(1, 50_000);
    let (rc, auth) = w.rc(&pre);
    assert_eq!(rc, "00");
    let a = w.acct(id);
    assert_eq!(
        (a.balance_minor, a.holds_minor, a.available_minor),
        (100_000, 50_000, 50_000)
    );
    assert_eq!(
        w.rc(&Req::sale(2, 60_000)).0,
        "51",
        "the hold reduces what is available"
    );
    assert!(w.bank.sms().is_empty() && w.bank.clearing_records().is_empty());

    let completion = Req::follow_up(&pre, &auth, "0200", "000000", 60_000);
    assert_eq!(w.rc(&completion).0, "13", "completion above the hold");
    let mut completion = completion;
    completion.rrn = "000000000003".into();
    completion.amount_minor = Some(45_000);
    assert_eq!(w.rc(&completion).0, "00", "found through field 90");
    let a = w.acct(id);
    assert_eq!(
        (a.balance_minor, a.holds_minor, a.available_minor),
        (55_000, 0, 55_000)
    );
    w.assert_books();
    expect![[r#"
        #1 to 13800000000 (Completion): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai预授权完成，支出450.00 CNY，可用余额550.00 CNY。
    "#]]
    .assert_eq(&sms_texts(&w));
    let kinds = w.clearing_kinds();
    assert_eq!(kinds, ["completion"]);
}

#[test]
fn preauth_cancel_releases_the_hold() {
    let mut w = World::new();
    let id = w.open_default();
    let pre = Req::preauth(1, 50_000);
    let (_, auth) = w.rc(&pre);
    let cancel = Req::follow_up(&pre, &auth, "0100", "200000", 50_000);
    assert_eq!(w.rc(&cancel).0, "00");
    let a = w.acct(id);
    assert_eq!(
        (a.balance_minor, a.holds_minor, a.daily_spent_minor),
        (100_000, 0, 0)
    );
    let completion = Req::follow_up(&pre, &auth, "0200", "000000", 10_000);
    assert_eq!(
        w.rc(&completion).0,
        "12",
        "a cancelled pre-authorization cannot complete"
    );
    assert!(
        w.bank.book().postings().len() == 1,
        "only the opening balance"
    );
    w.assert_books();
}

#[test]
fn balance_inquiry_reports_the_available_balance() {
    let mut w = World::new();
    w.open(
        PAN,
        100_000,
        50_000,
        500_000,
        issuer::CardStatus::Active,
        "2712",
    );
    w.send(&Req::preauth(1, 30_000));
    let reply = w.send(&Req::balance(2));
    assert_eq!(reply.get_str(39), Some("00"));
    expect!["1002156C000000120000"].assert_eq(reply.get_str(54).unwrap_or(""));
    assert!(w.bank.sms().is_empty() && w.bank.clearing_records().is_empty());
}

#[test]
fn reversal_applies_once_even_when_repeated() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 40_000);
    w.send(&sale);
    let first = w.send_msg(Req::reversal(&sale, false));
    assert_eq!(first.get_str(39), Some("00"));
    assert_eq!(first.mti().as_str(), "0430");
    let repeat = w.send_msg(Req::reversal(&sale, true));
    assert_eq!(repeat.get_str(39), Some("00"));
    assert_eq!(repeat.mti().as_str(), "0430");
    assert_eq!(
        w.send_msg(Req::reversal(&sale, false)),
        first,
        "answered identically"
    );
    let a = w.acct(id);
    assert_eq!((a.balance_minor, a.daily_spent_minor), (100_000, 0));
    w.assert_books();
    expect![[r#"
        #1 to 13800000000 (Sale): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai消费，支出400.00 CNY，可用余额600.00 CNY。
        #2 to 13800000000 (Reversal): 【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai冲正，存入400.00 CNY，可用余额1000.00 CNY。
    "#]]
    .assert_eq(&sms_texts(&w));
    let kinds = w.clearing_kinds();
    assert_eq!(kinds, ["sale", "reversal"]);
    // The sale retransmitted after its reversal is answered from the record, no debit.
    assert_eq!(w.rc(&sale).0, "00");
    assert_eq!(w.acct(id).balance_minor, 100_000);
}

#[test]
fn reversal_without_field_90_finds_the_original_by_rrn() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 40_000);
    w.send(&sale);
    let mut rev = Req::reversal(&sale, false);
    rev.remove(90);
    assert_eq!(w.send_msg(rev).get_str(39), Some("00"));
    assert_eq!(w.acct(id).balance_minor, 100_000);
}

#[test]
fn reversal_before_its_original_neutralises_it() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 40_000);
    let early = w.send_msg(Req::reversal(&sale, false));
    assert_eq!(early.get_str(39), Some("25"));
    assert_eq!(w.rc(&sale).0, "12", "the late original is declined");
    assert_eq!(
        w.send_msg(Req::reversal(&sale, true)).get_str(39),
        Some("25")
    );
    assert_eq!(w.acct(id).balance_minor, 100_000);
    assert!(w.bank.sms().is_empty() && w.bank.clearing_records().is_empty());
    // Other transactions are unaffected.
    assert_eq!(w.rc(&Req::sale(2, 100)).0, "00");
    w.assert_books();
}

#[test]
fn reversals_of_voids_completions_and_preauths() {
    let mut w = World::new();
    let id = w.open_default();
    // Void reversed: the sale stands again.
    let sale = Req::sale(1, 10_000);
    let (_, auth) = w.rc(&sale);
    let void = Req::follow_up(&sale, &auth, "0200", "200000", 10_000);
    w.send(&void);
    assert_eq!(w.acct(id).balance_minor, 100_000);
    assert_eq!(
        w.send_msg(Req::reversal(&void, false)).get_str(39),
        Some("00")
    );
    assert_eq!(w.acct(id).balance_minor, 90_000);
    // Then the sale itself reversed: credited once.
    w.send_msg(Req::reversal(&sale, false));
    assert_eq!(w.acct(id).balance_minor, 100_000);

    // Completion reversed: the hold is back.
    let pre = Req::preauth(2, 20_000);
    let (_, auth) = w.rc(&pre);
    let completion = Req::follow_up(&pre, &auth, "0200", "000000", 20_000);
    w.send(&completion);
    assert_eq!(w.acct(id).balance_minor, 80_000);
    w.send_msg(Req::reversal(&completion, false));
    let a = w.acct(id);
    assert_eq!((a.balance_minor, a.holds_minor), (100_000, 20_000));
    // Pre-authorization reversed: the hold is released.
    w.send_msg(Req::reversal(&pre, false));
    assert_eq!(w.acct(id).holds_minor, 0);
    w.assert_books();
    let kinds = w.clearing_kinds();
    assert_eq!(
        kinds,
        [
            "sale",
            "void",
            "void_reversal",
            "reversal",
            "completion",
            "reversal"
        ]
    );
}

#[test]
fn duplicate_request_is_answered_identically_without_a_second_debit() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 10_000);
    let first = w.send(&sale);
    let second = w.send(&sale);
    assert_eq!(first, second);
    assert_eq!(w.acct(id).balance_minor, 90_000);
    assert_eq!(w.bank.sms().len(), 1);
    assert_eq!(w.bank.clearing_records().len(), 1);
    let mut other_amount = sale.clone();
    other_amount.amount_minor = Some(1);
    assert_eq!(w.rc(&other_amount).0, "94");
    assert_eq!(w.acct(id).balance_minor, 90_000);
}

#[test]
fn mac_failure_is_answered_a0_without_effect() {
    let mut w = World::new();
    let id = w.open_default();
    let sale = Req::sale(1, 10_000);
    let mut m = sale.message(&w.zpk);
    let mut raw = w.sign(&mut m);
    let n = raw.len();
    raw[n - 1] = if raw[n - 1] == b'0' { b'1' } else { b'0' };
    let reply = w
        .bank
        .handle_packed(now(), &raw)
        .expect("unpacks")
        .expect("reply")
        .message;
    assert_eq!(reply.get_str(39), Some("A0"));
    assert!(w.mac_valid(&reply));
    // Unsigned, and signed over other content.
    let unsigned = sale.message(&w.zpk);
    assert_eq!(
        w.bank
            .handle(now(), &unsigned)
            .and_then(|r| r.get_str(39).map(str::to_owned))
            .as_deref(),
        Some("A0")
    );
    let mut tampered = sale.message(&w.zpk);
    w.sign(&mut tampered);
    tampered.set(4, "000000000001");
    assert_eq!(
        w.bank
            .handle(now(), &tampered)
            .and_then(|r| r.get_str(39).map(str::to_owned))
            .as_deref(),
        Some("A0")
    );
    let rev = Req::reversal(&sale, false);
    assert_eq!(
        w.bank
            .handle(now(), &rev)
            .and_then(|r| r.get_str(39).map(str::to_owned))
            .as_deref(),
        Some("A0")
    );
    assert_eq!(w.acct(id).balance_minor, 100_000);
    assert!(w.bank.sms().is_empty());
    // The correctly signed retransmission is then approved: the failures left no trace.
    assert_eq!(w.rc(&sale).0, "00");
    assert_eq!(w.acct(id).balance_minor, 90_000);
}

#[test]
fn network_management_needs_no_mac() {
    let mut w = World::new();
    for (code, rc) in [("001", "00"), ("301", "00"), ("002", "00"), ("999", "12")] {
        let mut m = Message::new(Mti::lit("0800"));
        m.set(7, "0321140509").set(11, "000001").set(70, code);
        let reply = w.bank.handle(now(), &m).expect("reply");
        assert_eq!(reply.mti().as_str(), "0810");
        assert_eq!(reply.get_str(39), Some(rc));
        assert_eq!(reply.get_str(70), Some(code));
        assert!(!reply.has(64) && !reply.has(128));
    }
    let mut not_a_request = Message::new(Mti::lit("0810"));
    not_a_request.set(11, "000001");
    assert!(w.bank.handle(now(), &not_a_request).is_none());
}

#[test]
fn pin_tries_are_counted_and_reset() {
    let mut w = World::new();
    let id = w.open_default();
    let mut wrong = Req::sale(1, 100);
    wrong.pin = Some("000000");
    assert_eq!(w.rc(&wrong).0, "55");
    assert_eq!(w.acct(id).pin_tries, 1);
    assert_eq!(w.rc(&Req::sale(2, 100)).0, "00");
    assert_eq!(w.acct(id).pin_tries, 0, "a right PIN resets the count");
    let no_pin = Req {
        pin: None,
        ..Req::sale(3, 100)
    };
    assert_eq!(w.rc(&no_pin).0, "00");
}

/// A 12-digit PAN contributes 11 digits to the PIN block (ISO 9564-1 pads on the left);
/// the issuer once panicked slicing it.
#[test]
fn a_twelve_digit_pan_with_a_pin_is_verified() {
    let mut w = World::new();
    let pan = luhn_pan("62284800003");
    assert_eq!(pan.len(), 12);
    w.open(&pan, 100_000, 0, 500_000, CardStatus::Active, "2712");
    let sale = |rrn, pin| Req {
        pan: Some(pan.clone()),
        pin: Some(pin),
        ..Req::sale(rrn, 100)
    };
    assert_eq!(w.rc(&sale(1, PIN)).0, "00");
    assert_eq!(w.rc(&sale(2, "000000")).0, "55");
    w.assert_books();
}

#[test]
fn every_debit_has_its_book_posting() {
    let mut w = World::new();
    let id = w.open_default();
    w.send(&Req::sale(1, 1_000));
    w.send(&Req::sale(2, 2_000));
    let postings = w.bank.book().postings();
    assert_eq!(postings.len(), 3);
    for p in &postings[1..] {
        assert_eq!(
            (p.from, p.to),
            (BookAccount::Cardholder(id), BookAccount::Settlement)
        );
        assert_eq!(p.memo, "sale");
    }
    let totals = w.bank.book().totals();
    assert!(totals.balanced);
    expect![[r#"
        {
          "accounts": [
            {
              "account": {
                "kind": "cardholder",
                "id": 1
              },
              "currency": "CNY",
              "balance_minor": 97000
            },
            {
              "account": {
                "kind": "settlement"
              },
              "currency": "CNY",
              "balance_minor": 3000
            },
            {
              "account": {
                "kind": "funding"
              },
              "currency": "CNY",
              "balance_minor": -100000
            }
          ],
          "sum_by_currency": {
            "CNY": 0
          },
          "balanced": true,
          "postings": 3
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&totals).expect("json"));
}

#[test]
fn early_reversals_are_remembered_up_to_the_bound() {
    let mut w = World::new();
    w.bank = issuer::Bank::from_clear_keys(&ClearKeys::demo())
        .expect("bank")
        .with_limits(issuer::BankLimits {
            max_early_reversals: 2,
        });
    let id = w.open_default();
    for rrn in 1..=3 {
        let rev = w.send_msg(Req::reversal(&Req::sale(rrn, 1_000), false));
        assert_eq!(rev.get_str(39), Some("25"));
    }
    // The oldest was forgotten at the bound: its late original is approved.
    assert_eq!(w.rc(&Req::sale(1, 1_000)).0, "00");
    assert_eq!(w.rc(&Req::sale(2, 1_000)).0, "12");
    assert_eq!(w.rc(&Req::sale(3, 1_000)).0, "12");
    assert_eq!(w.acct(id).balance_minor, 99_000);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let keys = ClearKeys::demo();
    let config = issuer::IssuerConfig::default();
    let shown = format!("{config:?} {keys:?}");
    for secret in [
        &keys.lmk_hex,
        &keys.zpk_hex,
        &keys.zak_hex,
        &keys.token_key_hex,
    ] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    let mut w = World::new();
    w.open_default();
    w.send(&Req::sale(1, 100));
    let shown = format!("{:?} {:?}", w.bank, w.bank.clearing_records());
    assert!(!shown.contains(PAN), "{shown}");
}

#[test]
fn refused_openings_change_nothing() {
    let mut w = World::new();
    w.open_default();
    let pan = luhn_pan("411111111111111");
    let max = MAX_ACCOUNT_MINOR;
    let mut out = String::new();
    let mut case = |balance: i64, credit: i64, daily: i64| {
        let (accounts, postings) = (w.bank.accounts(), w.bank.book().postings().len());
        let new = new_account(&pan, balance, credit, daily);
        let e = w.bank.open_account(now(), new).expect_err("refused");
        assert_eq!(w.bank.accounts(), accounts, "accounts unchanged");
        assert_eq!(w.bank.book().postings().len(), postings, "nothing posted");
        w.assert_books();
        out += &format!("{balance} {credit} {daily}: {e}\n");
    };
    case(i64::MAX, 0, 0);
    case(i64::MIN, 0, 0);
    case(max + 1, 0, 0);
    case(-max - 1, max, 0);
    case(-1, 0, 0);
    case(-1_001, 1_000, 0);
    case(0, -1, 0);
    case(0, max + 1, 0);
    case(0, i64::MAX, 0);
    case(0, 0, -1);
    case(0, 0, i64::MAX);
    expect![[r#"
        9223372036854775807 0 0: invalid balance_minor: must be between -1000000000000 and 1000000000000
        -9223372036854775808 0 0: invalid balance_minor: must be between -1000000000000 and 1000000000000
        1000000000001 0 0: invalid balance_minor: must be between -1000000000000 and 1000000000000
        -1000000000001 1000000000000 0: invalid balance_minor: must be between -1000000000000 and 1000000000000
        -1 0 0: invalid balance_minor: a debt at opening must fit in the credit line (credit_limit_minor)
        -1001 1000 0: invalid balance_minor: a debt at opening must fit in the credit line (credit_limit_minor)
        0 -1 0: invalid credit_limit_minor: must be between 0 and 1000000000000
        0 1000000000001 0: invalid credit_limit_minor: must be between 0 and 1000000000000
        0 9223372036854775807 0: invalid credit_limit_minor: must be between 0 and 1000000000000
        0 0 -1: invalid daily_limit_minor: must be between 0 and 1000000000000
        0 0 9223372036854775807: invalid daily_limit_minor: must be between 0 and 1000000000000
    "#]]
    .assert_eq(&out);

    // The refused card left nothing behind: it opens now, at the bounds.
    let id = w
        .bank
        .open_account(now(), new_account(&pan, max, max, max))
        .expect("opens at the bounds");
    let v = w.acct(id);
    assert_eq!((v.balance_minor, v.available_minor), (max, 2 * max));
    let big = Req {
        pan: Some(pan.clone()),
        ..Req::sale(1, 999_999_999_999)
    };
    assert_eq!(w.rc(&big).0, "00", "the largest field 4 amount");
    assert_eq!(w.acct(id).balance_minor, max - 999_999_999_999);
    w.assert_books();
}

#[test]
fn a_debt_at_opening_fits_in_the_credit_line() {
    let mut w = World::new();
    let id = w
        .bank
        .open_account(now(), new_account(PAN, -1_000, 1_000, 500_000))
        .expect("opens in debt within its credit line");
    let v = w.acct(id);
    assert_eq!((v.balance_minor, v.available_minor), (-1_000, 0));
    assert_eq!(w.rc(&Req::sale(1, 1)).0, "51");
    w.assert_books();
}

/// Two sales with the same link STAN and field 7 (two acquirer nodes count STANs each
/// on their own), from different terminals: a follow-up naming the first by field 90
/// finds the first (the link reference includes the terminal). With MTI, STAN and
/// field 7 alone the second overwrote the first, and a credit adjustment of the first
/// was answered 25.
#[test]
fn follow_ups_find_their_original_when_another_terminal_used_the_same_link_stan() {
    let mut w = World::new();
    let id = w.open_default();
    let first = Req::sale(1, 20_000);
    let (rc, auth) = w.rc(&first);
    assert_eq!(rc, "00");
    let mut second = Req::sale(2, 5_000);
    second.stan = first.stan;
    let mut m = second.message(&w.zpk);
    m.set(41, "TERM0002");
    assert_eq!(w.send_msg(m).get_str(39), Some("00"));
    let mut void = Req::follow_up(&first, &auth, "0200", "200000", 20_000);
    void.rrn = "000000000009".into();
    assert_eq!(w.rc(&void).0, "00", "the first sale is found and voided");
    assert_eq!(w.acct(id).balance_minor, 100_000 - 5_000);
}
