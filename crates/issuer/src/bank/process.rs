//! Answering link messages: network management, authorizations, financial requests,
//! advices and reversals, as `docs/protocol.md` ("Issuer behaviour") says.
//!
//! A transaction is identified by its RRN (field 37), its MTI (repeat digit cleared)
//! and the first two digits of its processing code: a void carries its sale's RRN, so
//! the RRN alone would not tell them apart. A request whose key was seen before is a
//! duplicate: it gets the recorded answer and has no second effect (`94` if its amount
//! or card differ). Originals of voids, refunds, cancels and completions are found by
//! RRN, or by field 90 (MTI, STAN, field 7) when the acquirer gave them a new RRN.

use std::collections::HashMap;

use cardsec::{EncryptedPinBlock, Expiry, KeyKind, MacAlgorithm, Pan, PanToken, SecError, Track2};
use chrono::{NaiveDate, NaiveDateTime};
use domain::{Amount, ResponseCode, Rrn};
use iso8583::subfields::OriginalData;
use iso8583::{Dialect, Message, Mti};

use super::{Bank, ClearingType, Movement, SmsKind, TxRef, MAX_PIN_TRIES};
use crate::faults::chance;
use crate::linkmac;

/// Fields a financial reply echoes from its request.
const FINANCIAL_ECHO: [u8; 13] = [3, 4, 7, 11, 12, 13, 25, 32, 37, 41, 42, 49, 90];
/// Fields a reversal reply echoes.
const REVERSAL_ECHO: [u8; 10] = [3, 4, 7, 11, 32, 37, 41, 42, 49, 90];
/// Fields a network management reply echoes.
const NETWORK_ECHO: [u8; 3] = [7, 11, 70];

/// What identifies a transaction at the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TxKey {
    rrn: Rrn,
    mti: Mti,
    proc2: [u8; 2],
}

/// Original MTI, STAN and field 7, as field 90 names an original (its first 20 digits).
/// How a follow-up names its original on the link: MTI, STAN and field 7 (field 90),
/// and the terminal (field 41, the same on both). STANs are the acquirer's per link,
/// and an acquirer of several nodes has one counter each: MTI, STAN and second alone
/// collided, and a credit adjustment then found another sale (answered 25).
type LinkRef = [u8; 28];

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Balance,
    Sale,
    Void,
    Refund,
    PreAuth,
    Cancel,
    Completion,
    /// A credit adjustment (0220, processing code 22): gives back money a sale or
    /// completion debited in error.
    Adjustment,
}

/// The answer recorded for a transaction or a reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    rc: ResponseCode,
    auth_code: Option<String>,
    balance: Option<String>,
}

impl Outcome {
    fn decline(rc: ResponseCode) -> Outcome {
        Outcome {
            rc,
            auth_code: None,
            balance: None,
        }
    }

    fn approved(auth_code: Option<String>) -> Outcome {
        Outcome {
            rc: ResponseCode::APPROVED,
            auth_code,
            balance: None,
        }
    }
}

/// What a retransmission must repeat to be the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    amount_minor: Option<i64>,
    token: Option<PanToken>,
}

/// One transaction the bank has answered.
struct Tx {
    kind: TxKind,
    rrn: Rrn,
    date: NaiveDate,
    account: Option<usize>,
    amount_minor: i64,
    fingerprint: Fingerprint,
    stan: String,
    terminal: String,
    merchant: String,
    merchant_name: String,
    outcome: Outcome,
    approved: bool,
    reversed: bool,
    voided: bool,
    cancelled: bool,
    completed: bool,
    refunded_minor: i64,
    /// Pre-authorization: the amount held. Void: the amount credited back.
    effect_minor: i64,
    /// Sale or completion: what the cardholder is net debited for it now (debits,
    /// less voids, refunds, reversals and adjustments).
    net_debit_minor: i64,
    original: Option<usize>,
}

/// Every transaction answered, with indexes by key and by link reference.
#[derive(Default)]
pub(crate) struct Transactions {
    list: Vec<Tx>,
    by_key: HashMap<TxKey, usize>,
    by_link: HashMap<LinkRef, usize>,
    reversals: HashMap<TxKey, Outcome>,
}

/// The card as presented in a request.
enum CardInput {
    Absent,
    Invalid,
    Pan(Pan),
}

/// A parsed authorization or financial request.
struct Request {
    key: TxKey,
    kind: TxKind,
    link: Option<LinkRef>,
    original_link: Option<LinkRef>,
    amount: Option<Amount>,
    card: CardInput,
    expiry: Option<Expiry>,
    expiry_unreadable: bool,
    pin_block: Option<EncryptedPinBlock>,
    /// The ZPK version the PIN block is under (field 53), if named.
    zpk_version: Option<u32>,
    /// The presented card's token, computed once.
    token: Option<PanToken>,
    auth_code: Option<String>,
    stan: String,
    terminal: String,
    merchant: String,
    merchant_name: String,
}

