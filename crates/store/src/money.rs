//! Money after the approval, written once for both backends: merchant terms, holds,
//! captures, settlements, payouts, batch settlements, and the persisted ledger.
//!
//! Both backends offer the same small transaction interface ([`Tx`]); everything here
//! is portable SQL over it. The ledger's rules live in the sans-IO `ledger` crate: a
//! batch of transfers is checked by loading just the accounts and transfers it
//! touches into a [`ledger::Ledger`], applying it there, and writing back what
//! changed — in the same database transaction, so a crash leaves all or nothing.

use std::collections::BTreeSet;

use domain::Currency;
use ledger::{Account, AccountKind, Applied, Flow, Ledger, Limit, Transfer};

use crate::rows::{
    BatchDiffRow, BatchSettlementRow, CaptureRow, HoldRow, PayoutRow, SettlementItemRow,
    SettlementRow, SettlementRunRow, TermsRow, Write,
};
use crate::StoreError;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An integer.
    I(i64),
    /// Text.
    T(String),
    /// NULL.
    Null,
}

impl Val {
    fn i(&self) -> i64 {
        match self {
            Val::I(v) => *v,
            Val::T(s) => s.parse().unwrap_or(0),
            Val::Null => 0,
        }
    }

    fn t(&self) -> String {
        match self {
            Val::T(s) => s.clone(),
            Val::I(v) => v.to_string(),
            Val::Null => String::new(),
        }
    }

