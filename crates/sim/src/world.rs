//! The simulated world: event queue, network, durable store, crashes, invariants.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use cardsec::{Key, KeyKind, Lmk, SecurityModule, SoftwareSecurityModule};
use chrono::NaiveDate;
use chrono::NaiveDateTime;
use issuer::{Bank, ClearKeys, ClearingType, Faults, SmsKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recon::ClearingParser;
use records::{MerchantRow, SafRow, TerminalRow, TxnRow, Write};
use switch::{Action, Config, ConnId, Engine, Input, JournalState, Now, TerminalDialect, ZoneKeys};
use terminal::{Card, EntryKind, Terminal, TerminalConfig};

use crate::demo_data::{demo_data, CardFate, DemoData};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed of every choice.
    pub seed: u64,
    /// Financial requests the terminals start (not counting reversals).
    pub transactions: u32,
    /// Terminals.
    pub terminals: usize,
    /// Per mille of network messages dropped (during the load).
    pub drop_permille: u16,
    /// Per mille of network messages delivered twice.
    pub duplicate_permille: u16,
    /// Per mille of messages delayed past every timeout.
    pub long_delay_permille: u16,
    /// Largest ordinary delay of a message (ms); different delays reorder messages.
    pub delay_max_ms: u64,
    /// Acquirer crashes during the load.
    pub acquirer_crashes: u32,
    /// Issuer outages during the load.
    pub issuer_outages: u32,
    /// Per mille of approved sales the customer cancels at the terminal.
    pub cancel_permille: u16,
    /// Test hook: skip the acquirer's crash recovery (the simulation must catch it).
    pub skip_recovery: bool,
    /// Business days simulated: each day's load, then the next morning's
    /// reconciliation of it and the credit adjustments it queues.
    pub days: u32,
    /// The issuer's own faults (double debits, reversals acknowledged and not applied,
    /// late and corrupt clearing lines): only reconciliation can catch them.
    pub issuer_faults: Faults,
    /// Test hook: skip the daily reconciliation (the simulation must catch it when the
    /// issuer has faults).
    pub skip_reconciliation: bool,
    /// Crash the acquirer while the credit adjustments reconciliation queued are on
    /// their way to the issuer (between an adjustment's send and its acknowledgement).
    pub crash_during_adjustments: bool,
    /// The matrix cell this run belongs to, for the replay command (`--cell`).
    pub cell: Option<String>,
}

/// The issuer-fault mix `--recon-faults` turns on.
pub fn recon_fault_mix() -> Faults {
    Faults {
        double_debit_permille: 40,
        reversal_ack_without_apply_permille: 150,
        late_clearing_line_permille: 40,
        corrupt_clearing_line_permille: 20,
        ..Faults::default()
    }
}

impl SimConfig {
    /// A busy default fault mix for `seed`.
    pub fn new(seed: u64, transactions: u32) -> SimConfig {
        SimConfig {
            seed,
            transactions,
            terminals: 3,
            drop_permille: 30,
            duplicate_permille: 20,
            long_delay_permille: 20,
            delay_max_ms: 40,
            acquirer_crashes: 1,
            issuer_outages: 1,
            cancel_permille: 50,
            skip_recovery: false,
            days: 1,
            issuer_faults: Faults::default(),
            skip_reconciliation: false,
            crash_during_adjustments: false,
            cell: None,
        }
    }

    /// The command that replays this run: every setting that differs from
    /// [`SimConfig::new`] is on it, or named when the command line cannot set it.
    pub fn replay_command(&self) -> String {
        if let Some(cell) = &self.cell {
            return format!("posguard simulate --cell {cell} --seed {}", self.seed);
        }
        let d = SimConfig::new(self.seed, self.transactions);
        let mut c = format!(
            "posguard simulate --seed {} --transactions {}",
            self.seed, self.transactions
        );
        if self.terminals != d.terminals {
            c.push_str(&format!(" --terminals {}", self.terminals));
        }
        if self.acquirer_crashes != d.acquirer_crashes {
            c.push_str(&format!(" --crashes {}", self.acquirer_crashes));
        }
        if self.skip_recovery {
            c.push_str(" --skip-recovery");
        }
        if self.days != d.days {
            c.push_str(&format!(" --days {}", self.days));
        }
        let recon_faults = self.issuer_faults == recon_fault_mix();
        if recon_faults {
            c.push_str(" --recon-faults");
        }
        let unsettable = [
            ("drop_permille", self.drop_permille != d.drop_permille),
            (
                "duplicate_permille",
                self.duplicate_permille != d.duplicate_permille,
            ),
            (
                "long_delay_permille",
                self.long_delay_permille != d.long_delay_permille,
            ),
            ("delay_max_ms", self.delay_max_ms != d.delay_max_ms),
            ("issuer_outages", self.issuer_outages != d.issuer_outages),
            ("cancel_permille", self.cancel_permille != d.cancel_permille),
            ("skip_reconciliation", self.skip_reconciliation),
            ("crash_during_adjustments", self.crash_during_adjustments),
            (
                "issuer_faults",
                !recon_faults && self.issuer_faults != d.issuer_faults,
            ),
        ];
        let other: Vec<&str> = unsettable
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(name, _)| *name)
            .collect();
        if !other.is_empty() {
            c.push_str(&format!(" (and SimConfig {:?})", other));
        }
        c
    }
}