/// The zone key versions a link message names in field 53 (`01`, then the ZPK and the
/// ZAK version in seven digits each), if it names them.
fn zone_versions(m: &Message) -> (Option<u32>, Option<u32>) {
    match m.get_str(53) {
        Some(s) if s.len() == 16 && s.starts_with("01") => {
            (s[2..9].parse().ok(), s[9..16].parse().ok())
        }
        _ => (None, None),
    }
}

/// The MTI with its repeat digit cleared: 0421 and 0420 name the same message.
fn base_mti(m: Mti) -> Mti {
    let mut d = m.digits();
    d[3] = b'0';
    Mti::from_digits(d).unwrap_or(m)
}

fn link_ref(mti: Mti, stan: &str, field7: &str, terminal: &str) -> Option<LinkRef> {
    let s = format!("{}{stan}{field7}{terminal}", base_mti(mti));
    s.as_bytes().try_into().ok()
}

fn proc2(msg: &Message) -> Result<[u8; 2], ResponseCode> {
    match msg.get(3) {
        Some(p) if p.len() == 6 && p.iter().all(u8::is_ascii_digit) => Ok([p[0], p[1]]),
        _ => Err(ResponseCode::FORMAT_ERROR),
    }
}

fn classify(mti: Mti, proc2: [u8; 2], condition: Option<&str>) -> Option<TxKind> {
    let preauth_condition = condition == Some("06");
    match (mti.digits(), &proc2) {
        ([_, b'2', b'0', _], b"31") => Some(TxKind::Balance),
        ([_, b'2', b'0', _], b"00") if preauth_condition => Some(TxKind::Completion),
        ([_, b'2', b'0', _], b"00") => Some(TxKind::Sale),
        ([_, b'2', b'0', _], b"20") => Some(TxKind::Void),
        ([_, b'2', b'2', _], b"20") => Some(TxKind::Refund),
        ([_, b'2', b'2', _], b"22") => Some(TxKind::Adjustment),
        ([_, b'1', b'0', _], b"03") => Some(TxKind::PreAuth),
        ([_, b'1', b'0', _], b"20") => Some(TxKind::Cancel),
        _ => None,
    }
}

fn text(msg: &Message, field: u8) -> String {
    msg.get_str(field).unwrap_or("").trim_end().to_owned()
}

fn card_input(msg: &Message) -> (CardInput, Option<Expiry>, bool) {
    let field2 = msg.get_str(2).map(Pan::new);
    let track = msg.get_str(35).map(Track2::parse);
    let mut expiry_unreadable = false;
    let mut expiry = match msg.get_str(14) {
        Some(s) => {
            let e = Expiry::parse(s);
            expiry_unreadable = e.is_none();
            e
        }
        None => None,
    };
    let card = match (field2, track) {
        (None, None) => CardInput::Absent,
        (Some(Err(_)), _) | (_, Some(Err(_))) => CardInput::Invalid,
        (Some(Ok(p)), None) => CardInput::Pan(p),
        (p2, Some(Ok(t))) => {
            if expiry.is_none() {
                expiry = t.expiry();
                expiry_unreadable |= t.expiry().is_none();
            }
            match p2 {
                Some(Ok(p)) if p != *t.pan() => CardInput::Invalid,
                _ => CardInput::Pan(t.pan().clone()),
            }
        }
    };
    (card, expiry, expiry_unreadable)
}

impl Request {
    fn parse(msg: &Message) -> Result<Request, ResponseCode> {
        let format = ResponseCode::FORMAT_ERROR;
        let proc2 = proc2(msg)?;
        let rrn = msg.rrn().map_err(|_| format)?;
        let stan = msg.get_str(11).ok_or(format)?.to_owned();
        let terminal = msg.get_str(41).ok_or(format)?.to_owned();
        let mti = base_mti(msg.mti());
        let kind =
            classify(mti, proc2, msg.get_str(25)).ok_or(ResponseCode::INVALID_TRANSACTION)?;
        let amount = if msg.has(4) {
            Some(msg.amount().map_err(|_| format)?)
        } else if kind == TxKind::Balance {
            None
        } else {
            return Err(format);
        };
        let (card, expiry, expiry_unreadable) = card_input(msg);
        let needs_card = matches!(kind, TxKind::Sale | TxKind::PreAuth | TxKind::Balance);
        if needs_card && matches!(card, CardInput::Absent) {
            return Err(format);
        }
        let pin_block = match msg.get(52) {
            Some(b) => Some(EncryptedPinBlock(b.try_into().map_err(|_| format)?)),
            None => None,
        };
        let link = msg
            .get_str(7)
            .and_then(|f7| link_ref(mti, &stan, f7, &terminal));
        let original_link = OriginalData::read(msg).ok().and_then(|o| {
            let m: Mti = o.mti.parse().ok()?;
            link_ref(m, &o.stan, &o.datetime, &terminal)
        });
        Ok(Request {
            key: TxKey { rrn, mti, proc2 },
            kind,
            link,
            original_link,
            amount,
            card,
            expiry,
            expiry_unreadable,
            pin_block,
            zpk_version: zone_versions(msg).0,
            token: None,
            auth_code: msg.get_str(38).map(str::to_owned),
            stan,
            terminal,
            merchant: text(msg, 42),
            merchant_name: text(msg, 43),
        })
    }
}

