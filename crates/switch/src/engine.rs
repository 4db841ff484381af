//! The engine: in-memory state, and one function per input.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use cardsec::{
    EncryptedPinBlock, Expiry, KeyLayout, MacAlgorithm, Pan, PanToken, SecError, SecurityModule,
    Track2, WrappedKey,
};
use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use domain::{Currency, ResponseCode, Stan};
use iso8583::frame::{CupEnvelope, CupHeader, Tpdu};
use iso8583::subfields::{Field60, Field61, OriginalData};
use iso8583::{Dialect, Message, Mti};
use records::{
    CaseEntryRow, CaseRow, DecisionRow, EventRow, HoldRow, MerchantRow, SafRow, SafState,
    TerminalRow, TxnRow, Write,
};

use crate::kind::{TxnKind, TxnState};
use crate::msgs::{pack_signed, received_mac};

// Batch settlement lives in its own file but is part of the engine (it reads the
// engine's terminals and transactions).
#[path = "batch.rs"]
mod batch;
// Sign-on, working keys and the MAC check of every terminal request.
#[path = "signon.rs"]
mod signon;

/// A terminal connection, as the driver numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// The dialect a terminal connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminalDialect {
    /// UnionPay-style binary: TPDU and header before the message, UnionPay ECB MAC.
    CupPos,
    /// ISO 8583:1987 ASCII: the bare message, ANSI X9.19 MAC.
    Iso87Ascii,
}

/// How replies go back on one terminal connection: the dialect and, for `cup-pos`,
/// the TPDU (already swapped) and header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wire {
    dialect: TerminalDialect,
    env: Option<(Tpdu, CupHeader)>,
    /// The MAC key version the terminal's request verified under: the reply is
    /// signed under the same key, the one the terminal demonstrably holds.
    mac_version: Option<u32>,
}

impl Wire {
    fn codec(self) -> &'static Dialect {
        match self.dialect {
            TerminalDialect::CupPos => Dialect::cup_pos(),
            TerminalDialect::Iso87Ascii => Dialect::iso87_ascii(),
        }
    }

    fn mac(self) -> MacAlgorithm {
        match self.dialect {
            TerminalDialect::CupPos => MacAlgorithm::CupEcb,
            TerminalDialect::Iso87Ascii => MacAlgorithm::X9_19,
        }
    }

    /// The frame body for a packed message.
    fn wrap(self, message: &[u8]) -> Vec<u8> {
        match self.env {
            Some(env) => envelope(env, message),
            None => message.to_vec(),
        }
    }
}

/// The time an input happened, from the driver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the Unix epoch (UTC).
    pub unix_ms: i64,
}

/// The switch's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Acquiring institution id (field 32).
    pub acquirer_id: String,
    /// Node number 0–9: part of every transaction id and RRN, so nodes sharing one
    /// database never collide.
    pub node: u8,
    /// Currencies terminals may use.
    pub currencies: Vec<Currency>,
    /// Largest amount accepted in one transaction, in minor units.
    pub max_amount_minor: i64,
    /// How long to wait for the issuer.
    pub issuer_timeout_ms: u64,
    /// Requests waiting for the issuer at most; beyond it new ones get 91.
    pub max_in_flight: usize,
    /// Transactions kept in memory for duplicates and originals at most.
    pub max_remembered: usize,
    /// The acquirer's offset from UTC in seconds (Asia/Shanghai: +8 h).
    pub utc_offset_secs: i32,
    /// Sends of an advice (reversal, adjustment) before operators are alerted with an
    /// exception on its transaction; it is repeated on, at `saf_backoff_max_ms`, until
    /// the issuer answers: never abandoned.
    pub saf_max_attempts: u32,
    /// Delay before the first repeat; doubles with each attempt.
    pub saf_backoff_ms: u64,
    /// Longest delay between repeats.
    pub saf_backoff_max_ms: u64,
    /// Sign-ons one terminal may make in a minute; beyond it they are answered 65
    /// (bounds what someone replaying or forging sign-ons can make the node do).
    pub max_sign_ons_per_minute: usize,
    /// Batch uploads (0320) open at once at most; beyond it the oldest is dropped.
    pub max_batch_uploads: usize,
    /// Details one batch upload holds at most (999 debits and 999 credits: the
    /// counts of field 48 are three digits).
    pub max_upload_entries: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            acquirer_id: "48020000".into(),
            node: 0,
            currencies: vec![Currency::CNY],
            max_amount_minor: 1_000_000_000,
            issuer_timeout_ms: 10_000,
            max_in_flight: 10_000,
            max_remembered: 1_000_000,
            utc_offset_secs: 8 * 3600,
            saf_max_attempts: 10,
            saf_backoff_ms: 1_000,
            saf_backoff_max_ms: 60_000,
            max_sign_ons_per_minute: 6,
            max_batch_uploads: 1_000,
            max_upload_entries: 1_998,
        }
    }
}

/// The zone keys shared with the issuer, wrapped under the LMK.
#[derive(Debug, Clone)]
pub struct ZoneKeys {
    /// Zone PIN key.
    pub zpk: WrappedKey,
    /// Zone MAC key.
    pub zak: WrappedKey,
}

/// One input to the engine.
#[derive(Debug)]
pub enum Input<'a> {
    /// A frame from a terminal (TPDU, header and message, without the length prefix).
    TerminalFrame {
        /// The connection it came on.
        conn: ConnId,
        /// The dialect of that connection.
        dialect: TerminalDialect,
        /// The frame body (for `cup-pos`: TPDU, header and message).
        frame: &'a [u8],
    },
    /// A message from the issuer (without the length prefix).
    IssuerFrame {
        /// The message bytes.
        frame: &'a [u8],
    },
    /// The issuer timer of a transaction fired.
    IssuerTimeout {
        /// The transaction.
        txn_id: i64,
    },
    /// A request for the issuer could not be written to any link: nothing was sent.
    IssuerUnavailable {
        /// The transaction.
        txn_id: i64,
    },
    /// A store-and-forward entry this node claimed from the shared queue (another node
    /// created it and stopped sending it).
    SafAdopt {
        /// The entry.
        entry: SafRow,
    },
    /// A store-and-forward timer fired.
    SafTimer {
        /// The entry.
        saf_id: i64,
    },
    /// A persist failed; its `on_fail` actions were carried out.
    PersistFailed {
        /// What failed (for the log).
        reason: String,
    },
    /// The driver carried out [`Action::Abandon`]: the transaction's first journal
    /// write failed, nothing reached the issuer.
    Abandoned {
        /// The transaction.
        txn_id: i64,
    },
}

/// A status change another process made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// A merchant's status (`active`, `suspended`, `closed`).
    Merchant {
        /// Which.
        merchant_id: String,
        /// Its status now.
        status: String,
    },
    /// A terminal's status (`active`, `disabled`, …).
    Terminal {
        /// Which.
        terminal_id: String,
        /// Its status now.
        status: String,
    },
    /// A merchant's transaction limits (minor units; 0 = none).
    Limits {
        /// Which.
        merchant_id: String,
        /// Largest sale or pre-authorization.
        per_txn_minor: i64,
        /// Most sales and pre-authorizations a day.
        per_day_minor: i64,
    },
    /// A terminal moved: its registered install location (`lat,lon`) now.
    Location {
        /// Which.
        terminal_id: String,
        /// Where it is registered now.
        install_location: String,
    },
}

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make `writes` durable in one batch, then carry out `then`; if it fails, carry
    /// out `on_fail` instead.
    Persist {
        /// Records to write.
        writes: Vec<Write>,
        /// Actions allowed only once the writes are durable.
        then: Vec<Action>,
        /// Actions if the writes fail.
        on_fail: Vec<Action>,
    },
    /// Give the transaction back to the engine as [`Input::Abandoned`] (used in
    /// `on_fail`: its first journal write failed). The engine answers the terminal
    /// `96` and forgets it; the failure reply is built only when it is needed.
    Abandon {
        /// The transaction.
        txn_id: i64,
    },
    /// Send a message to the issuer; report `IssuerUnavailable` if no link takes it.
    SendIssuer {
        /// The transaction it belongs to.
        txn_id: i64,
        /// The packed iso87-ascii message (no length prefix).
        message: Vec<u8>,
    },
    /// Send a frame body (TPDU, header, message) to a terminal connection.
    SendTerminal {
        /// The connection.
        conn: ConnId,
        /// The frame body.
        frame: Vec<u8>,
    },
    /// Feed `IssuerTimeout { txn_id }` back after `after_ms`.
    StartIssuerTimer {
        /// The transaction.
        txn_id: i64,
        /// Delay.
        after_ms: u64,
    },
    /// Feed `SafTimer { saf_id }` back after `after_ms`.
    StartSafTimer {
        /// The entry.
        saf_id: i64,
        /// Delay.
        after_ms: u64,
    },
    /// Close a terminal connection (it sent something that cannot be answered).
    CloseTerminal {
        /// The connection.
        conn: ConnId,
    },
    /// A request on `conn` gets no reply of its own (a retransmission of one still in
    /// flight: the original's reply answers both). A driver that bounds unanswered
    /// requests per connection frees its slot.
    NoReply {
        /// The connection.
        conn: ConnId,
    },
}

struct TerminalState {
    row: TerminalRow,
    tmk: Option<WrappedKey>,
    pik: Option<WrappedKey>,
    maks: Vec<WrappedKey>,
    /// The MAC key delivered at the last sign-on, not yet used by the terminal.
    pending_mak: Option<WrappedKey>,
    /// The current track key (layout `004`): track 2 arrives encrypted under it.
    tdk: Option<WrappedKey>,
    /// When the last sign-ons arrived (ms), for the per-terminal rate limit.
    sign_ons: VecDeque<i64>,
}

struct Txn {
    row: TxnRow,
    kind: TxnKind,
    state: TxnState,
    conn: ConnId,
    wire: Wire,
    /// The terminal's request, kept until it is answered.
    request: Option<Message>,
    /// Events written so far (the next event's sequence is one more).
    events: i64,
    /// Whether the row has been written to the journal (else the next write inserts it).
    persisted: bool,
    refunded_minor: i64,
    reversal_requested: bool,
    original: Option<i64>,
    /// The card's BIN as risk control saw it (the masked PAN keeps fewer than six
    /// leading digits of a short PAN, so it cannot be read back from there).
    bin: String,
}

