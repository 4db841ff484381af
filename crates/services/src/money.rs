//! Money after the approval, over the store: settlement runs, payout confirmation,
//! merchant terms, holds, and "where is my money" for a transaction or a merchant.
//!
//! The computation is the sans-IO `settlement` crate; this module reads what it needs
//! from the store, and writes the run — ledger transfers, settlements, the settlement
//! of each transaction, payout instructions, captures — as one all-or-nothing unit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::accounts::Actor;
use crate::{file_error, Context, Result, ServiceError};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use domain::Currency;
use ledger::{Account, AccountKind, Flow, Limit, Transfer};
use settlement::{accounts, CardTypes, Cycle, Item, ItemKind, Terms};
use store::{
    Backend, CaptureRow, HoldRow, PayoutRow, SettlementItemRow, SettlementRow, SettlementRunRow,
    TermsRow, TxnRow, TxnState, Write,
};

/// How posguard settles.
#[derive(Debug, Clone)]
pub struct MoneyConfig {
    /// Daily cut-off in the acquirer's zone.
    pub cutoff: NaiveTime,
    /// The acquirer's zone (Asia/Shanghai: UTC+8, no daylight saving).
    pub utc_offset_secs: i32,
    /// Where settlement and payout files go.
    pub out_dir: PathBuf,
    /// Debit or credit, by BIN.
    pub card_types: CardTypes,
    /// The settlement currency.
    pub currency: Currency,
}

impl Default for MoneyConfig {
    fn default() -> MoneyConfig {
        MoneyConfig {
            cutoff: NaiveTime::from_hms_opt(23, 0, 0).unwrap_or_default(),
            utc_offset_secs: 8 * 3600,
            out_dir: PathBuf::from("."),
            card_types: CardTypes::default(),
            currency: Currency::CNY,
        }
    }
}

impl MoneyConfig {
    /// The business date of a transaction created at `created_at` (RFC 3339).
    pub fn business_date(&self, created_at: &str) -> Option<NaiveDate> {
        let off = FixedOffset::east_opt(self.utc_offset_secs)?;
        let t = DateTime::parse_from_rfc3339(created_at).ok()?;
        Some(settlement::business_date(
            t.with_timezone(&off).naive_local(),
            self.cutoff,
        ))
    }
}

/// Formats minor units as `1234.56` (two-decimal currencies).
pub fn major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

/// One held transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldItem {
    /// The transaction.
    pub txn_id: i64,
    /// Its RRN.
    pub rrn: String,
    /// The merchant.
    pub merchant_id: String,
    /// Amount.
    pub amount_minor: i64,
    /// Why, by whom, since when.
    pub hold: HoldReason,
}

/// Why something is held, who placed the hold, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldReason {
    /// The reason.
    pub reason: String,
    /// Who placed it.
    pub by: String,
    /// Since (RFC 3339), if known.
    pub since: Option<String>,
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (by {}", self.reason, self.by)?;
        if let Some(since) = &self.since {
            write!(f, ", since {since}")?;
        }
        f.write_str(")")
    }
}

/// What a settlement run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleReport {
    /// The business date.
    pub date: NaiveDate,
    /// The date had been settled before: nothing changed.
    pub already_done: bool,
    /// Per-merchant settlements.
    pub settlements: Vec<SettlementRow>,
    /// Payout instructions.
    pub payouts: Vec<PayoutRow>,
    /// Held transactions (not paid).
    pub held: Vec<HeldItem>,
    /// Transactions captured at the cut-off (their terminal never settled its batch).
    pub captured_at_cutoff: usize,
    /// The settlement file.
    pub file: PathBuf,
}

impl SettleReport {
    /// Sum of a column over merchants.
    pub fn total(&self, f: impl Fn(&SettlementRow) -> i64) -> i64 {
        self.settlements.iter().map(f).sum()
    }

    /// Held transactions by reason: (count, amount).
    pub fn held_by_reason(&self) -> BTreeMap<&str, (usize, i64)> {
        let mut reasons: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
        for h in &self.held {
            let e = reasons.entry(h.hold.reason.as_str()).or_default();
            e.0 += 1;
            e.1 += h.amount_minor;
        }
        reasons
    }
}

