//! Money after the approval: the persisted ledger and the reads of the money rows
//! (terms, holds, captures, settlements, payouts, batch settlements, reconciliation),
//! written once for both backends over [`Tx`].
//!
//! The ledger's rules live in the sans-IO `ledger` crate: a batch of transfers is
//! checked by loading just the accounts and transfers it touches into a
//! [`ledger::Ledger`], applying it there, and writing back what changed — in the same
//! database transaction, so a crash leaves all or nothing.

use std::collections::BTreeSet;

use domain::Currency;
use ledger::{Account, AccountKind, Applied, Flow, Ledger, Limit, Transfer};

use crate::sql::{self, all, ids, one, select, Arg, TableRow, Tx, Val};
use crate::StoreError;
use records::{
    ApplicationDocumentRow, ApplicationEventRow, ApplicationRow, BatchDiffRow, BatchSettlementRow,
    BlockRow, CaptureRow, ComplaintActionRow, ComplaintEventRow, ComplaintRow, ComplaintTxnRow,
    DisputeRow, DocumentRow, FindingRow, HoldRow, MerchantReviewRow, PayoutRow, ReconFileRow,
    ReconLineRow, ReconRunRow, ReferenceRow, RuleSetRow, SettlementItemRow, SettlementRow,
    SettlementRunRow, TermsRow, TxnRow, Write,
};

const ACCOUNT_COLUMNS: &str =
    "account_id, kind, currency, limit_kind, debits_posted, debits_pending, \
     credits_posted, credits_pending";
const TRANSFER_COLUMNS: &str =
    "transfer_id, debit_account, credit_account, amount_minor, flow, pending_id, code, linked, resolved";

fn account_from(r: &[Val]) -> Result<Account, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("ledger account {}: bad {what}", r[0].t()));
    Ok(Account {
        id: r[0].t(),
        kind: AccountKind::parse(&r[1].t()).ok_or_else(|| bad("kind"))?,
        currency: Currency::parse(&r[2].t()).map_err(|_| bad("currency"))?,
        limit: Limit::parse(&r[3].t()).ok_or_else(|| bad("limit"))?,
        debits_posted: r[4].i(),
        debits_pending: r[5].i(),
        credits_posted: r[6].i(),
        credits_pending: r[7].i(),
    })
}

fn transfer_from(r: &[Val]) -> Result<(Transfer, bool), StoreError> {
    let flow = Flow::from_parts(&r[4].t(), r[5].ot())
        .ok_or_else(|| StoreError::Invalid(format!("transfer {}: bad flow", r[0].t())))?;
    Ok((
        Transfer {
            id: r[0].t(),
            debit: r[1].t(),
            credit: r[2].t(),
            amount: r[3].i(),
            flow,
            code: r[6].t(),
            linked: r[7].i() != 0,
        },
        r[8].i() != 0,
    ))
}

