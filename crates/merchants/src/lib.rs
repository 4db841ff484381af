//! Merchant onboarding's rules, with no IO: the check digits of the documents a
//! merchant application carries ([`checks`]), the working-day calendar deadlines and
//! settlement dates are counted on ([`calendar`]), the application's review state
//! machine ([`review`]), and the limits by class and risk rating ([`limits`]).

pub mod application;
pub mod calendar;
pub mod checks;
pub mod documents;
pub mod limits;
pub mod mcc;
pub mod review;
