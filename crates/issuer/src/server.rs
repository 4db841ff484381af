//! The issuer's TCP server: framed `iso87-ascii` (2-byte length prefix), over TCP or
//! TLS, any number of connections up to a bound, replies sent as soon as each is ready
//! (so in any order), and the transport faults of [`Faults`].
//!
//! A frame whose length prefix exceeds the maximum closes the connection. A frame
//! that does not unpack is logged and answered with a bare `30` when its MTI is a
//! readable request, else the connection is closed. Nothing here panics on input.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDateTime;
use domain::ResponseCode;
use iso8583::frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME};
use iso8583::{Dialect, Message, Mti};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::faults::{Faults, ReplyPlan};
use crate::Bank;

/// Where the server and the HTTP API take the local time from.
pub type Clock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

/// The machine's local clock: the edge where real time enters the simulator.
pub fn local_clock() -> Clock {
    Arc::new(|| chrono::Local::now().naive_local())
}

/// Locks the bank; a panic elsewhere while it was held does not stop the simulator.
pub(crate) fn lock(bank: &Mutex<Bank>) -> MutexGuard<'_, Bank> {
    bank.lock().unwrap_or_else(|p| p.into_inner())
}

/// How the TCP server behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// Transport faults to inject.
    pub faults: Faults,
    /// Seed of the fault generator (each connection derives its own from it).
    pub seed: u64,
    /// Largest frame accepted, bytes after the length prefix.
    pub max_frame: usize,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Delayed replies pending per connection; reading pauses at the bound.
    pub max_in_flight: usize,
    /// The local time given to the bank.
    pub clock: Clock,
    /// TLS on every link connection (certificate and key, and the client CA when the
    /// acquirer must present a certificate); plain TCP when `None`.
    pub tls: Option<tls::ServerTls>,
    /// A TLS handshake must complete within this long of the connection opening.
    pub tls_handshake_timeout: Duration,
    /// Reversal replies dropped so far (`Faults::drop_reversal_replies`), shared by
    /// every connection.
    pub reversal_replies_dropped: Arc<std::sync::atomic::AtomicU32>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            faults: Faults::default(),
            seed: 0,
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_in_flight: 1024,
            clock: local_clock(),
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            reversal_replies_dropped: Arc::default(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("max_frame", &self.max_frame)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("tls", &self.tls)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Serves the link on `listener` until `shutdown` completes, then closes every
/// connection (replies still delayed by faults are not sent).
pub async fn serve(
    listener: TcpListener,
    bank: Arc<Mutex<Bank>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = Arc::new(config);
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut conns = JoinSet::new();
    let mut accepted: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if cfg.faults.refuse_connections {
                        tracing::info!(%peer, "fault: connection refused");
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "connection limit reached: closed");
                        continue;
                    };
                    accepted += 1;
                    let seed = cfg.seed ^ accepted.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    tracing::debug!(%peer, "connection accepted");
                    conns.spawn(connection(stream, peer, bank.clone(), cfg.clone(), seed, stop_rx.clone(), permit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "connection task failed");
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the server is gone: stop as well.
    let _ = stop.wait_for(|&s| s).await;
}

/// One link connection: the TLS handshake first when the server has TLS (within its
/// timeout; a failure is logged and closes the connection), then [`serve`].
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    bank: Arc<Mutex<Bank>>,
    cfg: Arc<ServerConfig>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = cfg.tls.clone() else {
        return served(stream, bank, cfg, seed, stop).await;
    };
    let handshake = tokio::time::timeout(cfg.tls_handshake_timeout, tls.accept(stream));
    let why = tokio::select! {
        r = handshake => match r {
            Ok(Ok(stream)) => return served(stream, bank, cfg, seed, stop).await,
            Ok(Err((e, _))) => e.to_string(),
            Err(_) => format!("not complete within {} ms", cfg.tls_handshake_timeout.as_millis()),
        },
        () = stopped(&mut stop) => return,
    };
    tracing::warn!(%peer, reason = %why, "link TLS handshake failed: connection closed");
}

/// Serves one connection, over TCP or TLS, until it closes or the server stops.
async fn served<S>(
    stream: S,
    bank: Arc<Mutex<Bank>>,
    cfg: Arc<ServerConfig>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(cfg.max_in_flight.max(1));
    let mut writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut delayed = JoinSet::new();
    let stopping = tokio::select! {
        () = read_loop(rd, &bank, &cfg, seed, tx, &mut delayed) => false,
        () = stopped(&mut stop) => true,
    };
    if !stopping {
        // Replies already decided still go out, unless the server stops meanwhile.
        tokio::select! {
            () = async { while delayed.join_next().await.is_some() {} } => {}
            () = stopped(&mut stop) => {}
        }
        tokio::select! {
            _ = &mut writer => {}
            () = stopped(&mut stop) => {}
        }
    }
    delayed.abort_all();
    writer.abort();
}

