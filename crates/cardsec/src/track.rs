//! Track data encrypted under the terminal's track key (TDK), as UnionPay terminals
//! with key layout `004` send it.
//!
//! Track 2 is packed as nibbles (digits, the separator as `D`, a trailing pad nibble
//! when the length is odd). The terminal takes the eight bytes that end one byte
//! before the last — the last byte stays clear so the length and the pad nibble keep
//! their meaning — encrypts them with the double-length TDK (TDES, one ECB block)
//! and puts the ciphertext back in place. Field 35 then carries any nibble, shown as
//! `0`–`9`, `=` for `D` and `A`–`F` for the others; field 53 position 3 is `1`.
//!
//! A track shorter than nine bytes (seventeen characters) cannot be encrypted this way;
//! no valid track 2 is that short (a 12-digit PAN, the separator, expiry and service
//! code are already twenty characters).

use zeroize::Zeroize;

use crate::card::Track2;
use crate::key::{Key, KeyCipher};
use crate::SecError;

/// Characters of field 35 as nibbles; anything else is not track data.
fn nibbles(text: &str) -> Result<Vec<u8>, SecError> {
    text.bytes()
        .map(|c| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'=' | b'D' => Ok(0x0d),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(SecError::BadTrack2("not track data")),
        })
        .collect()
}

fn text(nibbles: &[u8]) -> String {
    nibbles
        .iter()
        .map(|&n| match n {
            0x0d => '=',
            n => char::from(b"0123456789ABCDEF"[usize::from(n & 0x0f)]),
        })
        .collect()
}

/// Packs, applies `f` to the eight bytes that end before the last byte, unpacks.
fn with_block(track: &str, f: impl FnOnce(&mut [u8; 8])) -> Result<String, SecError> {
    let mut n = nibbles(track)?;
    let mut bytes: Vec<u8> = n
        .chunks(2)
        .map(|p| p[0] << 4 | p.get(1).copied().unwrap_or(0))
        .collect();
    let len = bytes.len();
    if len < 9 {
        n.zeroize();
        bytes.zeroize();
        return Err(SecError::BadTrack2("too short to carry encrypted"));
    }
    let mut block = [0u8; 8];
    block.copy_from_slice(&bytes[len - 9..len - 1]);
    f(&mut block);
    bytes[len - 9..len - 1].copy_from_slice(&block);
    block.zeroize();
    for (i, b) in bytes.iter().enumerate() {
        n[2 * i] = b >> 4;
        if let Some(lo) = n.get_mut(2 * i + 1) {
            *lo = b & 0x0f;
        }
    }
    bytes.zeroize();
    let out = text(&n);
    n.zeroize();
    Ok(out)
}

/// The terminal's side: track 2 as field 35 carries it encrypted under the clear TDK.
pub fn encrypt_track(tdk: &Key, clear: &str) -> Result<String, SecError> {
    let cipher = tdk.cipher();
    with_block(clear, |b| cipher.encrypt_block(b))
}

/// The security module's side: decrypts field 35 and parses the clear track.
pub(crate) fn decrypt_track(tdk: &KeyCipher, encrypted: &str) -> Result<Track2, SecError> {
    let mut clear = with_block(encrypted, |b| tdk.decrypt_block(b))?;
    let track = Track2::parse(&clear);
    clear.zeroize();
    track
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packing of a 37-character track: the encrypted block is bytes 11–18 of 20.
    #[test]
    fn the_block_is_the_eight_bytes_before_the_last() {
        let track = "1234567890123456789=0508201781999168302";
        let mut seen = [0u8; 8];
        let same = with_block(track, |b| seen = *b).unwrap();
        assert_eq!(same, track);
        assert_eq!(seen, [0x08, 0x20, 0x17, 0x81, 0x99, 0x91, 0x68, 0x30]);
    }

    #[test]
    fn a_track_round_trips_and_its_ciphertext_is_track_shaped() {
        let tdk = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        for clear in [
            "6228480402564890018=30122011234",
            "622848040256=3012201",
            "4111111111111111=30121010000",
        ] {
            let enc = encrypt_track(&tdk, clear).unwrap();
            assert_eq!(enc.len(), clear.len());
            assert_ne!(enc, clear);
            // The last byte (two characters, or one and the pad) stays clear.
            let keep = if clear.len() % 2 == 0 { 2 } else { 1 };
            assert_eq!(enc[enc.len() - keep..], clear[clear.len() - keep..]);
            let t = decrypt_track(&tdk.cipher(), &enc).unwrap();
            assert_eq!(t.text(), clear);
        }
    }

    #[test]
    fn short_or_foreign_tracks_are_refused() {
        let tdk = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert!(encrypt_track(&tdk, "62284804=3012").is_err());
        assert!(encrypt_track(&tdk, "6228480402564890018=3012201123X").is_err());
        let wrong = Key::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
        let enc = encrypt_track(&tdk, "6228480402564890018=30122011234").unwrap();
        let other = decrypt_track(&wrong.cipher(), &enc);
        assert!(other.map_or(true, |t| t.text() != "6228480402564890018=30122011234"));
    }
}
