//! Building and signing messages: terminal replies (cup-pos) and issuer requests
//! (iso87-ascii), with the MAC as the last field.

use cardsec::{MacAlgorithm, SecError, SecurityModule, WrappedKey};
use iso8583::{Dialect, Message};

/// Packs a message whose last field is the MAC (64, or 128 with a secondary bitmap),
/// computing the MAC over everything before it.
pub fn pack_signed(
    dialect: &Dialect,
    msg: &mut Message,
    hsm: &dyn SecurityModule,
    key: &WrappedKey,
    alg: MacAlgorithm,
) -> Result<Vec<u8>, SignError> {
    let mac_field = if msg.field_numbers().any(|f| f > 64) {
        128
    } else {
        64
    };
    msg.remove(if mac_field == 64 { 128 } else { 64 });
    msg.set(mac_field, [0u8; 8]);
    let mut bytes = dialect
        .pack(msg)
        .map_err(|e| SignError::Pack(e.to_string()))?;
    let wire = bytes.len() - mac_wire_len(dialect);
    let mac = hsm.generate_mac(key, alg, &bytes[..wire])?;
    write_mac(dialect, &mut bytes[wire..], &mac);
    msg.set(mac_field, mac);
    Ok(bytes)
}

/// Bytes the MAC field takes on the wire in this dialect.
pub fn mac_wire_len(dialect: &Dialect) -> usize {
    match dialect.head() {
        iso8583::HeadEncoding::Ascii => 16,
        iso8583::HeadEncoding::Binary => 8,
    }
}

fn write_mac(dialect: &Dialect, out: &mut [u8], mac: &[u8; 8]) {
    match dialect.head() {
        iso8583::HeadEncoding::Ascii => out.copy_from_slice(hex::encode_upper(mac).as_bytes()),
        iso8583::HeadEncoding::Binary => out.copy_from_slice(mac),
    }
}

/// The MAC of a received message and the bytes it covers, if its last field is a MAC.
pub fn received_mac<'a>(
    dialect: &Dialect,
    raw: &'a [u8],
    msg: &Message,
) -> Option<(&'a [u8], [u8; 8])> {
    let last = msg.field_numbers().last()?;
    if last != 64 && last != 128 {
        return None;
    }
    let mac: [u8; 8] = msg.get(last)?.try_into().ok()?;
    let n = mac_wire_len(dialect);
    Some((raw.get(..raw.len().checked_sub(n)?)?, mac))
}

/// A message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The codec refused the message.
    #[error("pack: {0}")]
    Pack(String),
    /// The security module refused.
    #[error("security module: {0}")]
    Sec(#[from] SecError),
}
