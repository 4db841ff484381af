//! The terminal server: accepts connections within the limits (in all and per
//! address, see `admission`), completes the TLS handshake on a TLS listener within
//! its timeout, splits frames, pauses reading while a connection has too many
//! unanswered requests, and closes a connection whose frame does not arrive whole in
//! time or that sends no request for the idle time. Everything after the handshake is
//! the same code over TCP and over TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iso8583::frame::{FrameDecoder, FrameError};
use switch::{ConnId, TerminalDialect};
use tls::ServerTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admission::{Admission, Admitted, Refusal};
use crate::driver::{Event, GatewayConfig, GatewayStats};

/// What a terminal connection tells the driver.
pub(crate) enum TerminalEvent {
    /// A connection opened on a listener of `dialect`; replies go through `tx`
    /// (length-prefixed frames).
    Connected {
        conn: ConnId,
        dialect: TerminalDialect,
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// A frame arrived (no length prefix).
    Frame { conn: ConnId, frame: Vec<u8> },
    /// The connection closed.
    Closed { conn: ConnId },
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A terminal listener: its socket, the dialect its terminals speak, and its TLS
/// (certificate and key, and the client CA when terminals must present certificates)
/// when it has it. A `(TcpListener, TerminalDialect)` pair is a plain listener.
#[derive(Debug)]
pub struct TerminalListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// What its terminals speak.
    pub dialect: TerminalDialect,
    /// TLS on every connection, or none (plain TCP).
    pub tls: Option<ServerTls>,
}

impl TerminalListener {
    /// A listener taking plain TCP connections.
    pub fn plain(listener: TcpListener, dialect: TerminalDialect) -> TerminalListener {
        TerminalListener {
            listener,
            dialect,
            tls: None,
        }
    }

    /// A listener taking TLS connections only.
    pub fn tls(
        listener: TcpListener,
        dialect: TerminalDialect,
        tls: ServerTls,
    ) -> TerminalListener {
        TerminalListener {
            listener,
            dialect,
            tls: Some(tls),
        }
    }
}

impl From<(TcpListener, TerminalDialect)> for TerminalListener {
    fn from((listener, dialect): (TcpListener, TerminalDialect)) -> TerminalListener {
        TerminalListener::plain(listener, dialect)
    }
}

/// Accepts terminal connections until `stop` turns true. The TLS handshake, if any,
/// happens in each connection's task: a slow one holds up no other.
pub(crate) async fn serve_terminals(
    on: TerminalListener,
    admission: Arc<Admission>,
    events: mpsc::Sender<Event>,
    cfg: GatewayConfig,
    stats: Arc<GatewayStats>,
    mut stop: watch::Receiver<bool>,
) {
    let TerminalListener {
        listener,
        dialect,
        tls,
    } = on;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                refuse(&admission, refusal, peer, &cfg, &stats);
                continue;
            }
        };
        let mut c = Connection {
            conn: ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed)),
            dialect,
            peer,
            events: events.clone(),
            cfg: cfg.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            admission: admission.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let (conn, events) = (c.conn, c.events.clone());
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_connection(c, dialect, stream, admitted).await,
                Some(tls) => match c.handshake(&tls, stream, admitted).await {
                    Some((stream, admitted)) => {
                        serve_connection(c, dialect, stream, admitted).await;
                    }
                    // The driver never heard of the connection.
                    None => return,
                },
            }
            let _ = events
                .send(Event::Terminal(TerminalEvent::Closed { conn }))
                .await;
        });
    }
}

