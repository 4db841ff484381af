//! posguard's double-entry ledger, sans IO.
//!
//! Accounts hold integer minor units in one ISO 4217 currency. Every [`Transfer`] moves
//! an amount from a debit account to a credit account of the same currency, so every
//! transfer balances and the sum of all balances is always zero (checked by
//! [`Ledger::check`]). Transfers are posted at once, or pending (a hold) and later
//! posted or voided — in full or, for posting, in part. A transfer's id is its
//! idempotency key: applying the same transfer again changes nothing; applying a
//! different transfer under a used id is refused. Linked transfers succeed or fail
//! together. Nothing edits or deletes a transfer: a correction is a new transfer.
//! The model follows TigerBeetle's accounts and transfers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use domain::Currency;

/// What an account is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountKind {
    /// What posguard owes a merchant.
    MerchantPayable,
    /// Fees earned (merchant discount).
    FeeIncome,
    /// What the card network / issuers owe posguard for captured sales.
    IssuerReceivable,
    /// Money paid out and on its way to merchants' banks.
    SettlementInTransit,
    /// The acquirer's own settlement bank account: money leaves it when payouts are paid.
    SettlementBank,
    /// Items that could not be matched yet.
    Suspense,
    /// Funds held back from merchants (risk holds, reserves).
    Reserve,
}

impl AccountKind {
    /// Every kind.
    pub const ALL: [AccountKind; 7] = [
        AccountKind::MerchantPayable,
        AccountKind::FeeIncome,
        AccountKind::IssuerReceivable,
        AccountKind::SettlementInTransit,
        AccountKind::SettlementBank,
        AccountKind::Suspense,
        AccountKind::Reserve,
    ];

    /// Reads a name.
    pub fn parse(s: &str) -> Option<AccountKind> {
        AccountKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The name used in account ids and files.
    pub fn name(self) -> &'static str {
        match self {
            AccountKind::MerchantPayable => "merchant_payable",
            AccountKind::FeeIncome => "fee_income",
            AccountKind::IssuerReceivable => "issuer_receivable",
            AccountKind::SettlementInTransit => "settlement_in_transit",
            AccountKind::SettlementBank => "settlement_bank",
            AccountKind::Suspense => "suspense",
            AccountKind::Reserve => "reserve",
        }
    }
}

/// A limit on an account's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// None.
    None,
    /// Debits (posted and pending) may never exceed credits posted: the account never
    /// goes negative (a merchant cannot be paid more than it is owed).
    DebitsWithinCredits,
}

