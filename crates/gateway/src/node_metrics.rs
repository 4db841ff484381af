//! The node's switching metrics, through the `metrics` facade (the process installs
//! the Prometheus recorder; without one these are no-ops): requests by kind and
//! response code, end-to-end and issuer latency, risk verdicts, terminal connections,
//! issuer links, and the gateway's counters. Read from what the driver already sees:
//! the journal writes the engine asks for and the messages it sends.
//!
//! A request's clock starts when the switch first asks to journal its transaction
//! (the request is received and checked) and stops when it asks to write the final
//! state (before that last commit and the reply); the issuer's clock runs from the
//! request going to the issuer to that same point. A request decided at once (refused
//! by risk or a check) is counted with the time of the engine's step, about zero. Both maps are bounded: past
//! [`MAX_TRACKED`] transactions the oldest are forgotten (and not measured).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use store::{TxnState, Write};
use tokio::time::Instant;

use crate::driver::GatewayStats;

/// Transactions measured at once at most.
pub const MAX_TRACKED: usize = 200_000;

/// Requests answered, by `kind` and `code` (field 39 sent to the terminal).
pub const REQUESTS: &str = "posguard_requests_total";
/// Seconds from a request's arrival to its final state, by `kind`.
pub const E2E: &str = "posguard_request_duration_seconds";
/// Seconds from sending a request to the issuer to its answer deciding it.
pub const ISSUER: &str = "posguard_issuer_duration_seconds";
/// Risk decisions, by `verdict`.
pub const RISK: &str = "posguard_risk_decisions_total";
/// Terminal connections open now.
pub const TERMINALS: &str = "posguard_terminal_connections";
/// Issuer connections up now.
pub const LINKS: &str = "posguard_issuer_links_up";

/// Latency buckets, seconds: 0.25 ms to 16 s.
pub const BUCKETS: [f64; 17] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192, 16.384,
];

/// Describes the metrics (HELP lines) on the process's recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "Terminal requests answered, by kind and response code"
    );
    metrics::describe_histogram!(
        E2E,
        metrics::Unit::Seconds,
        "From a request's arrival to its final state"
    );
    metrics::describe_histogram!(
        ISSUER,
        metrics::Unit::Seconds,
        "From sending a request to the issuer to its answer"
    );
    metrics::describe_counter!(RISK, "Risk decisions by verdict");
    metrics::describe_gauge!(TERMINALS, "Terminal connections open");
    metrics::describe_gauge!(LINKS, "Issuer connections up");
    for (name, help) in COUNTERS {
        metrics::describe_counter!(*name, *help);
    }
}

/// The gateway's own counters as exported: (name, help).
const COUNTERS: &[(&str, &str)] = &[
    (
        "posguard_terminal_frames_total",
        "Terminal frames handed to the switch",
    ),
    ("posguard_issuer_sent_total", "Messages sent to the issuer"),
    (
        "posguard_issuer_received_total",
        "Messages received from the issuer",
    ),
    (
        "posguard_issuer_unavailable_total",
        "Requests answered 91 because no issuer link took them",
    ),
    (
        "posguard_refused_connections_total",
        "Terminal connections refused at a connection limit",
    ),
    (
        "posguard_engine_restarts_total",
        "Times the switch was rebuilt from the journal after a failure",
    ),
];

/// What the driver tracks to measure.
#[derive(Debug, Default)]
pub(crate) struct NodeMetrics {
    started: HashMap<i64, (Instant, &'static str)>,
    sent: HashMap<i64, Instant>,
    order: VecDeque<i64>,
}

/// `code` as a label: two letters or digits, else `other` (bounded cardinality).
fn code_label(code: Option<&str>) -> String {
    match code {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => c.to_owned(),
        _ => "other".to_owned(),
    }
}

impl NodeMetrics {
    /// The writes of one persist: new transactions start their clocks, final states
    /// stop them, risk decisions are counted.
    pub(crate) fn on_writes(&mut self, writes: &[Write]) {
        let now = Instant::now();
        for w in writes {
            match w {
                Write::NewTxn(t) => {
                    let kind = t.kind.name();
                    if t.state == TxnState::Authorizing {
                        self.start(t.txn_id, now, kind);
                    } else {
                        // Decided at once (refused by risk or a check, answered
                        // locally): its time inside the switch is the engine's step.
                        self.start(t.txn_id, now, kind);
                        self.finish(t.txn_id, kind, t.response_code.as_deref(), now);
                    }
                }
                Write::UpdateTxn(t) if t.state != TxnState::Authorizing => {
                    self.finish(t.txn_id, t.kind.name(), t.response_code.as_deref(), now);
                }
                Write::Decision(d) => {
                    metrics::counter!(RISK, "verdict" => d.verdict.clone()).increment(1);
                }
                _ => {}
            }
        }
    }

    /// A request of `txn_id` went to the issuer.
    pub(crate) fn on_issuer_send(&mut self, txn_id: i64) {
        if self.started.contains_key(&txn_id) {
            self.sent.entry(txn_id).or_insert_with(Instant::now);
        }
    }

    fn start(&mut self, txn_id: i64, now: Instant, kind: &'static str) {
        if self.started.insert(txn_id, (now, kind)).is_none() {
            self.order.push_back(txn_id);
        }
        while self.started.len() > MAX_TRACKED {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.started.remove(&old);
            self.sent.remove(&old);
        }
    }

    fn finish(&mut self, txn_id: i64, kind: &'static str, code: Option<&str>, now: Instant) {
        metrics::counter!(REQUESTS, "kind" => kind, "code" => code_label(code)).increment(1);
        if let Some((at, kind)) = self.started.remove(&txn_id) {
            metrics::histogram!(E2E, "kind" => kind).record(now.duration_since(at).as_secs_f64());
        }
        if let Some(at) = self.sent.remove(&txn_id) {
            metrics::histogram!(ISSUER).record(now.duration_since(at).as_secs_f64());
        }
        if self.order.len() > 2 * MAX_TRACKED {
            let started = &self.started;
            self.order.retain(|id| started.contains_key(id));
        }
    }

    /// Gauges and the gateway's counters, once a second.
    pub(crate) fn publish(&self, stats: &GatewayStats, terminal_connections: usize) {
        metrics::gauge!(TERMINALS).set(terminal_connections as f64);
        metrics::gauge!(LINKS).set(stats.issuer_links_up.load(Ordering::Relaxed) as f64);
        let values = [
            stats.terminal_frames.load(Ordering::Relaxed),
            stats.issuer_sent.load(Ordering::Relaxed),
            stats.issuer_received.load(Ordering::Relaxed),
            stats.issuer_unavailable.load(Ordering::Relaxed),
            stats.refused_connections.load(Ordering::Relaxed)
                + stats.refused_per_ip.load(Ordering::Relaxed),
            stats.engine_restarts.load(Ordering::Relaxed),
        ];
        for ((name, _), v) in COUNTERS.iter().zip(values) {
            metrics::counter!(*name).absolute(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_bounded_labels() {
        for (code, label) in [
            (Some("00"), "00"),
            (Some("A0"), "A0"),
            (Some("0"), "other"),
            (Some("0\n"), "other"),
            (Some("000"), "other"),
            (None, "other"),
        ] {
            assert_eq!(code_label(code), label, "{code:?}");
        }
    }
}
