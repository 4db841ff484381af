//! What a fleet run produced: counts, reversals, latency, and every approved transaction.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::kind::TxKind;
use crate::terminal::{BatchEntry, PendingReversal};

/// The key under which a timed-out request is counted.
pub const TIMEOUT: &str = "timeout";
/// The key under which a reply whose MAC failed is counted.
pub const MAC_FAILURE: &str = "mac-failure";
/// The key under which a verified but unusable reply is counted.
pub const BAD_REPLY: &str = "bad-reply";
/// The key under which a request that found no connection is counted.
pub const NO_CONNECTION: &str = "no-connection";

/// Reversals the fleet sent and how they ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReversalCounts {
    /// 0400s written (a repeat counts again).
    pub sent: u64,
    /// Reversals acknowledged by a valid 0410.
    pub acknowledged: u64,
    /// Acknowledged reversals by their field 39 reason (`98`, `A0`, `06`).
    pub by_reason: BTreeMap<String, u64>,
    /// Approved sales the customer cancelled (each owes a `06` reversal).
    pub cancelled_after_approval: u64,
    /// Terminals that ended the run still owing a reversal.
    pub unresolved: u64,
}

/// Latency percentiles of financial requests (write to verified reply), in microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Number of replies measured.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// 50th percentile.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// One terminal's part of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalReport {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// Its approved transactions (batch record), oldest first; cancelled ones are gone.
    pub approved: Vec<BatchEntry>,
    /// The reversal it still owed at the end, if any.
    pub pending_reversal: Option<PendingReversal>,
    /// Why it stopped early (bad setup, sign-on refused), if it did.
    pub error: Option<String>,
    /// Where it would resume (next STAN, batch), once it ran.
    pub resume: Option<crate::fleet::Resume>,
}

/// The result of [`crate::fleet::run_fleet`].
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Financial requests sent (not sign-ons, not reversals).
    pub transactions: u64,
    /// Replies by transaction type and field 39 (or `timeout`, `mac-failure`, …).
    pub counts: BTreeMap<TxKind, BTreeMap<String, u64>>,
    /// Reversal accounting.
    pub reversals: ReversalCounts,
    /// Batch settlements the acquirer answered balanced (when the fleet settles).
    pub batches_balanced: u64,
    /// Batch settlements answered not balanced (each starts an upload).
    pub batches_not_balanced: u64,
    /// Uploads whose batch end the acquirer accepted: batches closed after an upload.
    pub batches_uploaded: u64,
    /// Settlements that did not close the batch (no answer, refused, abandoned upload).
    pub batches_failed: u64,
    /// Requests of any kind that got no reply in time.
    pub timeouts: u64,
    /// Replies whose MAC did not verify.
    pub mac_failures: u64,
    /// Successful sign-ons.
    pub sign_ons: u64,
    /// TCP connections opened after the first one of each terminal.
    pub reconnects: u64,
    /// Requests the terminal refused to build, by reason.
    pub errors: BTreeMap<String, u64>,
    /// Latency of financial requests.
    pub latency: Latency,
    /// Financial requests per second over the run.
    pub achieved_rate: f64,
    /// Per-terminal details, in configuration order.
    pub terminals: Vec<TerminalReport>,
}

impl FleetReport {
    /// Replies of one kind with one code (`"00"`, `"55"`, `"timeout"`…).
    pub fn count(&self, kind: TxKind, code: &str) -> u64 {
        self.counts
            .get(&kind)
            .and_then(|m| m.get(code))
            .copied()
            .unwrap_or(0)
    }

    /// Every request of one kind, whatever its result.
    pub fn total(&self, kind: TxKind) -> u64 {
        self.counts.get(&kind).map_or(0, |m| m.values().sum())
    }

    /// Approved transactions across all terminals' batch records.
    pub fn approved_entries(&self) -> impl Iterator<Item = (&TerminalReport, &BatchEntry)> {
        self.terminals
            .iter()
            .flat_map(|t| t.approved.iter().map(move |e| (t, e)))
    }
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "terminal fleet: {} terminals, {} transactions in {secs:.2} s ({:.1}/s)",
            self.terminals.len(),
            self.transactions,
            self.achieved_rate
        )?;
        writeln!(f, "{:<16} {:>8}  results", "type", "total")?;
        for (kind, codes) in &self.counts {
            let total: u64 = codes.values().sum();
            let detail: Vec<String> = codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            writeln!(f, "{:<16} {total:>8}  {}", kind.name(), detail.join(" "))?;
        }
        let r = &self.reversals;
        let reasons: Vec<String> = r
            .by_reason
            .iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect();
        writeln!(
            f,
            "reversals: sent {} acknowledged {} [{}] cancelled-after-approval {} unresolved {}",
            r.sent,
            r.acknowledged,
            reasons.join(" "),
            r.cancelled_after_approval,
            r.unresolved
        )?;
        let batches = [
            self.batches_balanced,
            self.batches_not_balanced,
            self.batches_uploaded,
            self.batches_failed,
        ];
        if batches.iter().any(|n| *n > 0) {
            writeln!(
                f,
                "batch settlements: balanced {} not-balanced {} uploaded {} failed {}",
                batches[0], batches[1], batches[2], batches[3]
            )?;
        }
        writeln!(
            f,
            "timeouts {}  mac failures {}  sign-ons {}  reconnects {}",
            self.timeouts, self.mac_failures, self.sign_ons, self.reconnects
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency (µs, n={}): mean {:.0} p50 {} p90 {} p99 {} p99.9 {} max {}",
            l.count, l.mean_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
        )?;
        for (why, n) in &self.errors {
            writeln!(f, "refused: {why} ×{n}")?;
        }
        for t in &self.terminals {
            if let Some(e) = &t.error {
                writeln!(f, "terminal {}: {e}", t.terminal_id)?;
            }
        }
        Ok(())
    }
}
