//! Which fields carry secrets, and how they are shown to people when masked.
//!
//! Fields 2 and 34 (PAN) show what the masking rule allows (at most the first six and
//! last four digits, always at least six hidden); track data (35, 36,
//! 45), the PIN block (52), ICC data (55), MACs (64, 96, 128) and, in network
//! management messages, the key block (62) are hidden entirely.

use crate::message::Mti;

/// Whether a field of a message with this MTI carries a secret.
pub fn is_secret_field(mti: Mti, field: u8) -> bool {
    match field {
        2 | 34 | 35 | 36 | 45 | 52 | 55 | 64 | 96 | 128 => true,
        62 => mti.class() == 8,
        _ => false,
    }
}

/// The text shown for a secret field: the masked PAN for 2/34/35, stars otherwise.
///
/// `text_len` is the length of the value as it would be displayed unmasked (for
/// binary fields, its hex length) so masked output keeps the shape of the field.
pub fn masked_value(field: u8, value: &[u8], text_len: usize) -> String {
    match field {
        2 | 34 => domain::mask_pan(value),
        35 => {
            let sep = value.iter().position(|&c| c == b'=' || c == b'D');
            let pan = &value[..sep.unwrap_or(value.len())];
            let mut s = domain::mask_pan(pan);
            if sep.is_some() {
                s.push('=');
                s.push_str(&"*".repeat(value.len() - pan.len() - 1));
            }
            s
        }
        _ => "*".repeat(text_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_may_be_shown() {
        assert_eq!(
            masked_value(2, b"6228480402564890018", 19),
            "622848*********0018"
        );
        assert_eq!(
            masked_value(35, b"6228480402564890018=30122011234", 31),
            "622848*********0018=***********"
        );
        assert_eq!(
            masked_value(64, &[1, 2, 3, 4, 5, 6, 7, 8], 16),
            "****************"
        );
        assert!(is_secret_field(Mti::lit("0810"), 62));
        assert!(!is_secret_field(Mti::lit("0200"), 62));
    }
}
