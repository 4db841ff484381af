//! Rows and writes: plain data, shared by both backends.

use crate::kind::{SafState, TxnKind, TxnState};

/// A merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRow {
    /// Field 42 identity (15 characters).
    pub merchant_id: String,
    /// Name shown on receipts and in field 43.
    pub name: String,
    /// City (field 43).
    pub city: String,
    /// Merchant category code.
    pub mcc: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// When the merchant was created (RFC 3339).
    pub created_at: String,
    /// Size class for limits: `small`, `standard`, `large`.
    pub merchant_class: String,
    /// Risk class: `low`, `medium`, `high`.
    pub risk_class: String,
}

/// A terminal and its keys (wrapped under the LMK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalRow {
    /// Field 41 identity (8 characters).
    pub terminal_id: String,
    /// The merchant it belongs to.
    pub merchant_id: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Terminal master key, wrapped.
    pub tmk: String,
    /// Current PIN key, wrapped (after the first sign-on).
    pub pik: Option<String>,
    /// Current MAC key, wrapped.
    pub mak: Option<String>,
    /// Previous MAC key, wrapped, still accepted until the next sign-on.
    pub mak_prev: Option<String>,
    /// Working-key version (sign-on counter).
    pub key_version: i64,
    /// The batch number the terminal must use.
    pub batch: i64,
    /// Whether the terminal is signed on.
    pub signed_on: bool,
    /// Registered install location.
    pub install_location: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// The key layout the terminal was provisioned for (field 60.3 code: `001`, `003`,
    /// `004`); a sign-on asking for weaker keys is refused.
    pub key_profile: String,
    /// PIN key delivered at the last sign-on, wrapped; current once the terminal uses it.
    pub pending_pik: Option<String>,
    /// MAC key delivered at the last sign-on, wrapped; current once a request verifies
    /// under it (a sign-on by someone without the TMK never replaces the keys in use).
    pub pending_mak: Option<String>,
    /// Current track key (layout `004`), wrapped; track 2 arrives encrypted under it.
    pub tdk: Option<String>,
    /// Track key delivered at the last sign-on, wrapped; current with the other
    /// pending keys.
    pub pending_tdk: Option<String>,
}

/// A key of the acquirer's own (zone PIN or MAC key, zone master key, PAN-token data
/// key), wrapped under the LMK; one row per version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// `ZPK`, `ZAK`, `ZMK` or `DEK`.
    pub kind: String,
    /// Version, from 1; the newest is in use.
    pub version: i64,
    /// `cardsec::WrappedKey` text.
    pub wrapped: String,
    /// The clear key's check value (hex), to compare with the key's custodians.
    pub kcv: String,
    /// When it was loaded (RFC 3339).
    pub created_at: String,
    /// Who loaded it (the audit record).
    pub created_by: String,
}

/// The current state of one transaction in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRow {
    /// Acquirer-assigned id.
    pub txn_id: i64,
    /// Terminal, batch, STAN and MTI class: duplicates share it.
    pub request_key: String,
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// Field 60.2.
    pub batch: i64,
    /// Field 11 as the terminal sent it.
    pub stan: i64,
    /// The request MTI.
    pub mti: String,
    /// What the terminal asked for.
    pub kind: TxnKind,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 numeric code.
    pub currency: String,
    /// Keyed PAN token.
    pub pan_token: String,
    /// First six and last four digits.
    pub masked_pan: String,
    /// Retrieval reference number.
    pub rrn: String,
    /// Authorization code from the issuer.
    pub auth_code: Option<String>,
    /// Field 39 sent to the terminal.
    pub response_code: Option<String>,
    /// Where it stands.
    pub state: TxnState,
    /// RRN of the original (void, refund, completion, cancel, reversal).
    pub original_rrn: Option<String>,
    /// STAN used on the issuer link.
    pub link_stan: Option<i64>,
    /// The reply frame sent to the terminal (hex), to answer duplicates identically.
    pub reply_hex: Option<String>,
    /// Local business date (YYYY-MM-DD).
    pub local_date: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// One append-only event in a transaction's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The transaction.
    pub txn_id: i64,
    /// Sequence within the transaction, from 1.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// What happened (`received`, `sent_to_issuer`, `approved`, …).
    pub kind: String,
    /// Human-readable detail (never a secret).
    pub detail: String,
}