/// Counts a refused connection (dropped, so closed) and logs it, at most one line per
/// reason per second.
fn refuse(
    admission: &Admission,
    refusal: Refusal,
    peer: SocketAddr,
    cfg: &GatewayConfig,
    stats: &GatewayStats,
) {
    let (counter, limit, why) = match refusal {
        Refusal::ConnectionLimit => (
            &stats.refused_connections,
            cfg.max_connections,
            "connection limit reached",
        ),
        Refusal::AddressLimit => (
            &stats.refused_per_ip,
            cfg.max_connections_per_ip,
            "connections from this address at their limit",
        ),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = admission.note_refusal(refusal, Instant::now()) {
        tracing::warn!(
            %peer,
            limit,
            refused_since_last_line = refused,
            "terminal connection refused: {why}"
        );
    }
}

/// One terminal connection: who it is and what it needs to hand requests over.
struct Connection {
    conn: ConnId,
    dialect: TerminalDialect,
    peer: SocketAddr,
    events: mpsc::Sender<Event>,
    cfg: GatewayConfig,
    stats: Arc<GatewayStats>,
    stop: watch::Receiver<bool>,
    admission: Arc<Admission>,
}

/// Why a TLS handshake did not complete.
#[derive(Debug)]
enum HandshakeFailed {
    /// Not complete within `tls_handshake_timeout`.
    TimedOut,
    /// It failed: not TLS, a certificate refused, the peer gone.
    Error(std::io::Error),
    /// The gateway is shutting down.
    Stopped,
}

/// Why a connection's reading stopped.
#[derive(Debug)]
enum Closed {
    /// The terminal closed it, or reading failed.
    Peer,
    /// The gateway is shutting down, or the driver is gone.
    Stopped,
    /// The driver let go of the connection (the engine closed it).
    Released,
    /// Writing a reply failed.
    WriteFailed,
    /// A frame was still incomplete `frame_timeout` after its first byte.
    FrameTimeout {
        /// Bytes of the frame received by then.
        received: usize,
    },
    /// No request for `idle_timeout`.
    Idle,
    /// The stream is out of step.
    BadFrame(FrameError),
    /// Requests stayed unanswered for `idle_timeout` with reading paused.
    Stalled,
    /// A sign-on beyond the address's sign-on rate.
    SignOnRate,
}

/// Serves one admitted connection, over TCP or TLS, until it ends, then closes it: the
/// place first, the socket after.
async fn serve_connection<S>(
    mut c: Connection,
    dialect: TerminalDialect,
    stream: S,
    admitted: Admitted,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    let connected = TerminalEvent::Connected {
        conn: c.conn,
        dialect,
        tx,
    };
    if c.events.send(Event::Terminal(connected)).await.is_err() {
        return;
    }
    let in_flight = Arc::new(Semaphore::new(c.cfg.max_in_flight_per_conn.max(1)));
    let mut writer = Writer {
        task: tokio::spawn(write_replies(wr, rx, in_flight.clone())),
        back: None,
    };
    let closed = c.read_requests(rd, &in_flight, &mut writer).await;
    c.record(&closed);
    // The place goes back before the socket closes (with the last half, below): a
    // terminal that sees the close may connect again at once.
    drop(admitted);
    writer.task.abort();
    if let Some(mut wr) = writer.back.take() {
        // The engine closed it: end the stream properly (over TLS, close_notify), for
        // a moment at most.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wr.shutdown()).await;
    }
}

/// How long closing a connection the engine let go of may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The task writing a connection's replies.
struct Writer<S> {
    task: JoinHandle<Option<WriteHalf<S>>>,
    /// The write half, handed back when the driver let go of the connection.
    back: Option<WriteHalf<S>>,
}

impl<S> Writer<S> {
    /// Resolves when the writer has stopped; the connection must then close (the
    /// task is not awaited again).
    async fn stopped(&mut self) -> Closed {
        match (&mut self.task).await {
            Ok(Some(wr)) => {
                self.back = Some(wr);
                Closed::Released
            }
            _ => Closed::WriteFailed,
        }
    }
}

/// Writes replies until the driver lets go of the connection — then hands the write
/// half back, for the connection to close in order — or a write fails. Each frame
/// answers one request and gives its flow-control slot back; an empty one (a request
/// answered by another request's reply) writes nothing.
async fn write_replies<S: AsyncWrite>(
    mut wr: WriteHalf<S>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    slots: Arc<Semaphore>,
) -> Option<WriteHalf<S>> {
    while let Some(frame) = rx.recv().await {
        if !frame.is_empty() && wr.write_all(&frame).await.is_err() {
            return None;
        }
        slots.add_permits(1);
    }
    Some(wr)
}

impl Connection {
    /// The server's side of the TLS handshake, within `tls_handshake_timeout`; `None`
    /// (counted and logged) when it does not complete. A connection that fails gives
    /// its place back before its socket closes.
    async fn handshake(
        &mut self,
        tls: &ServerTls,
        stream: TcpStream,
        admitted: Admitted,
    ) -> Option<(tls::ServerStream<TcpStream>, Admitted)> {
        // The handshake owns the socket, and hands it back if it fails; either way it
        // stays open until the failure is counted and the place is back.
        let accept = tls.accept(stream);
        tokio::pin!(accept);
        let (failed, _socket) = tokio::select! {
            r = tokio::time::timeout(self.cfg.tls_handshake_timeout, &mut accept) => match r {
                Ok(Ok(stream)) => return Some((stream, admitted)),
                Ok(Err((e, socket))) => (HandshakeFailed::Error(e), Some(socket)),
                Err(_) => (HandshakeFailed::TimedOut, None),
            },
            _ = self.stop.changed() => (HandshakeFailed::Stopped, None),
        };
        self.record_handshake(&failed);
        drop(admitted);
        None
    }

    /// Counts a failed handshake; logs every one at debug level, and at most one a
    /// second as a warning, with how many failed since.
    fn record_handshake(&self, failed: &HandshakeFailed) {
        let why = match failed {
            HandshakeFailed::Stopped => return,
            HandshakeFailed::TimedOut => format!(
                "not complete within {} ms",
                self.cfg.tls_handshake_timeout.as_millis()
            ),
            HandshakeFailed::Error(e) => e.to_string(),
        };
        self.stats
            .tls_handshake_failures
            .fetch_add(1, Ordering::Relaxed);
        let (conn, peer) = (self.conn.0, self.peer);
        tracing::debug!(conn, %peer, reason = %why, "terminal TLS handshake failed");
        if let Some(failed) = self.admission.note_handshake_failure(Instant::now()) {
            tracing::warn!(
                conn,
                %peer,
                reason = %why,
                failed_since_last_line = failed,
                "terminal TLS handshake failed; closing"
            );
        }
    }

    /// Reads frames and hands requests to the driver until the terminal, the gateway
    /// or one of the connection's rules ends it.
    async fn read_requests<R: AsyncRead, W>(
        &mut self,
        mut rd: ReadHalf<R>,
        in_flight: &Semaphore,
        writer: &mut Writer<W>,
    ) -> Closed {
        let mut dec = FrameDecoder::new(self.cfg.max_frame);
        let mut clock = Deadlines::new(Instant::now(), &self.cfg);
        let mut buf = vec![0u8; 8 * 1024];
        loop {
            let (at, expiry) = clock.next();
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Closed::Peer,
                    Ok(n) => n,
                },
                () = tokio::time::sleep_until(at) => return match expiry {
                    Expiry::Frame => Closed::FrameTimeout { received: dec.pending() },
                    Expiry::Idle => Closed::Idle,
                },
                _ = self.stop.changed() => return Closed::Stopped,
                closed = writer.stopped() => return closed,
            };
            dec.feed(&buf[..n]);
            let mut requests = false;
            loop {
                let frame = match dec.next_frame() {
                    Ok(Some(f)) => f.to_vec(),
                    Ok(None) => break,
                    Err(e) => return Closed::BadFrame(e),
                };
                if is_sign_on(self.dialect, &frame)
                    && !self.admission.allow_sign_on(self.peer.ip(), Instant::now())
                {
                    return Closed::SignOnRate;
                }
                if let Err(closed) = self.hand_over(frame, in_flight, writer).await {
                    return closed;
                }
                requests = true;
            }
            clock.after_read(
                Instant::now(),
                requests,
                dec.pending() > 0,
                dec.frames_seen(),
            );
        }
    }

    /// Hands one request to the driver, first pausing while the connection has as many
    /// unanswered requests as it may (for at most the idle timeout).
    async fn hand_over<W>(
        &mut self,
        frame: Vec<u8>,
        in_flight: &Semaphore,
        writer: &mut Writer<W>,
    ) -> Result<(), Closed> {
        let slot = tokio::select! {
            s = tokio::time::timeout(self.cfg.idle_timeout, in_flight.acquire()) => s,
            _ = self.stop.changed() => return Err(Closed::Stopped),
            closed = writer.stopped() => return Err(closed),
        };
        match slot {
            Ok(Ok(permit)) => permit.forget(),
            _ => return Err(Closed::Stalled),
        }
        let frame = TerminalEvent::Frame {
            conn: self.conn,
            frame,
        };
        self.events
            .send(Event::Terminal(frame))
            .await
            .map_err(|_| Closed::Stopped)
    }

    /// Counts and logs why the gateway closed the connection.
    fn record(&self, closed: &Closed) {
        let (conn, peer) = (self.conn.0, self.peer);
        match closed {
            // The terminal or the gateway ended it, or the engine did and said why.
            Closed::Peer | Closed::Stopped | Closed::Released | Closed::WriteFailed => {}
            Closed::FrameTimeout { received } => {
                self.stats.frame_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    conn,
                    %peer,
                    received,
                    timeout_ms = self.cfg.frame_timeout.as_millis() as u64,
                    "terminal frame not complete in time; closing"
                );
            }
            Closed::Idle => {
                self.stats.idle_closes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(conn, %peer, "idle terminal connection closed");
            }
            Closed::BadFrame(e) => {
                tracing::warn!(conn, %peer, error = %e, "bad frame from terminal; closing");
            }
            Closed::SignOnRate => {
                self.stats.refused_sign_ons.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.admission.note_sign_on_refused(Instant::now()) {
                    tracing::warn!(
                        conn,
                        %peer,
                        refused = n,
                        limit = self.cfg.max_sign_ons_per_ip_per_minute,
                        "sign-ons from this address beyond its rate; closing"
                    );
                }
            }
            Closed::Stalled => tracing::warn!(
                conn,
                %peer,
                "terminal requests unanswered for the idle time; closing"
            ),
        }
    }
}

