//! A fleet of simulated terminals driving an acquirer over TCP or TLS (tokio): one
//! connection and one transaction at a time per terminal, paced to a target rate;
//! optionally each
//! terminal settles its batch (0500, then the 0320 upload when the host disagrees)
//! when its record fills up and at the end of the run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cardsec::{Key, KeyLayout};
use domain::{ResponseCode, Stan};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use iso8583::frame::FrameDecoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tls::ClientTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use crate::card::Card;
use crate::kind::TxKind;
use crate::report::{
    FleetReport, Latency, ReversalCounts, TerminalReport, BAD_REPLY, MAC_FAILURE, NO_CONNECTION,
    TIMEOUT,
};
use crate::terminal::{
    BatchEntry, Outcome, Request, SettlementResult, Terminal, TerminalConfig, TerminalError,
    Verdict,
};

/// Sign-on attempts before a terminal gives up for the run.
const SIGN_ON_ATTEMPTS: u32 = 5;
/// Reversal attempts before a terminal moves on (it tries again before its next transaction).
const REVERSAL_ATTEMPTS: u32 = 3;
/// Sends of one settlement message (0500, 0320) that got no reply before the
/// settlement is given up.
const SETTLE_ATTEMPTS: u32 = 3;
/// Connection attempts per reconnect, with doubling backoff.
const CONNECT_ATTEMPTS: u32 = 6;
/// First reconnect backoff; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest reconnect backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on one connection attempt, and on its TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest latency the histogram records (longer ones are clamped).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// One terminal of the fleet as provisioned at the acquirer.
#[derive(Clone, PartialEq, Eq)]
pub struct TerminalSetup {
    /// Field 41, eight characters.
    pub terminal_id: String,
    /// Field 42, fifteen characters.
    pub merchant_id: String,
    /// The clear terminal master key in hex (secret, never shown by `Debug`).
    pub tmk_hex: String,
    /// The location the terminal reports (`lat,lon`), if any.
    pub location: Option<String>,
    /// Where it is carried off to after its first approved sale (its installation
    /// test), and reports from then on: a relocated terminal.
    pub moves_to: Option<String>,
    /// The working keys it signs on for (its provisioned key profile).
    pub key_layout: KeyLayout,
}

impl fmt::Debug for TerminalSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalSetup")
            .field("terminal_id", &self.terminal_id)
            .field("merchant_id", &self.merchant_id)
            .field("tmk_hex", &"[redacted]")
            .finish()
    }
}

/// Relative weights of what the fleet's customers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Sale with a good card.
    pub sale: u32,
    /// Void of an earlier approved sale of the same terminal.
    pub void: u32,
    /// Refund of (part of) an earlier approved sale of the same terminal.
    pub refund: u32,
    /// Balance inquiry.
    pub balance: u32,
    /// Pre-authorization, then completion or cancel.
    pub preauth: u32,
    /// Sale with a wrong PIN (a card that has a PIN, one digit changed).
    pub wrong_pin: u32,
    /// Sale with one of `FleetConfig::decline_cards`.
    pub declined_card: u32,
    /// Sale the customer cancels after approval (reversal `06`).
    pub cancelled_sale: u32,
    /// Fraud: a burst of tiny sales with different stolen or invalid cards (card testing).
    pub card_testing: u32,
    /// Fraud: the same large round amount three times on good cards (cash-out).
    pub cashout: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            sale: 70,
            void: 4,
            refund: 3,
            balance: 5,
            preauth: 5,
            wrong_pin: 4,
            declined_card: 7,
            cancelled_sale: 2,
            card_testing: 1,
            cashout: 1,
        }
    }
}

