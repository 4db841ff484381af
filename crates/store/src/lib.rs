//! posguard's persistence.
//!
//! One interface ([`Backend`]) with two implementations: embedded SQLite in WAL mode
//! ([`SqliteBackend`], the default) and PostgreSQL ([`PgBackend`]) for deployments of
//! several nodes. Writes go in batches ([`Write`]), each batch one durable transaction;
//! the [`Journal`] writer thread gathers whatever batches are waiting into one commit
//! (group commit), so throughput does not cost one fsync per message.
//!
//! Nothing here stores a clear PAN, track data, PIN block or clear key: rows carry PAN
//! tokens, masked PANs and keys wrapped under the LMK.

mod journal;
mod money;
mod pg;
mod redis_velocity;
mod sql;
mod sqlite;

pub use journal::{
    describe_metrics as describe_journal_metrics, Journal, JournalConfig, JournalStats, Persisted,
    COMMIT_SECONDS as JOURNAL_COMMIT_SECONDS, GROUP_WRITES as JOURNAL_GROUP_WRITES,
};
pub use pg::PgBackend;
pub use records::{
    ApplicationDocumentRow, ApplicationEventRow, ApplicationRow, AuditRow, BatchDiffRow,
    BatchSettlementRow, BlockRow, CaptureRow, CaseEntryRow, CaseRow, ComplaintActionRow,
    ComplaintEventRow, ComplaintRow, ComplaintTxnRow, DecisionRow, DisputeRow, DocumentRow,
    EventRow, FindingRow, HoldRow, KeyRow, MerchantReviewRow, MerchantRow, OperatorRow, PayoutRow,
    ReconFileRow, ReconLineRow, ReconRunRow, ReferenceRow, RuleSetRow, SafRow, SafState,
    SessionRow, SettlementItemRow, SettlementRow, SettlementRunRow, Stored, TerminalRow, TermsRow,
    TxnKind, TxnRow, TxnState, Write,
};
pub use redis_velocity::RedisVelocity;
use sql::{all, one, select};
pub use sql::{Arg, Tx, Val};
pub use sqlite::SqliteBackend;

/// What a transaction search asks for; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnFilter {
    /// Retrieval reference number.
    pub rrn: Option<String>,
    /// Field 41.
    pub terminal_id: Option<String>,
    /// Only these merchants (`Some(empty)` matches nothing: a merchant account with
    /// no merchant sees nothing).
    pub merchant_ids: Option<Vec<String>>,
    /// The masked PAN (first six, last four).
    pub masked_pan: Option<String>,
    /// Where it stands.
    pub state: Option<TxnState>,
    /// What it is.
    pub kind: Option<TxnKind>,
    /// Field 39 sent to the terminal.
    pub response_code: Option<String>,
    /// First local business date (YYYY-MM-DD).
    pub date_from: Option<String>,
    /// Last local business date.
    pub date_to: Option<String>,
    /// The amount, minor units.
    pub amount_minor: Option<i64>,
}

/// The audit actions that are also the change feed every acquirer node follows (the
/// audit record is written in the same transaction as the change): merchant and
/// terminal status, a merchant's limits (alone or with its terms), a terminal's
/// install location.
pub const FEED_ACTIONS: &[&str] = &[
    "merchant.status",
    "terminal.status",
    "merchant.limits",
    "terms.set",
    "terminal.location",
];

/// Versioned migrations, applied in order; the version is the index + 1.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_saf.sql"),
    include_str!("../migrations/003_risk.sql"),
    include_str!("../migrations/004_decision_facts.sql"),
    include_str!("../migrations/005_settlement.sql"),
    include_str!("../migrations/006_recon.sql"),
    include_str!("../migrations/007_risk_holds.sql"),
    include_str!("../migrations/008_keys.sql"),
    include_str!("../migrations/009_track_keys.sql"),
    include_str!("../migrations/010_operators.sql"),
    include_str!("../migrations/011_api.sql"),
    include_str!("../migrations/012_onboarding.sql"),
    include_str!("../migrations/013_limits.sql"),
    include_str!("../migrations/014_complaints.sql"),
];

