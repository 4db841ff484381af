//! The card security error type.

/// Why a security operation failed. Variants map to field 39 codes in the switch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecError {
    /// Key material of the wrong length or malformed hex.
    #[error("bad key: {0}")]
    BadKey(&'static str),
    /// A wrapped key was used as a key of another kind (e.g. a MAK as a PIN key).
    #[error("key kind mismatch: expected {expected}, got {got}")]
    WrongKeyKind {
        /// The kind the operation needs.
        expected: &'static str,
        /// The kind the key has.
        got: &'static str,
    },
    /// A key's check value does not match after unwrapping.
    #[error("key check value mismatch")]
    CheckValueMismatch,
    /// A PIN outside 4–12 digits.
    #[error("PIN must be 4 to 12 digits")]
    BadPin,
    /// A decrypted PIN block is not a valid format 0 block for this PAN.
    #[error("PIN block format error")]
    PinBlockFormat,
    /// A PAN that is not 12–19 digits.
    #[error("PAN must be 12 to 19 digits")]
    BadPan,
    /// Track 2 data that does not parse.
    #[error("track 2 data malformed: {0}")]
    BadTrack2(&'static str),
    /// A MAC did not verify.
    #[error("MAC mismatch")]
    MacMismatch,
    /// A key version that is unknown or retired.
    #[error("key version {0} is unknown or retired")]
    KeyVersion(u32),
    /// A field 62 key block of the wrong length for its layout.
    #[error("key block of {got} bytes does not match layout ({want} bytes)")]
    KeyBlockLength {
        /// Expected length.
        want: usize,
        /// Actual length.
        got: usize,
    },
}
