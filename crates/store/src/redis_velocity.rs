//! Velocity counters in Redis, shared by several acquirer nodes.
//!
//! The same semantics as `risk::MemoryVelocity`: per subject, a sorted set of recent
//! events (score = second; member = sequence, card hash, amount, declined) for windows
//! up to 10 minutes, pruned to 10 minutes and at most `risk::velocity::RECENT_LIMIT`
//! events; and per-minute hashes (count, sum, declines) for 1 hour and 1 day, expiring
//! after a day. Synchronous client: it runs on the engine's task, one round trip per
//! counter read and one pipeline per record.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use redis::Commands;
use risk::facts::{Counter, Metric, Subject};
use risk::velocity::RECENT_LIMIT;
use risk::{Keys, Velocity};

use crate::StoreError;

/// Counters in Redis under a key prefix.
pub struct RedisVelocity {
    conn: redis::Connection,
    prefix: String,
    seq: u64,
    node: u64,
}

impl std::fmt::Debug for RedisVelocity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisVelocity({})", self.prefix)
    }
}

const SUBJECTS: [Subject; 5] = [
    Subject::Card,
    Subject::Terminal,
    Subject::Merchant,
    Subject::Bin,
    Subject::Dup,
];

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

struct Event {
    card: u64,
    amount: i64,
    declined: bool,
}

fn parse(member: &str) -> Option<Event> {
    let mut p = member.split('|');
    let _seq = p.next()?;
    Some(Event {
        card: p.next()?.parse().ok()?,
        amount: p.next()?.parse().ok()?,
        declined: p.next()? == "1",
    })
}

impl RedisVelocity {
    /// Connects to `redis://…`; every key starts with `prefix` (one per deployment).
    pub fn connect(url: &str, prefix: &str) -> Result<RedisVelocity, StoreError> {
        let conn = redis::Client::open(url)?.get_connection()?;
        let node = hash(&format!("{prefix}{}", std::process::id()));
        Ok(RedisVelocity {
            conn,
            prefix: prefix.to_owned(),
            seq: 0,
            node,
        })
    }

    fn key(&self, subject: Subject, k: &Keys<'_>, amount: i64) -> String {
        let (s, id) = match subject {
            Subject::Card => ("c", k.card.to_owned()),
            Subject::Terminal => ("t", k.terminal.to_owned()),
            Subject::Merchant => ("m", k.merchant.to_owned()),
            Subject::Bin => ("b", k.bin.to_owned()),
            Subject::Dup => ("d", format!("{}/{}/{amount}", k.card, k.terminal)),
        };
        format!("{}:{s}:{id}", self.prefix)
    }

    /// Events of the recent set newer than `since` (exclusive), oldest first.
    fn recent(&mut self, key: &str, since: i64) -> Vec<Event> {
        let rows: Vec<(String, i64)> = self
            .conn
            .zrangebyscore_withscores(format!("{key}:r"), format!("({since}"), "+inf")
            .unwrap_or_default();
        rows.iter().filter_map(|(m, _)| parse(m)).collect()
    }

    fn minutes(&mut self, key: &str, field: &str, since: i64) -> i64 {
        let all: Vec<(i64, i64)> = self
            .conn
            .hgetall(format!("{key}:{field}"))
            .unwrap_or_default();
        all.iter()
            .filter(|(minute, _)| (minute + 1) * 60 > since)
            .map(|(_, v)| *v)
            .sum()
    }
}

impl Velocity for RedisVelocity {
    fn query(&mut self, keys: &Keys<'_>, amount: i64, c: Counter, now: i64) -> i64 {
        let key = self.key(c.subject, keys, amount);
        let w = c.window.secs();
        match c.metric {
            Metric::DistinctCards => {
                let mut cards: Vec<u64> =
                    self.recent(&key, now - w).iter().map(|e| e.card).collect();
                cards.sort_unstable();
                cards.dedup();
                cards.len() as i64
            }
            Metric::SameAmount => self
                .recent(&key, now - w)
                .iter()
                .filter(|e| e.amount == amount)
                .count() as i64,
            m if w <= 600 => {
                let events = self.recent(&key, now - w);
                match m {
                    Metric::Count => events.len() as i64,
                    Metric::Sum => events.iter().map(|e| e.amount).sum(),
                    _ => events.iter().filter(|e| e.declined).count() as i64,
                }
            }
            Metric::Count => self.minutes(&key, "mc", now - w),
            Metric::Sum => self.minutes(&key, "ms", now - w),
            _ => self.minutes(&key, "md", now - w),
        }
    }

    fn record(&mut self, keys: &Keys<'_>, amount: i64, now: i64) {
        let card = hash(keys.card);
        let minute = now.div_euclid(60);
        let mut pipe = redis::pipe();
        for subject in SUBJECTS {
            let key = self.key(subject, keys, amount);
            self.seq += 1;
            let member = format!("{:020}{:016x}|{card}|{amount}|0", self.seq, self.node);
            let recent = format!("{key}:r");
            pipe.zrembyscore(&recent, "-inf", now - 600).ignore();
            pipe.zadd(&recent, member, now).ignore();
            pipe.zremrangebyrank(&recent, 0, -(RECENT_LIMIT as isize) - 1)
                .ignore();
            pipe.expire(&recent, 700).ignore();
            for (field, by) in [("mc", 1), ("ms", amount)] {
                pipe.hincr(format!("{key}:{field}"), minute, by).ignore();
                pipe.expire(format!("{key}:{field}"), 86_400 + 120).ignore();
            }
        }
        if let Err(e) = pipe.query::<()>(&mut self.conn) {
            tracing::warn!(error = %e, "redis counters not recorded");
        }
    }

    fn record_decline(&mut self, keys: &Keys<'_>, amount: i64, now: i64) {
        let minute = now.div_euclid(60);
        for subject in SUBJECTS {
            let key = self.key(subject, keys, amount);
            let recent = format!("{key}:r");
            let _: Result<(), _> = self.conn.hincr(format!("{key}:md"), minute, 1);
            let _: Result<(), _> = self.conn.expire(format!("{key}:md"), 86_400 + 120);
            // Mark the latest attempt not yet declined.
            let rows: Vec<(String, i64)> = self
                .conn
                .zrevrange_withscores(&recent, 0, -1)
                .unwrap_or_default();
            if let Some((member, score)) = rows.into_iter().find(|(m, _)| m.ends_with("|0")) {
                let flagged = format!("{}1", &member[..member.len() - 1]);
                let _: Result<(), _> = redis::pipe()
                    .zrem(&recent, &member)
                    .zadd(&recent, flagged, score)
                    .query(&mut self.conn);
            }
        }
    }
}
