//! The sans-IO terminal: builds framed requests, checks replies, keeps the pending
//! reversal and the batch record. No clock, no socket: the caller moves the bytes and
//! says when a reply did not arrive in time.

use std::fmt;

use cardsec::{cup_ecb_mac, mac_equal, Key, KeyLayout, TerminalKeys};
use domain::{Currency, MerchantId, ResponseCode, Rrn, Stan, TerminalId};
use iso8583::frame::{encode_frame, CupEnvelope, CupHeader, Tpdu, DEFAULT_MAX_FRAME};
use iso8583::subfields::{BatchTotals, Field60, Field61, Totals};
use iso8583::{Dialect, Message};

use crate::card::Card;
use crate::kind::TxKind;

/// Fields a reversal never repeats from its original: the PIN block and the old MAC.
/// (Field 53 stays: it says whether the repeated track 2 is encrypted.)
const NOT_IN_REVERSAL: [u8; 2] = [52, 64];

/// What a terminal is: its identities, its master key and its framing.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 42.
    pub merchant_id: MerchantId,
    /// The clear terminal master key injected at installation (secret, redacted in `Debug`).
    pub tmk: Key,
    /// The TPDU in front of every request.
    pub tpdu: Tpdu,
    /// The 6-byte application header.
    pub header: CupHeader,
    /// Operator number sent in field 63 at sign-on (three characters).
    pub operator: String,
    /// Currency of every amount (field 49).
    pub currency: Currency,
    /// The STAN of the first request.
    pub first_stan: Stan,
    /// The batch number before the first sign-on reply sets it.
    pub first_batch: u32,
    /// Bound on the batch record; financial requests are refused when it is full.
    pub max_batch_entries: usize,
    /// Bound on a frame's size in bytes.
    pub max_frame: usize,
    /// Where the terminal reports it stands (`lat,lon`, field 59), if it has a GPS fix.
    pub location: Option<String>,
    /// The working keys it signs on for (60.3): double-length by default; with
    /// `DoubleWithTrack` it also gets a track key and sends track 2 encrypted.
    pub key_layout: KeyLayout,
}

impl TerminalConfig {
    /// A configuration with posguard's defaults: TPDU `60 0003 0000`, CNY, STAN 1, batch 1.
    pub fn new(terminal_id: TerminalId, merchant_id: MerchantId, tmk: Key) -> TerminalConfig {
        TerminalConfig {
            terminal_id,
            merchant_id,
            tmk,
            tpdu: Tpdu {
                id: 0x60,
                destination: 0x0003,
                source: 0x0000,
            },
            header: CupHeader([0x60, 0x32, 0x10, 0x32, 0x00, 0x72]),
            operator: "001".to_owned(),
            currency: Currency::CNY,
            first_stan: Stan::new(1).unwrap_or_else(|_| unreachable!("1 is a valid STAN")),
            first_batch: 1,
            max_batch_entries: 100_000,
            max_frame: DEFAULT_MAX_FRAME,
            location: None,
            key_layout: KeyLayout::Double,
        }
    }
}

/// Why the terminal refused to build a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalError {
    /// Financial requests need working keys: sign on first.
    #[error("not signed on")]
    NotSignedOn,
    /// A terminal is serial: answer or time out the request in flight first.
    #[error("request with STAN {0} is still in flight")]
    Busy(Stan),
    /// The card data cannot be sent.
    #[error("card: {0}")]
    Card(&'static str),
    /// The amount is negative, too large, or above what the original allows.
    #[error("amount: {0}")]
    Amount(&'static str),
    /// The original named by a void, refund, cancel or completion does not fit.
    #[error("original transaction: {0}")]
    Original(&'static str),
    /// The batch record holds `max_batch_entries`; settle or clear it.
    #[error("batch record is full")]
    BatchFull,
    /// A batch upload is under way: finish it (`next_upload`) or abandon it first.
    #[error("batch upload in progress")]
    Settling,
    /// `cancel_after_approval` without an approved reversible transaction just before.
    #[error("no approved transaction to cancel")]
    NothingToCancel,
    /// The message could not be packed or framed.
    #[error("encode: {0}")]
    Encode(String),
}

/// Why a reply frame was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a `cup-pos` frame or not a message; the request stays in flight.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// Not the reply to the request in flight (late, stray or for another terminal);
    /// the request stays in flight.
    #[error("unexpected reply {mti} with STAN {stan}")]
    Unexpected {
        /// The reply's MTI.
        mti: String,
        /// The reply's field 11 as sent.
        stan: String,
    },
}

/// A framed request ready to write: 2-byte length, TPDU, header, message.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// What the request is.
    pub kind: TxKind,
    /// Its STAN (a reversal carries its original's).
    pub stan: Stan,
    /// The bytes to write, length prefix included.
    pub frame: Vec<u8>,
}

impl fmt::Debug for Request {
    /// The frame may hold track data: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("stan", &self.stan)
            .field("frame_len", &self.frame.len())
            .finish()
    }
}

