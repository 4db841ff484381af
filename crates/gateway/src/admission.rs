//! Admission of terminal connections: the gateway-wide connection limit and the
//! per-address limit, shared by every terminal listener of one gateway, and the rate
//! limit on the log lines of refusals and of failed TLS handshakes (a flood of
//! connections must not flood the log).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The gateway holds `max_connections` connections.
    ConnectionLimit,
    /// The peer's address holds `max_connections_per_ip` connections.
    AddressLimit,
}

/// How often at most one refusal reason is logged.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The window of the per-address sign-on rate.
const SIGN_ON_WINDOW: Duration = Duration::from_secs(60);

/// The open terminal connections, in all and per peer address.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    max_sign_ons_per_minute: usize,
    state: Mutex<State>,
}

/// Addresses whose sign-on windows are kept at most; beyond it expired windows are
/// dropped, and if none has expired every window starts afresh.
const SIGN_ON_WINDOWS: usize = 65_536;

#[derive(Debug, Default)]
struct State {
    total: usize,
    /// Open connections per address. An address leaves with its last connection, so
    /// this holds at most `max_total` entries.
    per_ip: HashMap<IpAddr, usize>,
    connection_limit_log: LogLimit,
    address_limit_log: LogLimit,
    handshake_log: LogLimit,
    /// Per address: the start of its current minute and the sign-ons in it.
    sign_ons: HashMap<IpAddr, (Instant, usize)>,
    sign_on_log: LogLimit,
}

/// One refusal reason's log rate limit.
#[derive(Debug, Default)]
struct LogLimit {
    last_line: Option<Instant>,
    unlogged: u64,
}

/// An admitted connection's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    /// Limits of `max_total` connections, `max_per_ip` of them from one address.
    pub(crate) fn new(
        max_total: usize,
        max_per_ip: usize,
        max_sign_ons_per_minute: usize,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_ip,
            max_sign_ons_per_minute,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, or the limit that refuses it (the
    /// per-address one first: a busy address does not use up the gateway's places).
    pub(crate) fn admit(self: &Arc<Admission>, ip: IpAddr) -> Result<Admitted, Refusal> {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut s = self.state();
        if s.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::AddressLimit);
        }
        if s.total >= self.max_total {
            return Err(Refusal::ConnectionLimit);
        }
        s.total += 1;
        *s.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Notes a refusal at `now`. `Some(n)` when a log line is due: `n` refusals for
    /// this reason since the last line, this one included; `None` within a second of
    /// the last line.
    pub(crate) fn note_refusal(&self, refusal: Refusal, now: Instant) -> Option<u64> {
        let mut s = self.state();
        match refusal {
            Refusal::ConnectionLimit => s.connection_limit_log.note(now),
            Refusal::AddressLimit => s.address_limit_log.note(now),
        }
    }

    /// Whether `ip` may make one more sign-on at `now` (a fixed window of a minute per
    /// address); records it if so.
    pub(crate) fn allow_sign_on(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let mut s = self.state();
        if s.sign_ons.len() >= SIGN_ON_WINDOWS && !s.sign_ons.contains_key(&ip) {
            s.sign_ons
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < SIGN_ON_WINDOW);
            if s.sign_ons.len() >= SIGN_ON_WINDOWS {
                s.sign_ons.clear();
            }
        }
        let w = s.sign_ons.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(w.0) >= SIGN_ON_WINDOW {
            *w = (now, 0);
        }
        if w.1 >= self.max_sign_ons_per_minute {
            return false;
        }
        w.1 += 1;
        true
    }

    /// Notes a sign-on refused at `now`, as [`Admission::note_refusal`] does.
    pub(crate) fn note_sign_on_refused(&self, now: Instant) -> Option<u64> {
        self.state().sign_on_log.note(now)
    }

    /// Notes a failed TLS handshake at `now`, as [`Admission::note_refusal`] does a
    /// refusal (failures are one more reason, logged apart).
    pub(crate) fn note_handshake_failure(&self, now: Instant) -> Option<u64> {
        self.state().handshake_log.note(now)
    }
}

impl LogLimit {
    /// Counts one event at `now`; `Some(n)` when a line is due, with the `n` events
    /// since the last one.
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last_line
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut s = self.admission.state();
        s.total = s.total.saturating_sub(1);
        if let Entry::Occupied(mut e) = s.per_ip.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_share_until_the_gateway_is_full() {
        let a = Admission::new(5, 2, 120);
        let first: Vec<_> = (0..2).map(|_| a.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::AddressLimit);
        // The same address written as an IPv4-mapped IPv6 address is the same peer.
        assert_eq!(
            a.admit(ip("::ffff:10.0.0.1")).unwrap_err(),
            Refusal::AddressLimit
        );
        let others: Vec<_> = ["10.0.0.2", "10.0.0.2", "10.0.0.3"]
            .into_iter()
            .map(|p| a.admit(ip(p)).unwrap())
            .collect();
        assert_eq!(
            a.admit(ip("10.0.0.4")).unwrap_err(),
            Refusal::ConnectionLimit
        );
        // An address at its limit is told so even when the gateway is full too.
        assert_eq!(a.admit(ip("10.0.0.2")).unwrap_err(), Refusal::AddressLimit);
        drop(first);
        assert!(a.admit(ip("10.0.0.1")).is_ok(), "places come back on drop");
        drop(others);
        let s = a.state();
        assert_eq!((s.total, s.per_ip.len()), (0, 0), "every address forgotten");
    }

    #[test]
    fn refusals_are_logged_once_a_second_per_reason_with_a_count() {
        let a = Admission::new(1, 1, 120);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let log = |r, at| a.note_refusal(r, t0 + ms(at));
        assert_eq!(log(Refusal::AddressLimit, 0), Some(1));
        assert_eq!(log(Refusal::AddressLimit, 10), None);
        assert_eq!(
            log(Refusal::ConnectionLimit, 20),
            Some(1),
            "reasons are separate"
        );
        assert_eq!(log(Refusal::AddressLimit, 999), None);
        assert_eq!(log(Refusal::AddressLimit, 1000), Some(3));
        assert_eq!(log(Refusal::AddressLimit, 5000), Some(1));
        // Failed handshakes are counted apart from both.
        assert_eq!(a.note_handshake_failure(t0 + ms(5000)), Some(1));
        assert_eq!(a.note_handshake_failure(t0 + ms(5500)), None);
        assert_eq!(a.note_handshake_failure(t0 + ms(6000)), Some(2));
    }
}

#[cfg(test)]
mod sign_on_tests {
    use super::*;

    #[test]
    fn sign_ons_per_address_are_limited_per_minute() {
        let a = Admission::new(10, 10, 2);
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(a.allow_sign_on(x, t0) && a.allow_sign_on(x, t0));
        assert!(!a.allow_sign_on(x, t0 + Duration::from_secs(59)));
        assert!(a.allow_sign_on(y, t0), "another address has its own budget");
        assert!(
            a.allow_sign_on(x, t0 + Duration::from_secs(60)),
            "a new minute"
        );
    }
}