/// Whether a frame body is a sign-on (0800): for `cup-pos`, the BCD MTI after the
/// TPDU (5 bytes) and header (6); for `iso87-ascii`, the first four characters.
fn is_sign_on(dialect: TerminalDialect, frame: &[u8]) -> bool {
    match dialect {
        TerminalDialect::CupPos => frame.get(11..13) == Some(&[0x08, 0x00]),
        TerminalDialect::Iso87Ascii => frame.starts_with(b"0800"),
    }
}

/// Which rule a deadline enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No request for the idle timeout.
    Idle,
    /// A frame incomplete at the frame timeout.
    Frame,
}

/// The two clocks of a connection: the idle clock, from connect or the last request,
/// and the clock of the frame in progress, from its first byte. Neither is restarted
/// by bytes alone, so a trickle cannot stretch them: without a request a connection
/// lasts at most the idle timeout plus one frame timeout.
#[derive(Debug)]
struct Deadlines {
    idle_timeout: Duration,
    frame_timeout: Duration,
    idle_at: Instant,
    /// The frame in progress: the decoder's frame count when it began, and when its
    /// first byte was read.
    frame: Option<(u64, Instant)>,
}

impl Deadlines {
    fn new(now: Instant, cfg: &GatewayConfig) -> Deadlines {
        Deadlines {
            idle_timeout: cfg.idle_timeout,
            frame_timeout: cfg.frame_timeout,
            idle_at: later(now, cfg.idle_timeout),
            frame: None,
        }
    }