/// The state machine of every transaction in flight plus what it needs to decide:
/// terminals, merchants and recent transactions (for duplicates and originals).
pub struct Engine {
    cfg: Config,
    hsm: Arc<dyn SecurityModule>,
    zone: ZoneKeys,
    /// ZAKs replaced while running, newest first: replies to messages signed under one
    /// still verify.
    older_zaks: Vec<WrappedKey>,
    terminals: HashMap<String, TerminalState>,
    merchants: HashMap<String, MerchantRow>,
    /// Each merchant's limits from its terms: (per transaction, per day), minor units.
    limits: HashMap<String, (i64, i64)>,
    txns: HashMap<i64, Txn>,
    by_request: HashMap<String, i64>,
    by_link: HashMap<(u8, String, u32), i64>,
    /// Ordered so that a batch's transactions are one range (batch settlement).
    by_terminal_stan: BTreeMap<(String, i64, i64), i64>,
    order: VecDeque<i64>,
    /// The time of the input being handled: replies built outside a transaction carry
    /// it as the host's time (12/13).
    input_at: Now,
    next_seq: i64,
    link_stan: Stan,
    in_flight: usize,
    saf: HashMap<i64, SafRow>,
    /// Queued advices (reversals, credit adjustments) waiting for their answer:
    /// (MTI class, terminal, link STAN) → queue entry id.
    advices: HashMap<(u8, String, u32), i64>,
    risk: risk::Engine,
    mono: Arc<dyn Fn() -> u64 + Send + Sync>,
    cases: HashMap<String, (i64, i64)>,
    next_case_id: i64,
    batches: batch::Batches,
    /// A terminal's pending keys became current while handling this input: the write
    /// goes first in what the input produces.
    promoted: Option<Write>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("terminals", &self.terminals.len())
            .field("txns", &self.txns.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

const LINK: fn() -> &'static Dialect = Dialect::iso87_ascii;

/// A request the engine declines before anything reaches the issuer.
struct Reject(ResponseCode, &'static str);

/// What the journal tells a starting engine about past transactions.
#[derive(Debug, Clone, Default)]
pub struct JournalState {
    /// The newest transactions, in id order (duplicates, originals, open reversals).
    pub recent: Vec<TxnRow>,
    /// The highest event sequence of each of them: new events are numbered after it.
    pub last_events: HashMap<i64, i64>,
    /// The largest transaction id ever written.
    pub max_txn_id: i64,
}

impl Engine {
    /// An engine over the given state (loaded from the store by the driver).
    pub fn new(
        cfg: Config,
        hsm: Arc<dyn SecurityModule>,
        zone: ZoneKeys,
        merchants: Vec<MerchantRow>,
        terminals: Vec<TerminalRow>,
        journal: JournalState,
    ) -> Engine {
        let JournalState {
            recent,
            last_events,
            max_txn_id,
        } = journal;
        let node_base = i64::from(cfg.node) * 1_000_000_000_000;
        let next_seq = (max_txn_id - node_base).max(0) + 1;
        let mut e = Engine {
            cfg,
            hsm,
            zone,
            older_zaks: Vec::new(),
            terminals: HashMap::new(),
            merchants: merchants
                .into_iter()
                .map(|m| (m.merchant_id.clone(), m))
                .collect(),
            limits: HashMap::new(),
            txns: HashMap::new(),
            by_request: HashMap::new(),
            by_link: HashMap::new(),
            by_terminal_stan: BTreeMap::new(),
            order: VecDeque::new(),
            input_at: Now { unix_ms: 0 },
            next_seq,
            link_stan: Stan::new(1).unwrap_or_else(|_| unreachable!("1 is a valid STAN")),
            in_flight: 0,
            saf: HashMap::new(),
            advices: HashMap::new(),
            risk: risk::Engine::new(
                risk::RuleSet::default_rules(),
                Box::new(risk::MemoryVelocity::new(1_000_000)),
                risk::Policy::ApproveAndHold,
                2_000_000,
            ),
            mono: Arc::new(|| 0),
            cases: HashMap::new(),
            next_case_id: node_base,
            batches: batch::Batches::default(),
            promoted: None,
        };
        for t in terminals {
            e.put_terminal(t);
        }
        // The link STAN goes on from this node's last transaction: restarting it at 1
        // made new messages reuse the STANs of advices still waiting for an answer, so
        // the issuer's answer to an old advice was taken for the new one and the old
        // one was repeated for ever.
        if let Some(last) = recent
            .iter()
            .filter(|r| (node_base..node_base + 1_000_000_000_000).contains(&r.txn_id))
            .filter(|r| r.link_stan.is_some())
            .max_by_key(|r| r.txn_id)
            .and_then(|r| r.link_stan)
            .and_then(|s| u32::try_from(s).ok())
            .and_then(|s| Stan::new(s).ok())
        {
            e.link_stan = last.next();
        }
        for row in recent {
            let events = last_events.get(&row.txn_id).copied().unwrap_or(0);
            e.restore(row, events);
        }
        e.relink_restored();
        e
    }

    /// Restored rows know their original only by RRN: link each void, refund, cancel
    /// and completion to it, and give every original back what its approved refunds
    /// already took (else a restart would let a sale be refunded twice over).
    fn relink_restored(&mut self) {
        let by_rrn: HashMap<String, i64> = self
            .txns
            .iter()
            .filter(|(_, t)| t.kind != TxnKind::Reversal)
            .map(|(id, t)| (t.row.rrn.clone(), *id))
            .collect();
        let mut ids: Vec<i64> = self.txns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(t) = self.txns.get_mut(&id) else {
                continue;
            };
            let Some(oid) = t.row.original_rrn.as_ref().and_then(|r| by_rrn.get(r)) else {
                continue;
            };
            t.original = Some(*oid);
            let refunded = (t.kind == TxnKind::Refund && t.state == TxnState::Approved)
                .then_some(t.row.amount_minor);
            if let (Some(amount), Some(o)) = (refunded, self.txns.get_mut(oid)) {
                o.refunded_minor += amount;
            }
        }
    }

    /// Takes back a journal row; `events` is the highest event sequence it has.
    fn restore(&mut self, row: TxnRow, events: i64) {
        let (kind, state) = (row.kind, row.state);
        let id = row.txn_id;
        self.by_request.insert(row.request_key.clone(), id);
        if kind != TxnKind::Reversal {
            self.by_terminal_stan
                .insert((row.terminal_id.clone(), row.batch, row.stan), id);
        }
        let txn = Txn {
            kind,
            state,
            conn: ConnId(0),
            wire: Wire {
                dialect: TerminalDialect::CupPos,
                env: Some((
                    Tpdu::from_bytes([0x60, 0, 0, 0, 0]),
                    CupHeader([0x60, 0, 0, 0, 0, 0]),
                )),
                mac_version: None,
            },
            request: None,
            events,
            persisted: true,
            refunded_minor: 0,
            reversal_requested: false,
            original: None,
            // From before a restart only the masked PAN remains: its leading digits.
            bin: row
                .masked_pan
                .bytes()
                .take_while(u8::is_ascii_digit)
                .take(6)
                .map(char::from)
                .collect(),
            row,
        };
        self.txns.insert(id, txn);
        self.order.push_back(id);
        self.evict();
    }

    fn evict(&mut self) {
        while self.order.len() > self.cfg.max_remembered {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            if let Some(t) = self.txns.get(&id) {
                if matches!(t.state, TxnState::Authorizing | TxnState::ReversalPending) {
                    self.order.push_back(id);
                    break;
                }
            }
            if let Some(t) = self.txns.remove(&id) {
                self.unindex(id, &t);
            }
        }
    }

    /// Removes a forgotten transaction from the lookup indexes — only the entries that
    /// still point at it: a reversal record shares its original's terminal/batch/STAN.
    fn unindex(&mut self, id: i64, t: &Txn) {
        if self.by_request.get(&t.row.request_key) == Some(&id) {
            self.by_request.remove(&t.row.request_key);
        }
        let key = (t.row.terminal_id.clone(), t.row.batch, t.row.stan);
        if self.by_terminal_stan.get(&key) == Some(&id) {
            self.by_terminal_stan.remove(&key);
        }
        if let Some(stan) = t.row.link_stan.and_then(|s| u32::try_from(s).ok()) {
            let link = (link_mti(t.kind).class(), t.row.terminal_id.clone(), stan);
            if self.by_link.get(&link) == Some(&id) {
                self.by_link.remove(&link);
            }
        }
    }

    /// Handles one input.
    pub fn handle(&mut self, now: Now, input: Input<'_>) -> Vec<Action> {
        self.input_at = now;
        match input {
            Input::TerminalFrame {
                conn,
                dialect,
                frame,
            } => self.on_terminal(now, conn, dialect, frame),
            Input::IssuerFrame { frame } => self.on_issuer(now, frame),
            Input::IssuerTimeout { txn_id } => self.on_timeout(now, txn_id),
            Input::IssuerUnavailable { txn_id } => self.on_unavailable(now, txn_id),
            Input::SafTimer { saf_id } => self.on_saf_timer(now, saf_id),
            Input::SafAdopt { entry } => self.adopt(now, entry),
            Input::PersistFailed { reason } => {
                tracing::error!(%reason, "journal write failed");
                Vec::new()
            }
            Input::Abandoned { txn_id } => self.abandon(txn_id),
        }
    }

    /// How many requests wait for the issuer.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn local(&self, now: Now) -> DateTime<FixedOffset> {
        let utc = DateTime::<Utc>::from_timestamp_millis(now.unix_ms).unwrap_or_default();
        let off = FixedOffset::east_opt(self.cfg.utc_offset_secs).unwrap_or_else(|| {
            FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero offset"))
        });
        utc.with_timezone(&off)
    }

    fn rfc3339(&self, now: Now) -> String {
        DateTime::<Utc>::from_timestamp_millis(now.unix_ms)
            .unwrap_or_default()
            .to_rfc3339()
    }

    fn next_ids(&mut self, now: Now) -> (i64, String) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = i64::from(self.cfg.node) * 1_000_000_000_000 + seq;
        let local = self.local(now);
        let rrn = format!(
            "{}{}{:03}{:07}",
            self.cfg.node % 10,
            local.year() % 10,
            local.ordinal(),
            seq % 10_000_000
        );
        (id, rrn)
    }

    /// Moves the next link STAN past `used` when `used` lies ahead of it (within half
    /// the STAN space: further ahead means it was used before the counter wrapped).
    fn skip_link_stan_past(&mut self, used: Stan) {
        let ahead = (i64::from(used.get()) - i64::from(self.link_stan.get())).rem_euclid(999_999);
        if ahead < 500_000 {
            self.link_stan = used.next();
        }
    }

    fn next_link_stan(&mut self) -> Stan {
        let s = self.link_stan;
        self.link_stan = s.next();
        s
    }

    // ---- terminal side -------------------------------------------------------------

