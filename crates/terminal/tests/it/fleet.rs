//! A loopback run of the fleet against a tiny acquirer that approves good cards.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iso8583::frame::{encode_frame, FrameDecoder};
use terminal::{run_fleet, Card, EntryKind, FleetConfig, Mix, TerminalSetup, TxKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::host::{FakeHost, TMK};

const POOR_PAN: &str = "6228480402564890026";

fn cards() -> Vec<Card> {
    vec![
        Card::new(crate::PAN, Some(crate::PIN), "2812", EntryKind::Chip),
        Card::new("4111111111111111", None, "2712", EntryKind::Contactless),
        Card::new(
            "5555555551234567",
            Some("1234"),
            "2901",
            EntryKind::Magstripe,
        ),
        Card::new("6228480402564890034", None, "2901", EntryKind::Manual),
    ]
}

/// Serves one terminal connection with its own host; counts the requests it saw.
async fn serve(mut stream: TcpStream, mut host: FakeHost, seen: Arc<AtomicU64>) {
    let mut dec = FrameDecoder::new(8192);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        dec.feed(&buf[..n]);
        let mut out = Vec::new();
        while let Ok(Some(frame)) = dec.next_frame() {
            // The host parses frames with their length prefix, as the terminal writes them.
            let mut framed = Vec::new();
            encode_frame(frame, 8192, &mut framed).unwrap();
            let body = host.answer(&framed);
            encode_frame(&body, 8192, &mut out).unwrap();
            seen.fetch_add(1, Ordering::Relaxed);
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_runs_a_bounded_mix_against_an_approving_acquirer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen_by_server = Arc::clone(&seen);
    let server = tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((stream, _)) = listener.accept().await {
            conn += 1;
            let mut host = FakeHost::new();
            host.rrn_prefix = conn;
            host.pins.insert(crate::PAN.into(), crate::PIN.into());
            host.pins.insert("5555555551234567".into(), "1234".into());
            host.poor.push(POOR_PAN.into());
            tokio::spawn(serve(stream, host, Arc::clone(&seen_by_server)));
        }
    });

    let terminals = (1..=3)
        .map(|i| TerminalSetup {
            terminal_id: format!("{i:08}"),
            merchant_id: "123456789012345".into(),
            tmk_hex: TMK.into(),
            location: None,
            moves_to: None,
            key_layout: cardsec::KeyLayout::Double,
        })
        .collect();
    let mut config = FleetConfig::new(addr, terminals, cards());
    config.decline_cards = vec![Card::new(POOR_PAN, None, "2812", EntryKind::Chip)];
    config.mix = Mix {
        sale: 40,
        void: 10,
        refund: 10,
        balance: 10,
        preauth: 10,
        wrong_pin: 10,
        declined_card: 10,
        cancelled_sale: 10,
        card_testing: 0,
        cashout: 0,
    };
    config.rate_per_sec = 0.0;
    config.duration = Duration::from_secs(20);
    config.max_transactions = Some(300);
    config.reply_timeout = Duration::from_secs(5);
    config.seed = 42;

    let report = tokio::time::timeout(Duration::from_secs(30), run_fleet(config))
        .await
        .expect("the fleet finishes within its bounds");
    server.abort();

    let shown = report.to_string();
    assert_eq!(report.transactions, 300, "{shown}");
    let financial: u64 = TxKind::ALL
        .iter()
        .filter(|k| k.is_financial())
        .map(|k| report.total(*k))
        .sum();
    assert_eq!(financial, 300, "{shown}");
    assert_eq!(report.sign_ons, 3, "{shown}");
    assert_eq!((report.timeouts, report.mac_failures), (0, 0), "{shown}");
    assert!(report.errors.is_empty(), "{shown}");
    assert_eq!(report.latency.count, 300, "{shown}");
    // The acquirer saw every request: sign-ons, transactions and reversals.
    assert_eq!(
        seen.load(Ordering::Relaxed),
        3 + 300 + report.reversals.sent,
        "{shown}"
    );
    // The bad cases happened and were declined as the host said.
    assert!(report.count(TxKind::Sale, "55") > 0, "{shown}");
    assert!(report.count(TxKind::Sale, "51") > 0, "{shown}");
    assert!(
        report.total(TxKind::Void) > 0 && report.total(TxKind::Refund) > 0,
        "{shown}"
    );
    // Every cancelled sale was reversed with 06 and acknowledged.
    let r = &report.reversals;
    assert!(r.cancelled_after_approval > 0, "{shown}");
    assert_eq!(r.acknowledged, r.cancelled_after_approval, "{shown}");
    assert_eq!(r.by_reason.get("06"), Some(&r.cancelled_after_approval));
    assert_eq!(r.unresolved, 0, "{shown}");
    // Batch records hold every approval except the cancelled ones, with unique RRNs.
    let approvals: u64 = [
        TxKind::Sale,
        TxKind::Void,
        TxKind::Refund,
        TxKind::PreAuth,
        TxKind::PreAuthCancel,
        TxKind::Completion,
    ]
    .iter()
    .map(|k| report.count(*k, "00"))
    .sum();
    let entries: Vec<_> = report.approved_entries().collect();
    assert_eq!(
        entries.len() as u64,
        approvals - r.cancelled_after_approval,
        "{shown}"
    );
    let rrns: HashSet<_> = entries.iter().map(|(_, e)| e.rrn).collect();
    assert_eq!(rrns.len(), entries.len());
    assert!(entries
        .iter()
        .all(|(_, e)| e.batch == 7 && e.amount_minor > 0));
    assert!(shown.contains("sale"), "{shown}");
    assert!(
        shown.contains(&format!("{:<16} {:>8}", "sale", report.total(TxKind::Sale))),
        "{shown}"
    );
}

