//! The key hierarchy and the security module interface.
//!
//! Keys at rest are [`WrappedKey`]s: encrypted under a variant of the local master
//! key (LMK) that depends on the key's kind, so a wrapped MAC key cannot be presented
//! as a PIN key. Like a hardware module, [`SoftwareSecurityModule`] keeps no per-key
//! state: callers store wrapped keys and hand them back with each command.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::card::{Pan, Track2};
use crate::key::{check_value, check_value_with, Key, KeyCipher, KeyKind};
use crate::mac::{mac_equal, MacAlgorithm};
use crate::pin::{EncryptedPinBlock, Pin, PinBlock};
use crate::token::{DataKey, PanToken};
use crate::SecError;

/// The local master key: a double-length TDES key that wraps every key at rest.
///
/// Each key kind is wrapped under its own variant of the LMK (a kind-specific byte
/// XORed into each half); the variants are scheduled once, when the LMK is loaded.
pub struct Lmk {
    key: Key,
    variants: Vec<(KeyKind, KeyCipher)>,
}

const ALL_KINDS: [KeyKind; 8] = [
    KeyKind::Tmk,
    KeyKind::Tpk,
    KeyKind::Tak,
    KeyKind::Tdk,
    KeyKind::Zmk,
    KeyKind::Zpk,
    KeyKind::Zak,
    KeyKind::Dek,
];

impl Lmk {
    /// An LMK from 32 hex characters (configuration or the environment).
    pub fn from_hex(s: &str) -> Result<Lmk, SecError> {
        Lmk::from_key(Key::from_hex(s)?)
    }

    fn from_key(key: Key) -> Result<Lmk, SecError> {
        if key.len() != 16 {
            return Err(SecError::BadKey("the LMK is a double-length (16-byte) key"));
        }
        let variants = ALL_KINDS
            .iter()
            .map(|&kind| {
                let mut b = key.expose().to_vec();
                b[0] ^= kind.variant();
                b[8] ^= kind.variant();
                let k = Key::from_bytes(&b);
                b.zeroize();
                k.map(|k| (kind, k.cipher()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Lmk { key, variants })
    }

    /// An LMK combined from two or three clear components held by different custodians
    /// (a key ceremony): XORed together, each checked against the 3-byte check value
    /// its custodian wrote down when there is one. Fewer than two components is refused:
    /// one person must never hold the whole key.
    pub fn from_components(components: &[(Key, Option<[u8; 3]>)]) -> Result<Lmk, SecError> {
        if !(2..=3).contains(&components.len()) {
            return Err(SecError::BadKey(
                "an LMK is combined from 2 or 3 components",
            ));
        }
        let mut combined = vec![0u8; 16];
        for (key, kcv) in components {
            if key.len() != 16 {
                return Err(SecError::BadKey("an LMK component is 16 bytes"));
            }
            if kcv.is_some_and(|want| check_value(key, 3) != want) {
                return Err(SecError::CheckValueMismatch);
            }
            for (c, b) in combined.iter_mut().zip(key.expose()) {
                *c ^= b;
            }
        }
        let lmk = Key::from_bytes(&combined);
        combined.zeroize();
        Lmk::from_key(lmk?)
    }

    /// The LMK's 3-byte check value (hex): shows which LMK is loaded, reveals nothing.
    pub fn kcv_hex(&self) -> String {
        hex::encode_upper(check_value(&self.key, 3))
    }

    fn variant(&self, kind: KeyKind) -> &KeyCipher {
        // Every kind is scheduled in `from_hex`.
        &self
            .variants
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or(&self.variants[0])
            .1
    }

    fn wrap(&self, kind: KeyKind, version: u32, clear: &Key) -> Result<WrappedKey, SecError> {
        let mut cipher = clear.expose().to_vec();
        self.variant(kind).encrypt_ecb(&mut cipher)?;
        let mut kcv = [0u8; 3];
        kcv.copy_from_slice(&check_value(clear, 3));
        Ok(WrappedKey {
            kind,
            version,
            cipher,
            kcv,
        })
    }

    /// Unwraps a key of the given kind, checking its check value; returns it scheduled.
    fn unwrap_cipher(&self, key: &WrappedKey, kind: KeyKind) -> Result<(Key, KeyCipher), SecError> {
        if key.kind != kind {
            return Err(SecError::WrongKeyKind {
                expected: kind.name(),
                got: key.kind.name(),
            });
        }
        let mut clear = key.cipher.clone();
        self.variant(kind).decrypt_ecb(&mut clear)?;
        let k = Key::from_bytes(&clear);
        clear.zeroize();
        let k = k?;
        let c = k.cipher();
        if check_value_with(&c, 3) != key.kcv {
            return Err(SecError::CheckValueMismatch);
        }
        Ok((k, c))
    }
}

impl Clone for Lmk {
    /// Another handle on the same LMK (its variants scheduled again).
    fn clone(&self) -> Lmk {
        Lmk::from_key(self.key.clone())
            .unwrap_or_else(|_| unreachable!("a loaded LMK is a valid double-length key"))
    }
}

impl fmt::Debug for Lmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lmk([redacted])")
    }
}

/// A key encrypted under the LMK, with its kind, version and check value. Safe to store.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    kind: KeyKind,
    version: u32,
    cipher: Vec<u8>,
    kcv: [u8; 3],
}