/// The bank's answer to a request: the message, and its bytes on the link when they
/// were already packed to be signed (a signed reply is packed once).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The reply.
    pub message: Message,
    signed: Option<Vec<u8>>,
}

impl From<Message> for Reply {
    /// An unsigned reply (network management, a bare format error).
    fn from(message: Message) -> Reply {
        Reply {
            message,
            signed: None,
        }
    }
}

impl Reply {
    /// The reply's `iso87-ascii` bytes.
    pub fn into_wire(self) -> Result<Vec<u8>, iso8583::Error> {
        match self.signed {
            Some(bytes) => Ok(bytes),
            None => Dialect::iso87_ascii().pack(&self.message),
        }
    }
}

impl Bank {
    /// Answers one decoded request at local time `now`; `None` for messages that are
    /// not requests (replies are not for the issuer).
    ///
    /// The MAC is checked over the re-packed message, which is byte-identical to what
    /// the acquirer sent when it used this codec; [`Bank::handle_packed`] checks the
    /// bytes as received.
    pub fn handle(&mut self, now: NaiveDateTime, req: &Message) -> Option<Message> {
        self.dispatch(now, req, None).map(|r| r.message)
    }

    /// Unpacks one `iso87-ascii` message and answers it, checking the MAC over the
    /// bytes as received.
    pub fn handle_packed(
        &mut self,
        now: NaiveDateTime,
        raw: &[u8],
    ) -> Result<Option<Reply>, iso8583::Error> {
        let msg = Dialect::iso87_ascii().unpack(raw)?;
        Ok(self.dispatch(now, &msg, Some(raw)))
    }

    /// Answers a message already unpacked from `raw` (the bytes as received, over
    /// which the MAC is checked).
    pub fn handle_received(
        &mut self,
        now: NaiveDateTime,
        msg: &Message,
        raw: &[u8],
    ) -> Option<Reply> {
        self.dispatch(now, msg, Some(raw))
    }

    fn dispatch(&mut self, now: NaiveDateTime, req: &Message, raw: Option<&[u8]>) -> Option<Reply> {
        let mti = req.mti();
        if !mti.is_request() {
            return None;
        }
        let reply = match mti.class() {
            8 => self.network(req).into(),
            1 | 2 => self.financial(now, req, raw),
            4 => self.reversal(now, req, raw),
            _ => self.reply(
                req,
                &FINANCIAL_ECHO,
                &Outcome::decline(ResponseCode::INVALID_TRANSACTION),
            ),
        };
        Some(reply)
    }

    fn network(&self, req: &Message) -> Message {
        let mut m = Message::new(req.mti().response());
        for f in NETWORK_ECHO {
            if let Some(v) = req.get(f) {
                m.set(f, v);
            }
        }
        let rc = match req.get_str(70) {
            Some("001" | "002" | "301") => ResponseCode::APPROVED,
            Some(_) => ResponseCode::INVALID_TRANSACTION,
            None => ResponseCode::FORMAT_ERROR,
        };
        m.set_response_code(rc);
        m
    }

    fn mac_ok(&self, req: &Message, raw: Option<&[u8]>) -> bool {
        let zak = self.keys.zone_key(KeyKind::Zak, zone_versions(req).1);
        linkmac::verify(req, raw, |data, mac| {
            self.hsm
                .verify_mac(zak, MacAlgorithm::X9_19, data, mac)
                .is_ok()
        })
    }

    fn reply(&self, req: &Message, echo: &[u8], o: &Outcome) -> Reply {
        let mut m = Message::new(req.mti().response());
        for &f in echo {
            if let Some(v) = req.get(f) {
                m.set(f, v);
            }
        }
        if o.rc.is_approved() {
            if let Some(a) = &o.auth_code {
                m.set(38, a);
            }
            if let Some(b) = &o.balance {
                m.set(54, b);
            }
        }
        m.set_response_code(o.rc);
        let zak = self.keys.zone_key(KeyKind::Zak, zone_versions(req).1);
        if let Some(f53) = req.get(53) {
            m.set(53, f53);
        }
        let signed = linkmac::sign(&mut m, |data| {
            self.hsm.generate_mac(zak, MacAlgorithm::X9_19, data)
        });
        if let Err(e) = &signed {
            tracing::error!(error = %e, mti = %m.mti(), "reply could not be signed");
        }
        Reply {
            message: m,
            signed: signed.ok(),
        }
    }

