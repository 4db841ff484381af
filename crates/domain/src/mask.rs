//! The one masking rule for card numbers, used by every crate that shows a PAN.
//!
//! At most the first six and the last four digits are shown, and at least six digits
//! are always hidden, so shorter numbers show fewer: the last four go first (they are
//! what a cardholder recognises), then as many leading digits as the rule still allows.
//!
//! | length | shown | example |
//! |---|---|---|
//! | 19 | 6 + 4 | `622848*********0018` |
//! | 16 | 6 + 4 | `622848******0018` |
//! | 13 | 3 + 4 | `622******0031` |
//! | 12 | 2 + 4 | `62******0031` |
//! | 10 | 0 + 4 | `******0031` |
//! | ≤ 6 | none | `******` |

/// How many leading and trailing digits a number of `len` digits may show.
pub fn pan_shown(len: usize) -> (usize, usize) {
    let hidden = len.saturating_sub(10).max(6);
    let shown = len.saturating_sub(hidden);
    let last = shown.min(4);
    ((shown - last).min(6), last)
}

/// Masks a card number by [`pan_shown`]: shown positions keep their digit (anything
/// that is not a digit is starred too), the rest become `*`.
pub fn mask_pan(pan: &[u8]) -> String {
    let (first, last) = pan_shown(pan.len());
    pan.iter()
        .enumerate()
        .map(|(i, &c)| {
            let shown = i < first || i + last >= pan.len();
            if shown && c.is_ascii_digit() {
                char::from(c)
            } else {
                '*'
            }
        })
        .collect()
}

/// Whether `s` has the shape [`mask_pan`] gives a number of its length: digits where
/// the rule shows them and `*` everywhere else.
pub fn is_masked_pan(s: &str) -> bool {
    let (first, last) = pan_shown(s.len());
    !s.is_empty()
        && s.bytes().enumerate().all(|(i, b)| {
            if i < first || i + last >= s.len() {
                b.is_ascii_digit()
            } else {
                b == b'*'
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_six_and_four_and_always_six_hidden() {
        for len in 0..=40 {
            let (first, last) = pan_shown(len);
            assert!(first <= 6 && last <= 4, "{len}");
            assert!(len - first.min(len) - last.min(len) >= len.min(6), "{len}");
        }
        let cases = [
            ("6228480402564890018", "622848*********0018"),
            ("6228480402564890", "622848******4890"),
            ("6228480010031", "622******0031"),
            ("622848000031", "62******0031"),
            ("1234560031", "******0031"),
            ("123456", "******"),
            ("", ""),
        ];
        for (pan, want) in cases {
            assert_eq!(mask_pan(pan.as_bytes()), want, "{pan}");
            assert!(want.is_empty() || is_masked_pan(want), "{want}");
            assert!(pan.len() < 7 || !is_masked_pan(pan), "{pan}");
        }
    }
}