impl fmt::Display for SettleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "settlement {}{}",
            self.date,
            if self.already_done {
                " (already settled: nothing changed)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  {:<16} {:>12} {:>10} {:>10} {:>10} {:>12} {:>6}",
            "merchant", "gross", "refunds", "fees", "held", "net", "txns"
        )?;
        for s in &self.settlements {
            writeln!(
                f,
                "  {:<16} {:>12} {:>10} {:>10} {:>10} {:>12} {:>6}",
                s.merchant_id,
                major(s.gross_minor),
                major(s.refunds_minor),
                major(s.fees_minor),
                major(s.held_minor),
                major(s.net_minor),
                s.txn_count
            )?;
        }
        writeln!(
            f,
            "  {:<16} {:>12} {:>10} {:>10} {:>10} {:>12} {:>6}",
            "total",
            major(self.total(|s| s.gross_minor)),
            major(self.total(|s| s.refunds_minor)),
            major(self.total(|s| s.fees_minor)),
            major(self.total(|s| s.held_minor)),
            major(self.total(|s| s.net_minor)),
            self.total(|s| s.txn_count)
        )?;
        for p in &self.payouts {
            writeln!(
                f,
                "  payout {} → {} {} value {} ({})",
                p.settlement_id,
                p.settlement_account,
                major(p.amount_minor),
                p.value_date,
                p.status
            )?;
        }
        for (reason, (n, amount)) in self.held_by_reason() {
            writeln!(f, "  held {n} txn(s), {}: {reason}", major(amount))?;
        }
        if self.captured_at_cutoff > 0 {
            writeln!(
                f,
                "  {} txn(s) captured at the cut-off (terminal batch never settled)",
                self.captured_at_cutoff
            )?;
        }
        writeln!(f, "  file {}", self.file.display())
    }
}

/// The ledger accounts every run uses.
fn house_accounts(currency: Currency) -> Vec<Account> {
    [
        (accounts::ISSUERS, AccountKind::IssuerReceivable),
        (accounts::FEES, AccountKind::FeeIncome),
        (accounts::IN_TRANSIT, AccountKind::SettlementInTransit),
        (accounts::BANK, AccountKind::SettlementBank),
    ]
    .into_iter()
    .map(|(id, kind)| Account::new(id, kind, currency, Limit::None))
    .collect()
}

/// A merchant's terms from its stored row.
pub fn terms_from(row: &TermsRow) -> Result<Terms> {
    Ok(Terms {
        settlement_account: row.settlement_account.clone(),
        cycle: Cycle::parse(&row.cycle).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "merchant {}: bad cycle {:?}",
                row.merchant_id, row.cycle
            ))
        })?,
        debit_bps: row.debit_bps,
        credit_bps: row.credit_bps,
        debit_cap_minor: row.debit_cap_minor,
        min_fee_minor: row.min_fee_minor,
        reserve_bps: row.reserve_bps,
        reserve_days: row.reserve_days,
    })
}

/// What holds what: merchants held (by a hold or by their status) and transactions
/// held.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    merchants: BTreeMap<String, HoldReason>,
    txns: BTreeMap<i64, HoldReason>,
}

impl Holds {
    /// The holds in force.
    pub fn load(db: &mut dyn Backend) -> Result<Holds> {
        let mut holds = Holds::default();
        for m in db.merchants()? {
            if m.status != "active" {
                holds.merchants.insert(
                    m.merchant_id.clone(),
                    HoldReason {
                        reason: format!("merchant {}", m.status),
                        by: "merchant status".into(),
                        since: None,
                    },
                );
            }
        }
        for h in db.holds(true)? {
            let reason = HoldReason {
                reason: h.reason,
                by: h.placed_by,
                since: Some(h.placed_at),
            };
            if let Some(m) = h.subject.strip_prefix("merchant:") {
                holds.merchants.entry(m.to_owned()).or_insert(reason);
            } else if let Some(id) = h.subject.strip_prefix("txn:").and_then(|s| s.parse().ok()) {
                holds.txns.entry(id).or_insert(reason);
            }
        }
        Ok(holds)
    }

    /// Why a transaction of a merchant is held: its merchant's hold first, then its own.
    pub fn reason(&self, merchant: &str, txn_id: i64) -> Option<&HoldReason> {
        self.merchants
            .get(merchant)
            .or_else(|| self.txns.get(&txn_id))
    }
}

fn item_kind(kind: store::TxnKind) -> Option<ItemKind> {
    match kind {
        store::TxnKind::Sale => Some(ItemKind::Sale),
        store::TxnKind::Completion => Some(ItemKind::Completion),
        store::TxnKind::Refund => Some(ItemKind::Refund),
        _ => None,
    }
}