impl Mix {
    /// Only sales.
    pub fn sales_only() -> Mix {
        Mix {
            sale: 1,
            void: 0,
            refund: 0,
            balance: 0,
            preauth: 0,
            wrong_pin: 0,
            declined_card: 0,
            cancelled_sale: 0,
            card_testing: 0,
            cashout: 0,
        }
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> Op {
        let table = [
            (self.sale, Op::Sale),
            (self.void, Op::Void),
            (self.refund, Op::Refund),
            (self.balance, Op::Balance),
            (self.preauth, Op::PreAuth),
            (self.wrong_pin, Op::WrongPin),
            (self.declined_card, Op::DeclinedCard),
            (self.cancelled_sale, Op::CancelledSale),
            (self.card_testing, Op::CardTesting),
            (self.cashout, Op::Cashout),
        ];
        let total: u64 = table.iter().map(|(w, _)| u64::from(*w)).sum();
        if total == 0 {
            return Op::Sale;
        }
        let mut roll = rng.gen_range(0..total);
        for (w, op) in table {
            if roll < u64::from(w) {
                return op;
            }
            roll -= u64::from(w);
        }
        Op::Sale
    }
}

/// Everything a fleet run needs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The acquirer's terminal port.
    pub acquirer: SocketAddr,
    /// TLS to the acquirer (the CA to trust and the name to verify); plain TCP when
    /// `None`.
    pub tls: Option<ClientTls>,
    /// The terminals to run, each with its own connection.
    pub terminals: Vec<TerminalSetup>,
    /// Good cards (the issuer should approve them).
    pub cards: Vec<Card>,
    /// Cards the caller set up to be declined (lost, expired, poor…).
    pub decline_cards: Vec<Card>,
    /// What customers do.
    pub mix: Mix,
    /// Target financial requests per second for the whole fleet; 0 or less: no pacing.
    pub rate_per_sec: f64,
    /// How long to keep starting transactions.
    pub duration: Duration,
    /// Stop after this many financial requests across the fleet.
    pub max_transactions: Option<u64>,
    /// How long a terminal waits for a reply before it counts a timeout.
    pub reply_timeout: Duration,
    /// Amounts are drawn uniformly from this range of minor units (inclusive).
    pub amount_range_minor: (i64, i64),
    /// Seed of every random choice (terminal `i` uses `seed + i`).
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// At the end of the run, settle each terminal's batch (0500, and the 0320 upload
    /// when the acquirer's totals differ); also whenever a batch record fills up.
    pub settle_at_end: bool,
    /// Where each terminal (by id) resumes: its next STAN and batch number, as a
    /// previous run left them (a real POS keeps both in its memory across power-offs;
    /// a terminal that starts again at STAN 1 in the same batch collides with its own
    /// earlier requests, which the acquirer answers as duplicates).
    pub resume: HashMap<String, Resume>,
}

/// A terminal's counters between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The STAN of its next request.
    pub next_stan: u32,
    /// Its current batch number.
    pub batch: u32,
}

impl FleetConfig {
    /// A configuration with the default mix, 100/s for 10 s, 15 s reply timeout, seed 1.
    pub fn new(
        acquirer: SocketAddr,
        terminals: Vec<TerminalSetup>,
        cards: Vec<Card>,
    ) -> FleetConfig {
        FleetConfig {
            acquirer,
            tls: None,
            terminals,
            cards,
            decline_cards: Vec::new(),
            mix: Mix::default(),
            rate_per_sec: 100.0,
            duration: Duration::from_secs(10),
            max_transactions: None,
            reply_timeout: Duration::from_secs(15),
            amount_range_minor: (100, 50_000),
            seed: 1,
            progress: false,
            settle_at_end: false,
            resume: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CardTesting,
    Cashout,
    Sale,
    Void,
    Refund,
    Balance,
    PreAuth,
    WrongPin,
    DeclinedCard,
    CancelledSale,
}

/// Runs the fleet until the duration ends or `max_transactions` are sent, then lets
/// every terminal try to clear its pending reversal, and reports.
pub async fn run_fleet(config: FleetConfig) -> FleetReport {
    let config = Arc::new(config);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        issued: AtomicU64::new(0),
        exhausted: AtomicBool::new(false),
        max: config.max_transactions,
        deadline: start + config.duration,
        progress: progress_bar(&config),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.terminals.len() {
        let (config, shared) = (Arc::clone(&config), Arc::clone(&shared));
        tasks.spawn(async move { (index, run_terminal(index, config, shared, start).await) });
    }
    let mut runs: Vec<Option<Run>> = (0..config.terminals.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, run)) => runs[index] = Some(run),
            Err(e) => tracing::error!(error = %e, "terminal task failed"),
        }
    }
    shared.progress.finish_and_clear();
    let elapsed = start.elapsed();
    merge(runs.into_iter().flatten().collect(), elapsed)
}