impl WrappedKey {
    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key's version (rotation counter).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The clear key's 3-byte check value, as hex.
    pub fn kcv_hex(&self) -> String {
        hex::encode_upper(self.kcv)
    }

    /// Storage form: `KIND:version:cipher-hex:kcv-hex`.
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.kind.name(),
            self.version,
            hex::encode_upper(&self.cipher),
            self.kcv_hex()
        )
    }

    /// Reads the storage form.
    pub fn parse(s: &str) -> Result<WrappedKey, SecError> {
        let bad = || SecError::BadKey("wrapped key text is KIND:version:cipher:kcv");
        let mut parts = s.split(':');
        let kind = KeyKind::parse(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        let version = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let cipher = hex::decode(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let kcv: [u8; 3] = hex::decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        if parts.next().is_some() || ![8, 16, 24].contains(&cipher.len()) {
            return Err(bad());
        }
        Ok(WrappedKey {
            kind,
            version,
            cipher,
            kcv,
        })
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WrappedKey({} v{} kcv {})",
            self.kind.name(),
            self.version,
            self.kcv_hex()
        )
    }
}

/// Which working keys a sign-on delivers in field 62 (field 60.3 of the request).
///
/// Layout chosen by posguard (the reference leaves it open): each key encrypted under
/// the terminal master key (TDES ECB), followed by its 4-byte check value:
/// `001` PIK 8 + 4, MAK 8 + 4 (24 bytes); `003` PIK 16 + 4, MAK 16 + 4 (40 bytes);
/// `004` as `003` plus TDK 16 + 4 (60 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// `001`: single-length PIK and MAK.
    Single,
    /// `003`: double-length PIK and MAK.
    Double,
    /// `004`: double-length PIK, MAK and track key.
    DoubleWithTrack,
}

impl KeyLayout {
    /// The layout a field 60.3 code asks for.
    pub fn from_net_code(code: &str) -> Option<KeyLayout> {
        match code {
            "001" => Some(KeyLayout::Single),
            "003" => Some(KeyLayout::Double),
            "004" => Some(KeyLayout::DoubleWithTrack),
            _ => None,
        }
    }

    /// The field 60.3 code.
    pub fn net_code(self) -> &'static str {
        match self {
            KeyLayout::Single => "001",
            KeyLayout::Double => "003",
            KeyLayout::DoubleWithTrack => "004",
        }
    }

    fn key_len(self) -> usize {
        if self == KeyLayout::Single {
            8
        } else {
            16
        }
    }

    fn key_count(self) -> usize {
        if self == KeyLayout::DoubleWithTrack {
            3
        } else {
            2
        }
    }

    /// Bytes of the field 62 block.
    pub fn block_len(self) -> usize {
        self.key_count() * (self.key_len() + 4)
    }
}

