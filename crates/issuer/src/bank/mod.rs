//! The bank: the issuer simulator's sans-IO, deterministic core.
//!
//! [`Bank`] holds cardholder accounts and cards, a double-entry [`Book`], the SMS
//! outbox and the clearing records. [`Bank::handle`] takes one decoded request and the
//! current local time and returns the reply; nothing here reads a clock, a socket or
//! an unseeded generator. The PAN lives only inside the bank (it is the bank); it is
//! never logged, shown or exported: accounts are shown with the masked PAN, clearing
//! lines carry the masked PAN and a keyed token.

mod book;
mod clearing;
mod notice;
mod process;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use cardsec::{
    DataKey, Expiry, Key, KeyKind, Lmk, MaskedPan, Pan, PanToken, Pin, SecurityModule,
    SoftwareSecurityModule, WrappedKey,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use domain::{Amount, Currency, ResponseCode, Rrn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use book::{AccountBalance, Book, BookAccount, BookTotals, Posting};
pub use clearing::{ClearingRecord, ClearingType, CLEARING_HEADER};
pub use notice::{Sms, SmsKind};
pub use process::Reply;

use crate::faults::{chance, Faults};
use crate::IssuerError;
use notice::Notice;

/// Wrong PIN entries after which the card's PIN is blocked (`75`).
pub const MAX_PIN_TRIES: u8 = 3;

/// Most minor units an account may open with as balance, credit line or daily limit:
/// 10^12 (ten billion CNY). Balance + credit line, and a day's spend + a 12-digit
/// field 4 amount, then stay far inside `i64`.
pub const MAX_ACCOUNT_MINOR: i64 = 1_000_000_000_000;

/// A cardholder account's id (also its card's: one card per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The language of a cardholder's notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Simplified Chinese.
    #[default]
    Zh,
    /// English.
    En,
}

/// A card's status; anything but active declines with its response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CardStatus {
    /// In use.
    #[default]
    Active,
    /// Reported lost (`41`).
    Lost,
    /// Reported stolen (`43`).
    Stolen,
    /// Blocked by the issuer (`62`).
    Blocked,
}

impl CardStatus {
    /// The decline code of a card in this status, `None` when active.
    pub fn decline_code(self) -> Option<ResponseCode> {
        match self {
            CardStatus::Active => None,
            CardStatus::Lost => Some(ResponseCode::LOST_CARD),
            CardStatus::Stolen => Some(ResponseCode::STOLEN_CARD),
            CardStatus::Blocked => Some(ResponseCode::RESTRICTED_CARD),
        }
    }
}

/// Everything needed to open an account with its card.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The card number (must pass Luhn).
    pub pan: Pan,
    /// The PIN; only its verification value is kept.
    pub pin: Pin,
    /// The card's expiry month.
    pub expiry: Expiry,
    /// The account's currency.
    pub currency: Currency,
    /// Opening balance, minor units, at most [`MAX_ACCOUNT_MINOR`] either way
    /// (negative: the account starts in debt, only within its credit line).
    pub balance_minor: i64,
    /// Credit line on top of the balance, minor units, 0 to [`MAX_ACCOUNT_MINOR`].
    pub credit_limit_minor: i64,
    /// Most the card may spend per local day, minor units, 0 to [`MAX_ACCOUNT_MINOR`].
    pub daily_limit_minor: i64,
    /// Card status.
    pub status: CardStatus,
    /// Cardholder's name.
    pub holder: String,
    /// Phone number notifications go to.
    pub phone: String,
    /// Notification language.
    pub language: Language,
}

