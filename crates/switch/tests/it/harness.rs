//! One acquirer engine, one merchant and terminal identity, an approving issuer, and
//! the store as a list of writes. Everything runs synchronously: a persist is durable
//! at once, a message to the issuer is answered at once, timers never fire.

use std::collections::BTreeMap;
use std::sync::Arc;

use cardsec::{
    cup_ecb_mac, x9_19_mac, Key, KeyKind, KeyLayout, Lmk, SecurityModule, SoftwareSecurityModule,
    TerminalKeys,
};
use iso8583::frame::{encode_frame, CupEnvelope};
use iso8583::{Dialect, Message};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use records::{MerchantRow, TerminalRow, TxnRow, Write};
use switch::{Action, Config, ConnId, Engine, Input, JournalState, Now, TerminalDialect, ZoneKeys};
use terminal::{Card, EntryKind, Outcome, Request, Terminal, TerminalConfig};

pub const TID: &str = "00000001";
pub const MID: &str = "123456789012345";
const LMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const TMK: &str = "70F2A84CCBC2AE8625CBB0F2C22AB923";
const ZPK: &str = "E0F4543F3E2A2C5FFC7E5E5A222E3E4D";
const ZAK: &str = "89B07B35A1B3F47E89B07B35A1B3F47E";
/// 2026-11-18T11:06:40Z: 19:06 on the acquirer's business date 2026-11-18.
pub const START_MS: i64 = 1_795_000_000_000;
const CONN: ConnId = ConnId(1);

/// A good card, read from its chip, no PIN.
pub fn card() -> Card {
    Card::new("6228480402564890018", None, "2812", EntryKind::Chip)
}

/// The acquirer and everything around it.
pub struct World {
    pub engine: Engine,
    cfg: Config,
    /// What the engine was built from, to build it again (a restart).
    pub hsm: Arc<SoftwareSecurityModule>,
    zone: ZoneKeys,
    merchant: MerchantRow,
    now_ms: i64,
    /// The zone MAC key the scripted issuer signs under.
    pub zak: Key,
    /// The MAC key of the last sign-on, to craft or tamper with terminal messages.
    mak: Option<Key>,
    /// The terminal's key profile (its terminals sign on for it).
    layout: KeyLayout,
    /// The track key of the last sign-on (layout `004`).
    pub tdk: Option<Key>,
    /// Every durable write, in order.
    pub writes: Vec<Write>,
    /// The journal as the store holds it.
    pub txns: BTreeMap<i64, TxnRow>,
    /// Frames the engine sent to the terminal connection, not yet taken.
    outbox: Vec<Vec<u8>>,
    /// The reply of the last `exchange`.
    pub last_reply: Option<Message>,
    /// Refuse the next journal write (a full disk, a lost database).
    pub fail_next_persist: bool,
    /// Every message sent to the issuer.
    pub to_issuer: Vec<Vec<u8>>,
    /// The issuer's field 39 (it approves everything by default).
    pub issuer_rc: &'static str,
    /// The issuer keeps its answers (requests stay in flight).
    pub issuer_silent: bool,
    /// Terminal connections the engine asked to close.
    pub closed: usize,
}

impl World {
    pub fn new() -> World {
        World::build(Config::default(), |_| {})
    }

    /// A world whose merchant is first changed by `edit`.
    pub fn with_merchant(edit: impl FnOnce(&mut MerchantRow)) -> World {
        World::build(Config::default(), edit)
    }

    /// A world with the engine configured by `cfg`.
    pub fn with_config(cfg: Config) -> World {
        World::build(cfg, |_| {})
    }

    /// A world whose terminal is provisioned for a track key (`004`).
    pub fn with_track_key() -> World {
        World::build_for(Config::default(), |_| {}, KeyLayout::DoubleWithTrack)
    }

    fn build(cfg: Config, edit: impl FnOnce(&mut MerchantRow)) -> World {
        World::build_for(cfg, edit, KeyLayout::Double)
    }