/// Working keys generated at sign-on: under the LMK for the acquirer to store, and
/// under the TMK (field 62) for the terminal.
#[derive(Debug, Clone)]
pub struct WorkingKeys {
    /// PIN key, under the LMK.
    pub pik: WrappedKey,
    /// MAC key, under the LMK.
    pub mak: WrappedKey,
    /// Track key, under the LMK (layout 004 only).
    pub tdk: Option<WrappedKey>,
    /// The field 62 block for the sign-on reply.
    pub field62: Vec<u8>,
}

/// The terminal's side of key delivery: working keys recovered from field 62.
#[derive(Debug)]
pub struct TerminalKeys {
    /// PIN key.
    pub pik: Key,
    /// MAC key.
    pub mak: Key,
    /// Track key, if delivered.
    pub tdk: Option<Key>,
}

impl TerminalKeys {
    /// Decrypts field 62 under the terminal's clear TMK and checks each check value.
    pub fn unwrap(tmk: &Key, layout: KeyLayout, field62: &[u8]) -> Result<TerminalKeys, SecError> {
        if field62.len() != layout.block_len() {
            return Err(SecError::KeyBlockLength {
                want: layout.block_len(),
                got: field62.len(),
            });
        }
        let step = layout.key_len() + 4;
        let mut keys = field62.chunks(step).map(|chunk| {
            let (enc, kcv) = chunk.split_at(layout.key_len());
            let mut clear = enc.to_vec();
            tmk.decrypt_ecb(&mut clear)?;
            let key = Key::from_bytes(&clear);
            clear.zeroize();
            let key = key?;
            if !mac_equal(&check_value(&key, 4), kcv) {
                return Err(SecError::CheckValueMismatch);
            }
            Ok(key)
        });
        let mut next = || {
            keys.next()
                .unwrap_or(Err(SecError::KeyBlockLength { want: 0, got: 0 }))
        };
        let pik = next()?;
        let mak = next()?;
        let tdk = if layout == KeyLayout::DoubleWithTrack {
            Some(next()?)
        } else {
            None
        };
        Ok(TerminalKeys { pik, mak, tdk })
    }
}

/// Everything the switch and the issuer need from a security module.
pub trait SecurityModule: Send + Sync {
    /// Wraps a clear key under the LMK (key ceremony: a TMK injected into a terminal,
    /// a zone key agreed with the issuer).
    fn import_key(&self, kind: KeyKind, version: u32, clear: &Key) -> Result<WrappedKey, SecError>;

    /// Generates a random key of `len` bytes under the LMK.
    fn generate_key(&self, kind: KeyKind, version: u32, len: usize)
        -> Result<WrappedKey, SecError>;

    /// Generates a terminal's working keys: under the LMK, and as field 62 under its TMK.
    fn generate_working_keys(
        &self,
        tmk: &WrappedKey,
        layout: KeyLayout,
        version: u32,
    ) -> Result<WorkingKeys, SecError>;

    /// Computes a MAC under a terminal (TAK) or zone (ZAK) MAC key.
    fn generate_mac(
        &self,
        key: &WrappedKey,
        alg: MacAlgorithm,
        data: &[u8],
    ) -> Result<[u8; 8], SecError>;

    /// Verifies a MAC in constant time.
    fn verify_mac(
        &self,
        key: &WrappedKey,
        alg: MacAlgorithm,
        data: &[u8],
        mac: &[u8],
    ) -> Result<(), SecError> {
        let want = self.generate_mac(key, alg, data)?;
        if mac_equal(&want, mac) {
            Ok(())
        } else {
            Err(SecError::MacMismatch)
        }
    }