/// One approved transaction in the terminal's batch record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// What was approved.
    pub kind: TxKind,
    /// Its STAN.
    pub stan: Stan,
    /// The batch it was sent in (60.2).
    pub batch: u32,
    /// The acquirer's retrieval reference number.
    pub rrn: Rrn,
    /// The issuer's authorization code, if sent.
    pub auth_code: Option<String>,
    /// The amount sent, in minor units.
    pub amount_minor: i64,
    /// The host's date of the transaction (reply field 13), `MMDD`.
    pub date_mmdd: Option<String>,
    /// The (batch, STAN) of the original for voids, refunds, cancels and completions.
    pub original: Option<(u32, Stan)>,
    /// Whether a later approved void, refund, cancel or completion used this entry.
    pub closed: bool,
}

/// How a batch settlement ended, as the terminal learned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementResult {
    /// The 0510 said the totals agree: the batch is closed and the next one begun.
    Balanced,
    /// The 0510 said they differ: the terminal must upload its batch (`next_upload`).
    NotBalanced,
    /// The batch end of an upload was accepted: the batch is closed and the next one begun.
    Uploaded,
}

/// How the terminal judged a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Field 39 = `00` on a reply whose MAC verified.
    Approved,
    /// Any other field 39 on a reply whose MAC verified.
    Declined,
    /// The reply's MAC is missing or wrong: a reversible request is reversed with `A0`.
    MacFailure,
    /// The reply verified but cannot be used (no response code, bad key block, no RRN).
    BadReply(&'static str),
}

/// The result of a reply to the request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What the request was.
    pub kind: TxKind,
    /// Its STAN.
    pub stan: Stan,
    /// How the terminal judged the reply.
    pub verdict: Verdict,
    /// Field 39 as received (untrusted when the MAC failed).
    pub response_code: Option<ResponseCode>,
    /// Field 38.
    pub auth_code: Option<String>,
    /// Field 37.
    pub rrn: Option<Rrn>,
    /// Balance from field 54 (negative for a debit balance), for inquiries.
    pub balance_minor: Option<i64>,
    /// The batch entry recorded for an approved financial transaction.
    pub entry: Option<BatchEntry>,
    /// For a settlement (0510) or a batch end (0330) that was accepted: how it ended.
    pub settlement: Option<SettlementResult>,
}

impl Outcome {
    /// Whether the host approved and the reply verified.
    pub fn is_approved(&self) -> bool {
        self.verdict == Verdict::Approved
    }
}

/// The reversal the terminal owes the acquirer, as the caller may inspect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingReversal {
    /// The original's kind.
    pub kind: TxKind,
    /// The original's STAN (also the reversal's).
    pub stan: Stan,
    /// Field 39 the reversal will carry: `98`, `A0` or `06`.
    pub reason: ResponseCode,
    /// How many times the 0400 has been handed out.
    pub attempts: u32,
}

struct Pending {
    info: PendingReversal,
    original: Message,
}

struct InFlight {
    kind: TxKind,
    stan: Stan,
    batch: u32,
    request: Message,
    original: Option<(u32, Stan)>,
}

/// A batch upload under way: what to upload, how far it got.
struct Upload {
    /// The batch being settled.
    batch: u32,
    /// The entries to upload, in record order.
    entries: Vec<BatchEntry>,
    /// The next entry to hand out (advanced by each accepted 0330).
    next: usize,
    /// The batch end's STAN once handed out: a repeat after a timeout reuses it, so the
    /// host recognizes the retransmission.
    end_stan: Option<Stan>,
}

struct LastApproved {
    kind: TxKind,
    stan: Stan,
    batch: u32,
    request: Message,
}

/// One POS terminal's protocol state, without IO.
pub struct Terminal {
    config: TerminalConfig,
    next_stan: Stan,
    batch: u32,
    keys: Option<TerminalKeys>,
    signed_on: bool,
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
    last_approved: Option<LastApproved>,
    record: Vec<BatchEntry>,
    /// The STAN of a 0500 that got no answer: a repeat reuses it.
    settle_stan: Option<Stan>,
    upload: Option<Upload>,
}

impl fmt::Debug for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminal")
            .field("terminal_id", &self.config.terminal_id)
            .field("next_stan", &self.next_stan)
            .field("batch", &self.batch)
            .field("signed_on", &self.signed_on)
            .field("pending_reversal", &self.pending_reversal())
            .field("in_flight", &self.in_flight())
            .field("batch_entries", &self.record.len())
            .field("uploading", &self.upload.is_some())
            .finish()
    }
}

impl Terminal {
    /// A terminal that has not signed on yet.
    pub fn new(config: TerminalConfig) -> Terminal {
        Terminal {
            next_stan: config.first_stan,
            batch: config.first_batch,
            config,
            keys: None,
            signed_on: false,
            pending: None,
            in_flight: None,
            last_approved: None,
            record: Vec::new(),
            settle_stan: None,
            upload: None,
        }
    }

    /// Field 41.
    pub fn terminal_id(&self) -> TerminalId {
        self.config.terminal_id
    }

