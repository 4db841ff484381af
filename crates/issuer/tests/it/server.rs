//! The link over real sockets: framing, pipelining, malformed input, transport faults,
//! TLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardsec::{mac_equal, x9_19_mac, Key};
use iso8583::frame::{encode_frame, FrameDecoder};
use iso8583::{Dialect, Message, Mti};
use issuer::server::{serve, ServerConfig};
use issuer::{linkmac, AccountId, Bank, Faults};
use tls::test_pki::TestPki;
use tls::{ClientStream, ClientTls, ServerTls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{now, Req, World};

/// Bound on every wait, so a broken server fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);

struct Link {
    addr: SocketAddr,
    bank: Arc<Mutex<Bank>>,
    zak: Key,
    zpk: Key,
    account: AccountId,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Link {
    async fn start(faults: Faults) -> Link {
        Link::start_config(ServerConfig {
            faults,
            ..ServerConfig::default()
        })
        .await
    }

    async fn start_config(config: ServerConfig) -> Link {
        let mut w = World::new();
        let account = w.open_default();
        let World { bank, zak, zpk } = w;
        let bank = Arc::new(Mutex::new(bank));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ServerConfig {
            seed: 1,
            clock: Arc::new(now),
            ..config
        };
        let task = tokio::spawn(serve(listener, bank.clone(), config, async {
            let _ = stopped.await;
        }));
        Link {
            addr,
            bank,
            zak,
            zpk,
            account,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> Client {
        Client {
            stream: TcpStream::connect(self.addr).await.expect("connect"),
            decoder: FrameDecoder::new(8192),
        }
    }

    /// A TLS client; in TLS 1.3 its side of the handshake completes before the server
    /// has checked its certificate.
    async fn tls_client(&self, tls: &ClientTls) -> Client<ClientStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        Client {
            stream: timeout(BOUND, tls.connect(tcp))
                .await
                .expect("bounded handshake")
                .expect("client side of the handshake"),
            decoder: FrameDecoder::new(8192),
        }
    }

    fn signed(&self, r: &Req) -> Vec<u8> {
        let mut m = r.message(&self.zpk);
        linkmac::sign(&mut m, |d| Ok(x9_19_mac(&self.zak, d))).expect("sign")
    }

    fn mac_valid(&self, m: &Message) -> bool {
        linkmac::verify(m, None, |d, mac| mac_equal(&x9_19_mac(&self.zak, d), mac))
    }

    fn balance(&self) -> i64 {
        let bank = self.bank.lock().expect("bank");
        bank.account(self.account).expect("account").balance_minor
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        timeout(BOUND, self.task)
            .await
            .expect("server stops")
            .expect("no panic");
    }
}

struct Client<S = TcpStream> {
    stream: S,
    decoder: FrameDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send_raw(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        encode_frame(payload, 8192, &mut out).expect("frame");
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next reply, or `None` when the server closed the connection.
    async fn recv(&mut self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.decoder.next_frame().expect("frame") {
                return Some(Dialect::iso87_ascii().unpack(f).expect("reply unpacks"));
            }
            let n = timeout(BOUND, self.stream.read(&mut buf))
                .await
                .expect("bounded wait");
            match n {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
            }
        }
    }
}

fn sign_on() -> Vec<u8> {
    let mut m = Message::new(Mti::lit("0800"));
    m.set(7, "0321140509").set(11, "000777").set(70, "001");
    Dialect::iso87_ascii().pack(&m).expect("pack")
}

#[tokio::test]
async fn sign_on_and_pipelined_sales() {
    let link = Link::start(Faults::default()).await;
    let mut c = link.client().await;
    c.send_raw(&sign_on()).await;
    let r = c.recv().await.expect("0810");
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0810", Some("00")));

    // Three sales in one write; replies are matched by field 11.
    let mut wire = Vec::new();
    for i in 1..=3 {
        encode_frame(&link.signed(&Req::sale(i, 1_000)), 8192, &mut wire).expect("frame");
    }
    c.stream.write_all(&wire).await.expect("write");
    let mut stans = Vec::new();
    for _ in 0..3 {
        let r = c.recv().await.expect("0210");
        assert_eq!(r.get_str(39), Some("00"));
        assert!(link.mac_valid(&r));
        stans.push(r.get_str(11).unwrap_or("").to_owned());
    }
    stans.sort();
    assert_eq!(stans, ["000001", "000002", "000003"]);
    // A second connection may carry a duplicate: answered, not debited again.
    let mut c2 = link.client().await;
    c2.send_raw(&link.signed(&Req::sale(2, 1_000))).await;
    assert_eq!(c2.recv().await.expect("reply").get_str(39), Some("00"));
    assert_eq!(link.balance(), 97_000);
    link.stop().await;
}

#[tokio::test]
async fn malformed_frames() {
    let link = Link::start(Faults::default()).await;
    let mut c = link.client().await;
    c.send_raw(b"0200not a bitmap at all").await;
    let r = c.recv().await.expect("a bare 30");
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0210", Some("30")));
    // The connection is still usable.
    c.send_raw(&sign_on()).await;
    assert_eq!(c.recv().await.expect("0810").get_str(39), Some("00"));
    // Not even an MTI: closed.
    c.send_raw(b"\x00\x01garbage").await;
    assert!(c.recv().await.is_none());
    // A length prefix above the maximum: closed before the frame is read.
    let mut c = link.client().await;
    c.stream
        .write_all(&[0xFF, 0xFF, b'0'])
        .await
        .expect("write");
    assert!(c.recv().await.is_none());
    // The server still serves others.
    let mut c = link.client().await;
    c.send_raw(&sign_on()).await;
    assert!(c.recv().await.is_some());
    link.stop().await;
}

#[tokio::test]
async fn duplicate_replies_fault() {
    let link = Link::start(Faults {
        duplicate_permille: 1000,
        ..Faults::default()
    })
    .await;
    let mut c = link.client().await;
    c.send_raw(&link.signed(&Req::sale(1, 1_000))).await;
    let a = c.recv().await.expect("first");
    let b = c.recv().await.expect("second");
    assert_eq!(a, b);
    assert_eq!(link.balance(), 99_000, "one debit");
    link.stop().await;
}

#[tokio::test]
async fn dropped_reply_after_debit_fault() {
    let link = Link::start(Faults {
        drop_after_debit_permille: 1000,
        ..Faults::default()
    })
    .await;
    let mut c = link.client().await;
    c.send_raw(&link.signed(&Req::sale(1, 1_000))).await;
    c.send_raw(&sign_on()).await;
    // Replies on one connection without delay keep their order: the sale's is gone.
    let r = c.recv().await.expect("0810");
    assert_eq!(r.mti().as_str(), "0810");
    assert_eq!(link.balance(), 99_000, "debited although no reply was sent");
    link.stop().await;
}

#[tokio::test]
async fn refused_connections_fault() {
    let link = Link::start(Faults {
        refuse_connections: true,
        ..Faults::default()
    })
    .await;
    let mut c = link.client().await;
    c.send_raw(&sign_on()).await;
    assert!(c.recv().await.is_none());
    link.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_bound_are_closed() {
    let link = Link::start_config(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut first = link.client().await;
    first.send_raw(&sign_on()).await;
    assert!(first.recv().await.is_some(), "the first is served");
    let mut second = link.client().await;
    second.send_raw(&sign_on()).await;
    assert!(second.recv().await.is_none(), "the second is closed");
    first.send_raw(&sign_on()).await;
    assert!(first.recv().await.is_some(), "the first still is");
    link.stop().await;
}

#[tokio::test]
async fn tls_link_serves_an_acquirer_with_its_certificate_only() {
    let dir = std::env::temp_dir().join(format!("posguard-issuer-pki-{}", std::process::id()));
    let pki = TestPki::generate(&dir);
    let link = Link::start_config(ServerConfig {
        tls: Some(ServerTls::from_files(&pki.server_files(true)).expect("server TLS")),
        ..ServerConfig::default()
    })
    .await;
    let tls = |identity| {
        ClientTls::from_files(&pki.client_files("localhost", identity)).expect("client TLS")
    };
    let mut c = link.tls_client(&tls(true)).await;
    c.send_raw(&sign_on()).await;
    let r = c.recv().await.expect("0810");
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0810", Some("00")));
    c.send_raw(&link.signed(&Req::sale(1, 2_500))).await;
    let r = c.recv().await.expect("0210");
    assert_eq!(r.get_str(39), Some("00"));
    assert!(link.mac_valid(&r));
    assert_eq!(link.balance(), 97_500);
    // Without a client certificate the connection ends before any request is read.
    let mut anonymous = link.tls_client(&tls(false)).await;
    anonymous.send_raw(&link.signed(&Req::sale(2, 2_500))).await;
    assert!(anonymous.recv().await.is_none(), "refused");
    // Nor does a plain TCP client get anywhere.
    let mut plain = link.client().await;
    plain.send_raw(&link.signed(&Req::sale(3, 2_500))).await;
    let mut rest = Vec::new();
    let _ = timeout(BOUND, plain.stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    // Nothing but, perhaps, a TLS alert record (content type 21).
    assert!(rest.is_empty() || rest[0] == 21, "no reply frame: {rest:?}");
    assert_eq!(link.balance(), 97_500, "only the first sale debited");
    link.stop().await;
    pki.remove();
}