fn progress_bar(config: &FleetConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    match config.max_transactions {
        Some(max) => {
            let bar = ProgressBar::new(max);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} transactions ({per_sec})",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} {pos} transactions ({per_sec})",
            ) {
                bar.set_style(style);
            }
            bar
        }
    }
}

struct Shared {
    issued: AtomicU64,
    exhausted: AtomicBool,
    max: Option<u64>,
    deadline: Instant,
    progress: ProgressBar,
}

impl Shared {
    /// Takes one transaction from the fleet's budget.
    fn claim(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        let Some(max) = self.max else {
            return true;
        };
        let ok = self.issued.fetch_add(1, Ordering::Relaxed) < max;
        if !ok {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        ok
    }

    fn done(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// What one terminal's task hands back.
struct Run {
    report: TerminalReport,
    stats: Stats,
}

struct Stats {
    transactions: u64,
    counts: BTreeMap<TxKind, BTreeMap<String, u64>>,
    reversals: ReversalCounts,
    settlements: Settlements,
    timeouts: u64,
    mac_failures: u64,
    sign_ons: u64,
    reconnects: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            transactions: 0,
            counts: BTreeMap::new(),
            reversals: ReversalCounts::default(),
            settlements: Settlements::default(),
            timeouts: 0,
            mac_failures: 0,
            sign_ons: 0,
            reconnects: 0,
            errors: BTreeMap::new(),
            latency: new_histogram(),
        }
    }

    fn count(&mut self, kind: TxKind, code: &str) {
        *self
            .counts
            .entry(kind)
            .or_default()
            .entry(code.to_owned())
            .or_default() += 1;
    }

    fn refused(&mut self, e: &TerminalError) {
        *self.errors.entry(e.to_string()).or_default() += 1;
    }
}

/// How one terminal's batch settlements ended.
#[derive(Default)]
struct Settlements {
    balanced: u64,
    not_balanced: u64,
    uploaded: u64,
    failed: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

fn merge(runs: Vec<Run>, elapsed: Duration) -> FleetReport {
    let mut report = FleetReport {
        elapsed,
        ..FleetReport::default()
    };
    let mut latency = new_histogram();
    for run in runs {
        let s = run.stats;
        report.transactions += s.transactions;
        for (kind, codes) in s.counts {
            let into = report.counts.entry(kind).or_default();
            for (code, n) in codes {
                *into.entry(code).or_default() += n;
            }
        }
        let r = &mut report.reversals;
        r.sent += s.reversals.sent;
        r.acknowledged += s.reversals.acknowledged;
        r.cancelled_after_approval += s.reversals.cancelled_after_approval;
        for (code, n) in s.reversals.by_reason {
            *r.by_reason.entry(code).or_default() += n;
        }
        r.unresolved += u64::from(run.report.pending_reversal.is_some());
        report.batches_balanced += s.settlements.balanced;
        report.batches_not_balanced += s.settlements.not_balanced;
        report.batches_uploaded += s.settlements.uploaded;
        report.batches_failed += s.settlements.failed;
        report.timeouts += s.timeouts;
        report.mac_failures += s.mac_failures;
        report.sign_ons += s.sign_ons;
        report.reconnects += s.reconnects;
        for (why, n) in s.errors {
            *report.errors.entry(why).or_default() += n;
        }
        // Both histograms share bounds, so adding cannot fail.
        let _ = latency.add(&s.latency);
        report.terminals.push(run.report);
    }
    report.latency = Latency::from_histogram(&latency);
    let secs = elapsed.as_secs_f64();
    report.achieved_rate = if secs > 0.0 {
        report.transactions as f64 / secs
    } else {
        0.0
    };
    report
}

async fn run_terminal(
    index: usize,
    config: Arc<FleetConfig>,
    shared: Arc<Shared>,
    start: Instant,
) -> Run {
    let setup = &config.terminals[index];
    let mut report = TerminalReport {
        terminal_id: setup.terminal_id.clone(),
        merchant_id: setup.merchant_id.clone(),
        approved: Vec::new(),
        pending_reversal: None,
        error: None,
        resume: None,
    };
    let terminal = match terminal_for(setup, config.resume.get(&setup.terminal_id)) {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(e);
            return Run {
                report,
                stats: Stats::new(),
            };
        }
    };
    let mut driver = Driver {
        terminal,
        conn: Conn::new(config.acquirer, config.tls.clone()),
        rng: ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(index as u64)),
        stats: Stats::new(),
        card_of: HashMap::new(),
        flushed: Vec::new(),
        config: Arc::clone(&config),
        shared,
        moves_to: setup.moves_to.clone(),
    };
    report.error = driver.drive(index, start).await.err();
    driver.settle_reversal().await;
    report.approved = std::mem::take(&mut driver.flushed);
    report
        .approved
        .extend(driver.terminal.batch().iter().cloned());
    if config.settle_at_end && report.error.is_none() {
        driver.settle_batch().await;
    }
    report.pending_reversal = driver.terminal.pending_reversal();
    report.resume = Some(Resume {
        next_stan: driver.terminal.next_stan().get(),
        batch: driver.terminal.batch_number(),
    });
    driver.terminal.clear_batch();
    Run {
        report,
        stats: driver.stats,
    }
}