    /// Field 42.
    pub fn merchant_id(&self) -> MerchantId {
        self.config.merchant_id
    }

    /// The current batch number (60.2).
    pub fn batch_number(&self) -> u32 {
        self.batch
    }

    /// The STAN the next new request will use.
    pub fn next_stan(&self) -> Stan {
        self.next_stan
    }

    /// Where the terminal reports it stands from now on (field 59, `lat,lon`).
    pub fn set_location(&mut self, location: Option<String>) {
        self.config.location = location;
    }

    /// Whether the terminal holds working keys and may send financial requests.
    pub fn is_signed_on(&self) -> bool {
        self.signed_on
    }

    /// The reversal owed to the acquirer, if any.
    pub fn pending_reversal(&self) -> Option<PendingReversal> {
        self.pending.as_ref().map(|p| p.info)
    }

    /// The request waiting for its reply, if any.
    pub fn in_flight(&self) -> Option<(TxKind, Stan)> {
        self.in_flight.as_ref().map(|f| (f.kind, f.stan))
    }

    /// The approved transactions of the batch record, oldest first.
    pub fn batch(&self) -> &[BatchEntry] {
        &self.record
    }

    /// Whether the batch record holds `max_batch_entries` and refuses new transactions.
    pub fn batch_is_full(&self) -> bool {
        self.record.len() >= self.config.max_batch_entries
    }

    /// Empties the batch record (after settlement, or once the caller has copied it).
    pub fn clear_batch(&mut self) -> Vec<BatchEntry> {
        self.last_approved = None;
        self.upload = None;
        std::mem::take(&mut self.record)
    }

