//! posguard's card security layer.
//!
//! DES/TDES keys with parity and check values, ISO 9564 format 0 PIN blocks and PIN
//! translation, ANSI X9.9 / X9.19 and the UnionPay POS ECB MAC, a key hierarchy under a
//! local master key, card data parsing (Luhn, brand, expiry, track 2, entry mode), and
//! keyed PAN tokens. [`SecurityModule`] is everything the switch needs, with a software
//! implementation; a hardware module can replace it without touching the switch.
//!
//! Every secret type (`Pan`, `Pin`, `PinBlock`, `Track2`, `Key`) redacts itself in
//! `Debug` and `Display`, implements no serialization, and zeroizes on drop. The
//! ciphers are RustCrypto's `des`; nothing here implements a cipher.

mod card;
mod error;
mod hsm;
mod key;
mod mac;
mod pin;
mod token;
mod track;

pub use card::{luhn_valid, Brand, EntryMode, Expiry, MaskedPan, Pan, PanEntry, Track2};
pub use error::SecError;
pub use hsm::{
    KeyComponent, KeyDelivery, KeyLayout, Lmk, SecurityModule, SoftwareSecurityModule,
    TerminalKeys, WorkingKeys, WrappedKey,
};
pub use key::{check_value, Key, KeyCipher, KeyKind};
pub use mac::{cup_ecb_mac, mac_equal, x9_19_mac, x9_9_mac, MacAlgorithm};
pub use pin::{EncryptedPinBlock, Pin, PinBlock};
pub use token::{DataKey, PanToken};
pub use track::encrypt_track;