/// What a run did and whether every invariant held.
#[derive(Debug, Clone, Default)]
pub struct SimOutcome {
    /// Invariant violations (empty when the run is good).
    pub violations: Vec<String>,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end (ms).
    pub sim_ms: u64,
    /// Sales the terminals recorded as approved.
    pub approved_sales: usize,
    /// Reversals the issuer applied.
    pub reversals_applied: usize,
    /// Credit adjustments reconciliation queued (and the issuer applied).
    pub adjustments: usize,
    /// Reconciliation findings over all days.
    pub findings: usize,
    /// Acquirer crashes that happened.
    pub crashes: u32,
    /// Messages the network dropped.
    pub dropped: u64,
    /// A hash of the event trace: the same seed gives the same hash.
    pub trace_hash: u64,
}

/// Merchant and terminal rows for the demo data set (terminal master keys wrapped).
pub fn acquirer_rows(
    hsm: &dyn SecurityModule,
    data: &DemoData,
    at: &str,
) -> Result<(Vec<MerchantRow>, Vec<TerminalRow>), cardsec::SecError> {
    let merchants = data
        .merchants
        .iter()
        .map(|m| MerchantRow {
            merchant_id: m.merchant_id.clone(),
            name: m.name.clone(),
            city: m.city.clone(),
            mcc: m.mcc.clone(),
            status: "active".into(),
            created_at: chrono::DateTime::parse_from_rfc3339(at)
                .map(|d| (d - chrono::Duration::days(m.age_days)).to_rfc3339())
                .unwrap_or_else(|_| at.to_owned()),
            merchant_class: m.class.clone(),
            risk_class: "low".into(),
        })
        .collect();
    let mut terminals = Vec::new();
    for t in &data.terminals {
        let tmk = hsm.import_key(KeyKind::Tmk, 1, &Key::from_hex(&t.tmk_hex)?)?;
        terminals.push(TerminalRow {
            terminal_id: t.terminal_id.clone(),
            merchant_id: t.merchant_id.clone(),
            status: "active".into(),
            tmk: tmk.to_text(),
            pik: None,
            mak: None,
            mak_prev: None,
            key_version: 0,
            batch: 1,
            signed_on: false,
            install_location: t.location.clone(),
            updated_at: at.into(),
            key_profile: t.key_layout.net_code().into(),
            pending_pik: None,
            pending_mak: None,
            tdk: None,
            pending_tdk: None,
        });
    }
    Ok((merchants, terminals))
}

/// The acquirer's durable state: what survives a crash.
#[derive(Default)]
struct Db {
    merchants: BTreeMap<String, MerchantRow>,
    terminals: BTreeMap<String, TerminalRow>,
    txns: BTreeMap<i64, TxnRow>,
    keys: BTreeSet<String>,
    rrns: BTreeSet<String>,
    saf: BTreeMap<i64, SafRow>,
    /// Highest event sequence per transaction; an event number is never reused.
    events: BTreeMap<i64, i64>,
    event_keys: BTreeSet<(i64, i64)>,
}

impl Db {
    /// Applies a batch all or nothing, refusing duplicate request keys and RRNs.
    fn apply(&mut self, writes: &[Write]) -> bool {
        let mut keys = BTreeSet::new();
        let mut events = BTreeSet::new();
        for w in writes {
            // As the store's primary key (txn_id, seq) does: a reused event number
            // fails the whole batch.
            if let Write::Event(e) = w {
                if self.event_keys.contains(&(e.txn_id, e.seq)) || !events.insert((e.txn_id, e.seq))
                {
                    tracing::debug!(txn = e.txn_id, seq = e.seq, kind = %e.kind, "simulated store: event number reused");
                    return false;
                }
            }
            if let Write::NewTxn(t) = w {
                if self.keys.contains(&t.request_key)
                    || self.rrns.contains(&t.rrn)
                    || !keys.insert(t.request_key.clone())
                {
                    tracing::debug!(txn = t.txn_id, key = %t.request_key, rrn = %t.rrn, "simulated store: request key or RRN reused");
                    return false;
                }
            }
        }
        for w in writes {
            match w {
                Write::Merchant(m) => {
                    self.merchants.insert(m.merchant_id.clone(), m.clone());
                }
                Write::Terminal(t) => {
                    self.terminals.insert(t.terminal_id.clone(), t.clone());
                }
                Write::NewTxn(t) => {
                    self.keys.insert(t.request_key.clone());
                    self.rrns.insert(t.rrn.clone());
                    self.txns.insert(t.txn_id, t.clone());
                }
                Write::UpdateTxn(t) => {
                    self.txns.insert(t.txn_id, t.clone());
                }
                Write::Event(e) => {
                    tracing::trace!(txn = e.txn_id, seq = e.seq, kind = %e.kind, "simulated store: event");
                    self.event_keys.insert((e.txn_id, e.seq));
                    let seq = self.events.entry(e.txn_id).or_insert(0);
                    *seq = e.seq.max(*seq);
                }
                Write::Decision(_) | Write::Case(_) | Write::CaseEntry(_) => {}
                Write::TxnState {
                    txn_id,
                    state,
                    updated_at,
                } => {
                    if let Some(t) = self.txns.get_mut(txn_id) {
                        t.state = *state;
                        t.updated_at = updated_at.clone();
                    }
                }
                Write::Saf(s) => {
                    self.saf.insert(s.saf_id, s.clone());
                }
                // Money after the approval is outside the simulated world.
                _ => {}
            }
        }
        true
    }
}