    /// The entries a settlement counts and uploads: approved sales and completions of
    /// the current batch not voided, and its approved refunds. (`closed` is not enough:
    /// a refund or completion closes its original too.)
    fn settled_entries(&self) -> impl Iterator<Item = &BatchEntry> + '_ {
        let voided: std::collections::HashSet<(u32, Stan)> = self
            .record
            .iter()
            .filter(|e| e.kind == TxKind::Void)
            .filter_map(|e| e.original)
            .collect();
        self.record.iter().filter(move |e| {
            e.batch == self.batch
                && match e.kind {
                    TxKind::Sale | TxKind::Completion => !voided.contains(&(e.batch, e.stan)),
                    TxKind::Refund => true,
                    _ => false,
                }
        })
    }

    /// The batch is closed at the host: empty the record and begin the next batch
    /// (60.2 is six digits; 0 is not a batch number).
    fn close_batch(&mut self) {
        self.clear_batch();
        self.settle_stan = None;
        self.batch = if self.batch >= 999_999 {
            1
        } else {
            self.batch + 1
        };
    }

    /// 0800 sign-on asking for the working keys of its layout (60.3 `003`, or `004`
    /// with a track key).
    pub fn sign_on(&mut self) -> Result<Request, TerminalError> {
        self.ensure_idle()?;
        let mut msg = self.network(TxKind::SignOn, self.config.key_layout.net_code());
        msg.set(63, &self.config.operator);
        self.send(TxKind::SignOn, msg, None)
    }

    /// 0820 sign-off (60.3 `002`).
    pub fn sign_off(&mut self) -> Result<Request, TerminalError> {
        self.ensure_idle()?;
        let msg = self.network(TxKind::SignOff, "002");
        self.send(TxKind::SignOff, msg, None)
    }

    /// 0820 echo test (60.3 `301`).
    pub fn echo(&mut self) -> Result<Request, TerminalError> {
        self.ensure_idle()?;
        let msg = self.network(TxKind::Echo, "301");
        self.send(TxKind::Echo, msg, None)
    }

    /// 0400 for the pending reversal, or `None` when nothing is owed.
    pub fn reversal(&mut self) -> Result<Option<Request>, TerminalError> {
        self.ensure_idle()?;
        if self.pending.is_none() {
            return Ok(None);
        }
        self.ensure_signed_on()?;
        self.reversal_request().map(Some)
    }

    /// 0200 balance inquiry. Like every financial request: if a reversal is pending,
    /// returns the 0400 instead (`kind == Reversal`); ask again once it is answered.
    pub fn balance(&mut self, card: &Card) -> Result<Request, TerminalError> {
        if let Some(r) = self.before_financial(TxKind::Balance)? {
            return Ok(r);
        }
        let mut msg = self.financial(TxKind::Balance);
        let (pik, tdk) = self.card_keys()?;
        card.write_presentment(&mut msg, pik, tdk)?;
        self.send(TxKind::Balance, msg, None)
    }

    /// 0200 sale.
    pub fn sale(&mut self, card: &Card, amount_minor: i64) -> Result<Request, TerminalError> {
        self.card_and_amount(TxKind::Sale, card, amount_minor)
    }

    /// 0100 pre-authorization.
    pub fn pre_auth(&mut self, card: &Card, amount_minor: i64) -> Result<Request, TerminalError> {
        self.card_and_amount(TxKind::PreAuth, card, amount_minor)
    }

    /// 0200 void of an approved sale of this terminal.
    pub fn void(&mut self, card: &Card, original: &BatchEntry) -> Result<Request, TerminalError> {
        if let Some(r) = self.before_financial(TxKind::Void)? {
            return Ok(r);
        }
        expect_original(original, &[TxKind::Sale])?;
        let mut msg = self.financial(TxKind::Void);
        card.write_pan(&mut msg, self.tdk())?;
        self.set_amount(&mut msg, original.amount_minor)?;
        self.set_original(&mut msg, original, true, false)?;
        self.send(TxKind::Void, msg, Some((original.batch, original.stan)))
    }

    /// 0220 refund of (part of) an approved sale or completion.
    pub fn refund(
        &mut self,
        card: &Card,
        amount_minor: i64,
        original: &BatchEntry,
    ) -> Result<Request, TerminalError> {
        if let Some(r) = self.before_financial(TxKind::Refund)? {
            return Ok(r);
        }
        expect_original(original, &[TxKind::Sale, TxKind::Completion])?;
        if amount_minor > original.amount_minor {
            return Err(TerminalError::Amount("refund above the original amount"));
        }
        let mut msg = self.financial(TxKind::Refund);
        card.write_pan(&mut msg, self.tdk())?;
        self.set_amount(&mut msg, amount_minor)?;
        self.set_original(&mut msg, original, false, true)?;
        self.send(TxKind::Refund, msg, Some((original.batch, original.stan)))
    }

    /// 0100 cancel of an approved pre-authorization (its full amount).
    pub fn pre_auth_cancel(&mut self, original: &BatchEntry) -> Result<Request, TerminalError> {
        self.after_pre_auth(TxKind::PreAuthCancel, original.amount_minor, original)
    }

    /// 0200 completion of an approved pre-authorization, for at most its amount.
    pub fn completion(
        &mut self,
        amount_minor: i64,
        original: &BatchEntry,
    ) -> Result<Request, TerminalError> {
        if amount_minor > original.amount_minor {
            return Err(TerminalError::Amount(
                "completion above the pre-authorization",
            ));
        }
        self.after_pre_auth(TxKind::Completion, amount_minor, original)
    }

    /// The totals of the current batch as a 0500 carries them: debits are approved sales
    /// and completions not voided, credits are approved refunds; every card counts as
    /// domestic (the terminal has no foreign BIN table either).
    pub fn batch_totals(&self) -> BatchTotals {
        let mut d = Totals::default();
        for e in self.settled_entries() {
            let amount = u64::try_from(e.amount_minor).unwrap_or(0);
            if e.kind == TxKind::Refund {
                d.credit_minor = d.credit_minor.saturating_add(amount);
                d.credit_count = d.credit_count.saturating_add(1);
            } else {
                d.debit_minor = d.debit_minor.saturating_add(amount);
                d.debit_count = d.debit_count.saturating_add(1);
            }
        }
        BatchTotals {
            domestic: d,
            foreign: Totals::default(),
        }
    }

    /// 0500 batch settlement of the current batch (60.3 `201`, field 48 its totals).
    /// Like a financial request it hands out the pending reversal first. The 0510 says
    /// whether the host agrees ([`Outcome::settlement`]): balanced closes the batch,
    /// not balanced starts the upload ([`Terminal::next_upload`]).
    pub fn settle(&mut self) -> Result<Request, TerminalError> {
        self.ensure_idle()?;
        self.ensure_signed_on()?;
        if self.upload.is_some() {
            return Err(TerminalError::Settling);
        }
        if self.pending.is_some() {
            return self.reversal_request();
        }
        let totals = self
            .batch_totals()
            .to_text()
            .map_err(|_| TerminalError::Encode("batch totals do not fit field 48".into()))?;
        let mut msg = self.network(TxKind::Settle, "201");
        msg.set(48, totals);
        msg.set(49, format!("{:03}", self.config.currency.numeric()));
        let stan = match self.settle_stan {
            Some(s) => s,
            None => self.take_stan(),
        };
        self.settle_stan = Some(stan);
        self.send_as(TxKind::Settle, msg, None, stan)
    }

    /// The next message of a batch upload: one 0320 per entry of the batch totals (60.3
    /// `201`, the original's STAN, amount, RRN, 3, 25 and 60.1), then the batch end
    /// (60.3 `202`, field 48 the count); `None` when no upload is under way. An entry
    /// is handed out again until its 0330 is accepted; a declined 0330 ends the upload
    /// and leaves the batch open.
    pub fn next_upload(&mut self) -> Result<Option<Request>, TerminalError> {
        self.ensure_idle()?;
        let Some(up) = &self.upload else {
            return Ok(None);
        };
        self.ensure_signed_on()?;
        if let Some(e) = up.entries.get(up.next).cloned() {
            let mut msg = Message::new(TxKind::BatchUpload.mti());
            msg.set(41, self.config.terminal_id.as_str());
            msg.set(42, self.config.merchant_id.as_str());
            if let Some(pc) = e.kind.processing_code() {
                msg.set(3, pc);
            }
            if let Some(cc) = e.kind.condition_code() {
                msg.set(25, cc);
            }
            self.set_amount(&mut msg, e.amount_minor)?;
            msg.set(37, e.rrn.as_str());
            let f60 = Field60 {
                tx_type: e.kind.tx_type().to_owned(),
                batch: up.batch,
                net_code: Some("201".to_owned()),
                rest: String::new(),
            };
            msg.set(60, f60.to_text());
            return self
                .send_as(TxKind::BatchUpload, msg, None, e.stan)
                .map(Some);
        }
        let count = up.entries.len().min(9_999);
        let mut msg = self.network(TxKind::BatchEnd, "202");
        msg.set(48, format!("{count:04}"));
        let stan = match up.end_stan {
            Some(s) => s,
            None => self.take_stan(),
        };
        if let Some(up) = &mut self.upload {
            up.end_stan = Some(stan);
        }
        self.send_as(TxKind::BatchEnd, msg, None, stan).map(Some)
    }

    /// Whether a batch upload is under way (financial requests are refused meanwhile).
    pub fn is_uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Gives up an upload under way (the host stopped answering): the batch stays open
    /// and the record intact; settle again later.
    pub fn abandon_upload(&mut self) {
        self.upload = None;
    }

    /// Models the customer pressing cancel after the host approved the last reversible
    /// transaction: it leaves the batch record and is reversed with field 39 = `06`.
    pub fn cancel_after_approval(&mut self) -> Result<Stan, TerminalError> {
        self.ensure_idle()?;
        let last = self
            .last_approved
            .take()
            .ok_or(TerminalError::NothingToCancel)?;
        if let Some(i) = self
            .record
            .iter()
            .position(|e| e.stan == last.stan && e.batch == last.batch && e.kind == last.kind)
        {
            let entry = self.record.remove(i);
            if let Some(orig) = entry.original {
                self.set_closed(orig, false);
            }
        }
        self.pending = Some(Pending {
            info: PendingReversal {
                kind: last.kind,
                stan: last.stan,
                reason: ResponseCode::ERROR,
                attempts: 0,
            },
            original: last.request,
        });
        Ok(last.stan)
    }

    /// The caller waited long enough for the reply to `stan`: a reversible request now
    /// owes a reversal with `98`. Returns whether `stan` was the request in flight.
    pub fn on_timeout(&mut self, stan: Stan) -> bool {
        match &self.in_flight {
            Some(f) if f.stan == stan => {
                self.in_flight = None;
                true
            }
            _ => false,
        }
    }

    /// Takes a reply frame (TPDU, header and message, as `FrameDecoder` yields it),
    /// checks it belongs to the request in flight and verifies its MAC, and classifies it.
    pub fn on_reply(&mut self, frame: &[u8]) -> Result<Outcome, ReplyError> {
        let env = CupEnvelope::split(frame).map_err(|e| ReplyError::Malformed(e.to_string()))?;
        let msg = Dialect::cup_pos()
            .unpack(env.message)
            .map_err(|e| ReplyError::Malformed(e.to_string()))?;
        if !self.matches_in_flight(&msg) {
            return Err(ReplyError::Unexpected {
                mti: msg.mti().to_string(),
                stan: msg.get_str(11).unwrap_or("").to_owned(),
            });
        }
        let Some(flight) = self.in_flight.take() else {
            unreachable!("matches_in_flight checked a request is in flight")
        };
        if flight.kind == TxKind::Settle {
            // Answered: a later 0500 is a new settlement, not a repeat.
            self.settle_stan = None;
        }
        if flight.kind.is_maced() && !self.mac_verifies(env.message, &msg) {
            return Ok(self.mac_failed(flight, &msg));
        }
        let Ok(rc) = msg.response_code() else {
            return Ok(self.unusable(flight, &msg, "no response code"));
        };
        if [
            ResponseCode::BATCH_MISMATCH,
            ResponseCode::PIN_FORMAT_ERROR,
            ResponseCode::MAC_ERROR,
        ]
        .contains(&rc)
        {
            self.signed_on = false;
        }
        Ok(self.accept(flight, &msg, rc))
    }

    fn matches_in_flight(&self, msg: &Message) -> bool {
        let Some(f) = &self.in_flight else {
            return false;
        };
        let expected_mti = f.kind.mti().response();
        msg.mti() == expected_mti
            && msg.stan().ok() == Some(f.stan)
            && msg.terminal_id().ok() == Some(self.config.terminal_id)
            && msg
                .get(42)
                .is_none_or(|m| m == self.config.merchant_id.as_str().as_bytes())
    }

    fn mac_verifies(&self, raw: &[u8], msg: &Message) -> bool {
        let (Some(keys), Some(mac)) = (&self.keys, msg.get(64)) else {
            return false;
        };
        if mac.len() != 8 || raw.len() < 8 || &raw[raw.len() - 8..] != mac {
            return false;
        }
        mac_equal(&cup_ecb_mac(&keys.mak, &raw[..raw.len() - 8]), mac)
    }

    fn mac_failed(&mut self, flight: InFlight, msg: &Message) -> Outcome {
        // Our keys and the host's disagree: sign on again before anything else.
        self.signed_on = false;
        if flight.kind.is_reversible() {
            if let Some(p) = &mut self.pending {
                p.info.reason = ResponseCode::MAC_ERROR;
            }
        }
        tracing::warn!(
            terminal = %self.config.terminal_id,
            kind = %flight.kind,
            stan = %flight.stan,
            "reply MAC did not verify"
        );
        let mut out = outcome(&flight, msg, Verdict::MacFailure);
        out.response_code = msg.response_code().ok();
        out
    }

    /// A verified reply that cannot be used: a reversible request stays owed, reason `06`.
    fn unusable(&mut self, flight: InFlight, msg: &Message, why: &'static str) -> Outcome {
        if flight.kind.is_reversible() {
            if let Some(p) = &mut self.pending {
                p.info.reason = ResponseCode::ERROR;
            }
        }
        outcome(&flight, msg, Verdict::BadReply(why))
    }

    fn accept(&mut self, flight: InFlight, msg: &Message, rc: ResponseCode) -> Outcome {
        let approved = rc.is_approved();
        let mut out = outcome(
            &flight,
            msg,
            if approved {
                Verdict::Approved
            } else {
                Verdict::Declined
            },
        );
        out.response_code = Some(rc);
        match flight.kind {
            TxKind::SignOn if approved => {
                if let Err(why) = self.install_keys(msg) {
                    out.verdict = Verdict::BadReply(why);
                }
            }
            TxKind::SignOn | TxKind::Echo => {}
            TxKind::SignOff => self.signed_on = self.signed_on && !approved,
            TxKind::Reversal => self.pending = None,
            TxKind::Balance => out.balance_minor = msg.get_str(54).and_then(parse_balance),
            TxKind::Settle if approved => match settlement_verdict(msg) {
                Some(true) => {
                    self.close_batch();
                    out.settlement = Some(SettlementResult::Balanced);
                }
                Some(false) => {
                    self.upload = Some(Upload {
                        batch: self.batch,
                        entries: self.settled_entries().cloned().collect(),
                        next: 0,
                        end_stan: None,
                    });
                    out.settlement = Some(SettlementResult::NotBalanced);
                }
                None => out.verdict = Verdict::BadReply("settlement reply without totals"),
            },
            TxKind::BatchUpload if approved => {
                if let Some(up) = &mut self.upload {
                    up.next += 1;
                }
            }
            TxKind::BatchEnd if approved => {
                self.close_batch();
                out.settlement = Some(SettlementResult::Uploaded);
            }
            TxKind::Settle => {}
            TxKind::BatchUpload | TxKind::BatchEnd => {
                tracing::warn!(
                    terminal = %self.config.terminal_id,
                    code = %rc,
                    "batch upload refused; the batch stays open"
                );
                self.upload = None;
            }
            _ if approved => {
                let Some(rrn) = out.rrn else {
                    return self.unusable(flight, msg, "approved without RRN");
                };
                out.entry = Some(self.record_approval(flight, msg, rrn));
            }
            _ => {
                if flight.kind.is_reversible() {
                    self.pending = None;
                }
            }
        }
        out
    }

    fn install_keys(&mut self, msg: &Message) -> Result<(), &'static str> {
        let f60 = Field60::read(msg).map_err(|_| "sign-on reply without field 60")?;
        let block = msg.get(62).ok_or("sign-on reply without keys")?;
        let keys = TerminalKeys::unwrap(&self.config.tmk, self.config.key_layout, block)
            .map_err(|_| "working keys do not unwrap")?;
        self.keys = Some(keys);
        self.batch = f60.batch;
        self.signed_on = true;
        Ok(())
    }

    fn record_approval(&mut self, flight: InFlight, msg: &Message, rrn: Rrn) -> BatchEntry {
        if flight.kind.is_reversible() {
            self.pending = None;
        }
        let amount_minor = flight
            .request
            .get_str(4)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let entry = BatchEntry {
            kind: flight.kind,
            stan: flight.stan,
            batch: flight.batch,
            rrn,
            auth_code: msg.get_str(38).map(str::to_owned),
            amount_minor,
            date_mmdd: msg.get_str(13).map(str::to_owned),
            original: flight.original,
            closed: false,
        };
        if let Some(orig) = flight.original {
            self.set_closed(orig, true);
        }
        self.record.push(entry.clone());
        if flight.kind.is_reversible() {
            self.last_approved = Some(LastApproved {
                kind: flight.kind,
                stan: flight.stan,
                batch: flight.batch,
                request: flight.request,
            });
        }
        entry
    }

    fn set_closed(&mut self, (batch, stan): (u32, Stan), closed: bool) {
        if let Some(e) = self
            .record
            .iter_mut()
            .find(|e| e.batch == batch && e.stan == stan)
        {
            e.closed = closed;
        }
    }

    fn ensure_idle(&self) -> Result<(), TerminalError> {
        match &self.in_flight {
            Some(f) => Err(TerminalError::Busy(f.stan)),
            None => Ok(()),
        }
    }

    fn ensure_signed_on(&self) -> Result<(), TerminalError> {
        if self.signed_on && self.keys.is_some() {
            Ok(())
        } else {
            Err(TerminalError::NotSignedOn)
        }
    }

    /// The working keys a card's presentment is written under: the PIN key, and the
    /// track key when the terminal has one.
    fn card_keys(&self) -> Result<(&Key, Option<&Key>), TerminalError> {
        let keys = self.keys.as_ref().ok_or(TerminalError::NotSignedOn)?;
        Ok((&keys.pik, keys.tdk.as_ref()))
    }

    fn tdk(&self) -> Option<&Key> {
        self.keys.as_ref().and_then(|k| k.tdk.as_ref())
    }

    /// Checks shared by every financial request; hands out the pending reversal first.
    fn before_financial(&mut self, kind: TxKind) -> Result<Option<Request>, TerminalError> {
        self.ensure_idle()?;
        self.ensure_signed_on()?;
        if self.upload.is_some() {
            return Err(TerminalError::Settling);
        }
        if self.pending.is_some() {
            return self.reversal_request().map(Some);
        }
        if kind != TxKind::Balance && self.record.len() >= self.config.max_batch_entries {
            return Err(TerminalError::BatchFull);
        }
        Ok(None)
    }

    fn card_and_amount(
        &mut self,
        kind: TxKind,
        card: &Card,
        amount_minor: i64,
    ) -> Result<Request, TerminalError> {
        if let Some(r) = self.before_financial(kind)? {
            return Ok(r);
        }
        let mut msg = self.financial(kind);
        let (pik, tdk) = self.card_keys()?;
        card.write_presentment(&mut msg, pik, tdk)?;
        self.set_amount(&mut msg, amount_minor)?;
        self.send(kind, msg, None)
    }

    fn after_pre_auth(
        &mut self,
        kind: TxKind,
        amount_minor: i64,
        original: &BatchEntry,
    ) -> Result<Request, TerminalError> {
        if let Some(r) = self.before_financial(kind)? {
            return Ok(r);
        }
        expect_original(original, &[TxKind::PreAuth])?;
        let mut msg = self.financial(kind);
        self.set_amount(&mut msg, amount_minor)?;
        self.set_original(&mut msg, original, true, false)?;
        self.send(kind, msg, Some((original.batch, original.stan)))
    }

    fn network(&self, kind: TxKind, net_code: &str) -> Message {
        let mut msg = Message::new(kind.mti());
        msg.set(41, self.config.terminal_id.as_str());
        msg.set(42, self.config.merchant_id.as_str());
        let f60 = Field60 {
            tx_type: kind.tx_type().to_owned(),
            batch: self.batch,
            net_code: Some(net_code.to_owned()),
            rest: String::new(),
        };
        msg.set(60, f60.to_text());
        msg
    }

    fn financial(&self, kind: TxKind) -> Message {
        let mut msg = self.network(kind, "000");
        if let Some(loc) = &self.config.location {
            msg.set(59, loc.as_str());
        }
        if let Some(pc) = kind.processing_code() {
            msg.set(3, pc);
        }
        if let Some(cc) = kind.condition_code() {
            msg.set(25, cc);
        }
        msg
    }

    fn set_amount(&self, msg: &mut Message, amount_minor: i64) -> Result<(), TerminalError> {
        if amount_minor <= 0 {
            return Err(TerminalError::Amount("must be positive"));
        }
        msg.set_amount(domain::Amount::new(amount_minor, self.config.currency))
            .map_err(|_| TerminalError::Amount("does not fit 12 digits"))?;
        Ok(())
    }

    fn set_original(
        &self,
        msg: &mut Message,
        original: &BatchEntry,
        with_auth_code: bool,
        with_date: bool,
    ) -> Result<(), TerminalError> {
        msg.set(37, original.rrn.as_str());
        if with_auth_code {
            let code = original
                .auth_code
                .as_deref()
                .ok_or(TerminalError::Original("no authorization code"))?;
            msg.set(38, code);
        }
        let f61 = Field61 {
            batch: original.batch,
            stan: original.stan.get(),
            date: if with_date {
                original.date_mmdd.clone()
            } else {
                None
            },
        };
        msg.set(61, f61.to_text());
        Ok(())
    }

    fn take_stan(&mut self) -> Stan {
        let s = self.next_stan;
        self.next_stan = s.next();
        s
    }

    /// Gives the request its STAN and MAC, stores the pending reversal *before* the
    /// request leaves, and marks it in flight.
    fn send(
        &mut self,
        kind: TxKind,
        msg: Message,
        original: Option<(u32, Stan)>,
    ) -> Result<Request, TerminalError> {
        let stan = self.take_stan();
        self.send_as(kind, msg, original, stan)
    }

    /// [`Terminal::send`] with a STAN already chosen (an upload detail carries its
    /// original's; a repeated 0500 or batch end its first sending's).
    fn send_as(
        &mut self,
        kind: TxKind,
        mut msg: Message,
        original: Option<(u32, Stan)>,
        stan: Stan,
    ) -> Result<Request, TerminalError> {
        msg.set_stan(stan);
        let frame = self.seal(&mut msg, kind.is_maced())?;
        if kind.is_reversible() {
            self.pending = Some(Pending {
                info: PendingReversal {
                    kind,
                    stan,
                    reason: ResponseCode::NO_RESPONSE,
                    attempts: 0,
                },
                original: msg.clone(),
            });
        }
        self.last_approved = None;
        self.in_flight = Some(InFlight {
            kind,
            stan,
            batch: self.batch,
            request: msg,
            original,
        });
        Ok(Request { kind, stan, frame })
    }

    fn reversal_request(&mut self) -> Result<Request, TerminalError> {
        let Some(p) = &self.pending else {
            unreachable!("callers check a reversal is pending")
        };
        let mut msg = Message::new(TxKind::Reversal.mti());
        for (field, value) in p.original.fields() {
            if !NOT_IN_REVERSAL.contains(&field) {
                msg.set(field, value);
            }
        }
        msg.set_response_code(p.info.reason);
        let stan = p.info.stan;
        let batch = Field60::read(&msg).map_or(self.batch, |f| f.batch);
        let frame = self.seal(&mut msg, true)?;
        if let Some(p) = &mut self.pending {
            p.info.attempts += 1;
        }
        self.last_approved = None;
        self.in_flight = Some(InFlight {
            kind: TxKind::Reversal,
            stan,
            batch,
            request: msg,
            original: None,
        });
        Ok(Request {
            kind: TxKind::Reversal,
            stan,
            frame,
        })
    }

    /// Packs the message, writes the UnionPay ECB MAC into field 64 when `maced`, and
    /// frames it with length, TPDU and header.
    fn seal(&self, msg: &mut Message, maced: bool) -> Result<Vec<u8>, TerminalError> {
        let encode = |e: &dyn fmt::Display| TerminalError::Encode(e.to_string());
        if maced {
            msg.set(64, [0u8; 8]);
        }
        let mut packed = Dialect::cup_pos().pack(msg).map_err(|e| encode(&e))?;
        if maced {
            let mak = &self.keys.as_ref().ok_or(TerminalError::NotSignedOn)?.mak;
            let n = packed.len();
            let mac = cup_ecb_mac(mak, &packed[..n - 8]);
            packed[n - 8..].copy_from_slice(&mac);
            msg.set(64, mac);
        }
        let mut body = Vec::with_capacity(CupEnvelope::PREFIX_LEN + packed.len());
        CupEnvelope {
            tpdu: self.config.tpdu,
            header: self.config.header,
            message: &packed,
        }
        .write(&mut body);
        let mut frame = Vec::with_capacity(body.len() + 2);
        encode_frame(&body, self.config.max_frame, &mut frame).map_err(|e| encode(&e))?;
        Ok(frame)
    }
}