    /// When the connection closes unless more arrives, and by which rule. A frame
    /// begun before the idle deadline may finish within its frame timeout (a terminal
    /// whose request straddles the deadline is served); one begun after it is not
    /// waited for.
    fn next(&self) -> (Instant, Expiry) {
        match self.frame {
            Some((_, began)) if began < self.idle_at => {
                (later(began, self.frame_timeout), Expiry::Frame)
            }
            _ => (self.idle_at, Expiry::Idle),
        }
    }

    /// After a read at `now`: a request restarts the idle clock; a frame left
    /// incomplete starts its clock unless it is the frame already being timed.
    fn after_read(&mut self, now: Instant, request: bool, partial: bool, frames_seen: u64) {
        if request {
            self.idle_at = later(now, self.idle_timeout);
        }
        self.frame = match self.frame {
            _ if !partial => None,
            Some((seq, began)) if seq == frames_seen => Some((seq, began)),
            _ => Some((frames_seen, now)),
        };
    }
}

/// `at + d`, or a time far enough away to mean never when that overflows.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn deadlines(t0: Instant) -> Deadlines {
        let cfg = GatewayConfig {
            idle_timeout: 1000 * MS,
            frame_timeout: 300 * MS,
            ..GatewayConfig::default()
        };
        Deadlines::new(t0, &cfg)
    }

    #[test]
    fn bytes_alone_restart_neither_clock() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        assert_eq!(d.next(), (t0 + 1000 * MS, Expiry::Idle));
        // A frame begins at 100 ms and keeps growing: its deadline stays put.
        d.after_read(t0 + 100 * MS, false, true, 0);
        d.after_read(t0 + 200 * MS, false, true, 0);
        assert_eq!(d.next(), (t0 + 400 * MS, Expiry::Frame));
        // It completes as a request: the idle clock restarts, no frame is timed.
        d.after_read(t0 + 350 * MS, true, false, 1);
        assert_eq!(d.next(), (t0 + 1350 * MS, Expiry::Idle));
    }

    #[test]
    fn keep_alives_do_not_restart_the_idle_clock() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        // Half a keep-alive, then the other half with the first byte of the next.
        d.after_read(t0 + 900 * MS, false, true, 0);
        assert_eq!(d.next(), (t0 + 1200 * MS, Expiry::Frame));
        d.after_read(t0 + 1100 * MS, false, true, 1);
        // That next frame began after the idle deadline: nothing is waited for.
        assert_eq!(d.next(), (t0 + 1000 * MS, Expiry::Idle));
    }

    #[test]
    fn a_new_frame_in_the_same_read_gets_its_own_clock() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        d.after_read(t0 + 100 * MS, false, true, 0);
        d.after_read(t0 + 300 * MS, true, true, 1);
        assert_eq!(d.next(), (t0 + 600 * MS, Expiry::Frame));
    }
}
