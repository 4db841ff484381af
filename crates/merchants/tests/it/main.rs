//! Merchant onboarding's rules: every check-digit vector of `shared/spec/people.md`
//! §1 and generated ones, the working-day calendar across the 2026 Spring Festival,
//! and every transition of the review state machine.

mod application;
mod calendar;
mod checks;
mod documents;
mod review;