    /// Verifies against several key versions (newest first) while old ones are not
    /// retired; returns the version that verified.
    fn verify_mac_any(
        &self,
        keys: &[WrappedKey],
        alg: MacAlgorithm,
        data: &[u8],
        mac: &[u8],
    ) -> Result<u32, SecError> {
        for k in keys {
            if self.verify_mac(k, alg, data, mac).is_ok() {
                return Ok(k.version());
            }
        }
        Err(SecError::MacMismatch)
    }

    /// Re-encrypts a PIN block from a terminal PIN key to a zone PIN key; the clear
    /// block never leaves the module. Fails if the block is not valid format 0.
    fn translate_pin(
        &self,
        tpk: &WrappedKey,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecError>;

    /// The PIN verification value an issuer stores for a card's PIN.
    fn pin_verification_value(&self, pan: &Pan, pin: &Pin) -> String;

    /// Issuer side: whether a PIN block under a zone PIN key carries the PIN whose
    /// verification value is `pvv`.
    fn verify_pin(
        &self,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
        pvv: &str,
    ) -> Result<bool, SecError>;

    /// The token of a PAN under the current data key.
    fn tokenize(&self, pan: &Pan) -> PanToken;

    /// The token of a PAN under the data key with id `key_id` (a token made before the
    /// token key was rotated), if the module still holds that key.
    fn tokenize_under(&self, pan: &Pan, key_id: u16) -> Option<PanToken>;

    /// Installs a token data key kept wrapped under the LMK (kind DEK) as the current
    /// one, while the module runs: new tokens carry its version as their key id; the
    /// keys it replaces stay for `tokenize_under` (the last few).
    fn install_token_key(&self, key: &WrappedKey) -> Result<(), SecError>;

    /// Decrypts track 2 that a terminal encrypted under its track key (layout `004`)
    /// and parses it; the clear track exists only in the returned secret value.
    fn decrypt_track(&self, tdk: &WrappedKey, encrypted: &str) -> Result<Track2, SecError>;
}

/// Token data keys older than the current one that the module keeps for matching
/// tokens made before a rotation.
const OLDER_DATA_KEYS: usize = 4;

/// The current token data key and the few it replaced (newest first).
struct DataKeys {
    current: DataKey,
    older: Vec<DataKey>,
}

impl DataKeys {
    /// Makes `key` current; the one it replaces is kept (a re-install changes nothing).
    fn replace(&mut self, key: DataKey) {
        if key.id() == self.current.id() {
            self.current = key;
            return;
        }
        self.older.retain(|k| k.id() != key.id());
        let old = std::mem::replace(&mut self.current, key);
        self.older.insert(0, old);
        self.older.truncate(OLDER_DATA_KEYS);
    }
}

/// A key unwrapped and scheduled: the whole key and its halves (for X9.9/X9.19).
struct Scheduled {
    full: KeyCipher,
    left: KeyCipher,
    right: KeyCipher,
}

/// Scheduled keys by kind, wrapped bytes and check value.
type KeyCache = HashMap<(KeyKind, Vec<u8>, [u8; 3]), Arc<Scheduled>>;

/// Scheduled keys kept inside the module, at most this many (then it starts afresh).
const KEY_CACHE_LIMIT: usize = 65_536;

/// A software security module: the LMK in memory, a random source for key generation,
/// and — like a hardware module — the working keys it has unwrapped, kept scheduled
/// inside it (bounded) so each MAC or PIN operation does not unwrap again.
pub struct SoftwareSecurityModule {
    lmk: Lmk,
    /// The LMK being replaced, during an LMK rotation: keys still wrapped under it are
    /// read, everything new is wrapped under `lmk`.
    previous: Option<Lmk>,
    data_keys: std::sync::RwLock<DataKeys>,
    pvk: Vec<u8>,
    rng: Mutex<Box<dyn rand_core::RngCore + Send>>,
    cache: Mutex<KeyCache>,
}

impl fmt::Debug for SoftwareSecurityModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SoftwareSecurityModule(data key {})",
            self.data_keys().current.id()
        )
    }
}

