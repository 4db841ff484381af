//! The authorization path over real loopback sockets: a terminal, the acquirer node
//! and the issuer simulator, asserting on the money (issuer balances, holds, SMS), on
//! SQLite and, when `POSGUARD_TEST_PG_URL` is set, PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iso8583::frame::FrameDecoder;
use issuer::{AccountView, Bank, IssuerConfig};
use posguard::demo_data::{demo_data, CardFate, DemoCard, DemoData, DemoTerminal};
use posguard::node::run_node;
use posguard::run_cli::{node_options, open_demo_accounts, seed_store, shanghai_now};
use terminal::{Card, EntryKind, Outcome, Request, Terminal, TerminalConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Stores to run against: a fresh SQLite directory, and a fresh PostgreSQL schema.
pub fn stores(name: &str) -> Vec<String> {
    let mut out = vec![std::env::temp_dir()
        .join(format!("posguard-scenario-{name}-{}", std::process::id()))
        .display()
        .to_string()];
    match std::env::var("POSGUARD_TEST_PG_URL") {
        Ok(url) => out.push(format!(
            "{url}?schema=scenario_{name}_{}",
            std::process::id()
        )),
        Err(_) => eprintln!("POSGUARD_TEST_PG_URL not set: PostgreSQL scenario skipped"),
    }
    out
}

pub fn cleanup(store: &str) {
    if let Some((url, schema)) = store.split_once("?schema=") {
        if let Ok(mut b) = store::PgBackend::connect(url) {
            let _ = b.drop_schema(schema);
        }
    } else {
        let _ = std::fs::remove_dir_all(store);
    }
}

/// The issuer simulator on loopback ports with the demo cardholders of `data` and the
/// keys of `keys`.
pub async fn demo_issuer(data: &DemoData, keys: issuer::ClearKeys) -> issuer::Issuer {
    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        keys,
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys).expect("issuer keys");
    open_demo_accounts(&mut bank, data, shanghai_now()).expect("accounts");
    issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .expect("issuer")
}

/// Waits (at most 30 s) until the node behind `task` reports `links` issuer links up,
/// or has stopped. The gateway publishes the count every second; nothing signals it,
/// so it is polled.
async fn links_up<T>(stats: &gateway::GatewayStats, links: u64, task: &tokio::task::JoinHandle<T>) {
    let up = tokio::time::timeout(Duration::from_secs(30), async {
        while stats
            .issuer_links_up
            .load(std::sync::atomic::Ordering::Relaxed)
            < links
            && !task.is_finished()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        up.is_ok(),
        "the node's {links} issuer links came up within 30 s"
    );
}

/// An acquirer node on a fresh `cup-pos` loopback listener, its store seeded with the
/// demo merchants and terminals of `data`.
pub struct Node {
    /// The terminal listener.
    pub addr: SocketAddr,
    /// Its gateway's counters (and its change-feed position).
    pub stats: Arc<gateway::GatewayStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), posguard::node::NodeError>>>,
}

impl Node {
    /// Onboards `data`'s merchants into an empty store first: `data` then has the
    /// terminals' ids and master keys provisioning made.
    pub async fn start(opts: posguard::node::NodeOptions, data: &mut DemoData) -> Node {
        let (o, d) = (opts.clone(), data.clone());
        *data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
            .await
            .expect("join")
            .expect("seed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let links = opts.gateway.issuer_connections.max(1) as u64;
        let stats = Arc::new(gateway::GatewayStats::default());
        let task = tokio::spawn(run_node(
            opts,
            vec![(listener, gateway::TerminalDialect::CupPos)],
            stats.clone(),
            async {
                let _ = rx.await;
            },
        ));
        // Serving starts once the issuer links are up: a sale sent before would get 91
        // (seen on a busy machine after a restart). The gateway publishes the count
        // every second; nothing signals it, so it is polled, within a bound.
        links_up(&stats, links, &task).await;
        Node {
            addr,
            stats,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the node and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("node");
        }
    }
}

/// How a world is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Whether the acquirer can reach the issuer.
    pub issuer_reachable: bool,
    /// The issuer's faults.
    pub faults: issuer::Faults,
    /// The acquirer's issuer timeout.
    pub issuer_timeout_ms: u64,
    /// First store-and-forward repeat delay.
    pub saf_backoff_ms: u64,
    /// Sweep the shared queue every second and take what is due at once (entries
    /// reconciliation queues are picked up quickly).
    pub sweep_fast: bool,
    /// Seconds between the node's reads of the key and rule-set tables.
    pub key_check_secs: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            issuer_reachable: true,
            faults: issuer::Faults::default(),
            issuer_timeout_ms: 5_000,
            saf_backoff_ms: 1_000,
            sweep_fast: false,
            key_check_secs: 10,
        }
    }
}

