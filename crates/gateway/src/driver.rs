//! The driver: one task that owns the engine and carries out its actions.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store::{Journal, Persisted, SafRow};
use switch::{Action, ConnId, Engine, Input, Now, TerminalDialect};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::admission::Admission;
use crate::link::{spawn_links, LinkEvent};
use crate::terminals::{serve_terminals, TerminalEvent, TerminalListener};

/// Where time comes from (the only clock the gateway reads).
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Now;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the edge: the one place wall time is read
    fn now(&self) -> Now {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Now { unix_ms: ms }
    }
}

/// The gateway's limits and addresses.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The issuer's address.
    pub issuer: SocketAddr,
    /// TLS to the issuer (the CA to trust, the name to verify, and the acquirer's
    /// certificate when the issuer wants one); plain TCP when `None`.
    pub issuer_tls: Option<tls::ClientTls>,
    /// Connections kept to the issuer.
    pub issuer_connections: usize,
    /// Terminal connections accepted at once, over every terminal listener; more are
    /// refused.
    pub max_connections: usize,
    /// Terminal connections accepted at once from one peer address, over every
    /// terminal listener; more are refused. The default, 64, serves a merchant site with
    /// dozens of terminals behind one NAT address, reconnects included, while one host
    /// can hold no more than 64 of the gateway's `max_connections`. Raise it when
    /// terminals arrive through a concentrator that hides their addresses: carrier-grade
    /// NAT, a network access controller, a TLS or TCP proxy, a load balancer that does
    /// not keep client addresses.
    pub max_connections_per_ip: usize,
    /// Sign-ons (0800) accepted from one peer address in a minute, over all its
    /// connections; a connection sending one more is closed. 120 lets 64 terminals
    /// behind one address each sign on twice a minute; the engine also limits each
    /// terminal (`switch::Config::max_sign_ons_per_minute`).
    pub max_sign_ons_per_ip_per_minute: usize,
    /// Largest frame accepted from a terminal or the issuer.
    pub max_frame: usize,
    /// A terminal frame must have arrived whole this long after its first byte (length
    /// prefix included), or its connection is closed: a frame trickled byte by byte,
    /// or one whose prefix promises more than is sent, holds a connection no longer.
    /// Terminals send a frame of a few hundred bytes in one go; 10 s is generous even
    /// over GPRS.
    pub frame_timeout: Duration,
    /// A terminal connection that sends no request (a non-empty frame) for this long is
    /// closed. The clock starts at connect and restarts at each request; bytes of
    /// unfinished frames and zero-length keep-alives do not restart it, so a trickle
    /// cannot stretch it. A frame begun before the deadline may still finish within
    /// `frame_timeout`.
    pub idle_timeout: Duration,
    /// A TLS handshake, with a terminal on a TLS listener or with the issuer, must
    /// complete within this long of the connection opening, or the connection is
    /// closed: a client that connects and says nothing holds its place no longer. A
    /// handshake is a few round trips; 10 s is generous even over GPRS.
    pub tls_handshake_timeout: Duration,
    /// Requests one terminal connection may have unanswered; reading pauses beyond it,
    /// for at most `idle_timeout`, then the connection is closed.
    pub max_in_flight_per_conn: usize,
    /// How long shutdown waits for in-flight transactions.
    pub drain_timeout: Duration,
    /// Interval of echo messages on each idle issuer connection.
    pub echo_interval: Duration,
    /// Inputs waiting for the engine at most.
    pub queue_depth: usize,
    /// Seconds between sweeps of the shared store-and-forward queue.
    pub saf_sweep_secs: u64,
    /// How overdue (ms) an entry must be before this node takes it over.
    pub saf_adopt_after_ms: i64,
    /// A risk rule file to watch: when it changes, the rule set is reloaded in place.
    pub rules_path: Option<std::path::PathBuf>,
    /// Seconds between reads of the key table for new zone and token key versions
    /// (`Core::keys`).
    pub key_check_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            issuer: SocketAddr::from(([127, 0, 0, 1], 9583)),
            issuer_tls: None,
            issuer_connections: 4,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            max_sign_ons_per_ip_per_minute: 120,
            max_frame: iso8583::frame::DEFAULT_MAX_FRAME,
            frame_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(10),
            max_in_flight_per_conn: 8,
            drain_timeout: Duration::from_secs(15),
            echo_interval: Duration::from_secs(30),
            queue_depth: 65_536,
            saf_sweep_secs: 10,
            saf_adopt_after_ms: 30_000,
            rules_path: None,
            key_check_secs: 10,
        }
    }
}

