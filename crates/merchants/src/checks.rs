//! Check digits of the identifiers a merchant application carries (the algorithms and
//! their verified examples are `shared/spec/people.md` §1):
//!
//! - [`uscc`]: the unified social credit code (GB 32100-2015), whose characters 9–17
//!   are an organization code that must verify too;
//! - [`org_code`]: the organization code (GB 11714-1997);
//! - [`resident_id`]: the resident identity number (GB 11643-1999, ISO 7064 MOD 11-2),
//!   with a real birth date not after the day given;
//! - [`luhn`]: bank card numbers and card-form settlement accounts (ISO/IEC 7812).
//!
//! Each refusal is a [`CheckError`] with a stable code the API and the console show.

use chrono::NaiveDate;

/// Why an identifier is refused: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CheckError {
    /// Stable, for programs: `uscc.length`, `uscc.character`, `uscc.check`,
    /// `uscc.org_check`, `org.length`, `org.character`, `org.check`, `id.length`,
    /// `id.character`, `id.birth_date`, `id.check`, `luhn.length`, `luhn.character`,
    /// `luhn.check`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> CheckError {
    CheckError {
        code,
        message: message.into(),
    }
}

/// The unified social credit code's alphabet, valued 0..30 in this order.
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

fn uscc_value(c: u8) -> Option<u32> {
    USCC_ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// Checks a unified social credit code (18 characters; the mod-31 check and the
/// embedded organization code's check).
pub fn uscc(code: &str) -> Result<(), CheckError> {
    let b = code.as_bytes();
    if b.len() != 18 {
        return Err(refuse(
            "uscc.length",
            format!(
                "a unified social credit code has 18 characters, not {}",
                b.len()
            ),
        ));
    }
    let mut values = [0u32; 18];
    for (i, &c) in b.iter().enumerate() {
        values[i] = uscc_value(c).ok_or_else(|| {
            refuse(
                "uscc.character",
                format!(
                    "character {} ({:?}) is not in the code's alphabet (0-9, A-Y without I, O, S, V, Z)",
                    i + 1,
                    c as char
                ),
            )
        })?;
    }
    let mut weight = 1u32;
    let mut sum = 0u32;
    for v in &values[..17] {
        sum += v * weight;
        weight = weight * 3 % 31;
    }
    let check = (31 - sum % 31) % 31;
    if check != values[17] {
        return Err(refuse(
            "uscc.check",
            format!(
                "the check character should be {}, not {}",
                USCC_ALPHABET[check as usize] as char, b[17] as char
            ),
        ));
    }
    let org = std::str::from_utf8(&b[8..17]).unwrap_or_default();
    org_code_parts(&org[..8], &org[8..]).map_err(|e| {
        refuse(
            "uscc.org_check",
            format!(
                "the embedded organization code {org} does not verify: {}",
                e.message
            ),
        )
    })
}

/// Checks an organization code, printed `XXXXXXXX-X` (the hyphen may be left out).
pub fn org_code(code: &str) -> Result<(), CheckError> {
    let compact: String = code.chars().filter(|c| *c != '-').collect();
    if compact.len() != 9 || !compact.is_ascii() {
        return Err(refuse(
            "org.length",
            "an organization code is 8 characters and a check character",
        ));
    }
    org_code_parts(&compact[..8], &compact[8..])
}

fn org_code_parts(body: &str, check: &str) -> Result<(), CheckError> {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let mut sum = 0;
    for (i, c) in body.bytes().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => {
                return Err(refuse(
                    "org.character",
                    format!("character {} ({:?}) is not 0-9 or A-Z", i + 1, c as char),
                ))
            }
        };
        sum += v * WEIGHTS[i];
    }
    let want = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from(b'0' + d as u8),
    };
    if check.len() == 1 && check.starts_with(want) {
        Ok(())
    } else {
        Err(refuse(
            "org.check",
            format!("the check character should be {want}, not {check}"),
        ))
    }
}

/// Checks an 18-character resident identity number: digits with a check digit or
/// `X` (a lowercase `x` is taken as `X`), and a real birth date not after `today`.
/// The 15-digit legacy numbers carry no check digit and are refused.
pub fn resident_id(id: &str, today: NaiveDate) -> Result<(), CheckError> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let b = id.as_bytes();
    if b.len() != 18 {
        return Err(refuse(
            "id.length",
            format!(
                "a resident identity number has 18 characters, not {} (15-digit legacy numbers carry no check digit)",
                b.len()
            ),
        ));
    }
    if !b[..17].iter().all(u8::is_ascii_digit)
        || !(b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x')
    {
        return Err(refuse(
            "id.character",
            "a resident identity number is 17 digits and a check digit or X",
        ));
    }
    let birth = std::str::from_utf8(&b[6..14]).unwrap_or_default();
    match NaiveDate::parse_from_str(birth, "%Y%m%d") {
        Ok(d) if d <= today => {}
        Ok(_) => {
            return Err(refuse(
                "id.birth_date",
                format!("the birth date {birth} is in the future"),
            ))
        }
        Err(_) => {
            return Err(refuse(
                "id.birth_date",
                format!("{birth} is not a real date"),
            ))
        }
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = (12 - sum % 11) % 11;
    let want = if check == 10 {
        b'X'
    } else {
        b'0' + check as u8
    };
    if b[17].to_ascii_uppercase() == want {
        Ok(())
    } else {
        Err(refuse(
            "id.check",
            format!(
                "the check digit should be {}, not {}",
                want as char, b[17] as char
            ),
        ))
    }
}

/// Checks a card number or card-form account number (12–19 digits) with Luhn.
pub fn luhn(number: &str) -> Result<(), CheckError> {
    let b = number.as_bytes();
    if !(12..=19).contains(&b.len()) {
        return Err(refuse(
            "luhn.length",
            format!("a card-form number has 12 to 19 digits, not {}", b.len()),
        ));
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(refuse(
            "luhn.character",
            "a card-form number is digits only",
        ));
    }
    if domain::luhn_valid(number) {
        Ok(())
    } else {
        Err(refuse("luhn.check", "the Luhn check digit does not verify"))
    }
}

/// Whether a settlement account number is in card form (16–19 digits beginning with a
/// card BIN, here any digit 3–6): only those are Luhn-checked; many corporate accounts
/// are not Luhn numbers.
pub fn is_card_form(account: &str) -> bool {
    (16..=19).contains(&account.len())
        && account.bytes().all(|b| b.is_ascii_digit())
        && matches!(account.as_bytes().first(), Some(b'3'..=b'6'))
}
