//! Velocity counters over sliding windows, per card, terminal, merchant, BIN and
//! (card, terminal, amount).
//!
//! Windows up to 10 minutes are exact to the second (recent events are kept, bounded);
//! 1 hour and 1 day are summed from per-minute buckets (exact to the minute). Memory is
//! bounded: series idle for a day are dropped, and each series keeps at most
//! [`RECENT_LIMIT`] recent events.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::facts::{Counter, Metric, Subject};

/// The identities of one transaction for the counters.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    /// The card's token.
    pub card: &'a str,
    /// Terminal id.
    pub terminal: &'a str,
    /// Merchant id.
    pub merchant: &'a str,
    /// First six digits of the card.
    pub bin: &'a str,
}

/// Where counters live: in this process, or shared (Redis) between acquirer nodes.
pub trait Velocity: Send {
    /// The counter's value before this transaction (its own attempt not included).
    fn query(&mut self, keys: &Keys<'_>, amount: i64, counter: Counter, now_secs: i64) -> i64;
    /// Records an attempt.
    fn record(&mut self, keys: &Keys<'_>, amount: i64, now_secs: i64);
    /// Records that the latest attempt with these keys was declined.
    fn record_decline(&mut self, keys: &Keys<'_>, amount: i64, now_secs: i64);
}

/// Recent events kept per series at most.
pub const RECENT_LIMIT: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Recent {
    secs: i64,
    card: u64,
    amount: i64,
    declined: bool,
}

#[derive(Debug, Default)]
struct Series {
    minutes: VecDeque<(i64, u32, i64, u32)>,
    recent: VecDeque<Recent>,
    last: i64,
}

impl Series {
    fn prune(&mut self, now: i64) {
        while self
            .minutes
            .front()
            .is_some_and(|m| (m.0 + 1) * 60 <= now - 86_400)
        {
            self.minutes.pop_front();
        }
        // Room for the event about to be added: at most RECENT_LIMIT after it.
        while self.recent.front().is_some_and(|r| r.secs <= now - 600)
            || self.recent.len() >= RECENT_LIMIT
        {
            self.recent.pop_front();
        }
    }
}

/// In-process counters (the embedded default).
#[derive(Debug)]
pub struct MemoryVelocity {
    series: HashMap<(Subject, String), Series>,
    max_series: usize,
    records: u64,
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn key_of(subject: Subject, k: &Keys<'_>, amount: i64) -> (Subject, String) {
    let id = match subject {
        Subject::Card => k.card.to_owned(),
        Subject::Terminal => k.terminal.to_owned(),
        Subject::Merchant => k.merchant.to_owned(),
        Subject::Bin => k.bin.to_owned(),
        Subject::Dup => format!("{}/{}/{amount}", k.card, k.terminal),
    };
    (subject, id)
}

const SUBJECTS: [Subject; 5] = [
    Subject::Card,
    Subject::Terminal,
    Subject::Merchant,
    Subject::Bin,
    Subject::Dup,
];

impl MemoryVelocity {
    /// Counters for at most `max_series` subjects at once (idle ones are dropped first).
    pub fn new(max_series: usize) -> MemoryVelocity {
        MemoryVelocity {
            series: HashMap::new(),
            max_series: max_series.max(16),
            records: 0,
        }
    }

    /// Subjects currently tracked.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Drops subjects nothing in which can still be counted. A series' newest minute
    /// bucket counts until its *end* is a day old (queries and `prune` round to the
    /// minute), so a series is dropped only then: dropping it at its last event's second
    /// made a sweep change what a later query sees, and when sweeps fall depends on how
    /// many records came before (a back-test replaying the journal disagreed with the
    /// live engine).
    fn sweep(&mut self, now: i64) {
        self.series
            .retain(|_, s| (s.last.div_euclid(60) + 1) * 60 > now - 86_400);
        if self.series.len() >= self.max_series {
            // Still full of active subjects: drop the least recently active half.
            let mut lasts: Vec<i64> = self.series.values().map(|s| s.last).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            self.series.retain(|_, s| s.last > cut);
        }
    }
}

impl Velocity for MemoryVelocity {
    fn query(&mut self, keys: &Keys<'_>, amount: i64, c: Counter, now: i64) -> i64 {
        let Some(s) = self.series.get(&key_of(c.subject, keys, amount)) else {
            return 0;
        };
        let w = c.window.secs();
        let recent = || s.recent.iter().filter(|r| r.secs > now - w);
        match c.metric {
            Metric::DistinctCards => {
                let mut cards: Vec<u64> = recent().map(|r| r.card).collect();
                cards.sort_unstable();
                cards.dedup();
                cards.len() as i64
            }
            Metric::SameAmount => recent().filter(|r| r.amount == amount).count() as i64,
            _ if w <= 600 => match c.metric {
                Metric::Count => recent().count() as i64,
                Metric::Sum => recent().map(|r| r.amount).sum(),
                _ => recent().filter(|r| r.declined).count() as i64,
            },
            _ => {
                let buckets = s.minutes.iter().filter(|m| (m.0 + 1) * 60 > now - w);
                match c.metric {
                    Metric::Count => buckets.map(|m| i64::from(m.1)).sum(),
                    Metric::Sum => buckets.map(|m| m.2).sum(),
                    _ => buckets.map(|m| i64::from(m.3)).sum(),
                }
            }
        }
    }

    fn record(&mut self, keys: &Keys<'_>, amount: i64, now: i64) {
        self.records += 1;
        if self.records % 4_096 == 0 || self.series.len() >= self.max_series {
            self.sweep(now);
        }
        let card = hash(keys.card);
        for subject in SUBJECTS {
            let s = self
                .series
                .entry(key_of(subject, keys, amount))
                .or_default();
            s.prune(now);
            s.last = now;
            let minute = now.div_euclid(60);
            match s.minutes.back_mut() {
                Some(m) if m.0 == minute => {
                    m.1 += 1;
                    m.2 += amount;
                }
                _ => s.minutes.push_back((minute, 1, amount, 0)),
            }
            s.recent.push_back(Recent {
                secs: now,
                card,
                amount,
                declined: false,
            });
        }
    }

    fn record_decline(&mut self, keys: &Keys<'_>, amount: i64, now: i64) {
        for subject in SUBJECTS {
            let Some(s) = self.series.get_mut(&key_of(subject, keys, amount)) else {
                continue;
            };
            let minute = now.div_euclid(60);
            match s.minutes.back_mut() {
                Some(m) if m.0 == minute => m.3 += 1,
                _ => s.minutes.push_back((minute, 0, 0, 1)),
            }
            if let Some(r) = s.recent.iter_mut().rev().find(|r| !r.declined) {
                r.declined = true;
            }
        }
    }
}