    fn financial(&mut self, now: NaiveDateTime, req: &Message, raw: Option<&[u8]>) -> Reply {
        if !self.mac_ok(req, raw) {
            tracing::warn!(mti = %req.mti(), rrn = req.get_str(37).unwrap_or("-"), "MAC failure: answered A0, no effect");
            return self.reply(
                req,
                &FINANCIAL_ECHO,
                &Outcome::decline(ResponseCode::MAC_ERROR),
            );
        }
        let outcome = match Request::parse(req) {
            Ok(mut r) => {
                if let CardInput::Pan(p) = &r.card {
                    r.token = Some(self.token_of(p));
                }
                self.authorize(now, r)
            }
            Err(rc) => {
                tracing::warn!(mti = %req.mti(), %rc, "request refused before processing");
                Outcome::decline(rc)
            }
        };
        self.reply(req, &FINANCIAL_ECHO, &outcome)
    }

    fn authorize(&mut self, now: NaiveDateTime, r: Request) -> Outcome {
        let fingerprint = Fingerprint {
            amount_minor: r.amount.map(|a| a.minor),
            token: r.token,
        };
        if let Some(&i) = self.txs.by_key.get(&r.key) {
            let tx = &self.txs.list[i];
            if tx.fingerprint == fingerprint {
                tracing::debug!(rrn = %r.key.rrn, kind = ?r.kind, "duplicate answered from the record");
                return tx.outcome.clone();
            }
            tracing::warn!(rrn = %r.key.rrn, kind = ?r.kind, "same key, different content: 94");
            return Outcome::decline(ResponseCode::DUPLICATE);
        }
        let i = self.txs.list.len();
        self.txs.list.push(Tx {
            kind: r.kind,
            rrn: r.key.rrn,
            date: now.date(),
            account: None,
            amount_minor: r.amount.map_or(0, |a| a.minor),
            fingerprint,
            stan: r.stan.clone(),
            terminal: r.terminal.clone(),
            merchant: r.merchant.clone(),
            merchant_name: r.merchant_name.clone(),
            outcome: Outcome::decline(ResponseCode::SYSTEM_MALFUNCTION),
            approved: false,
            reversed: false,
            voided: false,
            cancelled: false,
            completed: false,
            refunded_minor: 0,
            effect_minor: 0,
            net_debit_minor: 0,
            original: None,
        });
        self.txs.by_key.insert(r.key, i);
        if let Some(l) = r.link {
            self.txs.by_link.insert(l, i);
        }
        let result = if self.early_reversals.contains(&r.key) {
            tracing::warn!(rrn = %r.key.rrn, kind = ?r.kind, "original arrived after its reversal: declined");
            Err(ResponseCode::INVALID_TRANSACTION)
        } else {
            match r.kind {
                TxKind::Balance => self.balance_inquiry(now, i, &r),
                TxKind::Sale => self.sale(now, i, &r),
                TxKind::PreAuth => self.preauth(now, i, &r),
                TxKind::Void => self.void(now, i, &r),
                TxKind::Refund => self.refund(now, i, &r),
                TxKind::Cancel => self.cancel(now, i, &r),
                TxKind::Completion => self.completion(now, i, &r),
                TxKind::Adjustment => self.adjustment(now, i, &r),
            }
        };
        let outcome = result.unwrap_or_else(Outcome::decline);
        tracing::debug!(rrn = %r.key.rrn, kind = ?r.kind, rc = %outcome.rc, "answered");
        let tx = &mut self.txs.list[i];
        tx.approved = outcome.rc.is_approved();
        tx.outcome = outcome.clone();
        outcome
    }

    /// Checks a presented card: number, status, expiry, then PIN. Returns its account.
    fn present_card(&mut self, now: NaiveDateTime, r: &Request) -> Result<usize, ResponseCode> {
        let CardInput::Pan(pan) = &r.card else {
            return Err(ResponseCode::INVALID_CARD);
        };
        if !pan.luhn_ok() {
            return Err(ResponseCode::INVALID_CARD);
        }
        let token = r.token.unwrap_or_else(|| self.token_of(pan));
        let a = *self
            .by_token
            .get(&token)
            .ok_or(ResponseCode::INVALID_CARD)?;
        let card = &self.accounts[a].card;
        if let Some(rc) = card.status.decline_code() {
            return Err(rc);
        }
        let wrong_expiry = r.expiry.is_some_and(|e| e != card.expiry);
        if r.expiry_unreadable || wrong_expiry || self.card_expired(a, now) {
            return Err(ResponseCode::EXPIRED_CARD);
        }
        if let Some(block) = &r.pin_block {
            self.check_pin(a, block, r.zpk_version)?;
        }
        Ok(a)
    }

