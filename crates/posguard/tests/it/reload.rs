//! Risk rules reloaded from their file while terminals are selling: nothing is lost and
//! every decision names the version that made it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use issuer::{Bank, IssuerConfig};
use posguard::check::{clearing_dates, compare, load_journal, parse_clearing};
use posguard::demo_data::demo_data;
use posguard::node::run_node;
use posguard::run_cli::{fleet_config, node_options, open_demo_accounts, seed_store, shanghai_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("posguard-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let rules_path = dir.join("rules.toml");
    let default = include_str!("../../../risk/rules/default.toml");
    std::fs::write(&rules_path, default.replace("default-2026.11.1", "v1")).expect("write v1");

    let data = demo_data(77, 6, 400);
    let issuer = crate::scenarios::demo_issuer(&data, issuer::ClearKeys::demo()).await;
    let store = dir.join("db").display().to_string();
    let mut opts = node_options(store.clone(), issuer.iso_addr(), 5_000);
    opts.rules = Some(rules_path.clone());
    opts.gateway.rules_path = Some(rules_path.clone());
    let (o, d) = (opts.clone(), data.clone());
    let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
        .await
        .expect("join")
        .expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(run_node(
        opts,
        vec![(listener, gateway::TerminalDialect::CupPos)],
        Arc::new(gateway::GatewayStats::default()),
        async {
            let _ = stop_rx.await;
        },
    ));

    let mut fleet = fleet_config(&data, addr, 120.0, Duration::from_secs(5), 3);
    fleet.mix = terminal::Mix::sales_only();
    let run = tokio::spawn(terminal::run_fleet(fleet));
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // A broken file is refused (the running version stays), then a good one goes live.
    std::fs::write(&rules_path, "version = \"broken\"\n[[rule]]\nid = \"x\"\n")
        .expect("write broken");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    std::fs::write(&rules_path, default.replace("default-2026.11.1", "v2")).expect("write v2");
    let report = run.await.expect("fleet");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    node.await.expect("join").expect("node");

    let s = store.clone();
    let (journal, decisions) = tokio::task::spawn_blocking(move || {
        let journal = load_journal(&s).expect("journal");
        let mut db = store::open(&s).expect("open");
        let decisions = posguard::risk_cli::load_decisions(db.as_mut()).expect("decisions");
        (journal, decisions)
    })
    .await
    .expect("join");
    let mut lines = Vec::new();
    for day in clearing_dates(&journal) {
        lines.extend(
            parse_clearing(&issuer.bank().lock().expect("bank").clearing_csv(day), day)
                .expect("csv"),
        );
    }
    let approved: Vec<String> = report
        .approved_entries()
        .map(|(_, e)| e.rrn.to_string())
        .collect();
    let check = compare(&journal, &lines, Some(&approved));
    assert_eq!(check.anomalies(), 0, "{check}");
    let sales: Vec<&store::TxnRow> = journal
        .iter()
        .filter(|t| t.kind == store::TxnKind::Sale)
        .collect();
    assert!(sales.len() > 300, "the fleet ran: {}", sales.len());
    assert!(
        sales.iter().all(|t| decisions.contains_key(&t.txn_id)),
        "every sale was decided"
    );
    let versions: Vec<&str> = sales
        .iter()
        .map(|t| decisions[&t.txn_id].version.as_str())
        .collect();
    let first_v2 = versions
        .iter()
        .position(|v| *v == "v2")
        .expect("v2 decided some sales");
    assert!(first_v2 > 0, "v1 decided the first sales");
    assert!(
        versions[..first_v2].iter().all(|v| *v == "v1"),
        "before the reload: v1 only"
    );
    assert!(
        versions[first_v2..].iter().all(|v| *v == "v2"),
        "after the reload: v2 only, never the broken file"
    );
    println!(
        "{} sales: {} by v1, {} by v2",
        versions.len(),
        first_v2,
        versions.len() - first_v2
    );
    issuer.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_risk_counters_in_redis() {
    use crate::scenarios::{card, code, Pos};
    use posguard::demo_data::CardFate;
    let (Ok(pg), Ok(redis_url)) = (
        std::env::var("POSGUARD_TEST_PG_URL"),
        std::env::var("POSGUARD_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "POSGUARD_TEST_PG_URL or POSGUARD_TEST_REDIS_URL not set: shared-counter test skipped"
        );
        return;
    };
    let store = format!("{pg}?schema=redis_{}", std::process::id());
    let data = demo_data(91, 4, 30);
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
    // A run-unique card: Redis keeps counters between test runs.
    let node = |n: u8| {
        let mut o = node_options(store.clone(), issuer.iso_addr(), 5_000);
        o.switch.node = n;
        o.redis_url = Some(redis_url.clone());
        o.redis_prefix = format!("posguard-test-{}", std::process::id());
        // What is tested is the counters nodes share, not the time budget: on a busy
        // machine a decision reading Redis can outrun the default 2 ms, apply the
        // timeout policy and never evaluate the duplicate rule.
        o.risk_budget_us = 10_000_000;
        o
    };
    let o = node(1);
    let d = data.clone();
    let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
        .await
        .expect("join")
        .expect("seed");
    let mut stops = Vec::new();
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for n in [1, 2] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(l.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        tasks.push(tokio::spawn(run_node(
            node(n),
            vec![(l, gateway::TerminalDialect::CupPos)],
            Arc::new(gateway::GatewayStats::default()),
            async {
                let _ = rx.await;
            },
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = data
        .cards
        .iter()
        .filter(|c| c.fate == CardFate::Good)
        .nth(3)
        .expect("card")
        .clone();
    let amount = 10_000 + i64::from(std::process::id() % 50_000) * 3 + 7;
    let mut on_a = Pos::connect(addrs[0], &data.terminals[0]).await;
    assert_eq!(code(&on_a.sign_on().await), "00");
    let first = {
        let r = on_a.term.sale(&card(&c), amount).expect("sale");
        on_a.send(r).await
    };
    assert_eq!(code(&first), "00");
    // The same terminal moves to node B (signs on there) and swipes the same card again.
    let mut on_b = on_a.reconnect(addrs[1]).await;
    assert_eq!(code(&on_b.sign_on().await), "00");
    let again = {
        let r = on_b.term.sale(&card(&c), amount).expect("sale");
        on_b.send(r).await
    };
    assert_eq!(
        code(&again),
        "94",
        "node B saw node A's attempt in the shared counters"
    );
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.expect("join").expect("node");
    }
    issuer.stop().await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || crate::scenarios::cleanup(&s))
        .await
        .expect("cleanup");
}