/// Opens `open` (idempotently) and applies `transfers` as one all-or-nothing unit,
/// together with `also`. A transfer already applied is skipped; a different transfer
/// under a used id, or any transfer the ledger refuses, fails the whole unit.
/// Returns how many transfers were new.
pub(crate) fn ledger_apply(
    tx: &mut dyn Tx,
    open: &[Account],
    transfers: &[Transfer],
    also: &[Write],
    at: &str,
) -> Result<usize, StoreError> {
    let mut ledger = Ledger::new();
    let mut ids: BTreeSet<&str> = open.iter().map(|a| a.id.as_str()).collect();
    for t in transfers {
        ids.insert(&t.debit);
        ids.insert(&t.credit);
    }
    let sql_account =
        format!("SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE account_id = $1");
    let mut stored = BTreeSet::new();
    for id in &ids {
        if let Some(r) = tx.query(&sql_account, &[(*id).into()])?.first() {
            ledger.restore_account(account_from(r)?);
            stored.insert(id.to_string());
        }
    }
    for a in open {
        ledger
            .open(&a.id, a.kind, a.currency, a.limit)
            .map_err(StoreError::Ledger)?;
    }
    let sql_transfer =
        format!("SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE transfer_id = $1");
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for t in transfers {
        wanted.insert(&t.id);
        if let Flow::PostPending { pending } | Flow::VoidPending { pending } = &t.flow {
            wanted.insert(pending);
        }
    }
    for id in wanted {
        if let Some(r) = tx.query(&sql_transfer, &[id.into()])?.first() {
            let (t, resolved) = transfer_from(r)?;
            ledger.restore_transfer(t, resolved);
        }
    }
    let results = ledger.apply(transfers);
    let mut fresh = 0;
    for (t, r) in transfers.iter().zip(&results) {
        match r {
            Err(e) => return Err(StoreError::Ledger(e.clone())),
            Ok(Applied::AlreadyDone) => {}
            Ok(Applied::Done) => {
                fresh += 1;
                let (flow, pending) = t.flow.to_parts();
                tx.exec(
                    "INSERT INTO ledger_transfers (transfer_id, debit_account, credit_account, \
                     amount_minor, flow, pending_id, code, linked, resolved, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
                    &[
                        (&t.id).into(),
                        (&t.debit).into(),
                        (&t.credit).into(),
                        t.amount.into(),
                        flow.into(),
                        pending.map_or(Arg::Null, Arg::T),
                        (&t.code).into(),
                        i64::from(t.linked).into(),
                        at.into(),
                    ],
                )?;
                if let Some(p) = pending {
                    tx.exec(
                        "UPDATE ledger_transfers SET resolved = 1 WHERE transfer_id = $1",
                        &[p.into()],
                    )?;
                }
            }
        }
    }
    for a in ledger.accounts() {
        let currency = a.currency.to_string();
        let params = [
            (&a.id).into(),
            a.kind.name().into(),
            currency.as_str().into(),
            a.limit.name().into(),
            a.debits_posted.into(),
            a.debits_pending.into(),
            a.credits_posted.into(),
            a.credits_pending.into(),
        ];
        if stored.contains(&a.id) {
            tx.exec(
                "UPDATE ledger_accounts SET debits_posted = $5, debits_pending = $6, \
                 credits_posted = $7, credits_pending = $8 \
                 WHERE account_id = $1 AND kind = $2 AND currency = $3 AND limit_kind = $4",
                &params,
            )?;
        } else {
            tx.exec(
                &format!(
                    "INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &params,
            )?;
        }
    }
    for w in also {
        sql::write(tx, w)?;
    }
    Ok(fresh)
}

/// Every ledger account.
pub(crate) fn ledger_accounts(tx: &mut dyn Tx) -> Result<Vec<Account>, StoreError> {
    tx.query(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts ORDER BY account_id"),
        &[],
    )?
    .iter()
    .map(|r| account_from(r))
    .collect()
}

/// Ledger transfers whose id starts with `prefix` (e.g. `capture:` or `payout:S2026`).
pub(crate) fn ledger_transfers(tx: &mut dyn Tx, prefix: &str) -> Result<Vec<Transfer>, StoreError> {
    let like = format!("{}%", prefix.replace('%', ""));
    tx.query(
        &format!(
            "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE transfer_id LIKE $1 \
             ORDER BY transfer_id"
        ),
        &[like.as_str().into()],
    )?
    .iter()
    .map(|r| transfer_from(r).map(|(t, _)| t))
    .collect()
}

/// Every merchant's terms.
pub(crate) fn terms(tx: &mut dyn Tx) -> Result<Vec<TermsRow>, StoreError> {
    all(
        tx,
        &select::<TermsRow>("merchant_terms ORDER BY merchant_id"),
        &[],
    )
}

/// One merchant's own terms.
pub(crate) fn terms_of(tx: &mut dyn Tx, merchant_id: &str) -> Result<Option<TermsRow>, StoreError> {
    one(
        tx,
        &select::<TermsRow>("merchant_terms WHERE merchant_id = $1"),
        &[merchant_id.into()],
    )
}

/// One settlement.
pub(crate) fn settlement(
    tx: &mut dyn Tx,
    settlement_id: &str,
) -> Result<Option<SettlementRow>, StoreError> {
    one(
        tx,
        &select::<SettlementRow>("settlements WHERE settlement_id = $1"),
        &[settlement_id.into()],
    )
}

/// `t.a, t.b, …`: the journal's columns, qualified for a join.
fn txn_columns_as_t() -> String {
    TxnRow::COLUMNS
        .split(',')
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The journal rows of a settlement's transactions.
pub(crate) fn settled_transactions(
    tx: &mut dyn Tx,
    settlement_id: &str,
) -> Result<Vec<TxnRow>, StoreError> {
    all(
        tx,
        &format!(
            "SELECT {} FROM transactions t JOIN settlement_items s ON s.txn_id = t.txn_id \
             WHERE s.settlement_id = $1 ORDER BY t.txn_id",
            txn_columns_as_t()
        ),
        &[settlement_id.into()],
    )
}

/// Holds: all of them, or only those still in force.
pub(crate) fn holds(tx: &mut dyn Tx, active_only: bool) -> Result<Vec<HoldRow>, StoreError> {
    let filter = if active_only {
        "WHERE released_at IS NULL "
    } else {
        ""
    };
    all(
        tx,
        &select::<HoldRow>(&format!("holds {filter}ORDER BY placed_at, hold_id")),
        &[],
    )
}

/// The capture of a transaction.
pub(crate) fn capture(tx: &mut dyn Tx, txn_id: i64) -> Result<Option<CaptureRow>, StoreError> {
    one(
        tx,
        &select::<CaptureRow>("captures WHERE txn_id = $1"),
        &[txn_id.into()],
    )
}

/// The settlement run of a date.
pub(crate) fn settlement_run(
    tx: &mut dyn Tx,
    date: &str,
) -> Result<Option<SettlementRunRow>, StoreError> {
    one(
        tx,
        &select::<SettlementRunRow>("settlement_runs WHERE business_date = $1"),
        &[date.into()],
    )
}

/// The clearing lines carrying an RRN.
pub(crate) fn recon_lines_of(tx: &mut dyn Tx, rrn: &str) -> Result<Vec<ReconLineRow>, StoreError> {
    all(
        tx,
        &select::<ReconLineRow>("recon_lines WHERE rrn = $1 ORDER BY file_date, file_hash, line"),
        &[rrn.into()],
    )
}

/// The findings about an RRN.
pub(crate) fn findings_of(tx: &mut dyn Tx, rrn: &str) -> Result<Vec<FindingRow>, StoreError> {
    all(
        tx,
        &select::<FindingRow>("recon_findings WHERE rrn = $1 ORDER BY created_at, finding_id"),
        &[rrn.into()],
    )
}

/// Applications, in one status when given, by number.
pub(crate) fn applications(
    tx: &mut dyn Tx,
    status: Option<&str>,
) -> Result<Vec<ApplicationRow>, StoreError> {
    all(
        tx,
        &select::<ApplicationRow>(
            "applications WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY app_id",
        ),
        &[status.map_or(Arg::Null, Arg::T)],
    )
}

/// One application.
pub(crate) fn application(
    tx: &mut dyn Tx,
    app_id: i64,
) -> Result<Option<ApplicationRow>, StoreError> {
    one(
        tx,
        &select::<ApplicationRow>("applications WHERE app_id = $1"),
        &[app_id.into()],
    )
}

/// Complaints, oldest first, with a status or all.
pub(crate) fn complaints(
    tx: &mut dyn Tx,
    status: Option<&str>,
) -> Result<Vec<ComplaintRow>, StoreError> {
    all(
        tx,
        &select::<ComplaintRow>(
            "complaints WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY complaint_id",
        ),
        &[status.map_or(Arg::Null, Arg::T)],
    )
}

/// One complaint.
pub(crate) fn complaint(tx: &mut dyn Tx, id: i64) -> Result<Option<ComplaintRow>, StoreError> {
    one(
        tx,
        &select::<ComplaintRow>("complaints WHERE complaint_id = $1"),
        &[id.into()],
    )
}

/// The transactions a complaint is linked to.
pub(crate) fn complaint_txns(tx: &mut dyn Tx, id: i64) -> Result<Vec<ComplaintTxnRow>, StoreError> {
    all(
        tx,
        &select::<ComplaintTxnRow>("complaint_txns WHERE complaint_id = $1 ORDER BY txn_id"),
        &[id.into()],
    )
}

/// A complaint's steps, in order.
pub(crate) fn complaint_events(
    tx: &mut dyn Tx,
    id: i64,
) -> Result<Vec<ComplaintEventRow>, StoreError> {
    all(
        tx,
        &select::<ComplaintEventRow>("complaint_events WHERE complaint_id = $1 ORDER BY seq"),
        &[id.into()],
    )
}

/// Every complaint's money actions (a complaint's with `Some`), oldest first.
pub(crate) fn complaint_actions(
    tx: &mut dyn Tx,
    complaint: Option<i64>,
) -> Result<Vec<ComplaintActionRow>, StoreError> {
    all(
        tx,
        &select::<ComplaintActionRow>(
            "complaint_actions WHERE (CAST($1 AS BIGINT) IS NULL OR complaint_id = $1) ORDER BY action_id",
        ),
        &[complaint.map_or(Arg::Null, Arg::I)],
    )
}

/// Disputes (one complaint's with `Some`), oldest first.
pub(crate) fn disputes(
    tx: &mut dyn Tx,
    complaint: Option<i64>,
) -> Result<Vec<DisputeRow>, StoreError> {
    all(
        tx,
        &select::<DisputeRow>(
            "disputes WHERE (CAST($1 AS BIGINT) IS NULL OR complaint_id = $1) ORDER BY dispute_id",
        ),
        &[complaint.map_or(Arg::Null, Arg::I)],
    )
}

/// Every reference table loaded, by name.
pub(crate) fn references(tx: &mut dyn Tx) -> Result<Vec<ReferenceRow>, StoreError> {
    all(
        tx,
        &select::<ReferenceRow>("reference_tables ORDER BY name"),
        &[],
    )
}

/// Every merchant's re-review schedule, the soonest due first.
pub(crate) fn merchant_reviews(tx: &mut dyn Tx) -> Result<Vec<MerchantReviewRow>, StoreError> {
    all(
        tx,
        &select::<MerchantReviewRow>("merchant_reviews ORDER BY due_on, merchant_id"),
        &[],
    )
}

/// The onboarding blocklist.
pub(crate) fn blocklist(tx: &mut dyn Tx) -> Result<Vec<BlockRow>, StoreError> {
    all(
        tx,
        &select::<BlockRow>("blocklist ORDER BY kind, value"),
        &[],
    )
}

/// A stored document.
pub(crate) fn document(tx: &mut dyn Tx, sha256: &str) -> Result<Option<DocumentRow>, StoreError> {
    if !crate::sql::is_sha256(sha256) {
        return Ok(None);
    }
    tx.get_document(sha256)
}

/// The documents an application carries.
pub(crate) fn application_documents(
    tx: &mut dyn Tx,
    app_id: i64,
) -> Result<Vec<ApplicationDocumentRow>, StoreError> {
    all(
        tx,
        &select::<ApplicationDocumentRow>(
            "application_documents WHERE app_id = $1 ORDER BY uploaded_at, doc_type, sha256",
        ),
        &[app_id.into()],
    )
}

/// An application's review steps.
pub(crate) fn application_events(
    tx: &mut dyn Tx,
    app_id: i64,
) -> Result<Vec<ApplicationEventRow>, StoreError> {
    all(
        tx,
        &select::<ApplicationEventRow>("application_events WHERE app_id = $1 ORDER BY seq"),
        &[app_id.into()],
    )
}

/// Every rule-set version, the newest upload first.
pub(crate) fn rule_sets(tx: &mut dyn Tx) -> Result<Vec<RuleSetRow>, StoreError> {
    all(
        tx,
        &select::<RuleSetRow>("rule_sets ORDER BY uploaded_at DESC, version DESC"),
        &[],
    )
}

/// Every settlement run, the newest business date first.
pub(crate) fn settlement_runs(tx: &mut dyn Tx) -> Result<Vec<SettlementRunRow>, StoreError> {
    all(
        tx,
        &select::<SettlementRunRow>("settlement_runs ORDER BY business_date DESC"),
        &[],
    )
}

/// Reconciliation runs, of one date when given, the newest first.
pub(crate) fn recon_runs(
    tx: &mut dyn Tx,
    date: Option<&str>,
) -> Result<Vec<ReconRunRow>, StoreError> {
    all(
        tx,
        &select::<ReconRunRow>(
            "recon_runs WHERE (CAST($1 AS TEXT) IS NULL OR business_date = $1) \
             ORDER BY business_date DESC, ran_at DESC",
        ),
        &[date.map_or(Arg::Null, Arg::T)],
    )
}

/// Settlements of a business date and/or a merchant (all when neither is given).
pub(crate) fn settlements(
    tx: &mut dyn Tx,
    date: Option<&str>,
    merchant: Option<&str>,
) -> Result<Vec<SettlementRow>, StoreError> {
    all(
        tx,
        &select::<SettlementRow>(
            "settlements WHERE (CAST($1 AS TEXT) IS NULL OR business_date = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR merchant_id = $2) ORDER BY business_date, merchant_id",
        ),
        &[
            date.map_or(Arg::Null, Arg::T),
            merchant.map_or(Arg::Null, Arg::T),
        ],
    )
}

/// The settlement of one transaction.
pub(crate) fn settlement_item(
    tx: &mut dyn Tx,
    txn_id: i64,
) -> Result<Option<SettlementItemRow>, StoreError> {
    one(
        tx,
        &select::<SettlementItemRow>("settlement_items WHERE txn_id = $1"),
        &[txn_id.into()],
    )
}

/// Every settled transaction id.
pub(crate) fn settled_ids(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    ids(tx, "SELECT txn_id FROM settlement_items", &[])
}

/// The transactions of a settlement.
pub(crate) fn settlement_items_of(
    tx: &mut dyn Tx,
    settlement_id: &str,
) -> Result<Vec<SettlementItemRow>, StoreError> {
    all(
        tx,
        &select::<SettlementItemRow>("settlement_items WHERE settlement_id = $1 ORDER BY txn_id"),
        &[settlement_id.into()],
    )
}

/// The payouts of a settlement.
pub(crate) fn payouts(tx: &mut dyn Tx, settlement_id: &str) -> Result<Vec<PayoutRow>, StoreError> {
    all(
        tx,
        &select::<PayoutRow>("payouts WHERE settlement_id = $1 ORDER BY seq"),
        &[settlement_id.into()],
    )
}

/// Payouts due on or before a value date and not yet paid.
pub(crate) fn payouts_due(tx: &mut dyn Tx, value_date: &str) -> Result<Vec<PayoutRow>, StoreError> {
    all(
        tx,
        &select::<PayoutRow>(
            "payouts WHERE value_date <= $1 AND status = 'instructed' ORDER BY settlement_id, seq",
        ),
        &[value_date.into()],
    )
}

/// Terminal batch settlements (of one terminal, or all).
pub(crate) fn batch_settlements(
    tx: &mut dyn Tx,
    terminal: Option<&str>,
) -> Result<Vec<BatchSettlementRow>, StoreError> {
    all(
        tx,
        &select::<BatchSettlementRow>(
            "batch_settlements WHERE (CAST($1 AS TEXT) IS NULL OR terminal_id = $1) ORDER BY terminal_id, batch",
        ),
        &[terminal.map_or(Arg::Null, Arg::T)],
    )
}

/// The differences found for a terminal's batch.
pub(crate) fn batch_differences(
    tx: &mut dyn Tx,
    terminal: &str,
    batch: i64,
) -> Result<Vec<BatchDiffRow>, StoreError> {
    all(
        tx,
        &select::<BatchDiffRow>(
            "batch_differences WHERE terminal_id = $1 AND batch = $2 ORDER BY stan, side",
        ),
        &[terminal.into(), batch.into()],
    )
}

/// Approved money-moving transactions not yet settled, local date on or before `date`.
pub(crate) fn unsettled(tx: &mut dyn Tx, date: &str) -> Result<Vec<TxnRow>, StoreError> {
    let cols = txn_columns_as_t();
    all(
        tx,
        &format!(
            "SELECT {cols} FROM transactions t LEFT JOIN settlement_items s ON s.txn_id = t.txn_id \
             WHERE s.txn_id IS NULL AND t.state = 'approved' \
             AND t.kind IN ('sale', 'completion', 'refund') AND t.local_date <= $1 \
             ORDER BY t.txn_id"
        ),
        &[date.into()],
    )
}

/// Captured transactions not yet settled.
pub(crate) fn captured_unsettled(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    ids(
        tx,
        "SELECT c.txn_id FROM captures c LEFT JOIN settlement_items s ON s.txn_id = c.txn_id \
         WHERE s.txn_id IS NULL",
        &[],
    )
}

/// Every captured transaction id.
pub(crate) fn captured_ids(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    ids(tx, "SELECT txn_id FROM captures", &[])
}

/// The ingested file with this hash.
pub(crate) fn recon_file(tx: &mut dyn Tx, hash: &str) -> Result<Option<ReconFileRow>, StoreError> {
    one(
        tx,
        &select::<ReconFileRow>("recon_files WHERE file_hash = $1"),
        &[hash.into()],
    )
}

/// Whether a file of this date was ingested.
pub(crate) fn recon_file_seen(tx: &mut dyn Tx, date: &str) -> Result<bool, StoreError> {
    Ok(!tx
        .query(
            "SELECT file_hash FROM recon_files WHERE file_date = $1",
            &[date.into()],
        )?
        .is_empty())
}

/// Every line of the files of these dates.
pub(crate) fn recon_lines(
    tx: &mut dyn Tx,
    dates: &[String],
) -> Result<Vec<ReconLineRow>, StoreError> {
    let sql = select::<ReconLineRow>("recon_lines WHERE file_date = $1 ORDER BY file_hash, line");
    let mut out = Vec::new();
    for d in dates {
        out.extend(all(tx, &sql, &[d.into()])?);
    }
    Ok(out)
}

/// Findings, all or in one status.
pub(crate) fn findings(
    tx: &mut dyn Tx,
    status: Option<&str>,
) -> Result<Vec<FindingRow>, StoreError> {
    all(
        tx,
        &select::<FindingRow>(
            "recon_findings WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY created_at, finding_id",
        ),
        &[status.map_or(Arg::Null, Arg::T)],
    )
}