    fn check_pin(
        &mut self,
        a: usize,
        block: &EncryptedPinBlock,
        zpk_version: Option<u32>,
    ) -> Result<(), ResponseCode> {
        let card = &self.accounts[a].card;
        if card.pin_tries >= MAX_PIN_TRIES {
            return Err(ResponseCode::PIN_TRIES_EXCEEDED);
        }
        let verified = self.hsm.verify_pin(
            self.keys.zone_key(KeyKind::Zpk, zpk_version),
            &card.pan,
            block,
            &card.pvv,
        );
        let card = &mut self.accounts[a].card;
        match verified {
            Ok(true) => {
                card.pin_tries = 0;
                Ok(())
            }
            Ok(false) | Err(SecError::PinBlockFormat) => {
                card.pin_tries += 1;
                if card.pin_tries >= MAX_PIN_TRIES {
                    Err(ResponseCode::PIN_TRIES_EXCEEDED)
                } else {
                    Err(ResponseCode::WRONG_PIN)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "PIN verification failed");
                Err(ResponseCode::SYSTEM_MALFUNCTION)
            }
        }
    }

    /// Checks that account `a` may spend `amount` now: currency, amount, funds, daily limit.
    fn check_spend(
        &mut self,
        now: NaiveDateTime,
        a: usize,
        amount: Option<Amount>,
    ) -> Result<i64, ResponseCode> {
        let amount = amount.ok_or(ResponseCode::FORMAT_ERROR)?;
        if amount.currency != self.accounts[a].currency {
            return Err(ResponseCode::INVALID_TRANSACTION);
        }
        if amount.minor <= 0 {
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        if self.available_minor(a) < amount.minor {
            return Err(ResponseCode::INSUFFICIENT_FUNDS);
        }
        let spent = self.daily_spent(a, now.date());
        if spent.saturating_add(amount.minor) > self.accounts[a].daily_limit_minor {
            return Err(ResponseCode::OVER_AMOUNT_LIMIT);
        }
        Ok(amount.minor)
    }

    fn tx_ref(&self, i: usize, auth_code: &str) -> TxRef {
        let tx = &self.txs.list[i];
        TxRef {
            rrn: tx.rrn,
            auth_code: auth_code.to_owned(),
            stan: tx.stan.clone(),
            terminal: tx.terminal.clone(),
            merchant: tx.merchant.clone(),
            merchant_name: tx.merchant_name.clone(),
        }
    }

    /// Debits a sale or completion, twice under the double-debit fault.
    fn debit(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        a: usize,
        minor: i64,
        auth: &str,
        kind: TxKind,
    ) {
        let (sms, clearing, memo) = if kind == TxKind::Completion {
            (SmsKind::Completion, ClearingType::Completion, "completion")
        } else {
            (SmsKind::Sale, ClearingType::Sale, "sale")
        };
        let m = Movement {
            debit: true,
            amount_minor: minor,
            sms,
            clearing,
            memo,
        };
        let tx = self.tx_ref(i, auth);
        self.apply(now, a, m, &tx);
        self.txs.list[i].net_debit_minor += minor;
        if chance(&mut self.rng, self.faults.double_debit_permille) {
            tracing::warn!(rrn = %tx.rrn, "fault: debited twice");
            self.apply(now, a, m, &tx);
            self.txs.list[i].net_debit_minor += minor;
        }
    }

    fn balance_inquiry(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let a = self.present_card(now, r)?;
        self.txs.list[i].account = Some(a);
        let available = self.available_minor(a);
        let sign = if available < 0 { 'D' } else { 'C' };
        let numeric = self.accounts[a].currency.numeric();
        let mut o = Outcome::approved(Some(self.next_auth_code()));
        o.balance = Some(format!(
            "1002{numeric:03}{sign}{:012}",
            available.unsigned_abs()
        ));
        Ok(o)
    }

    fn sale(&mut self, now: NaiveDateTime, i: usize, r: &Request) -> Result<Outcome, ResponseCode> {
        let a = self.present_card(now, r)?;
        self.txs.list[i].account = Some(a);
        let minor = self.check_spend(now, a, r.amount)?;
        let auth = self.next_auth_code();
        self.add_daily(a, now.date(), minor);
        self.debit(now, i, a, minor, &auth, TxKind::Sale);
        Ok(Outcome::approved(Some(auth)))
    }

    fn preauth(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let a = self.present_card(now, r)?;
        self.txs.list[i].account = Some(a);
        let minor = self.check_spend(now, a, r.amount)?;
        self.add_daily(a, now.date(), minor);
        self.accounts[a].holds_minor += minor;
        self.txs.list[i].effect_minor = minor;
        Ok(Outcome::approved(Some(self.next_auth_code())))
    }

    /// The original a void, refund, cancel or completion names, checked against it.
    fn original(
        &self,
        r: &Request,
        mti: &str,
        proc2: &[u8; 2],
        kinds: &[TxKind],
    ) -> Result<usize, ResponseCode> {
        let not_found = ResponseCode::ORIGINAL_NOT_FOUND;
        let key = TxKey {
            rrn: r.key.rrn,
            mti: Mti::lit(mti),
            proc2: *proc2,
        };
        let fits = |&i: &usize| kinds.contains(&self.txs.list[i].kind);
        let o = self
            .txs
            .by_key
            .get(&key)
            .copied()
            .filter(fits)
            .or_else(|| {
                r.original_link
                    .and_then(|l| self.txs.by_link.get(&l).copied())
                    .filter(fits)
            })
            .ok_or(not_found)
            .inspect_err(|_| {
                tracing::debug!(rrn = %r.key.rrn, link = ?r.original_link.map(|l| String::from_utf8_lossy(&l).into_owned()), "original not found");
            })?;
        let orig = &self.txs.list[o];
        let a = orig
            .account
            .filter(|_| orig.approved)
            .ok_or(not_found)
            .inspect_err(|_| {
                tracing::debug!(rrn = %orig.rrn, approved = orig.approved, "original not approved");
            })?;
        match &r.card {
            CardInput::Absent => {}
            CardInput::Invalid => return Err(ResponseCode::INVALID_CARD),
            CardInput::Pan(_) if r.token != Some(self.accounts[a].card.token) => {
                tracing::debug!(rrn = %orig.rrn, "original's card differs");
                return Err(not_found);
            }
            CardInput::Pan(_) => {}
        }
        if r.auth_code.is_some() && r.auth_code != orig.outcome.auth_code {
            tracing::debug!(rrn = %orig.rrn, "original's authorization code differs");
            return Err(not_found);
        }
        Ok(o)
    }

    fn void(&mut self, now: NaiveDateTime, i: usize, r: &Request) -> Result<Outcome, ResponseCode> {
        let o = self.original(r, "0200", b"00", &[TxKind::Sale, TxKind::Completion])?;
        let orig = &self.txs.list[o];
        let (a, orig_kind, orig_date) = (orig.account.unwrap_or(0), orig.kind, orig.date);
        if r.amount.map(|x| x.minor) != Some(orig.amount_minor) {
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        let undone = orig.voided || orig.reversed;
        let credit = if undone {
            0
        } else {
            orig.amount_minor - orig.refunded_minor
        };
        let auth = self.next_auth_code();
        self.txs.list[i].effect_minor = credit;
        self.txs.list[o].voided = true;
        if orig_kind == TxKind::Sale && !undone {
            self.undo_daily(a, orig_date, self.txs.list[o].amount_minor);
        }
        let line = self.tx_ref(i, &auth);
        let m = Movement::credit(credit, SmsKind::Void, ClearingType::Void, "void");
        self.credit_back(now, i, o, m, &line);
        Ok(Outcome::approved(Some(auth)))
    }

    fn refund(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let o = self.original(r, "0200", b"00", &[TxKind::Sale, TxKind::Completion])?;
        let orig = &self.txs.list[o];
        if orig.voided || orig.reversed {
            return Err(ResponseCode::INVALID_TRANSACTION);
        }
        let minor = r.amount.map_or(0, |x| x.minor);
        if minor <= 0 || minor > orig.amount_minor - orig.refunded_minor {
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        let auth = self.next_auth_code();
        self.txs.list[o].refunded_minor += minor;
        let line = self.tx_ref(i, &auth);
        let m = Movement::credit(minor, SmsKind::Refund, ClearingType::Refund, "refund");
        self.credit_back(now, i, o, m, &line);
        Ok(Outcome::approved(Some(auth)))
    }

    fn cancel(
        &mut self,
        _now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let o = self.original(r, "0100", b"03", &[TxKind::PreAuth])?;
        let orig = &self.txs.list[o];
        let (a, hold, date) = (orig.account.unwrap_or(0), orig.effect_minor, orig.date);
        if orig.completed {
            return Err(ResponseCode::INVALID_TRANSACTION);
        }
        if r.amount.map(|x| x.minor) != Some(orig.amount_minor) {
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        if !orig.cancelled && !orig.reversed {
            self.release_hold(a, hold);
            self.undo_daily(a, date, hold);
            self.txs.list[o].cancelled = true;
        }
        let tx = &mut self.txs.list[i];
        tx.account = Some(a);
        tx.original = Some(o);
        Ok(Outcome::approved(Some(self.next_auth_code())))
    }

    fn completion(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let o = self.original(r, "0100", b"03", &[TxKind::PreAuth])?;
        let orig = &self.txs.list[o];
        let (a, hold) = (orig.account.unwrap_or(0), orig.effect_minor);
        if orig.completed || orig.cancelled || orig.reversed {
            return Err(ResponseCode::INVALID_TRANSACTION);
        }
        let minor = r.amount.map_or(0, |x| x.minor);
        if minor <= 0 || minor > hold {
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        let auth = self.next_auth_code();
        self.release_hold(a, hold);
        self.txs.list[o].completed = true;
        let tx = &mut self.txs.list[i];
        tx.account = Some(a);
        tx.original = Some(o);
        self.debit(now, i, a, minor, &auth, TxKind::Completion);
        Ok(Outcome::approved(Some(auth)))
    }

    /// Gives back, once, money a sale or completion debited in error, as the acquirer's
    /// reconciliation found it: never more than the cardholder is net debited for that
    /// transaction now (`13` otherwise). The line in the clearing file carries the
    /// adjusted transaction's RRN and authorization code, and the cardholder gets an
    /// SMS.
    fn adjustment(
        &mut self,
        now: NaiveDateTime,
        i: usize,
        r: &Request,
    ) -> Result<Outcome, ResponseCode> {
        let o = self.original(r, "0200", b"00", &[TxKind::Sale, TxKind::Completion])?;
        let orig = &self.txs.list[o];
        let minor = r.amount.map_or(0, |x| x.minor);
        if minor <= 0 || minor > orig.net_debit_minor {
            tracing::warn!(rrn = %orig.rrn, minor, net = orig.net_debit_minor, "adjustment larger than the net debit: 13");
            return Err(ResponseCode::INVALID_AMOUNT);
        }
        // The line is the sale's: its RRN, authorization code and link STAN.
        let auth = orig.outcome.auth_code.clone().unwrap_or_default();
        let line = self.tx_ref(o, &auth);
        self.txs.list[i].effect_minor = minor;
        let m = Movement::credit(
            minor,
            SmsKind::Adjustment,
            ClearingType::Adjustment,
            "adjustment",
        );
        tracing::info!(rrn = %line.rrn, minor, "credit adjustment applied");
        self.credit_back(now, i, o, m, &line);
        Ok(Outcome::approved(Some(self.next_auth_code())))
    }

    /// Gives money back to the cardholder of original `o` through follow-up `i` (void,
    /// refund, adjustment): links them, lowers what the cardholder is net debited for
    /// `o`, and moves the money with its SMS and the clearing `line`.
    fn credit_back(&mut self, now: NaiveDateTime, i: usize, o: usize, m: Movement, line: &TxRef) {
        let a = self.txs.list[o].account.unwrap_or(0);
        self.txs.list[o].net_debit_minor -= m.amount_minor;
        let f = &mut self.txs.list[i];
        f.account = Some(a);
        f.original = Some(o);
        self.apply(now, a, m, line);
    }

    fn release_hold(&mut self, a: usize, minor: i64) {
        let h = &mut self.accounts[a].holds_minor;
        *h = (*h - minor).max(0);
    }

    fn undo_daily(&mut self, a: usize, date: NaiveDate, minor: i64) {
        let acct = &mut self.accounts[a];
        if acct.daily_date == Some(date) {
            acct.daily_spent_minor = (acct.daily_spent_minor - minor).max(0);
        }
    }

    fn reversal(&mut self, now: NaiveDateTime, req: &Message, raw: Option<&[u8]>) -> Reply {
        if !self.mac_ok(req, raw) {
            tracing::warn!(
                rrn = req.get_str(37).unwrap_or("-"),
                "reversal MAC failure: answered A0, no effect"
            );
            return self.reply(
                req,
                &REVERSAL_ECHO,
                &Outcome::decline(ResponseCode::MAC_ERROR),
            );
        }
        let key = match self.reversal_key(req) {
            Ok(k) => k,
            Err(rc) => return self.reply(req, &REVERSAL_ECHO, &Outcome::decline(rc)),
        };
        if let Some(o) = self.txs.reversals.get(&key) {
            tracing::debug!(rrn = %key.rrn, rc = %o.rc, "repeated reversal answered from the record");
            return self.reply(req, &REVERSAL_ECHO, &o.clone());
        }
        let outcome = match self.txs.by_key.get(&key).copied() {
            None => {
                tracing::warn!(rrn = %key.rrn, "reversal before its original: remembered, answered 25");
                self.early_reversals.insert(key);
                Outcome::decline(ResponseCode::ORIGINAL_NOT_FOUND)
            }
            Some(i) if !self.same_card(req, i) => {
                Outcome::decline(ResponseCode::ORIGINAL_NOT_FOUND)
            }
            Some(_)
                if chance(
                    &mut self.rng,
                    self.faults.reversal_ack_without_apply_permille,
                ) =>
            {
                tracing::warn!(rrn = %key.rrn, "fault: reversal acknowledged without applying it");
                Outcome::approved(None)
            }
            Some(i) => self.undo(now, i),
        };
        tracing::debug!(rrn = %key.rrn, rc = %outcome.rc, "reversal answered");
        self.txs.reversals.insert(key, outcome.clone());
        self.reply(req, &REVERSAL_ECHO, &outcome)
    }

    /// The key of the transaction a reversal names: RRN, processing code, and the
    /// original MTI from field 90 (inferred from what is known when 90 is absent).
    fn reversal_key(&self, req: &Message) -> Result<TxKey, ResponseCode> {
        let proc2 = proc2(req)?;
        let rrn = req.rrn().map_err(|_| ResponseCode::FORMAT_ERROR)?;
        let from_90 = OriginalData::read(req)
            .ok()
            .and_then(|o| o.mti.parse::<Mti>().ok())
            .map(base_mti);
        let mti = from_90.unwrap_or_else(|| {
            let candidates = if &proc2 == b"03" {
                ["0100"].as_slice()
            } else {
                ["0200", "0100", "0220"].as_slice()
            };
            candidates
                .iter()
                .map(|m| Mti::lit(m))
                .find(|&mti| self.txs.by_key.contains_key(&TxKey { rrn, mti, proc2 }))
                .unwrap_or(Mti::lit(candidates[0]))
        });
        Ok(TxKey { rrn, mti, proc2 })
    }

    fn same_card(&self, req: &Message, i: usize) -> bool {
        let Some(token) = self.txs.list[i].fingerprint.token else {
            return true;
        };
        match card_input(req).0 {
            CardInput::Absent => true,
            CardInput::Invalid => false,
            CardInput::Pan(p) => self.token_of(&p) == token,
        }
    }

    /// Undoes transaction `i` once; what is already undone is left alone.
    fn undo(&mut self, now: NaiveDateTime, i: usize) -> Outcome {
        let ok = Outcome::approved(None);
        let tx = &self.txs.list[i];
        let (Some(a), true, false) = (tx.account, tx.approved, tx.reversed) else {
            return ok;
        };
        let (kind, amount, date, original) = (tx.kind, tx.amount_minor, tx.date, tx.original);
        let auth = tx.outcome.auth_code.clone().unwrap_or_default();
        let mut movement =
            Movement::credit(0, SmsKind::Reversal, ClearingType::Reversal, "reversal");
        match kind {
            TxKind::Balance => {}
            TxKind::Sale | TxKind::Completion => {
                // A void already gave the money back and closed the transaction.
                if !tx.voided {
                    movement.amount_minor = amount - tx.refunded_minor;
                    self.txs.list[i].net_debit_minor -= movement.amount_minor;
                    if kind == TxKind::Sale {
                        self.undo_daily(a, date, amount);
                    }
                    if let Some(p) = original.filter(|&p| !self.txs.list[p].reversed) {
                        // The pre-authorization is open again.
                        self.txs.list[p].completed = false;
                        self.accounts[a].holds_minor += self.txs.list[p].effect_minor;
                    }
                }
            }
            TxKind::PreAuth => {
                if tx.completed {
                    return Outcome::decline(ResponseCode::INVALID_TRANSACTION);
                }
                if !tx.cancelled {
                    let hold = tx.effect_minor;
                    self.release_hold(a, hold);
                    self.undo_daily(a, date, hold);
                }
            }
            TxKind::Void => {
                let o = original.unwrap_or(i);
                if !self.txs.list[o].reversed && tx.effect_minor > 0 {
                    movement.debit = true;
                    movement.amount_minor = tx.effect_minor;
                    movement.clearing = ClearingType::VoidReversal;
                    let effect = tx.effect_minor;
                    self.txs.list[o].voided = false;
                    self.txs.list[o].net_debit_minor += effect;
                }
            }
            TxKind::Refund => {
                let o = original.unwrap_or(i);
                self.txs.list[o].refunded_minor -= amount;
                self.txs.list[o].net_debit_minor += amount;
                movement.debit = true;
                movement.amount_minor = amount;
                movement.clearing = ClearingType::RefundReversal;
            }
            TxKind::Adjustment => {
                // A credit adjustment is final: a correction is another adjustment.
                return Outcome::decline(ResponseCode::INVALID_TRANSACTION);
            }
            TxKind::Cancel => {
                let p = original.unwrap_or(i);
                let pre = &self.txs.list[p];
                if !pre.reversed && !pre.completed {
                    let hold = pre.effect_minor;
                    self.txs.list[p].cancelled = false;
                    self.accounts[a].holds_minor += hold;
                }
            }
        }
        self.txs.list[i].reversed = true;
        let tx = self.tx_ref(i, &auth);
        self.apply(now, a, movement, &tx);
        ok
    }
}
