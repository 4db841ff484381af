//! A gateway on loopback with a small configuration, and the terminal's end of a
//! connection to it, over TCP or TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cardsec::{Key, KeyKind, Lmk, SecurityModule, SoftwareSecurityModule};
use gateway::TerminalListener;
use gateway::{Core, GatewayConfig, GatewayStats, SystemClock, TerminalDialect};
use iso8583::frame::{encode_frame, FrameDecoder};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use store::{Journal, JournalConfig};
use switch::{Engine, JournalState, ZoneKeys};
use tls::{ClientStream, ClientTls, ServerTls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const LMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK: &str = "E0F4543F3E2A2C5FFC7E5E5A222E3E4D";
const ZAK: &str = "89B07B35A1B3F47E89B07B35A1B3F47E";

/// Slack allowed on a busy machine above any deadline a test expects the gateway to
/// keep. Tests bound from above only.
pub const MARGIN: Duration = Duration::from_secs(3);

/// Longest wait for anything that should be immediate (a connect, a reply).
pub const PROMPT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}

/// The test configuration: short frame timeout, long idle timeout (tests that want
/// the idle rule shorten it).
pub fn config() -> GatewayConfig {
    GatewayConfig {
        frame_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(30),
        ..GatewayConfig::default()
    }
}

/// A running gateway with a `cup-pos` and an `iso87-ascii` listener (the `cup-pos` one
/// with TLS when started so).
pub struct Gateway {
    pub cup: SocketAddr,
    pub ascii: SocketAddr,
    pub stats: Arc<GatewayStats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl Gateway {
    /// Starts a gateway on `cfg` (its issuer address is replaced by a port nothing
    /// listens on) over a fresh store named after the test.
    pub async fn start(name: &str, cfg: GatewayConfig) -> Gateway {
        Gateway::start_with(name, cfg, core, None).await
    }

    /// As [`Gateway::start`], with the core `make` builds over the store directory.
    pub async fn start_core(
        name: &str,
        cfg: GatewayConfig,
        make: impl FnOnce(&std::path::Path) -> Core + Send + 'static,
    ) -> Gateway {
        Gateway::start_with(name, cfg, make, None).await
    }

    /// As [`Gateway::start`], with TLS on the `cup-pos` listener; the `iso87-ascii` one
    /// stays plain.
    pub async fn start_tls(name: &str, cfg: GatewayConfig, tls: ServerTls) -> Gateway {
        Gateway::start_with(name, cfg, core, Some(tls)).await
    }

    async fn start_with(
        name: &str,
        cfg: GatewayConfig,
        make: impl FnOnce(&std::path::Path) -> Core + Send + 'static,
        cup_tls: Option<ServerTls>,
    ) -> Gateway {
        let dir =
            std::env::temp_dir().join(format!("posguard-gateway-{name}-{}", std::process::id()));
        let d = dir.clone();
        let core = within(PROMPT, "open the store", async {
            tokio::task::spawn_blocking(move || make(&d))
                .await
                .expect("join")
        })
        .await;
        let cup_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ascii_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (cup, ascii) = (
            cup_listener.local_addr().expect("addr"),
            ascii_listener.local_addr().expect("addr"),
        );
        let cfg = GatewayConfig {
            issuer: nowhere(),
            issuer_connections: 1,
            drain_timeout: Duration::from_secs(1),
            ..cfg
        };
        let stats = Arc::new(GatewayStats::default());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::run(
            cfg,
            core,
            [
                TerminalListener {
                    tls: cup_tls,
                    ..TerminalListener::plain(cup_listener, TerminalDialect::CupPos)
                },
                TerminalListener::plain(ascii_listener, TerminalDialect::Iso87Ascii),
            ],
            Arc::new(SystemClock),
            stats.clone(),
            async {
                let _ = rx.await;
            },
        ));
        Gateway {
            cup,
            ascii,
            stats,
            stop: Some(tx),
            task: Some(task),
            dir,
        }
    }

