//! Complaints' rules, with no IO: who complains and about what ([`kinds`]), the
//! issuers' SMS read back into facts ([`sms`]), the candidate transactions ranked
//! against what the complainant remembers ([`rank`]), and the deadlines — to
//! acknowledge, to resolve, how far they extend — in working days per source on the
//! working-day calendar ([`deadline`]), and what happened to the money, said for the
//! complainant in Chinese and English and for staff, with its evidence
//! ([`diagnose`]), and the disputes a complaint escalates to ([`dispute`]). The
//! services join them to the store.

pub mod deadline;
pub mod diagnose;
pub mod dispute;
pub mod kinds;
pub mod rank;
pub mod sms;