/// Counters the gateway keeps.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Terminal frames handed to the engine.
    pub terminal_frames: AtomicU64,
    /// Frames sent to terminals.
    pub terminal_replies: AtomicU64,
    /// Messages sent to the issuer.
    pub issuer_sent: AtomicU64,
    /// Messages received from the issuer.
    pub issuer_received: AtomicU64,
    /// Requests answered 91 because no issuer link took them.
    pub issuer_unavailable: AtomicU64,
    /// Terminal connections refused at the connection limit.
    pub refused_connections: AtomicU64,
    /// Terminal connections refused because their address held
    /// `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Terminal connections closed because a frame did not arrive whole within
    /// `frame_timeout` of its first byte.
    pub frame_timeouts: AtomicU64,
    /// Terminal connections closed after `idle_timeout` without a request.
    pub idle_closes: AtomicU64,
    /// Terminal connections closed for a sign-on beyond their address's sign-on rate.
    pub refused_sign_ons: AtomicU64,
    /// Terminal connections to a TLS listener closed because their handshake failed
    /// (not TLS, a certificate refused) or did not complete within
    /// `tls_handshake_timeout`.
    pub tls_handshake_failures: AtomicU64,
    /// Times the engine panicked on an input and was rebuilt from the journal.
    pub engine_restarts: AtomicU64,
    /// Issuer connections up now (TCP connected and, over TLS, the handshake done).
    pub issuer_links_up: AtomicU64,
    /// Store-and-forward entries waiting (updated every second).
    pub saf_depth: AtomicU64,
    /// Age of the oldest waiting entry in ms (updated every second).
    pub saf_oldest_ms: AtomicU64,
    /// The change feed's position (the audit record) up to which the engine has
    /// applied merchant and terminal changes.
    pub feed_position: std::sync::atomic::AtomicI64,
}

/// What reaches the driver task.
pub(crate) enum Event {
    Terminal(TerminalEvent),
    Link(LinkEvent),
}

/// The node's state machine, its journal, and the queue entries to resume.
pub struct Core {
    /// The engine, loaded from the store.
    pub engine: Engine,
    /// The journal writer.
    pub journal: Journal,
    /// Store-and-forward entries still pending at start-up.
    pub pending_saf: Vec<SafRow>,
    /// A store connection for sweeping the shared queue (several nodes on PostgreSQL),
    /// and this node's name as the owner of what it claims.
    pub sweeper: Option<(Box<dyn store::Backend>, String)>,
    /// Builds the engine again from the store, with the queue entries to resume: what
    /// the driver does when the engine panics on an input. Without it a panic stops
    /// the node (after draining what was already durable).
    pub reload: Option<Reload>,
    /// Reads the zone keys and token key in force from the store; checked every
    /// `GatewayConfig::key_check_secs` so keys loaded while the node runs are used
    /// without a restart.
    pub keys: Option<KeyWatch>,
    /// Reads the risk rule-set version in force from the store, on the same schedule:
    /// `Some` when it changed since the last read, and the engine reloads it.
    pub rules: Option<RulesWatch>,
    /// Follows the store's change feed (merchant and terminal status, limits, install
    /// locations) on a thread of its own; the engine checks the next request against
    /// each change as soon as it arrives.
    pub status: Option<StatusWatch>,
}

/// Waits up to the given time for the store to announce a change, then reads the
/// changes since the last read, with the feed position after them (blocking).
pub type StatusWatch =
    Box<dyn FnMut(std::time::Duration) -> Result<(Vec<switch::StatusChange>, i64), String> + Send>;

