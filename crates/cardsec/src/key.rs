//! DES and TDES keys: parity, check values, ECB and CBC on 8-byte blocks.

use std::fmt;

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2, TdesEde3};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::SecError;

/// What a key is for; a wrapped key carries its kind and cannot be used as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Terminal master key: wraps working keys sent to one terminal.
    Tmk,
    /// Terminal PIN key (PIK/TPK): encrypts PIN blocks at the terminal.
    Tpk,
    /// Terminal MAC key (MAK/TAK).
    Tak,
    /// Terminal track data key (TDK).
    Tdk,
    /// Zone master key shared with the issuer link.
    Zmk,
    /// Zone PIN key: PIN blocks on the issuer link.
    Zpk,
    /// Zone MAC key: MACs on the issuer link.
    Zak,
    /// Data key for PAN tokens (HMAC key).
    Dek,
}

impl KeyKind {
    /// The kind's short name.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Tmk => "TMK",
            KeyKind::Tpk => "TPK",
            KeyKind::Tak => "TAK",
            KeyKind::Tdk => "TDK",
            KeyKind::Zmk => "ZMK",
            KeyKind::Zpk => "ZPK",
            KeyKind::Zak => "ZAK",
            KeyKind::Dek => "DEK",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<KeyKind> {
        [
            KeyKind::Tmk,
            KeyKind::Tpk,
            KeyKind::Tak,
            KeyKind::Tdk,
            KeyKind::Zmk,
            KeyKind::Zpk,
            KeyKind::Zak,
            KeyKind::Dek,
        ]
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// The LMK variant byte for this kind: keys of different kinds are wrapped
    /// under different LMK variants, so a wrapped key cannot be used as another kind.
    pub(crate) fn variant(self) -> u8 {
        match self {
            KeyKind::Tmk => 0xa6,
            KeyKind::Tpk => 0x5a,
            KeyKind::Tak => 0x6a,
            KeyKind::Tdk => 0xde,
            KeyKind::Zmk => 0x3c,
            KeyKind::Zpk => 0x96,
            KeyKind::Zak => 0xc3,
            KeyKind::Dek => 0xe7,
        }
    }
}

/// A clear single (8), double (16) or triple (24) length DES key. Secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key {
    bytes: Vec<u8>,
}

impl Key {
    /// A key from its bytes; 8, 16 or 24 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, SecError> {
        match bytes.len() {
            8 | 16 | 24 => Ok(Key {
                bytes: bytes.to_vec(),
            }),
            _ => Err(SecError::BadKey("a DES key is 8, 16 or 24 bytes")),
        }
    }

    /// A key from hexadecimal text.
    pub fn from_hex(s: &str) -> Result<Key, SecError> {
        let mut b = hex::decode(s.trim()).map_err(|_| SecError::BadKey("not hexadecimal"))?;
        let k = Key::from_bytes(&b);
        b.zeroize();
        k
    }

    /// A random key of `len` bytes with odd parity.
    pub fn random(rng: &mut dyn rand_core::RngCore, len: usize) -> Result<Key, SecError> {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let mut k = Key::from_bytes(&bytes)?;
        bytes.zeroize();
        k.fix_parity();
        Ok(k)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key is empty (never, for a constructed key).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The clear key bytes; callers must not log or store them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Sets every byte to odd parity (the DES convention).
    pub fn fix_parity(&mut self) {
        for b in &mut self.bytes {
            if b.count_ones() % 2 == 0 {
                *b ^= 1;
            }
        }
    }

    /// Whether every byte has odd parity.
    pub fn has_odd_parity(&self) -> bool {
        self.bytes.iter().all(|b| b.count_ones() % 2 == 1)
    }

    /// The left 8 bytes (the whole key if single length).
    pub(crate) fn left(&self) -> Key {
        Key {
            bytes: self.bytes[..8].to_vec(),
        }
    }

    /// The right 8 bytes of a double-length key (the left if single length).
    pub(crate) fn right(&self) -> Key {
        let start = if self.bytes.len() >= 16 { 8 } else { 0 };
        Key {
            bytes: self.bytes[start..start + 8].to_vec(),
        }
    }

    /// The key scheduled for use: build it once per operation, not once per block.
    pub fn cipher(&self) -> KeyCipher {
        let k = &self.bytes;
        KeyCipher(match k.len() {
            8 => Inner::Single(Des::new(GenericArray::from_slice(k))),
            16 => Inner::Double(TdesEde2::new(GenericArray::from_slice(k))),
            _ => Inner::Triple(TdesEde3::new(GenericArray::from_slice(k))),
        })
    }

    /// Encrypts one 8-byte block (DES, or TDES EDE for double/triple length).
    pub fn encrypt_block(&self, block: &mut [u8; 8]) {
        self.cipher().encrypt_block(block);
    }

    /// Decrypts one 8-byte block.
    pub fn decrypt_block(&self, block: &mut [u8; 8]) {
        self.cipher().decrypt_block(block);
    }

    /// ECB-encrypts data whose length is a multiple of 8 in place.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<(), SecError> {
        self.cipher().encrypt_ecb(data)
    }

    /// ECB-decrypts data whose length is a multiple of 8 in place.
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<(), SecError> {
        self.cipher().decrypt_ecb(data)
    }

    /// CBC-encrypts data (multiple of 8) in place with the given IV.
    pub fn encrypt_cbc(&self, iv: [u8; 8], data: &mut [u8]) -> Result<(), SecError> {
        let c = self.cipher();
        let mut prev = iv;
        for chunk in blocks_mut(data)? {
            xor_into(chunk, &prev);
            c.encrypt_block(chunk);
            prev = *chunk;
        }
        Ok(())
    }

    /// CBC-decrypts data (multiple of 8) in place with the given IV.
    pub fn decrypt_cbc(&self, iv: [u8; 8], data: &mut [u8]) -> Result<(), SecError> {
        let c = self.cipher();
        let mut prev = iv;
        for chunk in blocks_mut(data)? {
            let saved = *chunk;
            c.decrypt_block(chunk);
            xor_into(chunk, &prev);
            prev = saved;
        }
        Ok(())
    }
}

