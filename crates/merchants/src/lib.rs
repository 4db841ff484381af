//! Merchant onboarding's rules, with no IO: the check digits of the documents a
//! merchant application carries ([`checks`]), the working-day calendar deadlines and
//! settlement dates are counted on ([`calendar`]), and the application's review state
//! machine ([`review`]).

pub mod application;
pub mod calendar;
pub mod checks;
pub mod documents;
pub mod mcc;
pub mod review;