/// Settles a business date: idempotent (a date settles once; running it again changes
/// nothing and rewrites the same file).
pub fn settle_date(
    db: &mut dyn Backend,
    date: NaiveDate,
    cfg: &MoneyConfig,
    actor: &Actor,
    at: &str,
) -> Result<SettleReport> {
    let d = date.to_string();
    let file = cfg.out_dir.join(format!("settlement-{d}.csv"));
    if db.settlement_run(&d)?.is_some() {
        let settlements = db.settlements(Some(&d), None)?;
        let mut payouts = Vec::new();
        for s in &settlements {
            payouts.extend(db.payouts(&s.settlement_id)?);
        }
        write_files(&cfg.out_dir, &d, &settlements, &payouts)?;
        return Ok(SettleReport {
            date,
            already_done: true,
            settlements,
            payouts,
            held: Vec::new(),
            captured_at_cutoff: 0,
            file,
        });
    }
    // Merchants whose periodic re-review is overdue past its grace are held first.
    crate::onboarding::enforce_rereviews(db, date, actor, at)?;
    let holds = Holds::load(db)?;
    // A merchant's own terms; without them, the plan of its MCC class.
    let mut terms = BTreeMap::new();
    for m in db.merchants()? {
        terms.insert(
            m.merchant_id.clone(),
            settlement::MccClass::of(&m.mcc).plan(),
        );
    }
    for row in db.terms()? {
        terms.insert(row.merchant_id.clone(), terms_from(&row)?);
    }
    let currency_code = format!("{:03}", cfg.currency.numeric());
    let mut items = Vec::new();
    let mut rows: BTreeMap<i64, TxnRow> = BTreeMap::new();
    for row in db.unsettled(&d)? {
        let (Some(kind), Some(bd)) = (item_kind(row.kind), cfg.business_date(&row.created_at))
        else {
            continue;
        };
        if bd > date {
            continue;
        }
        if row.currency != currency_code {
            tracing::warn!(txn = row.txn_id, currency = %row.currency, "not in the settlement currency; left for an operator");
            continue;
        }
        items.push(Item {
            txn_id: row.txn_id,
            rrn: row.rrn.clone(),
            merchant_id: row.merchant_id.clone(),
            kind,
            amount_minor: row.amount_minor,
            currency: cfg.currency,
            card: cfg.card_types.of(&row.masked_pan),
            business_date: bd,
            hold: holds.txns.get(&row.txn_id).map(ToString::to_string),
        });
        rows.insert(row.txn_id, row);
    }
    let opening: BTreeMap<String, i64> = db
        .ledger_accounts()?
        .into_iter()
        .filter_map(|a| {
            a.id.strip_prefix("merchant_payable:")
                .map(|m| (m.to_owned(), a.balance()))
        })
        .collect();
    let held_merchants: BTreeMap<String, String> = holds
        .merchants
        .iter()
        .map(|(m, why)| (m.clone(), why.to_string()))
        .collect();
    let calendar = crate::reference::calendar(db)?;
    let run =
        settlement::settle_carrying(date, &items, &terms, &held_merchants, &opening, &calendar);

    let mut writes = Vec::new();
    let mut captured_at_cutoff = 0;
    let captured = db.captured_unsettled()?;
    for it in &items {
        if !captured.contains(&it.txn_id) {
            captured_at_cutoff += 1;
            writes.push(Write::Capture(CaptureRow {
                txn_id: it.txn_id,
                how: "cutoff".into(),
                business_date: it.business_date.to_string(),
                at: at.into(),
            }));
        }
    }
    let mut settlements = Vec::new();
    let mut payouts = Vec::new();
    for s in &run.settlements {
        let row = SettlementRow {
            settlement_id: s.settlement_id.clone(),
            merchant_id: s.merchant_id.clone(),
            business_date: d.clone(),
            settlement_account: s.settlement_account.clone(),
            gross_minor: s.gross_minor,
            refunds_minor: s.refunds_minor,
            fees_minor: s.fees_minor,
            held_minor: s.held_minor,
            net_minor: s.net_minor,
            txn_count: s.count as i64,
            created_at: at.into(),
        };
        writes.push(Write::Settlement(row.clone()));
        settlements.push(row);
        for (seq, (value_date, amount)) in s.payouts.iter().enumerate() {
            let p = PayoutRow {
                settlement_id: s.settlement_id.clone(),
                seq: seq as i64,
                value_date: value_date.to_string(),
                amount_minor: *amount,
                settlement_account: s.settlement_account.clone(),
                status: "instructed".into(),
            };
            writes.push(Write::Payout(p.clone()));
            payouts.push(p);
        }
    }
    let mut held = Vec::new();
    for o in &run.items {
        match (&o.settlement_id, &o.held) {
            (Some(sid), _) => writes.push(Write::SettlementItem(SettlementItemRow {
                txn_id: o.txn_id,
                settlement_id: sid.clone(),
                fee_minor: o.fee_minor,
                net_minor: o.net_minor,
            })),
            (None, Some(_)) => {
                let held_as = rows
                    .get(&o.txn_id)
                    .and_then(|r| Some((r, holds.reason(&r.merchant_id, r.txn_id)?)));
                if let Some((r, why)) = held_as {
                    held.push(HeldItem {
                        txn_id: o.txn_id,
                        rrn: r.rrn.clone(),
                        merchant_id: r.merchant_id.clone(),
                        amount_minor: r.amount_minor,
                        hold: why.clone(),
                    });
                }
            }
            (None, None) => {}
        }
    }
    let run_row = SettlementRunRow {
        business_date: d.clone(),
        ran_at: at.into(),
        merchants: settlements.len() as i64,
        items: run
            .items
            .iter()
            .filter(|o| o.settlement_id.is_some())
            .count() as i64,
        net_minor: settlements.iter().map(|s| s.net_minor).sum(),
        file: file.display().to_string(),
    };
    writes.push(actor.audit(
        at,
        "settlement.run",
        &format!("settlement_run:{d}"),
        serde_json::Value::Null,
        settlement_run_json(&run_row),
    ));
    writes.push(Write::SettlementRun(run_row));
    let mut open = house_accounts(cfg.currency);
    let merchants: BTreeSet<&str> = run
        .settlements
        .iter()
        .map(|s| s.merchant_id.as_str())
        .collect();
    for m in merchants {
        open.push(Account::new(
            &accounts::payable(m),
            AccountKind::MerchantPayable,
            cfg.currency,
            Limit::None,
        ));
    }
    db.ledger_apply(&open, &run.transfers, &writes, at)
        .ctx(format!("settle {d}"))?;
    write_files(&cfg.out_dir, &d, &settlements, &payouts)?;
    Ok(SettleReport {
        date,
        already_done: false,
        settlements,
        payouts,
        held,
        captured_at_cutoff,
        file,
    })
}