fn expect_original(original: &BatchEntry, kinds: &[TxKind]) -> Result<(), TerminalError> {
    if !kinds.contains(&original.kind) {
        return Err(TerminalError::Original("wrong kind of original"));
    }
    if original.closed {
        return Err(TerminalError::Original(
            "already voided, refunded or completed",
        ));
    }
    Ok(())
}

fn outcome(flight: &InFlight, msg: &Message, verdict: Verdict) -> Outcome {
    Outcome {
        kind: flight.kind,
        stan: flight.stan,
        verdict,
        response_code: None,
        auth_code: msg.get_str(38).map(str::to_owned),
        rrn: msg.rrn().ok(),
        balance_minor: None,
        entry: None,
        settlement: None,
    }
}

/// Whether a 0510 says balanced (every half of field 48 carries result `1`); `None`
/// without readable totals.
fn settlement_verdict(msg: &Message) -> Option<bool> {
    let t = BatchTotals::read(msg).ok()?;
    let halves = if msg.get_str(48)?.len() > 31 { 2 } else { 1 };
    Some(t.domestic.result == 1 && (halves == 1 || t.foreign.result == 1))
}

/// Field 54 of a balance reply: `1002` + currency (3) + `C`/`D` + 12 digits.
fn parse_balance(s: &str) -> Option<i64> {
    let sign = match s.as_bytes().get(7)? {
        b'C' => 1,
        b'D' => -1,
        _ => return None,
    };
    let digits = s.get(8..20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(|v| sign * v)
}

#[cfg(test)]
mod tests {
    use super::parse_balance;

    #[test]
    fn balance_field_parses_sign_and_digits() {
        assert_eq!(parse_balance("1002156C000000012345"), Some(12345));
        assert_eq!(parse_balance("1002156D000000000100"), Some(-100));
        assert_eq!(parse_balance("1002156X000000000100"), None);
        assert_eq!(parse_balance("1002156C0001"), None);
    }
}
