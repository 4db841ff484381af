//! `posguard bench`: end-to-end sales per second and latency on loopback, next to a
//! baseline measured in the same run.
//!
//! Baseline: the same number of terminal connections sending the same sale frames to
//! a bare TCP echo (the machine's own limit for this traffic shape). Then the real
//! path: terminals → acquirer (durable SQLite journal, group commit) → issuer
//! simulator, first as fast as the terminals go, then at a fixed offered rate. Each
//! terminal is serial (one request outstanding), as a POS is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use iso8583::frame::FrameDecoder;
use issuer::{Bank, IssuerConfig};
use terminal::{Card, EntryKind, Terminal, TerminalConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::demo_data::{demo_data, CardFate, DemoData};
use crate::run_cli::{node_options, open_demo_accounts, seed_store, shanghai_now};

/// `posguard bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Terminal connections.
    #[arg(long, default_value_t = 200)]
    pub terminals: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Offered rate (sales/s) of the fixed-rate run.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Where the benchmark's SQLite journal goes (a fresh directory per run).
    #[arg(long, default_value = "./posguard-data")]
    pub data: String,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What was measured.
    pub name: String,
    /// Completed round trips.
    pub count: u64,
    /// Round trips per second.
    pub per_sec: f64,
    /// Approved sales (real path only).
    pub approved: u64,
    /// Latency percentiles in microseconds: p50, p99, p99.9, max.
    pub latency_us: [u64; 4],
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p50, p99, p999, max] = self.latency_us;
        write!(
            f,
            "{:<46} {:>9} {:>10.0}/s {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.name,
            self.count,
            self.per_sec,
            self.approved,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            p999 as f64 / 1000.0,
            max as f64 / 1000.0
        )
    }
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

struct Conn {
    stream: TcpStream,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true).context("nodelay")?;
        Ok(Conn {
            stream,
            dec: FrameDecoder::new(8192),
            buf: vec![0u8; 8192],
        })
    }

    async fn round_trip(&mut self, frame: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.stream.write_all(frame).await.context("write")?;
        loop {
            if let Some(f) = self.dec.next_frame().context("frame")? {
                return Ok(f.to_vec());
            }
            let n = self.stream.read(&mut self.buf).await.context("read")?;
            anyhow::ensure!(n > 0, "connection closed");
            self.dec.feed(&self.buf[..n]);
        }
    }
}

fn card(data: &DemoData, i: usize) -> Card {
    let good: Vec<_> = data
        .cards
        .iter()
        .filter(|c| c.fate == CardFate::Good)
        .collect();
    let c = good[i % good.len()];
    let mut card = Card::new(&c.pan, Some(&c.pin), &c.expiry, EntryKind::Chip);
    card.service_code = c.service_code.clone();
    card
}

/// Runs `n` serial terminals for `duration`; `rate` > 0 paces the whole set.
#[allow(clippy::too_many_arguments)] // a measurement's knobs, each spelled out at the four call sites
async fn drive(
    name: &str,
    acquirer: SocketAddr,
    addr: SocketAddr,
    data: &DemoData,
    n: usize,
    duration: Duration,
    rate: f64,
    real: bool,
    first_stan: u32,
) -> anyhow::Result<Measured> {
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(200);
    for i in 0..n {
        let t = data.terminals[i % data.terminals.len()].clone();
        let card = card(data, i);
        tasks.push(tokio::spawn(async move {
            let key = cardsec::Key::from_hex(&t.tmk_hex).context("tmk")?;
            let mut cfg = TerminalConfig::new(
                t.terminal_id.parse().context("tid")?,
                t.merchant_id.parse().context("mid")?,
                key,
            );
            // A real terminal keeps its STAN across sign-ons; each run here is a new
            // terminal instance, so it starts where the previous run could not reach.
            cfg.first_stan = domain::Stan::new(first_stan).context("first STAN")?;
            cfg.key_layout = t.key_layout;
            let mut term = Terminal::new(cfg);
            // Every terminal signs on at the acquirer, so even the baseline sends
            // real, signed sale frames.
            let mut signon = Conn::open(acquirer).await?;
            let r = term.sign_on().context("sign-on")?;
            let reply = signon.round_trip(&r.frame).await?;
            term.on_reply(&reply).context("sign-on reply")?;
            let mut conn = if real {
                signon
            } else {
                Conn::open(addr).await?
            };
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
            let mut approved = 0u64;
            let interval = if rate > 0.0 {
                Some(Duration::from_secs_f64(n as f64 / rate))
            } else {
                None
            };
            let mut next =
                start + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(i as f64 / n as f64));
            let end = start + duration;
            let fixed = if real {
                None
            } else {
                Some(term.sale(&card, 100).context("sale")?.frame)
            };
            tokio::time::sleep_until(start).await;
            while Instant::now() < end {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next).await;
                    next += iv;
                }
                let req = match &fixed {
                    Some(f) => f.clone(),
                    None => term.sale(&card, 100).context("sale")?.frame,
                };
                let sent = Instant::now();
                let reply = conn.round_trip(&req).await?;
                hist.saturating_record(sent.elapsed().as_micros() as u64);
                if real {
                    if let Ok(o) = term.on_reply(&reply) {
                        approved += u64::from(o.is_approved());
                    }
                }
            }
            Ok::<_, anyhow::Error>((hist, approved))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let mut approved = 0;
    for t in tasks {
        let (h, a) = t.await.context("join terminal")??;
        hist.add(h).context("merge histogram")?;
        approved += a;
    }
    Ok(Measured {
        name: name.to_owned(),
        count: hist.len(),
        per_sec: hist.len() as f64 / duration.as_secs_f64(),
        approved,
        latency_us: [
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99),
            hist.value_at_quantile(0.999),
            hist.max(),
        ],
    })
}

