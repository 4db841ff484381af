//! ISO 9564 format 0 PIN blocks: build, parse, encrypt.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::card::Pan;
use crate::key::Key;
use crate::SecError;

/// A cardholder PIN: 4–12 digits. Secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pin(Vec<u8>);

impl Pin {
    /// Parses a PIN of 4–12 decimal digits.
    pub fn new(digits: &str) -> Result<Pin, SecError> {
        let ok = (4..=12).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(SecError::BadPin);
        }
        Ok(Pin(digits.as_bytes().to_vec()))
    }

    /// The PIN's digits; callers must not log or store them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// A clear ISO 9564 format 0 PIN block. Secret; it never leaves the security module
/// except at the terminal that built it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PinBlock([u8; 8]);

/// The PAN field of format 0: `0000` then the 12 rightmost digits excluding the check
/// digit, right-justified and padded on the left with zeros when the PAN has fewer
/// (ISO 9564-1: a 12-digit PAN contributes 11 digits).
fn pan_block(pan: &Pan) -> [u8; 8] {
    let d = pan.digits().as_bytes();
    let body = &d[..d.len().saturating_sub(1)];
    let twelve = &body[body.len().saturating_sub(12)..];
    let mut nibbles = [0u8; 16];
    for (slot, c) in nibbles[16 - twelve.len()..].iter_mut().zip(twelve) {
        *slot = c - b'0';
    }
    pack_nibbles(&nibbles)
}

fn pack_nibbles(n: &[u8; 16]) -> [u8; 8] {
    std::array::from_fn(|i| (n[2 * i] << 4) | n[2 * i + 1])
}

impl PinBlock {
    /// Builds the format 0 block: `0 ‖ length ‖ PIN ‖ F…F` XOR the PAN field.
    pub fn format0(pin: &Pin, pan: &Pan) -> PinBlock {
        let mut nibbles = [0x0fu8; 16];
        nibbles[0] = 0;
        nibbles[1] = pin.0.len() as u8;
        for (i, c) in pin.0.iter().enumerate() {
            nibbles[2 + i] = c - b'0';
        }
        let mut block = pack_nibbles(&nibbles);
        nibbles.zeroize();
        for (b, p) in block.iter_mut().zip(pan_block(pan)) {
            *b ^= p;
        }
        PinBlock(block)
    }

    /// Recovers the PIN, checking format 0 rules: version nibble 0, length 4–12,
    /// digits, and `F` padding.
    pub fn pin(&self, pan: &Pan) -> Result<Pin, SecError> {
        let mut clear = self.0;
        for (b, p) in clear.iter_mut().zip(pan_block(pan)) {
            *b ^= p;
        }
        let nib = |i: usize| {
            if i % 2 == 0 {
                clear[i / 2] >> 4
            } else {
                clear[i / 2] & 0x0f
            }
        };
        let len = usize::from(nib(1));
        let valid = nib(0) == 0
            && (4..=12).contains(&len)
            && (2..2 + len).all(|i| nib(i) <= 9)
            && (2 + len..16).all(|i| nib(i) == 0x0f);
        let pin = valid.then(|| Pin((2..2 + len).map(|i| b'0' + nib(i)).collect()));
        clear.zeroize();
        pin.ok_or(SecError::PinBlockFormat)
    }

    /// Encrypts the block under a PIN key (TDES ECB).
    pub fn encrypt(&self, key: &Key) -> EncryptedPinBlock {
        let mut b = self.0;
        key.encrypt_block(&mut b);
        EncryptedPinBlock(b)
    }

    /// The clear block bytes; callers must not log or store them.
    pub fn expose(&self) -> &[u8; 8] {
        &self.0
    }

    /// A clear block from its bytes (as a terminal's key-entry device produces it).
    pub fn from_bytes(b: [u8; 8]) -> PinBlock {
        PinBlock(b)
    }
}

/// A PIN block encrypted under a PIN key: what fields 52 carry.
///
/// Not usable without the key, but still never logged: `Debug` shows only its length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncryptedPinBlock(pub [u8; 8]);

impl EncryptedPinBlock {
    /// Decrypts under a PIN key.
    pub fn decrypt(&self, key: &Key) -> PinBlock {
        let mut b = self.0;
        key.decrypt_block(&mut b);
        PinBlock(b)
    }
}

macro_rules! redacted {
    ($($t:ty => $s:literal),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str($s) }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str($s) }
        }
    )*};
}

redacted!(Pin => "Pin([redacted])", PinBlock => "PinBlock([redacted])", EncryptedPinBlock => "EncryptedPinBlock([redacted])");
