//! A terminal connection holds its place only while it behaves: a frame must arrive
//! whole within the frame timeout of its first byte, a request must come within the
//! idle timeout, and trickling bytes buys no time.

use std::time::Duration;

use gateway::{GatewayConfig, TerminalDialect};

use crate::harness::{config, request, Gateway, Seen, Term, MARGIN};

const EVERY_100MS: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_trickled_a_byte_at_a_time_is_cut_off_at_the_frame_timeout() {
    let cfg = config();
    let limit = cfg.frame_timeout + MARGIN;
    let gw = Gateway::start("trickled-frame", cfg).await;
    let mut t = Term::connect(gw.cup).await;
    // A 200-byte frame at ten bytes a second would take 20 s; each byte used to
    // restart the idle timeout.
    let frame = [0u8, 200].into_iter().chain(std::iter::repeat(b'x'));
    let lasted = t.trickle(frame, EVERY_100MS, limit).await;
    assert!(lasted <= limit, "closed after {lasted:?}");
    assert_eq!(gw.count(|s| &s.frame_timeouts), 1);
    assert_eq!(gw.count(|s| &s.idle_closes), 0);
    assert_eq!(gw.count(|s| &s.terminal_frames), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_is_closed_at_the_frame_timeout_not_the_idle_timeout() {
    let cfg = config();
    let limit = cfg.frame_timeout + MARGIN;
    assert!(
        limit < cfg.idle_timeout,
        "the idle timeout must not be what closes it"
    );
    let gw = Gateway::start("truncated-frame", cfg).await;
    for addr in [gw.cup, gw.ascii] {
        let mut t = Term::connect(addr).await;
        // The prefix promises 100 bytes; 10 arrive.
        let mut truncated = vec![0u8, 100];
        truncated.extend_from_slice(&[b'x'; 10]);
        assert!(t.send(&truncated).await);
        assert_eq!(
            t.watch(limit).await,
            Seen::Closed,
            "closed within {limit:?}"
        );
    }
    assert_eq!(gw.count(|s| &s.frame_timeouts), 2);
    assert_eq!(gw.count(|s| &s.idle_closes), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_keep_alives_cannot_stretch_the_idle_timeout() {
    // Every byte is half a zero-length keep-alive: each frame completes well within
    // the (long) frame timeout, so only the idle rule can end this connection.
    let cfg = GatewayConfig {
        idle_timeout: Duration::from_secs(1),
        frame_timeout: Duration::from_secs(5),
        ..config()
    };
    let limit = cfg.idle_timeout + cfg.frame_timeout + MARGIN;
    let gw = Gateway::start("trickled-keep-alives", cfg).await;
    let mut t = Term::connect(gw.cup).await;
    let lasted = t.trickle(std::iter::repeat(0), EVERY_100MS, limit).await;
    assert!(lasted <= limit, "closed after {lasted:?}");
    assert_eq!(gw.count(|s| &s.idle_closes), 1);
    assert_eq!(gw.count(|s| &s.frame_timeouts), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_at_the_idle_timeout() {
    let cfg = GatewayConfig {
        idle_timeout: Duration::from_secs(1),
        ..config()
    };
    let limit = cfg.idle_timeout + MARGIN;
    let gw = Gateway::start("silent", cfg).await;
    let mut t = Term::connect(gw.ascii).await;
    assert_eq!(
        t.watch(limit).await,
        Seen::Closed,
        "closed within {limit:?}"
    );
    assert_eq!(gw.count(|s| &s.idle_closes), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_sending_a_request_every_200ms_is_not_cut_off() {
    let cfg = GatewayConfig {
        idle_timeout: Duration::from_secs(2),
        frame_timeout: Duration::from_secs(1),
        ..config()
    };
    let gw = Gateway::start("well-behaved", cfg).await;
    let mut t = Term::connect(gw.cup).await;
    let req = request(TerminalDialect::CupPos);
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    // 25 requests: five seconds, more than twice the idle timeout. Each is written in
    // two pieces, as a frame split across TCP segments arrives.
    let (head, tail) = req.split_at(5);
    for _ in 0..25 {
        pace.tick().await;
        assert!(t.send(head).await, "still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(t.send(tail).await, "still open");
        assert!(!t.read_reply().await.is_empty());
    }
    assert_eq!(gw.count(|s| &s.terminal_frames), 25);
    assert_eq!(gw.count(|s| &s.idle_closes), 0);
    assert_eq!(gw.count(|s| &s.frame_timeouts), 0);
    t.finish().await;
    gw.stop().await;
}
