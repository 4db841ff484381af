//! posguard's deterministic simulation.
//!
//! The real switch engine, the real issuer [`issuer::Bank`] and real sans-IO
//! [`terminal::Terminal`]s run in one process on simulated time, driven by one seeded
//! generator: messages are dropped, delayed past timeouts, duplicated and reordered;
//! the acquirer crashes (losing writes not yet durable) and recovers from its store;
//! the issuer goes down; customers cancel after approval. After the run (and once the
//! store-and-forward queue has drained) [`run`] checks the invariants: no phantom
//! debit (I1), no double debit or double reversal (I2), SMS matching the final state
//! (I5), every approval a terminal accepted durable in the journal (I6), and the
//! money: cardholders are debited exactly what their terminals recorded as approved.
//! The same seed always gives the same run.

pub mod demo_data;
mod matrix;
mod world;

pub use matrix::{cell, matrix, Cell};
pub use world::{acquirer_rows, recon_fault_mix, run, SimConfig, SimOutcome};
