//! Never debited for a failed sale: the issuer's faults over real sockets, and the
//! money after the store-and-forward queue drains.

use std::time::Duration;

use issuer::Faults;
use posguard::demo_data::CardFate;

use crate::scenarios::{card, cleanup, code, stores, Pos, Setup, World};

/// Waits (bounded) until `done` holds, checking every 50 ms.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn journal_states(store: &str) -> Vec<(String, String)> {
    let s = store.to_owned();
    let rows = tokio::task::spawn_blocking(move || posguard::check::load_journal(&s))
        .await
        .expect("join")
        .expect("journal");
    rows.into_iter()
        .map(|t| (t.kind.to_string(), t.state.to_string()))
        .collect()
}

async fn saf_states(store: &str) -> Vec<String> {
    let s = store.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut db = store::open(&s).expect("open");
        let mut all = Vec::new();
        for state in store::SafState::ALL {
            all.extend(
                db.saf_in_state(state)
                    .expect("saf")
                    .into_iter()
                    .map(|r| r.state.to_string()),
            );
        }
        all
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_drops_the_approval_after_debiting() {
    for store in stores("drop") {
        let faults = Faults {
            drop_after_debit_permille: 1000,
            ..Faults::default()
        };
        let setup = Setup {
            faults,
            issuer_timeout_ms: 300,
            saf_backoff_ms: 200,
            ..Setup::default()
        };
        let w = World::start_with(&store, setup).await;
        let mut pos = w.pos(0).await;
        let c = w.card(CardFate::Good, 0).clone();
        let before = w.account(&c).balance_minor;
        let o = {
            let r = pos.term.sale(&card(&c), 6_600).expect("sale");
            pos.send(r).await
        };
        assert_eq!(
            code(&o),
            "98",
            "the terminal is told the issuer did not answer ({store})"
        );
        eventually(
            "the reversal restores the balance",
            Duration::from_secs(10),
            || w.account(&c).balance_minor == before,
        )
        .await;
        assert_eq!(w.sms_count(&c), 2, "debit SMS and reversal SMS ({store})");
        eventually_async_state(&store, "reversed").await;
        assert_eq!(saf_states(&store).await, ["done"], "{store}");
        w.finish(&store).await;
    }
}

/// Waits (bounded) until the journal's sale reaches `state`.
async fn eventually_async_state(store: &str, state: &str) {
    for _ in 0..200 {
        if journal_states(store)
            .await
            .iter()
            .any(|(k, s)| k == "sale" && s == state)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "sale never reached {state}: {:?}",
        journal_states(store).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_answers_after_the_acquirer_gave_up() {
    for store in stores("late") {
        let faults = Faults {
            late_permille: 1000,
            late_ms: 700,
            ..Faults::default()
        };
        let setup = Setup {
            faults,
            issuer_timeout_ms: 300,
            saf_backoff_ms: 200,
            ..Setup::default()
        };
        let w = World::start_with(&store, setup).await;
        let mut pos = w.pos(1).await;
        let c = w.card(CardFate::Good, 1).clone();
        let before = w.account(&c).balance_minor;
        let o = {
            let r = pos.term.sale(&card(&c), 4_400).expect("sale");
            pos.send(r).await
        };
        assert_eq!(code(&o), "98", "{store}");
        // The late approval is ignored; the advice (itself answered late, and repeated
        // as 0421 meanwhile) undoes the debit exactly once.
        eventually_async_state(&store, "reversed").await;
        assert_eq!(w.account(&c).balance_minor, before, "{store}");
        assert_eq!(
            w.sms_count(&c),
            2,
            "one debit SMS, one reversal SMS, despite repeats ({store})"
        );
        w.finish(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_the_terminal_is_lost_and_the_terminal_reverses() {
    for store in stores("lost") {
        let w = World::start_with(
            &store,
            Setup {
                saf_backoff_ms: 200,
                ..Setup::default()
            },
        )
        .await;
        let t = w.data.terminals[2].clone();
        let mut pos = Pos::signed_on(w.acquirer, &t).await;
        let c = w.card(CardFate::Good, 2).clone();
        let before = w.account(&c).balance_minor;
        let r = pos.term.sale(&card(&c), 3_300).expect("sale");
        // The terminal sends the sale and loses its connection before the reply.
        pos.write_only(&r.frame).await;
        let mut pos = pos.reconnect(w.acquirer).await;
        eventually("the issuer debits", Duration::from_secs(10), || {
            w.account(&c).balance_minor == before - 3_300
        })
        .await;
        assert!(
            pos.term.on_timeout(r.stan),
            "the terminal counts the sale as unanswered"
        );
        let rev = pos
            .term
            .reversal()
            .expect("reversal builds")
            .expect("a pending reversal");
        let o = pos.send(rev).await;
        assert_eq!(code(&o), "00", "{store}");
        eventually(
            "the reversal restores the balance",
            Duration::from_secs(10),
            || w.account(&c).balance_minor == before,
        )
        .await;
        assert_eq!(w.sms_count(&c), 2, "{store}");
        w.finish(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_an_orphaned_reversal() {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use issuer::{Bank, IssuerConfig};
    use posguard::demo_data::demo_data;
    use posguard::node::run_node;
    use posguard::run_cli::{node_options, open_demo_accounts, seed_store, shanghai_now};

    let Ok(url) = std::env::var("POSGUARD_TEST_PG_URL") else {
        eprintln!("POSGUARD_TEST_PG_URL not set: multi-node queue test skipped");
        return;
    };
    let store = format!("{url}?schema=adopt_{}", std::process::id());
    let data = demo_data(42, 4, 30);
    // Every issuer answer comes 2.5 s late: node A's reversal is still unanswered when A stops.
    let faults = Faults {
        late_permille: 1000,
        late_ms: 2_500,
        ..Faults::default()
    };
    let config = IssuerConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        faults: faults.clone(),
        ..IssuerConfig::default()
    };
    let mut bank = Bank::from_clear_keys(&config.keys)
        .expect("keys")
        .with_faults(faults, 3);
    open_demo_accounts(&mut bank, &data, shanghai_now()).expect("accounts");
    let issuer = issuer::Issuer::start_with(config, bank, Arc::new(shanghai_now))
        .await
        .expect("issuer");

    let node = |n: u8, drain_ms: u64| {
        let mut o = node_options(store.clone(), issuer.iso_addr(), 500);
        o.switch.node = n;
        o.switch.saf_backoff_ms = 2_000; // A would repeat after 2 s; it is gone by then
        o.gateway.drain_timeout = Duration::from_millis(drain_ms);
        o.gateway.saf_sweep_secs = 1;
        o.gateway.saf_adopt_after_ms = 500;
        o
    };
    let (a_opts, b_opts) = (node(1, 0), node(2, 5_000));
    let o = a_opts.clone();
    let d = data.clone();
    let data = tokio::task::spawn_blocking(move || seed_store(&o, &d))
        .await
        .expect("join")
        .expect("seed");
    let start = |opts: posguard::node::NodeOptions, l: tokio::net::TcpListener| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_node(
            opts,
            vec![(l, gateway::TerminalDialect::CupPos)],
            Arc::new(gateway::GatewayStats::default()),
            async {
                let _ = rx.await;
            },
        ));
        (tx, task)
    };
    let la = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a_addr = la.local_addr().expect("addr");
    let (stop_a, task_a) = start(a_opts, la);
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop_b, task_b) = start(b_opts, lb);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut pos = Pos::signed_on(a_addr, &data.terminals[0]).await;
    let c = data
        .cards
        .iter()
        .find(|c| c.fate == CardFate::Good)
        .expect("card")
        .clone();
    let masked = domain::mask_pan(c.pan.as_bytes());
    let balance = || {
        let b = issuer.bank();
        let b = b.lock().expect("bank");
        b.accounts()
            .into_iter()
            .find(|a| a.masked_pan == masked)
            .expect("account")
            .balance_minor
    };
    let before = balance();
    let o = {
        let r = pos.term.sale(&card(&c), 2_200).expect("sale");
        pos.send(r).await
    };
    assert_eq!(code(&o), "98", "A gave up on the late approval");
    // A stops without draining: its reversal advice is still pending in the shared queue.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_a.send(());
    task_a.await.expect("join a").expect("node a");
    let pending = saf_states(&store).await;
    assert!(
        pending.iter().any(|s| s == "pending"),
        "an orphan is left: {pending:?}"
    );
    // B adopts it (FOR UPDATE SKIP LOCKED), repeats it, and the debit is undone.
    eventually(
        "node B reverses the orphaned sale",
        Duration::from_secs(20),
        || balance() == before,
    )
    .await;
    eventually_async_state(&store, "reversed").await;
    let s = store.clone();
    let done = tokio::task::spawn_blocking(move || {
        store::open(&s)
            .expect("open")
            .saf_in_state(store::SafState::Done)
            .expect("saf")
    })
    .await
    .expect("join");
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].owner.as_deref(),
        Some("node-2"),
        "node B claimed and finished it"
    );
    assert!(done[0].attempts >= 2, "B repeated the advice as 0421");
    let _ = stop_b.send(());
    task_b.await.expect("join b").expect("node b");
    issuer.stop().await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || cleanup(&s))
        .await
        .expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmissions_of_a_request_in_flight_get_one_answer_and_free_their_slots() {
    // A terminal that resends its sale while the issuer is slow: every copy is a
    // request its connection counts as unanswered (at most 8 by default). The copies
    // are answered by the original's reply; each frees its slot at once, or the
    // connection would read nothing more once eight had piled up.
    let store = stores("retransmit").remove(0);
    let setup = Setup {
        faults: Faults {
            late_permille: 1000,
            late_ms: 700,
            ..Faults::default()
        },
        issuer_timeout_ms: 300,
        saf_backoff_ms: 200,
        ..Setup::default()
    };
    let w = World::start_with(&store, setup).await;
    let mut pos = w.pos(2).await;
    let c = w.card(CardFate::Good, 2).clone();
    let sale = pos.term.sale(&card(&c), 3_300).expect("sale");
    for _ in 0..12 {
        pos.write_only(&sale.frame).await;
    }
    let reply = pos
        .next_frame(Duration::from_secs(5))
        .await
        .expect("the sale's answer");
    assert_eq!(code(&pos.term.on_reply(&reply).expect("reply")), "98");
    assert!(
        pos.next_frame(Duration::from_millis(800)).await.is_none(),
        "one answer for twelve copies"
    );
    // The connection still carries the terminal's next request (answered 98 too: the
    // issuer is still slow).
    let next = pos.term.sale(&card(&c), 4_400).expect("sale");
    assert_eq!(code(&pos.send(next).await), "98");
    w.finish(&store).await;
}

/// The API's timeline of a sale whose approval the issuer lost: every step in order
/// with its time — received, sent to the issuer, timed out (the terminal told 98), the
/// reversal decided and sent, repeated twice (the issuer's first two answers are
/// lost), acknowledged — then the reversal advice with its three sends, the issuer's
/// clearing lines and the reconciliation that found nothing owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_timeline_of_a_lost_sale_shows_every_step_in_order() {
    for store in stores("timeline") {
        let setup = Setup {
            faults: Faults {
                drop_after_debit_permille: 1000,
                drop_reversal_replies: 2,
                ..Faults::default()
            },
            issuer_timeout_ms: 300,
            saf_backoff_ms: 200,
            ..Setup::default()
        };
        let w = World::start_with(&store, setup).await;
        let mut pos = w.pos(0).await;
        let c = w.card(CardFate::Good, 0).clone();
        let o = {
            let r = pos.term.sale(&card(&c), 4_200).expect("sale");
            pos.send(r).await
        };
        assert_eq!(code(&o), "98");
        eventually_async_state(&store, "reversed").await;
        // The terminal keeps no batch entry for a failed sale: the RRN is the journal's.
        let s = store.clone();
        let sale = tokio::task::spawn_blocking(move || posguard::check::load_journal(&s))
            .await
            .expect("join")
            .expect("journal")
            .into_iter()
            .find(|t| t.kind == store::TxnKind::Sale)
            .expect("the sale");
        let (rrn, date) = (sale.rrn.clone(), sale.local_date.clone());
        // The issuer's clearing file of the day, ingested and reconciled.
        let day = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").expect("date");
        let clearing = w.issuer.bank().lock().expect("bank").clearing_csv(day);
        let s = store.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut db = posguard::node::open_store(&s).expect("open");
            let actor = services::accounts::Actor::cli("test", 1);
            let at = "2026-12-02T01:00:00+00:00";
            services::reconcile::ingest(
                db.as_mut(),
                clearing.as_bytes(),
                day,
                "issuer",
                &actor,
                at,
            )
            .expect("ingest");
            services::reconcile::reconcile_date(
                db.as_mut(),
                day,
                &services::money::MoneyConfig::default(),
                &actor,
                at,
            )
            .expect("reconcile")
        })
        .await
        .expect("join");
        assert_eq!(report.open, 0, "nothing to chase: {report}");
        // An operator, and the API on the same store.
        let api = crate::scenarios::ApiServer::start(
            &store,
            "support.chen",
            services::accounts::Role::Support,
        )
        .await;
        let (addr, token) = (api.addr, api.token.clone());
        let timeline = tokio::task::spawn_blocking(move || {
            ureq::get(&format!("http://{addr}/api/v1/transactions/{rrn}/timeline"))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .expect("timeline")
                .into_json::<serde_json::Value>()
                .expect("json")
        })
        .await
        .expect("join");
        api.stop().await;
        let steps = timeline["timeline"].as_array().expect("steps");
        let kinds: Vec<&str> = steps.iter().filter_map(|s| s["kind"].as_str()).collect();
        let pos_of = |k: &str| {
            kinds
                .iter()
                .position(|x| *x == k)
                .unwrap_or_else(|| panic!("{k} missing from {kinds:?} ({store})"))
        };
        eprintln!("timeline ({store}): {kinds:?}");
        assert_eq!(timeline["transaction"]["state"], "reversed", "{timeline}");
        assert!(pos_of("received") < pos_of("risk_decision"), "{kinds:?}");
        assert!(
            pos_of("risk_decision") < pos_of("sent_to_issuer"),
            "{kinds:?}"
        );
        assert!(pos_of("sent_to_issuer") < pos_of("timed_out"), "{kinds:?}");
        assert!(pos_of("timed_out") < pos_of("reversal_sent"), "{kinds:?}");
        // Sent, repeated twice, acknowledged.
        let repeats: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == "reversal_repeated")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(repeats.len(), 2, "two repeats: {kinds:?}");
        assert!(pos_of("reversal_sent") < repeats[0], "{kinds:?}");
        assert!(repeats[1] < pos_of("reversed"), "{kinds:?}");
        // Then the advice's outcome, the clearing lines, the reconciliation.
        let journal_end = pos_of("saf_reversal");
        assert!(pos_of("reversed") < journal_end, "{kinds:?}");
        let saf = &steps[journal_end];
        assert!(
            saf["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("done after 3 send(s)")),
            "{saf}"
        );
        assert!(journal_end < pos_of("clearing_line"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"reconciled"), "{kinds:?}");
        assert!(
            steps.last().expect("last")["detail"]
                .as_str()
                .is_some_and(|d| d.contains("matches the issuer's records")),
            "{timeline}"
        );
        // Every journal step has its time, and the times never go back.
        let times: Vec<&str> = steps[..journal_end]
            .iter()
            .map(|s| s["at"].as_str().expect("time"))
            .collect();
        assert!(times.windows(2).all(|p| p[0] <= p[1]), "{times:?}");
        // The API sorts by time, so the order above holds by construction; what can go
        // wrong is the sort moving the journal's own events out of their sequence.
        let s = store.clone();
        let txn_id = timeline["transaction"]["txn_id"].as_i64().expect("txn id");
        let journal: Vec<String> = tokio::task::spawn_blocking(move || {
            let mut db = posguard::node::open_store(&s).expect("open");
            db.events(txn_id).expect("events")
        })
        .await
        .expect("join")
        .into_iter()
        .map(|e| e.kind)
        .collect();
        let from_api: Vec<&str> = kinds
            .iter()
            .copied()
            .take(journal_end)
            .filter(|k| *k != "risk_decision")
            .collect();
        assert_eq!(
            from_api, journal,
            "the journal's events keep their order ({store})"
        );
        assert!(
            !timeline.to_string().contains(&c.pan),
            "no clear PAN in the API"
        );
        w.finish(&store).await;
    }
}
