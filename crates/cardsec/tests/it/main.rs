//! Integration tests of the card security layer.

mod card;
mod delivery;
mod redaction;
mod vectors;

use cardsec::{Lmk, SoftwareSecurityModule};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A software module under a fixed test LMK and a seeded generator.
pub fn module(seed: u64) -> SoftwareSecurityModule {
    let lmk = Lmk::from_hex("0123456789ABCDEFFEDCBA9876543210").expect("test LMK");
    SoftwareSecurityModule::new(lmk, Box::new(ChaCha20Rng::seed_from_u64(seed)))
}
