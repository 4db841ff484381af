//! The issuer link: several framed `iso87-ascii` connections, over TCP or TLS, each
//! reconnecting with bounded backoff and sending an echo (0800, 70 = 301) when idle.

use std::time::Duration;

use iso8583::frame::FrameDecoder;
use iso8583::{Dialect, Message, Mti};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::driver::{Event, GatewayConfig};

/// What an issuer connection tells the driver.
pub(crate) enum LinkEvent {
    /// Connection `index` is up; send to it through `tx`.
    Up {
        index: usize,
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// Connection `index` is down.
    Down { index: usize },
    /// A message arrived (no length prefix).
    Message { frame: Vec<u8> },
}

/// Starts one task per issuer connection.
pub(crate) fn spawn_links(
    cfg: &GatewayConfig,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    (0..cfg.issuer_connections.max(1))
        .map(|index| tokio::spawn(link_task(index, cfg.clone(), events.clone(), stop.clone())))
        .collect()
}

async fn link_task(
    index: usize,
    cfg: GatewayConfig,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut echo_stan = 1u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let up = |backoff: &mut Duration| {
            *backoff = Duration::from_millis(100);
            tracing::info!(index, issuer = %cfg.issuer, tls = cfg.issuer_tls.is_some(), "issuer link up");
        };
        match TcpStream::connect(cfg.issuer).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let stop = stop.clone();
                let served = match &cfg.issuer_tls {
                    None => {
                        up(&mut backoff);
                        serve_link(index, stream, &cfg, &events, stop, &mut echo_stan).await;
                        true
                    }
                    Some(tls) => match handshake(index, tls, stream, &cfg).await {
                        Some(stream) => {
                            up(&mut backoff);
                            serve_link(index, stream, &cfg, &events, stop, &mut echo_stan).await;
                            true
                        }
                        None => false,
                    },
                };
                if served {
                    let _ = events.send(Event::Link(LinkEvent::Down { index })).await;
                    tracing::warn!(index, "issuer link down");
                }
            }
            Err(e) => tracing::debug!(index, error = %e, "issuer connect failed"),
        }
        let mut stop2 = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop2.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The client's side of the TLS handshake with the issuer, within
/// `tls_handshake_timeout`; `None` (logged) when it fails: the link backs off and tries
/// again, as after a refused connection.
async fn handshake(
    index: usize,
    tls: &tls::ClientTls,
    stream: TcpStream,
    cfg: &GatewayConfig,
) -> Option<tls::ClientStream<TcpStream>> {
    let why = match tokio::time::timeout(cfg.tls_handshake_timeout, tls.connect(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "not complete within {} ms",
            cfg.tls_handshake_timeout.as_millis()
        ),
    };
    tracing::warn!(index, issuer = %cfg.issuer, server_name = %tls.server_name(), reason = %why, "issuer TLS handshake failed");
    None
}

async fn serve_link<S>(
    index: usize,
    stream: S,
    cfg: &GatewayConfig,
    events: &mpsc::Sender<Event>,
    mut stop: watch::Receiver<bool>,
    echo_stan: &mut u32,
) where
    S: AsyncRead + AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    if events
        .send(Event::Link(LinkEvent::Up { index, tx }))
        .await
        .is_err()
    {
        return;
    }
    let mut dec = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return,
                    // Over TLS, the issuer's alert (a refused client certificate, say)
                    // arrives here.
                    Err(e) => {
                        tracing::warn!(index, error = %e, "issuer link read failed");
                        return;
                    }
                    Ok(n) => n,
                };
                dec.feed(&buf[..n]);
                loop {
                    match dec.next_frame() {
                        Ok(Some(f)) => {
                            if events.send(Event::Link(LinkEvent::Message { frame: f.to_vec() })).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(index, error = %e, "issuer sent a bad frame; reconnecting");
                            return;
                        }
                    }
                }
            }
            m = rx.recv() => {
                let Some(first) = m else { return };
                out.clear();
                out.extend_from_slice(&first);
                while out.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(cfg.echo_interval) => {
                let Some(echo) = echo_frame(*echo_stan) else { continue };
                *echo_stan = if *echo_stan >= 999_999 { 1 } else { *echo_stan + 1 };
                if wr.write_all(&echo).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

fn echo_frame(stan: u32) -> Option<Vec<u8>> {
    let mut m = Message::new(Mti::lit("0800"));
    m.set(7, "0000000000")
        .set(11, format!("{stan:06}"))
        .set(70, "301");
    let body = Dialect::iso87_ascii().pack(&m).ok()?;
    let mut out = Vec::with_capacity(body.len() + 2);
    iso8583::frame::encode_frame(&body, iso8583::frame::DEFAULT_MAX_FRAME, &mut out).ok()?;
    Some(out)
}