    fn build_for(cfg: Config, edit: impl FnOnce(&mut MerchantRow), layout: KeyLayout) -> World {
        let lmk = Lmk::from_hex(LMK).unwrap();
        let hsm = Arc::new(SoftwareSecurityModule::new(
            lmk,
            Box::new(ChaCha8Rng::seed_from_u64(7)),
        ));
        let import = |kind, hex: &str| {
            hsm.import_key(kind, 1, &Key::from_hex(hex).unwrap())
                .unwrap()
        };
        let zone = ZoneKeys {
            zpk: import(KeyKind::Zpk, ZPK),
            zak: import(KeyKind::Zak, ZAK),
        };
        let merchant = MerchantRow {
            merchant_id: MID.into(),
            name: "Batch Test Shop".into(),
            city: "Shanghai".into(),
            mcc: "5411".into(),
            status: "active".into(),
            created_at: "2020-01-01T00:00:00+00:00".into(),
            merchant_class: "standard".into(),
            risk_class: "low".into(),
        };
        let mut merchant = merchant;
        edit(&mut merchant);
        let terminal = TerminalRow {
            terminal_id: TID.into(),
            merchant_id: MID.into(),
            status: "active".into(),
            tmk: import(KeyKind::Tmk, TMK).to_text(),
            pik: None,
            mak: None,
            mak_prev: None,
            key_version: 0,
            batch: 1,
            signed_on: false,
            install_location: String::new(),
            updated_at: "2020-01-01T00:00:00+00:00".into(),
            key_profile: layout.net_code().into(),
            pending_pik: None,
            pending_mak: None,
            tdk: None,
            pending_tdk: None,
        };
        let engine = Engine::new(
            cfg.clone(),
            hsm.clone(),
            zone.clone(),
            vec![merchant.clone()],
            vec![terminal],
            JournalState::default(),
        );
        World {
            engine,
            cfg,
            hsm,
            zone,
            merchant,
            now_ms: START_MS,
            zak: Key::from_hex(ZAK).unwrap(),
            mak: None,
            layout,
            tdk: None,
            writes: Vec::new(),
            txns: BTreeMap::new(),
            outbox: Vec::new(),
            last_reply: None,
            fail_next_persist: false,
            to_issuer: Vec::new(),
            issuer_rc: "00",
            issuer_silent: false,
            closed: 0,
        }
    }

    /// Builds the engine again from what the store holds, as a restarted node does.
    pub fn restart(&mut self) {
        let terminal = self
            .writes
            .iter()
            .rev()
            .find_map(|w| match w {
                Write::Terminal(t) => Some(t.clone()),
                _ => None,
            })
            .expect("the terminal signed on");
        let recent: Vec<TxnRow> = self.txns.values().cloned().collect();
        let max_id = self.txns.keys().max().copied().unwrap_or(0);
        let mut last_events = std::collections::HashMap::new();
        for w in &self.writes {
            if let Write::Event(e) = w {
                let seq = last_events.entry(e.txn_id).or_insert(0);
                *seq = e.seq.max(*seq);
            }
        }
        self.engine = Engine::new(
            self.cfg.clone(),
            self.hsm.clone(),
            self.zone.clone(),
            vec![self.merchant.clone()],
            vec![terminal],
            JournalState {
                recent,
                last_events,
                max_txn_id: max_id,
            },
        );
    }

    /// What a restarted node does next: resumes every queue entry the store holds as
    /// pending (their latest written state).
    pub fn recover(&mut self) {
        let mut latest = BTreeMap::new();
        for w in &self.writes {
            if let Write::Saf(e) = w {
                latest.insert(e.saf_id, e.clone());
            }
        }
        let pending = latest
            .into_values()
            .filter(|e: &records::SafRow| e.state == records::SafState::Pending)
            .collect();
        let actions = self.engine.recover(self.now(), pending);
        self.execute(actions);
    }

    /// A terminal of the test identity whose first STAN is `first_stan`, signed on.
    pub fn terminal(&mut self, first_stan: u32) -> Terminal {
        let mut config = TerminalConfig::new(
            TID.parse().unwrap(),
            MID.parse().unwrap(),
            Key::from_hex(TMK).unwrap(),
        );
        config.first_stan = domain::Stan::new(first_stan).unwrap();
        config.key_layout = self.layout;
        let mut t = Terminal::new(config);
        self.sign_on(&mut t);
        t
    }

    /// Signs `t` on (again): the test crafts messages under its new MAC key after it.
    pub fn sign_on(&mut self, t: &mut Terminal) {
        let req = t.sign_on().unwrap();
        let frames = self.deliver(&req.frame);
        let reply = frames.last().expect("a sign-on reply");
        let msg = unpack_reply(reply);
        let keys = TerminalKeys::unwrap(
            &Key::from_hex(TMK).unwrap(),
            self.layout,
            msg.get(62).unwrap(),
        )
        .unwrap();
        self.mak = Some(keys.mak);
        self.tdk = keys.tdk;
        let out = t.on_reply(reply).unwrap();
        assert!(out.is_approved() && t.is_signed_on(), "{out:?}");
    }

