//! Terminals over TLS: a TLS listener serves them as a plain one does, frame deadlines
//! included; a client that does not speak TLS, or does not finish its handshake, is
//! closed and counted and the listener goes on serving; a client that does not trust
//! the gateway's CA cannot connect; with a client CA, a terminal without a certificate
//! from it is refused.

use std::time::Duration;

use gateway::{GatewayConfig, TerminalDialect};
use tls::test_pki::TestPki;
use tls::{ClientTls, ServerTls};

use crate::harness::{config, request, Gateway, Term, MARGIN, PROMPT};

const CUP: TerminalDialect = TerminalDialect::CupPos;

/// A fresh test PKI for one test.
fn pki(name: &str) -> TestPki {
    let dir = std::env::temp_dir().join(format!(
        "posguard-gateway-pki-{name}-{}",
        std::process::id()
    ));
    TestPki::generate(&dir)
}

fn server(p: &TestPki, mutual: bool) -> ServerTls {
    ServerTls::from_files(&p.server_files(mutual)).expect("server TLS")
}

fn client(p: &TestPki, identity: bool) -> ClientTls {
    ClientTls::from_files(&p.client_files("localhost", identity)).expect("client TLS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_terminal_is_served_and_held_to_the_same_deadlines() {
    let p = pki("served");
    let cfg = config();
    let limit = cfg.frame_timeout + MARGIN;
    let gw = Gateway::start_tls("tls-served", cfg, server(&p, false)).await;
    let tls = client(&p, false);
    let mut t = Term::connect_tls(gw.cup, &tls).await.expect("handshake");
    for _ in 0..3 {
        assert!(!t.round_trip(&request(CUP)).await.is_empty());
    }
    t.finish().await;
    // A frame that stops short is cut off at the frame timeout, as over TCP.
    let mut t = Term::connect_tls(gw.cup, &tls).await.expect("handshake");
    assert!(t.send(&[0, 100, b'x', b'x']).await);
    t.closed_within(limit).await;
    // The plain listener beside it is still plain.
    let mut plain = Term::connect(gw.ascii).await;
    assert!(!plain
        .round_trip(&request(TerminalDialect::Iso87Ascii))
        .await
        .is_empty());
    assert_eq!(gw.count(|s| &s.terminal_frames), 4);
    assert_eq!(gw.count(|s| &s.frame_timeouts), 1);
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 0);
    gw.stop().await;
    p.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_on_a_tls_listener_is_closed_and_counted() {
    let p = pki("plain-client");
    let cfg = GatewayConfig {
        tls_handshake_timeout: Duration::from_millis(500),
        ..config()
    };
    let limit = cfg.tls_handshake_timeout + MARGIN;
    let gw = Gateway::start_tls("tls-plain-client", cfg, server(&p, false)).await;
    // A terminal speaking plain TCP: its frame is no TLS record, and the gateway closes
    // the connection at once (after, at most, an alert).
    let mut plain = Term::connect(gw.cup).await;
    assert!(plain.send(&request(CUP)).await);
    plain.closed_within(PROMPT).await;
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 1);
    // One that connects and says nothing is closed at the handshake timeout.
    let mut silent = Term::connect(gw.cup).await;
    silent.closed_within(limit).await;
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 2);
    // Neither reached the engine; a TLS terminal is still served.
    assert_eq!(gw.count(|s| &s.terminal_frames), 0);
    let mut t = Term::connect_tls(gw.cup, &client(&p, false))
        .await
        .expect("handshake");
    assert!(!t.round_trip(&request(CUP)).await.is_empty());
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 2);
    t.finish().await;
    gw.stop().await;
    p.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_does_not_trust_the_gateways_ca_cannot_connect() {
    let p = pki("untrusting");
    let gw = Gateway::start_tls("tls-untrusting", config(), server(&p, false)).await;
    let mut files = p.client_files("localhost", false);
    files.ca = p.other_ca.clone();
    let untrusting = ClientTls::from_files(&files).expect("client TLS");
    let e = Term::connect_tls(gw.cup, &untrusting)
        .await
        .err()
        .expect("the client refuses the gateway's certificate");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // Nor does a client expecting another name.
    let elsewhere =
        ClientTls::from_files(&p.client_files("acquirer.example", false)).expect("client TLS");
    let e = Term::connect_tls(gw.cup, &elsewhere)
        .await
        .err()
        .expect("the client refuses a certificate for another name");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    let mut t = Term::connect_tls(gw.cup, &client(&p, false))
        .await
        .expect("handshake");
    assert!(!t.round_trip(&request(CUP)).await.is_empty());
    gw.stop().await;
    p.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_terminals_without_a_certificate_from_the_client_ca() {
    let p = pki("mutual");
    let gw = Gateway::start_tls("tls-mutual", config(), server(&p, true)).await;
    // In TLS 1.3 the client's side completes first; the gateway's refusal arrives as an
    // alert on the first read, and the connection closes. The request never reaches
    // the engine.
    let mut anonymous = Term::connect_tls(gw.cup, &client(&p, false))
        .await
        .expect("client side");
    let _ = anonymous.send(&request(CUP)).await;
    let e = anonymous.failure().await;
    assert!(e.to_string().contains("CertificateRequired"), "{e}");
    anonymous.refused_within(PROMPT).await;
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 1);
    // A certificate from another CA is refused as well.
    let mut files = p.client_files("localhost", true);
    (files.cert, files.key) = (Some(p.rogue_cert.clone()), Some(p.rogue_key.clone()));
    let rogue = ClientTls::from_files(&files).expect("client TLS");
    let mut t = Term::connect_tls(gw.cup, &rogue)
        .await
        .expect("client side");
    let _ = t.send(&request(CUP)).await;
    let e = t.failure().await;
    assert!(e.to_string().contains("UnknownCA"), "{e}");
    t.refused_within(PROMPT).await;
    assert_eq!(gw.count(|s| &s.tls_handshake_failures), 2);
    assert_eq!(gw.count(|s| &s.terminal_frames), 0);
    // A terminal with its certificate is served.
    let mut t = Term::connect_tls(gw.cup, &client(&p, true))
        .await
        .expect("handshake");
    assert!(!t.round_trip(&request(CUP)).await.is_empty());
    t.finish().await;
    gw.stop().await;
    p.remove();
}