    fn ot(&self) -> Option<String> {
        match self {
            Val::Null => None,
            v => Some(v.t()),
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::T(s.to_owned())
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::T(s.clone())
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(v)
    }
}
impl From<&Option<String>> for Val {
    fn from(v: &Option<String>) -> Val {
        v.as_ref().map_or(Val::Null, |s| Val::T(s.clone()))
    }
}

/// One open database transaction (statements use `$N` parameters).
pub trait Tx {
    /// Runs a statement; returns the rows changed.
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<usize, StoreError>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, StoreError>;
}

/// Whether a write is one of this module's.
pub(crate) fn is_money(w: &Write) -> bool {
    matches!(
        w,
        Write::Terms(_)
            | Write::Hold(_)
            | Write::Capture(_)
            | Write::SettlementRun(_)
            | Write::Settlement(_)
            | Write::SettlementItem(_)
            | Write::Payout(_)
            | Write::BatchSettlement(_)
            | Write::BatchDiff(_)
            | Write::ReconFile(_)
            | Write::ReconLine(_)
            | Write::Finding(_)
            | Write::FindingUpdate(_)
    )
}

const SQL_TERMS: &str = "INSERT INTO merchant_terms (merchant_id, settlement_account, cycle, debit_bps, \
     credit_bps, debit_cap_minor, min_fee_minor, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (merchant_id) DO UPDATE SET settlement_account = excluded.settlement_account, \
     cycle = excluded.cycle, debit_bps = excluded.debit_bps, credit_bps = excluded.credit_bps, \
     debit_cap_minor = excluded.debit_cap_minor, min_fee_minor = excluded.min_fee_minor, \
     updated_at = excluded.updated_at";
const SQL_HOLD: &str =
    "INSERT INTO holds (hold_id, subject, reason, placed_by, placed_at, released_by, \
     released_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hold_id) DO UPDATE SET \
     released_by = excluded.released_by, released_at = excluded.released_at";
const SQL_CAPTURE: &str =
    "INSERT INTO captures (txn_id, how, business_date, at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (txn_id) DO NOTHING";
const SQL_RUN: &str =
    "INSERT INTO settlement_runs (business_date, ran_at, merchants, items, net_minor, file) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const SQL_SETTLEMENT: &str = "INSERT INTO settlements (settlement_id, merchant_id, business_date, \
     settlement_account, gross_minor, refunds_minor, fees_minor, held_minor, net_minor, txn_count, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const SQL_ITEM: &str =
    "INSERT INTO settlement_items (txn_id, settlement_id, fee_minor, net_minor) \
     VALUES ($1, $2, $3, $4)";
const SQL_PAYOUT: &str = "INSERT INTO payouts (settlement_id, seq, value_date, amount_minor, \
     settlement_account, status) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (settlement_id, seq) \
     DO UPDATE SET status = excluded.status";
const SQL_BATCH: &str = "INSERT INTO batch_settlements (terminal_id, batch, at, result, terminal_totals, \
     posguard_totals, uploaded) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (terminal_id, batch) \
     DO UPDATE SET at = excluded.at, result = excluded.result, terminal_totals = excluded.terminal_totals, \
     posguard_totals = excluded.posguard_totals, uploaded = excluded.uploaded";
const SQL_DIFF: &str = "INSERT INTO batch_differences (terminal_id, batch, stan, side, rrn, kind, \
     amount_minor, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (terminal_id, batch, stan, side) DO NOTHING";

/// Applies one of this module's writes.
pub(crate) fn write(tx: &mut dyn Tx, w: &Write) -> Result<(), StoreError> {
    match w {
        Write::Terms(t) => tx.exec(
            SQL_TERMS,
            &[
                (&t.merchant_id).into(),
                (&t.settlement_account).into(),
                (&t.cycle).into(),
                t.debit_bps.into(),
                t.credit_bps.into(),
                t.debit_cap_minor.into(),
                t.min_fee_minor.into(),
                (&t.updated_at).into(),
            ],
        ),
        Write::Hold(h) => tx.exec(
            SQL_HOLD,
            &[
                (&h.hold_id).into(),
                (&h.subject).into(),
                (&h.reason).into(),
                (&h.placed_by).into(),
                (&h.placed_at).into(),
                (&h.released_by).into(),
                (&h.released_at).into(),
            ],
        ),
        Write::Capture(c) => tx.exec(
            SQL_CAPTURE,
            &[
                c.txn_id.into(),
                (&c.how).into(),
                (&c.business_date).into(),
                (&c.at).into(),
            ],
        ),
        Write::SettlementRun(r) => tx.exec(
            SQL_RUN,
            &[
                (&r.business_date).into(),
                (&r.ran_at).into(),
                r.merchants.into(),
                r.items.into(),
                r.net_minor.into(),
                (&r.file).into(),
            ],
        ),
        Write::Settlement(s) => tx.exec(
            SQL_SETTLEMENT,
            &[
                (&s.settlement_id).into(),
                (&s.merchant_id).into(),
                (&s.business_date).into(),
                (&s.settlement_account).into(),
                s.gross_minor.into(),
                s.refunds_minor.into(),
                s.fees_minor.into(),
                s.held_minor.into(),
                s.net_minor.into(),
                s.txn_count.into(),
                (&s.created_at).into(),
            ],
        ),
        Write::SettlementItem(i) => tx.exec(
            SQL_ITEM,
            &[
                i.txn_id.into(),
                (&i.settlement_id).into(),
                i.fee_minor.into(),
                i.net_minor.into(),
            ],
        ),
        Write::Payout(p) => tx.exec(
            SQL_PAYOUT,
            &[
                (&p.settlement_id).into(),
                p.seq.into(),
                (&p.value_date).into(),
                p.amount_minor.into(),
                (&p.settlement_account).into(),
                (&p.status).into(),
            ],
        ),
        Write::BatchSettlement(b) => tx.exec(
            SQL_BATCH,
            &[
                (&b.terminal_id).into(),
                b.batch.into(),
                (&b.at).into(),
                (&b.result).into(),
                (&b.terminal_totals).into(),
                (&b.posguard_totals).into(),
                b.uploaded.into(),
            ],
        ),
        Write::BatchDiff(d) => tx.exec(
            SQL_DIFF,
            &[
                (&d.terminal_id).into(),
                d.batch.into(),
                d.stan.into(),
                (&d.side).into(),
                (&d.rrn).into(),
                (&d.kind).into(),
                d.amount_minor.into(),
                (&d.detail).into(),
            ],
        ),
        Write::ReconFile(f) => tx.exec(
            "INSERT INTO recon_files (file_hash, file_date, name, lines, bad_lines, ingested_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (file_hash) DO NOTHING",
            &[
                (&f.file_hash).into(),
                (&f.file_date).into(),
                (&f.name).into(),
                f.lines.into(),
                f.bad_lines.into(),
                (&f.ingested_at).into(),
            ],
        ),
        Write::ReconLine(l) => tx.exec(
            "INSERT INTO recon_lines (file_hash, line, file_date, valid, problem, rrn, auth_code, \
             stan, terminal, merchant, masked_pan, amount_minor, currency, kind, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (file_hash, line) DO NOTHING",
            &[
                (&l.file_hash).into(),
                l.line.into(),
                (&l.file_date).into(),
                i64::from(l.valid).into(),
                (&l.problem).into(),
                (&l.rrn).into(),
                (&l.auth_code).into(),
                (&l.stan).into(),
                (&l.terminal).into(),
                (&l.merchant).into(),
                (&l.masked_pan).into(),
                l.amount_minor.into(),
                (&l.currency).into(),
                (&l.kind).into(),
                (&l.at).into(),
            ],
        ),
        Write::Finding(f) | Write::FindingUpdate(f) => {
            let conflict = if matches!(w, Write::Finding(_)) {
                "DO NOTHING"
            } else {
                "DO UPDATE SET status = excluded.status, owner = excluded.owner, \
                 deadline = excluded.deadline, action = excluded.action, notes = excluded.notes, \
                 updated_at = excluded.updated_at"
            };
            tx.exec(
                &format!(
                    "INSERT INTO recon_findings (finding_id, business_date, class, rrn, txn_id, \
                     amount_minor, evidence, action, status, owner, deadline, notes, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (finding_id) {conflict}"
                ),
                &[
                    (&f.finding_id).into(),
                    (&f.business_date).into(),
                    (&f.class).into(),
                    (&f.rrn).into(),
                    f.txn_id.map_or(Val::Null, Val::I),
                    f.amount_minor.into(),
                    (&f.evidence).into(),
                    (&f.action).into(),
                    (&f.status).into(),
                    (&f.owner).into(),
                    (&f.deadline).into(),
                    (&f.notes).into(),
                    (&f.created_at).into(),
                    (&f.updated_at).into(),
                ],
            )
        }
        _ => return Err(StoreError::Invalid("not a money write".into())),
    }?;
    Ok(())
}

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
                        pending.map_or(Val::Null, Val::from),
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
        let params = [
            (&a.id).into(),
            a.kind.name().into(),
            a.currency.to_string().as_str().into(),
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
        write(tx, w)?;
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
    tx.query(
        &format!(
            "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE transfer_id LIKE $1 \
             ORDER BY transfer_id"
        ),
        &[format!("{}%", prefix.replace('%', "")).as_str().into()],
    )?
    .iter()
    .map(|r| transfer_from(r).map(|(t, _)| t))
    .collect()
}

/// Every merchant's terms.
pub(crate) fn terms(tx: &mut dyn Tx) -> Result<Vec<TermsRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT merchant_id, settlement_account, cycle, debit_bps, credit_bps, \
             debit_cap_minor, min_fee_minor, updated_at FROM merchant_terms ORDER BY merchant_id",
            &[],
        )?
        .into_iter()
        .map(|r| TermsRow {
            merchant_id: r[0].t(),
            settlement_account: r[1].t(),
            cycle: r[2].t(),
            debit_bps: r[3].i(),
            credit_bps: r[4].i(),
            debit_cap_minor: r[5].i(),
            min_fee_minor: r[6].i(),
            updated_at: r[7].t(),
        })
        .collect())
}