    /// Whether a reply frame body's MAC verifies under the last sign-on's MAC key.
    pub fn reply_mac_ok(&self, body: &[u8]) -> bool {
        let env = CupEnvelope::split(body).unwrap();
        let n = env.message.len() - 8;
        let mac = cup_ecb_mac(self.mak.as_ref().expect("signed on"), &env.message[..n]);
        mac[..] == env.message[n..]
    }

    /// Sends a terminal's request and hands it the engine's reply.
    pub fn exchange(&mut self, t: &mut Terminal, req: Request) -> Outcome {
        let frame = req.frame.clone();
        self.exchange_as(t, &frame)
    }

    /// Sends `framed` (a terminal's request, perhaps tampered with) and hands the
    /// engine's reply to the terminal.
    pub fn exchange_as(&mut self, t: &mut Terminal, framed: &[u8]) -> Outcome {
        let frames = self.deliver(framed);
        assert_eq!(frames.len(), 1, "one reply");
        self.last_reply = Some(unpack_reply(&frames[0]));
        t.on_reply(&frames[0]).unwrap()
    }

    /// Builds a request with `build` and exchanges it; panics unless approved.
    pub fn approve(
        &mut self,
        t: &mut Terminal,
        build: impl FnOnce(&mut Terminal) -> Result<Request, terminal::TerminalError>,
    ) -> Outcome {
        let req = build(t).unwrap();
        let out = self.exchange(t, req);
        assert!(out.is_approved(), "{out:?}");
        out
    }

    /// Feeds a framed request (length prefix included) to the engine, carries out the
    /// actions, and returns the frame bodies sent to the terminal.
    pub fn deliver(&mut self, framed: &[u8]) -> Vec<Vec<u8>> {
        // A minute between requests: the risk rules' duplicate check looks 60 s back.
        self.now_ms += 61_000;
        self.deliver_now(framed)
    }

    /// As [`World::deliver`], at the same moment as the last input.
    pub fn deliver_now(&mut self, framed: &[u8]) -> Vec<Vec<u8>> {
        let actions = self.engine.handle(
            self.now(),
            Input::TerminalFrame {
                conn: CONN,
                dialect: TerminalDialect::CupPos,
                frame: &framed[2..],
            },
        );
        self.execute(actions);
        std::mem::take(&mut self.outbox)
    }

    /// The frames sent to the terminal connection since the last look.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// Feeds a request and returns the replies as messages.
    pub fn replies(&mut self, framed: &[u8]) -> Vec<Message> {
        self.deliver(framed)
            .iter()
            .map(|b| unpack_reply(b))
            .collect()
    }

    /// Feeds the engine one input at the current time and carries out what it asks.
    pub fn feed(&mut self, input: Input<'_>) {
        let actions = self.engine.handle(self.now(), input);
        self.execute(actions);
    }

