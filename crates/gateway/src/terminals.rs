//! The terminal server: accepts connections within the limits (in all and per
//! address, see `admission`), splits frames, pauses reading while a connection has
//! too many unanswered requests, and closes a connection whose frame does not arrive
//! whole in time or that sends no request for the idle time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iso8583::frame::{FrameDecoder, FrameError};
use switch::{ConnId, TerminalDialect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

/// Accepts terminal connections until `stop` turns true.
pub(crate) async fn serve_terminals(
    listener: TcpListener,
    dialect: TerminalDialect,
    admission: Arc<Admission>,
    events: mpsc::Sender<Event>,
    cfg: GatewayConfig,
    stats: Arc<GatewayStats>,
    mut stop: watch::Receiver<bool>,
) {
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
        let c = Connection {
            conn: ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed)),
            peer,
            events: events.clone(),
            cfg: cfg.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            let (conn, events) = (c.conn, c.events.clone());
            serve_connection(c, dialect, stream, admitted).await;
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
    peer: SocketAddr,
    events: mpsc::Sender<Event>,
    cfg: GatewayConfig,
    stats: Arc<GatewayStats>,
    stop: watch::Receiver<bool>,
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
}

/// Serves one admitted connection until it ends, then closes it: the place first,
/// the socket after.
async fn serve_connection(
    mut c: Connection,
    dialect: TerminalDialect,
    stream: TcpStream,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
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
    // The place goes back before the socket closes (with the write half, below): a
    // terminal that sees the close may connect again at once.
    drop(admitted);
    writer.task.abort();
    drop(writer.back);
}

/// The task writing a connection's replies.
struct Writer {
    task: JoinHandle<Option<OwnedWriteHalf>>,
    /// The write half, handed back when the driver let go of the connection.
    back: Option<OwnedWriteHalf>,
}

impl Writer {
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
async fn write_replies(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    slots: Arc<Semaphore>,
) -> Option<OwnedWriteHalf> {
    while let Some(frame) = rx.recv().await {
        if !frame.is_empty() && wr.write_all(&frame).await.is_err() {
            return None;
        }
        slots.add_permits(1);
    }
    Some(wr)
}

impl Connection {
    /// Reads frames and hands requests to the driver until the terminal, the gateway
    /// or one of the connection's rules ends it.
    async fn read_requests(
        &mut self,
        mut rd: OwnedReadHalf,
        in_flight: &Semaphore,
        writer: &mut Writer,
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
    async fn hand_over(
        &mut self,
        frame: Vec<u8>,
        in_flight: &Semaphore,
        writer: &mut Writer,
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
            Closed::Stalled => tracing::warn!(
                conn,
                %peer,
                "terminal requests unanswered for the idle time; closing"
            ),
        }
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