fn terminal_for(setup: &TerminalSetup, resume: Option<&Resume>) -> Result<Terminal, String> {
    let tid = setup
        .terminal_id
        .parse()
        .map_err(|e| format!("terminal id: {e}"))?;
    let mid = setup
        .merchant_id
        .parse()
        .map_err(|e| format!("merchant id: {e}"))?;
    let tmk = Key::from_hex(&setup.tmk_hex).map_err(|e| format!("TMK: {e}"))?;
    let mut config = TerminalConfig::new(tid, mid, tmk);
    config.location = setup.location.clone();
    config.key_layout = setup.key_layout;
    if let Some(r) = resume {
        config.first_stan = Stan::new(r.next_stan).map_err(|e| format!("resumed STAN: {e}"))?;
        config.first_batch = r.batch;
    }
    Ok(Terminal::new(config))
}

/// A connection's byte stream: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// One connection to the acquirer, over TCP or TLS, reopened with bounded backoff when
/// it drops.
struct Conn {
    addr: SocketAddr,
    tls: Option<ClientTls>,
    stream: Option<Box<dyn Stream>>,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    opened: u64,
    /// Why the last attempt to connect failed, until one succeeds.
    last_error: Option<String>,
}

impl Conn {
    fn new(addr: SocketAddr, tls: Option<ClientTls>) -> Conn {
        Conn {
            addr,
            tls,
            stream: None,
            decoder: FrameDecoder::new(iso8583::frame::DEFAULT_MAX_FRAME),
            buf: vec![0; 4096],
            opened: 0,
            last_error: None,
        }
    }

    /// One attempt: the TCP connection, then the TLS handshake if configured, each
    /// within [`CONNECT_TIMEOUT`].
    async fn open(addr: SocketAddr, tls: Option<&ClientTls>) -> std::io::Result<Box<dyn Stream>> {
        let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(Box::new(tcp));
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(tcp))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        Ok(Box::new(stream))
    }

    async fn ensure(&mut self) -> std::io::Result<()> {
        if self.stream.is_some() {
            return Ok(());
        }
        let mut backoff = FIRST_BACKOFF;
        let mut last = None;
        for attempt in 0..CONNECT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            match Conn::open(self.addr, self.tls.as_ref()).await {
                Ok(s) => {
                    self.stream = Some(s);
                    self.decoder = FrameDecoder::new(iso8583::frame::DEFAULT_MAX_FRAME);
                    self.opened += 1;
                    self.last_error = None;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::ErrorKind::NotConnected.into());
        self.last_error = Some(e.to_string());
        Err(e)
    }
}