async fn read_loop<S: AsyncRead>(
    mut rd: ReadHalf<S>,
    bank: &Mutex<Bank>,
    cfg: &ServerConfig,
    seed: u64,
    tx: mpsc::Sender<Vec<u8>>,
    delayed: &mut JoinSet<()>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    let mut decoder = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "read failed: connection closed");
                return;
            }
        };
        decoder.feed(&buf[..n]);
        loop {
            let answer = match decoder.next_frame() {
                Ok(Some(frame)) => answer(bank, cfg, frame),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "bad frame: connection closed");
                    return;
                }
            };
            let (bytes, approved_financial, reversal) = match answer {
                Answer::Reply(bytes, approved, reversal) => (bytes, approved, reversal),
                Answer::Nothing => continue,
                Answer::Close => return,
            };
            if reversal && cfg.faults.drop_reversal_replies > 0 {
                let dropped = cfg
                    .reversal_replies_dropped
                    .fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |n| (n < cfg.faults.drop_reversal_replies).then_some(n + 1),
                    )
                    .is_ok();
                if dropped {
                    tracing::warn!("fault: reversal reply dropped after the reversal");
                    continue;
                }
            }
            let plan = if cfg.faults.any_transport() {
                cfg.faults.plan(&mut rng, approved_financial)
            } else {
                ReplyPlan::default()
            };
            if plan.drop {
                tracing::warn!("fault: reply dropped after its effect");
                continue;
            }
            let copies = if plan.duplicate { 2 } else { 1 };
            if plan.delay_ms == 0 {
                for _ in 0..copies {
                    if tx.send(bytes.clone()).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let tx = tx.clone();
            delayed.spawn(async move {
                tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
                for _ in 0..copies {
                    if tx.send(bytes.clone()).await.is_err() {
                        break;
                    }
                }
                drop(permit);
            });
            // Reap finished delayed replies so the set stays bounded by `in_flight`.
            while delayed.try_join_next().is_some() {}
        }
    }
}

/// What to do with one frame.
enum Answer {
    /// Send these framed bytes; the flags say whether they approve a financial
    /// request, and whether they answer a reversal advice.
    Reply(Vec<u8>, bool, bool),
    /// Send nothing (the frame was not a request).
    Nothing,
    /// Close the connection.
    Close,
}

fn answer(bank: &Mutex<Bank>, cfg: &ServerConfig, frame: &[u8]) -> Answer {
    let reply = match Dialect::iso87_ascii().unpack(frame) {
        Ok(msg) => {
            let now = (cfg.clock)();
            let Some(reply) = lock(bank).handle_received(now, &msg, frame) else {
                tracing::debug!(mti = %msg.mti(), "not a request: ignored");
                return Answer::Nothing;
            };
            reply
        }
        Err(e) => {
            tracing::warn!(error = %e, "malformed message");
            match bare_format_error(frame) {
                Some(m) => m.into(),
                None => return Answer::Close,
            }
        }
    };
    let (mti, rc) = (reply.message.mti(), reply.message.response_code());
    let approved_financial = matches!(mti.class(), 1 | 2) && rc.is_ok_and(|rc| rc.is_approved());
    let reversal = mti.class() == 4;
    let mut out = Vec::new();
    // A signed reply was packed when it was signed: it is not packed again.
    let framed = reply
        .into_wire()
        .map_err(|e| e.to_string())
        .and_then(|p| encode_frame(&p, cfg.max_frame, &mut out).map_err(|e| e.to_string()));
    match framed {
        Ok(()) => Answer::Reply(out, approved_financial, reversal),
        Err(e) => {
            tracing::error!(error = %e, %mti, "reply could not be packed");
            Answer::Nothing
        }
    }
}

/// A reply carrying only `30` to a request that does not unpack but whose MTI is readable.
fn bare_format_error(frame: &[u8]) -> Option<Message> {
    let d = frame.get(..4)?;
    let mti = Mti::from_digits([d[0], d[1], d[2], d[3]])?;
    if !mti.is_request() {
        return None;
    }
    let mut m = Message::new(mti.response());
    m.set_response_code(ResponseCode::FORMAT_ERROR);
    Some(m)
}