    fn now(&self) -> Now {
        Now {
            unix_ms: self.now_ms,
        }
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Persist {
                    writes,
                    then,
                    on_fail,
                } if self.fail_next_persist
                    && writes.iter().any(|w| matches!(w, Write::NewTxn(_))) =>
                {
                    self.fail_next_persist = false;
                    let _ = (writes, then);
                    self.execute(on_fail);
                    let actions = self.engine.handle(
                        self.now(),
                        Input::PersistFailed {
                            reason: "test: write refused".into(),
                        },
                    );
                    self.execute(actions);
                }
                Action::Abandon { txn_id } => {
                    let actions = self.engine.handle(self.now(), Input::Abandoned { txn_id });
                    self.execute(actions);
                }
                Action::Persist { writes, then, .. } => {
                    // A batch writes each journal row at most once.
                    let mut rows = std::collections::BTreeSet::new();
                    for w in &writes {
                        if let Write::NewTxn(t) | Write::UpdateTxn(t) = w {
                            assert!(
                                rows.insert(t.txn_id),
                                "txn {} written twice: {writes:?}",
                                t.txn_id
                            );
                        }
                    }
                    self.apply(&writes);
                    self.writes.extend(writes);
                    self.execute(then);
                }
                Action::SendIssuer { message, .. } if self.issuer_silent => {
                    self.to_issuer.push(message);
                }
                Action::SendIssuer { message, .. } => {
                    let reply = self.issuer(&message);
                    self.to_issuer.push(message);
                    let actions = self
                        .engine
                        .handle(self.now(), Input::IssuerFrame { frame: &reply });
                    self.execute(actions);
                }
                Action::SendTerminal { conn, frame } => {
                    assert_eq!(conn, CONN);
                    self.outbox.push(frame);
                }
                Action::CloseTerminal { .. } => self.closed += 1,
                Action::NoReply { .. }
                | Action::StartIssuerTimer { .. }
                | Action::StartSafTimer { .. } => {}
            }
        }
    }

    fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::NewTxn(t) | Write::UpdateTxn(t) => {
                    self.txns.insert(t.txn_id, t.clone());
                }
                Write::TxnState { txn_id, state, .. } => {
                    if let Some(t) = self.txns.get_mut(txn_id) {
                        t.state = *state;
                    }
                }
                _ => {}
            }
        }
    }

    /// An issuer that approves everything, MACed under the zone key.
    pub fn issuer(&self, request: &[u8]) -> Vec<u8> {
        let dialect = Dialect::iso87_ascii();
        let req = dialect.unpack(request).unwrap();
        let mut m = Message::new(req.mti().response());
        for f in [3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49] {
            if let Some(v) = req.get(f) {
                m.set(f, v);
            }
        }
        m.set(38, "A12345");
        m.set(39, self.issuer_rc);
        m.set(64, [0u8; 8]);
        let mut bytes = dialect.pack(&m).unwrap();
        let n = bytes.len() - 16;
        let mac = x9_19_mac(&self.zak, &bytes[..n]);
        bytes[n..].copy_from_slice(hex::encode_upper(mac).as_bytes());
        bytes
    }

    /// Frames a crafted terminal message (TPDU, header, MAC under the current key).
    pub fn craft(&self, msg: &mut Message) -> Vec<u8> {
        self.try_craft(msg).expect("the message packs")
    }

    /// As [`World::craft`], or `None` when the codec refuses a value.
    pub fn try_craft(&self, msg: &mut Message) -> Option<Vec<u8>> {
        msg.set(64, [0u8; 8]);
        let mut packed = Dialect::cup_pos().pack(msg).ok()?;
        let n = packed.len() - 8;
        let mac = cup_ecb_mac(self.mak.as_ref().expect("signed on"), &packed[..n]);
        packed[n..].copy_from_slice(&mac);
        let mut body = Vec::new();
        CupEnvelope {
            tpdu: iso8583::frame::Tpdu::from_bytes([0x60, 0x00, 0x03, 0x00, 0x00]),
            header: iso8583::frame::CupHeader([0x60, 0x32, 0x10, 0x32, 0x00, 0x72]),
            message: &packed,
        }
        .write(&mut body);
        let mut framed = Vec::new();
        encode_frame(&body, 8192, &mut framed).ok()?;
        Some(framed)
    }

    /// A terminal request as the engine would read it.
    pub fn open(framed: &[u8]) -> Message {
        let env = CupEnvelope::split(&framed[2..]).unwrap();
        Dialect::cup_pos().unpack(env.message).unwrap()
    }

    /// The terminal's request with `change` applied, MACed again.
    pub fn tamper(&self, framed: &[u8], change: impl FnOnce(&mut Message)) -> Vec<u8> {
        self.rewrite(&World::open(framed), change)
    }

    /// A copy of `msg` with `change` applied, framed and MACed.
    pub fn rewrite(&self, msg: &Message, change: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut msg = msg.clone();
        change(&mut msg);
        self.craft(&mut msg)
    }

    /// The writes of the batch settlement (everything but the journal of transactions
    /// and the terminal's keys), shown one per line with the journal's view of each
    /// captured transaction.
    pub fn settlement_writes(&self, since: usize) -> String {
        let mut s = String::new();
        for w in &self.writes[since..] {
            let line = match w {
                Write::Capture(c) => {
                    let t = &self.txns[&c.txn_id];
                    format!(
                        "capture {} stan {} {} ({}) how {} date {}",
                        t.kind, t.stan, t.amount_minor, t.state, c.how, c.business_date
                    )
                }
                Write::BatchSettlement(b) => format!(
                    "settlement {} batch {} {} uploaded {}\n  terminal {}\n  posguard {}",
                    b.terminal_id,
                    b.batch,
                    b.result,
                    b.uploaded,
                    b.terminal_totals,
                    b.posguard_totals
                ),
                Write::BatchDiff(d) => format!(
                    "diff {} stan {} {} {} rrn {} : {}",
                    d.side,
                    d.stan,
                    d.kind,
                    d.amount_minor,
                    d.rrn.as_deref().unwrap_or("-"),
                    d.detail
                ),
                Write::Terminal(t) => {
                    format!("terminal {} now in batch {}", t.terminal_id, t.batch)
                }
                _ => continue,
            };
            s.push_str(&line);
            s.push('\n');
        }
        s
    }
}

/// A reply frame body (TPDU, header, message) as a message.
pub fn unpack_reply(body: &[u8]) -> Message {
    let env = CupEnvelope::split(body).unwrap();
    Dialect::cup_pos().unpack(env.message).unwrap()
}