/// How one request/reply exchange ended.
enum Exchange {
    /// The reply, and the time from writing the request to reading the reply.
    Reply(Outcome, Duration),
    /// Written, no reply in time.
    Timeout,
    /// Written, then the connection broke.
    Broken,
    /// Never written: no connection, or the write failed.
    NotSent,
}

struct Driver {
    terminal: Terminal,
    conn: Conn,
    rng: ChaCha8Rng,
    stats: Stats,
    /// Which card paid for each approved sale, by (batch, STAN): voids and refunds need it.
    card_of: HashMap<(u32, u32), usize>,
    /// Batch entries moved out of the terminal when its record filled up.
    flushed: Vec<BatchEntry>,
    config: Arc<FleetConfig>,
    shared: Arc<Shared>,
    /// Where the terminal goes after its first approved sale.
    moves_to: Option<String>,
}

impl Driver {
    async fn drive(&mut self, index: usize, start: Instant) -> Result<(), String> {
        if self.config.cards.is_empty() {
            return Err("no cards configured".into());
        }
        if !self.sign_on().await {
            return Err(match &self.conn.last_error {
                Some(e) => format!("sign-on failed: cannot connect: {e}"),
                None => "sign-on failed".into(),
            });
        }
        let mut ticker = self.ticker(index, start);
        while !self.shared.done() {
            if let Some(t) = &mut ticker {
                if tokio::time::timeout_at(self.shared.deadline, t.tick())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if !self.settle_reversal().await {
                continue;
            }
            if !self.terminal.is_signed_on() && !self.sign_on().await {
                continue;
            }
            let op = self.config.mix.pick(&mut self.rng);
            self.run_op(op).await;
        }
        Ok(())
    }

    /// Paces this terminal to its share of the fleet's rate, staggered across terminals.
    fn ticker(&self, index: usize, start: Instant) -> Option<tokio::time::Interval> {
        let n = self.config.terminals.len().max(1) as f64;
        let per_terminal = self.config.rate_per_sec / n;
        if !per_terminal.is_finite() || per_terminal <= 0.0 {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / per_terminal);
        let offset = period.mul_f64(index as f64 / n);
        let mut t = tokio::time::interval_at(start + offset, period);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(t)
    }

    async fn sign_on(&mut self) -> bool {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..SIGN_ON_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let req = match self.terminal.sign_on() {
                Ok(r) => r,
                Err(e) => {
                    self.stats.refused(&e);
                    return false;
                }
            };
            if let Exchange::Reply(o, _) = self.exchange(req).await {
                if o.is_approved() && self.terminal.is_signed_on() {
                    self.stats.sign_ons += 1;
                    return true;
                }
            }
        }
        false
    }

    /// Sends the pending reversal until a valid 0410 arrives, a few times at most.
    /// Returns whether nothing is owed any more.
    async fn settle_reversal(&mut self) -> bool {
        for _ in 0..REVERSAL_ATTEMPTS {
            let Some(pending) = self.terminal.pending_reversal() else {
                return true;
            };
            if !self.terminal.is_signed_on() && !self.sign_on().await {
                return false;
            }
            let req = match self.terminal.reversal() {
                Ok(Some(r)) => r,
                Ok(None) => return true,
                Err(e) => {
                    self.stats.refused(&e);
                    return false;
                }
            };
            let result = self.exchange(req).await;
            if !matches!(result, Exchange::NotSent) {
                self.stats.reversals.sent += 1;
            }
            if let Exchange::Reply(..) = result {
                if self.terminal.pending_reversal().is_none() {
                    self.stats.reversals.acknowledged += 1;
                    *self
                        .stats
                        .reversals
                        .by_reason
                        .entry(pending.reason.to_string())
                        .or_default() += 1;
                }
            }
        }
        self.terminal.pending_reversal().is_none()
    }