/// Holds: all of them, or only those still in force.
pub(crate) fn holds(tx: &mut dyn Tx, active_only: bool) -> Result<Vec<HoldRow>, StoreError> {
    let filter = if active_only {
        "WHERE released_at IS NULL "
    } else {
        ""
    };
    Ok(tx
        .query(
            &format!(
                "SELECT hold_id, subject, reason, placed_by, placed_at, released_by, released_at \
                 FROM holds {filter}ORDER BY placed_at, hold_id"
            ),
            &[],
        )?
        .into_iter()
        .map(|r| HoldRow {
            hold_id: r[0].t(),
            subject: r[1].t(),
            reason: r[2].t(),
            placed_by: r[3].t(),
            placed_at: r[4].t(),
            released_by: r[5].ot(),
            released_at: r[6].ot(),
        })
        .collect())
}

/// The capture of a transaction.
pub(crate) fn capture(tx: &mut dyn Tx, txn_id: i64) -> Result<Option<CaptureRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT txn_id, how, business_date, at FROM captures WHERE txn_id = $1",
            &[txn_id.into()],
        )?
        .into_iter()
        .next()
        .map(|r| CaptureRow {
            txn_id: r[0].i(),
            how: r[1].t(),
            business_date: r[2].t(),
            at: r[3].t(),
        }))
}