impl Limit {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Limit::None => "none",
            Limit::DebitsWithinCredits => "debits_within_credits",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Limit> {
        match s {
            "none" => Some(Limit::None),
            "debits_within_credits" => Some(Limit::DebitsWithinCredits),
            _ => None,
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable id, e.g. `merchant_payable:898310005411000`.
    pub id: String,
    /// What it is for.
    pub kind: AccountKind,
    /// Its currency.
    pub currency: Currency,
    /// Balance limit.
    pub limit: Limit,
    /// Posted debits.
    pub debits_posted: i64,
    /// Pending debits.
    pub debits_pending: i64,
    /// Posted credits.
    pub credits_posted: i64,
    /// Pending credits.
    pub credits_pending: i64,
}

impl Account {
    /// A new account with nothing on it.
    pub fn new(id: &str, kind: AccountKind, currency: Currency, limit: Limit) -> Account {
        Account {
            id: id.into(),
            kind,
            currency,
            limit,
            debits_posted: 0,
            debits_pending: 0,
            credits_posted: 0,
            credits_pending: 0,
        }
    }

    /// Posted balance, credits minus debits.
    pub fn balance(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }

    /// Pending balance, credits minus debits.
    pub fn pending(&self) -> i64 {
        self.credits_pending - self.debits_pending
    }
}

/// What a transfer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Post the amount now.
    Posted,
    /// Hold the amount (pending) until posted or voided.
    Pending,
    /// Post (part of) a pending transfer; the rest is released.
    PostPending {
        /// The pending transfer's id.
        pending: String,
    },
    /// Release a pending transfer.
    VoidPending {
        /// The pending transfer's id.
        pending: String,
    },
}

impl Flow {
    /// The stored form: a name and, for post and void, the pending transfer's id.
    pub fn to_parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Flow::Posted => ("posted", None),
            Flow::Pending => ("pending", None),
            Flow::PostPending { pending } => ("post_pending", Some(pending)),
            Flow::VoidPending { pending } => ("void_pending", Some(pending)),
        }
    }

    /// Reads the stored form.
    pub fn from_parts(name: &str, pending: Option<String>) -> Option<Flow> {
        match (name, pending) {
            ("posted", _) => Some(Flow::Posted),
            ("pending", _) => Some(Flow::Pending),
            ("post_pending", Some(pending)) => Some(Flow::PostPending { pending }),
            ("void_pending", Some(pending)) => Some(Flow::VoidPending { pending }),
            _ => None,
        }
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Idempotency key.
    pub id: String,
    /// The account debited.
    pub debit: String,
    /// The account credited.
    pub credit: String,
    /// Minor units; positive (for `PostPending` at most the pending amount; for
    /// `VoidPending` the pending amount).
    pub amount: i64,
    /// What it does.
    pub flow: Flow,
    /// Why (e.g. `capture`, `fee`, `payout`, `refund`).
    pub code: String,
    /// Succeeds or fails together with the next transfer of the batch.
    pub linked: bool,
}

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The id is already used by a different transfer.
    #[error("transfer {0} exists with different fields")]
    ExistsDifferent(String),
    /// An account does not exist.
    #[error("account {0} not found")]
    NoAccount(String),
    /// Debit and credit are the same account.
    #[error("debit and credit accounts are the same")]
    SameAccount,
    /// The accounts have different currencies.
    #[error("currencies differ")]
    CurrencyMismatch,
    /// The amount is zero or negative.
    #[error("amount must be positive")]
    Amount,
    /// The debit account would exceed its limit.
    #[error("account {0} would exceed its limit")]
    ExceedsLimit(String),
    /// The pending transfer does not exist.
    #[error("pending transfer {0} not found")]
    PendingNotFound(String),
    /// The pending transfer was already posted or voided.
    #[error("pending transfer {0} already resolved")]
    PendingResolved(String),
    /// Post or void does not match the pending transfer (accounts, or amount too large).
    #[error("does not match pending transfer {0}")]
    PendingMismatch(String),
    /// A linked transfer of the chain failed.
    #[error("linked transfer failed")]
    LinkedFailed,
    /// The account exists with different attributes.
    #[error("account {0} exists with different attributes")]
    AccountExists(String),
}

/// What applying one transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now.
    Done,
    /// The same transfer was applied before: nothing changed.
    AlreadyDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingState {
    Open,
    Resolved,
}

