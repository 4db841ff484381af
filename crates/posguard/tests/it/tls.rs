//! Data in transit over loopback, with a test CA made at test time: a terminal reaches
//! the acquirer over TLS while the acquirer reaches the issuer simulator over mutual
//! TLS, and the money moves as over TCP; the terminal fleet does the same, and says
//! why when it does not trust the acquirer; the TLS flags stop the commands, naming
//! the file, when a file is missing or unusable.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway::{GatewayStats, TerminalDialect, TerminalListener};
use iso8583::frame::FrameDecoder;
use issuer::{Bank, IssuerConfig};
use posguard::demo_data::{demo_data, CardFate, DemoCard, DemoData, DemoTerminal};
use posguard::node::run_node;
use posguard::run_cli::{fleet_config, node_options, open_demo_accounts, seed_store, shanghai_now};
use terminal::{Mix, Outcome, Request, Terminal, TerminalConfig, TxKind};
use tls::test_pki::TestPki;
use tls::{ClientStream, ClientTls, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::scenarios::{card, cleanup, code};

/// Longest wait for anything that should be prompt (a connect, a reply, a link).
const PROMPT: Duration = Duration::from_secs(30);

/// Awaits `f`, failing the test if it takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}

/// The issuer simulator with TLS on its link, requiring the acquirer's certificate,
/// and an acquirer node whose one terminal listener takes TLS only.
struct TlsWorld {
    pki: TestPki,
    issuer: issuer::Issuer,
    acquirer: SocketAddr,
    stats: Arc<GatewayStats>,
    data: DemoData,
    store: String,
    stop: Option<oneshot::Sender<()>>,
    node: Option<JoinHandle<Result<(), posguard::node::NodeError>>>,
}

impl TlsWorld {
    async fn start(name: &str) -> TlsWorld {
        let tmp = |what: &str| {
            std::env::temp_dir().join(format!("posguard-{what}-{name}-{}", std::process::id()))
        };
        let pki = TestPki::generate(&tmp("pki"));
        let store = tmp("tls-store").display().to_string();
        cleanup(&store);
        let data = demo_data(42, 4, 30);
        let config = IssuerConfig {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Some(pki.server_files(true)),
            ..IssuerConfig::default()
        };
        let mut bank = Bank::from_clear_keys(&config.keys).expect("issuer keys");
        open_demo_accounts(&mut bank, &data, shanghai_now()).expect("accounts");
        let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
            .await
            .expect("issuer");
        let mut opts = node_options(store.clone(), issuer.iso_addr(), 5_000);
        opts.gateway.issuer_connections = 2;
        opts.gateway.issuer_tls =
            Some(ClientTls::from_files(&pki.client_files("localhost", true)).expect("link TLS"));
        let (o, d) = (opts.clone(), data.clone());
        let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
            .await
            .expect("join")
            .expect("seed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let acquirer = listener.local_addr().expect("addr");
        let tls = ServerTls::from_files(&pki.server_files(false)).expect("listener TLS");
        let stats = Arc::new(GatewayStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let node = tokio::spawn(run_node(
            opts,
            [TerminalListener::tls(
                listener,
                TerminalDialect::CupPos,
                tls,
            )],
            stats.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        // Both link connections up: TCP connected and the mutual handshake done. The
        // gateway publishes the count; nothing signals it, so it is polled.
        within(PROMPT, "issuer links up over TLS", async {
            while stats.issuer_links_up.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        TlsWorld {
            pki,
            issuer,
            acquirer,
            stats,
            data,
            store,
            stop: Some(stop),
            node: Some(node),
        }
    }

    /// A terminal's TLS: trusts the test CA, expects `localhost`.
    fn terminal_tls(&self) -> ClientTls {
        ClientTls::from_files(&self.pki.client_files("localhost", false)).expect("terminal TLS")
    }

    fn card(&self, fate: CardFate, nth: usize) -> DemoCard {
        self.data
            .cards
            .iter()
            .filter(|c| c.fate == fate)
            .nth(nth)
            .expect("card of that fate")
            .clone()
    }

    /// The issuer's balance of `card`'s account.
    fn balance(&self, card: &DemoCard) -> i64 {
        let masked = domain::mask_pan(card.pan.as_bytes());
        let bank = self.issuer.bank();
        let b = bank.lock().expect("bank");
        b.accounts()
            .into_iter()
            .find(|a| a.masked_pan == masked)
            .expect("account")
            .balance_minor
    }

    /// Every cardholder's money at the issuer.
    fn total_balance(&self) -> i64 {
        let bank = self.issuer.bank();
        let b = bank.lock().expect("bank");
        b.accounts().iter().map(|a| a.balance_minor).sum()
    }

    fn sms_count(&self) -> usize {
        let bank = self.issuer.bank();
        let b = bank.lock().expect("bank");
        b.sms().len()
    }

    fn count(&self, counter: fn(&GatewayStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.stats).load(Ordering::Relaxed)
    }

    /// Checks the issuer's book, stops everything and removes the store and the PKI.
    async fn finish(mut self) {
        let verified = self.issuer.bank().lock().expect("bank").book().verify();
        assert_eq!(verified, Ok(()), "the issuer's book balances");
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(node) = self.node.take() {
            within(PROMPT, "node stops", node)
                .await
                .expect("join")
                .expect("node");
        }
        within(PROMPT, "issuer stops", self.issuer.stop()).await;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || cleanup(&store))
            .await
            .expect("cleanup");
        self.pki.remove();
    }
}

/// A terminal of the demo data on a TLS connection.
struct TlsPos {
    term: Terminal,
    stream: ClientStream<TcpStream>,
    dec: FrameDecoder,
}

impl TlsPos {
    /// Connects over TLS and signs on (asserting `00`).
    async fn signed_on(addr: SocketAddr, tls: &ClientTls, t: &DemoTerminal) -> TlsPos {
        let tcp = within(PROMPT, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let stream = within(PROMPT, "TLS handshake", tls.connect(tcp))
            .await
            .expect("TLS handshake");
        let key = cardsec::Key::from_hex(&t.tmk_hex).expect("tmk");
        let mut cfg = TerminalConfig::new(
            t.terminal_id.parse().expect("tid"),
            t.merchant_id.parse().expect("mid"),
            key,
        );
        cfg.key_layout = t.key_layout;
        cfg.location = Some(t.location.clone());
        let mut pos = TlsPos {
            term: Terminal::new(cfg),
            stream,
            dec: FrameDecoder::new(8192),
        };
        let sign_on = pos.term.sign_on().expect("sign-on");
        assert_eq!(code(&pos.send(sign_on).await), "00");
        pos
    }

    async fn send(&mut self, req: Request) -> Outcome {
        within(PROMPT, "write", self.stream.write_all(&req.frame))
            .await
            .expect("write");
        let mut buf = [0u8; 4096];
        let reply = within(PROMPT, "reply", async {
            loop {
                if let Some(f) = self.dec.next_frame().expect("frame") {
                    return f.to_vec();
                }
                let n = self.stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "acquirer closed the connection");
                self.dec.feed(&buf[..n]);
            }
        })
        .await;
        self.term.on_reply(&reply).expect("valid reply")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_over_tls_to_an_acquirer_on_mutual_tls_to_the_issuer_debits_the_cardholder() {
    let w = TlsWorld::start("sale").await;
    let mut pos = TlsPos::signed_on(w.acquirer, &w.terminal_tls(), &w.data.terminals[0]).await;
    let c = w.card(CardFate::Good, 0);
    let before = w.balance(&c);
    let sale = {
        let r = pos.term.sale(&card(&c), 12_345).expect("sale");
        pos.send(r).await
    };
    assert_eq!(code(&sale), "00");
    assert_eq!(
        w.balance(&c),
        before - 12_345,
        "the issuer debited the cardholder"
    );
    assert_eq!(w.sms_count(), 1, "and told them");
    // A void over the same connection gives the money back.
    let entry = sale.entry.clone().expect("batch entry");
    let void = {
        let r = pos.term.void(&card(&c), &entry).expect("void");
        pos.send(r).await
    };
    assert_eq!(code(&void), "00");
    assert_eq!(w.balance(&c), before);
    assert_eq!(w.count(|s| &s.tls_handshake_failures), 0);
    assert_eq!(w.count(|s| &s.issuer_unavailable), 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_sells_over_tls_and_a_fleet_that_does_not_trust_the_acquirer_says_why() {
    let w = TlsWorld::start("fleet").await;
    let before = w.total_balance();
    let fleet = |tls: ClientTls, transactions: u64| {
        let mut cfg = fleet_config(&w.data, w.acquirer, 0.0, Duration::from_secs(20), 5);
        cfg.mix = Mix::sales_only();
        cfg.max_transactions = Some(transactions);
        cfg.tls = Some(tls);
        cfg
    };
    let report = within(
        PROMPT * 2,
        "fleet run",
        terminal::run_fleet(fleet(w.terminal_tls(), 12)),
    )
    .await;
    assert_eq!(report.total(TxKind::Sale), 12, "{report}");
    assert_eq!(report.sign_ons, 4, "{report}");
    assert_eq!(report.timeouts, 0, "{report}");
    assert_eq!(
        report.count(TxKind::Sale, terminal::report::NO_CONNECTION),
        0,
        "{report}"
    );
    let approved: i64 = report.approved_entries().map(|(_, e)| e.amount_minor).sum();
    assert!(report.count(TxKind::Sale, "00") > 0, "{report}");
    assert_eq!(
        before - w.total_balance(),
        approved,
        "the issuer debited exactly the approved sales\n{report}"
    );

    // Terminals trusting another CA refuse the acquirer's certificate: none signs on,
    // and each says why.
    let mut files = w.pki.client_files("localhost", false);
    files.ca = w.pki.other_ca.clone();
    let untrusting = ClientTls::from_files(&files).expect("terminal TLS");
    let report = within(
        PROMPT * 2,
        "untrusting fleet run",
        terminal::run_fleet(fleet(untrusting, 4)),
    )
    .await;
    assert_eq!((report.transactions, report.sign_ons), (0, 0), "{report}");
    for t in &report.terminals {
        let error = t.error.as_deref().unwrap_or("");
        assert!(
            error.starts_with("sign-on failed: cannot connect: TLS handshake:")
                && error.contains("UnknownIssuer"),
            "{error:?}"
        );
    }
    // The gateway saw their handshakes fail (the first of many, long before the end).
    assert!(w.count(|s| &s.tls_handshake_failures) > 0);
    assert_eq!(before - w.total_balance(), approved, "no money moved");
    w.finish().await;
}

#[test]
fn tls_flags_with_a_missing_or_unusable_file_stop_the_command_naming_it() {
    let dir = std::env::temp_dir().join(format!("posguard-pki-cli-{}", std::process::id()));
    let pki = TestPki::generate(&dir);
    let missing = dir.join("missing.pem");
    let missing = missing.display().to_string();
    let path = |p: &std::path::Path| p.display().to_string();
    let data = dir.join("data").display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "acquirer".into(),
                "--demo-data".into(),
                "--data".into(),
                data.clone(),
                "--tls-cert".into(),
                missing.clone(),
                "--tls-key".into(),
                path(&pki.server_key),
            ],
            format!("read TLS certificate chain {missing}"),
        ),
        (
            vec![
                "acquirer".into(),
                "--demo-data".into(),
                "--data".into(),
                data.clone(),
                "--issuer-tls-ca".into(),
                path(&pki.server_key),
            ],
            format!(
                "TLS CA {}: no CERTIFICATE in the file",
                path(&pki.server_key)
            ),
        ),
        (
            // The client's key with the server's certificate.
            vec![
                "issuer-sim".into(),
                "--tls-cert".into(),
                path(&pki.server_cert),
                "--tls-key".into(),
                path(&pki.client_key),
            ],
            format!(
                "TLS private key (for its certificate chain) {}",
                path(&pki.client_key)
            ),
        ),
        (
            vec!["terminals".into(), "--tls-ca".into(), missing.clone()],
            format!("read TLS CA {missing}"),
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, _, stderr) = crate::run(&args, b"");
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&want),
            "{args:?}: {stderr:?} should say {want:?}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.join("data").exists(), "nothing started");
    pki.remove();
}
