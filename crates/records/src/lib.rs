//! posguard's journal records: the rows every stage writes and reads, the [`Write`]s
//! that change them, and the kinds and states of transactions and store-and-forward
//! entries as enums.
//!
//! Plain data with no IO: the deterministic core (`switch`, `sim`) builds these and
//! `store` persists them, so the core never depends on a database client.

mod kind;
mod rows;

pub use kind::{SafState, Stored, TxnKind, TxnState};
pub use rows::{
    ApplicationDocumentRow, ApplicationEventRow, ApplicationRow, AuditRow, BatchDiffRow,
    BatchSettlementRow, BlockRow, CaptureRow, CaseEntryRow, CaseRow, ComplaintActionRow,
    ComplaintEventRow, ComplaintRow, ComplaintTxnRow, DecisionRow, DisputeRow, DocumentRow,
    EventRow, FindingRow, HoldRow, KeyRow, MerchantReviewRow, MerchantRow, OperatorRow, PayoutRow,
    ReconFileRow, ReconLineRow, ReconRunRow, ReferenceRow, RuleSetRow, SafRow, SessionRow,
    SettlementItemRow, SettlementRow, SettlementRunRow, TerminalRow, TermsRow, TxnRow, Write,
};
