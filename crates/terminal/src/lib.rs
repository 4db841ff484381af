//! posguard's POS terminal simulator.
//!
//! [`Terminal`] is one terminal's protocol state without IO: it builds framed
//! `cup-pos` requests (sign-on, echo, sign-off, balance, sale, void, refund,
//! pre-authorization, cancel, completion), MACs them with its working keys, keeps the
//! pending reversal before every reversible request, settles its batch (0500, and the
//! 0320 upload when the host disagrees), and verifies and classifies the replies the
//! caller hands it. [`fleet::run_fleet`] drives many terminals over TCP
//! with tokio, paced to a target rate, and returns a [`FleetReport`].

mod card;
pub mod fleet;
mod kind;
pub mod report;
mod terminal;

pub use card::{Card, EntryKind};
pub use fleet::{run_fleet, FleetConfig, Mix, Resume, TerminalSetup};
pub use kind::TxKind;
pub use report::{FleetReport, Latency, ReversalCounts, TerminalReport};
pub use terminal::{
    BatchEntry, Outcome, PendingReversal, ReplyError, Request, SettlementResult, Terminal,
    TerminalConfig, TerminalError, Verdict,
};
