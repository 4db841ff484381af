//! The issuer's double-entry book: every money movement is one balanced posting.
//!
//! A posting moves an amount from one book account to another: the first loses it,
//! the second gains it, so the sum of all balances in each currency is always zero.
//! Cardholder accounts are funded from `Funding` when opened; debits move money to
//! `Settlement` (what the issuer owes the card network), credits move it back.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use domain::{Amount, Currency, Rrn};
use serde::Serialize;

use super::AccountId;

/// An account of the issuer's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum BookAccount {
    /// A cardholder's account: positive means money the cardholder has.
    Cardholder(AccountId),
    /// The issuer's settlement (clearing) account with the card network.
    Settlement,
    /// Where opening balances come from (the issuer's own funds).
    Funding,
}

/// One balanced movement of money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Position in the book, from 1.
    pub seq: u64,
    /// When it was posted (the bank's local time).
    pub time: NaiveDateTime,
    /// The account that loses the amount.
    pub from: BookAccount,
    /// The account that gains it.
    pub to: BookAccount,
    /// The amount, always positive.
    pub amount: Amount,
    /// The transaction it belongs to, if any.
    pub rrn: Option<Rrn>,
    /// Why: `opening`, `sale`, `void`, …
    pub memo: &'static str,
}

/// The book: postings and the balances they produce.
#[derive(Debug, Default)]
pub struct Book {
    balances: BTreeMap<(BookAccount, Currency), i64>,
    postings: Vec<Posting>,
}

/// The totals that prove the book balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookTotals {
    /// Every non-empty account balance.
    pub accounts: Vec<AccountBalance>,
    /// Sum of all balances per currency (ISO alphabetic code): zero when balanced.
    pub sum_by_currency: BTreeMap<String, i64>,
    /// Whether every currency sums to zero.
    pub balanced: bool,
    /// Number of postings.
    pub postings: usize,
}

/// One account's balance in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountBalance {
    /// The account.
    pub account: BookAccount,
    /// ISO alphabetic currency code.
    pub currency: String,
    /// Balance in minor units.
    pub balance_minor: i64,
}

impl Book {
    /// Moves `amount` from `from` to `to`. The amount must be positive and the
    /// accounts different: callers check amounts from the network before posting.
    pub(crate) fn post(
        &mut self,
        time: NaiveDateTime,
        from: BookAccount,
        to: BookAccount,
        amount: Amount,
        rrn: Option<Rrn>,
        memo: &'static str,
    ) {
        assert!(amount.minor > 0, "postings move a positive amount");
        assert_ne!(from, to, "a posting moves money between two accounts");
        let cur = amount.currency;
        let a = self.balances.entry((from, cur)).or_insert(0);
        *a = a.checked_sub(amount.minor).expect("book balance overflow");
        let b = self.balances.entry((to, cur)).or_insert(0);
        *b = b.checked_add(amount.minor).expect("book balance overflow");
        self.postings.push(Posting {
            seq: self.postings.len() as u64 + 1,
            time,
            from,
            to,
            amount,
            rrn,
            memo,
        });
    }

    /// The balance of one account in one currency, minor units.
    pub fn balance(&self, account: BookAccount, currency: Currency) -> i64 {
        self.balances
            .get(&(account, currency))
            .copied()
            .unwrap_or(0)
    }

    /// Every posting, oldest first.
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Rebuilds every balance from the postings alone and compares with the balances
    /// kept as postings were made; also checks every currency sums to zero. The kept
    /// balances can only balance by construction, so this is the check that means
    /// something: that nothing moved a balance outside a posting.
    pub fn verify(&self) -> Result<(), String> {
        let mut rebuilt: BTreeMap<(BookAccount, Currency), i64> = BTreeMap::new();
        for p in &self.postings {
            if p.amount.minor <= 0 || p.from == p.to {
                return Err(format!("posting {} is not a transfer", p.seq));
            }
            *rebuilt.entry((p.from, p.amount.currency)).or_insert(0) -= p.amount.minor;
            *rebuilt.entry((p.to, p.amount.currency)).or_insert(0) += p.amount.minor;
        }
        let nonzero =
            |m: &BTreeMap<(BookAccount, Currency), i64>| -> Vec<((BookAccount, Currency), i64)> {
                m.iter()
                    .filter(|(_, v)| **v != 0)
                    .map(|(k, v)| (*k, *v))
                    .collect()
            };
        if nonzero(&rebuilt) != nonzero(&self.balances) {
            return Err("balances differ from what the postings add up to".into());
        }
        let mut sums: BTreeMap<Currency, i64> = BTreeMap::new();
        for ((_, cur), bal) in &rebuilt {
            *sums.entry(*cur).or_insert(0) += bal;
        }
        match sums.iter().find(|(_, s)| **s != 0) {
            Some((cur, s)) => Err(format!("{} sums to {s}", cur.code())),
            None => Ok(()),
        }
    }

    /// Balances and per-currency sums.
    pub fn totals(&self) -> BookTotals {
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        let mut accounts = Vec::new();
        for (&(account, cur), &bal) in &self.balances {
            *sums.entry(cur.code().to_owned()).or_insert(0) += bal;
            if bal != 0 {
                accounts.push(AccountBalance {
                    account,
                    currency: cur.code().to_owned(),
                    balance_minor: bal,
                });
            }
        }
        let balanced = sums.values().all(|&s| s == 0);
        BookTotals {
            accounts,
            sum_by_currency: sums,
            balanced,
            postings: self.postings.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_catches_a_balance_moved_outside_a_posting() {
        let mut book = Book::default();
        let now = NaiveDateTime::default();
        book.post(
            now,
            BookAccount::Funding,
            BookAccount::Settlement,
            Amount::new(500, Currency::CNY),
            None,
            "fund",
        );
        assert_eq!(book.verify(), Ok(()));
        // Both sides moved together: still sums to zero, so `totals` cannot tell.
        *book
            .balances
            .entry((BookAccount::Funding, Currency::CNY))
            .or_insert(0) -= 1;
        *book
            .balances
            .entry((BookAccount::Settlement, Currency::CNY))
            .or_insert(0) += 1;
        assert!(book.totals().balanced);
        assert!(book.verify().is_err());
    }
}
