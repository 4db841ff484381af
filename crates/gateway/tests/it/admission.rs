//! How many connections the gateway takes, and from whom: the connection limit and the
//! per-address limit hold over every terminal listener, a refused connection is closed
//! unanswered, and a place comes back when its connection closes.

use gateway::{GatewayConfig, TerminalDialect};

use crate::harness::{config, request, Gateway, Seen, Term, PROMPT};

const CUP: TerminalDialect = TerminalDialect::CupPos;
const ASCII: TerminalDialect = TerminalDialect::Iso87Ascii;

/// Connects to each `(listener, dialect)` in turn; each connection is served (its
/// request answered) before the next opens, so the gateway has admitted it.
async fn served(gw: &Gateway, on: &[TerminalDialect]) -> Vec<(Term, TerminalDialect)> {
    let mut open = Vec::new();
    for &dialect in on {
        let mut t = Term::connect(gw.addr(dialect)).await;
        assert!(!t.round_trip(&request(dialect)).await.is_empty());
        open.push((t, dialect));
    }
    open
}

/// Connects to `dialect`'s listener and expects the gateway to close it unanswered.
async fn refused(gw: &Gateway, dialect: TerminalDialect) {
    let mut t = Term::connect(gw.addr(dialect)).await;
    assert_eq!(t.watch(PROMPT).await, Seen::Closed, "refused and closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_are_limited_across_listeners() {
    let cfg = GatewayConfig {
        max_connections_per_ip: 3,
        ..config()
    };
    let gw = Gateway::start("per-address", cfg).await;
    let mut open = served(&gw, &[CUP, ASCII, CUP]).await;
    // A fourth connection from 127.0.0.1 is refused, on either listener.
    refused(&gw, ASCII).await;
    refused(&gw, CUP).await;
    assert_eq!(gw.count(|s| &s.refused_per_ip), 2);
    assert_eq!(gw.count(|s| &s.refused_connections), 0);
    // The three admitted are still served.
    for (t, dialect) in &mut open {
        assert!(!t.round_trip(&request(*dialect)).await.is_empty());
    }
    // Once one closes, its place is free.
    let (first, _) = open.remove(0);
    first.finish().await;
    open.extend(served(&gw, &[ASCII]).await);
    refused(&gw, CUP).await;
    assert_eq!(gw.count(|s| &s.refused_per_ip), 3);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_holds_across_listeners() {
    let cfg = GatewayConfig {
        max_connections: 2,
        ..config()
    };
    let gw = Gateway::start("connection-limit", cfg).await;
    let mut open = served(&gw, &[ASCII, CUP]).await;
    refused(&gw, ASCII).await;
    assert_eq!(gw.count(|s| &s.refused_connections), 1);
    assert_eq!(gw.count(|s| &s.refused_per_ip), 0);
    let (first, _) = open.remove(0);
    first.finish().await;
    open.extend(served(&gw, &[CUP]).await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_the_engine_closes_gives_its_place_back() {
    let cfg = GatewayConfig {
        max_connections: 1,
        ..config()
    };
    let gw = Gateway::start("engine-closes", cfg).await;
    let mut t = Term::connect(gw.cup).await;
    // A cup-pos frame too short for its TPDU and header: the engine closes the
    // connection. The terminal keeps its end open; the gateway stops reading anyway.
    assert!(t.send(&[0, 3, 0x60, 0, 1]).await);
    assert_eq!(t.watch(PROMPT).await, Seen::Closed);
    let _still_held = t;
    served(&gw, &[ASCII]).await;
    assert_eq!(gw.count(|s| &s.refused_connections), 0);
    gw.stop().await;
}

/// Sign-ons are limited per address as well as per terminal: someone replaying or
/// forging sign-ons for many terminals from one host is cut off at the address's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ons_beyond_the_address_rate_close_the_connection() {
    let cfg = GatewayConfig {
        max_sign_ons_per_ip_per_minute: 3,
        ..config()
    };
    let gw = Gateway::start("sign-on-rate", cfg).await;
    let sign_on = request(TerminalDialect::CupPos);
    let mut first = Term::connect(gw.cup).await;
    for _ in 0..3 {
        first.round_trip(&sign_on).await;
    }
    assert!(first.send(&sign_on).await, "written");
    assert_eq!(
        first.watch(PROMPT).await,
        Seen::Closed,
        "the fourth is refused"
    );
    // The address's budget is spent on every connection it opens.
    let mut second = Term::connect(gw.cup).await;
    assert!(second.send(&sign_on).await, "written");
    assert_eq!(second.watch(PROMPT).await, Seen::Closed);
    assert_eq!(gw.count(|s| &s.refused_sign_ons), 2);
    gw.stop().await;
}