    fn on_terminal(
        &mut self,
        now: Now,
        conn: ConnId,
        dialect: TerminalDialect,
        frame: &[u8],
    ) -> Vec<Action> {
        let (wire, raw) = match dialect {
            TerminalDialect::Iso87Ascii => (
                Wire {
                    dialect,
                    env: None,
                    mac_version: None,
                },
                frame,
            ),
            TerminalDialect::CupPos => {
                let Ok(env) = CupEnvelope::split(frame) else {
                    tracing::warn!(
                        conn = conn.0,
                        len = frame.len(),
                        "terminal frame too short; closing"
                    );
                    return vec![Action::CloseTerminal { conn }];
                };
                (
                    Wire {
                        dialect,
                        env: Some((env.tpdu.reply(), env.header)),
                        mac_version: None,
                    },
                    env.message,
                )
            }
        };
        let msg = match wire.codec().unpack(raw) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(conn = conn.0, error = %e, "malformed terminal message");
                return self.format_error(conn, wire, raw);
            }
        };
        if !msg.mti().is_request() {
            tracing::warn!(conn = conn.0, mti = %msg.mti(), "terminal sent a non-request");
            return vec![Action::CloseTerminal { conn }];
        }
        let mut actions = match msg.mti().class() {
            8 => self.network(now, conn, wire, msg),
            3 | 5 => self.batch_message(now, conn, wire, raw, msg),
            _ => self.financial(now, conn, wire, raw, msg),
        };
        if let Some(w) = self.promoted.take() {
            actions.insert(
                0,
                Action::Persist {
                    writes: vec![w],
                    then: vec![],
                    on_fail: vec![],
                },
            );
        }
        actions
    }

    /// Answers 30 when the MTI parses, else closes the connection.
    fn format_error(&mut self, conn: ConnId, wire: Wire, raw: &[u8]) -> Vec<Action> {
        let mti = match wire.dialect {
            TerminalDialect::CupPos => raw.get(..2).and_then(|b| {
                Mti::from_digits([
                    b'0' + (b[0] >> 4),
                    b'0' + (b[0] & 15),
                    b'0' + (b[1] >> 4),
                    b'0' + (b[1] & 15),
                ])
            }),
            TerminalDialect::Iso87Ascii => raw
                .get(..4)
                .and_then(|b| Mti::from_digits([b[0], b[1], b[2], b[3]])),
        };
        match mti {
            Some(m) if m.is_request() => {
                // Whatever could be read is echoed (11, 41, 42, … if they came before the
                // bad field) so the terminal can match the reply. Unsigned: the request's
                // MAC could not be checked, so nothing says it came from the terminal.
                let read = wire
                    .codec()
                    .unpack_partial(raw)
                    .unwrap_or_else(|| Message::new(m));
                let reply = self.echo_reply(&read, ResponseCode::FORMAT_ERROR);
                match wire.codec().pack(&reply) {
                    Ok(bytes) => vec![Action::SendTerminal {
                        conn,
                        frame: wire.wrap(&bytes),
                    }],
                    Err(_) => vec![Action::CloseTerminal { conn }],
                }
            }
            _ => vec![Action::CloseTerminal { conn }],
        }
    }

    fn unsigned_reply(
        &self,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        code: ResponseCode,
    ) -> Vec<Action> {
        let reply = self.echo_reply(req, code);
        match wire.codec().pack(&reply) {
            Ok(bytes) => vec![Action::SendTerminal {
                conn,
                frame: wire.wrap(&bytes),
            }],
            Err(e) => {
                tracing::warn!(error = %e, "cannot echo request fields");
                let mut bare = Message::new(req.mti().response());
                bare.set_response_code(code);
                wire.codec()
                    .pack(&bare)
                    .map_or(vec![Action::CloseTerminal { conn }], |b| {
                        vec![Action::SendTerminal {
                            conn,
                            frame: wire.wrap(&b),
                        }]
                    })
            }
        }
    }

    fn financial(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        raw: &[u8],
        req: Message,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let wire = match self.verify_terminal(now, conn, wire, raw, &req) {
            Ok(w) => w,
            Err(reply) => return reply,
        };
        let (Ok(f60), Ok(stan)) = (Field60::read(&req), req.stan()) else {
            return self.signed_reply_now(conn, wire, &req, ResponseCode::FORMAT_ERROR);
        };
        let Some(kind) = crate::kind::of(&req) else {
            return self.signed_reply_now(conn, wire, &req, ResponseCode::INVALID_TRANSACTION);
        };
        let key = format!("{tid}/{}/{}/{}", f60.batch, stan.get(), req.mti().class());
        if let Some(&id) = self.by_request.get(&key) {
            if self.same_request(id, &req, kind) {
                return self.duplicate(conn, wire, id);
            }
            // Same terminal, batch and STAN but another request: not a retransmission.
            tracing::warn!(terminal = %tid, stan = %stan, "STAN reused within the batch for a different request");
            return self.signed_reply_now(conn, wire, &req, ResponseCode::DUPLICATE);
        }
        let reversed_first = format!("{tid}/{}/{}/4", f60.batch, stan.get());
        if kind != TxnKind::Reversal && self.by_request.contains_key(&reversed_first) {
            // The terminal reversed this request before it reached us: never forward it.
            let code = ResponseCode::INVALID_TRANSACTION;
            return self.reject(
                now,
                conn,
                wire,
                req,
                key,
                kind,
                code,
                "the terminal reversed it before it arrived",
            );
        }
        if kind == TxnKind::Reversal {
            return self.terminal_reversal(
                now,
                conn,
                wire,
                req,
                key,
                i64::from(f60.batch),
                i64::from(stan.get()),
            );
        }
        match self.check(now, &req, kind, &f60) {
            Ok(checked) => {
                let decision = self.assess(now, &req, kind, &checked);
                let txn_key = key.clone();
                let checked_card = checked
                    .card
                    .as_ref()
                    .map(|c| (c.token.clone(), c.masked.clone(), checked.amount_minor));
                let mut out = match decision.as_ref().map(|d| &d.verdict) {
                    Some(risk::Verdict::Decline(code)) => {
                        let code: ResponseCode =
                            code.parse().unwrap_or(ResponseCode::DO_NOT_HONOUR);
                        tracing::info!(terminal = %tid, code = %code, "declined by risk control");
                        self.reject(
                            now,
                            conn,
                            wire,
                            req,
                            key,
                            kind,
                            code,
                            "declined by risk control",
                        )
                    }
                    _ => self.authorize(now, conn, wire, req, key, kind, checked),
                };
                if let (Some(d), Some(&id)) = (decision, self.by_request.get(&txn_key)) {
                    // A risk decline never reached `authorize`: record whose card it was.
                    if let (Some(card), Some(t)) = (&checked_card, self.txns.get_mut(&id)) {
                        if t.row.pan_token.is_empty() {
                            t.row.pan_token = card.0.clone();
                            t.row.masked_pan = card.1.clone();
                            t.row.amount_minor = card.2;
                            for a in &mut out {
                                if let Action::Persist { writes, .. } = a {
                                    for w in writes.iter_mut() {
                                        if let Write::NewTxn(r) = w {
                                            r.pan_token = card.0.clone();
                                            r.masked_pan = card.1.clone();
                                            r.amount_minor = card.2;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let writes = self.decision_writes(now, id, &d);
                    if let Some(Action::Persist { writes: w, .. }) = out.first_mut() {
                        w.extend(writes);
                    }
                }
                out
            }
            Err(Reject(code, why)) => {
                tracing::info!(terminal = %tid, code = %code, why, "declined before the issuer");
                self.reject(now, conn, wire, req, key, kind, code, why)
            }
        }
    }

    /// Whether a request with an already seen key is the same request (a retransmission):
    /// same kind and same amount.
    fn same_request(&self, id: i64, req: &Message, kind: TxnKind) -> bool {
        let Some(t) = self.txns.get(&id) else {
            return false;
        };
        let amount = req
            .get_str(4)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        t.kind == kind && (kind == TxnKind::Balance || t.row.amount_minor == amount)
    }

    /// A retransmission: the journal's reply again, signed anew under the key the
    /// retransmission verified with (the terminal may have signed on since the reply
    /// was first sent, and would take the old MAC for a failure and reverse the sale).
    fn duplicate(&mut self, conn: ConnId, wire: Wire, id: i64) -> Vec<Action> {
        let Some(t) = self.txns.get(&id) else {
            return vec![Action::NoReply { conn }];
        };
        tracing::info!(rrn = %t.row.rrn, "duplicate request answered from the journal");
        let stored = t.row.reply_hex.as_deref().map(hex::decode);
        let tid = t.row.terminal_id.clone();
        if let Some(Ok(frame)) = &stored {
            if let Some(frame) = self.re_signed(&tid, wire, frame) {
                return vec![Action::SendTerminal { conn, frame }];
            }
        }
        let Some(t) = self.txns.get_mut(&id) else {
            return vec![Action::NoReply { conn }];
        };
        match stored {
            Some(Ok(frame)) => vec![Action::SendTerminal { conn, frame }],
            Some(Err(_)) => vec![Action::NoReply { conn }],
            None => {
                // Still in flight: the reply will go to the connection that asked last.
                t.conn = conn;
                vec![Action::NoReply { conn }]
            }
        }
    }

    /// A stored reply frame signed again under the MAC key `wire` names, in `wire`'s
    /// envelope; `None` if it cannot be read back (the stored frame is then sent).
    fn re_signed(&self, tid: &str, wire: Wire, stored: &[u8]) -> Option<Vec<u8>> {
        let message = match wire.dialect {
            TerminalDialect::CupPos => CupEnvelope::split(stored).ok()?.message,
            TerminalDialect::Iso87Ascii => stored,
        };
        let mut reply = wire.codec().unpack(message).ok()?;
        let bytes = self.sign_for_terminal(tid, wire, &mut reply)?;
        Some(wire.wrap(&bytes))
    }

    fn check(
        &self,
        now: Now,
        req: &Message,
        kind: TxnKind,
        f60: &Field60,
    ) -> Result<Checked, Reject> {
        let tid = req.get_str(41).unwrap_or("");
        let term = self.terminals.get(tid).ok_or(Reject(
            ResponseCode::TERMINAL_NOT_REGISTERED,
            "unknown terminal",
        ))?;
        if i64::from(f60.batch) != term.row.batch {
            return Err(Reject(
                ResponseCode::BATCH_MISMATCH,
                "batch number is not current",
            ));
        }
        if req.get_str(42) != Some(term.row.merchant_id.as_str()) {
            return Err(Reject(
                ResponseCode::INVALID_MERCHANT,
                "merchant id does not match the terminal",
            ));
        }
        let merchant = self.merchants.get(&term.row.merchant_id);
        if merchant.is_none_or(|m| m.status != "active") {
            return Err(Reject(
                ResponseCode::INVALID_MERCHANT,
                "merchant is not active",
            ));
        }
        // A terminal provisioned and not yet installed may sell from its install
        // location: its first approved sale there (the installer's test transaction)
        // makes it active.
        if term.row.status != "active" && term.row.status != "pending_install" {
            return Err(Reject(
                ResponseCode::NOT_PERMITTED_TERMINAL,
                "terminal is not active",
            ));
        }
        if term.row.status == "pending_install" && !self.at_install_location(tid, req.get_str(59)) {
            return Err(Reject(
                ResponseCode::NOT_PERMITTED_TERMINAL,
                "terminal not installed: its test transaction must come from its install location",
            ));
        }
        // Shed load before the card is tokenized and the PIN translated: an overloaded
        // node spends no security-module work on a request it will refuse.
        if self.in_flight >= self.cfg.max_in_flight {
            return Err(Reject(
                ResponseCode::ISSUER_INOPERATIVE,
                "too many requests waiting for the issuer",
            ));
        }
        let card = self.card(now, req)?;
        let amount_minor = if kind == TxnKind::Balance {
            0
        } else {
            let amount = req.amount().map_err(|_| {
                Reject(
                    ResponseCode::INVALID_AMOUNT,
                    "amount or currency missing or malformed",
                )
            })?;
            if !self.cfg.currencies.contains(&amount.currency) {
                return Err(Reject(
                    ResponseCode::INVALID_TRANSACTION,
                    "currency not accepted",
                ));
            }
            if amount.minor <= 0 || amount.minor > self.cfg.max_amount_minor {
                return Err(Reject(
                    ResponseCode::INVALID_AMOUNT,
                    "amount outside the accepted range",
                ));
            }
            amount.minor
        };
        let (per_txn, _) = self.limits_of(&term.row.merchant_id);
        if matches!(kind, TxnKind::Sale | TxnKind::PreAuth) && per_txn > 0 && amount_minor > per_txn
        {
            return Err(Reject(
                ResponseCode::OVER_AMOUNT_LIMIT,
                "over the merchant's per-transaction limit",
            ));
        }
        let original = if kind.needs_original() {
            Some(self.original(req, kind, amount_minor, card.as_ref())?)
        } else {
            None
        };
        if card.is_none() && original.is_none() {
            return Err(Reject(ResponseCode::INVALID_CARD, "no card number"));
        }
        let pin = match req.get(52) {
            None => None,
            Some(b) => {
                let block: [u8; 8] = b
                    .try_into()
                    .map_err(|_| Reject(ResponseCode::FORMAT_ERROR, "PIN block length"))?;
                let (Some(pik), Some(c)) = (term.pik.as_ref(), card.as_ref()) else {
                    return Err(Reject(
                        ResponseCode::PIN_FORMAT_ERROR,
                        "PIN without key or card",
                    ));
                };
                match self
                    .hsm
                    .translate_pin(pik, &self.zone.zpk, &c.pan, &EncryptedPinBlock(block))
                {
                    Ok(t) => Some(t.0),
                    Err(SecError::PinBlockFormat) => {
                        return Err(Reject(
                            ResponseCode::PIN_FORMAT_ERROR,
                            "PIN block does not decrypt to format 0",
                        ))
                    }
                    Err(_) => {
                        return Err(Reject(
                            ResponseCode::SYSTEM_MALFUNCTION,
                            "PIN translation failed",
                        ))
                    }
                }
            }
        };
        Ok(Checked {
            card,
            amount_minor,
            original,
            pin,
        })
    }

    /// Risk control for requests that take money (sale, pre-auth, completion) and
    /// balance inquiries; records the attempt in the velocity counters.
    fn assess(
        &mut self,
        now: Now,
        req: &Message,
        kind: TxnKind,
        c: &Checked,
    ) -> Option<risk::Decision> {
        if !matches!(
            kind,
            TxnKind::Sale | TxnKind::PreAuth | TxnKind::Completion | TxnKind::Balance
        ) {
            return None;
        }
        let tid = req.get_str(41).unwrap_or("");
        let mid = req.get_str(42).unwrap_or("");
        let original_card = c
            .original
            .and_then(|o| self.txns.get(&o))
            .map(|o| (o.row.pan_token.clone(), o.bin.clone()));
        let (token, bin, brand, chip) = match (&c.card, original_card) {
            (Some(card), _) => (
                card.token.clone(),
                card.pan.bin().to_owned(),
                card.pan.brand().name().to_owned(),
                card.chip,
            ),
            (None, Some((token, bin))) => (token, bin, String::new(), false),
            (None, None) => return None,
        };
        let entry = req.get_str(22).and_then(cardsec::EntryMode::parse);
        let entry_name = match entry.map(|e| e.pan_entry) {
            Some(cardsec::PanEntry::Chip) => "chip",
            Some(cardsec::PanEntry::ContactlessChip) => "contactless",
            Some(
                cardsec::PanEntry::Magstripe
                | cardsec::PanEntry::FullMagstripe
                | cardsec::PanEntry::ContactlessMagstripe,
            ) => "magstripe",
            Some(cardsec::PanEntry::Fallback) => "fallback",
            Some(cardsec::PanEntry::Manual) => "manual",
            _ => "unknown",
        };
        let merchant = self.merchants.get(mid);
        let local = self.local(now);
        let age_days = merchant
            .and_then(|m| DateTime::parse_from_rfc3339(&m.created_at).ok())
            .map_or(0, |d| (now.unix_ms - d.timestamp_millis()) / 86_400_000);
        let mut facts = risk::Facts {
            amount: c.amount_minor,
            currency: req
                .currency()
                .map(|c| c.code().to_owned())
                .unwrap_or_default(),
            kind: kind.name().into(),
            mcc: merchant.map(|m| m.mcc.clone()).unwrap_or_default(),
            entry: entry_name.into(),
            chip_card: chip || entry.is_some_and(|e| e.is_chip()),
            pin: c.pin.is_some(),
            hour: i64::from(local.hour()),
            brand,
            bin: bin.clone(),
            merchant_class: merchant
                .map(|m| m.merchant_class.clone())
                .unwrap_or_default(),
            merchant_status: merchant.map(|m| m.status.clone()).unwrap_or_default(),
            merchant_age_days: age_days,
            merchant_risk: merchant.map(|m| m.risk_class.clone()).unwrap_or_default(),
            merchant_day_limit: if matches!(kind, TxnKind::Sale | TxnKind::PreAuth) {
                self.limits_of(mid).1
            } else {
                0
            },
            terminal_distance_km: self.distance_km(tid, req.get_str(59)),
            counters: Vec::new(),
        };
        let keys = risk::Keys {
            card: &token,
            terminal: tid,
            merchant: mid,
            bin: &bin,
        };
        let secs = now.unix_ms.div_euclid(1000);
        let mono = self.mono.clone();
        let record = facts.to_record();
        let mut d = self.risk.decide(&mut facts, &keys, secs, &*mono);
        d.facts = record;
        // A sale refused for the merchant's daily limit does not count toward it (it
        // would shut the merchant's day for every smaller sale after it).
        if d.matched.iter().any(|m| m.rule == risk::DAY_LIMIT_RULE) {
            return Some(d);
        }
        self.risk.record(&keys, c.amount_minor, secs);
        if matches!(d.verdict, risk::Verdict::Decline(_)) {
            self.risk.record_decline(&keys, c.amount_minor, secs);
        }
        Some(d)
    }

    /// Kilometres between where a terminal reports it is (field 59, `lat,lon`) and its
    /// registered install location; 0 when either is unknown.
    fn distance_km(&self, tid: &str, reported: Option<&str>) -> i64 {
        let home = self
            .terminals
            .get(tid)
            .and_then(|t| lat_lon(&t.row.install_location));
        match (reported.and_then(lat_lon), home) {
            (Some(here), Some(home)) => (metres_between(here, home) / 1_000.0).round() as i64,
            _ => 0,
        }
    }

    /// Whether a terminal waiting for installation reports itself near its install
    /// location (within [`INSTALL_RADIUS_M`]); one whose install location is not
    /// coordinates cannot be checked and passes.
    fn at_install_location(&self, tid: &str, reported: Option<&str>) -> bool {
        let Some(home) = self
            .terminals
            .get(tid)
            .and_then(|t| lat_lon(&t.row.install_location))
        else {
            return true;
        };
        reported
            .and_then(lat_lon)
            .is_some_and(|here| metres_between(here, home) <= INSTALL_RADIUS_M)
    }

    /// The decision row, and an alert in a case when the decision raises one.
    fn decision_writes(&mut self, now: Now, txn_id: i64, d: &risk::Decision) -> Vec<Write> {
        let at = self.rfc3339(now);
        let verdict = match &d.verdict {
            risk::Verdict::Approve => "approve".to_owned(),
            risk::Verdict::Review => "review".to_owned(),
            risk::Verdict::Decline(c) => format!("decline {c}"),
        };
        let shadow: Vec<&str> = d
            .matched
            .iter()
            .filter(|m| m.shadow)
            .map(|m| m.rule.as_str())
            .collect();
        let details: Vec<String> = d
            .matched
            .iter()
            .map(|m| {
                let vals: Vec<String> = m.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}: {}", m.rule, vals.join(" "))
            })
            .collect();
        let mut writes = vec![Write::Decision(DecisionRow {
            txn_id,
            version: d.version.clone(),
            verdict: verdict.clone(),
            score: i64::from(d.score),
            hold: d.hold,
            alert: d.alert,
            policy: d.policy.map(|p| p.name().to_owned()),
            matched: d.reasons(),
            shadow: shadow.join(","),
            details: details.join("; "),
            at: at.clone(),
            facts: d.facts.clone(),
        })];
        if d.hold {
            // Settlement waits for an analyst: the hold is placed with the decision.
            writes.push(Write::Hold(HoldRow {
                hold_id: format!("risk:{txn_id}"),
                subject: format!("txn:{txn_id}"),
                reason: format!("risk review: {}", d.reasons()),
                placed_by: format!("risk rules {}", d.version),
                placed_at: at.clone(),
                released_by: None,
                released_at: None,
            }));
        }
        if d.alert {
            let Some(t) = self.txns.get(&txn_id) else {
                return writes;
            };
            let card_rules = d
                .matched
                .iter()
                .filter(|m| !m.shadow)
                .all(|m| m.rule.starts_with("card"));
            let subject = if card_rules {
                format!("card:{}", t.row.pan_token)
            } else {
                format!("merchant:{}", t.row.merchant_id)
            };
            let text = format!(
                "{verdict} score {} [{}] on {} {}",
                d.score,
                d.reasons(),
                t.row.kind,
                t.row.rrn
            );
            let (case_id, seq, new) = match self.cases.get_mut(&subject) {
                Some((id, seq)) => {
                    *seq += 1;
                    (*id, *seq, false)
                }
                None => {
                    self.next_case_id += 1;
                    self.cases.insert(subject.clone(), (self.next_case_id, 1));
                    (self.next_case_id, 1, true)
                }
            };
            if new {
                tracing::warn!(case_id, %subject, "ALERT: risk case opened");
                writes.push(Write::Case(CaseRow {
                    case_id,
                    subject,
                    status: "open".into(),
                    assignee: None,
                    opened_at: at.clone(),
                    updated_at: at.clone(),
                }));
            }
            writes.push(Write::CaseEntry(CaseEntryRow {
                case_id,
                seq,
                at,
                kind: "alert".into(),
                txn_id: Some(txn_id),
                author: "system".into(),
                text,
            }));
        }
        writes
    }

    /// Takes new zone keys (and a new token key) loaded while the node runs: messages
    /// to the issuer are signed, and PINs translated, under the new ones from the next
    /// input on; replies to messages signed under the ZAK it replaces still verify
    /// (the last few kept). The token key's replaced versions stay in the security
    /// module, so a void or refund matches an original tokenized before the change.
    pub fn update_keys(&mut self, zone: ZoneKeys, token_key: Option<&WrappedKey>) {
        if let Some(dek) = token_key {
            match self.hsm.install_token_key(dek) {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, version = dek.version(), "token key not installed; the current one stays")
                }
            }
        }
        let (zpk, zak) = (self.zone.zpk.version(), self.zone.zak.version());
        if (zone.zpk.version(), zone.zak.version()) == (zpk, zak) {
            return;
        }
        tracing::info!(
            zpk_from = zpk,
            zpk_to = zone.zpk.version(),
            zak_from = zak,
            zak_to = zone.zak.version(),
            "zone keys changed while running"
        );
        let old = std::mem::replace(&mut self.zone, zone);
        if old.zak.version() != self.zone.zak.version() {
            self.older_zaks
                .retain(|k| k.version() != self.zone.zak.version());
            self.older_zaks.insert(0, old.zak);
            self.older_zaks.truncate(3);
        }
    }

    /// The zone keys in use.
    pub fn zone_keys(&self) -> &ZoneKeys {
        &self.zone
    }

    /// Signs a message for the issuer under the current ZAK; field 53 names the zone
    /// key versions (`01`, ZPK version, ZAK version, seven digits each) so the issuer
    /// picks the same keys during a switch and answers under the ZAK it came with.
    fn sign_link(&self, m: &mut Message) -> Result<Vec<u8>, crate::msgs::SignError> {
        m.set(
            53,
            format!(
                "01{:07}{:07}",
                self.zone.zpk.version() % 10_000_000,
                self.zone.zak.version() % 10_000_000
            ),
        );
        pack_signed(
            LINK(),
            m,
            self.hsm.as_ref(),
            &self.zone.zak,
            MacAlgorithm::X9_19,
        )
    }

    /// A merchant's or a terminal's new status, made elsewhere (an operator on another
    /// node or the API): the next request is checked against it. Unknown ones are
    /// ignored (a node learns new merchants and terminals at its next start).
    pub fn update_status(&mut self, change: &StatusChange) {
        match change {
            StatusChange::Merchant {
                merchant_id,
                status,
            } => {
                if let Some(m) = self.merchants.get_mut(merchant_id) {
                    tracing::info!(merchant = %merchant_id, %status, "merchant status changed");
                    m.status = status.clone();
                }
            }
            StatusChange::Terminal {
                terminal_id,
                status,
            } => {
                if let Some(t) = self.terminals.get_mut(terminal_id) {
                    tracing::info!(terminal = %terminal_id, %status, "terminal status changed");
                    t.row.status = status.clone();
                }
            }
            StatusChange::Limits {
                merchant_id,
                per_txn_minor,
                per_day_minor,
            } => {
                tracing::info!(merchant = %merchant_id, per_txn_minor, per_day_minor, "merchant limits changed");
                self.limits
                    .insert(merchant_id.clone(), (*per_txn_minor, *per_day_minor));
            }
            StatusChange::Location {
                terminal_id,
                install_location,
            } => {
                if let Some(t) = self.terminals.get_mut(terminal_id) {
                    tracing::info!(terminal = %terminal_id, %install_location, "terminal relocated");
                    t.row.install_location.clone_from(install_location);
                }
            }
        }
    }

    /// Sets every merchant's limits (per transaction, per day; minor units, 0 =
    /// none), from their terms.
    pub fn with_limits(mut self, limits: impl IntoIterator<Item = (String, i64, i64)>) -> Engine {
        self.limits = limits.into_iter().map(|(m, t, d)| (m, (t, d))).collect();
        self
    }

    /// A merchant's limits (per transaction, per day); none known: (0, 0).
    fn limits_of(&self, merchant_id: &str) -> (i64, i64) {
        self.limits.get(merchant_id).copied().unwrap_or((0, 0))
    }

    /// Replaces the risk rule set while running; the next decision names the new version.
    pub fn reload_rules(&mut self, rules: risk::RuleSet) {
        tracing::info!(version = %rules.version, "risk rules reloaded");
        self.risk.reload(rules);
    }

    /// Replaces the risk engine and gives it a monotonic clock for its time budget;
    /// `open_cases` are the cases new alerts join (with their last entry number) and
    /// `case_ids` every case id in the store. Like transaction ids, case ids carry the
    /// node number (node × 10^12 + sequence), so nodes sharing one database never open
    /// two cases with the same id (they did: a second node's first case collided with
    /// the first node's and the whole batch, the sale with it, failed with 96).
    pub fn with_risk(
        mut self,
        risk: risk::Engine,
        mono: Arc<dyn Fn() -> u64 + Send + Sync>,
        open_cases: Vec<(CaseRow, i64)>,
        case_ids: impl IntoIterator<Item = i64>,
    ) -> Engine {
        self.risk = risk;
        self.mono = mono;
        let base = i64::from(self.cfg.node) * 1_000_000_000_000;
        self.next_case_id = case_ids
            .into_iter()
            .filter(|id| (base..base + 1_000_000_000_000).contains(id))
            .max()
            .unwrap_or(base);
        self.cases = open_cases
            .into_iter()
            .map(|(c, seq)| (c.subject, (c.case_id, seq)))
            .collect();
        self
    }

    /// Track 2 of a request, decrypted inside the security module when the terminal
    /// encrypted it (field 53 position 3 `1`). A terminal that holds a track key, or
    /// was provisioned for one (profile `004`), must encrypt: a clear track from it is
    /// refused with 63, like an encrypted one from a terminal without a track key.
    fn track2(&self, req: &Message, t2: &str) -> Result<Track2, Reject> {
        let violation = |why| Reject(ResponseCode::SECURITY_VIOLATION, why);
        let term = self
            .terminals
            .get(req.get_str(41).unwrap_or(""))
            .ok_or(Reject(
                ResponseCode::TERMINAL_NOT_REGISTERED,
                "unknown terminal",
            ))?;
        let encrypted = req.get(53).is_some_and(|f| f.get(2) == Some(&b'1'));
        let must_encrypt = term.tdk.is_some()
            || KeyLayout::from_net_code(&term.row.key_profile) == Some(KeyLayout::DoubleWithTrack);
        match (encrypted, &term.tdk) {
            (true, Some(tdk)) => self.hsm.decrypt_track(tdk, t2).map_err(|_| {
                Reject(
                    ResponseCode::INVALID_CARD,
                    "track 2 does not decrypt to a track under the terminal's track key",
                )
            }),
            (true, None) => Err(violation(
                "encrypted track 2 from a terminal without a track key",
            )),
            (false, _) if must_encrypt => Err(violation(
                "clear track 2 from a terminal that must encrypt it",
            )),
            (false, _) => Track2::parse(t2)
                .map_err(|_| Reject(ResponseCode::INVALID_CARD, "track 2 does not parse")),
        }
    }

    fn card(&self, now: Now, req: &Message) -> Result<Option<Card>, Reject> {
        let bad = |why| Reject(ResponseCode::INVALID_CARD, why);
        let (pan, expiry, track2, chip) = if let Some(t2) = req.get_str(35) {
            let t = self.track2(req, t2)?;
            (
                t.pan().clone(),
                t.expiry(),
                Some(t.text().to_owned()),
                t.is_chip_card(),
            )
        } else if let Some(p) = req.get_str(2) {
            let pan = Pan::new(p).map_err(|_| bad("PAN is not 12-19 digits"))?;
            (pan, req.get_str(14).and_then(Expiry::parse), None, false)
        } else {
            return Ok(None);
        };
        if !pan.luhn_ok() {
            return Err(bad("PAN fails the Luhn check"));
        }
        if let Some(e) = expiry {
            let local = self.local(now);
            if !e.valid_in(local.year() as u16, local.month() as u8) {
                return Err(Reject(ResponseCode::EXPIRED_CARD, "card expired"));
            }
        }
        let token = self.hsm.tokenize(&pan).to_string();
        Ok(Some(Card {
            masked: pan.masked().to_string(),
            token,
            expiry,
            track2,
            chip,
            pan,
        }))
    }

    /// Whether a card (its PAN and token now) is the one an original was tokenized
    /// from, also when the token key changed in between (the original's token names
    /// its key; the module keeps replaced token keys).
    fn same_card(&self, pan: &Pan, token: &str, original: &str) -> bool {
        token == original
            || PanToken::parse(original)
                .and_then(|t| self.hsm.tokenize_under(pan, t.key_id()))
                .is_some_and(|t| t.to_string() == original)
    }

    fn original(
        &self,
        req: &Message,
        kind: TxnKind,
        amount: i64,
        card: Option<&Card>,
    ) -> Result<i64, Reject> {
        let not_found = Reject(
            ResponseCode::ORIGINAL_NOT_FOUND,
            "original transaction not found",
        );
        let f61 = Field61::read(req)
            .map_err(|_| Reject(ResponseCode::FORMAT_ERROR, "field 61 missing or malformed"))?;
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let id = *self
            .by_terminal_stan
            .get(&(tid, i64::from(f61.batch), i64::from(f61.stan)))
            .ok_or(not_found)?;
        let o = self.txns.get(&id).ok_or(Reject(
            ResponseCode::ORIGINAL_NOT_FOUND,
            "original forgotten",
        ))?;
        if let Some(c) = card {
            if !self.same_card(&c.pan, &c.token, &o.row.pan_token) {
                return Err(Reject(
                    ResponseCode::INVALID_TRANSACTION,
                    "card differs from the original's",
                ));
            }
        }
        let wanted: &[TxnKind] = match kind {
            TxnKind::Void | TxnKind::Refund => &[TxnKind::Sale, TxnKind::Completion],
            _ => &[TxnKind::PreAuth],
        };
        if !wanted.contains(&o.kind) {
            return Err(Reject(
                ResponseCode::ORIGINAL_NOT_FOUND,
                "original is of another kind",
            ));
        }
        if o.state == TxnState::Voided {
            return Err(Reject(
                ResponseCode::INVALID_TRANSACTION,
                "original already voided",
            ));
        }
        let current = self.terminals.get(&o.row.terminal_id).map(|t| t.row.batch);
        if kind == TxnKind::Void && current.is_some_and(|b| b != o.row.batch) {
            // Its batch is settled and the sale captured: only a refund can undo it.
            return Err(Reject(
                ResponseCode::INVALID_TRANSACTION,
                "original is in a settled batch",
            ));
        }
        if o.state != TxnState::Approved {
            return Err(Reject(
                ResponseCode::ORIGINAL_NOT_FOUND,
                "original was not approved",
            ));
        }
        let limit = match kind {
            TxnKind::Refund => o.row.amount_minor - o.refunded_minor,
            TxnKind::Void => o.row.amount_minor,
            _ => o.row.amount_minor,
        };
        if amount > limit || (kind == TxnKind::Void && amount != o.row.amount_minor) {
            return Err(Reject(
                ResponseCode::INVALID_AMOUNT,
                "amount exceeds what the original allows",
            ));
        }
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_txn(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        key: String,
        kind: TxnKind,
        state: TxnState,
    ) -> i64 {
        let (id, rrn) = self.next_ids(now);
        let at = self.rfc3339(now);
        let batch = Field60::read(req).map(|f| i64::from(f.batch)).unwrap_or(0);
        let stan = req.stan().map(|s| i64::from(s.get())).unwrap_or(0);
        let row = TxnRow {
            txn_id: id,
            request_key: key.clone(),
            terminal_id: req.get_str(41).unwrap_or("").into(),
            merchant_id: req.get_str(42).unwrap_or("").into(),
            batch,
            stan,
            mti: req.mti().to_string(),
            kind,
            amount_minor: req.get_str(4).and_then(|s| s.parse().ok()).unwrap_or(0),
            currency: req.get_str(49).unwrap_or("156").into(),
            pan_token: String::new(),
            masked_pan: String::new(),
            rrn,
            auth_code: None,
            response_code: None,
            state,
            original_rrn: None,
            link_stan: None,
            reply_hex: None,
            local_date: self.local(now).format("%Y-%m-%d").to_string(),
            created_at: at.clone(),
            updated_at: at,
        };
        self.by_request.insert(key, id);
        if kind != TxnKind::Reversal {
            self.by_terminal_stan
                .insert((row.terminal_id.clone(), batch, stan), id);
        }
        self.txns.insert(
            id,
            Txn {
                row,
                kind,
                state,
                conn,
                wire,
                request: Some(req.clone()),
                events: 0,
                persisted: false,
                refunded_minor: 0,
                reversal_requested: false,
                original: None,
                bin: String::new(),
            },
        );
        self.order.push_back(id);
        self.evict();
        id
    }

    fn event(&mut self, now: Now, id: i64, kind: &str, detail: String) -> Write {
        let at = self.rfc3339(now);
        let t = self.txns.get_mut(&id);
        let seq = t.map_or(1, |t| {
            t.events += 1;
            t.events
        });
        Write::Event(EventRow {
            txn_id: id,
            seq,
            at,
            kind: kind.into(),
            detail,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: Message,
        key: String,
        kind: TxnKind,
        code: ResponseCode,
        why: &str,
    ) -> Vec<Action> {
        let id = self.new_txn(now, conn, wire, &req, key, kind, TxnState::Rejected);
        let reply = self.reply_frame(id, code, None, None);
        let ev = self.event(now, id, "rejected", format!("{code} {why}"));
        let Some(t) = self.txns.get_mut(&id) else {
            return vec![];
        };
        t.row.response_code = Some(code.to_string());
        t.row.reply_hex = reply.as_ref().map(hex::encode);
        t.request = None;
        let then = reply
            .map(|frame| vec![Action::SendTerminal { conn, frame }])
            .unwrap_or_default();
        t.persisted = true;
        vec![Action::Persist {
            writes: vec![Write::NewTxn(t.row.clone()), ev],
            then,
            on_fail: vec![Action::CloseTerminal { conn }],
        }]
    }

    fn signed_reply_now(
        &mut self,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        code: ResponseCode,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("");
        let mut reply = self.echo_reply(req, code);
        match self.sign_for_terminal(tid, wire, &mut reply) {
            Some(bytes) => vec![Action::SendTerminal {
                conn,
                frame: wire.wrap(&bytes),
            }],
            None => self.unsigned_reply(conn, wire, req, code),
        }
    }

    /// A reply to a request no transaction was recorded for (refused before the
    /// journal, or malformed): the request's 3, 4, 11, 25, 41, 42, 49 and 60 — whatever
    /// of them it has —, the acquirer id (32), the host's time (12, 13) and 39.
    fn echo_reply(&self, req: &Message, code: ResponseCode) -> Message {
        let mut reply = Message::new(req.mti().response());
        for f in [3, 4, 11, 25, 41, 42, 49, 60] {
            if let Some(v) = req.get(f) {
                reply.set(f, v);
            }
        }
        let local = self.local(self.input_at);
        reply.set(12, local.format("%H%M%S").to_string());
        reply.set(13, local.format("%m%d").to_string());
        reply.set(32, self.cfg.acquirer_id.as_str());
        reply.set_response_code(code);
        reply
    }

    fn sign_for_terminal(&self, tid: &str, wire: Wire, reply: &mut Message) -> Option<Vec<u8>> {
        let maks = &self.terminals.get(tid)?.maks;
        let mak = maks
            .iter()
            .find(|k| Some(k.version()) == wire.mac_version)
            .or_else(|| maks.first())?;
        match pack_signed(wire.codec(), reply, self.hsm.as_ref(), mak, wire.mac()) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a terminal reply");
                None
            }
        }
    }

    /// The terminal reply for a transaction, signed with the terminal's current MAK.
    fn reply_frame(
        &self,
        id: i64,
        code: ResponseCode,
        auth: Option<&str>,
        balance: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        let t = self.txns.get(&id)?;
        let req = t.request.as_ref()?;
        let mut reply = Message::new(req.mti().response());
        for f in [3, 4, 11, 25, 41, 42, 49, 60] {
            if let Some(v) = req.get(f) {
                reply.set(f, v);
            }
        }
        // The host's time of the transaction (a retransmission's reply shows the same).
        let at = DateTime::parse_from_rfc3339(&t.row.created_at)
            .map(|d| Now {
                unix_ms: d.timestamp_millis(),
            })
            .unwrap_or(self.input_at);
        let local = self.local(at);
        reply.set(12, local.format("%H%M%S").to_string());
        reply.set(13, local.format("%m%d").to_string());
        reply.set(32, self.cfg.acquirer_id.as_str());
        reply.set(37, t.row.rrn.as_str());
        if let Some(a) = auth {
            reply.set(38, a);
        }
        reply.set_response_code(code);
        if let Some(b) = balance {
            reply.set(54, b);
        }
        let bytes = self.sign_for_terminal(&t.row.terminal_id, t.wire, &mut reply)?;
        Some(t.wire.wrap(&bytes))
    }

    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: Message,
        key: String,
        kind: TxnKind,
        c: Checked,
    ) -> Vec<Action> {
        let id = self.new_txn(now, conn, wire, &req, key, kind, TxnState::Authorizing);
        let link_stan = self.next_link_stan();
        let original_bin = c
            .original
            .and_then(|o| self.txns.get(&o))
            .map(|o| o.bin.clone())
            .unwrap_or_default();
        let original = c.original.and_then(|o| self.txns.get(&o)).map(|o| {
            (
                o.row.rrn.clone(),
                o.row.auth_code.clone(),
                o.row.pan_token.clone(),
                o.row.masked_pan.clone(),
                link_mti(o.kind),
                o.row.link_stan,
                link_datetime_of(&o.row.created_at),
            )
        });
        let message =
            match self.issuer_request(now, id, &req, kind, &c, link_stan, original.as_ref()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the issuer request");
                    return self.finish(
                        now,
                        id,
                        TxnState::Rejected,
                        ResponseCode::SYSTEM_MALFUNCTION,
                        None,
                        None,
                        "issuer request not built".into(),
                    );
                }
            };
        let Some(t) = self.txns.get_mut(&id) else {
            return vec![];
        };
        if let Some(card) = &c.card {
            t.row.pan_token = card.token.clone();
            t.row.masked_pan = card.masked.clone();
            t.bin = card.pan.bin().to_owned();
        } else if let Some((_, _, token, masked, ..)) = &original {
            t.row.pan_token = token.clone();
            t.row.masked_pan = masked.clone();
            t.bin = original_bin.clone();
        }
        t.row.amount_minor = c.amount_minor;
        t.row.link_stan = Some(i64::from(link_stan.get()));
        t.row.original_rrn = original.as_ref().map(|o| o.0.clone());
        t.original = c.original;
        t.persisted = true;
        let row = t.row.clone();
        self.by_link.insert(
            (
                link_mti(kind).class(),
                row.terminal_id.clone(),
                link_stan.get(),
            ),
            id,
        );
        self.in_flight += 1;
        let detail = format!(
            "{} {} {} card {}",
            kind.name(),
            row.amount_minor,
            row.currency,
            row.masked_pan
        );
        let ev1 = self.event(now, id, "received", detail);
        let ev2 = self.event(
            now,
            id,
            "sent_to_issuer",
            format!("link STAN {:06}", link_stan.get()),
        );
        vec![Action::Persist {
            writes: vec![Write::NewTxn(row), ev1, ev2],
            then: vec![
                Action::SendIssuer {
                    txn_id: id,
                    message,
                },
                Action::StartIssuerTimer {
                    txn_id: id,
                    after_ms: self.cfg.issuer_timeout_ms,
                },
            ],
            on_fail: vec![Action::Abandon { txn_id: id }],
        }]
    }

    /// The transaction's first journal write failed (nothing reached the issuer):
    /// answer the terminal 96 and forget it, so a retransmission starts afresh.
    fn abandon(&mut self, id: i64) -> Vec<Action> {
        let reply = self.reply_frame(id, ResponseCode::SYSTEM_MALFUNCTION, None, None);
        let Some(t) = self.txns.remove(&id) else {
            return Vec::new();
        };
        tracing::error!(txn = id, rrn = %t.row.rrn, "journal write failed before the issuer request: answered 96");
        if t.state == TxnState::Authorizing {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.unindex(id, &t);
        reply
            .map(|frame| {
                vec![Action::SendTerminal {
                    conn: t.conn,
                    frame,
                }]
            })
            .unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn issuer_request(
        &self,
        now: Now,
        id: i64,
        req: &Message,
        kind: TxnKind,
        c: &Checked,
        link_stan: Stan,
        original: Option<&(
            String,
            Option<String>,
            String,
            String,
            Mti,
            Option<i64>,
            String,
        )>,
    ) -> Result<Vec<u8>, String> {
        let t = self.txns.get(&id).ok_or("no transaction")?;
        let local = self.local(now);
        let utc = DateTime::<Utc>::from_timestamp_millis(now.unix_ms).unwrap_or_default();
        let mut m = Message::new(link_mti(kind));
        if let Some(card) = &c.card {
            m.set(2, card.pan.digits());
            if let Some(e) = card.expiry {
                m.set(14, e.to_yymm());
            }
            if let Some(t2) = &card.track2 {
                m.set(35, t2.as_str());
            }
        }
        for f in [3, 22, 25, 49] {
            if let Some(v) = req.get(f) {
                m.set(f, v);
            }
        }
        if kind != TxnKind::Balance {
            m.set(4, format!("{:012}", c.amount_minor));
        }
        m.set(7, utc.format("%m%d%H%M%S").to_string());
        m.set_stan(link_stan);
        m.set(12, local.format("%H%M%S").to_string());
        m.set(13, local.format("%m%d").to_string());
        m.set(32, self.cfg.acquirer_id.as_str());
        m.set(41, t.row.terminal_id.as_str());
        m.set(42, t.row.merchant_id.as_str());
        let merchant = self.merchants.get(&t.row.merchant_id);
        let name = merchant.map_or("", |m| m.name.as_str());
        let city = merchant.map_or("", |m| m.city.as_str());
        m.set(
            43,
            format!("{:<25.25}{:<13.13}CN", ascii(name), ascii(city)),
        );
        if let Some(pin) = c.pin {
            m.set(52, pin);
        }
        match original {
            Some((_, auth, _, _, omti, ostan, odt)) => {
                // Every link message is its own transaction at the issuer (its own RRN);
                // the original is named by field 90 and its authorization code.
                m.set(37, t.row.rrn.as_str());
                if let Some(a) = auth {
                    m.set(38, a.as_str());
                }
                let od = OriginalData {
                    mti: omti.to_string(),
                    stan: format!("{:06}", ostan.unwrap_or(0)),
                    datetime: if odt.is_empty() {
                        "0000000000".into()
                    } else {
                        odt.clone()
                    },
                    acquirer: self.cfg.acquirer_id.clone(),
                    forwarder: String::new(),
                };
                m.set(90, od.to_text());
            }
            None => {
                m.set(37, t.row.rrn.as_str());
            }
        }
        self.sign_link(&mut m).map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn terminal_reversal(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: Message,
        key: String,
        batch: i64,
        stan: i64,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let reason = req.get_str(39).unwrap_or("06").to_owned();
        let amount = req.get_str(4).and_then(|s| s.parse::<i64>().ok());
        // The original is the request of this terminal, batch and STAN. A reversal whose
        // amount differs is still about it: the terminal believes that sale failed, so
        // the original is reversed for its own amount (never the reversal's), and the
        // difference is recorded for operators. (Answering 25 left the cardholder
        // debited for a sale the terminal reported as failed.)
        let original = self
            .by_terminal_stan
            .get(&(tid.clone(), batch, stan))
            .copied();
        let differs = original.and_then(|o| {
            let at_original = self.txns.get(&o)?.row.amount_minor;
            amount
                .filter(|a| *a != at_original)
                .map(|a| (a, at_original))
        });
        let id = self.new_txn(
            now,
            conn,
            wire,
            &req,
            key,
            TxnKind::Reversal,
            TxnState::Recorded,
        );
        let Some(oid) = original else {
            // Nothing of this terminal, batch and STAN is remembered: either it never
            // reached the journal (then it was never sent to the issuer: nothing to
            // undo), or it is older than what this node keeps in memory — then a person
            // must look, so the reversal is recorded as an exception with its evidence.
            let forgotten = self.order.len() >= self.cfg.max_remembered;
            if forgotten {
                tracing::error!(terminal = %tid, batch, stan, "ALERT: terminal reversal of an original this node no longer remembers; operator exception");
            }
            let mut out = self.finish(
                now,
                id,
                TxnState::Recorded,
                ResponseCode::ORIGINAL_NOT_FOUND,
                None,
                None,
                format!("reversal ({reason}) of an unknown original"),
            );
            if forgotten {
                let ev = self.event(
                    now,
                    id,
                    "reversal_exception",
                    format!("terminal {tid} batch {batch} STAN {stan}: original not in memory (older than the {} transactions kept); find it in the journal and reverse it by hand if it was approved", self.cfg.max_remembered),
                );
                if let Some(Action::Persist { writes, .. }) = out.first_mut() {
                    writes.push(ev);
                }
            }
            return out;
        };
        let mut actions = Vec::new();
        let mut writes = Vec::new();
        if let Some((said, was)) = differs {
            tracing::warn!(terminal = %tid, batch, stan, said, was, "terminal reversal names its original with another amount: the original is reversed for its own amount");
            writes.push(self.event(
                now,
                id,
                "reversal_amount_differs",
                format!("the terminal's reversal says {said}, its original (batch {batch}, STAN {stan}) was {was}: the original is reversed for {was}"),
            ));
        }
        let ostate = self.txns.get(&oid).map(|o| o.state);
        let orrn = self.txns.get(&oid).map(|o| o.row.rrn.clone());
        if let Some(t) = self.txns.get_mut(&id) {
            t.row.original_rrn = orrn;
            if let Some(o) = self.txns.get(&oid) {
                let (amount, token, masked) = (
                    o.row.amount_minor,
                    o.row.pan_token.clone(),
                    o.row.masked_pan.clone(),
                );
                if let Some(t) = self.txns.get_mut(&id) {
                    t.row.amount_minor = amount;
                    t.row.pan_token = token;
                    t.row.masked_pan = masked;
                }
            }
        }
        let detail = match ostate {
            Some(TxnState::Authorizing) => {
                if let Some(o) = self.txns.get_mut(&oid) {
                    o.reversal_requested = true;
                }
                format!("terminal reversal ({reason}) while the original waits for the issuer")
            }
            Some(TxnState::Approved) => {
                let (w, a) = self.reverse(now, oid, &reason);
                writes.extend(w);
                actions.extend(a);
                format!("terminal reversal ({reason}) of an approved original: advice sent")
            }
            Some(s) => format!(
                "terminal reversal ({reason}); original is {}: nothing to undo",
                s.name()
            ),
            None => "original forgotten".into(),
        };
        let mut out = self.finish(
            now,
            id,
            TxnState::Recorded,
            ResponseCode::APPROVED,
            None,
            None,
            detail,
        );
        if let Some(Action::Persist {
            writes: w, then, ..
        }) = out.first_mut()
        {
            w.extend(writes);
            then.extend(actions);
        }
        out
    }

    /// Moves an approved (or unsure) transaction to reversal: builds the advice (0420),
    /// records it as a store-and-forward entry and sends it; it is repeated as 0421
    /// with backoff until the issuer acknowledges it.
    fn reverse(&mut self, now: Now, id: i64, reason: &str) -> (Vec<Write>, Vec<Action>) {
        let reversible = self.txns.get(&id).is_some_and(|o| {
            o.state.can_become(TxnState::ReversalPending) && o.kind.is_reversible()
        });
        if !reversible {
            return (vec![], vec![]);
        }
        let link_stan = self.next_link_stan();
        let Some(o) = self.txns.get(&id) else {
            return (vec![], vec![]);
        };
        let utc = DateTime::<Utc>::from_timestamp_millis(now.unix_ms).unwrap_or_default();
        let tid = o.row.terminal_id.clone();
        // The reversed transaction's own RRN: the issuer knows it by that.
        let mut m = link_advice(
            "0420",
            processing_code(o.kind),
            &o.row,
            o.kind,
            o.row.amount_minor,
            &o.row.rrn,
            &self.cfg.acquirer_id,
        );
        m.set(7, utc.format("%m%d%H%M%S").to_string());
        m.set_stan(link_stan);
        m.set(32, self.cfg.acquirer_id.as_str());
        m.set(39, reason);
        let Ok(message) = self.sign_link(&mut m) else {
            tracing::error!("reversal advice does not pack");
            return (vec![], vec![]);
        };
        let at = self.rfc3339(now);
        let Some(o) = self.txns.get_mut(&id) else {
            return (vec![], vec![]);
        };
        o.state = TxnState::ReversalPending;
        o.row.state = o.state;
        o.row.updated_at = at.clone();
        // Only the state changes: the row itself is already in the journal (or goes
        // in earlier in the same batch).
        let state = Write::TxnState {
            txn_id: id,
            state: o.row.state,
            updated_at: at.clone(),
        };
        let why = match reason {
            "98" => "no valid response from the issuer",
            "A0" => "issuer response failed its MAC",
            _ => "cancelled at the terminal or undeliverable to it",
        };
        let entry = SafRow {
            saf_id: id,
            txn_id: id,
            kind: "reversal".into(),
            message_hex: String::new(),
            attempts: 0,
            next_at_ms: 0,
            state: SafState::Pending,
            reason: format!("{reason} {why}"),
            owner: None,
            created_at: at.clone(),
            updated_at: at,
        };
        let ev = self.event(
            now,
            id,
            "reversal_sent",
            format!("{reason} {why}; advice link STAN {:06}", link_stan.get()),
        );
        let key = (4, tid, link_stan.get());
        let (saf, actions) = self.send_advice(now, entry, key, message);
        (vec![state, ev, saf], actions)
    }

    /// Delay before attempt `attempt + 1`: exponential from the base, capped.
    fn backoff_ms(&self, attempt: i64) -> u64 {
        let shift = attempt.clamp(1, 20) as u32 - 1;
        self.cfg
            .saf_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(self.cfg.saf_backoff_max_ms)
    }

    /// A store-and-forward entry is due: repeat it as 0421, or give up to an operator.
    fn on_saf_timer(&mut self, now: Now, saf_id: i64) -> Vec<Action> {
        let at = self.rfc3339(now);
        let Some(entry) = self.saf.get(&saf_id).cloned() else {
            return vec![];
        };
        if entry.state != SafState::Pending {
            return vec![];
        }
        // Past the configured attempts the advice is not abandoned (a cardholder would
        // stay debited): operators are alerted once, with an exception on the
        // transaction, and it keeps being repeated at the capped backoff until the
        // issuer answers.
        let mut escalation = None;
        let escalate = entry.attempts == i64::from(self.cfg.saf_max_attempts);
        if escalate {
            tracing::error!(
                txn = entry.txn_id,
                kind = %entry.kind,
                attempts = entry.attempts,
                "ALERT: advice not acknowledged after the maximum attempts; operator exception opened, still repeating"
            );
            escalation = self.known_event(
                now,
                entry.txn_id,
                &format!("{}_exception", entry.kind),
                format!(
                    "{} attempts without acknowledgement; operators alerted; still repeating every {} s until the issuer answers",
                    entry.attempts,
                    self.cfg.saf_backoff_max_ms / 1_000
                ),
            );
        }
        let repeat = hex::decode(&entry.message_hex)
            .ok()
            .and_then(|b| LINK().unpack(&b).ok())
            .and_then(|mut m| {
                m.set_mti(m.mti().repeat());
                self.sign_link(&mut m).ok()
            });
        let Some(message) = repeat else {
            tracing::error!(saf_id, "stored advice unreadable; operator exception");
            let kind = format!("{}_exception", entry.kind);
            return self.hand_to_operators(now, entry, &kind, "stored advice unreadable".into());
        };
        let mut e = entry;
        e.attempts += 1;
        let delay = self.backoff_ms(e.attempts);
        e.next_at_ms = now.unix_ms + delay as i64;
        e.updated_at = at;
        if escalate && !e.reason.contains("escalated") {
            e.reason = format!("{}; escalated to operators", e.reason);
        }
        self.saf.insert(saf_id, e.clone());
        // Each repeat is on the transaction's timeline (where the node knows it).
        let repeated = self.known_event(
            now,
            e.txn_id,
            &format!("{}_repeated", e.kind),
            format!(
                "not acknowledged: sent again as {} (send {}); next in {} ms",
                if e.kind == "reversal" { "0421" } else { "0221" },
                e.attempts,
                delay
            ),
        );
        let mut writes = vec![Write::Saf(e.clone())];
        writes.extend(repeated);
        writes.extend(escalation);
        vec![Action::Persist {
            writes,
            then: vec![
                Action::SendIssuer {
                    txn_id: e.txn_id,
                    message,
                },
                Action::StartSafTimer {
                    saf_id,
                    after_ms: delay,
                },
            ],
            on_fail: vec![Action::StartSafTimer {
                saf_id,
                after_ms: delay,
            }],
        }]
    }

    /// After a restart: every transaction left waiting for the issuer is reversed (the
    /// terminal never got an answer), and every pending store-and-forward entry is
    /// resumed.
    pub fn recover(&mut self, now: Now, pending: Vec<SafRow>) -> Vec<Action> {
        let mut out = Vec::new();
        // New link STANs go past every advice still waiting (sent after the last
        // transaction, an advice may hold a later STAN than the journal shows).
        for e in pending.iter().filter(|e| e.attempts > 0) {
            let stan = hex::decode(&e.message_hex)
                .ok()
                .and_then(|b| LINK().unpack(&b).ok())
                .and_then(|m| m.stan().ok());
            if let Some(stan) = stan {
                self.skip_link_stan_past(stan);
            }
        }
        for e in pending {
            if e.attempts == 0 {
                out.extend(self.take_adjustment(now, e));
                continue;
            }
            self.index_saf(&e);
            let due = (e.next_at_ms - now.unix_ms).max(0) as u64;
            out.push(Action::StartSafTimer {
                saf_id: e.saf_id,
                after_ms: due,
            });
            self.saf.insert(e.saf_id, e);
        }
        let mut stuck: Vec<i64> = self
            .txns
            .iter()
            .filter(|(_, t)| t.state == TxnState::Authorizing)
            .map(|(id, _)| *id)
            .collect();
        stuck.sort_unstable(); // deterministic order: a replay must do the same
        for id in stuck {
            tracing::warn!(
                txn = id,
                "left waiting for the issuer by a restart: reversing"
            );
            out.extend(self.unsure(now, id, "98", "node restarted while waiting for the issuer"));
        }
        out
    }

    /// Makes a queued advice's acknowledgement findable: by the terminal and link STAN
    /// its stored message carries.
    fn index_saf(&mut self, e: &SafRow) {
        let m = hex::decode(&e.message_hex)
            .ok()
            .and_then(|b| LINK().unpack(&b).ok());
        if let Some(m) = m {
            if let (Ok(stan), Some(tid)) = (m.stan(), m.get_str(41)) {
                self.advices
                    .insert((m.mti().class(), tid.to_owned(), stan.get()), e.saf_id);
            }
        }
    }

    /// Records a queued advice as sent for the first time with `link_stan`: stored
    /// with its signed message, findable by its answer, repeated with backoff. Returns
    /// the write and the actions that follow it.
    fn send_advice(
        &mut self,
        now: Now,
        mut e: SafRow,
        answer_key: (u8, String, u32),
        message: Vec<u8>,
    ) -> (Write, Vec<Action>) {
        let delay = self.backoff_ms(1);
        e.message_hex = hex::encode_upper(&message);
        e.attempts = 1;
        e.next_at_ms = now.unix_ms + delay as i64;
        self.advices.insert(answer_key, e.saf_id);
        let (txn_id, saf_id) = (e.txn_id, e.saf_id);
        self.saf.insert(saf_id, e.clone());
        (
            Write::Saf(e),
            vec![
                Action::SendIssuer { txn_id, message },
                Action::StartSafTimer {
                    saf_id,
                    after_ms: delay,
                },
            ],
        )
    }

    /// Hands a queue entry to operators: `exception` in the store, forgotten here, an
    /// event on its transaction when this node knows the transaction's numbering.
    fn hand_to_operators(
        &mut self,
        now: Now,
        mut e: SafRow,
        kind: &str,
        detail: String,
    ) -> Vec<Action> {
        self.saf.remove(&e.saf_id);
        e.state = SafState::Exception;
        e.updated_at = self.rfc3339(now);
        let mut writes = vec![Write::Saf(e.clone())];
        writes.extend(self.known_event(now, e.txn_id, kind, detail));
        vec![Action::Persist {
            writes,
            then: vec![],
            on_fail: vec![],
        }]
    }

    /// An event for a transaction this node remembers; `None` for one it does not (its
    /// next event number is unknown here, and a reused one fails the whole batch).
    fn known_event(&mut self, now: Now, id: i64, kind: &str, detail: String) -> Option<Write> {
        self.txns
            .contains_key(&id)
            .then(|| self.event(now, id, kind, detail))
    }

    /// Sends a credit adjustment reconciliation queued ([`adjustment_entry`]) for the
    /// first time: it gets a link STAN and field 7 now, is signed, stored as sent and
    /// sent as 0220; repeats are 0221 with backoff until the issuer's 0230.
    fn take_adjustment(&mut self, now: Now, mut e: SafRow) -> Vec<Action> {
        let link_stan = self.next_link_stan();
        let utc = DateTime::<Utc>::from_timestamp_millis(now.unix_ms).unwrap_or_default();
        let signed = hex::decode(&e.message_hex)
            .ok()
            .and_then(|b| LINK().unpack(&b).ok())
            .and_then(|mut m| {
                m.set(7, utc.format("%m%d%H%M%S").to_string());
                m.set_stan(link_stan);
                m.set(32, self.cfg.acquirer_id.as_str());
                let key = (m.mti().class(), m.get_str(41)?.to_owned(), link_stan.get());
                let bytes = self.sign_link(&mut m).ok()?;
                Some((key, bytes))
            });
        let Some((key, message)) = signed else {
            tracing::error!(
                saf_id = e.saf_id,
                "queued adjustment unreadable; operator exception"
            );
            return self.hand_to_operators(
                now,
                e,
                "adjustment_exception",
                "queued adjustment unreadable".into(),
            );
        };
        tracing::info!(
            saf_id = e.saf_id,
            txn = e.txn_id,
            "sending a credit adjustment to the issuer"
        );
        e.updated_at = self.rfc3339(now);
        let saf_id = e.saf_id;
        let (write, then) = self.send_advice(now, e, key, message);
        let delay = self.backoff_ms(1);
        vec![Action::Persist {
            writes: vec![write],
            then,
            on_fail: vec![Action::StartSafTimer {
                saf_id,
                after_ms: delay,
            }],
        }]
    }

    /// An advice's answer came: a reversal's or an adjustment's, by the entry's kind.
    fn on_advice_answer(&mut self, now: Now, saf_id: i64, mac_ok: bool, code: &str) -> Vec<Action> {
        match self.saf.get(&saf_id).map(|e| e.kind.as_str()) {
            Some(ADJUSTMENT) => self.on_adjustment_ack(now, saf_id, mac_ok, code),
            // A reversal's entry has its transaction's id.
            _ => self.on_reversal_ack(now, saf_id, mac_ok, code.to_owned()),
        }
    }

    /// The issuer answered a credit adjustment: `00` closes it; any other answer hands
    /// it to operators (the issuer refused to give the money back).
    fn on_adjustment_ack(
        &mut self,
        now: Now,
        saf_id: i64,
        mac_ok: bool,
        code: &str,
    ) -> Vec<Action> {
        if !mac_ok {
            tracing::warn!(saf_id, "adjustment answer MAC did not verify; ignored");
            return vec![];
        }
        let Some(mut e) = self.saf.get(&saf_id).cloned() else {
            return vec![];
        };
        e.reason = format!("{}; issuer answered {code}", e.reason);
        if code != "00" {
            tracing::error!(
                txn = e.txn_id,
                code,
                "ALERT: issuer refused a credit adjustment; operator exception"
            );
            let detail = format!("issuer answered {code}; handed to operators");
            return self.hand_to_operators(now, e, "adjustment_refused", detail);
        }
        tracing::info!(txn = e.txn_id, "issuer applied the credit adjustment");
        self.saf.remove(&saf_id);
        e.state = SafState::Done;
        e.updated_at = self.rfc3339(now);
        let detail = "issuer credited the cardholder back (reconciliation)".to_owned();
        let mut writes = vec![Write::Saf(e.clone())];
        writes.extend(self.known_event(now, e.txn_id, "adjusted", detail));
        vec![Action::Persist {
            writes,
            then: vec![],
            on_fail: vec![],
        }]
    }

    /// Takes over a queue entry another node left overdue; entries this node already
    /// runs are left alone.
    fn adopt(&mut self, now: Now, entry: SafRow) -> Vec<Action> {
        if entry.state != SafState::Pending
            || self
                .saf
                .get(&entry.saf_id)
                .is_some_and(|e| e.state == SafState::Pending)
        {
            return vec![];
        }
        if entry.attempts == 0 {
            return self.take_adjustment(now, entry);
        }
        tracing::info!(
            saf_id = entry.saf_id,
            txn = entry.txn_id,
            kind = %entry.kind,
            "adopting an overdue advice from the shared queue"
        );
        self.index_saf(&entry);
        let saf_id = entry.saf_id;
        self.saf.insert(saf_id, entry);
        vec![Action::StartSafTimer {
            saf_id,
            after_ms: 0,
        }]
    }

    /// How much the engine remembers: transactions, issuer-link keys, store-and-forward
    /// entries (each bounded: see `Config::max_remembered`).
    pub fn remembered(&self) -> (usize, usize, usize) {
        (
            self.txns.len(),
            self.by_link.len() + self.advices.len(),
            self.saf.len(),
        )
    }

    /// Store-and-forward entries waiting, and the age of the oldest (ms).
    pub fn saf_depth(&self, now: Now) -> (usize, i64) {
        let pending = self.saf.values().filter(|e| e.state == SafState::Pending);
        let (mut n, mut oldest) = (0, 0);
        for e in pending {
            n += 1;
            let created = DateTime::parse_from_rfc3339(&e.created_at)
                .map_or(now.unix_ms, |d| d.timestamp_millis());
            oldest = oldest.max(now.unix_ms - created);
        }
        (n, oldest)
    }

    /// Records a final outcome for a transaction and replies to its terminal.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        now: Now,
        id: i64,
        state: TxnState,
        code: ResponseCode,
        auth: Option<&str>,
        balance: Option<&[u8]>,
        detail: String,
    ) -> Vec<Action> {
        let reply = self.reply_frame(id, code, auth, balance);
        let ev = self.event(now, id, state.name(), format!("{code} {detail}"));
        let at = self.rfc3339(now);
        let Some(t) = self.txns.get_mut(&id) else {
            return vec![];
        };
        t.state = state;
        t.row.state = state;
        t.row.response_code = Some(code.to_string());
        t.row.auth_code = auth.map(str::to_owned);
        t.row.reply_hex = reply.as_ref().map(hex::encode);
        t.row.updated_at = at;
        t.request = None;
        let conn = t.conn;
        let write = if t.persisted {
            Write::UpdateTxn(t.row.clone())
        } else {
            t.persisted = true;
            Write::NewTxn(t.row.clone())
        };
        let then = reply
            .map(|frame| vec![Action::SendTerminal { conn, frame }])
            .unwrap_or_default();
        vec![Action::Persist {
            writes: vec![write, ev],
            then,
            on_fail: vec![],
        }]
    }

    // ---- issuer side ---------------------------------------------------------------

    fn on_issuer(&mut self, now: Now, frame: &[u8]) -> Vec<Action> {
        let msg = match LINK().unpack(frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "malformed issuer message ignored");
                return vec![];
            }
        };
        if msg.mti().class() == 8 {
            return vec![];
        }
        let (Ok(stan), Some(tid)) = (msg.stan(), msg.get_str(41)) else {
            tracing::warn!(mti = %msg.mti(), "issuer message without STAN or terminal");
            return vec![];
        };
        let key = (msg.mti().class(), tid.to_owned(), stan.get());
        let mac_ok = |e: &Engine| {
            received_mac(LINK(), frame, &msg).is_some_and(|(data, mac)| {
                e.hsm
                    .verify_mac(&e.zone.zak, MacAlgorithm::X9_19, data, &mac)
                    .is_ok()
                    || e.hsm
                        .verify_mac_any(&e.older_zaks, MacAlgorithm::X9_19, data, &mac)
                        .is_ok()
            })
        };
        let Some(&id) = self.by_link.get(&key) else {
            let Some(&saf_id) = self.advices.get(&key) else {
                tracing::warn!(mti = %msg.mti(), terminal = tid, stan = %stan, "unmatched issuer message");
                return vec![];
            };
            let mac_ok = mac_ok(self);
            if mac_ok {
                // Answered: nothing more will come for this advice.
                self.advices.remove(&key);
            }
            return self.on_advice_answer(now, saf_id, mac_ok, msg.get_str(39).unwrap_or(""));
        };
        let mac_ok = mac_ok(self);
        let Some(t) = self.txns.get(&id) else {
            return vec![];
        };
        if t.state != TxnState::Authorizing {
            tracing::warn!(rrn = %t.row.rrn, state = t.state.name(), "late issuer response");
            return vec![];
        }
        self.by_link.remove(&key);
        self.in_flight = self.in_flight.saturating_sub(1);
        if !mac_ok {
            tracing::warn!(rrn = %t.row.rrn, "issuer response MAC did not verify");
            return self.unsure(now, id, "A0", "issuer response MAC did not verify");
        }
        let code = msg
            .response_code()
            .unwrap_or(ResponseCode::SYSTEM_MALFUNCTION);
        if !code.is_approved() {
            if let Some(t) = self.txns.get(&id) {
                let (token, tid, mid) = (
                    t.row.pan_token.clone(),
                    t.row.terminal_id.clone(),
                    t.row.merchant_id.clone(),
                );
                let bin = t.bin.clone();
                let keys = risk::Keys {
                    card: &token,
                    terminal: &tid,
                    merchant: &mid,
                    bin: &bin,
                };
                self.risk
                    .record_decline(&keys, t.row.amount_minor, now.unix_ms.div_euclid(1000));
            }
            return self.finish(
                now,
                id,
                TxnState::Declined,
                code,
                None,
                None,
                "declined by the issuer".into(),
            );
        }
        let auth = msg.get_str(38).unwrap_or("000000").to_owned();
        let balance = msg.get(54).map(<[u8]>::to_vec);
        let mut out = self.finish(
            now,
            id,
            TxnState::Approved,
            code,
            Some(&auth),
            balance.as_deref(),
            "approved by the issuer".into(),
        );
        let (kind, original, amount, wants_reversal) = match self.txns.get(&id) {
            Some(t) => (t.kind, t.original, t.row.amount_minor, t.reversal_requested),
            None => return out,
        };
        let mut extra_writes = Vec::new();
        let mut extra_actions = Vec::new();
        extra_writes.extend(self.installed(now, id));
        if let Some(oid) = original {
            let at = self.rfc3339(now);
            if let Some(o) = self.txns.get_mut(&oid) {
                match kind {
                    TxnKind::Void | TxnKind::PreAuthCancel
                        if o.state.can_become(TxnState::Voided) =>
                    {
                        o.state = TxnState::Voided;
                        o.row.state = o.state;
                        o.row.updated_at = at.clone();
                        extra_writes.push(Write::TxnState {
                            txn_id: oid,
                            state: o.row.state,
                            updated_at: at,
                        });
                    }
                    TxnKind::Refund => o.refunded_minor += amount,
                    _ => {}
                }
            }
        }
        if wants_reversal {
            let (w, a) = self.reverse(now, id, "06");
            extra_writes.extend(w);
            extra_actions.extend(a);
        }
        if let Some(Action::Persist { writes, then, .. }) = out.first_mut() {
            writes.extend(extra_writes);
            then.extend(extra_actions);
        }
        out
    }

    /// The terminal of an approved transaction, when it was waiting for its first
    /// transaction: now active (the terminal row, and an event on the transaction).
    fn installed(&mut self, now: Now, id: i64) -> Vec<Write> {
        let Some(tid) = self.txns.get(&id).map(|t| t.row.terminal_id.clone()) else {
            return vec![];
        };
        let at = self.rfc3339(now);
        let Some(term) = self.terminals.get_mut(&tid) else {
            return vec![];
        };
        if term.row.status != "pending_install" {
            return vec![];
        }
        term.row.status = "active".into();
        term.row.updated_at = at;
        let row = term.row.clone();
        tracing::info!(terminal = %tid, "terminal installed: its first approved transaction made it active");
        let mut out = vec![Write::Terminal(row)];
        out.extend(self.known_event(
            now,
            id,
            "terminal_installed",
            format!("terminal {tid}'s first approved transaction: it is active"),
        ));
        out
    }

    fn on_reversal_ack(&mut self, now: Now, id: i64, mac_ok: bool, code: String) -> Vec<Action> {
        if !mac_ok {
            tracing::warn!("reversal acknowledgement MAC did not verify; ignored");
            return vec![];
        }
        let at = self.rfc3339(now);
        let mut writes = Vec::new();
        if let Some(mut e) = self.saf.remove(&id) {
            if e.state == SafState::Pending {
                e.state = SafState::Done;
                e.updated_at = at.clone();
                writes.push(Write::Saf(e));
            }
        }
        let Some(t) = self.txns.get_mut(&id) else {
            // Adopted from another node: its row is not in memory, set its state alone.
            if writes.is_empty() {
                return vec![];
            }
            writes.push(Write::TxnState {
                txn_id: id,
                state: TxnState::Reversed,
                updated_at: at,
            });
            return vec![Action::Persist {
                writes,
                then: vec![],
                on_fail: vec![],
            }];
        };
        if t.state.can_become(TxnState::Reversed) {
            t.state = TxnState::Reversed;
            t.row.state = t.state;
            t.row.updated_at = at.clone();
            writes.push(Write::TxnState {
                txn_id: id,
                state: t.row.state,
                updated_at: at,
            });
            let detail = if code == "00" {
                "issuer acknowledged the reversal".to_owned()
            } else {
                format!("issuer answered {code}: nothing left to undo")
            };
            writes.push(self.event(now, id, "reversed", detail));
        }
        if writes.is_empty() {
            return vec![];
        }
        vec![Action::Persist {
            writes,
            then: vec![],
            on_fail: vec![],
        }]
    }

    /// The outcome at the issuer is unknown: tell the terminal 98 and reverse.
    fn unsure(&mut self, now: Now, id: i64, reason: &str, why: &str) -> Vec<Action> {
        let mut out = self.finish(
            now,
            id,
            TxnState::TimedOut,
            ResponseCode::NO_RESPONSE,
            None,
            None,
            why.into(),
        );
        let reversible = self.txns.get(&id).is_some_and(|t| t.kind.is_reversible());
        if reversible {
            let (w, a) = self.reverse(now, id, reason);
            if let Some(Action::Persist { writes, then, .. }) = out.first_mut() {
                writes.extend(w);
                then.extend(a);
            }
        }
        out
    }

    fn on_timeout(&mut self, now: Now, id: i64) -> Vec<Action> {
        let Some(t) = self.txns.get(&id) else {
            return vec![];
        };
        if t.state != TxnState::Authorizing {
            return vec![];
        }
        tracing::warn!(rrn = %t.row.rrn, "no issuer response in time");
        self.in_flight = self.in_flight.saturating_sub(1);
        self.unsure(now, id, "98", "no response from the issuer in time")
    }

    fn on_unavailable(&mut self, now: Now, id: i64) -> Vec<Action> {
        let Some(t) = self.txns.get(&id) else {
            return vec![];
        };
        if t.state != TxnState::Authorizing {
            return vec![];
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.finish(
            now,
            id,
            TxnState::Unavailable,
            ResponseCode::ISSUER_INOPERATIVE,
            None,
            None,
            "issuer link unavailable; nothing sent".into(),
        )
    }
}

struct Card {
    pan: Pan,
    masked: String,
    token: String,
    expiry: Option<Expiry>,
    track2: Option<String>,
    chip: bool,
}

struct Checked {
    card: Option<Card>,
    amount_minor: i64,
    original: Option<i64>,
    pin: Option<[u8; 8]>,
}

/// Field 7 (MMDDhhmmss, UTC) of a link request sent when the transaction was created:
/// the engine sends it at the same instant it creates the row.
fn link_datetime_of(created_at: &str) -> String {
    DateTime::parse_from_rfc3339(created_at)
        .map(|d| d.with_timezone(&Utc).format("%m%d%H%M%S").to_string())
        .unwrap_or_default()
}

/// The kind of a credit-adjustment queue entry.
pub const ADJUSTMENT: &str = "adjustment";

/// Automatic credit adjustments one transaction may get; past that, a person decides.
pub const MAX_ADJUSTMENTS: i64 = 3;

/// The queue id of a transaction's `n`th credit adjustment (1 ≤ n ≤
/// [`MAX_ADJUSTMENTS`]): negative, so it never meets a reversal's (the transaction id).
pub fn adjustment_id(txn_id: i64, n: i64) -> i64 {
    -(txn_id * 8 + n)
}

/// A transaction's credit adjustments so far, in order (`entry` looks one up by id).
pub fn adjustments<E>(
    txn_id: i64,
    mut entry: impl FnMut(i64) -> Result<Option<SafRow>, E>,
) -> Result<Vec<SafRow>, E> {
    let mut out = Vec::new();
    for n in 1..=MAX_ADJUSTMENTS {
        match entry(adjustment_id(txn_id, n))? {
            Some(e) => out.push(e),
            None => break,
        }
    }
    Ok(out)
}

/// The amounts of the adjustments the issuer acknowledged (applied), in order.
pub fn acknowledged_amounts(adjustments: &[SafRow]) -> Vec<i64> {
    adjustments
        .iter()
        .filter(|e| e.state == SafState::Done)
        .filter_map(|e| {
            let m = LINK().unpack(&hex::decode(&e.message_hex).ok()?).ok()?;
            m.get_str(4)?.parse().ok()
        })
        .collect()
}

/// What to do about money a transaction is still owed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAdjustment {
    /// Send adjustment number `n`.
    Send(i64),
    /// The last one is on its way, or applied and not yet in the issuer's files.
    Waiting,
    /// A person: the automatic ones are used up (the last is given).
    ByHand(SafRow),
}

/// The rule for the next credit adjustment, given the transaction's adjustments so far:
/// none while the last one is on its way; reconciliation's amount already counts every
/// adjustment the issuer acknowledged, published in its files or not, so an applied
/// one whose line is late is no reason to wait; a refused one counts against
/// [`MAX_ADJUSTMENTS`] (the issuer gives back no more than the net debit, so trying
/// again is safe).
pub fn next_adjustment(so_far: &[SafRow]) -> NextAdjustment {
    match so_far.last() {
        None => NextAdjustment::Send(1),
        Some(e) if e.state == SafState::Pending => NextAdjustment::Waiting,
        Some(_) if (so_far.len() as i64) < MAX_ADJUSTMENTS => {
            NextAdjustment::Send(so_far.len() as i64 + 1)
        }
        Some(e) => NextAdjustment::ByHand(e.clone()),
    }
}

/// The store-and-forward entry for the `n`th credit adjustment reconciliation asks
/// for: give back `amount_minor` the issuer debited in error for sale or completion
/// `row`. The message (0220, processing code 22, its own RRN `A` + the entry number,
/// the sale's authorization code, and the sale's link reference in field 90 by which
/// the issuer finds it) is stored unsigned, without STAN; the engine that takes the
/// entry numbers, signs and sends it. `None` for other kinds, a non-positive amount or
/// `n` outside 1..=[`MAX_ADJUSTMENTS`].
pub fn adjustment_entry(
    row: &TxnRow,
    n: i64,
    amount_minor: i64,
    reason: &str,
    at: &str,
) -> Option<SafRow> {
    let kind = row.kind;
    if !matches!(kind, TxnKind::Sale | TxnKind::Completion)
        || amount_minor <= 0
        || !(1..=MAX_ADJUSTMENTS).contains(&n)
    {
        return None;
    }
    let saf_id = adjustment_id(row.txn_id, n);
    let rrn = format!("A{:011}", -saf_id);
    let mut m = link_advice("0220", "220000", row, kind, amount_minor, &rrn, "");
    if let Some(a) = &row.auth_code {
        m.set(38, a.as_str());
    }
    let bytes = LINK().pack(&m).ok()?;
    Some(SafRow {
        saf_id,
        txn_id: row.txn_id,
        kind: ADJUSTMENT.into(),
        message_hex: hex::encode_upper(bytes),
        attempts: 0,
        next_at_ms: 0,
        state: SafState::Pending,
        reason: reason.into(),
        owner: None,
        created_at: at.into(),
        updated_at: at.into(),
    })
}

/// An advice about transaction `row` (of `kind`) for the issuer link: MTI, processing
/// code, amount, RRN, condition, terminal, merchant, currency, and the transaction's
/// own link reference (MTI, STAN, field 7) in field 90. The sender adds field 7, the
/// STAN and whatever else its message needs.
fn link_advice(
    mti: &str,
    processing: &str,
    row: &TxnRow,
    kind: TxnKind,
    amount_minor: i64,
    rrn: &str,
    acquirer: &str,
) -> Message {
    let mut m = Message::new(Mti::lit(mti));
    m.set(3, processing);
    m.set(4, format!("{amount_minor:012}"));
    m.set(25, condition_code(kind));
    m.set(37, rrn);
    m.set(41, row.terminal_id.as_str());
    m.set(42, row.merchant_id.as_str());
    m.set(49, row.currency.as_str());
    let datetime = link_datetime_of(&row.created_at);
    let od = OriginalData {
        mti: link_mti(kind).to_string(),
        stan: format!("{:06}", row.link_stan.unwrap_or(0)),
        datetime: if datetime.is_empty() {
            "0000000000".into()
        } else {
            datetime
        },
        acquirer: acquirer.into(),
        forwarder: String::new(),
    };
    m.set(90, od.to_text());
    m
}

/// Field 3 of a kind (the UnionPay conventions).
fn processing_code(kind: TxnKind) -> &'static str {
    match kind {
        TxnKind::Balance => "310000",
        TxnKind::PreAuth => "030000",
        TxnKind::Void | TxnKind::Refund | TxnKind::PreAuthCancel => "200000",
        _ => "000000",
    }
}

