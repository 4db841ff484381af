//! posguard's switch: the transaction state machine, with no IO.
//!
//! [`Engine::handle`] takes one [`Input`] (a terminal frame, an issuer frame, a timer,
//! the issuer link being unavailable) and returns [`Action`]s for the driver to carry
//! out: persist records, send frames, start timers, close connections. A
//! [`Action::Persist`] carries the actions that may only happen once its records are
//! durable — the journal record is durable before the issuer request is sent and
//! before the terminal reply is sent. Terminal batch settlement (0500, the 0320
//! upload) compares a terminal's totals with the journal, captures the batch and
//! records the differences. Time comes in with each input ([`Now`]);
//! randomness and keys come from the security module the caller provides.

mod engine;
mod kind;
mod msgs;

pub use engine::{
    acknowledged_amounts, adjustment_entry, adjustment_id, adjustments, next_adjustment, Action,
    Config, ConnId, Engine, Input, JournalState, NextAdjustment, Now, StatusChange,
    TerminalDialect, ZoneKeys, ADJUSTMENT, MAX_ADJUSTMENTS,
};
pub use kind::{TxnKind, TxnState};