#[tokio::test]
async fn fleet_reports_a_badly_provisioned_terminal_without_connecting() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let bad = TerminalSetup {
        terminal_id: "short".into(),
        merchant_id: "123456789012345".into(),
        tmk_hex: TMK.into(),
        location: None,
        moves_to: None,
        key_layout: cardsec::KeyLayout::Double,
    };
    let mut config = FleetConfig::new(addr, vec![bad], cards());
    config.duration = Duration::from_secs(2);
    let report = run_fleet(config).await;
    assert_eq!(report.transactions, 0);
    let err = report.terminals[0].error.as_deref().unwrap();
    assert!(err.starts_with("terminal id"), "{err}");
    assert!(!format!("{:?}", report.terminals).contains(TMK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_settles_every_batch_and_uploads_when_not_balanced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen_by_server = Arc::clone(&seen);
    let server = tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((stream, _)) = listener.accept().await {
            conn += 1;
            let mut host = FakeHost::new();
            host.rrn_prefix = conn;
            host.pins.insert(crate::PAN.into(), crate::PIN.into());
            host.unbalanced.push("00000002".into());
            tokio::spawn(serve(stream, host, Arc::clone(&seen_by_server)));
        }
    });
    let terminals = (1..=3)
        .map(|i| TerminalSetup {
            terminal_id: format!("{i:08}"),
            merchant_id: "123456789012345".into(),
            tmk_hex: TMK.into(),
            location: None,
            moves_to: None,
            key_layout: cardsec::KeyLayout::Double,
        })
        .collect();
    let mut config = FleetConfig::new(addr, terminals, cards());
    config.mix = Mix {
        sale: 60,
        void: 20,
        refund: 20,
        ..Mix::sales_only()
    };
    config.rate_per_sec = 0.0;
    config.max_transactions = Some(60);
    config.reply_timeout = Duration::from_secs(5);
    config.seed = 7;
    config.settle_at_end = true;

    let report = tokio::time::timeout(Duration::from_secs(30), run_fleet(config))
        .await
        .expect("the fleet finishes within its bounds");
    server.abort();

    let shown = report.to_string();
    let r = &report;
    assert_eq!(
        (
            r.batches_balanced,
            r.batches_not_balanced,
            r.batches_uploaded,
            r.batches_failed
        ),
        (2, 1, 1, 0),
        "{shown}"
    );
    assert!(shown.contains("batch settlements: balanced 2 not-balanced 1 uploaded 1 failed 0"));
    // The unbalanced terminal uploaded what its totals counted, then the batch end.
    let t2 = &report.terminals[1];
    let voided: HashSet<_> = t2
        .approved
        .iter()
        .filter(|e| e.kind == TxKind::Void)
        .filter_map(|e| e.original)
        .collect();
    let counted = t2
        .approved
        .iter()
        .filter(|e| match e.kind {
            TxKind::Sale => !voided.contains(&(e.batch, e.stan)),
            TxKind::Refund => true,
            _ => false,
        })
        .count() as u64;
    assert_eq!(report.count(TxKind::BatchUpload, "00"), counted, "{shown}");
    assert_eq!(report.count(TxKind::BatchEnd, "00"), 1, "{shown}");
    assert_eq!(report.count(TxKind::Settle, "00"), 3, "{shown}");
    assert_eq!(
        report.transactions, 60,
        "settlement is not counted as transactions"
    );
    assert_eq!(
        seen.load(Ordering::Relaxed),
        3 + 60 + report.reversals.sent + 3 + counted + 1,
        "{shown}"
    );
    // The report keeps the approved entries even though settlement emptied the records.
    assert!(report.approved_entries().count() > 0);
    let approvals: u64 = [
        TxKind::Sale,
        TxKind::Void,
        TxKind::Refund,
        TxKind::PreAuth,
        TxKind::PreAuthCancel,
        TxKind::Completion,
    ]
    .iter()
    .map(|k| report.count(*k, "00"))
    .sum();
    assert_eq!(
        report.approved_entries().count() as u64,
        approvals - report.reversals.cancelled_after_approval,
        "{shown}"
    );
}
