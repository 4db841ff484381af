//! The acquirer killed with SIGKILL mid-load and restarted: no approved-and-delivered
//! sale is lost, and once it is back no cardholder stays debited for a sale its
//! terminal did not record as approved.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use issuer::{Bank, IssuerConfig};
use posguard::check::{clearing_dates, compare, load_journal, parse_clearing};
use posguard::demo_data::{demo_data, CardFate};
use posguard::run_cli::{fleet_config, open_demo_accounts, shanghai_now};
use terminal::Mix;

fn spawn_acquirer(dir: &str, listen: SocketAddr, issuer: SocketAddr, keys: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_posguard"))
        .args([
            "acquirer",
            "--demo-data",
            "--terminal-keys",
            keys,
            "--data",
            dir,
            "--listen",
            &listen.to_string(),
            "--issuer",
            &issuer.to_string(),
        ])
        .args(["--issuer-timeout-ms", "1500"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start acquirer")
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("acquirer never listened on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_killed_mid_load_loses_nothing_and_leaves_no_phantom_debit() {
    for store in crate::scenarios::stores("crash") {
        killed_mid_load(&store).await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || crate::scenarios::cleanup(&s))
            .await
            .expect("cleanup");
    }
}

async fn killed_mid_load(store: &str) {
    let data = demo_data(8583, 20, 200);
    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys).expect("keys");
    open_demo_accounts(&mut bank, &data, shanghai_now()).expect("accounts");
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .expect("issuer");
    let opening: i64 = issuer
        .bank()
        .lock()
        .expect("bank")
        .accounts()
        .iter()
        .map(|a| a.balance_minor)
        .sum();

    let dir = store.to_owned();
    let keys = std::env::temp_dir()
        .join(format!("posguard-crash-keys-{}", std::process::id()))
        .display()
        .to_string();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr")
    };
    let mut acquirer = spawn_acquirer(&dir, listen, issuer.iso_addr(), &keys);
    wait_listening(listen).await;
    // The terminals load their keys from the key-injection output the acquirer wrote
    // when it onboarded the demo merchants.
    let data = posguard::run_cli::injected_data(data, std::path::Path::new(&keys))
        .expect("key-injection output");
    let _ = std::fs::remove_file(&keys);

    let mut fleet = fleet_config(&data, listen, 150.0, Duration::from_secs(5), 11);
    fleet.mix = Mix::sales_only();
    fleet.reply_timeout = Duration::from_secs(3);
    let run = tokio::spawn(terminal::run_fleet(fleet));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    acquirer.kill().expect("kill -9");
    let _ = acquirer.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acquirer = spawn_acquirer(&dir, listen, issuer.iso_addr(), &keys);
    wait_listening(listen).await;

    let report = run.await.expect("fleet");
    // Let recovery and the store-and-forward queue finish (bounded).
    let d = dir.clone();
    let mut drained = false;
    for _ in 0..300 {
        let d2 = d.clone();
        let (saf, authorizing) = tokio::task::spawn_blocking(move || {
            posguard::check::pending_work(&d2).expect("pending work")
        })
        .await
        .expect("join");
        if saf == 0 && authorizing == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained, "store-and-forward queue did not drain");
    acquirer.kill().expect("stop acquirer");
    let _ = acquirer.wait();

    let d2 = dir.clone();
    let journal = tokio::task::spawn_blocking(move || load_journal(&d2))
        .await
        .expect("join")
        .expect("journal");
    let mut lines = Vec::new();
    for day in clearing_dates(&journal) {
        let csv = issuer.bank().lock().expect("bank").clearing_csv(day);
        lines.extend(parse_clearing(&csv, day).expect("clearing"));
    }
    let approved: Vec<String> = report
        .approved_entries()
        .map(|(_, e)| e.rrn.to_string())
        .collect();
    let approved_minor: i64 = report.approved_entries().map(|(_, e)| e.amount_minor).sum();
    let check = compare(&journal, &lines, Some(&approved));
    let now: i64 = issuer
        .bank()
        .lock()
        .expect("bank")
        .accounts()
        .iter()
        .map(|a| a.balance_minor)
        .sum();
    println!("{report}\n{check}");
    assert!(
        report.transactions > 50,
        "the fleet ran: {}",
        report.transactions
    );
    assert_eq!(check.anomalies(), 0, "{check}");
    assert_eq!(
        opening - now,
        approved_minor,
        "cardholders are debited exactly the sales terminals recorded as approved"
    );
    assert!(data.cards.iter().any(|c| c.fate == CardFate::Good));
    issuer.stop().await;
}
