//! posguard's clearing and settlement, sans IO.
//!
//! A transaction belongs to the business date whose cut-off (default 23:00 in the
//! acquirer's zone) it precedes. A settlement run for a date takes every captured item
//! of that date or earlier not yet settled: sales and completions credit the merchant,
//! refunds debit it, merchant discount fees (basis points, with a minimum and a cap,
//! by card type) are charged; held items and held merchants wait, with their reason.
//! The run produces per-merchant settlements (gross, refunds, fees, held, net), the
//! ledger transfers that move the money — with ids derived from the transactions and
//! the settlement, so running the same date again changes nothing — and the value date
//! of each payout (T+1, or D+0 up to a daily limit).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use domain::Currency;
use ledger::{Flow, Transfer};

/// The business date of a local timestamp: transactions after the cut-off belong to
/// the next day.
pub fn business_date(local: NaiveDateTime, cutoff: NaiveTime) -> NaiveDate {
    if local.time() >= cutoff {
        local.date() + Duration::days(1)
    } else {
        local.date()
    }
}

/// The next working day on China's calendar as shipped (public holidays off, make-up
/// working days on: `merchants::calendar`, loaded per year; a year not loaded skips
/// weekends). The services count on the store's calendar, which an administrator's
/// loaded years complete ([`settle_carrying`] takes it).
pub fn next_working_day(d: NaiveDate) -> NaiveDate {
    calendar().add_working_days(d, 1)
}

/// The working-day calendar as shipped.
pub fn calendar() -> &'static merchants::calendar::WorkCalendar {
    static CALENDAR: std::sync::OnceLock<merchants::calendar::WorkCalendar> =
        std::sync::OnceLock::new();
    CALENDAR.get_or_init(merchants::calendar::WorkCalendar::china)
}

/// How fast a merchant is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The next working day after the business date.
    T1,
    /// The same day, up to a daily amount; the rest the next working day.
    D0 {
        /// Most paid the same day (minor units).
        daily_limit_minor: i64,
    },
}

impl Cycle {
    /// Reads `T+1` or `D+0:<limit>`.
    pub fn parse(s: &str) -> Option<Cycle> {
        if s == "T+1" {
            return Some(Cycle::T1);
        }
        let limit = s.strip_prefix("D+0:")?.parse().ok()?;
        Some(Cycle::D0 {
            daily_limit_minor: limit,
        })
    }

    /// The text form.
    pub fn name(&self) -> String {
        match self {
            Cycle::T1 => "T+1".into(),
            Cycle::D0 { daily_limit_minor } => format!("D+0:{daily_limit_minor}"),
        }
    }
}

/// A merchant's pricing and settlement terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Where its money goes (bank account).
    pub settlement_account: String,
    /// Settlement cycle.
    pub cycle: Cycle,
    /// Merchant discount rate on debit cards, basis points.
    pub debit_bps: i64,
    /// Merchant discount rate on credit cards, basis points.
    pub credit_bps: i64,
    /// Fee cap per transaction on debit cards (minor units; 0 = none).
    pub debit_cap_minor: i64,
    /// Minimum fee per transaction (minor units).
    pub min_fee_minor: i64,
    /// A rolling reserve: this share of each payable run (basis points) is paid
    /// `reserve_days` later instead (0: none). High-risk merchants carry one.
    pub reserve_bps: i64,
    /// Days a reserve is kept before it is paid (the next working day after).
    pub reserve_days: i64,
}

impl Default for Terms {
    fn default() -> Terms {
        // Common Chinese acquiring pricing: 0.5% debit capped at 20.00 CNY, 0.6% credit.
        Terms {
            settlement_account: String::new(),
            cycle: Cycle::T1,
            debit_bps: 50,
            credit_bps: 60,
            debit_cap_minor: 2_000,
            min_fee_minor: 1,
            reserve_bps: 0,
            reserve_days: 0,
        }
    }
}