/// One store-and-forward entry: a message that must reach the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafRow {
    /// Entry id.
    pub saf_id: i64,
    /// The transaction it serves.
    pub txn_id: i64,
    /// `reversal`.
    pub kind: String,
    /// The message as first sent (hex, iso87-ascii, no PAN or PIN block).
    pub message_hex: String,
    /// Sends so far.
    pub attempts: i64,
    /// When the next attempt is due (ms since the epoch).
    pub next_at_ms: i64,
    /// Pending, done or exception.
    pub state: SafState,
    /// Why the entry exists (reversal reason code and cause).
    pub reason: String,
    /// The node that claimed it last.
    pub owner: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A risk decision, stored with its transaction and never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// The transaction.
    pub txn_id: i64,
    /// Rule-set version that decided.
    pub version: String,
    /// `approve`, `review` or `decline NN`.
    pub verdict: String,
    /// 0–100.
    pub score: i64,
    /// Settlement held.
    pub hold: bool,
    /// Alert raised.
    pub alert: bool,
    /// Timeout policy applied, if any.
    pub policy: Option<String>,
    /// Active rules matched, comma-separated.
    pub matched: String,
    /// Shadow rules matched, comma-separated.
    pub shadow: String,
    /// `rule: attr=value …` per matched rule, `; `-separated.
    pub details: String,
    /// The facts the decision saw (`risk::Facts::to_record`), for back-testing.
    pub facts: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A risk case: alerts about one merchant or card, worked by staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// Case id.
    pub case_id: i64,
    /// `merchant:<id>` or `card:<token>`.
    pub subject: String,
    /// `open`, `investigating`, `closed_fraud`, `closed_not_fraud`.
    pub status: String,
    /// Who works it.
    pub assignee: Option<String>,
    /// Opened (RFC 3339).
    pub opened_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// One entry in a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseEntryRow {
    /// The case.
    pub case_id: i64,
    /// Sequence within the case, from 1.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// `alert`, `note`, `assign`, `status`.
    pub kind: String,
    /// The transaction an alert is about.
    pub txn_id: Option<i64>,
    /// `system` or the staff member.
    pub author: String,
    /// What happened.
    pub text: String,
}

/// A merchant's pricing and settlement terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsRow {
    /// The merchant.
    pub merchant_id: String,
    /// Its bank account for payouts.
    pub settlement_account: String,
    /// `T+1` or `D+0:<daily limit minor>`.
    pub cycle: String,
    /// Debit-card rate, basis points.
    pub debit_bps: i64,
    /// Credit-card rate, basis points.
    pub credit_bps: i64,
    /// Per-transaction fee cap on debit cards (0 = none).
    pub debit_cap_minor: i64,
    /// Minimum fee per transaction.
    pub min_fee_minor: i64,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Largest sale or pre-authorization, minor units (0: none beyond the switch's).
    pub txn_limit_minor: i64,
    /// Most sales and pre-authorizations a day, minor units (0: none).
    pub day_limit_minor: i64,
    /// Rolling reserve: the share of each payable run paid later, basis points.
    pub reserve_bps: i64,
    /// Days the reserve is kept.
    pub reserve_days: i64,
}

/// A settlement hold on a merchant or a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    /// `risk:<txn>`, `case:<case>`, `manual:<n>`, `status:<merchant>`.
    pub hold_id: String,
    /// `merchant:<id>` or `txn:<id>`.
    pub subject: String,
    /// Why.
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// Since (RFC 3339).
    pub placed_at: String,
    /// Who released it.
    pub released_by: Option<String>,
    /// When it was released.
    pub released_at: Option<String>,
}