enum Ev {
    TermWake {
        t: usize,
    },
    ToAcquirer {
        t: usize,
        gen: u64,
        frame: Vec<u8>,
    },
    ToTerminal {
        t: usize,
        gen: u64,
        frame: Vec<u8>,
    },
    ToIssuer {
        msg: Vec<u8>,
    },
    FromIssuer {
        epoch: u64,
        msg: Vec<u8>,
    },
    TermTimeout {
        t: usize,
        attempt: u64,
    },
    IssuerTimer {
        epoch: u64,
        txn_id: i64,
    },
    SafTimer {
        epoch: u64,
        saf_id: i64,
    },
    Durable {
        epoch: u64,
        writes: Vec<Write>,
        then: Vec<Action>,
        on_fail: Vec<Action>,
    },
    AcquirerCrash,
    AcquirerRestart,
    IssuerDown,
    IssuerUp,
}

struct Term {
    term: Terminal,
    card: Card,
    gen: u64,
    waiting: Option<u64>,
    attempt: u64,
}

const ISSUER_TIMEOUT_MS: u64 = 800;
const TERMINAL_TIMEOUT_MS: u64 = 2_000;
const LONG_DELAY_MS: u64 = 3_000;
const EPOCH_MS: i64 = 1_795_000_000_000;
const MAX_EVENTS: u64 = 2_000_000;

struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    now: u64,
    engine: Option<Engine>,
    epoch: u64,
    db: Db,
    durable_at: u64,
    hsm: Arc<SoftwareSecurityModule>,
    zone: ZoneKeys,
    bank: Bank,
    issuer_up: bool,
    terms: Vec<Term>,
    started: u32,
    loading: bool,
    crashes_left: u32,
    outages_left: u32,
    out: SimOutcome,
    trace: u64,
}

fn conn_of(t: usize, gen: u64) -> ConnId {
    ConnId(t as u64 * 1_000_000 + gen)
}

impl World {
    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn sim_now(&self) -> Now {
        Now {
            unix_ms: EPOCH_MS + self.now as i64,
        }
    }

    fn bank_now(&self) -> NaiveDateTime {
        chrono::DateTime::from_timestamp_millis(EPOCH_MS + self.now as i64 + 8 * 3_600_000)
            .unwrap_or_default()
            .naive_utc()
    }