    /// The listener of `dialect`.
    pub fn addr(&self, dialect: TerminalDialect) -> SocketAddr {
        match dialect {
            TerminalDialect::CupPos => self.cup,
            TerminalDialect::Iso87Ascii => self.ascii,
        }
    }

    /// A counter of the gateway's stats.
    pub fn count(&self, counter: fn(&GatewayStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.stats).load(Ordering::Relaxed)
    }

    /// Stops the gateway and removes its store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within(PROMPT, "gateway shutdown", task)
                .await
                .expect("gateway task");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An engine that knows no merchant or terminal, and a journal on SQLite under `dir`.
fn core(dir: &std::path::Path) -> Core {
    let _ = std::fs::remove_dir_all(dir);
    let engine = engine(test_hsm(), Vec::new(), Vec::new());
    let backend = store::open(&dir.display().to_string()).expect("open store");
    Core {
        engine,
        journal: Journal::start(backend, JournalConfig::default()),
        pending_saf: Vec::new(),
        sweeper: None,
        reload: None,
        keys: None,
        rules: None,
        status: None,
    }
}

/// The test security module (fixed LMK, seeded key generator).
pub fn test_hsm() -> Arc<SoftwareSecurityModule> {
    Arc::new(SoftwareSecurityModule::new(
        Lmk::from_hex(LMK).expect("lmk"),
        Box::new(ChaCha8Rng::seed_from_u64(7)),
    ))
}

/// An engine over `hsm` (its zone keys imported into it) knowing these merchants and
/// terminals.
pub fn engine(
    hsm: Arc<dyn SecurityModule>,
    merchants: Vec<store::MerchantRow>,
    terminals: Vec<store::TerminalRow>,
) -> Engine {
    let import = |kind, hex: &str| {
        hsm.import_key(kind, 1, &Key::from_hex(hex).expect("key"))
            .expect("import key")
    };
    let zone = ZoneKeys {
        zpk: import(KeyKind::Zpk, ZPK),
        zak: import(KeyKind::Zak, ZAK),
    };
    Engine::new(
        switch::Config::default(),
        hsm,
        zone,
        merchants,
        terminals,
        JournalState::default(),
    )
}

/// A loopback port nothing listens on, bound for the life of the process so no other
/// test's listener can take it (connecting to it is refused).
fn nowhere() -> SocketAddr {
    static HELD: std::sync::OnceLock<(
        SocketAddr,
        std::sync::Mutex<Option<tokio::net::TcpSocket>>,
    )> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        (
            s.local_addr().expect("addr"),
            std::sync::Mutex::new(Some(s)),
        )
    })
    .0
}

/// A request the engine answers at once without the issuer, length prefix included:
/// an 0800 with nothing after its MTI, which it answers 0810 with 30 (format error).
pub fn request(dialect: TerminalDialect) -> Vec<u8> {
    let body: Vec<u8> = match dialect {
        TerminalDialect::CupPos => {
            // TPDU, application header, then the MTI in BCD.
            let mut b = vec![0x60, 0x00, 0x01, 0x00, 0x00];
            b.extend_from_slice(&[0x60, 0x31, 0x00, 0x31, 0x00, 0x00]);
            b.extend_from_slice(&[0x08, 0x00]);
            b
        }
        TerminalDialect::Iso87Ascii => b"0800".to_vec(),
    };
    let mut out = Vec::new();
    encode_frame(&body, 8192, &mut out).expect("frame");
    out
}

/// The terminal's end of a connection, over TCP or TLS.
pub struct Term<S = TcpStream> {
    stream: S,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

/// How a connection ended, seen from the terminal.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The server closed it (end of stream or reset).
    Closed,
    /// It is still open at the end of the wait.
    Open,
}

impl Term {
    /// Connects to `addr` (the handshake only: the gateway may still refuse it).
    pub async fn connect(addr: SocketAddr) -> Term {
        let stream = within(PROMPT, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Term::over(stream)
    }
}

impl Term<ClientStream<TcpStream>> {
    /// Connects to `addr` and completes the client's side of the TLS handshake, or
    /// says why it failed. In TLS 1.3 the client finishes first: a server refusing the
    /// client's certificate says so on the first read.
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: &ClientTls,
    ) -> std::io::Result<Term<ClientStream<TcpStream>>> {
        let tcp = Term::connect(addr).await.stream;
        let stream = within(PROMPT, "TLS handshake", tls.connect(tcp)).await?;
        Ok(Term::over(stream))
    }