/// The settlement run of a date.
pub(crate) fn settlement_run(
    tx: &mut dyn Tx,
    date: &str,
) -> Result<Option<SettlementRunRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT business_date, ran_at, merchants, items, net_minor, file FROM settlement_runs \
             WHERE business_date = $1",
            &[date.into()],
        )?
        .into_iter()
        .next()
        .map(|r| SettlementRunRow {
            business_date: r[0].t(),
            ran_at: r[1].t(),
            merchants: r[2].i(),
            items: r[3].i(),
            net_minor: r[4].i(),
            file: r[5].t(),
        }))
}

fn settlement_from(r: &[Val]) -> SettlementRow {
    SettlementRow {
        settlement_id: r[0].t(),
        merchant_id: r[1].t(),
        business_date: r[2].t(),
        settlement_account: r[3].t(),
        gross_minor: r[4].i(),
        refunds_minor: r[5].i(),
        fees_minor: r[6].i(),
        held_minor: r[7].i(),
        net_minor: r[8].i(),
        txn_count: r[9].i(),
        created_at: r[10].t(),
    }
}

const SETTLEMENT_COLUMNS: &str = "settlement_id, merchant_id, business_date, settlement_account, \
     gross_minor, refunds_minor, fees_minor, held_minor, net_minor, txn_count, created_at";

/// Settlements of a business date (every merchant), or of one merchant (every date)
/// when `merchant` is given and `date` is empty.
pub(crate) fn settlements(
    tx: &mut dyn Tx,
    date: Option<&str>,
    merchant: Option<&str>,
) -> Result<Vec<SettlementRow>, StoreError> {
    let rows = match (date, merchant) {
        (Some(d), Some(m)) => tx.query(
            &format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE business_date = $1 AND merchant_id = $2"),
            &[d.into(), m.into()],
        )?,
        (Some(d), None) => tx.query(
            &format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE business_date = $1 ORDER BY merchant_id"),
            &[d.into()],
        )?,
        (None, Some(m)) => tx.query(
            &format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE merchant_id = $1 ORDER BY business_date"),
            &[m.into()],
        )?,
        (None, None) => tx.query(
            &format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements ORDER BY business_date, merchant_id"),
            &[],
        )?,
    };
    Ok(rows.iter().map(|r| settlement_from(r)).collect())
}

/// The settlement of one transaction.
pub(crate) fn settlement_item(
    tx: &mut dyn Tx,
    txn_id: i64,
) -> Result<Option<SettlementItemRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT txn_id, settlement_id, fee_minor, net_minor FROM settlement_items WHERE txn_id = $1",
            &[txn_id.into()],
        )?
        .into_iter()
        .next()
        .map(|r| SettlementItemRow {
            txn_id: r[0].i(),
            settlement_id: r[1].t(),
            fee_minor: r[2].i(),
            net_minor: r[3].i(),
        }))
}

/// Every settled transaction id.
pub(crate) fn settled_ids(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    Ok(tx
        .query("SELECT txn_id FROM settlement_items", &[])?
        .into_iter()
        .map(|r| r[0].i())
        .collect())
}

/// The transactions of a settlement.
pub(crate) fn settlement_items_of(
    tx: &mut dyn Tx,
    settlement_id: &str,
) -> Result<Vec<SettlementItemRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT txn_id, settlement_id, fee_minor, net_minor FROM settlement_items \
             WHERE settlement_id = $1 ORDER BY txn_id",
            &[settlement_id.into()],
        )?
        .into_iter()
        .map(|r| SettlementItemRow {
            txn_id: r[0].i(),
            settlement_id: r[1].t(),
            fee_minor: r[2].i(),
            net_minor: r[3].i(),
        })
        .collect())
}

/// The payouts of a settlement.
pub(crate) fn payouts(tx: &mut dyn Tx, settlement_id: &str) -> Result<Vec<PayoutRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT settlement_id, seq, value_date, amount_minor, settlement_account, status \
             FROM payouts WHERE settlement_id = $1 ORDER BY seq",
            &[settlement_id.into()],
        )?
        .into_iter()
        .map(|r| PayoutRow {
            settlement_id: r[0].t(),
            seq: r[1].i(),
            value_date: r[2].t(),
            amount_minor: r[3].i(),
            settlement_account: r[4].t(),
            status: r[5].t(),
        })
        .collect())
}