pub struct World {
    pub issuer: issuer::Issuer,
    pub acquirer: SocketAddr,
    ascii: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    node: Option<tokio::task::JoinHandle<Result<(), posguard::node::NodeError>>>,
    pub data: DemoData,
    /// Holds the unreachable issuer's port (bound, never listening) for the world's
    /// life, so no other test's listener can take it.
    _unreachable: Option<tokio::net::TcpSocket>,
}

/// A loopback address whose port is bound but never listens: connecting to it is
/// refused for as long as the socket is kept (a port merely probed free and released
/// can be taken by the next listener a parallel test binds).
pub fn refusing_addr() -> (SocketAddr, tokio::net::TcpSocket) {
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    (s.local_addr().expect("addr"), s)
}

impl World {
    async fn start(store: &str, issuer_reachable: bool) -> World {
        World::start_with(
            store,
            Setup {
                issuer_reachable,
                ..Setup::default()
            },
        )
        .await
    }

    pub async fn start_with(store: &str, setup: Setup) -> World {
        let issuer_reachable = setup.issuer_reachable;
        let data = demo_data(42, 4, 30);
        let config = IssuerConfig {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: setup.faults.clone(),
            seed: 7,
            ..IssuerConfig::default()
        };
        let mut bank = Bank::from_clear_keys(&config.keys)
            .expect("issuer keys")
            .with_faults(setup.faults.clone(), 7);
        open_demo_accounts(&mut bank, &data, shanghai_now()).expect("accounts");
        let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
            .await
            .expect("issuer");
        let (issuer_addr, unreachable) = if issuer_reachable {
            (issuer.iso_addr(), None)
        } else {
            let (addr, held) = refusing_addr();
            (addr, Some(held))
        };
        let mut opts = node_options(store.to_owned(), issuer_addr, setup.issuer_timeout_ms);
        opts.switch.saf_backoff_ms = setup.saf_backoff_ms;
        opts.switch.saf_backoff_max_ms = setup.saf_backoff_ms * 4;
        opts.gateway.issuer_connections = 2;
        opts.gateway.key_check_secs = setup.key_check_secs;
        if setup.sweep_fast {
            opts.gateway.saf_sweep_secs = 1;
            opts.gateway.saf_adopt_after_ms = 0;
        }
        let (o, d) = (opts.clone(), data.clone());
        let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
            .await
            .expect("join")
            .expect("seed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let acquirer = listener.local_addr().expect("addr");
        let ascii_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ascii = ascii_listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let links = opts.gateway.issuer_connections.max(1) as u64;
        let stats = Arc::new(gateway::GatewayStats::default());
        let node = tokio::spawn(run_node(
            opts,
            vec![
                (listener, gateway::TerminalDialect::CupPos),
                (ascii_listener, gateway::TerminalDialect::Iso87Ascii),
            ],
            stats.clone(),
            async {
                let _ = rx.await;
            },
        ));
        if issuer_reachable {
            // The issuer links connect in the background: wait until they are up (a
            // fixed pause was too short on a busy machine), within a bound.
            links_up(&stats, links, &node).await;
        }
        World {
            issuer,
            acquirer,
            ascii,
            stop: Some(tx),
            node: Some(node),
            data,
            _unreachable: unreachable,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(n) = self.node.take() {
            n.await.expect("join").expect("node");
        }
        self.issuer.stop().await;
    }

    /// Stops the world and removes its store.
    pub async fn finish(self, store: &str) {
        self.stop().await;
        let s = store.to_owned();
        tokio::task::spawn_blocking(move || cleanup(&s))
            .await
            .expect("cleanup");
    }

    /// A terminal of the demo data on a new connection, signed on.
    pub async fn pos(&self, terminal: usize) -> Pos {
        Pos::signed_on(self.acquirer, &self.data.terminals[terminal]).await
    }

    pub fn card(&self, fate: CardFate, nth: usize) -> &DemoCard {
        self.data
            .cards
            .iter()
            .filter(|c| c.fate == fate)
            .nth(nth)
            .expect("card of that fate")
    }

    pub fn account(&self, card: &DemoCard) -> AccountView {
        let masked = domain::mask_pan(card.pan.as_bytes());
        let bank = self.issuer.bank();
        let b = bank.lock().expect("bank");
        b.accounts()
            .into_iter()
            .find(|a| a.masked_pan == masked)
            .expect("account")
    }

    pub fn sms_count(&self, card: &DemoCard) -> usize {
        let id = self.account(card).id;
        let bank = self.issuer.bank();
        let b = bank.lock().expect("bank");
        b.sms().iter().filter(|s| s.account == id).count()
    }
}

/// A terminal on a real connection.
pub struct Pos {
    pub term: Terminal,
    stream: TcpStream,
    dec: FrameDecoder,
}

impl Pos {
    pub async fn connect(addr: SocketAddr, t: &DemoTerminal) -> Pos {
        let key = cardsec::Key::from_hex(&t.tmk_hex).expect("tmk");
        let mut cfg = TerminalConfig::new(
            t.terminal_id.parse().expect("tid"),
            t.merchant_id.parse().expect("mid"),
            key,
        );
        cfg.key_layout = t.key_layout;
        // Where it is installed: a terminal waiting for installation sells only there.
        cfg.location = Some(t.location.clone());
        let stream = TcpStream::connect(addr).await.expect("connect");
        Pos {
            term: Terminal::new(cfg),
            stream,
            dec: FrameDecoder::new(8192),
        }
    }

    /// Connects and signs on (asserting `00`).
    pub async fn signed_on(addr: SocketAddr, t: &DemoTerminal) -> Pos {
        let mut pos = Pos::connect(addr, t).await;
        assert_eq!(code(&pos.sign_on().await), "00");
        pos
    }

    pub async fn exchange(&mut self, frame: &[u8]) -> Vec<u8> {
        self.stream.write_all(frame).await.expect("write");
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.dec.next_frame().expect("frame") {
                return f.to_vec();
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(n > 0, "acquirer closed the connection");
            self.dec.feed(&buf[..n]);
        }
    }

    /// The next frame from the acquirer, if one comes within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.dec.next_frame().expect("frame") {
                return Some(f.to_vec());
            }
            let n = tokio::time::timeout(wait, self.stream.read(&mut buf))
                .await
                .ok()?
                .expect("read");
            assert!(n > 0, "acquirer closed the connection");
            self.dec.feed(&buf[..n]);
        }
    }

    /// Writes a frame without waiting for the reply.
    pub async fn write_only(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).await.expect("write");
    }

    /// The same terminal on a new connection (the old one is dropped).
    pub async fn reconnect(self, addr: SocketAddr) -> Pos {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Pos {
            term: self.term,
            stream,
            dec: FrameDecoder::new(8192),
        }
    }

    pub async fn send(&mut self, req: Request) -> Outcome {
        let reply = self.exchange(&req.frame).await;
        self.term.on_reply(&reply).expect("valid reply")
    }

    pub async fn sign_on(&mut self) -> Outcome {
        let r = self.term.sign_on().expect("sign-on");
        self.send(r).await
    }
}

