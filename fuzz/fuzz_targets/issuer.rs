//! Fuzzes the issuer simulator's message handling: raw link messages, and link
//! messages MACed under the zone key with arbitrary field values; no input may panic,
//! and the bank's book always balances.
#![no_main]

#[path = "shared/mod.rs"]
mod shared;

use chrono::NaiveDate;
use domain::Currency;
use iso8583::Dialect;
use issuer::{linkmac, Bank, CardStatus, ClearKeys, Language, NewAccount};
use libfuzzer_sys::fuzz_target;
use shared::Bytes;

const PAN: &str = "6222021234567890128";

fuzz_target!(|data: &[u8]| {
    let keys = ClearKeys::demo();
    let mut bank = Bank::from_clear_keys(&keys).expect("bank");
    let now = NaiveDate::from_ymd_opt(2026, 3, 21).and_then(|d| d.and_hms_opt(14, 5, 9)).expect("time");
    let _ = bank.open_account(
        now,
        NewAccount {
            pan: cardsec::Pan::new(PAN).expect("pan"),
            pin: cardsec::Pin::new("123456").expect("pin"),
            expiry: cardsec::Expiry::parse("2812").expect("expiry"),
            currency: Currency::CNY,
            balance_minor: 100_000,
            credit_limit_minor: 0,
            daily_limit_minor: 500_000,
            holder: "Fuzz".into(),
            phone: "+8613800000000".into(),
            language: Language::Zh,
            status: CardStatus::Active,
        },
    );
    let zak = cardsec::Key::from_hex(&keys.zak_hex).expect("zak");
    let dialect = Dialect::iso87_ascii();
    let mut b = Bytes(data);
    for _ in 0..8 {
        if b.0.is_empty() {
            break;
        }
        if b.byte() % 8 == 0 {
            let n = usize::from(b.byte()).min(b.0.len());
            let _ = bank.handle_packed(now, &b.0[..n]);
            b.0 = &b.0[n..];
            continue;
        }
        let mut m = shared::message(
            dialect,
            &["0100", "0200", "0220", "0400", "0420", "0421", "0800"],
            &[2, 3, 4, 7, 11, 12, 13, 14, 22, 25, 32, 35, 37, 38, 41, 42, 49, 52, 90],
            &[(2, PAN), (49, "156"), (32, "48020000"), (14, "2812")],
            &mut b,
        );
        let Ok(signed) = linkmac::sign(&mut m, |data| Ok(cardsec::x9_19_mac(&zak, data))) else {
            continue;
        };
        let _ = bank.handle_packed(now, &signed);
    }
    bank.book().verify().expect("the book balances");
});