    async fn run_op(&mut self, op: Op) {
        match op {
            Op::Sale => self.good_sale().await,
            Op::WrongPin => self.wrong_pin_sale().await,
            Op::CardTesting => {
                let pool = if self.config.decline_cards.is_empty() {
                    &self.config.cards
                } else {
                    &self.config.decline_cards
                };
                let pool = pool.clone();
                for _ in 0..4 {
                    let card = pool[self.rng.gen_range(0..pool.len())].clone();
                    let amount = self.rng.gen_range(100..1_000);
                    self.transact(|t| t.sale(&card, amount)).await;
                }
            }
            Op::Cashout => {
                for _ in 0..3 {
                    let i = self.rng.gen_range(0..self.config.cards.len());
                    let card = self.config.cards[i].clone();
                    self.transact(|t| t.sale(&card, 500_000)).await;
                }
            }
            Op::DeclinedCard => {
                if self.config.decline_cards.is_empty() {
                    return self.good_sale().await;
                }
                let i = self.rng.gen_range(0..self.config.decline_cards.len());
                self.sale(self.config.decline_cards[i].clone(), None).await;
            }
            Op::CancelledSale => {
                let i = self.rng.gen_range(0..self.config.cards.len());
                if let Some(o) = self.sale(self.config.cards[i].clone(), Some(i)).await {
                    if o.is_approved() && self.terminal.cancel_after_approval().is_ok() {
                        self.stats.reversals.cancelled_after_approval += 1;
                    }
                }
            }
            Op::Balance => {
                let card = self.random_card();
                self.transact(|t| t.balance(&card)).await;
            }
            Op::Void => self.void().await,
            Op::Refund => self.refund().await,
            Op::PreAuth => self.pre_auth_flow().await,
        }
    }

    async fn good_sale(&mut self) {
        let i = self.rng.gen_range(0..self.config.cards.len());
        self.sale(self.config.cards[i].clone(), Some(i)).await;
    }

    fn random_card(&mut self) -> Card {
        let i = self.rng.gen_range(0..self.config.cards.len());
        self.config.cards[i].clone()
    }

    fn amount(&mut self) -> i64 {
        let (lo, hi) = self.config.amount_range_minor;
        let lo = lo.max(1);
        self.rng.gen_range(lo..=hi.max(lo))
    }

    async fn sale(&mut self, card: Card, card_index: Option<usize>) -> Option<Outcome> {
        let amount = self.amount();
        let o = self.transact(|t| t.sale(&card, amount)).await?;
        if let (Some(e), Some(i)) = (&o.entry, card_index) {
            self.card_of.insert((e.batch, e.stan.get()), i);
        }
        Some(o)
    }

    async fn wrong_pin_sale(&mut self) {
        let with_pin: Vec<usize> = (0..self.config.cards.len())
            .filter(|&i| self.config.cards[i].pin.is_some())
            .collect();
        if with_pin.is_empty() {
            let card = self.random_card();
            self.sale(card, None).await;
            return;
        }
        let i = with_pin[self.rng.gen_range(0..with_pin.len())];
        let mut card = self.config.cards[i].clone();
        if let Some(pin) = &mut card.pin {
            *pin = wrong_pin(pin);
        }
        self.sale(card, None).await;
    }

