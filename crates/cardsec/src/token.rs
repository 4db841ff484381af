//! PAN tokens: HMAC-SHA256 of the PAN under a data key with a key id.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::card::Pan;
use crate::SecError;

/// A data key for tokenizing PANs, with the id tokens carry so they can be re-keyed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    #[zeroize(skip)]
    id: u16,
    key: Vec<u8>,
}

impl DataKey {
    /// A data key of at least 16 bytes.
    pub fn new(id: u16, key: &[u8]) -> Result<DataKey, SecError> {
        if key.len() < 16 {
            return Err(SecError::BadKey("a data key is at least 16 bytes"));
        }
        Ok(DataKey {
            id,
            key: key.to_vec(),
        })
    }

    /// The key id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The token of a PAN under this key.
    pub fn tokenize(&self, pan: &Pan) -> PanToken {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(pan.digits().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut t = [0u8; 20];
        t.copy_from_slice(&digest[..20]);
        PanToken {
            key_id: self.id,
            digest: t,
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(id {}, [redacted])", self.id)
    }
}

/// A keyed token standing for a PAN: the same PAN under the same key always gives the
/// same token; the PAN cannot be recovered from it. Text form `t<key id>.<40 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PanToken {
    key_id: u16,
    digest: [u8; 20],
}

impl PanToken {
    /// The id of the data key that made it.
    pub fn key_id(&self) -> u16 {
        self.key_id
    }

    /// Reads the text form.
    pub fn parse(s: &str) -> Option<PanToken> {
        let (id, hexpart) = s.strip_prefix('t')?.split_once('.')?;
        let key_id = id.parse().ok()?;
        let bytes = hex::decode(hexpart).ok()?;
        Some(PanToken {
            key_id,
            digest: bytes.try_into().ok()?,
        })
    }
}

impl fmt::Display for PanToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}.{}", self.key_id, hex::encode(self.digest))
    }
}