/// Follows the change feed on a thread of its own until the driver is gone, handing
/// every change (and the position after it) to the driver.
fn follow_feed(mut watch: StatusWatch, back: mpsc::Sender<(Vec<switch::StatusChange>, i64)>) {
    let spawned = std::thread::Builder::new()
        .name("posguard-feed".into())
        .spawn(move || {
            let mut position = i64::MIN;
            while !back.is_closed() {
                match watch(Duration::from_secs(1)) {
                    Ok((changes, at)) if !changes.is_empty() || at != position => {
                        position = at;
                        if back.blocking_send((changes, at)).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed not read; will retry");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "change feed thread not started: status changes wait for a restart");
    }
}

/// Reads the rule set in force when it changed (blocking; run off the runtime).
pub type RulesWatch = Box<dyn FnMut() -> Result<Option<risk::RuleSet>, String> + Send>;

/// Reads the rule-set table on a blocking thread and hands back a new version.
fn spawn_rules_check(watch: Arc<std::sync::Mutex<RulesWatch>>, back: mpsc::Sender<risk::RuleSet>) {
    tokio::task::spawn_blocking(move || {
        let mut watch = watch.lock().unwrap_or_else(|p| p.into_inner());
        match (watch)() {
            Ok(Some(rules)) => {
                let _ = back.blocking_send(rules);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "rule sets not read; the rules in force stay"),
        }
    });
}

/// Reads the zone keys and the token key in force (blocking; run off the runtime).
pub type KeyWatch =
    Box<dyn FnMut() -> Result<(switch::ZoneKeys, Option<cardsec::WrappedKey>), String> + Send>;

/// Reads the key table on a blocking thread and hands back what is in force.
fn spawn_key_check(
    watch: Arc<std::sync::Mutex<KeyWatch>>,
    back: mpsc::Sender<(switch::ZoneKeys, Option<cardsec::WrappedKey>)>,
) {
    tokio::task::spawn_blocking(move || {
        let mut watch = watch.lock().unwrap_or_else(|p| p.into_inner());
        match (watch)() {
            Ok(keys) => {
                let _ = back.blocking_send(keys);
            }
            Err(e) => tracing::warn!(error = %e, "key table not read; the keys in use stay"),
        }
    });
}

/// Loads an engine and its pending queue entries from the store (blocking).
pub type Reload = Box<dyn FnMut() -> Result<(Engine, Vec<SafRow>), String> + Send>;

/// Claims queue entries due before `cutoff_ms` on a blocking thread and hands them back:
/// only entries overdue by the adoption delay, whose owner has stopped sending them.
fn spawn_sweep(
    db: Arc<std::sync::Mutex<Box<dyn store::Backend>>>,
    owner: String,
    cutoff_ms: i64,
    back: mpsc::Sender<Vec<SafRow>>,
) {
    tokio::task::spawn_blocking(move || {
        let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
        match db.claim_due_saf(&owner, cutoff_ms, 60_000, 100) {
            Ok(rows) if !rows.is_empty() => {
                let _ = back.blocking_send(rows);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "queue sweep failed"),
        }
    });
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("engine", &self.engine)
            .field("pending_saf", &self.pending_saf.len())
            .field("sweeper", &self.sweeper.as_ref().map(|(_, owner)| owner))
            .finish()
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the rule file when its modification time changed; a file that does not
/// validate is logged and the rules in force stay.
fn reload_if_changed(
    engine: &mut Engine,
    path: &std::path::Path,
    seen: Option<std::time::SystemTime>,
) -> Option<std::time::SystemTime> {
    let now = modified(path);
    if now.is_none() || now == seen {
        return seen;
    }
    match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| risk::RuleSet::from_toml(&t).map_err(|e| e.to_string()))
    {
        Ok(rules) => engine.reload_rules(rules),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "risk rules not reloaded; the previous version stays in force")
        }
    }
    now
}

/// The kind of an input, for the log (never its content: frames carry card data).
fn input_kind(input: &Input<'_>) -> &'static str {
    match input {
        Input::TerminalFrame { .. } => "terminal frame",
        Input::IssuerFrame { .. } => "issuer frame",
        Input::IssuerTimeout { .. } => "issuer timeout",
        Input::IssuerUnavailable { .. } => "issuer unavailable",
        Input::SafAdopt { .. } => "queue adoption",
        Input::SafTimer { .. } => "queue timer",
        Input::PersistFailed { .. } => "persist failed",
        Input::Abandoned { .. } => "abandoned",
    }
}

/// What a timer feeds back to the engine.
#[derive(Debug, Clone, Copy)]
enum Timer {
    Issuer(i64),
    Saf(i64),
}

struct Completion {
    result: Persisted,
    then: Vec<Action>,
    on_fail: Vec<Action>,
}

struct Driver {
    engine: Engine,
    journal: Journal,
    clock: Arc<dyn Clock>,
    conns: HashMap<ConnId, (mpsc::Sender<Vec<u8>>, TerminalDialect)>,
    links: Vec<Option<mpsc::Sender<Vec<u8>>>>,
    next_link: usize,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    completions: mpsc::UnboundedSender<Completion>,
    pending_persists: usize,
    stats: Arc<GatewayStats>,
    metrics: crate::node_metrics::NodeMetrics,
    max_frame: usize,
    /// The engine panicked: its state can no longer be trusted, nothing more is fed
    /// to it, and the driver rebuilds it from the journal.
    engine_failed: bool,
}

/// Runs the acquirer's network edge until `shutdown` resolves, then drains: stops
/// accepting, waits (up to the drain timeout) for in-flight transactions and pending
/// journal writes, and returns. Each terminal listener speaks one dialect, over TCP or
/// TLS (a `(TcpListener, TerminalDialect)` pair is a plain one); the connection limits
/// (in all and per address) are shared by all of them.
pub async fn run(
    config: GatewayConfig,
    core: Core,
    terminal_listeners: impl IntoIterator<Item = impl Into<TerminalListener>>,
    clock: Arc<dyn Clock>,
    stats: Arc<GatewayStats>,
    shutdown: impl Future<Output = ()>,
) {
    let Core {
        engine,
        journal,
        pending_saf,
        sweeper,
        mut reload,
        keys,
        rules,
        status,
    } = core;
    let (status_tx, mut status_rx) = mpsc::channel::<(Vec<switch::StatusChange>, i64)>(4);
    if let Some(s) = status {
        follow_feed(s, status_tx);
    }
    let key_watch = keys.map(|k| Arc::new(std::sync::Mutex::new(k)));
    let (keys_tx, mut keys_rx) = mpsc::channel(2);
    let rules_watch = rules.map(|r| Arc::new(std::sync::Mutex::new(r)));
    let (rules_tx, mut rules_rx) = mpsc::channel::<risk::RuleSet>(2);
    let (adopt_tx, mut adopt_rx) = mpsc::channel::<Vec<SafRow>>(4);
    let sweeper = sweeper.map(|(b, owner)| (Arc::new(std::sync::Mutex::new(b)), owner));
    let adopt_after_ms = config.saf_adopt_after_ms;
    let (tx, mut rx) = mpsc::channel::<Event>(config.queue_depth.max(16));
    let (ctx, mut crx) = mpsc::unbounded_channel::<Completion>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admission = Admission::new(
        config.max_connections,
        config.max_connections_per_ip,
        config.max_sign_ons_per_ip_per_minute,
    );
    let servers: Vec<_> = terminal_listeners
        .into_iter()
        .map(|l| {
            let (tx, cfg, st, stop) = (tx.clone(), config.clone(), stats.clone(), stop_rx.clone());
            tokio::spawn(serve_terminals(
                l.into(),
                admission.clone(),
                tx,
                cfg,
                st,
                stop,
            ))
        })
        .collect();
    let links = spawn_links(&config, tx.clone(), stop_rx.clone());
    drop(tx);
    let mut d = Driver {
        engine,
        journal,
        clock,
        conns: HashMap::new(),
        links: vec![None; config.issuer_connections.max(1)],
        next_link: 0,
        timers: BTreeMap::new(),
        timer_seq: 0,
        completions: ctx,
        pending_persists: 0,
        stats,
        metrics: crate::node_metrics::NodeMetrics::default(),
        max_frame: config.max_frame,
        engine_failed: false,
    };
    // Recovery: reverse what a crash left waiting for the issuer, resume the queue.
    let now = d.clock.now();
    let actions = d.engine.recover(now, pending_saf);
    d.execute(actions);
    let mut metrics = tokio::time::interval(Duration::from_secs(1));
    let mut sweep_ticks = 0u64;
    let mut rules_seen = config.rules_path.as_deref().and_then(modified);
    metrics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    let mut draining_since: Option<Instant> = None;
    loop {
        let next_timer = d.timers.keys().next().map(|(at, _)| *at);
        let sleep_until = next_timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        if let Some(since) = draining_since {
            let idle = d.engine.in_flight() == 0 && d.pending_persists == 0;
            if idle || since.elapsed() > config.drain_timeout {
                if !idle {
                    tracing::warn!(
                        in_flight = d.engine.in_flight(),
                        "drain timeout: stopping with transactions in flight"
                    );
                }
                break;
            }
        }
        tokio::select! {
            biased;
            Some(c) = crx.recv() => d.complete(c),
            _ = &mut shutdown, if draining_since.is_none() => {
                tracing::info!("shutting down: draining in-flight transactions");
                draining_since = Some(Instant::now());
                let _ = stop_tx.send(true);
            }
            _ = tokio::time::sleep_until(sleep_until) => d.fire_timers(),
            _ = metrics.tick() => {
                d.publish_metrics();
                if let Some(path) = &config.rules_path {
                    rules_seen = reload_if_changed(&mut d.engine, path, rules_seen);
                }
                sweep_ticks += 1;
                if let (Some((db, owner)), true) = (&sweeper, sweep_ticks % config.saf_sweep_secs.max(1) == 0) {
                    let cutoff = d.clock.now().unix_ms - adopt_after_ms;
                    spawn_sweep(db.clone(), owner.clone(), cutoff, adopt_tx.clone());
                }
                if let (Some(w), true) = (&key_watch, sweep_ticks % config.key_check_secs.max(1) == 0) {
                    spawn_key_check(w.clone(), keys_tx.clone());
                }
                if let (Some(w), true) = (&rules_watch, sweep_ticks % config.key_check_secs.max(1) == 0) {
                    spawn_rules_check(w.clone(), rules_tx.clone());
                }
            }
            Some((zone, token)) = keys_rx.recv() => {
                d.engine.update_keys(zone, token.as_ref());
            }
            Some(rules) = rules_rx.recv() => {
                d.engine.reload_rules(rules);
            }
            Some((changes, at)) = status_rx.recv() => {
                for c in &changes {
                    d.engine.update_status(c);
                }
                d.stats.feed_position.store(at, Ordering::Relaxed);
            }
            Some(rows) = adopt_rx.recv() => {
                for entry in rows {
                    d.feed(Input::SafAdopt { entry });
                }
            }
            ev = rx.recv() => match ev {
                Some(e) => d.on_event(e),
                None if draining_since.is_some() => tokio::time::sleep(Duration::from_millis(5)).await,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(50)), if draining_since.is_some() => {}
        }
        if d.engine_failed
            && !d
                .restart_engine(&mut crx, &mut reload, config.drain_timeout)
                .await
        {
            break;
        }
    }
    let _ = stop_tx.send(true);
    for s in servers {
        s.abort();
    }
    for l in links {
        l.abort();
    }
    let Driver { journal, .. } = d;
    // Both the journal and a PostgreSQL sweeper connection block when they close.
    tokio::task::spawn_blocking(move || {
        journal.close();
        drop(sweeper);
    })
    .await
    .ok();
}

impl Driver {
    /// Hands an input to the engine and carries out what it asks. A panic in the
    /// engine (a bug: no input should cause one) is caught here: it is logged and
    /// counted, nothing more reaches that engine, and the main loop rebuilds it from
    /// the journal (`restart_engine`), so one message cannot take the node down.
    fn feed(&mut self, input: Input<'_>) {
        if self.engine_failed {
            return;
        }
        let now = self.clock.now();
        let what = input_kind(&input);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.handle(now, input)
        })) {
            Ok(actions) => self.execute(actions),
            Err(_) => {
                tracing::error!(
                    input = what,
                    "the engine panicked; it is rebuilt from the journal"
                );
                self.engine_failed = true;
            }
        }
    }

    /// After an engine panic: carries out the journal writes already submitted (their
    /// effects were decided before the panic and are durable once written), drops the
    /// timers of the old engine, builds a new engine from the store and runs its
    /// recovery, which reverses every request that was waiting for the issuer. Returns
    /// false if no new engine could be built: the node then stops rather than serve
    /// with an engine it cannot trust.
    async fn restart_engine(
        &mut self,
        completions: &mut mpsc::UnboundedReceiver<Completion>,
        reload: &mut Option<Reload>,
        drain_timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + drain_timeout;
        while self.pending_persists > 0 {
            match tokio::time::timeout_at(deadline, completions.recv()).await {
                Ok(Some(c)) => self.complete(c),
                _ => break,
            }
        }
        self.timers.clear();
        let Some(mut load) = reload.take() else {
            tracing::error!("no way to rebuild the engine: the node stops");
            return false;
        };
        let loaded = tokio::task::spawn_blocking(move || (load(), load)).await;
        let Ok((result, load)) = loaded else {
            tracing::error!("rebuilding the engine failed: the node stops");
            return false;
        };
        *reload = Some(load);
        match result {
            Ok((engine, pending)) => {
                self.engine = engine;
                self.engine_failed = false;
                self.stats.engine_restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    pending = pending.len(),
                    "engine rebuilt from the journal; recovering"
                );
                let now = self.clock.now();
                let actions = self.engine.recover(now, pending);
                self.execute(actions);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "rebuilding the engine failed: the node stops");
                false
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Terminal(TerminalEvent::Connected { conn, dialect, tx }) => {
                self.conns.insert(conn, (tx, dialect));
            }
            Event::Terminal(TerminalEvent::Frame { conn, frame }) => {
                self.stats.terminal_frames.fetch_add(1, Ordering::Relaxed);
                let Some(&(_, dialect)) = self.conns.get(&conn) else {
                    return;
                };
                self.feed(Input::TerminalFrame {
                    conn,
                    dialect,
                    frame: &frame,
                });
            }
            Event::Terminal(TerminalEvent::Closed { conn }) => {
                self.conns.remove(&conn);
            }
            Event::Link(LinkEvent::Up { index, tx }) => {
                if let Some(slot) = self.links.get_mut(index) {
                    *slot = Some(tx);
                }
                self.publish_links();
            }
            Event::Link(LinkEvent::Down { index }) => {
                if let Some(slot) = self.links.get_mut(index) {
                    *slot = None;
                }
                self.publish_links();
            }
            Event::Link(LinkEvent::Message { frame }) => {
                self.stats.issuer_received.fetch_add(1, Ordering::Relaxed);
                self.feed(Input::IssuerFrame { frame: &frame });
            }
        }
    }

    fn complete(&mut self, c: Completion) {
        self.pending_persists = self.pending_persists.saturating_sub(1);
        match c.result {
            Ok(()) => self.execute(c.then),
            Err(e) => {
                self.execute(c.on_fail);
                self.feed(Input::PersistFailed {
                    reason: e.to_string(),
                });
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((&(at, seq), &timer)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, seq));
            match timer {
                Timer::Issuer(txn_id) => self.feed(Input::IssuerTimeout { txn_id }),
                Timer::Saf(saf_id) => self.feed(Input::SafTimer { saf_id }),
            }
        }
    }

    fn publish_links(&self) {
        let up = self.links.iter().filter(|l| l.is_some()).count();
        self.stats
            .issuer_links_up
            .store(up as u64, Ordering::Relaxed);
    }

    fn publish_metrics(&mut self) {
        self.metrics.publish(&self.stats, self.conns.len());
        let (depth, oldest) = self.engine.saf_depth(self.clock.now());
        self.stats.saf_depth.store(depth as u64, Ordering::Relaxed);
        self.stats
            .saf_oldest_ms
            .store(oldest.max(0) as u64, Ordering::Relaxed);
        if depth > 0 {
            tracing::info!(depth, oldest_ms = oldest, "store-and-forward queue");
        }
    }

    fn start_timer(&mut self, after_ms: u64, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert(
            (
                Instant::now() + Duration::from_millis(after_ms),
                self.timer_seq,
            ),
            timer,
        );
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Persist {
                    writes,
                    then,
                    on_fail,
                } => {
                    self.metrics.on_writes(&writes);
                    self.pending_persists += 1;
                    let tx = self.completions.clone();
                    self.journal.submit(writes, move |result| {
                        let _ = tx.send(Completion {
                            result,
                            then,
                            on_fail,
                        });
                    });
                }
                Action::SendIssuer { txn_id, message } => {
                    self.metrics.on_issuer_send(txn_id);
                    if self.send_issuer(message) {
                        self.stats.issuer_sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats
                            .issuer_unavailable
                            .fetch_add(1, Ordering::Relaxed);
                        self.feed(Input::IssuerUnavailable { txn_id });
                    }
                }
                Action::SendTerminal { conn, frame } => {
                    let Some((tx, _)) = self.conns.get(&conn) else {
                        tracing::info!(conn = conn.0, "reply for a closed connection dropped");
                        continue;
                    };
                    let Some(framed) = self.framed(&frame, "terminal reply") else {
                        continue;
                    };
                    if tx.try_send(framed).is_ok() {
                        self.stats.terminal_replies.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tracing::warn!(
                            conn = conn.0,
                            "terminal connection not keeping up; reply dropped"
                        );
                    }
                }
                Action::StartIssuerTimer { txn_id, after_ms } => {
                    self.start_timer(after_ms, Timer::Issuer(txn_id))
                }
                Action::StartSafTimer { saf_id, after_ms } => {
                    self.start_timer(after_ms, Timer::Saf(saf_id))
                }
                Action::CloseTerminal { conn } => {
                    self.conns.remove(&conn);
                }
                Action::NoReply { conn } => {
                    // An empty frame frees the request's flow-control slot, writing
                    // nothing.
                    if let Some((tx, _)) = self.conns.get(&conn) {
                        let _ = tx.try_send(Vec::new());
                    }
                }
                Action::Abandon { txn_id } => self.feed(Input::Abandoned { txn_id }),
            }
        }
    }

    /// A length-prefixed frame, or `None` (logged) if the payload exceeds the frame limit.
    fn framed(&self, payload: &[u8], what: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(payload.len() + 2);
        match iso8583::frame::encode_frame(payload, self.max_frame, &mut out) {
            Ok(()) => Some(out),
            Err(e) => {
                tracing::error!(error = %e, what, "frame too large; not sent");
                None
            }
        }
    }

    /// Hands a message to a live issuer connection (round robin); false if none took it.
    fn send_issuer(&mut self, message: Vec<u8>) -> bool {
        let n = self.links.len();
        let Some(mut framed) = self.framed(&message, "issuer message") else {
            return false;
        };
        for i in 0..n {
            let idx = (self.next_link + i) % n;
            if let Some(tx) = &self.links[idx] {
                match tx.try_send(framed) {
                    Ok(()) => {
                        self.next_link = (idx + 1) % n;
                        return true;
                    }
                    Err(
                        mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f),
                    ) => framed = f,
                }
            }
        }
        false
    }
}