/// Payouts due on or before a value date and not yet paid.
pub(crate) fn payouts_due(tx: &mut dyn Tx, value_date: &str) -> Result<Vec<PayoutRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT settlement_id, seq, value_date, amount_minor, settlement_account, status \
             FROM payouts WHERE value_date <= $1 AND status = 'instructed' ORDER BY settlement_id, seq",
            &[value_date.into()],
        )?
        .into_iter()
        .map(|r| PayoutRow {
            settlement_id: r[0].t(),
            seq: r[1].i(),
            value_date: r[2].t(),
            amount_minor: r[3].i(),
            settlement_account: r[4].t(),
            status: r[5].t(),
        })
        .collect())
}

/// Terminal batch settlements (of one terminal, or all).
pub(crate) fn batch_settlements(
    tx: &mut dyn Tx,
    terminal: Option<&str>,
) -> Result<Vec<BatchSettlementRow>, StoreError> {
    let cols =
        "terminal_id, batch, at, result, terminal_totals, posguard_totals, uploaded FROM batch_settlements";
    let rows = match terminal {
        Some(t) => tx.query(
            &format!("SELECT {cols} WHERE terminal_id = $1 ORDER BY batch"),
            &[t.into()],
        )?,
        None => tx.query(&format!("SELECT {cols} ORDER BY terminal_id, batch"), &[])?,
    };
    Ok(rows
        .into_iter()
        .map(|r| BatchSettlementRow {
            terminal_id: r[0].t(),
            batch: r[1].i(),
            at: r[2].t(),
            result: r[3].t(),
            terminal_totals: r[4].t(),
            posguard_totals: r[5].t(),
            uploaded: r[6].i(),
        })
        .collect())
}

/// The differences found for a terminal's batch.
pub(crate) fn batch_differences(
    tx: &mut dyn Tx,
    terminal: &str,
    batch: i64,
) -> Result<Vec<BatchDiffRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT terminal_id, batch, stan, side, rrn, kind, amount_minor, detail \
             FROM batch_differences WHERE terminal_id = $1 AND batch = $2 ORDER BY stan, side",
            &[terminal.into(), batch.into()],
        )?
        .into_iter()
        .map(|r| BatchDiffRow {
            terminal_id: r[0].t(),
            batch: r[1].i(),
            stan: r[2].i(),
            side: r[3].t(),
            rrn: r[4].ot(),
            kind: r[5].t(),
            amount_minor: r[6].i(),
            detail: r[7].t(),
        })
        .collect())
}

fn txn_from(r: &[Val]) -> crate::rows::TxnRow {
    crate::rows::TxnRow {
        txn_id: r[0].i(),
        request_key: r[1].t(),
        terminal_id: r[2].t(),
        merchant_id: r[3].t(),
        batch: r[4].i(),
        stan: r[5].i(),
        mti: r[6].t(),
        kind: r[7].t(),
        amount_minor: r[8].i(),
        currency: r[9].t(),
        pan_token: r[10].t(),
        masked_pan: r[11].t(),
        rrn: r[12].t(),
        auth_code: r[13].ot(),
        response_code: r[14].ot(),
        state: r[15].t(),
        original_rrn: r[16].ot(),
        link_stan: r[17].ot().and_then(|s| s.parse().ok()),
        reply_hex: r[18].ot(),
        local_date: r[19].t(),
        created_at: r[20].t(),
        updated_at: r[21].t(),
    }
}

/// Approved money-moving transactions not yet settled, local date on or before `date`.
pub(crate) fn unsettled(
    tx: &mut dyn Tx,
    date: &str,
) -> Result<Vec<crate::rows::TxnRow>, StoreError> {
    let cols = crate::sqlite::TXN_COLUMNS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(tx
        .query(
            &format!(
                "SELECT {cols} FROM transactions t LEFT JOIN settlement_items s ON s.txn_id = t.txn_id \
                 WHERE s.txn_id IS NULL AND t.state = 'approved' \
                 AND t.kind IN ('sale', 'completion', 'refund') AND t.local_date <= $1 \
                 ORDER BY t.txn_id"
            ),
            &[date.into()],
        )?
        .iter()
        .map(|r| txn_from(r))
        .collect())
}