/// A captured transaction: its money is due from the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRow {
    /// The transaction.
    pub txn_id: i64,
    /// `batch` (the terminal settled its batch) or `cutoff` (captured at the cut-off).
    pub how: String,
    /// Its business date (YYYY-MM-DD).
    pub business_date: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A merchant application (no clear personal ID number: the form holds them masked,
/// `rep_id_token` the representative's keyed token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    /// Its number.
    pub app_id: i64,
    /// Where its review stands (`merchants::review::AppState` names).
    pub status: String,
    /// Legal name.
    pub legal_name: String,
    /// `company` or `individual`.
    pub kind: String,
    /// Merchant category code.
    pub mcc: String,
    /// `low`, `medium` or `high`.
    pub risk_level: String,
    /// The form (JSON), personal ID numbers masked.
    pub form: String,
    /// The last checks' problems (JSON list).
    pub problems: String,
    /// Unified social credit code, or empty.
    pub uscc: String,
    /// The representative's ID number's keyed token.
    pub rep_id_token: String,
    /// The settlement account's number.
    pub account_number: String,
    /// Who entered it.
    pub applicant: String,
    /// The reviewer.
    pub assignee: Option<String>,
    /// When the review is due (YYYY-MM-DD, working days from the checks).
    pub sla_due: Option<String>,
    /// The merchant it became.
    pub merchant_id: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A stored document: its bytes (base64) under their SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// `application/pdf`, `image/png` or `image/jpeg` (from the content).
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// The bytes (kept in the data directory beside an SQLite database, in a `bytea`
    /// column on PostgreSQL).
    pub bytes: Vec<u8>,
    /// When first stored.
    pub created_at: String,
}

impl std::fmt::Debug for DocumentRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DocumentRow({} {} bytes {})",
            self.sha256, self.size, self.content_type
        )
    }
}

/// A document an application carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationDocumentRow {
    /// The application.
    pub app_id: i64,
    /// What it is (`business_licence`, `id_front`, …).
    pub doc_type: String,
    /// The document.
    pub sha256: String,
    /// Until when it is valid (licences, IDs).
    pub expires_on: Option<String>,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: String,
}

/// A merchant's periodic re-review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantReviewRow {
    /// The merchant.
    pub merchant_id: String,
    /// Its risk rating (`low`, `medium`, `high`).
    pub risk_level: String,
    /// When the next re-review is due (YYYY-MM-DD).
    pub due_on: String,
    /// When it was last reviewed (approved or re-reviewed).
    pub last_on: String,
}

/// A reference table an administrator loaded: a year of the working-day calendar
/// (`calendar:YYYY`) or the MCC table (`mcc`), in its file format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRow {
    /// `calendar:YYYY` or `mcc`.
    pub name: String,
    /// The text, as loaded (validated before it is written).
    pub body: String,
    /// Who loaded it.
    pub loaded_by: String,
    /// When (RFC 3339).
    pub loaded_at: String,
}

/// A complaint: who, through which channel, about what, what they remember, its
/// deadlines, owner and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintRow {
    /// Its number.
    pub complaint_id: i64,
    /// `cardholder_phone`, `merchant`, `regulator_hotline`, …
    pub source: String,
    /// `debited_but_failed`, `debited_twice`, …
    pub category: String,
    /// `cardholder` or `merchant`.
    pub complainant: String,
    /// How to answer them (a phone number or an address).
    pub contact: String,
    /// `zh` or `en`: the answer's language.
    pub language: String,
    /// The merchant complaining, or the one named.
    pub merchant_id: Option<String>,
    /// What they remember (JSON: amount, window, masked card or last four, merchant,
    /// terminal, RRN, the SMS text); never a clear card number.
    pub clue: String,
    /// `open`, `acknowledged`, `awaiting_approval`, `resolved`, `rejected`.
    pub status: String,
    /// Who works it.
    pub owner: Option<String>,
    /// To be acknowledged by (YYYY-MM-DD).
    pub ack_due: String,
    /// To be resolved by (YYYY-MM-DD).
    pub resolve_due: String,
    /// The resolution deadline in days (the policy's, or an extension's).
    pub resolve_days: i64,
    /// When acknowledged.
    pub acknowledged_at: Option<String>,
    /// When resolved or rejected.
    pub resolved_at: Option<String>,
    /// `explained`, `refunded`, `reversal_expedited`, `hold_released`, `escalated`,
    /// `rejected`.
    pub outcome: Option<String>,
    /// The answer sent, in the complainant's language.
    pub answer: Option<String>,
    /// When filed.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A transaction a complaint is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintTxnRow {
    /// The complaint.
    pub complaint_id: i64,
    /// The transaction.
    pub txn_id: i64,
    /// Who linked it.
    pub linked_by: String,
    /// When.
    pub linked_at: String,
}