/// The merchant category classes priced differently (when a merchant has no terms of
/// its own, its MCC picks the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MccClass {
    /// Everyday necessities: supermarkets, groceries, utilities, fuel, transport.
    Necessities,
    /// Public welfare: hospitals, schools, charities, government services (no fee).
    PublicWelfare,
    /// Everything else.
    Standard,
}

impl MccClass {
    /// The class of a merchant category code.
    pub fn of(mcc: &str) -> MccClass {
        match mcc {
            "5411" | "5422" | "5441" | "5451" | "5462" | "5499" | "4900" | "5541" | "5542"
            | "4111" | "4121" | "4131" => MccClass::Necessities,
            "8062" | "8211" | "8220" | "8398" | "9211" | "9222" | "9311" | "9399" => {
                MccClass::PublicWelfare
            }
            _ => MccClass::Standard,
        }
    }

    /// The default pricing of the class (settlement account and cycle left to the
    /// merchant's record).
    pub fn plan(self) -> Terms {
        match self {
            MccClass::Standard => Terms::default(),
            MccClass::Necessities => Terms {
                debit_bps: 35,
                credit_bps: 38,
                debit_cap_minor: 1_300,
                ..Terms::default()
            },
            MccClass::PublicWelfare => Terms {
                debit_bps: 0,
                credit_bps: 0,
                debit_cap_minor: 0,
                min_fee_minor: 0,
                ..Terms::default()
            },
        }
    }
}

/// Debit or credit card (decides the rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    /// Debit card.
    Debit,
    /// Credit card.
    Credit,
}

/// Which cards are debit cards: BIN prefixes, longest match wins; anything else is
/// treated as credit (the dearer rate, so an unknown card never under-charges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTypes {
    prefixes: Vec<(String, CardType)>,
}

impl Default for CardTypes {
    /// China UnionPay debit ranges commonly seen on POS (622848 Agricultural Bank
    /// debit, 621xxx and 623xxx debit); everything else credit.
    fn default() -> CardTypes {
        CardTypes::new(vec![
            ("622848".into(), CardType::Debit),
            ("621".into(), CardType::Debit),
            ("623".into(), CardType::Debit),
        ])
    }
}

impl CardTypes {
    /// A table of prefixes.
    pub fn new(mut prefixes: Vec<(String, CardType)>) -> CardTypes {
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        CardTypes { prefixes }
    }

    /// The type of a card from its PAN's leading digits (a masked PAN will do).
    pub fn of(&self, pan_start: &str) -> CardType {
        self.prefixes
            .iter()
            .find(|(p, _)| pan_start.starts_with(p.as_str()))
            .map_or(CardType::Credit, |(_, t)| *t)
    }
}

/// The fee on `amount` at `bps`, rounded half up, at least `min`, at most `cap` (0 = none).
pub fn fee(amount: i64, bps: i64, min: i64, cap: i64) -> i64 {
    let raw = (amount.saturating_mul(bps) + 5_000) / 10_000;
    let f = raw.max(min);
    if cap > 0 {
        f.min(cap)
    } else {
        f
    }
}

/// What an item does to the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A sale (credits the merchant, less the fee).
    Sale,
    /// A pre-authorization completion (as a sale).
    Completion,
    /// A refund (debits the merchant).
    Refund,
}

/// One captured transaction waiting to be settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The journal's transaction id.
    pub txn_id: i64,
    /// Its RRN.
    pub rrn: String,
    /// The merchant.
    pub merchant_id: String,
    /// What it is.
    pub kind: ItemKind,
    /// Amount (minor units).
    pub amount_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// Card type.
    pub card: CardType,
    /// Its business date.
    pub business_date: NaiveDate,
    /// Why it is held, if it is (a risk review, a case…).
    pub hold: Option<String>,
}