    /// Sends over the simulated network: maybe dropped, delayed, duplicated.
    fn net(&mut self, mk: impl Fn() -> Ev) {
        let faulty = self.loading;
        if faulty && self.rng.gen_range(0..1000u16) < self.cfg.drop_permille {
            self.out.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.gen_range(0..1000u16) < self.cfg.duplicate_permille {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = 1 + self.rng.gen_range(0..=self.cfg.delay_max_ms);
            if faulty && self.rng.gen_range(0..1000u16) < self.cfg.long_delay_permille {
                delay += LONG_DELAY_MS;
            }
            self.at(delay, mk());
        }
    }

    fn boot_engine(&mut self) {
        tracing::debug!(at_ms = self.now, "simulated acquirer boots");
        let txns: Vec<TxnRow> = self.db.txns.values().cloned().collect();
        let max_id = self.db.txns.keys().next_back().copied().unwrap_or(0);
        let cfg = Config {
            issuer_timeout_ms: ISSUER_TIMEOUT_MS,
            saf_backoff_ms: 500,
            saf_backoff_max_ms: 4_000,
            saf_max_attempts: 50,
            ..Config::default()
        };
        let mut engine = Engine::new(
            cfg,
            self.hsm.clone(),
            self.zone.clone(),
            self.db.merchants.values().cloned().collect(),
            self.db.terminals.values().cloned().collect(),
            JournalState {
                recent: txns,
                last_events: self.db.events.iter().map(|(k, v)| (*k, *v)).collect(),
                max_txn_id: max_id,
            },
        );
        let pending: Vec<SafRow> = self
            .db
            .saf
            .values()
            .filter(|s| s.state == records::SafState::Pending)
            .cloned()
            .collect();
        let actions = if self.cfg.skip_recovery {
            Vec::new()
        } else {
            engine.recover(self.sim_now(), pending)
        };
        self.engine = Some(engine);
        self.execute(actions);
    }

    fn feed(&mut self, input: Input<'_>) {
        let now = self.sim_now();
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let actions = engine.handle(now, input);
        self.execute(actions);
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Persist {
                    writes,
                    then,
                    on_fail,
                } => {
                    let fsync = 1 + self.rng.gen_range(0..3);
                    self.durable_at = self.durable_at.max(self.now) + fsync;
                    let delay = self.durable_at - self.now;
                    let epoch = self.epoch;
                    self.at(
                        delay,
                        Ev::Durable {
                            epoch,
                            writes,
                            then,
                            on_fail,
                        },
                    );
                }
                Action::SendIssuer { txn_id, message } => {
                    if self.issuer_up {
                        self.net(|| Ev::ToIssuer {
                            msg: message.clone(),
                        });
                    } else {
                        self.feed(Input::IssuerUnavailable { txn_id });
                    }
                }
                Action::SendTerminal { conn, frame } => {
                    let (t, gen) = ((conn.0 / 1_000_000) as usize, conn.0 % 1_000_000);
                    self.net(|| Ev::ToTerminal {
                        t,
                        gen,
                        frame: frame.clone(),
                    });
                }
                Action::StartIssuerTimer { txn_id, after_ms } => {
                    let epoch = self.epoch;
                    self.at(after_ms, Ev::IssuerTimer { epoch, txn_id });
                }
                Action::StartSafTimer { saf_id, after_ms } => {
                    let epoch = self.epoch;
                    self.at(after_ms, Ev::SafTimer { epoch, saf_id });
                }
                Action::CloseTerminal { conn } => {
                    let t = (conn.0 / 1_000_000) as usize;
                    if let Some(term) = self.terms.get_mut(t) {
                        term.gen += 1;
                    }
                }
                Action::Abandon { txn_id } => self.feed(Input::Abandoned { txn_id }),
                // The simulated network bounds nothing per connection.
                Action::NoReply { .. } => {}
            }
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::TermWake { t } => self.term_wake(t),
            Ev::ToAcquirer { t, gen, frame } => {
                if self.terms[t].gen == gen {
                    self.feed(Input::TerminalFrame {
                        conn: conn_of(t, gen),
                        dialect: TerminalDialect::CupPos,
                        frame: &frame,
                    });
                }
            }
            Ev::ToTerminal { t, gen, frame } => self.term_reply(t, gen, &frame),
            Ev::ToIssuer { msg } => {
                if !self.issuer_up {
                    return;
                }
                let now = self.bank_now();
                if let Ok(Some(reply)) = self.bank.handle_packed(now, &msg) {
                    if let Ok(bytes) = reply.into_wire() {
                        let epoch = self.epoch;
                        self.net(|| Ev::FromIssuer {
                            epoch,
                            msg: bytes.clone(),
                        });
                    }
                }
            }
            Ev::FromIssuer { epoch, msg } => {
                if epoch == self.epoch {
                    self.feed(Input::IssuerFrame { frame: &msg });
                }
            }
            Ev::TermTimeout { t, attempt } => {
                let term = &mut self.terms[t];
                if term.waiting.is_some() && term.attempt == attempt {
                    if let Some(stan) = term
                        .waiting
                        .take()
                        .and_then(|s| domain::Stan::new(s as u32).ok())
                    {
                        term.term.on_timeout(stan);
                    }
                    term.gen += 1; // a terminal that timed out dials again
                    self.at(10, Ev::TermWake { t });
                }
            }
            Ev::IssuerTimer { epoch, txn_id } => {
                if epoch == self.epoch {
                    self.feed(Input::IssuerTimeout { txn_id });
                }
            }
            Ev::SafTimer { epoch, saf_id } => {
                if epoch == self.epoch {
                    self.feed(Input::SafTimer { saf_id });
                }
            }
            Ev::Durable {
                epoch,
                writes,
                then,
                on_fail,
            } => {
                if epoch != self.epoch {
                    return; // lost in the crash: never durable
                }
                if self.db.apply(&writes) {
                    self.execute(then);
                } else {
                    self.execute(on_fail);
                    self.feed(Input::PersistFailed {
                        reason: "duplicate key".into(),
                    });
                }
            }
            // A crash while the acquirer is already down changes nothing (it scheduled a
            // second restart, and the second boot replaced a running engine without a
            // crash: two engines on one store, each numbering events on its own).
            Ev::AcquirerCrash if self.engine.is_none() => {}
            Ev::AcquirerCrash => {
                tracing::debug!(at_ms = self.now, "simulated acquirer crash");
                self.engine = None;
                self.epoch += 1;
                self.out.crashes += 1;
                for term in &mut self.terms {
                    term.gen += 1; // every connection is lost
                }
                let down = 100 + self.rng.gen_range(0..1_500);
                self.at(down, Ev::AcquirerRestart);
            }
            Ev::AcquirerRestart if self.engine.is_none() => self.boot_engine(),
            Ev::AcquirerRestart => {}
            Ev::IssuerDown => {
                self.issuer_up = false;
                let down = 200 + self.rng.gen_range(0..2_000);
                self.at(down, Ev::IssuerUp);
            }
            Ev::IssuerUp => self.issuer_up = true,
        }
    }

    fn term_wake(&mut self, t: usize) {
        if self.terms[t].waiting.is_some() {
            return;
        }
        let amount = 100 + self.rng.gen_range(0..50_000i64);
        let start_new = self.started < self.cfg.transactions;
        let term = &mut self.terms[t];
        let req = if !term.term.is_signed_on() {
            term.term.sign_on().ok()
        } else if term.term.pending_reversal().is_some() {
            term.term.reversal().ok().flatten()
        } else if start_new {
            let card = term.card.clone();
            let r = term.term.sale(&card, amount).ok();
            if r.is_some() {
                self.started += 1;
            }
            r
        } else {
            None
        };
        let Some(req) = req else { return };
        let term = &mut self.terms[t];
        term.attempt += 1;
        term.waiting = Some(u64::from(req.stan.get()));
        let (gen, attempt) = (term.gen, term.attempt);
        let body = req.frame[2..].to_vec();
        self.net(|| Ev::ToAcquirer {
            t,
            gen,
            frame: body.clone(),
        });
        self.at(TERMINAL_TIMEOUT_MS, Ev::TermTimeout { t, attempt });
        self.maybe_fault();
    }

    fn maybe_fault(&mut self) {
        if !self.loading {
            return;
        }
        let n = u64::from(self.cfg.transactions.max(1));
        if self.crashes_left > 0
            && self.rng.gen_range(0..n) < u64::from(self.cfg.acquirer_crashes)
            && self.engine.is_some()
        {
            self.crashes_left -= 1;
            let when = self.rng.gen_range(0..50);
            self.at(when, Ev::AcquirerCrash);
        }
        if self.outages_left > 0
            && self.rng.gen_range(0..n) < u64::from(self.cfg.issuer_outages)
            && self.issuer_up
        {
            self.outages_left -= 1;
            self.at(0, Ev::IssuerDown);
        }
    }

    fn term_reply(&mut self, t: usize, gen: u64, frame: &[u8]) {
        let cancel = self.rng.gen_range(0..1000u16) < self.cfg.cancel_permille;
        let term = &mut self.terms[t];
        if term.gen != gen || term.waiting.is_none() {
            return;
        }
        let outcome = term.term.on_reply(frame);
        let Ok(outcome) = outcome else { return };
        term.waiting = None;
        if outcome.is_approved() && outcome.kind == terminal::TxKind::Sale && cancel {
            let _ = term.term.cancel_after_approval();
        }
        let think = 5 + self.rng.gen_range(0..30);
        self.at(think, Ev::TermWake { t });
    }
}