/// An account as shown to operators and tests: balances, never the PAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// Account id.
    pub id: AccountId,
    /// Cardholder's name.
    pub holder: String,
    /// Phone number.
    pub phone: String,
    /// Notification language.
    pub language: Language,
    /// First six and last four digits of the card.
    pub masked_pan: String,
    /// The card's token under the configured token key.
    pub token: String,
    /// Expiry `YYMM`.
    pub expiry: String,
    /// Card status.
    pub status: CardStatus,
    /// ISO alphabetic currency code.
    pub currency: String,
    /// Booked balance, minor units.
    pub balance_minor: i64,
    /// Credit line, minor units.
    pub credit_limit_minor: i64,
    /// Open pre-authorization holds, minor units.
    pub holds_minor: i64,
    /// Balance + credit line − holds, minor units.
    pub available_minor: i64,
    /// Daily spending limit, minor units.
    pub daily_limit_minor: i64,
    /// Spent on `daily_date`, minor units.
    pub daily_spent_minor: i64,
    /// Consecutive wrong PINs.
    pub pin_tries: u8,
}

/// The bank's working keys, wrapped under the security module's LMK.
pub struct BankKeys {
    /// Zone PIN key: PIN blocks on the link.
    pub zpk: WrappedKey,
    /// Zone MAC key: X9.19 MACs on the link.
    pub zak: WrappedKey,
    /// Data key for the clearing file's PAN tokens (shared with the acquirer).
    pub token_key: DataKey,
    /// Other versions of the zone keys (ZPK and ZAK) still accepted while the acquirer
    /// switches: a request names the versions it used in field 53, and its reply is
    /// signed under the ZAK version it came with.
    pub other_zone_keys: Vec<WrappedKey>,
}

impl BankKeys {
    /// The zone key of `kind` with `version`, or the current one when the request
    /// names none (or one the bank does not hold: its MAC then fails).
    pub fn zone_key(&self, kind: KeyKind, version: Option<u32>) -> &WrappedKey {
        let current = if kind == KeyKind::Zak {
            &self.zak
        } else {
            &self.zpk
        };
        let Some(v) = version else {
            return current;
        };
        std::iter::once(current)
            .chain(&self.other_zone_keys)
            .find(|k| k.kind() == kind && k.version() == v)
            .unwrap_or(current)
    }
}

impl fmt::Debug for BankKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankKeys")
            .field("zpk", &self.zpk)
            .field("zak", &self.zak)
            .field("token_key", &self.token_key)
            .field("other_zone_keys", &self.other_zone_keys)
            .finish()
    }
}

/// The bank's keys in clear hex, as configuration gives them. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearKeys {
    /// Local master key, 32 hex characters.
    pub lmk_hex: String,
    /// Zone PIN key, 32 hex characters.
    pub zpk_hex: String,
    /// Zone MAC key, 32 hex characters.
    pub zak_hex: String,
    /// PAN token data key, at least 32 hex characters.
    pub token_key_hex: String,
    /// The token key's id (the `<id>` in `t<id>.<hex>`).
    pub token_key_id: u16,
}

impl ClearKeys {
    /// Well-known keys for tests and the demo only.
    pub fn demo() -> ClearKeys {
        ClearKeys {
            lmk_hex: "0123456789ABCDEFFEDCBA9876543210".into(),
            zpk_hex: "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A".into(),
            zak_hex: "3D3D3D3D3D3D3D3D4C4C4C4C4C4C4C4C".into(),
            token_key_hex: "00112233445566778899AABBCCDDEEFF".into(),
            token_key_id: 7,
        }
    }
}

impl Default for ClearKeys {
    fn default() -> ClearKeys {
        ClearKeys::demo()
    }
}

impl fmt::Debug for ClearKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClearKeys([redacted], token key id {})",
            self.token_key_id
        )
    }
}

/// Bounds on the bank's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankLimits {
    /// Reversals remembered for originals not yet seen; the oldest is forgotten first.
    pub max_early_reversals: usize,
}

impl Default for BankLimits {
    fn default() -> BankLimits {
        BankLimits {
            max_early_reversals: 10_000,
        }
    }
}

struct Card {
    pan: Pan,
    masked: MaskedPan,
    token: PanToken,
    expiry: Expiry,
    status: CardStatus,
    pvv: String,
    pin_tries: u8,
}