/// The server's message behind a PostgreSQL error ("db error" alone says nothing).
fn pg_detail(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!(": {}", d.message()))
        .unwrap_or_default()
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("postgres: {0}{detail}", detail = pg_detail(.0))]
    Postgres(#[from] postgres::Error),
    /// Redis reported an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A unique key (request key or RRN) is already taken.
    #[error("duplicate key: {0}")]
    Duplicate(String),
    /// The journal writer has stopped.
    #[error("journal writer stopped")]
    WriterStopped,
    /// The ledger refused a transfer (nothing of the unit was written).
    #[error("ledger: {0}")]
    Ledger(ledger::LedgerError),
    /// A stored value or an argument is not what it should be.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The data directory or database could not be opened.
    #[error("open {what}: {reason}")]
    Open {
        /// What was being opened.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// What every backend offers: migrations, batched durable writes, and the reads the
/// acquirer needs at start-up and the tools need afterwards.
pub trait Backend: Send {
    /// Applies every migration not yet applied; returns the schema version.
    fn migrate(&mut self) -> Result<u32, StoreError>;

    /// Claims up to `limit` pending entries due at `now_ms` for `owner`, pushing their
    /// next attempt `lease_ms` ahead so no other node takes them meanwhile. On
    /// PostgreSQL rows locked by another node are skipped (`FOR UPDATE SKIP LOCKED`), so
    /// several nodes drain one queue and a stuck entry never blocks the others.
    fn claim_due_saf(
        &mut self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<SafRow>, StoreError>;

    /// Runs `f` in one database transaction: committed when it returns `Ok`, rolled
    /// back otherwise. Every operation below is written once over it (`sql`, `money`).
    fn with_tx(
        &mut self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Waits up to `timeout` for a change on the feed ([`FEED_ACTIONS`]) — on
    /// PostgreSQL until a `NOTIFY` arrives, so a change reaches the nodes within
    /// milliseconds; elsewhere (SQLite) it sleeps a tenth of a second at most and the
    /// caller reads the feed again.
    fn wait_for_changes(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        std::thread::sleep(timeout.min(std::time::Duration::from_millis(100)));
        Ok(())
    }

    /// Applies the writes in one durable transaction: all or nothing.
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        run(self, |tx| writes.iter().try_for_each(|w| sql::write(tx, w)))
    }

    /// Every merchant.
    fn merchants(&mut self) -> Result<Vec<MerchantRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<MerchantRow>("merchants ORDER BY merchant_id"),
                &[],
            )
        })
    }

    /// One merchant.
    fn merchant(&mut self, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<MerchantRow>("merchants WHERE merchant_id = $1"),
                &[merchant_id.into()],
            )
        })
    }

    /// Every terminal.
    fn terminals(&mut self) -> Result<Vec<TerminalRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<TerminalRow>("terminals ORDER BY terminal_id"),
                &[],
            )
        })
    }

    /// The acquirer's own keys, every version, by kind then version.
    fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<KeyRow>("security_keys ORDER BY kind, version"),
                &[],
            )
        })
    }

    /// Transactions with `txn_id > after`, in id order, at most `limit`.
    fn transactions_after(&mut self, after: i64, limit: usize) -> Result<Vec<TxnRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<TxnRow>("transactions WHERE txn_id > $1 ORDER BY txn_id LIMIT $2"),
                &[after.into(), (limit as i64).into()],
            )
        })
    }

    /// The newest `limit` transactions, in id order (what a restarting node remembers).
    fn recent_transactions(&mut self, limit: usize) -> Result<Vec<TxnRow>, StoreError> {
        let mut rows: Vec<TxnRow> = run(self, |tx| {
            all(
                tx,
                &select::<TxnRow>("transactions ORDER BY txn_id DESC LIMIT $1"),
                &[(limit as i64).into()],
            )
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// How many transactions have a local date in `from..=to` (YYYY-MM-DD).
    fn count_transactions(&mut self, from: &str, to: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        run(self, |tx| {
            let rows = tx.query(
                "SELECT COUNT(*) FROM transactions WHERE local_date >= $1 AND local_date <= $2",
                &[from.into(), to.into()],
            )?;
            n = match rows.first().and_then(|r| r.first()) {
                Some(Val::I(v)) => u64::try_from(*v).unwrap_or(0),
                _ => 0,
            };
            Ok(())
        })?;
        Ok(n)
    }

    /// The transaction with this id.
    fn transaction(&mut self, txn_id: i64) -> Result<Option<TxnRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<TxnRow>("transactions WHERE txn_id = $1"),
                &[txn_id.into()],
            )
        })
    }

    /// The transaction with an RRN.
    fn transaction_by_rrn(&mut self, rrn: &str) -> Result<Option<TxnRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<TxnRow>("transactions WHERE rrn = $1"),
                &[rrn.into()],
            )
        })
    }

    /// Transactions matching `f` with an id above `after`, in id order, at most `limit`
    /// (a cursor: the last id of a page is the next page's `after`).
    fn search_transactions(
        &mut self,
        f: &TxnFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TxnRow>, StoreError> {
        let mut sql = String::from("transactions WHERE txn_id > $1");
        let mut args: Vec<Arg<'_>> = vec![after.into()];
        let equal: [(&str, Option<&str>); 6] = [
            ("rrn", f.rrn.as_deref()),
            ("terminal_id", f.terminal_id.as_deref()),
            ("masked_pan", f.masked_pan.as_deref()),
            ("state", f.state.map(TxnState::name)),
            ("kind", f.kind.map(TxnKind::name)),
            ("response_code", f.response_code.as_deref()),
        ];
        for (col, v) in equal {
            if let Some(v) = v {
                args.push(Arg::T(v));
                sql.push_str(&format!(" AND {col} = ${}", args.len()));
            }
        }
        if let Some(a) = f.amount_minor {
            args.push(Arg::I(a));
            sql.push_str(&format!(" AND amount_minor = ${}", args.len()));
        }
        if let Some(d) = &f.date_from {
            args.push(Arg::T(d));
            sql.push_str(&format!(" AND local_date >= ${}", args.len()));
        }
        if let Some(d) = &f.date_to {
            args.push(Arg::T(d));
            sql.push_str(&format!(" AND local_date <= ${}", args.len()));
        }
        if let Some(ids) = &f.merchant_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let first = args.len() + 1;
            for m in ids {
                args.push(Arg::T(m));
            }
            let list: Vec<String> = (first..first + ids.len())
                .map(|i| format!("${i}"))
                .collect();
            sql.push_str(&format!(" AND merchant_id IN ({})", list.join(", ")));
        }
        args.push((limit as i64).into());
        sql.push_str(&format!(" ORDER BY txn_id LIMIT ${}", args.len()));
        run(self, |tx| all(tx, &select::<TxnRow>(&sql), &args))
    }

    /// Every operator, by name.
    fn operators(&mut self) -> Result<Vec<OperatorRow>, StoreError> {
        run(self, |tx| {
            all(tx, &select::<OperatorRow>("operators ORDER BY name"), &[])
        })
    }

    /// One operator.
    fn operator(&mut self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<OperatorRow>("operators WHERE name = $1"),
                &[name.into()],
            )
        })
    }

    /// A session or API key by its token's hash.
    fn session(&mut self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<SessionRow>("sessions WHERE token_hash = $1"),
                &[token_hash.into()],
            )
        })
    }

    /// Audit records after `after`, oldest first, at most `limit`.
    fn audit_after(&mut self, after: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<AuditRow>("audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[after.into(), (limit as i64).into()],
            )
        })
    }

    /// Every event of a transaction, in order.
    fn events(&mut self, txn_id: i64) -> Result<Vec<EventRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<EventRow>("txn_events WHERE txn_id = $1 ORDER BY seq"),
                &[txn_id.into()],
            )
        })
    }

    /// How many transactions are in `state`.
    fn count_in_state(&mut self, state: TxnState) -> Result<usize, StoreError> {
        run(self, |tx| {
            Ok(tx
                .query(
                    "SELECT COUNT(*) FROM transactions WHERE state = $1",
                    &[state.name().into()],
                )?
                .first()
                .map_or(0, |r| r[0].i() as usize))
        })
    }

    /// The highest event sequence of every transaction from `from_txn_id` on (a
    /// restarting node numbers new events after them).
    fn last_event_seqs(
        &mut self,
        from_txn_id: i64,
    ) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
        run(self, |tx| {
            Ok(tx
                .query(
                    "SELECT txn_id, MAX(seq) FROM txn_events WHERE txn_id >= $1 GROUP BY txn_id",
                    &[from_txn_id.into()],
                )?
                .iter()
                .map(|r| (r[0].i(), r[1].i()))
                .collect())
        })
    }

    /// The largest transaction id (0 when empty).
    fn max_txn_id(&mut self) -> Result<i64, StoreError> {
        run(self, |tx| {
            Ok(tx
                .query("SELECT COALESCE(MAX(txn_id), 0) FROM transactions", &[])?
                .first()
                .map_or(0, |r| r[0].i()))
        })
    }

    /// The newest audit record's sequence number (0 when there is none).
    fn max_audit_seq(&mut self) -> Result<i64, StoreError> {
        run(self, |tx| {
            Ok(tx
                .query("SELECT COALESCE(MAX(seq), 0) FROM audit", &[])?
                .first()
                .map_or(0, |r| r[0].i()))
        })
    }

    /// The risk decision of a transaction.
    fn decision(&mut self, txn_id: i64) -> Result<Option<DecisionRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<DecisionRow>("risk_decisions WHERE txn_id = $1"),
                &[txn_id.into()],
            )
        })
    }

    /// Risk decisions with `txn_id > after`, in id order, at most `limit`.
    fn decisions_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<DecisionRow>("risk_decisions WHERE txn_id > $1 ORDER BY txn_id LIMIT $2"),
                &[after.into(), (limit as i64).into()],
            )
        })
    }

    /// Cases, all or those in one status.
    fn cases(&mut self, status: Option<&str>) -> Result<Vec<CaseRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<CaseRow>(
                    "cases WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY case_id",
                ),
                &[status.map_or(Arg::Null, Arg::T)],
            )
        })
    }

    /// A case's timeline.
    fn case_entries(&mut self, case_id: i64) -> Result<Vec<CaseEntryRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<CaseEntryRow>("case_entries WHERE case_id = $1 ORDER BY seq"),
                &[case_id.into()],
            )
        })
    }

    /// Every store-and-forward entry in `state`.
    fn saf_in_state(&mut self, state: SafState) -> Result<Vec<SafRow>, StoreError> {
        run(self, |tx| {
            all(
                tx,
                &select::<SafRow>("saf WHERE state = $1 ORDER BY saf_id"),
                &[state.name().into()],
            )
        })
    }

    /// One store-and-forward entry.
    fn saf_entry(&mut self, saf_id: i64) -> Result<Option<SafRow>, StoreError> {
        run(self, |tx| {
            one(
                tx,
                &select::<SafRow>("saf WHERE saf_id = $1"),
                &[saf_id.into()],
            )
        })
    }

    /// Opens `open` and applies `transfers` to the ledger, with `also`, all or nothing
    /// (see the `money` module). Returns how many transfers were new.
    fn ledger_apply(
        &mut self,
        open: &[ledger::Account],
        transfers: &[ledger::Transfer],
        also: &[Write],
        at: &str,
    ) -> Result<usize, StoreError> {
        run(self, |tx| {
            money::ledger_apply(tx, open, transfers, also, at)
        })
    }

    /// Every ledger account with its balances.
    fn ledger_accounts(&mut self) -> Result<Vec<ledger::Account>, StoreError> {
        run(self, money::ledger_accounts)
    }

    /// Ledger transfers whose id starts with `prefix`.
    fn ledger_transfers(&mut self, prefix: &str) -> Result<Vec<ledger::Transfer>, StoreError> {
        run(self, |tx| money::ledger_transfers(tx, prefix))
    }

    /// One merchant's own terms, if it has any.
    fn terms_of(&mut self, merchant_id: &str) -> Result<Option<TermsRow>, StoreError> {
        run(self, |tx| money::terms_of(tx, merchant_id))
    }

    /// One settlement.
    fn settlement(&mut self, settlement_id: &str) -> Result<Option<SettlementRow>, StoreError> {
        run(self, |tx| money::settlement(tx, settlement_id))
    }

    /// The journal rows of a settlement's transactions, in id order (as
    /// [`Backend::settlement_items_of`]).
    fn settled_transactions(&mut self, settlement_id: &str) -> Result<Vec<TxnRow>, StoreError> {
        run(self, |tx| money::settled_transactions(tx, settlement_id))
    }

    /// Every merchant's pricing and settlement terms.
    fn terms(&mut self) -> Result<Vec<TermsRow>, StoreError> {
        run(self, money::terms)
    }

    /// Holds (only those in force when `active_only`).
    fn holds(&mut self, active_only: bool) -> Result<Vec<HoldRow>, StoreError> {
        run(self, |tx| money::holds(tx, active_only))
    }

    /// The capture of a transaction.
    fn capture(&mut self, txn_id: i64) -> Result<Option<CaptureRow>, StoreError> {
        run(self, |tx| money::capture(tx, txn_id))
    }

    /// The settlement run of a business date.
    fn settlement_run(&mut self, date: &str) -> Result<Option<SettlementRunRow>, StoreError> {
        run(self, |tx| money::settlement_run(tx, date))
    }

    /// The clearing lines carrying `rrn`, in every file ingested.
    fn recon_lines_of(&mut self, rrn: &str) -> Result<Vec<ReconLineRow>, StoreError> {
        run(self, |tx| money::recon_lines_of(tx, rrn))
    }

    /// The findings about `rrn`.
    fn findings_of(&mut self, rrn: &str) -> Result<Vec<FindingRow>, StoreError> {
        run(self, |tx| money::findings_of(tx, rrn))
    }

    /// Merchant applications (in `status` when given), by number.
    fn applications(&mut self, status: Option<&str>) -> Result<Vec<ApplicationRow>, StoreError> {
        run(self, |tx| money::applications(tx, status))
    }

    /// One application.
    fn application(&mut self, app_id: i64) -> Result<Option<ApplicationRow>, StoreError> {
        run(self, |tx| money::application(tx, app_id))
    }

    /// Complaints, oldest first: all, or those with `status`.
    fn complaints(&mut self, status: Option<&str>) -> Result<Vec<ComplaintRow>, StoreError> {
        run(self, |tx| money::complaints(tx, status))
    }

    /// One complaint.
    fn complaint(&mut self, id: i64) -> Result<Option<ComplaintRow>, StoreError> {
        run(self, |tx| money::complaint(tx, id))
    }

    /// The transactions a complaint is linked to.
    fn complaint_txns(&mut self, id: i64) -> Result<Vec<ComplaintTxnRow>, StoreError> {
        run(self, |tx| money::complaint_txns(tx, id))
    }

    /// A complaint's steps, in order.
    fn complaint_events(&mut self, id: i64) -> Result<Vec<ComplaintEventRow>, StoreError> {
        run(self, |tx| money::complaint_events(tx, id))
    }

    /// Disputes (one complaint's with `Some`), oldest first.
    fn disputes(&mut self, complaint: Option<i64>) -> Result<Vec<DisputeRow>, StoreError> {
        run(self, |tx| money::disputes(tx, complaint))
    }

    /// Money actions of complaints (one complaint's with `Some`), oldest first.
    fn complaint_actions(
        &mut self,
        complaint: Option<i64>,
    ) -> Result<Vec<ComplaintActionRow>, StoreError> {
        run(self, |tx| money::complaint_actions(tx, complaint))
    }

    /// Every reference table an administrator loaded (calendar years, the MCC
    /// table), by name.
    fn references(&mut self) -> Result<Vec<ReferenceRow>, StoreError> {
        run(self, money::references)
    }

    /// Every merchant's re-review schedule, the soonest due first.
    fn merchant_reviews(&mut self) -> Result<Vec<MerchantReviewRow>, StoreError> {
        run(self, money::merchant_reviews)
    }

    /// The onboarding blocklist.
    fn blocklist(&mut self) -> Result<Vec<BlockRow>, StoreError> {
        run(self, money::blocklist)
    }

    /// A stored document.
    fn document(&mut self, sha256: &str) -> Result<Option<DocumentRow>, StoreError> {
        run(self, |tx| money::document(tx, sha256))
    }

    /// The documents an application carries.
    fn application_documents(
        &mut self,
        app_id: i64,
    ) -> Result<Vec<ApplicationDocumentRow>, StoreError> {
        run(self, |tx| money::application_documents(tx, app_id))
    }

    /// An application's review steps, in order.
    fn application_events(&mut self, app_id: i64) -> Result<Vec<ApplicationEventRow>, StoreError> {
        run(self, |tx| money::application_events(tx, app_id))
    }

    /// Every rule-set version uploaded, the newest upload first.
    fn rule_sets(&mut self) -> Result<Vec<RuleSetRow>, StoreError> {
        run(self, money::rule_sets)
    }

    /// Every settlement run, the newest business date first.
    fn settlement_runs(&mut self) -> Result<Vec<SettlementRunRow>, StoreError> {
        run(self, money::settlement_runs)
    }

    /// Reconciliation runs (of one business date when given), the newest first.
    fn recon_runs(&mut self, date: Option<&str>) -> Result<Vec<ReconRunRow>, StoreError> {
        run(self, |tx| money::recon_runs(tx, date))
    }

    /// Settlements, by business date and/or merchant.
    fn settlements(
        &mut self,
        date: Option<&str>,
        merchant: Option<&str>,
    ) -> Result<Vec<SettlementRow>, StoreError> {
        run(self, |tx| money::settlements(tx, date, merchant))
    }

    /// The settlement of one transaction.
    fn settlement_item(&mut self, txn_id: i64) -> Result<Option<SettlementItemRow>, StoreError> {
        run(self, |tx| money::settlement_item(tx, txn_id))
    }

    /// The transactions of a settlement.
    fn settlement_items_of(
        &mut self,
        settlement_id: &str,
    ) -> Result<Vec<SettlementItemRow>, StoreError> {
        run(self, |tx| money::settlement_items_of(tx, settlement_id))
    }

    /// Captured transactions that no settlement includes yet.
    fn captured_unsettled(&mut self) -> Result<std::collections::BTreeSet<i64>, StoreError> {
        run(self, money::captured_unsettled)
    }

    /// Every settled transaction id.
    fn settled_ids(&mut self) -> Result<std::collections::BTreeSet<i64>, StoreError> {
        run(self, money::settled_ids)
    }

    /// The payouts of a settlement.
    fn payouts(&mut self, settlement_id: &str) -> Result<Vec<PayoutRow>, StoreError> {
        run(self, |tx| money::payouts(tx, settlement_id))
    }

    /// Payout instructions due on or before a value date and not yet paid.
    fn payouts_due(&mut self, value_date: &str) -> Result<Vec<PayoutRow>, StoreError> {
        run(self, |tx| money::payouts_due(tx, value_date))
    }

    /// Terminal batch settlements, of one terminal or all.
    fn batch_settlements(
        &mut self,
        terminal: Option<&str>,
    ) -> Result<Vec<BatchSettlementRow>, StoreError> {
        run(self, |tx| money::batch_settlements(tx, terminal))
    }

    /// The differences a batch upload found.
    fn batch_differences(
        &mut self,
        terminal: &str,
        batch: i64,
    ) -> Result<Vec<BatchDiffRow>, StoreError> {
        run(self, |tx| money::batch_differences(tx, terminal, batch))
    }

    /// Approved sales, completions and refunds with a local date on or before `date`
    /// that no settlement includes yet, in id order.
    fn unsettled(&mut self, date: &str) -> Result<Vec<TxnRow>, StoreError> {
        run(self, |tx| money::unsettled(tx, date))
    }

    /// The ingested file with this hash.
    fn recon_file(&mut self, hash: &str) -> Result<Option<ReconFileRow>, StoreError> {
        run(self, |tx| money::recon_file(tx, hash))
    }

    /// Every line (valid and not) of the files of these dates.
    fn recon_lines(&mut self, dates: &[String]) -> Result<Vec<ReconLineRow>, StoreError> {
        run(self, |tx| money::recon_lines(tx, dates))
    }

    /// Whether a file of this date was ingested.
    fn recon_file_seen(&mut self, date: &str) -> Result<bool, StoreError> {
        run(self, |tx| money::recon_file_seen(tx, date))
    }

    /// Findings, all or in one status.
    fn findings(&mut self, status: Option<&str>) -> Result<Vec<FindingRow>, StoreError> {
        run(self, |tx| money::findings(tx, status))
    }

    /// Every captured transaction id (by a batch, at the cut-off, or by reconciliation).
    fn captured_ids(&mut self) -> Result<std::collections::BTreeSet<i64>, StoreError> {
        run(self, money::captured_ids)
    }
}