/// One step of a complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintEventRow {
    /// The complaint.
    pub complaint_id: i64,
    /// Order, from 1.
    pub seq: i64,
    /// When.
    pub at: String,
    /// `file`, `link`, `acknowledge`, `assign`, `extend`, `request_refund`, …
    pub action: String,
    /// Who.
    pub actor: String,
    /// What was said or decided.
    pub note: String,
}

/// A dispute a complaint escalated to the issuer or the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRow {
    /// Its number.
    pub dispute_id: i64,
    /// The complaint.
    pub complaint_id: i64,
    /// The transaction disputed.
    pub txn_id: i64,
    /// `pre_dispute`, `dispute`, `pre_arbitration`.
    pub stage: String,
    /// `opened`, `challenged`, `accepted`, `expired`, `cancelled`, `won`, `lost`.
    pub status: String,
    /// The evidence (JSON list of `{kind, text}`).
    pub evidence: String,
    /// To be answered by (YYYY-MM-DD).
    pub respond_by: String,
    /// When opened.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A money action of a complaint, waiting for or given a second person's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintActionRow {
    /// Its number.
    pub action_id: i64,
    /// The complaint.
    pub complaint_id: i64,
    /// `refund` (a credit adjustment through the store-and-forward queue).
    pub kind: String,
    /// The transaction given back.
    pub txn_id: i64,
    /// How much, minor units.
    pub amount_minor: i64,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: String,
    /// Who decided (never the one who asked).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// `pending`, `done`, `refused`.
    pub status: String,
}

/// An entry of the onboarding blocklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// `uscc`, `representative` (an ID number's keyed token) or `account`.
    pub kind: String,
    /// The code, token or account number.
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who added it.
    pub added_by: String,
    /// When.
    pub added_at: String,
}

/// One step of an application's review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationEventRow {
    /// The application.
    pub app_id: i64,
    /// Order, from 1.
    pub seq: i64,
    /// When.
    pub at: String,
    /// What was done (`submit`, `checks_fail`, `assign`, …).
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// The state it left the application in.
    pub status: String,
    /// The note, reason or problems.
    pub note: String,
}

/// A risk rule-set version uploaded through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetRow {
    /// Its version label (the TOML's `version`).
    pub version: String,
    /// The rule file (TOML), as uploaded and validated.
    pub rules: String,
    /// `candidate`, `active`, `shadow` or `retired`.
    pub status: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When (RFC 3339).
    pub uploaded_at: String,
    /// When its status last changed.
    pub changed_at: String,
}

/// One reconciliation run of a business date and what it found (a date is reconciled
/// again when a late file comes in: each run is its own row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconRunRow {
    /// The business date reconciled.
    pub business_date: String,
    /// When it ran (RFC 3339).
    pub ran_at: String,
    /// The report (JSON: lines, matched, classes, exceptions open).
    pub report: String,
}

/// One settlement run (one per business date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRunRow {
    /// The business date settled.
    pub business_date: String,
    /// When it ran.
    pub ran_at: String,
    /// Merchants settled.
    pub merchants: i64,
    /// Transactions settled.
    pub items: i64,
    /// Net paid out.
    pub net_minor: i64,
    /// The settlement file written.
    pub file: String,
}

/// One merchant's settlement for a business date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRow {
    /// `S<date>-<merchant>`.
    pub settlement_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// The business date.
    pub business_date: String,
    /// Where the money goes.
    pub settlement_account: String,
    /// Sales and completions.
    pub gross_minor: i64,
    /// Refunds.
    pub refunds_minor: i64,
    /// Fees.
    pub fees_minor: i64,
    /// Held back.
    pub held_minor: i64,
    /// Paid.
    pub net_minor: i64,
    /// Transactions settled.
    pub txn_count: i64,
    /// When (RFC 3339).
    pub created_at: String,
}

/// A transaction's settlement (at most one: the transaction id is the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementItemRow {
    /// The transaction.
    pub txn_id: i64,
    /// The settlement it went into.
    pub settlement_id: String,
    /// Fee charged.
    pub fee_minor: i64,
    /// Net to the merchant (negative for refunds).
    pub net_minor: i64,
}

