//! Message authentication codes: ANSI X9.9, ANSI X9.19 and the UnionPay POS ECB MAC.

use subtle::ConstantTimeEq;

use crate::key::{xor_into, Key, KeyCipher};

/// Which MAC a link uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// ANSI X9.9: single-DES CBC-MAC, zero IV, zero padding (left key half).
    X9_9,
    /// ANSI X9.19 retail MAC (ISO 9797-1 algorithm 3), double-length key.
    X9_19,
    /// UnionPay POS "ECB" MAC over MTI through field 63; 8 ASCII hex characters.
    CupEcb,
}

impl MacAlgorithm {
    /// Computes this MAC.
    pub fn compute(self, key: &Key, data: &[u8]) -> [u8; 8] {
        match self {
            MacAlgorithm::X9_9 => x9_9_mac(key, data),
            MacAlgorithm::X9_19 => x9_19_mac(key, data),
            MacAlgorithm::CupEcb => cup_ecb_mac(key, data),
        }
    }

    /// Computes this MAC with keys already scheduled: the whole key and its halves.
    pub fn compute_scheduled(
        self,
        full: &KeyCipher,
        left: &KeyCipher,
        right: &KeyCipher,
        data: &[u8],
    ) -> [u8; 8] {
        match self {
            MacAlgorithm::X9_9 => cbc_mac(left, data),
            MacAlgorithm::X9_19 => x9_19_scheduled(left, right, data),
            MacAlgorithm::CupEcb => cup_ecb_scheduled(full, data),
        }
    }

    /// Parses `x9.9`, `x9.19` or `cup-ecb`.
    pub fn parse(s: &str) -> Option<MacAlgorithm> {
        match s {
            "x9.9" => Some(MacAlgorithm::X9_9),
            "x9.19" => Some(MacAlgorithm::X9_19),
            "cup-ecb" => Some(MacAlgorithm::CupEcb),
            _ => None,
        }
    }
}

fn zero_padded_blocks(data: &[u8]) -> impl Iterator<Item = [u8; 8]> + '_ {
    data.chunks(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        b
    })
}

fn cbc_mac(cipher: &KeyCipher, data: &[u8]) -> [u8; 8] {
    let mut h = [0u8; 8];
    for block in zero_padded_blocks(data) {
        xor_into(&mut h, &block);
        cipher.encrypt_block(&mut h);
    }
    h
}

/// ANSI X9.9 MAC under the key's left half (single DES).
pub fn x9_9_mac(key: &Key, data: &[u8]) -> [u8; 8] {
    cbc_mac(&key.left().cipher(), data)
}

/// ANSI X9.19 retail MAC: X9.9 under the left half, then decrypt with the right half
/// and encrypt with the left.
pub fn x9_19_mac(key: &Key, data: &[u8]) -> [u8; 8] {
    x9_19_scheduled(&key.left().cipher(), &key.right().cipher(), data)
}

fn x9_19_scheduled(left: &KeyCipher, right: &KeyCipher, data: &[u8]) -> [u8; 8] {
    let mut h = cbc_mac(left, data);
    right.decrypt_block(&mut h);
    left.encrypt_block(&mut h);
    h
}

/// The UnionPay POS ECB MAC: XOR all zero-padded 8-byte blocks, write the result as 16
/// uppercase hex characters, encrypt the first 8 with the MAK, XOR with the last 8,
/// encrypt again, and keep the first 8 hex characters of the result (as ASCII).
pub fn cup_ecb_mac(key: &Key, data: &[u8]) -> [u8; 8] {
    cup_ecb_scheduled(&key.cipher(), data)
}

fn cup_ecb_scheduled(cipher: &KeyCipher, data: &[u8]) -> [u8; 8] {
    let mut x = [0u8; 8];
    for block in zero_padded_blocks(data) {
        xor_into(&mut x, &block);
    }
    let hex = hex_upper(&x);
    let mut first: [u8; 8] = std::array::from_fn(|i| hex[i]);
    let last: [u8; 8] = std::array::from_fn(|i| hex[8 + i]);
    cipher.encrypt_block(&mut first);
    xor_into(&mut first, &last);
    cipher.encrypt_block(&mut first);
    let out = hex_upper(&first);
    std::array::from_fn(|i| out[i])
}

fn hex_upper(b: &[u8; 8]) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    std::array::from_fn(|i| {
        let byte = b[i / 2];
        HEX[usize::from(if i % 2 == 0 { byte >> 4 } else { byte & 0x0f })]
    })
}

/// Compares two MACs in constant time.
pub fn mac_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