struct Account {
    id: AccountId,
    holder: String,
    phone: String,
    language: Language,
    currency: Currency,
    credit_limit_minor: i64,
    daily_limit_minor: i64,
    daily_spent_minor: i64,
    daily_date: Option<NaiveDate>,
    holds_minor: i64,
    card: Card,
}

/// A bounded set with first-in-first-out eviction.
struct BoundedSet<T> {
    order: VecDeque<T>,
    set: HashSet<T>,
    cap: usize,
}

impl<T: Copy + Eq + std::hash::Hash> BoundedSet<T> {
    fn new(cap: usize) -> Self {
        BoundedSet {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: cap.max(1),
        }
    }

    fn insert(&mut self, v: T) {
        if !self.set.insert(v) {
            return;
        }
        self.order.push_back(v);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
}

/// The issuer: accounts, cards, book, SMS outbox, clearing records and the
/// transactions it has answered.
pub struct Bank {
    hsm: Box<dyn SecurityModule>,
    keys: BankKeys,
    accounts: Vec<Account>,
    by_token: HashMap<PanToken, usize>,
    book: Book,
    sms: Vec<Sms>,
    clearing: Vec<ClearingRecord>,
    txs: process::Transactions,
    early_reversals: BoundedSet<process::TxKey>,
    auth_counter: u32,
    faults: Faults,
    rng: ChaCha8Rng,
}

impl fmt::Debug for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bank")
            .field("accounts", &self.accounts.len())
            .field("postings", &self.book.postings().len())
            .field("sms", &self.sms.len())
            .field("clearing", &self.clearing.len())
            .finish_non_exhaustive()
    }
}

/// Where money moves for one posting, and how it is reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Movement {
    debit: bool,
    amount_minor: i64,
    sms: SmsKind,
    clearing: ClearingType,
    memo: &'static str,
}

/// What one posting is about: the transaction's identifying fields.
impl Movement {
    /// Money to the cardholder.
    pub(crate) fn credit(
        amount_minor: i64,
        sms: SmsKind,
        clearing: ClearingType,
        memo: &'static str,
    ) -> Movement {
        Movement {
            debit: false,
            amount_minor,
            sms,
            clearing,
            memo,
        }
    }
}

pub(crate) struct TxRef {
    rrn: Rrn,
    auth_code: String,
    stan: String,
    terminal: String,
    merchant: String,
    merchant_name: String,
}