/// A payout instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRow {
    /// The settlement paid.
    pub settlement_id: String,
    /// Sequence within it.
    pub seq: i64,
    /// Value date (YYYY-MM-DD).
    pub value_date: String,
    /// Amount.
    pub amount_minor: i64,
    /// The merchant's bank account.
    pub settlement_account: String,
    /// `instructed` or `paid`.
    pub status: String,
}

/// A terminal's batch settlement (0500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettlementRow {
    /// The terminal.
    pub terminal_id: String,
    /// The batch.
    pub batch: i64,
    /// When (RFC 3339).
    pub at: String,
    /// `balanced`, `not_balanced`, `uploaded`.
    pub result: String,
    /// The terminal's totals (field 48 digits).
    pub terminal_totals: String,
    /// posguard's totals for the same batch.
    pub posguard_totals: String,
    /// Transactions the terminal uploaded (0320).
    pub uploaded: i64,
}

/// A difference found by a batch upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDiffRow {
    /// The terminal.
    pub terminal_id: String,
    /// The batch.
    pub batch: i64,
    /// The transaction's STAN.
    pub stan: i64,
    /// `terminal_only`, `posguard_only` or `amount_differs`.
    pub side: String,
    /// RRN, when known.
    pub rrn: Option<String>,
    /// Transaction kind.
    pub kind: String,
    /// Amount (the terminal's for `terminal_only`, posguard's otherwise).
    pub amount_minor: i64,
    /// Detail.
    pub detail: String,
}

/// A clearing file ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconFileRow {
    /// SHA-256 of its bytes (hex): a file is ingested once.
    pub file_hash: String,
    /// Its business date.
    pub file_date: String,
    /// Where it came from.
    pub name: String,
    /// Valid lines.
    pub lines: i64,
    /// Invalid lines.
    pub bad_lines: i64,
    /// When (RFC 3339).
    pub ingested_at: String,
}

/// One line of a clearing file, valid or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconLineRow {
    /// The file.
    pub file_hash: String,
    /// Line number (header = 1).
    pub line: i64,
    /// The file's date.
    pub file_date: String,
    /// Whether it parsed.
    pub valid: bool,
    /// Why not, if not.
    pub problem: String,
    /// RRN.
    pub rrn: String,
    /// Authorization code.
    pub auth_code: String,
    /// Link STAN.
    pub stan: String,
    /// Terminal.
    pub terminal: String,
    /// Merchant.
    pub merchant: String,
    /// Masked PAN.
    pub masked_pan: String,
    /// Amount.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Line type.
    pub kind: String,
    /// Issuer's local time.
    pub at: String,
}

/// A reconciliation finding (auto-resolved, or an exception worked by a person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    /// `<class>:<rrn>`: the same discrepancy found again is the same finding.
    pub finding_id: String,
    /// The business date reconciled when it was found.
    pub business_date: String,
    /// Its class.
    pub class: String,
    /// The RRN.
    pub rrn: String,
    /// The journal transaction, if known.
    pub txn_id: Option<i64>,
    /// Amount at stake.
    pub amount_minor: i64,
    /// Both sides' records, one per line.
    pub evidence: String,
    /// What was done or is to be done.
    pub action: String,
    /// `auto_resolved`, `open`, `investigating`, `resolved`.
    pub status: String,
    /// Who works it.
    pub owner: Option<String>,
    /// By when (YYYY-MM-DD).
    pub deadline: Option<String>,
    /// Notes, newest last.
    pub notes: String,
    /// Found (RFC 3339).
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Someone who uses the API: a person with a role, or a system with an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    /// Login name.
    pub name: String,
    /// `admin`, `operations`, `risk_analyst`, `finance`, `support`, `auditor`, `merchant`.
    pub role: String,
    /// argon2id PHC string (never the password).
    pub password_hash: String,
    /// For the merchant role: the merchant ids it sees, comma-separated.
    pub merchant_ids: String,
    /// Disabled accounts cannot log in; their sessions stop working.
    pub disabled: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A login session or an API key, known by the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Whose.
    pub operator: String,
    /// `session` or `api_key`.
    pub kind: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Logged out or revoked (RFC 3339).
    pub ended_at: Option<String>,
}