/// The ledger: accounts and every transfer ever applied.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    accounts: BTreeMap<String, Account>,
    transfers: HashMap<String, Transfer>,
    order: Vec<String>,
    pending: HashMap<String, PendingState>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Creates an account (idempotent for the same attributes).
    pub fn open(
        &mut self,
        id: &str,
        kind: AccountKind,
        currency: Currency,
        limit: Limit,
    ) -> Result<(), LedgerError> {
        match self.accounts.get(id) {
            Some(a) if a.kind == kind && a.currency == currency && a.limit == limit => Ok(()),
            Some(_) => Err(LedgerError::AccountExists(id.into())),
            None => {
                self.accounts
                    .insert(id.into(), Account::new(id, kind, currency, limit));
                Ok(())
            }
        }
    }

    /// Puts back an account as it was stored (balances included), replacing any
    /// account of the same id. For loading a slice of a persisted ledger.
    pub fn restore_account(&mut self, account: Account) {
        self.accounts.insert(account.id.clone(), account);
    }

    /// Puts back a transfer as it was stored, without moving any balance (the restored
    /// accounts already carry it); `resolved` says whether a pending transfer has been
    /// posted or voided since.
    pub fn restore_transfer(&mut self, transfer: Transfer, resolved: bool) {
        if transfer.flow == Flow::Pending {
            let state = if resolved {
                PendingState::Resolved
            } else {
                PendingState::Open
            };
            self.pending.insert(transfer.id.clone(), state);
        }
        if !self.transfers.contains_key(&transfer.id) {
            self.order.push(transfer.id.clone());
        }
        self.transfers.insert(transfer.id.clone(), transfer);
    }

    /// Whether a pending transfer is still open.
    pub fn is_open_pending(&self, id: &str) -> bool {
        self.pending.get(id) == Some(&PendingState::Open)
    }

    /// An account.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// Every account, by id.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// A transfer by id.
    pub fn transfer(&self, id: &str) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// Every transfer, in the order applied.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.order.iter().filter_map(|id| self.transfers.get(id))
    }

    /// Applies a batch. Each chain of linked transfers (ending with the first
    /// unlinked one) succeeds or fails as a whole; chains are independent.
    pub fn apply(&mut self, batch: &[Transfer]) -> Vec<Result<Applied, LedgerError>> {
        let mut results = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            while end < batch.len() - 1 && batch[end].linked {
                end += 1;
            }
            let chain = &batch[start..=end];
            // Only a chain of several can need undoing: a single transfer that fails
            // has changed nothing.
            let snapshot = (chain.len() > 1).then(|| self.clone_state(chain));
            let mut chain_results = Vec::new();
            let mut failed = false;
            for t in chain {
                let r = self.apply_one(t);
                failed |= r.is_err();
                chain_results.push(r);
            }
            if let (true, Some(snapshot)) = (failed, snapshot) {
                self.restore(snapshot);
                for r in &mut chain_results {
                    if r.is_ok() {
                        *r = Err(LedgerError::LinkedFailed);
                    }
                }
            }
            results.extend(chain_results);
            start = end + 1;
        }
        results
    }

    fn clone_state(&self, chain: &[Transfer]) -> Snapshot {
        let mut accounts = Vec::new();
        for t in chain {
            for id in [&t.debit, &t.credit] {
                if let Some(a) = self.accounts.get(id) {
                    accounts.push(a.clone());
                }
            }
        }
        Snapshot {
            accounts,
            transfers: self.order.len(),
            pending: self.pending.clone(),
        }
    }

    fn restore(&mut self, s: Snapshot) {
        for a in s.accounts.into_iter().rev() {
            self.accounts.insert(a.id.clone(), a);
        }
        for id in self.order.drain(s.transfers..) {
            self.transfers.remove(&id);
        }
        self.pending = s.pending;
    }

    fn apply_one(&mut self, t: &Transfer) -> Result<Applied, LedgerError> {
        if let Some(existing) = self.transfers.get(&t.id) {
            return if existing == t {
                Ok(Applied::AlreadyDone)
            } else {
                Err(LedgerError::ExistsDifferent(t.id.clone()))
            };
        }
        if t.amount <= 0 {
            return Err(LedgerError::Amount);
        }
        if t.debit == t.credit {
            return Err(LedgerError::SameAccount);
        }
        let (Some(d), Some(c)) = (self.accounts.get(&t.debit), self.accounts.get(&t.credit)) else {
            let missing = if self.accounts.contains_key(&t.debit) {
                &t.credit
            } else {
                &t.debit
            };
            return Err(LedgerError::NoAccount(missing.clone()));
        };
        if d.currency != c.currency {
            return Err(LedgerError::CurrencyMismatch);
        }
        match &t.flow {
            Flow::Posted => {
                self.check_limit(&t.debit, t.amount)?;
                self.move_posted(&t.debit, &t.credit, t.amount);
            }
            Flow::Pending => {
                self.check_limit(&t.debit, t.amount)?;
                self.move_pending(&t.debit, &t.credit, t.amount, 1);
                self.pending.insert(t.id.clone(), PendingState::Open);
            }
            Flow::PostPending { pending } | Flow::VoidPending { pending } => {
                let p = self
                    .transfers
                    .get(pending)
                    .ok_or_else(|| LedgerError::PendingNotFound(pending.clone()))?
                    .clone();
                if p.flow != Flow::Pending {
                    return Err(LedgerError::PendingNotFound(pending.clone()));
                }
                if self.pending.get(pending) != Some(&PendingState::Open) {
                    return Err(LedgerError::PendingResolved(pending.clone()));
                }
                let post = matches!(t.flow, Flow::PostPending { .. });
                let amount_ok = if post {
                    t.amount <= p.amount
                } else {
                    t.amount == p.amount
                };
                if p.debit != t.debit || p.credit != t.credit || !amount_ok {
                    return Err(LedgerError::PendingMismatch(pending.clone()));
                }
                self.move_pending(&p.debit, &p.credit, p.amount, -1);
                if post {
                    self.move_posted(&p.debit, &p.credit, t.amount);
                }
                self.pending.insert(pending.clone(), PendingState::Resolved);
            }
        }
        self.transfers.insert(t.id.clone(), t.clone());
        self.order.push(t.id.clone());
        Ok(Applied::Done)
    }

    fn check_limit(&self, debit: &str, amount: i64) -> Result<(), LedgerError> {
        let Some(a) = self.accounts.get(debit) else {
            return Ok(());
        };
        if a.limit == Limit::DebitsWithinCredits
            && a.debits_posted + a.debits_pending + amount > a.credits_posted
        {
            return Err(LedgerError::ExceedsLimit(debit.into()));
        }
        Ok(())
    }

    fn move_posted(&mut self, debit: &str, credit: &str, amount: i64) {
        if let Some(a) = self.accounts.get_mut(debit) {
            a.debits_posted += amount;
        }
        if let Some(a) = self.accounts.get_mut(credit) {
            a.credits_posted += amount;
        }
    }

    fn move_pending(&mut self, debit: &str, credit: &str, amount: i64, sign: i64) {
        if let Some(a) = self.accounts.get_mut(debit) {
            a.debits_pending += sign * amount;
        }
        if let Some(a) = self.accounts.get_mut(credit) {
            a.credits_pending += sign * amount;
        }
    }

    /// The ledger's invariants: per currency, posted and pending balances sum to zero;
    /// no pending amount is negative; no limited account is over its limit.
    pub fn check(&self) -> Result<(), String> {
        let mut sums: BTreeMap<u16, (i64, i64)> = BTreeMap::new();
        for a in self.accounts.values() {
            let s = sums.entry(a.currency.numeric()).or_default();
            s.0 += a.balance();
            s.1 += a.pending();
            if a.debits_pending < 0 || a.credits_pending < 0 {
                return Err(format!("{}: negative pending amounts", a.id));
            }
            if a.limit == Limit::DebitsWithinCredits
                && a.debits_posted + a.debits_pending > a.credits_posted
            {
                return Err(format!("{}: over its limit", a.id));
            }
        }
        for (cur, (posted, pending)) in sums {
            if posted != 0 || pending != 0 {
                return Err(format!(
                    "currency {cur}: balances sum to {posted} posted, {pending} pending"
                ));
            }
        }
        Ok(())
    }
}

struct Snapshot {
    accounts: Vec<Account>,
    transfers: usize,
    pending: HashMap<String, PendingState>,
}

impl fmt::Display for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in self.accounts.values() {
            writeln!(f, "{:<44} {:>14} {:>12}", a.id, a.balance(), a.pending())?;
        }
        Ok(())
    }
}