/// Runs one simulation and checks the invariants.
pub fn run(cfg: &SimConfig) -> SimOutcome {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let data = demo_data(cfg.seed, cfg.terminals.max(1), cfg.terminals.max(1) * 2);
    let keys = ClearKeys::demo();
    let lmk = Lmk::from_hex(crate::demo_data::DEMO_LMK)
        .unwrap_or_else(|_| unreachable!("demo LMK is valid"));
    let mut hsm =
        SoftwareSecurityModule::new(lmk, Box::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5afe)));
    if let (Ok(k), Ok(id)) = (
        hex::decode(&keys.token_key_hex),
        Ok::<u16, ()>(keys.token_key_id),
    ) {
        if let Ok(dk) = cardsec::DataKey::new(id, &k) {
            hsm.set_data_key(dk);
        }
    }
    let hsm = Arc::new(hsm);
    let import =
        |kind, hexkey: &str| Key::from_hex(hexkey).and_then(|k| hsm.import_key(kind, 1, &k));
    let (Ok(zpk), Ok(zak)) = (
        import(KeyKind::Zpk, &keys.zpk_hex),
        import(KeyKind::Zak, &keys.zak_hex),
    ) else {
        return SimOutcome {
            violations: vec!["zone keys do not import".into()],
            ..SimOutcome::default()
        };
    };
    let Ok(mut bank) = Bank::from_clear_keys(&keys) else {
        return SimOutcome {
            violations: vec!["issuer keys do not load".into()],
            ..SimOutcome::default()
        };
    };
    let mut db = Db::default();
    let at = "2026-11-21T00:00:00Z";
    let Ok((merchants, terminals)) = acquirer_rows(hsm.as_ref(), &data, at) else {
        return SimOutcome {
            violations: vec!["terminal keys do not import".into()],
            ..SimOutcome::default()
        };
    };
    let seed_writes: Vec<Write> = merchants
        .into_iter()
        .map(Write::Merchant)
        .chain(terminals.into_iter().map(Write::Terminal))
        .collect();
    db.apply(&seed_writes);

    let good: Vec<_> = data
        .cards
        .iter()
        .filter(|c| c.fate == CardFate::Good)
        .collect();
    let mut terms = Vec::new();
    for (i, t) in data.terminals.iter().enumerate() {
        let (Ok(tid), Ok(mid), Ok(tmk)) = (
            t.terminal_id.parse(),
            t.merchant_id.parse(),
            Key::from_hex(&t.tmk_hex),
        ) else {
            return SimOutcome {
                violations: vec!["demo terminal does not parse".into()],
                ..SimOutcome::default()
            };
        };
        let c = good[i % good.len()];
        let mut card = Card::new(&c.pan, Some(&c.pin), &c.expiry, EntryKind::Chip);
        card.service_code = c.service_code.clone();
        terms.push(Term {
            term: Terminal::new(TerminalConfig {
                key_layout: t.key_layout,
                ..TerminalConfig::new(tid, mid, tmk)
            }),
            card,
            gen: 1,
            waiting: None,
            attempt: 0,
        });
    }

    let mut w = World {
        cfg: cfg.clone(),
        rng: ChaCha8Rng::seed_from_u64(rng.gen()),
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        seq: 0,
        now: 0,
        engine: None,
        epoch: 0,
        db,
        durable_at: 0,
        hsm,
        zone: ZoneKeys { zpk, zak },
        bank: Bank::from_clear_keys(&keys).unwrap_or_else(|_| unreachable!("loaded above")),
        issuer_up: true,
        terms,
        started: 0,
        loading: true,
        crashes_left: cfg.acquirer_crashes,
        outages_left: cfg.issuer_outages,
        out: SimOutcome::default(),
        trace: 0xcbf2_9ce4_8422_2325,
    };
    let open_at = w.bank_now();
    if let Err(e) = crate::demo_data::open_accounts(&mut bank, &data, open_at) {
        return SimOutcome {
            violations: vec![format!("accounts: {e}")],
            ..SimOutcome::default()
        };
    }
    w.bank = bank.with_faults(cfg.issuer_faults.clone(), cfg.seed ^ 0xba4c);
    let opening: i64 = w.bank.accounts().iter().map(|a| a.balance_minor).sum();
    w.boot_engine();
    let first_day = w.bank_now().date();
    for day in 0..cfg.days.max(1) {
        if day > 0 {
            // The next business day starts: terminals sell again, faults are back.
            w.now = w.now.max(u64::from(day) * DAY_MS);
            w.started = 0;
            w.loading = true;
            w.crashes_left = cfg.acquirer_crashes;
            w.outages_left = cfg.issuer_outages;
        }
        for t in 0..w.terms.len() {
            let jitter = w.rng.gen_range(0..20);
            w.at(jitter, Ev::TermWake { t });
        }
        w.run_queue();
        // The next morning: yesterday's file is in; reconcile it, and let the acquirer
        // send the credit adjustments it queued.
        let date = first_day + chrono::Duration::days(i64::from(day));
        w.now = w.now.max(u64::from(day + 1) * DAY_MS);
        let queued = w.out.adjustments;
        w.reconcile(date);
        if cfg.crash_during_adjustments && w.out.adjustments > queued && w.engine.is_some() {
            // The adjustments are on their way (the network is calm after the load):
            // the acquirer dies before, while or after the issuer answers them.
            let when = w.rng.gen_range(0..8);
            w.at(when, Ev::AcquirerCrash);
        }
        w.run_queue();
        check(&mut w, opening, date, false);
        if !w.out.violations.is_empty() {
            break;
        }
    }
    if w.out.violations.is_empty() {
        // One more morning with no traffic: lines of the last day published a day
        // late are reconciled too; then nothing may be left anywhere.
        let date = first_day + chrono::Duration::days(i64::from(cfg.days.max(1)));
        w.now = w.now.max(u64::from(cfg.days.max(1) + 1) * DAY_MS);
        w.reconcile(date);
        w.run_queue();
        check(&mut w, opening, date, true);
    }
    w.out.sim_ms = w.now;
    w.out.trace_hash = w.trace;
    w.out
}