/// Runs a read or write in one transaction and hands back its result.
fn run<B: Backend + ?Sized, T>(
    b: &mut B,
    mut f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut out = None;
    b.with_tx(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Invalid("transaction produced nothing".into()))
}

/// Opens a backend from a URL: `postgres://…` for PostgreSQL, anything else is a
/// SQLite data directory. A `schema=NAME` query parameter on a PostgreSQL URL confines
/// the connection to that schema (created if missing), so several deployments or test
/// runs can share one database.
pub fn open(url_or_dir: &str) -> Result<Box<dyn Backend>, StoreError> {
    if url_or_dir.starts_with("postgres://") || url_or_dir.starts_with("postgresql://") {
        match split_schema(url_or_dir) {
            (url, Some(schema)) => Ok(Box::new(PgBackend::connect_in_schema(&url, &schema)?)),
            (url, None) => Ok(Box::new(PgBackend::connect(&url)?)),
        }
    } else {
        Ok(Box::new(SqliteBackend::open_dir(std::path::Path::new(
            url_or_dir,
        ))?))
    }
}

/// Takes a `schema=NAME` parameter out of a PostgreSQL URL.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_parameter_is_taken_out() {
        assert_eq!(
            super::split_schema("postgres://a@h/db?schema=s1"),
            ("postgres://a@h/db".into(), Some("s1".into()))
        );
        assert_eq!(
            super::split_schema("postgres://a@h/db?x=1&schema=s1"),
            ("postgres://a@h/db?x=1".into(), Some("s1".into()))
        );
        assert_eq!(
            super::split_schema("postgres://a@h/db"),
            ("postgres://a@h/db".into(), None)
        );
    }
}
