//! The terminal server: accepts connections up to the limit, splits frames, pauses
//! reading when a connection has too many unanswered requests, closes idle ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use iso8583::frame::FrameDecoder;
use switch::{ConnId, TerminalDialect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

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
    slots: Arc<Semaphore>,
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused_connections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "terminal connection refused: connection limit reached");
            drop(stream);
            continue;
        };
        let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
        let events = events.clone();
        let cfg = cfg.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(conn, dialect, stream, events.clone(), cfg, stop).await;
            let _ = events
                .send(Event::Terminal(TerminalEvent::Closed { conn }))
                .await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    conn: ConnId,
    dialect: TerminalDialect,
    stream: TcpStream,
    events: mpsc::Sender<Event>,
    cfg: GatewayConfig,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    if events
        .send(Event::Terminal(TerminalEvent::Connected {
            conn,
            dialect,
            tx,
        }))
        .await
        .is_err()
    {
        return;
    }
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight_per_conn.max(1)));
    let writer_slots = in_flight.clone();
    let writer = tokio::spawn(async move {
        // One slot back per request answered (an empty frame: answered by another
        // request's reply).
        while let Some(frame) = rx.recv().await {
            if !frame.is_empty() && wr.write_all(&frame).await.is_err() {
                break;
            }
            writer_slots.add_permits(1);
        }
    });
    let mut dec = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 8 * 1024];
    'read: loop {
        let read = tokio::select! {
            r = tokio::time::timeout(cfg.idle_timeout, rd.read(&mut buf)) => r,
            _ = stop.changed() => break,
        };
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(conn = conn.0, "idle terminal connection closed");
                break;
            }
            Ok(Ok(n)) => n,
        };
        dec.feed(&buf[..n]);
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f.to_vec(),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(conn = conn.0, error = %e, "bad frame from terminal; closing");
                    break 'read;
                }
            };
            // Pause reading while too many requests are unanswered (bounded wait).
            match tokio::time::timeout(cfg.idle_timeout, in_flight.acquire()).await {
                Ok(Ok(p)) => p.forget(),
                _ => break 'read,
            }
            if events
                .send(Event::Terminal(TerminalEvent::Frame { conn, frame }))
                .await
                .is_err()
            {
                break 'read;
            }
        }
    }
    writer.abort();
}
