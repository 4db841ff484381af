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

/// A posting refused because a balance would leave the range of `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BookOverflow;

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
        self.try_post(time, from, to, amount, rrn, memo)
            .expect("book balance overflow");
    }

    /// Moves `amount` from `from` to `to` unless either balance would overflow, in
    /// which case nothing changes: for movements whose size a caller outside the
    /// link chose (opening balances). Same preconditions as [`Book::post`].
    pub(crate) fn try_post(
        &mut self,
        time: NaiveDateTime,
        from: BookAccount,
        to: BookAccount,
        amount: Amount,
        rrn: Option<Rrn>,
        memo: &'static str,
    ) -> Result<(), BookOverflow> {
        assert!(amount.minor > 0, "postings move a positive amount");
        assert_ne!(from, to, "a posting moves money between two accounts");
        let cur = amount.currency;
        let from_after = self.balance(from, cur).checked_sub(amount.minor);
        let to_after = self.balance(to, cur).checked_add(amount.minor);
        let (Some(from_after), Some(to_after)) = (from_after, to_after) else {
            return Err(BookOverflow);
        };
        self.balances.insert((from, cur), from_after);
        self.balances.insert((to, cur), to_after);
        self.postings.push(Posting {
            seq: self.postings.len() as u64 + 1,
            time,
            from,
            to,
            amount,
            rrn,
            memo,
        });
        Ok(())
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
        // Rebuilt and summed in i128: the check must not itself overflow on balances
        // near the ends of i64.
        type Balances = BTreeMap<(BookAccount, Currency), i128>;
        let mut rebuilt = Balances::new();
        for p in &self.postings {
            if p.amount.minor <= 0 || p.from == p.to {
                return Err(format!("posting {} is not a transfer", p.seq));
            }
            let minor = i128::from(p.amount.minor);
            *rebuilt.entry((p.from, p.amount.currency)).or_insert(0) -= minor;
            *rebuilt.entry((p.to, p.amount.currency)).or_insert(0) += minor;
        }
        let kept: Balances = self
            .balances
            .iter()
            .map(|(k, v)| (*k, i128::from(*v)))
            .collect();
        let nonzero = |m: &Balances| -> Vec<((BookAccount, Currency), i128)> {
            m.iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (*k, *v))
                .collect()
        };
        if nonzero(&rebuilt) != nonzero(&kept) {
            return Err("balances differ from what the postings add up to".into());
        }
        let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
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
        // Summed in i128 so that balances near the ends of i64 cannot overflow the sum;
        // a sum outside i64 is shown saturated (and is never balanced).
        let mut sums: BTreeMap<String, i128> = BTreeMap::new();
        let mut accounts = Vec::new();
        for (&(account, cur), &bal) in &self.balances {
            *sums.entry(cur.code().to_owned()).or_insert(0) += i128::from(bal);
            if bal != 0 {
                accounts.push(AccountBalance {
                    account,
                    currency: cur.code().to_owned(),
                    balance_minor: bal,
                });
            }
        }
        let balanced = sums.values().all(|&s| s == 0);
        let saturate =
            |s: i128| i64::try_from(s).unwrap_or(if s < 0 { i64::MIN } else { i64::MAX });
        BookTotals {
            accounts,
            sum_by_currency: sums.into_iter().map(|(c, s)| (c, saturate(s))).collect(),
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

    #[test]
    fn try_post_refuses_an_overflow_and_changes_nothing() {
        let mut book = Book::default();
        let now = NaiveDateTime::default();
        let cny = |minor| Amount::new(minor, Currency::CNY);
        let holder = |id| BookAccount::Cardholder(AccountId(id));
        let fund = |book: &mut Book, id, minor| {
            book.try_post(
                now,
                BookAccount::Funding,
                holder(id),
                cny(minor),
                None,
                "opening",
            )
        };
        assert_eq!(fund(&mut book, 1, i64::MAX), Ok(()));
        assert_eq!(fund(&mut book, 2, 1), Ok(()), "Funding reaches i64::MIN");
        assert_eq!(
            fund(&mut book, 3, 1),
            Err(BookOverflow),
            "Funding below i64::MIN"
        );
        assert_eq!(
            book.try_post(
                now,
                BookAccount::Settlement,
                holder(1),
                cny(1),
                None,
                "credit"
            ),
            Err(BookOverflow),
            "cardholder above i64::MAX"
        );
        assert_eq!(book.postings().len(), 2);
        assert_eq!(book.balance(holder(3), Currency::CNY), 0);
        assert_eq!(book.balance(BookAccount::Settlement, Currency::CNY), 0);
        assert_eq!(book.balance(BookAccount::Funding, Currency::CNY), i64::MIN);
        assert_eq!(book.verify(), Ok(()));
        assert!(
            book.totals().balanced,
            "sums near the ends of i64 do not overflow"
        );
    }
}