/// Writes `settlement-D.csv` and `payouts-D.csv`.
fn write_files(
    dir: &Path,
    date: &str,
    settlements: &[SettlementRow],
    payouts: &[PayoutRow],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    for (name, bytes) in settlement_files(date, settlements, payouts)? {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| file_error(&path, e))?;
    }
    Ok(())
}

/// A settlement run's two files, `settlement-D.csv` (one line a merchant) and
/// `payouts-D.csv` (the bank transfer instructions), as (name, content).
pub fn settlement_files(
    date: &str,
    settlements: &[SettlementRow],
    payouts: &[PayoutRow],
) -> Result<[(String, Vec<u8>); 2]> {
    let rows = settlements.iter().map(|s| {
        vec![
            s.business_date.clone(),
            s.settlement_id.clone(),
            s.merchant_id.clone(),
            s.settlement_account.clone(),
            major(s.gross_minor),
            major(s.fees_minor),
            major(s.refunds_minor),
            major(s.held_minor),
            major(s.net_minor),
            s.txn_count.to_string(),
        ]
    });
    let header = [
        "business_date",
        "settlement_id",
        "merchant_id",
        "settlement_account",
        "gross",
        "fees",
        "refunds",
        "held",
        "net",
        "transactions",
    ];
    let settlement = csv_bytes(&header, rows)?;
    let rows = payouts.iter().map(|p| {
        vec![
            p.settlement_id.clone(),
            p.seq.to_string(),
            p.settlement_account.clone(),
            p.value_date.clone(),
            major(p.amount_minor),
        ]
    });
    let header = [
        "settlement_id",
        "seq",
        "settlement_account",
        "value_date",
        "amount",
    ];
    let payouts = csv_bytes(&header, rows)?;
    Ok([
        (format!("settlement-{date}.csv"), settlement),
        (format!("payouts-{date}.csv"), payouts),
    ])
}