/// One audit record: who changed what, when, from where, and the object before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Sequence, from 1 (assigned by the store in the same database transaction).
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The operator's name, or `os:<user>` for the command line.
    pub actor: String,
    /// The actor's role (`cli` for the command line).
    pub role: String,
    /// What was done (`hold.place`, `operator.add`, `session.login`, …).
    pub action: String,
    /// What it was done to (`hold:manual:1`, `operator:alice`, …).
    pub object: String,
    /// The object before (JSON, `null` when it was new; never a secret).
    pub before: String,
    /// The object after (JSON, `null` when it is gone).
    pub after: String,
    /// The request's id (API) or the process id (CLI).
    pub request_id: String,
    /// The client's address, or `cli`.
    pub source: String,
}

/// One change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace a merchant.
    Merchant(MerchantRow),
    /// Insert or replace a terminal.
    Terminal(TerminalRow),
    /// Insert a key version, or re-wrap it (a new LMK).
    Key(KeyRow),
    /// Insert a new transaction (its request key and RRN must be new).
    NewTxn(TxnRow),
    /// Replace a transaction's current state (same id).
    UpdateTxn(TxnRow),
    /// Append an event.
    Event(EventRow),
    /// Insert or replace a store-and-forward entry.
    Saf(SafRow),
    /// Insert a risk decision (append-only).
    Decision(DecisionRow),
    /// Insert or replace a case.
    Case(CaseRow),
    /// Append to a case's timeline.
    CaseEntry(CaseEntryRow),
    /// Insert or replace a merchant's terms.
    Terms(TermsRow),
    /// Insert a hold, or record its release.
    Hold(HoldRow),
    /// Record a capture (a second capture of the same transaction is ignored).
    Capture(CaptureRow),
    /// Record a settlement run.
    SettlementRun(SettlementRunRow),
    /// Record a reconciliation run.
    ReconRun(ReconRunRow),
    /// Insert a rule-set version, or change its status.
    RuleSet(RuleSetRow),
    /// Insert or replace a merchant application.
    Application(ApplicationRow),
    /// Append a step of an application's review.
    ApplicationEvent(ApplicationEventRow),
    /// Store a document (a second copy of the same bytes is ignored).
    Document(DocumentRow),
    /// Attach a document to an application.
    ApplicationDocument(ApplicationDocumentRow),
    /// Add (or re-reason) a blocklist entry.
    Block(BlockRow),
    /// Insert or replace a merchant's re-review schedule.
    MerchantReview(MerchantReviewRow),
    /// Insert or replace a reference table.
    Reference(ReferenceRow),
    /// Insert or update a complaint.
    Complaint(ComplaintRow),
    /// Link a transaction to a complaint.
    ComplaintTxn(ComplaintTxnRow),
    /// Append a step of a complaint.
    ComplaintEvent(ComplaintEventRow),
    /// Insert or update a complaint's money action.
    ComplaintAction(ComplaintActionRow),
    /// Insert or update a dispute.
    Dispute(DisputeRow),
    /// Insert a merchant settlement.
    Settlement(SettlementRow),
    /// Insert a transaction's settlement (a transaction settles at most once).
    SettlementItem(SettlementItemRow),
    /// Insert or update a payout instruction.
    Payout(PayoutRow),
    /// Insert or update a terminal batch settlement.
    BatchSettlement(BatchSettlementRow),
    /// Record a batch difference (idempotent).
    BatchDiff(BatchDiffRow),
    /// Record an ingested clearing file.
    ReconFile(ReconFileRow),
    /// Record one line of a clearing file.
    ReconLine(ReconLineRow),
    /// Insert a finding (an existing one keeps its state) — see `FindingUpdate`.
    Finding(FindingRow),
    /// Replace a finding's status, owner, deadline, action and notes.
    FindingUpdate(FindingRow),
    /// Insert or replace an operator.
    Operator(OperatorRow),
    /// Insert a session or API key, or record its end.
    Session(SessionRow),
    /// Append an audit record (its `seq` is assigned by the store).
    Audit(AuditRow),
    /// Set only a transaction's state (when its full row is not at hand, e.g. a
    /// reversal adopted from another node).
    TxnState {
        /// The transaction.
        txn_id: i64,
        /// The new state.
        state: TxnState,
        /// When (RFC 3339).
        updated_at: String,
    },
}