/// What happened to one item in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// The transaction.
    pub txn_id: i64,
    /// The settlement it went into, if settled.
    pub settlement_id: Option<String>,
    /// Fee charged.
    pub fee_minor: i64,
    /// Net to the merchant (negative for refunds).
    pub net_minor: i64,
    /// Why it is held, if held.
    pub held: Option<String>,
}

/// One merchant's settlement for a business date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantSettlement {
    /// `S<date>-<merchant>`.
    pub settlement_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// Where the money goes.
    pub settlement_account: String,
    /// The business date settled.
    pub business_date: NaiveDate,
    /// Sales and completions.
    pub gross_minor: i64,
    /// Refunds.
    pub refunds_minor: i64,
    /// Fees.
    pub fees_minor: i64,
    /// Held, not paid in this run.
    pub held_minor: i64,
    /// Paid: gross − refunds − fees.
    pub net_minor: i64,
    /// Items settled.
    pub count: usize,
    /// Payouts: (value date, amount).
    pub payouts: Vec<(NaiveDate, i64)>,
}

/// The result of a settlement run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// Per merchant.
    pub settlements: Vec<MerchantSettlement>,
    /// Per item.
    pub items: Vec<ItemOutcome>,
    /// The ledger transfers moving the money (idempotent ids).
    pub transfers: Vec<Transfer>,
}

/// Ledger account ids.
pub mod accounts {
    /// What posguard owes a merchant.
    pub fn payable(merchant: &str) -> String {
        format!("merchant_payable:{merchant}")
    }
    /// Fees earned.
    pub const FEES: &str = "fee_income";
    /// What issuers owe for captured sales.
    pub const ISSUERS: &str = "issuer_receivable";
    /// Paid out, on its way to merchants' banks.
    pub const IN_TRANSIT: &str = "settlement_in_transit";
    /// The acquirer's settlement bank account (payouts leave it when paid).
    pub const BANK: &str = "settlement_bank";
}

/// Settles `date`: every item of that business date or earlier (the caller passes only
/// items not yet settled). Held merchants (`merchant_holds`) and held items wait.
pub fn settle(
    date: NaiveDate,
    items: &[Item],
    terms: &BTreeMap<String, Terms>,
    merchant_holds: &BTreeMap<String, String>,
) -> Run {
    settle_carrying(
        date,
        items,
        terms,
        merchant_holds,
        &BTreeMap::new(),
        calendar(),
    )
}

