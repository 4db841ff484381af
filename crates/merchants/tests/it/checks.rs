//! Check digits: the spec's vectors, then properties — a valid code with any one
//! character changed, or two adjacent different characters swapped, is refused.

use chrono::NaiveDate;
use merchants::checks::{is_card_form, luhn, org_code, resident_id, uscc};
use proptest::prelude::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).expect("date")
}

#[test]
fn the_specs_vectors() {
    // (value, valid, the refusal's code) — people.md §1.1–1.4.
    let usccs = [
        ("91350100M000100Y43", None),
        ("91350100M000100Y4Z", Some("uscc.character")),
        ("91350100M000100Y4Y", Some("uscc.check")),
        ("91110108MA01PQ7K31", None),
        ("91110108MA0B2C3D6X", None),
        ("91110108123456788E", None),
        ("91110108MA01PQ7K32", Some("uscc.check")),
        ("91110108M0A1PQ7K31", Some("uscc.check")),
        ("91110108IA01PQ7K31", Some("uscc.character")),
        ("91110108MA01PQ7K0P", Some("uscc.org_check")),
        ("91350100M0001TGQXM", Some("uscc.check")),
        ("9135010", Some("uscc.length")),
    ];
    for (v, want) in usccs {
        assert_eq!(uscc(v).err().map(|e| e.code), want, "{v}");
    }
    let ids = [
        ("11010519491231002X", None),
        ("11010519491231002x", None),
        ("110105199003071239", None),
        ("440304200101010022", None),
        ("32010220000201000X", None),
        ("110105199003071230", Some("id.check")),
        ("110105199002301231", Some("id.birth_date")),
        ("110105203003071231", Some("id.birth_date")),
        ("110105900307123", Some("id.length")),
        ("1101051990030712A9", Some("id.character")),
    ];
    for (v, want) in ids {
        assert_eq!(resident_id(v, today()).err().map(|e| e.code), want, "{v}");
    }
    let orgs = [
        ("12345678-8", None),
        ("D2143569-X", None),
        ("MA01PQ7K-3", None),
        ("D2143569-0", Some("org.check")),
        ("D21435690", Some("org.check")),
        ("d2143569-X", Some("org.character")),
    ];
    for (v, want) in orgs {
        assert_eq!(org_code(v).err().map(|e| e.code), want, "{v}");
    }
    let cards = [
        ("6222020000000000000", None),
        ("6217001234567890122", None),
        ("4111111111111111", None),
        ("4111111111111112", Some("luhn.check")),
        ("4111111111111121", Some("luhn.check")),
        ("41111111111", Some("luhn.length")),
        ("41111111111111a1", Some("luhn.character")),
    ];
    for (v, want) in cards {
        assert_eq!(luhn(v).err().map(|e| e.code), want, "{v}");
    }
    assert!(is_card_form("6222020000000000000"));
    assert!(!is_card_form("110060149018000123456"));
    assert!(!is_card_form("1100601490180001"));
}

const USCC_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// A valid code: 17 characters of the alphabet whose positions 9–17 are a valid
/// organization code, and the mod-31 check.
fn make_uscc(head: &[u8; 8], org: &[u8; 8]) -> Option<String> {
    const W: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let value = |c: u8| match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        _ => u32::from(c - b'A') + 10,
    };
    let sum: u32 = org.iter().zip(W).map(|(c, w)| value(*c) * w).sum();
    let org_check = match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        d => b'0' + d as u8,
    };
    let mut code: Vec<u8> = head.to_vec();
    code.extend_from_slice(org);
    code.push(org_check);
    if code.iter().any(|c| !USCC_ALPHABET.contains(c)) {
        return None;
    }
    let mut weight = 1;
    let mut total = 0;
    for c in &code {
        let v = USCC_ALPHABET.iter().position(|a| a == c)? as u32;
        total += v * weight;
        weight = weight * 3 % 31;
    }
    code.push(USCC_ALPHABET[((31 - total % 31) % 31) as usize]);
    String::from_utf8(code).ok()
}

fn uscc_char() -> impl Strategy<Value = u8> {
    proptest::sample::select(USCC_ALPHABET.to_vec())
}