fn derive(lmk: &Lmk, label: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(lmk.key.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl SoftwareSecurityModule {
    /// A module under `lmk`; keys are generated from `rng` (use the OS generator in
    /// production, a seeded one in simulations). The token data key (id 1) and the PIN
    /// verification key are derived from the LMK.
    pub fn new(lmk: Lmk, rng: Box<dyn rand_core::RngCore + Send>) -> SoftwareSecurityModule {
        let mut dk = derive(&lmk, "posguard token data key 1");
        let data_key = DataKey::new(1, &dk).unwrap_or_else(|_| unreachable!("32 bytes"));
        dk.zeroize();
        let pvk = derive(&lmk, "posguard PIN verification key");
        SoftwareSecurityModule {
            lmk,
            previous: None,
            data_keys: std::sync::RwLock::new(DataKeys {
                current: data_key,
                older: Vec::new(),
            }),
            pvk,
            rng: Mutex::new(rng),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key unwrapped (checking kind and check value) and scheduled, from the cache
    /// when it is there.
    fn scheduled(&self, key: &WrappedKey, kind: KeyKind) -> Result<Arc<Scheduled>, SecError> {
        if key.kind != kind {
            return Err(SecError::WrongKeyKind {
                expected: kind.name(),
                got: key.kind.name(),
            });
        }
        let id = (key.kind, key.cipher.clone(), key.kcv);
        if let Some(s) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let (k, full) = self.unwrap_any(key, kind)?;
        let s = Arc::new(Scheduled {
            full,
            left: k.left().cipher(),
            right: k.right().cipher(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= KEY_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, s.clone());
        Ok(s)
    }

    /// Replaces the token data key (re-keying): new tokens carry the new key id.
    pub fn set_data_key(&mut self, key: DataKey) {
        self.data_keys_mut().replace(key);
    }

    fn data_keys(&self) -> std::sync::RwLockReadGuard<'_, DataKeys> {
        self.data_keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn data_keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, DataKeys> {
        self.data_keys.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs a token data key kept wrapped under the LMK (kind DEK); its version is
    /// the id new tokens carry. The clear key never leaves the module.
    pub fn set_wrapped_data_key(&mut self, key: &WrappedKey) -> Result<(), SecError> {
        self.install_token_key(key)
    }

    /// During an LMK rotation: also read keys wrapped under the LMK being replaced.
    /// Rotating without downtime: restart the nodes one at a time on the new LMK with
    /// the old one as previous, run `posguard keys rewrap`, then drop the previous.
    pub fn with_previous_lmk(mut self, previous: Lmk) -> SoftwareSecurityModule {
        self.previous = Some(previous);
        self
    }

    /// Unwraps under the LMK, or the previous LMK during a rotation.
    fn unwrap_any(&self, key: &WrappedKey, kind: KeyKind) -> Result<(Key, KeyCipher), SecError> {
        match (self.lmk.unwrap_cipher(key, kind), &self.previous) {
            (Err(SecError::CheckValueMismatch), Some(old)) => old.unwrap_cipher(key, kind),
            (r, _) => r,
        }
    }

    /// Whether the module can use `key` (wrapped under its LMK, or the previous one).
    pub fn holds(&self, key: &WrappedKey) -> bool {
        self.unwrap_any(key, key.kind).is_ok()
    }

    /// Whether `key` is wrapped under the current LMK (not only the previous one).
    pub fn holds_under_current(&self, key: &WrappedKey) -> bool {
        self.lmk.unwrap_cipher(key, key.kind).is_ok()
    }

    /// The same key wrapped under another LMK (LMK rotation); its kind, version and
    /// check value stay.
    pub fn rewrap(&self, key: &WrappedKey, to: &Lmk) -> Result<WrappedKey, SecError> {
        let (clear, _) = self.unwrap_any(key, key.kind)?;
        to.wrap(key.kind, key.version, &clear)
    }

    fn random_key(&self, len: usize) -> Result<Key, SecError> {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        Key::random(&mut **rng, len)
    }

    /// Generates a terminal master key for injection: kept wrapped under the LMK, and
    /// handed out either encrypted under a key-encryption key (`kek`, a ZMK of the key
    /// table: the injection facility holds it) or as two components for two custodians.
    /// The clear key exists only inside this call.
    pub fn generate_for_injection(
        &self,
        kind: KeyKind,
        version: u32,
        len: usize,
        kek: Option<&WrappedKey>,
    ) -> Result<(WrappedKey, KeyDelivery), SecError> {
        let mut key = self.random_key(len)?;
        key.fix_parity();
        let wrapped = self.lmk.wrap(kind, version, &key)?;
        let kcv = hex::encode_upper(check_value(&key, 3));
        let delivery = match kek {
            Some(k) => {
                let (kek, _) = self.unwrap_any(k, KeyKind::Zmk)?;
                let mut enc = key.expose().to_vec();
                kek.encrypt_ecb(&mut enc)?;
                KeyDelivery::UnderKek {
                    cryptogram: hex::encode_upper(enc),
                    kek_kcv: k.kcv_hex(),
                    kcv,
                }
            }
            None => {
                let mut first = self.random_key(len)?;
                first.fix_parity();
                let second: Vec<u8> = first
                    .expose()
                    .iter()
                    .zip(key.expose())
                    .map(|(a, b)| a ^ b)
                    .collect();
                let mut second = Key::from_bytes(&second)?;
                // XOR of two odd-parity bytes is even: re-set the second's parity
                // bits (DES ignores them, the sum still gives the key).
                second.fix_parity();
                let combined: Vec<u8> = first
                    .expose()
                    .iter()
                    .zip(second.expose())
                    .map(|(a, b)| a ^ b)
                    .collect();
                let mut combined = Key::from_bytes(&combined)?;
                combined.fix_parity();
                if check_value(&combined, 3) != check_value(&key, 3) {
                    return Err(SecError::CheckValueMismatch);
                }
                KeyDelivery::Components {
                    components: [KeyComponent::of(&first), KeyComponent::of(&second)],
                    kcv,
                }
            }
        };
        Ok((wrapped, delivery))
    }
}

/// A key component for one custodian: its hex (shown once, never stored) and its check
/// value. `Debug` shows the check value only.
pub struct KeyComponent {
    /// The component, hex.
    pub hex: zeroize::Zeroizing<String>,
    /// Its check value (6 hex digits).
    pub kcv: String,
}

impl KeyComponent {
    fn of(k: &Key) -> KeyComponent {
        KeyComponent {
            hex: zeroize::Zeroizing::new(hex::encode_upper(k.expose())),
            kcv: hex::encode_upper(check_value(k, 3)),
        }
    }
}

impl fmt::Debug for KeyComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyComponent([redacted], kcv {})", self.kcv)
    }
}

/// How a generated key reaches the device it is injected into.
#[derive(Debug)]
pub enum KeyDelivery {
    /// Encrypted under a key-encryption key the injection facility holds.
    UnderKek {
        /// The key under the KEK (TDES ECB), hex.
        cryptogram: String,
        /// The KEK's check value.
        kek_kcv: String,
        /// The key's check value.
        kcv: String,
    },
    /// Two components: XORed together they give the key.
    Components {
        /// One for each custodian.
        components: [KeyComponent; 2],
        /// The key's check value.
        kcv: String,
    },
}

impl Drop for SoftwareSecurityModule {
    fn drop(&mut self) {
        self.pvk.zeroize();
    }
}

impl SecurityModule for SoftwareSecurityModule {
    fn import_key(&self, kind: KeyKind, version: u32, clear: &Key) -> Result<WrappedKey, SecError> {
        self.lmk.wrap(kind, version, clear)
    }

    fn generate_key(
        &self,
        kind: KeyKind,
        version: u32,
        len: usize,
    ) -> Result<WrappedKey, SecError> {
        let k = self.random_key(len)?;
        self.lmk.wrap(kind, version, &k)
    }

    fn generate_working_keys(
        &self,
        tmk: &WrappedKey,
        layout: KeyLayout,
        version: u32,
    ) -> Result<WorkingKeys, SecError> {
        let (tmk, _) = self.unwrap_any(tmk, KeyKind::Tmk)?;
        let mut field62 = Vec::with_capacity(layout.block_len());
        let mut deliver = |kind: KeyKind| -> Result<WrappedKey, SecError> {
            let k = self.random_key(layout.key_len())?;
            let mut enc = k.expose().to_vec();
            tmk.encrypt_ecb(&mut enc)?;
            field62.extend_from_slice(&enc);
            field62.extend_from_slice(&check_value(&k, 4));
            self.lmk.wrap(kind, version, &k)
        };
        let pik = deliver(KeyKind::Tpk)?;
        let mak = deliver(KeyKind::Tak)?;
        let tdk = if layout == KeyLayout::DoubleWithTrack {
            Some(deliver(KeyKind::Tdk)?)
        } else {
            None
        };
        Ok(WorkingKeys {
            pik,
            mak,
            tdk,
            field62,
        })
    }

    fn generate_mac(
        &self,
        key: &WrappedKey,
        alg: MacAlgorithm,
        data: &[u8],
    ) -> Result<[u8; 8], SecError> {
        if !matches!(key.kind, KeyKind::Tak | KeyKind::Zak) {
            return Err(SecError::WrongKeyKind {
                expected: "TAK or ZAK",
                got: key.kind.name(),
            });
        }
        let s = self.scheduled(key, key.kind)?;
        Ok(alg.compute_scheduled(&s.full, &s.left, &s.right, data))
    }

    fn translate_pin(
        &self,
        tpk: &WrappedKey,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecError> {
        let from = self.scheduled(tpk, KeyKind::Tpk)?;
        let to = self.scheduled(zpk, KeyKind::Zpk)?;
        let (from, to) = (&from.full, &to.full);
        let mut b = block.0;
        from.decrypt_block(&mut b);
        let clear = PinBlock::from_bytes(b);
        b.zeroize();
        clear.pin(pan)?;
        let mut out = *clear.expose();
        to.encrypt_block(&mut out);
        Ok(EncryptedPinBlock(out))
    }

    fn pin_verification_value(&self, pan: &Pan, pin: &Pin) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pvk)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(pan.digits().as_bytes());
        mac.update(b"|");
        mac.update(pin.expose());
        hex::encode_upper(&mac.finalize().into_bytes()[..8])
    }

    fn verify_pin(
        &self,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
        pvv: &str,
    ) -> Result<bool, SecError> {
        let key = self.scheduled(zpk, KeyKind::Zpk)?;
        let mut b = block.0;
        key.full.decrypt_block(&mut b);
        let clear = PinBlock::from_bytes(b);
        b.zeroize();
        let pin = clear.pin(pan)?;
        let want = self.pin_verification_value(pan, &pin);
        Ok(mac_equal(want.as_bytes(), pvv.as_bytes()))
    }

    fn tokenize(&self, pan: &Pan) -> PanToken {
        self.data_keys().current.tokenize(pan)
    }

    fn tokenize_under(&self, pan: &Pan, key_id: u16) -> Option<PanToken> {
        let keys = self.data_keys();
        std::iter::once(&keys.current)
            .chain(&keys.older)
            .find(|k| k.id() == key_id)
            .map(|k| k.tokenize(pan))
    }

    fn install_token_key(&self, key: &WrappedKey) -> Result<(), SecError> {
        let id = u16::try_from(key.version()).map_err(|_| SecError::KeyVersion(key.version()))?;
        let (clear, _) = self.unwrap_any(key, KeyKind::Dek)?;
        let new = DataKey::new(id, clear.expose())?;
        self.data_keys_mut().replace(new);
        Ok(())
    }

    fn decrypt_track(&self, tdk: &WrappedKey, encrypted: &str) -> Result<Track2, SecError> {
        let key = self.scheduled(tdk, KeyKind::Tdk)?;
        crate::track::decrypt_track(&key.full, encrypted)
    }
}