    /// An earlier approved, still open sale of this terminal whose card is known.
    fn open_sale(&mut self) -> Option<(BatchEntry, Card)> {
        let candidates: Vec<(BatchEntry, usize)> = self
            .terminal
            .batch()
            .iter()
            .filter(|e| e.kind == TxKind::Sale && !e.closed)
            .filter_map(|e| {
                let i = self.card_of.get(&(e.batch, e.stan.get()))?;
                Some((e.clone(), *i))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (entry, i) = candidates[self.rng.gen_range(0..candidates.len())].clone();
        Some((entry, self.config.cards[i].clone()))
    }

    async fn void(&mut self) {
        let Some((original, card)) = self.open_sale() else {
            return self.good_sale().await;
        };
        self.transact(|t| t.void(&card, &original)).await;
    }

    async fn refund(&mut self) {
        let Some((original, card)) = self.open_sale() else {
            return self.good_sale().await;
        };
        let amount = self.rng.gen_range(1..=original.amount_minor);
        self.transact(|t| t.refund(&card, amount, &original)).await;
    }

    async fn pre_auth_flow(&mut self) {
        let card = self.random_card();
        let amount = self.amount();
        let Some(o) = self.transact(|t| t.pre_auth(&card, amount)).await else {
            return;
        };
        let Some(original) = o.entry.filter(|_| o.verdict == Verdict::Approved) else {
            return;
        };
        if self.rng.gen_bool(0.5) {
            let part = self.rng.gen_range((amount / 2).max(1)..=amount);
            self.transact(|t| t.completion(part, &original)).await;
        } else {
            self.transact(|t| t.pre_auth_cancel(&original)).await;
        }
    }

    /// Settles the terminal's batch: the pending reversal first, then the 0500, then the
    /// upload if the acquirer's totals differ. Bounded: each message is sent at most
    /// [`SETTLE_ATTEMPTS`] times without a reply; the upload at most once per entry
    /// plus the batch end. A settlement that does not close the batch leaves the
    /// record as it was (an unfinished upload is abandoned).
    async fn settle_batch(&mut self) {
        let closed = self.settle_exchange().await;
        if !closed {
            self.terminal.abandon_upload();
            self.stats.settlements.failed += 1;
        }
    }

    /// Returns whether the batch was closed.
    async fn settle_exchange(&mut self) -> bool {
        for _ in 0..SETTLE_ATTEMPTS {
            if !self.settle_reversal().await
                || (!self.terminal.is_signed_on() && !self.sign_on().await)
            {
                return false;
            }
            let req = match self.terminal.settle() {
                Ok(r) => r,
                Err(e) => {
                    self.stats.refused(&e);
                    return false;
                }
            };
            if req.kind != TxKind::Settle {
                // The pending reversal went first; it is accounted by `settle_reversal`.
                let _ = self.exchange(req).await;
                continue;
            }
            let Exchange::Reply(o, _) = self.exchange(req).await else {
                continue;
            };
            return match o.settlement {
                Some(SettlementResult::Balanced) => {
                    self.stats.settlements.balanced += 1;
                    true
                }
                Some(SettlementResult::NotBalanced) => {
                    self.stats.settlements.not_balanced += 1;
                    self.upload().await
                }
                // Keys or batch number out of step: the terminal signs on again (which
                // also tells it the acquirer's batch) and settles again.
                _ if o.verdict == Verdict::MacFailure
                    || o.response_code == Some(ResponseCode::BATCH_MISMATCH) =>
                {
                    continue
                }
                _ => false,
            };
        }
        false
    }

    /// Drives the upload to its batch end; returns whether the acquirer accepted it.
    async fn upload(&mut self) -> bool {
        let steps = self.terminal.batch().len() + 1;
        let mut misses = 0;
        for _ in 0..steps.saturating_mul(SETTLE_ATTEMPTS as usize) {
            if !self.terminal.is_signed_on() && !self.sign_on().await {
                return false;
            }
            let req = match self.terminal.next_upload() {
                Ok(Some(r)) => r,
                Ok(None) => return false,
                Err(e) => {
                    self.stats.refused(&e);
                    return false;
                }
            };
            match self.exchange(req).await {
                Exchange::Reply(o, _) if o.settlement == Some(SettlementResult::Uploaded) => {
                    self.stats.settlements.uploaded += 1;
                    return true;
                }
                Exchange::Reply(o, _) if o.is_approved() => misses = 0,
                Exchange::Reply(o, _) if o.verdict == Verdict::MacFailure => misses += 1,
                Exchange::Reply(..) => return false,
                Exchange::Timeout | Exchange::Broken | Exchange::NotSent => misses += 1,
            }
            if misses >= SETTLE_ATTEMPTS {
                return false;
            }
        }
        false
    }

    /// Sends one financial request from the fleet's budget and accounts for its result.
    async fn transact(
        &mut self,
        build: impl FnOnce(&mut Terminal) -> Result<Request, TerminalError>,
    ) -> Option<Outcome> {
        if self.terminal.batch_is_full() {
            let entries = self.terminal.batch().to_vec();
            if self.config.settle_at_end {
                self.settle_batch().await;
            }
            // Settled or not, the record is emptied so the terminal can go on.
            self.terminal.clear_batch();
            self.flushed.extend(entries);
        }
        if self.terminal.pending_reversal().is_some() || !self.shared.claim() {
            return None;
        }
        let req = match build(&mut self.terminal) {
            Ok(r) => r,
            Err(e) => {
                self.stats.refused(&e);
                return None;
            }
        };
        self.shared.progress.inc(1);
        let result = self.exchange(req).await;
        if !matches!(result, Exchange::NotSent) {
            self.stats.transactions += 1;
        }
        match result {
            Exchange::Reply(o, took) => {
                // Latency is write to verified reply: replies that did not verify are
                // counted by kind, not timed.
                if matches!(o.verdict, Verdict::Approved | Verdict::Declined) {
                    let us = u64::try_from(took.as_micros()).unwrap_or(MAX_LATENCY_US);
                    let _ = self.stats.latency.record(us.clamp(1, MAX_LATENCY_US));
                }
                Some(o)
            }
            Exchange::Timeout | Exchange::Broken | Exchange::NotSent => None,
        }
    }

    /// Writes one request and waits for the reply to it, bounded by the reply timeout.
    async fn exchange(&mut self, req: Request) -> Exchange {
        let (kind, stan) = (req.kind, req.stan);
        let result = self.exchange_inner(&req).await;
        match &result {
            Exchange::Reply(o, _) => match o.verdict {
                Verdict::Approved => {
                    self.stats.count(kind, "00");
                    if kind == TxKind::Sale {
                        if let Some(far) = self.moves_to.take() {
                            self.terminal.set_location(Some(far));
                        }
                    }
                }
                Verdict::Declined => {
                    let code = o
                        .response_code
                        .map_or_else(|| "??".into(), |c| c.to_string());
                    self.stats.count(kind, &code);
                }
                Verdict::MacFailure => {
                    self.stats.mac_failures += 1;
                    self.stats.count(kind, MAC_FAILURE);
                }
                Verdict::BadReply(_) => self.stats.count(kind, BAD_REPLY),
            },
            Exchange::Timeout => {
                self.stats.timeouts += 1;
                self.stats.count(kind, TIMEOUT);
            }
            Exchange::Broken | Exchange::NotSent => self.stats.count(kind, NO_CONNECTION),
        }
        tracing::debug!(terminal = %self.terminal.terminal_id(), %kind, %stan, "exchange done");
        result
    }

    async fn exchange_inner(&mut self, req: &Request) -> Exchange {
        let before = self.conn.opened;
        if self.conn.ensure().await.is_err() {
            self.terminal.on_timeout(req.stan);
            return Exchange::NotSent;
        }
        if before > 0 && self.conn.opened > before {
            self.stats.reconnects += 1;
        }
        let result = self.write_and_wait(req).await;
        if !matches!(result, Exchange::Reply(..)) {
            self.terminal.on_timeout(req.stan);
        }
        if matches!(result, Exchange::Broken | Exchange::NotSent) {
            self.conn.stream = None;
        }
        result
    }

    async fn write_and_wait(&mut self, req: &Request) -> Exchange {
        let Conn {
            stream,
            decoder,
            buf,
            ..
        } = &mut self.conn;
        let Some(s) = stream.as_mut() else {
            return Exchange::NotSent;
        };
        let written = Instant::now();
        if s.write_all(&req.frame).await.is_err() {
            return Exchange::NotSent;
        }
        let deadline = Instant::now() + self.config.reply_timeout;
        loop {
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => match self.terminal.on_reply(frame) {
                        Ok(o) => return Exchange::Reply(o, written.elapsed()),
                        Err(e) => tracing::debug!(error = %e, "reply ignored"),
                    },
                    Ok(None) => break,
                    Err(_) => return Exchange::Broken,
                }
            }
            match tokio::time::timeout_at(deadline, s.read(buf)).await {
                Err(_) => return Exchange::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Exchange::Broken,
                Ok(Ok(n)) => decoder.feed(&buf[..n]),
            }
        }
    }
}

/// The same PIN with its last digit changed.
fn wrong_pin(pin: &str) -> String {
    let mut digits: Vec<u8> = pin.bytes().collect();
    if let Some(last) = digits.last_mut() {
        *last = if *last == b'9' { b'0' } else { *last + 1 };
    }
    String::from_utf8(digits).unwrap_or_default()
}
