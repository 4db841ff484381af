//! MACs on the issuer link (`iso87-ascii`): which field carries one and what it covers.
//!
//! The MAC is the last field: 128 when the message has a secondary bitmap, else 64.
//! It covers the packed message from the MTI up to (not including) the MAC field,
//! bitmap bits included. In `iso87-ascii` the MAC is 16 hex characters at the very end
//! of the packed message, so its input is everything before them.

use cardsec::SecError;
use iso8583::{Dialect, Message};

/// Hex characters a MAC occupies at the end of a packed `iso87-ascii` message.
const MAC_HEX_LEN: usize = 16;

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The message does not pack.
    #[error("pack message: {0}")]
    Pack(#[from] iso8583::Error),
    /// The security module refused to compute the MAC.
    #[error("compute MAC: {0}")]
    Mac(#[from] SecError),
}

/// The field that must carry the MAC of `msg`: 128 if any field above 64 is present.
pub fn mac_field(msg: &Message) -> u8 {
    if msg.field_numbers().any(|f| f > 64) {
        128
    } else {
        64
    }
}

/// The field that carries the MAC of a received message, if it is where the protocol
/// says: 128 when present, else 64 when no field above 64 is present.
pub fn received_mac_field(msg: &Message) -> Option<u8> {
    if msg.has(128) {
        Some(128)
    } else if msg.has(64) && mac_field(msg) == 64 {
        Some(64)
    } else {
        None
    }
}

/// Sets the MAC field of `msg` to the MAC `compute` returns over the packed message,
/// and returns the packed, signed message.
pub fn sign(
    msg: &mut Message,
    compute: impl FnOnce(&[u8]) -> Result<[u8; 8], SecError>,
) -> Result<Vec<u8>, SignError> {
    let field = mac_field(msg);
    let other = if field == 128 { 64 } else { 128 };
    msg.remove(other);
    msg.set(field, [0u8; 8]);
    let mut packed = Dialect::iso87_ascii().pack(msg)?;
    let body = packed.len() - MAC_HEX_LEN;
    let mac = compute(&packed[..body])?;
    msg.set(field, mac);
    packed.truncate(body);
    for b in mac {
        packed.extend_from_slice(format!("{b:02X}").as_bytes());
    }
    Ok(packed)
}

/// Checks the MAC of a received message with `verify(input, mac)`.
///
/// `raw` is the message as received, when available; otherwise the message is
/// re-packed (byte-identical for messages this codec wrote). A message without a MAC
/// where the protocol puts one fails.
pub fn verify(
    msg: &Message,
    raw: Option<&[u8]>,
    verify: impl FnOnce(&[u8], &[u8]) -> bool,
) -> bool {
    let Some(field) = received_mac_field(msg) else {
        return false;
    };
    let Some(mac) = msg.get(field).filter(|m| m.len() == 8) else {
        return false;
    };
    let packed;
    let bytes = match raw {
        Some(r) => r,
        None => match Dialect::iso87_ascii().pack(msg) {
            Ok(p) => {
                packed = p;
                &packed
            }
            Err(_) => return false,
        },
    };
    match bytes.len().checked_sub(MAC_HEX_LEN) {
        Some(body) => verify(&bytes[..body], mac),
        None => false,
    }
}