/// Risk decisions that held settlement become hold records (idempotent).
pub(crate) fn materialize_risk_holds(tx: &mut dyn Tx) -> Result<usize, StoreError> {
    tx.exec(
        "INSERT INTO holds (hold_id, subject, reason, placed_by, placed_at, released_by, released_at) \
         SELECT 'risk:' || CAST(txn_id AS TEXT), 'txn:' || CAST(txn_id AS TEXT), \
         'risk review: ' || matched, 'risk rules ' || version, at, NULL, NULL \
         FROM risk_decisions WHERE hold = 1 ON CONFLICT (hold_id) DO NOTHING",
        &[],
    )
}

/// Captured transactions not yet settled.
pub(crate) fn captured_unsettled(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    Ok(tx
        .query(
            "SELECT c.txn_id FROM captures c LEFT JOIN settlement_items s ON s.txn_id = c.txn_id \
             WHERE s.txn_id IS NULL",
            &[],
        )?
        .into_iter()
        .map(|r| r[0].i())
        .collect())
}

/// The ingested file with this hash.
pub(crate) fn recon_file(
    tx: &mut dyn Tx,
    hash: &str,
) -> Result<Option<crate::rows::ReconFileRow>, StoreError> {
    Ok(tx
        .query(
            "SELECT file_hash, file_date, name, lines, bad_lines, ingested_at FROM recon_files \
             WHERE file_hash = $1",
            &[hash.into()],
        )?
        .into_iter()
        .next()
        .map(|r| crate::rows::ReconFileRow {
            file_hash: r[0].t(),
            file_date: r[1].t(),
            name: r[2].t(),
            lines: r[3].i(),
            bad_lines: r[4].i(),
            ingested_at: r[5].t(),
        }))
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
) -> Result<Vec<crate::rows::ReconLineRow>, StoreError> {
    let mut out = Vec::new();
    for d in dates {
        for r in tx.query(
            "SELECT file_hash, line, file_date, valid, problem, rrn, auth_code, stan, terminal, \
             merchant, masked_pan, amount_minor, currency, kind, at FROM recon_lines \
             WHERE file_date = $1 ORDER BY file_hash, line",
            &[d.as_str().into()],
        )? {
            out.push(crate::rows::ReconLineRow {
                file_hash: r[0].t(),
                line: r[1].i(),
                file_date: r[2].t(),
                valid: r[3].i() != 0,
                problem: r[4].t(),
                rrn: r[5].t(),
                auth_code: r[6].t(),
                stan: r[7].t(),
                terminal: r[8].t(),
                merchant: r[9].t(),
                masked_pan: r[10].t(),
                amount_minor: r[11].i(),
                currency: r[12].t(),
                kind: r[13].t(),
                at: r[14].t(),
            });
        }
    }
    Ok(out)
}

/// Findings, all or in one status.
pub(crate) fn findings(
    tx: &mut dyn Tx,
    status: Option<&str>,
) -> Result<Vec<crate::rows::FindingRow>, StoreError> {
    let cols = "finding_id, business_date, class, rrn, txn_id, amount_minor, evidence, action, \
                status, owner, deadline, notes, created_at, updated_at FROM recon_findings";
    let rows = match status {
        Some(s) => tx.query(
            &format!("SELECT {cols} WHERE status = $1 ORDER BY created_at, finding_id"),
            &[s.into()],
        )?,
        None => tx.query(
            &format!("SELECT {cols} ORDER BY created_at, finding_id"),
            &[],
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|r| crate::rows::FindingRow {
            finding_id: r[0].t(),
            business_date: r[1].t(),
            class: r[2].t(),
            rrn: r[3].t(),
            txn_id: match r[4] {
                Val::Null => None,
                ref v => Some(v.i()),
            },
            amount_minor: r[5].i(),
            evidence: r[6].t(),
            action: r[7].t(),
            status: r[8].t(),
            owner: r[9].ot(),
            deadline: r[10].ot(),
            notes: r[11].t(),
            created_at: r[12].t(),
            updated_at: r[13].t(),
        })
        .collect())
}

/// Every captured transaction id.
pub(crate) fn captured_ids(tx: &mut dyn Tx) -> Result<BTreeSet<i64>, StoreError> {
    Ok(tx
        .query("SELECT txn_id FROM captures", &[])?
        .into_iter()
        .map(|r| r[0].i())
        .collect())
}