const DAY_MS: u64 = 86_400_000;

impl World {
    /// Runs events until none is left.
    fn run_queue(&mut self) {
        while let Some(Reverse((time, seq))) = self.queue.pop() {
            self.now = time;
            self.out.events += 1;
            self.trace = (self.trace ^ time ^ (seq << 32)).wrapping_mul(0x1000_0000_01b3);
            if self.out.events > MAX_EVENTS {
                self.out
                    .violations
                    .push(format!("did not settle within {MAX_EVENTS} events"));
                self.queue.clear();
                break;
            }
            if self.loading
                && self.started >= self.cfg.transactions
                && self.terms.iter().all(|t| t.waiting.is_none())
            {
                // The load is over: faults stop, so queues and pending reversals can drain.
                self.loading = false;
            }
            if let Some(ev) = self.events.remove(&seq) {
                self.step(ev);
            }
            if self.engine.is_none()
                && !self
                    .queue
                    .iter()
                    .any(|Reverse((_, s))| matches!(self.events.get(s), Some(Ev::AcquirerRestart)))
            {
                self.boot_engine();
            }
        }
    }

    /// Reconciles business date `date` as the acquirer does each morning: the issuer's
    /// files of the day before and of the day, the journal of the window, and a credit
    /// adjustment queued (durably, then handed to the engine) for every finding that
    /// calls for money back — one per transaction. The simulated journal has no
    /// captures (money after the approval is outside this world): approvals count as
    /// captured.
    fn reconcile(&mut self, date: NaiveDate) {
        if self.cfg.skip_reconciliation {
            return;
        }
        let mut clearing = Vec::new();
        for d in [date - chrono::Duration::days(1), date] {
            let csv = self.bank.clearing_csv(d);
            match recon::IssuerCsv::default().parse(csv.as_bytes(), d) {
                Ok(f) => clearing.extend(f.records),
                Err(e) => self.out.violations.push(format!("clearing file {d}: {e}")),
            }
        }
        let local = |created_at: &str| {
            chrono::DateTime::parse_from_rfc3339(created_at)
                .ok()
                .map(|t| (t.naive_utc() + chrono::Duration::hours(8)).date())
        };
        let from = date - chrono::Duration::days(2);
        let journal: Vec<recon::JournalEntry> = self
            .db
            .txns
            .values()
            .filter_map(|t| {
                let d = local(&t.created_at)?;
                (d >= from && d <= date).then(|| recon::JournalEntry {
                    txn_id: t.txn_id,
                    rrn: t.rrn.clone(),
                    auth_code: t.auth_code.clone(),
                    terminal: t.terminal_id.clone(),
                    link_stan: t.link_stan,
                    kind: t.kind.to_string(),
                    state: t.state.to_string(),
                    amount_minor: t.amount_minor,
                    original_rrn: t.original_rrn.clone(),
                    date: d,
                    captured: true,
                    acknowledged_adjustments: switch::acknowledged_amounts(
                        &switch::adjustments(t.txn_id, |id| {
                            Ok::<_, std::convert::Infallible>(self.db.saf.get(&id).cloned())
                        })
                        .unwrap_or_default(),
                    ),
                })
            })
            .collect();
        let outcome = recon::reconcile(date, &journal, &clearing, false);
        self.out.findings += outcome.findings.len();
        let at = self.engine_rfc3339();
        for f in &outcome.findings {
            let recon::Action::ReverseAtIssuer {
                txn_id,
                amount_minor,
            } = f.action
            else {
                continue;
            };
            let so_far = switch::adjustments(txn_id, |id| {
                Ok::<_, std::convert::Infallible>(self.db.saf.get(&id).cloned())
            })
            .unwrap_or_default();
            // Waiting, or a person's job past the limit.
            let switch::NextAdjustment::Send(n) = switch::next_adjustment(&so_far) else {
                continue;
            };
            let Some(entry) = self.db.txns.get(&txn_id).and_then(|row| {
                switch::adjustment_entry(
                    row,
                    n,
                    amount_minor,
                    &format!("reconciliation {}", f.class),
                    &at,
                )
            }) else {
                continue;
            };
            self.out.adjustments += 1;
            self.db.saf.insert(entry.saf_id, entry.clone());
            self.feed(Input::SafAdopt { entry });
        }
    }