/// Runs the benchmark and returns its measurements.
pub async fn bench(a: BenchArgs) -> anyhow::Result<Vec<Measured>> {
    let data = demo_data(8583, a.terminals.clamp(1, 500), 400);
    let duration = Duration::from_secs(a.duration);
    let mut out = Vec::new();

    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys).context("issuer keys")?;
    open_demo_accounts(&mut bank, &data, shanghai_now())?;
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .context("start issuer")?;
    let dir = format!(
        "{}/bench-{}",
        a.data.trim_end_matches('/'),
        shanghai_now().format("%Y%m%d-%H%M%S")
    );
    let mut opts = node_options(dir.clone(), issuer.iso_addr(), 10_000);
    // A benchmark card sells hundreds of times a second: the velocity rules would
    // decline nearly every sale in-line, and the issuer path would not be measured.
    // Shadow mode keeps risk's whole cost (evaluated and recorded) without acting.
    opts.risk_shadow = true;
    // Every benchmark terminal connects from 127.0.0.1.
    opts.gateway.max_connections_per_ip = a.terminals.max(64);
    opts.gateway.max_sign_ons_per_ip_per_minute = (a.terminals * 4).max(120);
    let (o, d) = (opts.clone(), data.clone());
    let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
        .await
        .context("join seeding")??;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind terminal port")?;
    let addr = listener.local_addr().context("terminal port")?;
    let stats = Arc::new(gateway::GatewayStats::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(crate::node::run_node(
        opts,
        vec![(listener, gateway::TerminalDialect::CupPos)],
        stats,
        async {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let echo = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind echo")?;
    let echo_addr = echo.local_addr().context("echo addr")?;
    let echo_task = tokio::spawn(echo_server(echo));
    out.push(
        drive(
            "baseline: bare loopback echo of the same frames",
            addr,
            echo_addr,
            &data,
            a.terminals,
            duration,
            0.0,
            false,
            1,
        )
        .await?,
    );
    out.push(
        drive(
            &format!("baseline: echo at {:.0}/s offered", a.rate),
            addr,
            echo_addr,
            &data,
            a.terminals,
            duration,
            a.rate,
            false,
            1,
        )
        .await?,
    );
    echo_task.abort();

    out.push(
        drive(
            "posguard: terminals → acquirer → issuer, max",
            addr,
            addr,
            &data,
            a.terminals,
            duration,
            0.0,
            true,
            1,
        )
        .await?,
    );
    out.push(
        drive(
            &format!("posguard: at {:.0}/s offered", a.rate),
            addr,
            addr,
            &data,
            a.terminals,
            duration,
            a.rate,
            true,
            500_000,
        )
        .await?,
    );
    let _ = tx.send(());
    node.await.context("join acquirer")??;
    issuer.stop().await;
    Ok(out)
}

/// Runs `posguard bench`.
pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    println!("posguard bench: {} serial terminal connections, {} s per measurement, loopback, durable SQLite journal", a.terminals, a.duration);
    let rt = tokio::runtime::Runtime::new().context("start runtime")?;
    let results = rt.block_on(bench(a))?;
    println!(
        "{:<46} {:>9} {:>12} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "measurement", "requests", "rate", "approved", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for r in results {
        println!("{r}");
    }
    Ok(())
}