/// An ID number with a real birth date and its check digit.
fn make_id(area: u32, days: i64, seq: u32) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let birth = NaiveDate::from_ymd_opt(1950, 1, 1).expect("date") + chrono::Duration::days(days);
    let body = format!("{area:06}{}{seq:03}", birth.format("%Y%m%d"));
    let sum: u32 = body
        .bytes()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = (12 - sum % 11) % 11;
    let c = if check == 10 {
        'X'
    } else {
        char::from(b'0' + check as u8)
    };
    format!("{body}{c}")
}

fn make_card(digits: &[u8]) -> String {
    let mut s: Vec<u8> = digits.iter().map(|d| b'0' + d % 10).collect();
    for check in 0..10u8 {
        s.push(b'0' + check);
        if luhn(std::str::from_utf8(&s).unwrap_or_default()).is_ok() {
            break;
        }
        s.pop();
    }
    String::from_utf8(s).unwrap_or_default()
}

/// Every other character `c` could be changed into, at position `i`.
fn changed(code: &str, i: usize, to: u8) -> Option<String> {
    let mut b = code.as_bytes().to_vec();
    if b[i] == to {
        return None;
    }
    b[i] = to;
    String::from_utf8(b).ok()
}

fn swapped(code: &str, i: usize) -> Option<String> {
    let mut b = code.as_bytes().to_vec();
    if b[i] == b[i + 1] {
        return None;
    }
    b.swap(i, i + 1);
    String::from_utf8(b).ok()
}

proptest! {
    #[test]
    fn a_uscc_with_one_character_changed_or_two_swapped_is_refused(
        head in proptest::array::uniform8(uscc_char()),
        org in proptest::array::uniform8(proptest::sample::select(b"0123456789ABCDEFGHJKLMNPQRTUWXY".to_vec())),
        i in 0usize..18,
        to in uscc_char(),
        j in 0usize..17,
    ) {
        let Some(code) = make_uscc(&head, &org) else { return Ok(()) };
        prop_assert!(uscc(&code).is_ok(), "{code}");
        if let Some(bad) = changed(&code, i, to) {
            prop_assert!(uscc(&bad).is_err(), "{code} → {bad}");
        }
        if let Some(bad) = swapped(&code, j) {
            prop_assert!(uscc(&bad).is_err(), "{code} → {bad}");
        }
    }

    #[test]
    fn an_id_number_with_one_character_changed_or_two_swapped_is_refused(
        area in 110_000u32..660_000,
        days in 0i64..27_000,
        seq in 0u32..1000,
        i in 0usize..18,
        to in proptest::sample::select(b"0123456789X".to_vec()),
        j in 0usize..17,
    ) {
        let id = make_id(area, days, seq);
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        prop_assert!(resident_id(&id, today).is_ok(), "{id}");
        if let Some(bad) = changed(&id, i, to) {
            prop_assert!(resident_id(&bad, today).is_err(), "{id} → {bad}");
        }
        if let Some(bad) = swapped(&id, j) {
            prop_assert!(resident_id(&bad, today).is_err(), "{id} → {bad}");
        }
    }

    /// Luhn catches every single-digit change and every adjacent swap except 0↔9
    /// (its known blind spot: both weigh the same once doubled).
    #[test]
    fn a_card_number_with_one_digit_changed_or_two_swapped_is_refused(
        digits in proptest::collection::vec(0u8..10, 11..18),
        i in 0usize..19,
        to in proptest::sample::select(b"0123456789".to_vec()),
        j in 0usize..18,
    ) {
        let card = make_card(&digits);
        prop_assert!(luhn(&card).is_ok(), "{card}");
        if let Some(bad) = changed(&card, i % card.len(), to) {
            prop_assert!(luhn(&bad).is_err(), "{card} → {bad}");
        }
        let j = j % (card.len() - 1);
        let pair = (card.as_bytes()[j], card.as_bytes()[j + 1]);
        if pair != (b'0', b'9') && pair != (b'9', b'0') {
            if let Some(bad) = swapped(&card, j) {
                prop_assert!(luhn(&bad).is_err(), "{card} → {bad}");
            }
        }
    }
}