fn csv_bytes(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Result<Vec<u8>> {
    let fail = |e: csv::Error| ServiceError::Invalid(format!("settlement file: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(fail)?;
    for r in rows {
        w.write_record(&r).map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| ServiceError::Invalid(format!("settlement file: {}", e.error())))
}

/// Confirms every instructed payout with a value date on or before `value_date` as
/// paid (the bank executed the transfer file): the money leaves posguard's settlement
/// bank account. Idempotent. Returns (payouts, amount).
pub fn confirm_payouts(
    db: &mut dyn Backend,
    value_date: NaiveDate,
    currency: Currency,
    actor: &Actor,
    at: &str,
) -> Result<(usize, i64)> {
    let due = db.payouts_due(&value_date.to_string())?;
    let mut transfers = Vec::new();
    let mut writes = Vec::new();
    let mut total = 0;
    for p in &due {
        transfers.push(Transfer {
            id: format!("paid:{}:{}", p.settlement_id, p.seq),
            debit: accounts::IN_TRANSIT.into(),
            credit: accounts::BANK.into(),
            amount: p.amount_minor,
            flow: Flow::Posted,
            code: "paid".into(),
            linked: false,
        });
        let mut paid = p.clone();
        paid.status = "paid".into();
        writes.push(actor.audit(
            at,
            "payout.confirm",
            &format!("payout:{}:{}", p.settlement_id, p.seq),
            payout_json(p),
            payout_json(&paid),
        ));
        writes.push(Write::Payout(paid));
        total += p.amount_minor;
    }
    db.ledger_apply(&house_accounts(currency), &transfers, &writes, at)?;
    Ok((due.len(), total))
}

/// A settlement run as the audit trail and the API show it.
pub fn settlement_run_json(r: &SettlementRunRow) -> serde_json::Value {
    serde_json::json!({
        "business_date": r.business_date,
        "ran_at": r.ran_at,
        "merchants": r.merchants,
        "items": r.items,
        "net_minor": r.net_minor,
    })
}

/// A merchant settlement as the API shows it.
pub fn settlement_json(s: &SettlementRow) -> serde_json::Value {
    serde_json::json!({
        "settlement_id": s.settlement_id,
        "merchant_id": s.merchant_id,
        "business_date": s.business_date,
        "settlement_account": s.settlement_account,
        "gross_minor": s.gross_minor,
        "refunds_minor": s.refunds_minor,
        "fees_minor": s.fees_minor,
        "held_minor": s.held_minor,
        "net_minor": s.net_minor,
        "txn_count": s.txn_count,
        "created_at": s.created_at,
    })
}

/// A payout instruction as the audit trail and the API show it.
pub fn payout_json(p: &PayoutRow) -> serde_json::Value {
    serde_json::json!({
        "settlement_id": p.settlement_id,
        "seq": p.seq,
        "value_date": p.value_date,
        "amount_minor": p.amount_minor,
        "settlement_account": p.settlement_account,
        "status": p.status,
    })
}

/// A hold as the audit trail and the API show it.
pub fn hold_json(h: &HoldRow) -> serde_json::Value {
    serde_json::json!({
        "hold_id": h.hold_id,
        "subject": h.subject,
        "reason": h.reason,
        "placed_by": h.placed_by,
        "placed_at": h.placed_at,
        "released_by": h.released_by,
        "released_at": h.released_at,
    })
}

/// Places a hold on a merchant (`merchant:<id>`) or a transaction (`txn:<id>`); `by` is
/// the person it is recorded for, `actor` who made the change (the audit record).
pub fn place_hold(
    db: &mut dyn Backend,
    subject: &str,
    reason: &str,
    by: &str,
    actor: &Actor,
    at: &str,
) -> Result<String> {
    if !(subject.starts_with("merchant:") || subject.starts_with("txn:")) {
        return Err(ServiceError::BadInput(format!(
            "hold subject must be merchant:<id> or txn:<id>, got {subject:?}"
        )));
    }
    crate::text("a hold's reason", reason, 500)?;
    let n = db
        .holds(false)?
        .iter()
        .filter(|h| h.hold_id.starts_with("manual:"))
        .count();
    let id = format!("manual:{}", n + 1);
    let row = HoldRow {
        hold_id: id.clone(),
        subject: subject.into(),
        reason: reason.into(),
        placed_by: by.into(),
        placed_at: at.into(),
        released_by: None,
        released_at: None,
    };
    db.apply(&[
        Write::Hold(row.clone()),
        actor.audit(
            at,
            "hold.place",
            &format!("hold:{id}"),
            serde_json::Value::Null,
            hold_json(&row),
        ),
    ])?;
    Ok(id)
}

/// Releases a hold: what it held settles in the next run. Releasing a released hold
/// changes nothing and records nothing.
pub fn release_hold(
    db: &mut dyn Backend,
    hold_id: &str,
    by: &str,
    actor: &Actor,
    at: &str,
) -> Result<()> {
    let Some(before) = db.holds(false)?.into_iter().find(|h| h.hold_id == hold_id) else {
        return Err(ServiceError::NotFound(format!("no hold {hold_id}")));
    };
    if before.released_at.is_some() {
        return Ok(());
    }
    let after = HoldRow {
        released_by: Some(by.into()),
        released_at: Some(at.into()),
        ..before.clone()
    };
    db.apply(&[
        Write::Hold(after.clone()),
        actor.audit(
            at,
            "hold.release",
            &format!("hold:{hold_id}"),
            hold_json(&before),
            hold_json(&after),
        ),
    ])?;
    Ok(())
}

/// Where a transaction's money is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMoney {
    /// The transaction.
    pub txn: TxnRow,
    /// Its business date.
    pub business_date: Option<NaiveDate>,
    /// The money status, one word: `authorized`, `captured`, `settled`, `paid_out`,
    /// `held`, `voided`, `reversed`, `declined`, `no_money_moved`, `refund_*`.
    pub status: String,
    /// The story, one line per step.
    pub lines: Vec<String>,
}

impl fmt::Display for TxnMoney {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.txn;
        writeln!(
            f,
            "txn {} rrn {} {} {} merchant {} terminal {} card {}",
            t.txn_id,
            t.rrn,
            t.kind,
            major(t.amount_minor),
            t.merchant_id,
            t.terminal_id,
            t.masked_pan
        )?;
        writeln!(f, "money: {}", self.status)?;
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

fn expected_payout(
    cycle: Cycle,
    bd: NaiveDate,
    calendar: &merchants::calendar::WorkCalendar,
) -> NaiveDate {
    match cycle {
        Cycle::D0 { .. } => bd,
        Cycle::T1 => calendar.add_working_days(bd, 1),
    }
}

/// Explains where a transaction's money is.
pub fn txn_money(db: &mut dyn Backend, rrn: &str, cfg: &MoneyConfig) -> Result<TxnMoney> {
    let Some(txn) = db.transaction_by_rrn(rrn)? else {
        return Err(ServiceError::NotFound(format!(
            "no transaction with RRN {rrn}"
        )));
    };
    money_of(db, txn, cfg)
}

/// Where the money of a transaction already read is.
pub fn money_of(db: &mut dyn Backend, txn: TxnRow, cfg: &MoneyConfig) -> Result<TxnMoney> {
    let bd = cfg.business_date(&txn.created_at);
    let mut lines = vec![format!(
        "journal state {} (response {}), created {}, business date {}",
        txn.state,
        txn.response_code.as_deref().unwrap_or("-"),
        txn.created_at,
        bd.map_or("?".into(), |d| d.to_string())
    )];
    let moves_money = item_kind(txn.kind).is_some();
    let status = match txn.state {
        TxnState::Approved if moves_money => {
            let refund = txn.kind == store::TxnKind::Refund;
            lines.push(format!(
                "authorized: {} {}",
                if refund {
                    "refund to the cardholder of"
                } else {
                    "cardholder debited"
                },
                major(txn.amount_minor)
            ));
            money_after_approval(db, &txn, bd, cfg, &mut lines)?
        }
        TxnState::Approved if txn.kind == store::TxnKind::PreAuth => {
            lines.push("pre-authorization: the issuer holds the cardholder's funds; the merchant is paid for the completion, not for this".into());
            "no_money_moved".into()
        }
        TxnState::Approved => {
            lines.push(format!("{}: no merchant money moves", txn.kind));
            "no_money_moved".into()
        }
        TxnState::Voided if txn.kind == store::TxnKind::PreAuth => {
            lines.push("pre-authorization cancelled or completed: its hold on the cardholder's funds is gone; the merchant money moves with the completion, if any".into());
            "voided".into()
        }
        TxnState::Voided => {
            lines.push(
                "voided before capture: the cardholder's debit was cancelled; nothing settles"
                    .into(),
            );
            "voided".into()
        }
        TxnState::Reversed => {
            lines.push(
                "reversed at the issuer: the cardholder is not debited; nothing settles".into(),
            );
            "reversed".into()
        }
        TxnState::ReversalPending => {
            lines.push(
                "reversal on its way to the issuer (store and forward); nothing settles".into(),
            );
            "reversing".into()
        }
        TxnState::Declined | TxnState::Rejected => {
            lines.push("declined: no money moved".into());
            "declined".into()
        }
        other => {
            lines.push(format!("{other}: no approval, nothing settles"));
            "no_money_moved".into()
        }
    };
    Ok(TxnMoney {
        txn,
        business_date: bd,
        status,
        lines,
    })
}

fn money_after_approval(
    db: &mut dyn Backend,
    txn: &TxnRow,
    bd: Option<NaiveDate>,
    cfg: &MoneyConfig,
    lines: &mut Vec<String>,
) -> Result<String> {
    let capture = db.capture(txn.txn_id)?;
    match &capture {
        Some(c) => lines.push(format!(
            "captured: {} on business date {} ({})",
            if c.how == "batch" {
                "terminal batch settled"
            } else {
                "at the cut-off, the terminal never settled its batch"
            },
            c.business_date,
            c.at
        )),
        None => lines.push(format!(
            "not captured yet: captured when the terminal settles its batch, or at the {} cut-off",
            cfg.cutoff.format("%H:%M")
        )),
    }
    if let Some(item) = db.settlement_item(txn.txn_id)? {
        let s = db.settlement(&item.settlement_id)?;
        lines.push(format!(
            "cleared and settled in {} (business date {}): fee {}, {} {}",
            item.settlement_id,
            s.as_ref().map_or("?", |s| s.business_date.as_str()),
            major(item.fee_minor),
            if item.net_minor < 0 {
                "debited from the merchant"
            } else {
                "credited to the merchant"
            },
            major(item.net_minor.abs())
        ));
        let payouts = db.payouts(&item.settlement_id)?;
        if payouts.is_empty() {
            lines.push(
                "no payout: the settlement's net was not positive (carried to the next payout)"
                    .into(),
            );
            return Ok("settled".into());
        }
        let mut all_paid = true;
        for p in &payouts {
            all_paid &= p.status == "paid";
            lines.push(format!(
                "payout {} to {}: {} value date {} — {}",
                p.seq,
                p.settlement_account,
                major(p.amount_minor),
                p.value_date,
                if p.status == "paid" {
                    "paid out"
                } else {
                    "instructed, not yet confirmed paid"
                }
            ));
        }
        return Ok(if all_paid { "paid_out" } else { "settled" }.into());
    }
    let holds = Holds::load(db)?;
    if let Some(reason) = holds.reason(&txn.merchant_id, txn.txn_id) {
        lines.push(format!(
            "held: {reason}; settles in the first run after the hold is released"
        ));
        return Ok("held".into());
    }
    if let Some(bd) = bd {
        let terms = db.terms_of(&txn.merchant_id)?;
        let cycle = match &terms {
            Some(t) => terms_from(t)?.cycle,
            None => Cycle::T1,
        };
        lines.push(format!(
            "expected: settled in the run for {bd}, paid out on {}",
            expected_payout(cycle, bd, &crate::reference::calendar(db)?)
        ));
    }
    Ok(match capture {
        Some(_) => "captured",
        None => "authorized",
    }
    .into())
}

/// A merchant's statement for a business date.
pub fn statement(
    db: &mut dyn Backend,
    merchant: &str,
    date: NaiveDate,
    cfg: &MoneyConfig,
) -> Result<String> {
    use std::fmt::Write as _;
    let d = date.to_string();
    let mut out = String::new();
    let Some(m) = db.merchant(merchant)? else {
        return Err(ServiceError::NotFound(format!("no merchant {merchant}")));
    };
    writeln!(
        out,
        "statement {} {} ({}) business date {d}",
        m.merchant_id, m.name, m.status
    )?;
    match db.settlements(Some(&d), Some(merchant))?.into_iter().next() {
        Some(s) => {
            writeln!(
                out,
                "  settlement {}: gross {} refunds {} fees {} held {} net {} ({} txns) to {}",
                s.settlement_id,
                major(s.gross_minor),
                major(s.refunds_minor),
                major(s.fees_minor),
                major(s.held_minor),
                major(s.net_minor),
                s.txn_count,
                s.settlement_account
            )?;
            for p in db.payouts(&s.settlement_id)? {
                writeln!(
                    out,
                    "  payout {} value {} {}",
                    major(p.amount_minor),
                    p.value_date,
                    p.status
                )?;
            }
            // Both in transaction id order.
            let items = db.settlement_items_of(&s.settlement_id)?;
            let txns = db.settled_transactions(&s.settlement_id)?;
            for (i, t) in items.iter().zip(&txns) {
                writeln!(
                    out,
                    "    {} {:<10} {:>10} fee {:>8} net {:>10}",
                    t.rrn,
                    t.kind,
                    major(t.amount_minor),
                    major(i.fee_minor),
                    major(i.net_minor)
                )?;
            }
        }
        None => writeln!(
            out,
            "  not settled for {d} (no run yet, or nothing to settle)"
        )?,
    }
    let holds = Holds::load(db)?;
    let mut waiting = 0;
    for t in db.unsettled(&d)? {
        if t.merchant_id != merchant {
            continue;
        }
        let why = holds
            .reason(merchant, t.txn_id)
            .map(ToString::to_string)
            .unwrap_or_else(|| {
                format!(
                    "waiting for the run of {}",
                    cfg.business_date(&t.created_at)
                        .map_or("?".into(), |d| d.to_string())
                )
            });
        waiting += 1;
        writeln!(
            out,
            "  unsettled {} {:<10} {:>10}: {why}",
            t.rrn,
            t.kind,
            major(t.amount_minor)
        )?;
    }
    if waiting == 0 {
        writeln!(out, "  nothing waiting")?;
    }
    Ok(out)
}

/// A merchant's terms as the audit trail shows them.
pub fn terms_json(t: &TermsRow) -> serde_json::Value {
    serde_json::json!({
        "merchant_id": t.merchant_id,
        "settlement_account": t.settlement_account,
        "cycle": t.cycle,
        "debit_bps": t.debit_bps,
        "credit_bps": t.credit_bps,
        "debit_cap_minor": t.debit_cap_minor,
        "min_fee_minor": t.min_fee_minor,
        "txn_limit_minor": t.txn_limit_minor,
        "day_limit_minor": t.day_limit_minor,
        "reserve_bps": t.reserve_bps,
        "reserve_days": t.reserve_days,
    })
}

/// Sets a merchant's pricing and settlement terms (audited with the terms before).
pub fn set_terms(db: &mut dyn Backend, terms: TermsRow, actor: &Actor, at: &str) -> Result<()> {
    if settlement::Cycle::parse(&terms.cycle).is_none() {
        return Err(ServiceError::BadInput(format!(
            "cycle must be T+1 or D+0:<limit>, got {:?}",
            terms.cycle
        )));
    }
    if !(0..=10_000).contains(&terms.debit_bps) || !(0..=10_000).contains(&terms.credit_bps) {
        return Err(ServiceError::BadInput(
            "rates are basis points, 0..=10000".into(),
        ));
    }
    crate::text("a settlement account", &terms.settlement_account, 64)?;
    if terms.txn_limit_minor < 0 || terms.day_limit_minor < 0 {
        return Err(ServiceError::BadInput(
            "limits are 0 (none) or more minor units".into(),
        ));
    }
    if !(0..=10_000).contains(&terms.reserve_bps) || !(0..=366).contains(&terms.reserve_days) {
        return Err(ServiceError::BadInput(
            "a reserve is 0..=10000 basis points kept 0..=366 days".into(),
        ));
    }
    let Some(merchant) = db.merchant(&terms.merchant_id)? else {
        return Err(ServiceError::NotFound(format!(
            "no merchant {}",
            terms.merchant_id
        )));
    };
    // Same-day settlement is credit the acquirer extends: not to a high-risk merchant.
    if merchant.risk_class == "high" && terms.cycle.starts_with("D+0") {
        return Err(ServiceError::BadInput(format!(
            "merchant {} is rated high risk: it settles T+1 (D+0 needs a low or medium rating)",
            terms.merchant_id
        )));
    }
    let before = db
        .terms_of(&terms.merchant_id)?
        .map_or(serde_json::Value::Null, |t| terms_json(&t));
    let terms = TermsRow {
        debit_cap_minor: terms.debit_cap_minor.max(0),
        min_fee_minor: terms.min_fee_minor.max(0),
        updated_at: at.into(),
        ..terms
    };
    let object = format!("terms:{}", terms.merchant_id);
    let after = terms_json(&terms);
    db.apply(&[
        Write::Terms(terms),
        actor.audit(at, "terms.set", &object, before, after),
    ])
    .ctx("write terms")
}