/// [`settle`], with each merchant's payable balance before the run (`opening`): a
/// negative balance (refunds that exceeded a day's sales) is carried and recovered from
/// the next payouts, so a merchant is never paid more than it is owed.
pub fn settle_carrying(
    date: NaiveDate,
    items: &[Item],
    terms: &BTreeMap<String, Terms>,
    merchant_holds: &BTreeMap<String, String>,
    opening: &BTreeMap<String, i64>,
    calendar: &merchants::calendar::WorkCalendar,
) -> Run {
    let next_working_day = |d: NaiveDate| calendar.add_working_days(d, 1);
    let mut run = Run::default();
    let mut by_merchant: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for it in items.iter().filter(|i| i.business_date <= date) {
        by_merchant
            .entry(it.merchant_id.as_str())
            .or_default()
            .push(it);
    }
    let default_terms = Terms::default();
    for (merchant, its) in by_merchant {
        let t = terms.get(merchant).unwrap_or(&default_terms);
        let settlement_id = format!("S{}-{merchant}", date.format("%Y%m%d"));
        let payable = accounts::payable(merchant);
        let mut s = MerchantSettlement {
            settlement_id: settlement_id.clone(),
            merchant_id: merchant.to_owned(),
            settlement_account: t.settlement_account.clone(),
            business_date: date,
            gross_minor: 0,
            refunds_minor: 0,
            fees_minor: 0,
            held_minor: 0,
            net_minor: 0,
            count: 0,
            payouts: Vec::new(),
        };
        for it in its {
            let hold = merchant_holds
                .get(merchant)
                .cloned()
                .or_else(|| it.hold.clone());
            if let Some(reason) = hold {
                s.held_minor += it.amount_minor;
                run.items.push(ItemOutcome {
                    txn_id: it.txn_id,
                    settlement_id: None,
                    fee_minor: 0,
                    net_minor: 0,
                    held: Some(reason),
                });
                continue;
            }
            let posted =
                |id: String, debit: &str, credit: &str, amount: i64, code: &str| Transfer {
                    id,
                    debit: debit.to_owned(),
                    credit: credit.to_owned(),
                    amount,
                    flow: Flow::Posted,
                    code: code.to_owned(),
                    linked: false,
                };
            let (fee_minor, net) = match it.kind {
                ItemKind::Sale | ItemKind::Completion => {
                    let (bps, cap) = match it.card {
                        CardType::Debit => (t.debit_bps, t.debit_cap_minor),
                        CardType::Credit => (t.credit_bps, 0),
                    };
                    let f = fee(it.amount_minor, bps, t.min_fee_minor, cap).min(it.amount_minor);
                    s.gross_minor += it.amount_minor;
                    s.fees_minor += f;
                    run.transfers.push(posted(
                        format!("capture:{}", it.txn_id),
                        accounts::ISSUERS,
                        &payable,
                        it.amount_minor,
                        "capture",
                    ));
                    if f > 0 {
                        run.transfers.push(posted(
                            format!("fee:{}", it.txn_id),
                            &payable,
                            accounts::FEES,
                            f,
                            "fee",
                        ));
                    }
                    (f, it.amount_minor - f)
                }
                ItemKind::Refund => {
                    s.refunds_minor += it.amount_minor;
                    run.transfers.push(posted(
                        format!("refund:{}", it.txn_id),
                        &payable,
                        accounts::ISSUERS,
                        it.amount_minor,
                        "refund",
                    ));
                    (0, -it.amount_minor)
                }
            };
            s.count += 1;
            run.items.push(ItemOutcome {
                txn_id: it.txn_id,
                settlement_id: Some(settlement_id.clone()),
                fee_minor,
                net_minor: net,
                held: None,
            });
        }
        s.net_minor = s.gross_minor - s.refunds_minor - s.fees_minor;
        let payable_after = s.net_minor + opening.get(merchant).copied().unwrap_or(0).min(0);
        if payable_after > 0 {
            s.payouts = match t.cycle {
                Cycle::T1 => vec![(next_working_day(date), payable_after)],
                Cycle::D0 { daily_limit_minor } => {
                    let today = payable_after.min(daily_limit_minor.max(0));
                    let mut p = Vec::new();
                    if today > 0 {
                        p.push((date, today));
                    }
                    if payable_after > today {
                        p.push((next_working_day(date), payable_after - today));
                    }
                    p
                }
            };
            // The reserve comes out of the latest payouts and is paid when it ends.
            let reserve = if t.reserve_bps > 0 && t.reserve_days > 0 {
                payable_after * t.reserve_bps.min(10_000) / 10_000
            } else {
                0
            };
            if reserve > 0 {
                let mut left = reserve;
                for p in s.payouts.iter_mut().rev() {
                    let take = left.min(p.1);
                    p.1 -= take;
                    left -= take;
                }
                s.payouts.retain(|p| p.1 > 0);
                let ends = date + Duration::days(t.reserve_days.clamp(1, 366) - 1);
                s.payouts.push((next_working_day(ends), reserve));
            }
            for (i, (_, amount)) in s.payouts.iter().enumerate() {
                run.transfers.push(Transfer {
                    id: format!("payout:{settlement_id}:{i}"),
                    debit: payable.clone(),
                    credit: accounts::IN_TRANSIT.to_owned(),
                    amount: *amount,
                    flow: Flow::Posted,
                    code: "payout".to_owned(),
                    linked: false,
                });
            }
        }
        if s.count > 0 || s.held_minor > 0 {
            run.settlements.push(s);
        }
    }
    run
}