    /// Reads until the TLS stream fails, as it does when the server refuses the
    /// handshake after the client finished its side; the error says why (the alert).
    pub async fn failure(&mut self) -> std::io::Error {
        let read = within(
            PROMPT,
            "the TLS stream fails",
            self.stream.read(&mut self.buf),
        )
        .await;
        match read {
            Ok(0) => panic!("the connection ended without a TLS error"),
            Ok(n) => panic!("unexpected {n} bytes from the gateway"),
            Err(e) => e,
        }
    }

    /// Waits up to `wait` for the server to end the connection, TLS alerts and all:
    /// reads the TLS stream until it fails or ends, then the socket below it until the
    /// server closes it.
    pub async fn refused_within(self, wait: Duration) {
        let (mut tcp, _) = self.stream.into_inner();
        let mut buf = [0u8; 1024];
        within(wait, "server closes the connection", async {
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Term<S> {
    fn over(stream: S) -> Term<S> {
        Term {
            stream,
            dec: FrameDecoder::new(8192),
            buf: vec![0u8; 8192],
        }
    }

    /// Reads whatever the server sends (a TLS alert, say) until it closes the
    /// connection; fails the test if that takes longer than `wait`.
    pub async fn closed_within(&mut self, wait: Duration) {
        within(wait, "server closes the connection", async {
            while let Ok(n) = self.stream.read(&mut self.buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Writes `bytes`; false if the connection is gone.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        within(PROMPT, "write", self.stream.write_all(bytes))
            .await
            .is_ok()
    }

    /// Sends `request` and waits for the reply frame.
    pub async fn round_trip(&mut self, request: &[u8]) -> Vec<u8> {
        assert!(self.send(request).await, "request written");
        self.read_reply().await
    }

    /// Waits for the next frame from the gateway.
    pub async fn read_reply(&mut self) -> Vec<u8> {
        within(PROMPT, "reply", async {
            loop {
                if let Some(f) = self.dec.next_frame().expect("reply frame") {
                    return f.to_vec();
                }
                let n = self.stream.read(&mut self.buf).await.expect("read reply");
                assert!(n > 0, "connection closed before the reply");
                self.dec.feed(&self.buf[..n]);
            }
        })
        .await
    }

    /// Waits up to `wait` for the server to close the connection; bytes from the
    /// server fail the test.
    pub async fn watch(&mut self, wait: Duration) -> Seen {
        let read = tokio::time::timeout(wait, self.stream.read(&mut self.buf)).await;
        match read {
            Err(_) => Seen::Open,
            Ok(Ok(0) | Err(_)) => Seen::Closed,
            Ok(Ok(n)) => panic!("unexpected {n} bytes from the gateway"),
        }
    }

    /// Sends `bytes` one at a time, `every` apart, until the server closes the
    /// connection; fails the test if that takes longer than `limit`. Returns how long
    /// the connection lasted from the first byte.
    pub async fn trickle(
        &mut self,
        mut bytes: impl Iterator<Item = u8>,
        every: Duration,
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let Some(b) = bytes.next() else {
                panic!("trickle ran out of bytes before the gateway closed the connection")
            };
            if !self.send(&[b]).await || self.watch(every).await == Seen::Closed {
                return start.elapsed();
            }
            assert!(
                start.elapsed() <= limit,
                "the gateway kept a trickling connection open for {:?} (limit {limit:?})",
                start.elapsed()
            );
        }
    }

    /// Half-closes the connection (the terminal is done) and waits for the gateway to
    /// close its side.
    pub async fn finish(mut self) {
        within(PROMPT, "shutdown", self.stream.shutdown())
            .await
            .expect("shutdown");
        assert_eq!(
            self.watch(PROMPT).await,
            Seen::Closed,
            "gateway closes after the terminal"
        );
    }
}