pub fn code(o: &Outcome) -> String {
    o.response_code.map(|c| c.to_string()).unwrap_or_default()
}

pub fn card(c: &DemoCard) -> Card {
    let mut card = Card::new(&c.pan, Some(&c.pin), &c.expiry, EntryKind::Chip);
    card.service_code = c.service_code.clone();
    card
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_scenarios_move_the_right_money() {
    for store in stores("auth") {
        let w = World::start(&store, true).await;
        let mut pos = Pos::connect(w.acquirer, &w.data.terminals[0]).await;
        assert_eq!(code(&pos.sign_on().await), "00", "{store}");

        // Approved sale: one debit, one SMS.
        let c = w.card(CardFate::Good, 0).clone();
        let before = w.account(&c).balance_minor;
        let sale = {
            let r = pos.term.sale(&card(&c), 12_345).expect("sale");
            pos.send(r).await
        };
        assert_eq!(code(&sale), "00", "{store}");
        assert_eq!(w.account(&c).balance_minor, before - 12_345);
        assert_eq!(w.sms_count(&c), 1);

        // Void of that sale: the money comes back, the cardholder is told.
        let entry = sale.entry.clone().expect("batch entry");
        let void = {
            let r = pos.term.void(&card(&c), &entry).expect("void");
            pos.send(r).await
        };
        assert_eq!(code(&void), "00", "{store}");
        assert_eq!(w.account(&c).balance_minor, before);
        assert_eq!(w.sms_count(&c), 2);

        // Refund of part of another sale.
        let c = w.card(CardFate::Good, 1).clone();
        let before = w.account(&c).balance_minor;
        let sale = {
            let r = pos.term.sale(&card(&c), 50_000).expect("sale");
            pos.send(r).await
        };
        let entry = sale.entry.clone().expect("entry");
        let refund = {
            let r = pos.term.refund(&card(&c), 20_000, &entry).expect("refund");
            pos.send(r).await
        };
        assert_eq!(
            (code(&sale), code(&refund)),
            ("00".into(), "00".into()),
            "{store}"
        );
        assert_eq!(w.account(&c).balance_minor, before - 30_000);
        assert_eq!(w.sms_count(&c), 2);
        // A second partial refund of the same sale is a transaction of its own at the
        // issuer (its own RRN), not a duplicate of the first.
        let entry = sale.entry.clone().expect("entry");
        let second = {
            let r = pos
                .term
                .refund(&card(&c), 10_000, &entry)
                .expect("second refund");
            pos.send(r).await
        };
        assert_eq!(code(&second), "00", "{store}");
        assert_eq!(w.account(&c).balance_minor, before - 20_000);
        assert_eq!(w.sms_count(&c), 3);

        // Balance inquiry: an answer, no money moves, no SMS.
        let c = w.card(CardFate::Good, 2).clone();
        let before = w.account(&c);
        let bal = {
            let r = pos.term.balance(&card(&c)).expect("balance");
            pos.send(r).await
        };
        assert_eq!(code(&bal), "00", "{store}");
        assert!(bal.balance_minor.is_some());
        assert_eq!(bal.balance_minor, Some(before.available_minor), "{store}");
        assert_eq!(w.account(&c).balance_minor, before.balance_minor);
        assert_eq!(w.sms_count(&c), 0);

        // Pre-authorization holds, completion debits and releases the hold.
        let c = w.card(CardFate::Good, 3).clone();
        let before = w.account(&c);
        let pre = {
            let r = pos.term.pre_auth(&card(&c), 30_000).expect("pre-auth");
            pos.send(r).await
        };
        assert_eq!(code(&pre), "00", "{store}");
        assert_eq!(w.account(&c).holds_minor, before.holds_minor + 30_000);
        assert_eq!(w.account(&c).balance_minor, before.balance_minor);
        let entry = pre.entry.clone().expect("entry");
        let done = {
            let r = pos.term.completion(25_000, &entry).expect("completion");
            pos.send(r).await
        };
        assert_eq!(code(&done), "00", "{store}");
        assert_eq!(w.account(&c).holds_minor, before.holds_minor);
        assert_eq!(w.account(&c).balance_minor, before.balance_minor - 25_000);

        // Declines: no money moves, no SMS.
        let good = w.card(CardFate::Good, 4).clone();
        let mut wrong_pin = card(&good);
        wrong_pin.pin = Some(if good.pin == "000000" {
            "111111".into()
        } else {
            "000000".into()
        });
        let mut bad_luhn = card(&good);
        let last = bad_luhn.pan.pop().expect("digit");
        bad_luhn.pan.push(if last == '9' {
            '0'
        } else {
            char::from(last as u8 + 1)
        });
        let cases = [
            ("wrong PIN", good.clone(), wrong_pin, "55"),
            (
                "insufficient funds",
                w.card(CardFate::Poor, 0).clone(),
                card(w.card(CardFate::Poor, 0)),
                "51",
            ),
            (
                "expired",
                w.card(CardFate::Expired, 0).clone(),
                card(w.card(CardFate::Expired, 0)),
                "54",
            ),
            (
                "lost",
                w.card(CardFate::Lost, 0).clone(),
                card(w.card(CardFate::Lost, 0)),
                "41",
            ),
            ("invalid card number", good.clone(), bad_luhn, "14"),
        ];
        for (what, account_card, presented, want) in cases {
            let before = w.account(&account_card).balance_minor;
            let sms = w.sms_count(&account_card);
            let o = {
                let r = pos.term.sale(&presented, 1_000).expect("sale");
                pos.send(r).await
            };
            assert_eq!(code(&o), want, "{what} on {store}");
            assert_eq!(
                w.account(&account_card).balance_minor,
                before,
                "{what}: no debit"
            );
            assert_eq!(w.sms_count(&account_card), sms, "{what}: no SMS");
        }

        // Duplicate transmission: the same frame twice, one debit, the same reply.
        let c = w.card(CardFate::Good, 5).clone();
        let before = w.account(&c).balance_minor;
        let req = pos.term.sale(&card(&c), 7_777).expect("sale");
        let first = pos.exchange(&req.frame).await;
        let second = pos.exchange(&req.frame).await;
        assert_eq!(
            first, second,
            "duplicate answered from the journal ({store})"
        );
        assert_eq!(code(&pos.term.on_reply(&first).expect("reply")), "00");
        assert_eq!(
            w.account(&c).balance_minor,
            before - 7_777,
            "one debit ({store})"
        );
        assert_eq!(w.sms_count(&c), 1);

        // Bad MAC: A0, nothing reaches the issuer.
        let c = w.card(CardFate::Good, 6).clone();
        let before = w.account(&c).balance_minor;
        let mut req = pos.term.sale(&card(&c), 4_321).expect("sale");
        let n = req.frame.len();
        req.frame[n - 1] ^= 0x01;
        let reply = pos.exchange(&req.frame).await;
        let rc = iso8583::Dialect::cup_pos()
            .unpack(&reply[11..])
            .expect("reply")
            .response_code()
            .expect("39");
        assert_eq!(rc.to_string(), "A0", "{store}");
        assert_eq!(w.account(&c).balance_minor, before);

        // Unknown terminal: 97 at sign-on.
        let stranger = DemoTerminal {
            terminal_id: "99999999".into(),
            ..w.data.terminals[0].clone()
        };
        let mut other = Pos::connect(w.acquirer, &stranger).await;
        let r = other.term.sign_on().expect("sign-on");
        let reply = other.exchange(&r.frame).await;
        let rc = iso8583::Dialect::cup_pos()
            .unpack(&reply[11..])
            .expect("reply")
            .response_code()
            .expect("39");
        assert_eq!(rc.to_string(), "97", "{store}");

        // A terminal that lost its memory reuses STAN 000002 of this batch for another
        // sale: not a retransmission, so 94 — no money moves, the first sale stands.
        let c = w.card(CardFate::Good, 8).clone();
        let before = w.account(&c).balance_minor;
        let mut amnesiac = w.pos(0).await;
        let o = {
            let r = amnesiac.term.sale(&card(&c), 1_111).expect("sale");
            assert_eq!(r.stan.to_string(), "000002");
            amnesiac.send(r).await
        };
        assert_eq!(code(&o), "94", "{store}");
        assert_eq!(w.account(&c).balance_minor, before);
        let first = w.card(CardFate::Good, 0).clone();
        assert_eq!(
            w.sms_count(&first),
            2,
            "the first sale and its void only ({store})"
        );

        // The issuer's book still balances.
        let bank = w.issuer.bank();
        let totals = bank.lock().expect("bank").book().totals();
        assert!(
            totals.balanced && totals.sum_by_currency.values().all(|v| *v == 0),
            "{totals:?}"
        );
        let verified = bank.lock().expect("bank").book().verify();
        assert_eq!(verified, Ok(()));
        w.finish(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_issuer_gets_91_and_no_debit() {
    for store in stores("down") {
        let w = World::start(&store, false).await;
        let mut pos = w.pos(1).await;
        let c = w.card(CardFate::Good, 0).clone();
        let before = w.account(&c).balance_minor;
        let o = {
            let r = pos.term.sale(&card(&c), 5_000).expect("sale");
            pos.send(r).await
        };
        assert_eq!(code(&o), "91", "{store}");
        assert_eq!(w.account(&c).balance_minor, before);
        assert_eq!(w.sms_count(&c), 0);
        w.finish(&store).await;
    }
}

/// Sends one framed message and reads one framed reply (no TPDU: iso87-ascii).
async fn ascii_exchange(stream: &mut TcpStream, dec: &mut FrameDecoder, msg: &[u8]) -> Vec<u8> {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await.expect("write");
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame().expect("frame") {
            return f.to_vec();
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "closed");
        dec.feed(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso87_ascii_terminal_signs_on_and_sells() {
    use cardsec::{KeyLayout, MacAlgorithm, Pan, Pin, PinBlock, TerminalKeys};
    use iso8583::{Dialect, Message, Mti};
    for store in stores("ascii") {
        let w = World::start(&store, true).await;
        let t = w.data.terminals[2].clone();
        let d = Dialect::iso87_ascii();
        let mut stream = TcpStream::connect(w.ascii).await.expect("connect");
        let mut dec = FrameDecoder::new(8192);
        let mut m = Message::new(Mti::lit("0800"));
        m.set(11, "000001")
            .set(41, t.terminal_id.as_str())
            .set(42, t.merchant_id.as_str())
            .set(60, "00000001003")
            .set(63, "001");
        let reply = d
            .unpack(&ascii_exchange(&mut stream, &mut dec, &d.pack(&m).expect("pack")).await)
            .expect("0810");
        assert_eq!(reply.get_str(39), Some("00"), "{store}");
        let tmk = cardsec::Key::from_hex(&t.tmk_hex).expect("tmk");
        let block = hex::decode(reply.get_str(62).expect("keys")).expect("hex key block");
        let keys = TerminalKeys::unwrap(&tmk, KeyLayout::Double, &block).expect("unwrap");
        let batch = &reply.get_str(60).expect("60")[2..8];

        let c = w.card(CardFate::Good, 7).clone();
        let before = w.account(&c).balance_minor;
        let pan = Pan::new(&c.pan).expect("pan");
        let block = PinBlock::format0(&Pin::new(&c.pin).expect("pin"), &pan).encrypt(&keys.pik);
        let mut sale = Message::new(Mti::lit("0200"));
        sale.set(2, c.pan.as_str())
            .set(3, "000000")
            .set(4, "000000008800")
            .set(11, "000002")
            .set(14, c.expiry.as_str());
        sale.set(22, "051")
            .set(25, "00")
            .set(41, t.terminal_id.as_str())
            .set(42, t.merchant_id.as_str())
            .set(49, "156")
            .set(59, t.location.as_str());
        sale.set(52, block.0)
            .set(60, format!("22{batch}000"))
            .set(64, [0u8; 8]);
        let mut bytes = d.pack(&sale).expect("pack");
        let n = bytes.len();
        let mac = MacAlgorithm::X9_19.compute(&keys.mak, &bytes[..n - 16]);
        bytes[n - 16..].copy_from_slice(hex::encode_upper(mac).as_bytes());
        let raw = ascii_exchange(&mut stream, &mut dec, &bytes).await;
        let reply = d.unpack(&raw).expect("0210");
        assert_eq!(reply.get_str(39), Some("00"), "{store}");
        let want = MacAlgorithm::X9_19.compute(&keys.mak, &raw[..raw.len() - 16]);
        assert_eq!(
            reply.get(64),
            Some(&want[..]),
            "reply MAC verifies ({store})"
        );
        assert_eq!(w.account(&c).balance_minor, before - 8_800);

        // A malformed message whose MTI parses is answered 30; garbage closes the connection.
        let reply = d
            .unpack(&ascii_exchange(&mut stream, &mut dec, b"0200ZZZZ").await)
            .expect("reply");
        assert_eq!(
            (reply.mti().as_str(), reply.get_str(39)),
            ("0210", Some("30"))
        );
        stream
            .write_all(&[0, 4, b'?', b'?', b'?', b'?'])
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "connection closed after garbage");
        // And the node is still serving.
        w.pos(3).await;
        w.finish(&store).await;
    }
}

/// The operators' API on a loopback port over `store`, with one operator of `role`
/// signed in: its address, its bearer token, and what stops it.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiServer {
    pub async fn start(store: &str, name: &str, role: services::accounts::Role) -> ApiServer {
        const PASSWORD: &str = "a long enough password";
        let (s, n) = (store.to_owned(), name.to_owned());
        let db = tokio::task::spawn_blocking(move || {
            let mut db = posguard::node::open_store(&s).expect("open");
            services::accounts::add_operator(
                db.as_mut(),
                &n,
                role,
                PASSWORD,
                &[],
                &services::accounts::Actor::cli("test", 1),
                "2026-12-01T00:00:00+00:00",
            )
            .expect("operator");
            db
        })
        .await
        .expect("join");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(
            listener,
            api::Api::new(db, posguard::api_cli::system_clock()),
            async {
                let _ = stopped.await;
            },
        ));
        let n = name.to_owned();
        let token = tokio::task::spawn_blocking(move || {
            let login: serde_json::Value = ureq::post(&format!("http://{addr}/api/v1/session"))
                .send_json(serde_json::json!({"name": n, "password": PASSWORD}))
                .expect("login")
                .into_json()
                .expect("json");
            login["token"].as_str().expect("token").to_owned()
        })
        .await
        .expect("join");
        ApiServer {
            addr,
            token,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