/// Field 25 of a kind.
fn condition_code(kind: TxnKind) -> &'static str {
    match kind {
        TxnKind::PreAuth | TxnKind::PreAuthCancel | TxnKind::Completion => "06",
        _ => "00",
    }
}

fn link_mti(kind: TxnKind) -> Mti {
    match kind {
        TxnKind::PreAuth | TxnKind::PreAuthCancel => Mti::lit("0100"),
        TxnKind::Refund => Mti::lit("0220"),
        TxnKind::Reversal => Mti::lit("0420"),
        _ => Mti::lit("0200"),
    }
}

fn envelope(env: (Tpdu, CupHeader), message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 11);
    CupEnvelope {
        tpdu: env.0,
        header: env.1,
        message,
    }
    .write(&mut out);
    out
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { ' ' })
        .collect()
}

/// How near its install location a terminal waiting for installation must report
/// itself for its test transaction (GPS indoors is rough).
pub const INSTALL_RADIUS_M: f64 = 1_000.0;

/// `lat,lon` in degrees, if it is that.
fn lat_lon(s: &str) -> Option<(f64, f64)> {
    let (a, b) = s.split_once(',')?;
    let (lat, lon) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// Metres between two points (haversine on a 6,371 km sphere: plenty for "near" and
/// "far from home").
fn metres_between(here: (f64, f64), home: (f64, f64)) -> f64 {
    let (p1, p2) = (here.0.to_radians(), home.0.to_radians());
    let (dp, dl) = (
        (home.0 - here.0).to_radians(),
        (home.1 - here.1).to_radians(),
    );
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}