    fn engine_rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.sim_now().unix_ms)
            .unwrap_or_default()
            .to_rfc3339()
    }
}

/// Checks the invariants after the reconciliation of `date`. A sale whose clearing
/// lines are not all published yet (a line late by a day) is left to the next day;
/// `last` checks everything, and the cardholders' money as a whole.
fn check(w: &mut World, opening: i64, date: NaiveDate, last: bool) {
    let v = &mut w.out.violations;
    // Terminals' view: sales they recorded as approved.
    let mut approved: BTreeMap<String, i64> = BTreeMap::new();
    for (i, t) in w.terms.iter().enumerate() {
        if t.term.pending_reversal().is_some() {
            v.push(format!("terminal #{i} still holds a pending reversal"));
        }
        for e in t.term.batch() {
            if e.kind == terminal::TxKind::Sale {
                approved.insert(e.rrn.to_string(), e.amount_minor);
            }
        }
    }
    w.out.approved_sales = approved.len();
    // Issuer's view: what each sale's cardholder pays for it now.
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    let mut unpublished: BTreeSet<String> = BTreeSet::new();
    let mut lines: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in w.bank.clearing_records() {
        let delta = match r.kind {
            ClearingType::Sale => r.amount_minor,
            ClearingType::Reversal | ClearingType::Adjustment => -r.amount_minor,
            _ => continue,
        };
        *net.entry(r.rrn.to_string()).or_default() += delta;
        *lines.entry(r.kind.as_str()).or_default() += 1;
        // Published a day late: reconciliation of `date` could not see it yet.
        if r.file_date > r.time.date() && r.file_date > date {
            unpublished.insert(r.rrn.to_string());
        }
    }
    w.out.reversals_applied = lines.get("reversal").copied().unwrap_or(0);
    for (rrn, paid) in &net {
        if unpublished.contains(rrn) && !last {
            continue;
        }
        // Both sides' records of the RRN, for the violation's reader.
        let records = || {
            let journal: Vec<String> =
                w.db.txns
                    .values()
                    .filter(|t| &t.rrn == rrn)
                    .map(|t| format!("{} {} {}", t.kind, t.state, t.created_at))
                    .collect();
            let issuer: Vec<String> = w
                .bank
                .clearing_records()
                .iter()
                .filter(|r| r.rrn.as_str() == rrn)
                .map(|r| {
                    let kind = r.kind.as_str();
                    format!(
                        "{kind} {} at {} in the file of {}",
                        r.amount_minor, r.time, r.file_date
                    )
                })
                .collect();
            format!("journal {journal:?}, issuer {issuer:?}")
        };
        match approved.get(rrn) {
            Some(&amount) if *paid > amount => v.push(format!(
                "I2 RRN {rrn}: the cardholder pays {paid} for a sale of {amount} ({})",
                records()
            )),
            Some(&amount) if *paid < amount => v.push(format!(
                "lost credit: RRN {rrn} approved at the terminal for {amount}, the cardholder pays {paid} ({})",
                records()
            )),
            None if *paid > 0 => v.push(format!(
                "I1 phantom debit: RRN {rrn} debited {paid} after reconciliation, and no terminal recorded it as approved ({})",
                records()
            )),
            None if *paid < 0 => v.push(format!(
                "RRN {rrn}: the cardholder was credited {} more than debited ({})",
                -paid,
                records()
            )),
            _ => {}
        }
    }
    for rrn in approved.keys() {
        if !net.contains_key(rrn) {
            v.push(format!(
                "RRN {rrn} approved at the terminal but never debited"
            ));
        }
        let durable = w.db.txns.values().any(|t| {
            &t.rrn == rrn
                && t.kind == records::TxnKind::Sale
                && t.state == records::TxnState::Approved
        });
        if !durable {
            v.push(format!(
                "I6 RRN {rrn} approved at the terminal but not approved in the durable journal"
            ));
        }
    }
    // Notifications: one SMS for every debit, reversal and adjustment.
    for (kind, sms) in [
        ("sale", SmsKind::Sale),
        ("reversal", SmsKind::Reversal),
        ("adjustment", SmsKind::Adjustment),
    ] {
        let sent = w.bank.sms().iter().filter(|s| s.kind == sms).count();
        let want = lines.get(kind).copied().unwrap_or(0);
        if sent != want {
            v.push(format!(
                "I5 SMS: {sent} {kind} messages for {want} {kind} lines"
            ));
        }
    }
    if last {
        let now: i64 = w.bank.accounts().iter().map(|a| a.balance_minor).sum();
        let want: i64 = approved.values().sum();
        if opening - now != want {
            v.push(format!(
                "money: cardholders debited {} net, terminals approved {want}",
                opening - now
            ));
        }
    }
    // The queue drained.
    let stuck: Vec<String> =
        w.db.saf
            .values()
            // An adjustment the issuer refused (a reversal line published late made it
            // look owed) is an operator's: the money checks above judge it.
            .filter(|s| {
                s.state != records::SafState::Done
                    && !(s.kind == switch::ADJUSTMENT && s.state == records::SafState::Exception)
            })
            .map(|s| format!("{} {} {} ({})", s.saf_id, s.kind, s.state, s.reason))
            .collect();
    if !stuck.is_empty() {
        v.push(format!(
            "{} store-and-forward entries not acknowledged: {stuck:?}",
            stuck.len()
        ));
    }
}

#[cfg(test)]
mod replay_tests {
    use super::SimConfig;

    #[test]
    fn the_replay_command_names_every_changed_setting() {
        let mut cfg = SimConfig::new(7, 12);
        assert_eq!(
            cfg.replay_command(),
            "posguard simulate --seed 7 --transactions 12"
        );
        cfg.terminals = 5;
        cfg.acquirer_crashes = 3;
        cfg.skip_recovery = true;
        cfg.drop_permille = 0;
        assert_eq!(
            cfg.replay_command(),
            "posguard simulate --seed 7 --transactions 12 --terminals 5 --crashes 3 --skip-recovery (and SimConfig [\"drop_permille\"])"
        );
    }
}