enum Inner {
    Single(Des),
    Double(TdesEde2),
    Triple(TdesEde3),
}

/// A scheduled DES/TDES key (RustCrypto's cipher state, zeroized on drop). Secret.
pub struct KeyCipher(Inner);

impl KeyCipher {
    /// Encrypts one 8-byte block.
    #[inline]
    pub fn encrypt_block(&self, block: &mut [u8; 8]) {
        let b = GenericArray::from_mut_slice(block);
        match &self.0 {
            Inner::Single(c) => c.encrypt_block(b),
            Inner::Double(c) => c.encrypt_block(b),
            Inner::Triple(c) => c.encrypt_block(b),
        }
    }

    /// Decrypts one 8-byte block.
    #[inline]
    pub fn decrypt_block(&self, block: &mut [u8; 8]) {
        let b = GenericArray::from_mut_slice(block);
        match &self.0 {
            Inner::Single(c) => c.decrypt_block(b),
            Inner::Double(c) => c.decrypt_block(b),
            Inner::Triple(c) => c.decrypt_block(b),
        }
    }

    /// ECB-encrypts data whose length is a multiple of 8 in place.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<(), SecError> {
        for chunk in blocks_mut(data)? {
            self.encrypt_block(chunk);
        }
        Ok(())
    }

    /// ECB-decrypts data whose length is a multiple of 8 in place.
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<(), SecError> {
        for chunk in blocks_mut(data)? {
            self.decrypt_block(chunk);
        }
        Ok(())
    }
}

impl fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyCipher([redacted])")
    }
}

fn blocks_mut(data: &mut [u8]) -> Result<impl Iterator<Item = &mut [u8; 8]>, SecError> {
    if data.len() % 8 != 0 {
        return Err(SecError::BadKey("data length must be a multiple of 8"));
    }
    Ok(data.chunks_exact_mut(8).map(|c| {
        let arr: &mut [u8; 8] = c.try_into().unwrap_or_else(|_| unreachable!("chunks of 8"));
        arr
    }))
}

pub(crate) fn xor_into(dst: &mut [u8; 8], src: &[u8; 8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// The key check value: the first `n` bytes (3 common, 4 UnionPay) of the key's
/// encryption of eight zero bytes.
pub fn check_value(key: &Key, n: usize) -> Vec<u8> {
    check_value_with(&key.cipher(), n)
}

/// The check value of an already scheduled key.
pub fn check_value_with(cipher: &KeyCipher, n: usize) -> Vec<u8> {
    let mut block = [0u8; 8];
    cipher.encrypt_block(&mut block);
    block[..n.min(8)].to_vec()
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} bytes, kcv {})",
            self.bytes.len(),
            hex::encode_upper(check_value(self, 3))
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