impl Bank {
    /// A bank using `hsm` for MACs, PINs and keys.
    pub fn new(hsm: Box<dyn SecurityModule>, keys: BankKeys) -> Bank {
        Bank {
            hsm,
            keys,
            accounts: Vec::new(),
            by_token: HashMap::new(),
            book: Book::default(),
            sms: Vec::new(),
            clearing: Vec::new(),
            txs: process::Transactions::default(),
            early_reversals: BoundedSet::new(BankLimits::default().max_early_reversals),
            auth_counter: 0,
            faults: Faults::default(),
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// A bank with a software security module under the given clear keys.
    pub fn from_clear_keys(keys: &ClearKeys) -> Result<Bank, IssuerError> {
        let err = |which| move |source| IssuerError::Key { which, source };
        let lmk = Lmk::from_hex(&keys.lmk_hex).map_err(err("lmk"))?;
        // The issuer generates no keys; the module's generator is never drawn from.
        let hsm = SoftwareSecurityModule::new(lmk, Box::new(ChaCha8Rng::seed_from_u64(0)));
        let zpk = Key::from_hex(&keys.zpk_hex).map_err(err("zpk"))?;
        let zpk = hsm.import_key(KeyKind::Zpk, 1, &zpk).map_err(err("zpk"))?;
        let zak = Key::from_hex(&keys.zak_hex).map_err(err("zak"))?;
        let zak = hsm.import_key(KeyKind::Zak, 1, &zak).map_err(err("zak"))?;
        let token_key = parse_data_key(keys).map_err(err("token"))?;
        Ok(Bank::new(
            Box::new(hsm),
            BankKeys {
                zpk,
                zak,
                token_key,
                other_zone_keys: Vec::new(),
            },
        ))
    }

    /// Loads another version of the zone keys agreed with the acquirer (a key
    /// exchange): both versions are accepted from then on, and the newest is current
    /// for requests that name no version.
    pub fn add_zone_keys(&mut self, version: u32, zpk: &Key, zak: &Key) -> Result<(), IssuerError> {
        let err = |which| move |source| IssuerError::Key { which, source };
        let zpk = self
            .hsm
            .import_key(KeyKind::Zpk, version, zpk)
            .map_err(err("zpk"))?;
        let zak = self
            .hsm
            .import_key(KeyKind::Zak, version, zak)
            .map_err(err("zak"))?;
        let k = &mut self.keys;
        k.other_zone_keys.retain(|o| o.version() != version);
        if version > k.zak.version() {
            k.other_zone_keys.push(std::mem::replace(&mut k.zpk, zpk));
            k.other_zone_keys.push(std::mem::replace(&mut k.zak, zak));
        } else {
            k.other_zone_keys.extend([zpk, zak]);
        }
        tracing::info!(version, "zone keys loaded");
        Ok(())
    }

    /// Stops accepting zone keys of `version` (the switch is over). The current
    /// version cannot be retired.
    pub fn retire_zone_keys(&mut self, version: u32) {
        self.keys.other_zone_keys.retain(|o| o.version() != version);
        tracing::info!(version, "zone keys retired");
    }

    /// Turns on the bank-side faults of `faults`, drawing from a generator seeded with `seed`.
    pub fn with_faults(mut self, faults: Faults, seed: u64) -> Bank {
        self.faults = faults;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    /// Sets the bank's bounds.
    pub fn with_limits(mut self, limits: BankLimits) -> Bank {
        self.early_reversals = BoundedSet::new(limits.max_early_reversals);
        self
    }

    /// The token of a PAN under the bank's token key (what the clearing file shows).
    pub fn token_of(&self, pan: &Pan) -> PanToken {
        self.keys.token_key.tokenize(pan)
    }

    /// Opens an account with its card; the opening balance is posted from `Funding`.
    /// Everything is checked before anything changes: a refused account leaves the
    /// bank as it was.
    pub fn open_account(
        &mut self,
        now: NaiveDateTime,
        new: NewAccount,
    ) -> Result<AccountId, IssuerError> {
        check_new_account(&new)?;
        let token = self.token_of(&new.pan);
        if self.by_token.contains_key(&token) {
            return Err(IssuerError::DuplicateCard);
        }
        let id = AccountId(self.accounts.len() as u64 + 1);
        let holder = BookAccount::Cardholder(id);
        let amount = Amount::new(new.balance_minor.abs(), new.currency);
        let (from, to) = if new.balance_minor > 0 {
            (BookAccount::Funding, holder)
        } else {
            (holder, BookAccount::Funding)
        };
        if new.balance_minor != 0 {
            self.book
                .try_post(now, from, to, amount, None, "opening")
                .map_err(|_| {
                    IssuerError::invalid("balance_minor", "the issuer's funding account is full")
                })?;
        }
        let pvv = self.hsm.pin_verification_value(&new.pan, &new.pin);
        let card = Card {
            masked: new.pan.masked(),
            pan: new.pan,
            token,
            expiry: new.expiry,
            status: new.status,
            pvv,
            pin_tries: 0,
        };
        tracing::debug!(account = %id, card = %card.masked, "account opened");
        self.accounts.push(Account {
            id,
            holder: new.holder,
            phone: new.phone,
            language: new.language,
            currency: new.currency,
            credit_limit_minor: new.credit_limit_minor,
            daily_limit_minor: new.daily_limit_minor,
            daily_spent_minor: 0,
            daily_date: None,
            holds_minor: 0,
            card,
        });
        self.by_token.insert(token, self.accounts.len() - 1);
        Ok(id)
    }

    /// Changes a card's status (lost, stolen, blocked, active again).
    pub fn set_card_status(
        &mut self,
        id: AccountId,
        status: CardStatus,
    ) -> Result<(), IssuerError> {
        let a = self.account_mut(id)?;
        a.card.status = status;
        Ok(())
    }

    /// Clears a card's wrong-PIN counter.
    pub fn reset_pin_tries(&mut self, id: AccountId) -> Result<(), IssuerError> {
        self.account_mut(id)?.card.pin_tries = 0;
        Ok(())
    }

    fn account_mut(&mut self, id: AccountId) -> Result<&mut Account, IssuerError> {
        let i = self.index_of(id).ok_or(IssuerError::UnknownAccount(id.0))?;
        Ok(&mut self.accounts[i])
    }

    fn index_of(&self, id: AccountId) -> Option<usize> {
        let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
        (i < self.accounts.len()).then_some(i)
    }

    /// One account's balances.
    pub fn account(&self, id: AccountId) -> Option<AccountView> {
        self.index_of(id).map(|i| self.view(i))
    }

    /// Every account, in id order.
    pub fn accounts(&self) -> Vec<AccountView> {
        (0..self.accounts.len()).map(|i| self.view(i)).collect()
    }

    fn view(&self, i: usize) -> AccountView {
        let a = &self.accounts[i];
        AccountView {
            id: a.id,
            holder: a.holder.clone(),
            phone: a.phone.clone(),
            language: a.language,
            masked_pan: a.card.masked.to_string(),
            token: a.card.token.to_string(),
            expiry: a.card.expiry.to_yymm(),
            status: a.card.status,
            currency: a.currency.code().to_owned(),
            balance_minor: self.balance_minor(i),
            credit_limit_minor: a.credit_limit_minor,
            holds_minor: a.holds_minor,
            available_minor: self.available_minor(i),
            daily_limit_minor: a.daily_limit_minor,
            daily_spent_minor: a.daily_spent_minor,
            pin_tries: a.card.pin_tries,
        }
    }

    fn balance_minor(&self, i: usize) -> i64 {
        let a = &self.accounts[i];
        self.book.balance(BookAccount::Cardholder(a.id), a.currency)
    }

    fn available_minor(&self, i: usize) -> i64 {
        let a = &self.accounts[i];
        self.balance_minor(i)
            .saturating_add(a.credit_limit_minor)
            .saturating_sub(a.holds_minor)
    }

    /// The double-entry book.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The SMS outbox, oldest first.
    pub fn sms(&self) -> &[Sms] {
        &self.sms
    }

    /// The SMS sent to one account, oldest first.
    pub fn sms_for(&self, id: AccountId) -> Vec<Sms> {
        self.sms
            .iter()
            .filter(|s| s.account == id)
            .cloned()
            .collect()
    }

    /// Every clearing record, in the order the effects were applied.
    pub fn clearing_records(&self) -> &[ClearingRecord] {
        &self.clearing
    }

    /// The clearing file of one local date, as CSV with [`CLEARING_HEADER`].
    pub fn clearing_csv(&self, date: NaiveDate) -> String {
        clearing::to_csv(self.clearing.iter(), date)
    }

    fn next_auth_code(&mut self) -> String {
        self.auth_counter = self.auth_counter % 999_999 + 1;
        format!("{:06}", self.auth_counter)
    }

    /// Resets the daily spend when the local date has changed; returns today's spend.
    fn daily_spent(&mut self, i: usize, today: NaiveDate) -> i64 {
        let a = &mut self.accounts[i];
        if a.daily_date != Some(today) {
            a.daily_date = Some(today);
            a.daily_spent_minor = 0;
        }
        a.daily_spent_minor
    }

    fn add_daily(&mut self, i: usize, today: NaiveDate, delta_minor: i64) {
        let spent = self.daily_spent(i, today);
        self.accounts[i].daily_spent_minor = spent.saturating_add(delta_minor).max(0);
    }

    /// Posts one movement for account `i`, then notifies the cardholder and writes the
    /// clearing line.
    fn apply(&mut self, now: NaiveDateTime, i: usize, m: Movement, tx: &TxRef) {
        if m.amount_minor <= 0 {
            return;
        }
        let (id, currency) = (self.accounts[i].id, self.accounts[i].currency);
        let amount = Amount::new(m.amount_minor, currency);
        let (holder, settlement) = (BookAccount::Cardholder(id), BookAccount::Settlement);
        let (from, to) = if m.debit {
            (holder, settlement)
        } else {
            (settlement, holder)
        };
        self.book.post(now, from, to, amount, Some(tx.rrn), m.memo);
        let available = Amount::new(self.available_minor(i), currency);
        let a = &self.accounts[i];
        let notice = Notice {
            kind: m.sms,
            debit: m.debit,
            masked_pan: a.card.masked.as_str(),
            amount,
            merchant: &tx.merchant_name,
            available,
        };
        let text = notice::render(a.language, now, &notice);
        self.sms.push(Sms {
            seq: self.sms.len() as u64 + 1,
            time: now,
            account: id,
            phone: a.phone.clone(),
            language: a.language,
            kind: m.sms,
            rrn: tx.rrn.to_string(),
            text,
        });
        let mut file_date = now.date();
        if chance(&mut self.rng, self.faults.late_clearing_line_permille) {
            tracing::warn!(rrn = %tx.rrn, "fault: clearing line published a day late");
            file_date = file_date.succ_opt().unwrap_or(file_date);
        }
        let mut published = m.amount_minor;
        if chance(&mut self.rng, self.faults.corrupt_clearing_line_permille) {
            tracing::warn!(rrn = %tx.rrn, "fault: clearing line amount corrupted");
            published += 1;
        }
        let a = &self.accounts[i];
        self.clearing.push(ClearingRecord {
            rrn: tx.rrn,
            auth_code: tx.auth_code.clone(),
            stan: tx.stan.clone(),
            terminal: tx.terminal.clone(),
            merchant: tx.merchant.clone(),
            masked_pan: a.card.masked.to_string(),
            token: a.card.token.to_string(),
            amount_minor: m.amount_minor,
            published_amount_minor: published,
            currency,
            kind: m.clearing,
            time: now,
            file_date,
        });
    }

    fn card_expired(&self, i: usize, now: NaiveDateTime) -> bool {
        let e = self.accounts[i].card.expiry;
        let year = u16::try_from(now.year()).unwrap_or(u16::MAX);
        !e.valid_in(year, now.month() as u8)
    }
}

/// The checks on a new account that need no bank: Luhn and the bounds of its amounts.
fn check_new_account(new: &NewAccount) -> Result<(), IssuerError> {
    if !new.pan.luhn_ok() {
        return Err(IssuerError::invalid("pan", "fails the Luhn check"));
    }
    let bounded = |field, minor: i64, low| {
        if (low..=MAX_ACCOUNT_MINOR).contains(&minor) {
            Ok(())
        } else {
            let reason = format!("must be between {low} and {MAX_ACCOUNT_MINOR}");
            Err(IssuerError::invalid(field, reason))
        }
    };
    bounded("credit_limit_minor", new.credit_limit_minor, 0)?;
    bounded("daily_limit_minor", new.daily_limit_minor, 0)?;
    bounded("balance_minor", new.balance_minor, -MAX_ACCOUNT_MINOR)?;
    if new.balance_minor < -new.credit_limit_minor {
        let reason = "a debt at opening must fit in the credit line (credit_limit_minor)";
        return Err(IssuerError::invalid("balance_minor", reason));
    }
    Ok(())
}

fn parse_data_key(keys: &ClearKeys) -> Result<DataKey, cardsec::SecError> {
    let bytes = hex::decode(&keys.token_key_hex)
        .map_err(|_| cardsec::SecError::BadKey("the token key must be hex"))?;
    DataKey::new(keys.token_key_id, &bytes)
}

/// Serializes a local time as ISO 8601 (`2025-03-21T14:05:09`).
pub(crate) fn ser_time<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S"))
}
