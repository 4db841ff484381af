//! `posguard demo` with its fault mix: every anomaly resolved, nothing left over.

use posguard::demo::{demo, DemoArgs};
use posguard::run_cli::DemoDataArgs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_faults_resolves_every_anomaly() {
    let dir = std::env::temp_dir().join(format!("posguard-demo-test-{}", std::process::id()));
    let args = DemoArgs {
        demo: DemoDataArgs {
            data_seed: 8583,
            terminals: 8,
            cards: 60,
        },
        days: 2,
        duration: 4,
        rate: 80.0,
        data: dir.display().to_string(),
        seed: 5,
        quiet: true,
        no_faults: false,
    };
    let out = demo(args).await.expect("demo runs");
    for (fleet, day) in out.fleets.iter().zip(&out.days) {
        println!("{fleet}\n{day}");
    }
    println!("{}{}{}{}", out.resolution, out.sms, out.check, out.settled);
    assert!(out.transactions() > 100, "the fleet ran");
    // The complaints the faults brought, worked through the complaint path: every one
    // filed is matched, diagnosed, and explained or left for staff; the report counts
    // them.
    let c = &out.complaints;
    println!("{c}");
    assert!(c.filed >= 1, "{c}");
    assert_eq!(c.explained + c.open, c.filed, "{c}");
    assert_eq!(c.report.total, c.filed, "{c}");
    assert!(
        c.by_code.values().sum::<usize>() <= c.filed,
        "one diagnosis a complaint: {c}"
    );
    assert!(c.matched_first >= 1, "{c}");
    // Two business days, each settled: terminals settled their batches, merchants
    // were paid, and every approved sale is settled exactly once or held with a reason.
    assert_eq!(out.days.len(), 2);
    for day in &out.days {
        assert!(day.settlement.total(|s| s.net_minor) > 0, "{day}");
        assert!(
            day.batches.0 + day.batches.1 > 0,
            "terminals settled their batches: {day}"
        );
    }
    assert_ne!(out.days[0].settlement.date, out.days[1].settlement.date);
    assert!(out.settled.ok(), "{}", out.settled);
    assert!(out.settled.settled > 50, "{}", out.settled);
    assert!(
        out.settled.held > 0,
        "the held merchant's sales wait: {}",
        out.settled
    );
    assert!(
        !out.resolution.kinds.is_empty(),
        "the fault mix produced anomalies to resolve"
    );
    assert_eq!(out.resolution.unresolved(), 0, "{}", out.resolution);
    assert_eq!(out.resolution.exceptions, 0);
    assert!(out.sms.matches(), "{}", out.sms);
    assert_eq!(out.check.anomalies(), 0, "{}", out.check);
    // Risk control ran on every money-taking request, and a back-test of the live rule
    // set over the demo's journal matches each rule exactly as often as it matched live.
    println!("{}", out.risk);
    assert!(out.risk.decisions > 100, "{}", out.risk);
    let hit: Vec<&str> = out.risk.top_rules.iter().map(|(r, _)| r.as_str()).collect();
    for rule in [
        "terminal.relocated",
        "fallback.chip_card",
        "card_testing.card",
    ] {
        assert!(
            hit.contains(&rule),
            "the fleet's fraud behaviours trip {rule}: {hit:?}"
        );
    }
    // "Where is my money" explains every approved transaction of the fleet.
    let store = out.data_dir.clone();
    let rrns: Vec<String> = out
        .fleets
        .iter()
        .flat_map(|f| f.approved_entries().map(|(_, e)| e.rrn.to_string()))
        .collect();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut db = posguard::node::open_store(&store).expect("open");
        let cfg = services::money::MoneyConfig::default();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for rrn in rrns {
            let m = services::money::txn_money(db.as_mut(), &rrn, &cfg).expect("txn show");
            *seen.entry(m.status).or_default() += 1;
        }
        seen
    })
    .await
    .expect("join");
    println!("money status of the fleet's approvals: {statuses:?}");
    for status in ["held", "voided"] {
        assert!(statuses.contains_key(status), "{status}: {statuses:?}");
    }
    // Settled, and paid out once a payout's value date (T+1, weekends skipped) came.
    assert!(
        statuses.get("settled").unwrap_or(&0) + statuses.get("paid_out").unwrap_or(&0) > 50,
        "{statuses:?}"
    );
    let store = out.data_dir.clone();
    let replay = tokio::task::spawn_blocking(move || {
        let mut db = posguard::node::open_store(&store).expect("open store");
        services::risk::backtest(db.as_mut(), risk::RuleSet::default_rules(), None, None)
    })
    .await
    .expect("join")
    .expect("backtest");
    println!("{replay}");
    assert_eq!(replay.decided, out.risk.decisions);
    let live: std::collections::BTreeMap<String, usize> =
        out.risk.top_rules.iter().cloned().collect();
    // The back-test replays exactly what the live engine saw. A live decision that ran
    // out of its time budget (the machine was busy) evaluated only some rules, so live
    // and back-test are compared over the decisions that evaluated every rule; over
    // those they agree exactly, rule by rule.
    for r in &replay.rules {
        assert_eq!(
            r.live_matched, r.matched_where_live_complete,
            "rule {} live vs back-test over complete decisions",
            r.rule
        );
        let total = live.get(&r.rule).copied().unwrap_or(0);
        assert!(
            total >= r.live_matched && total - r.live_matched <= replay.live_timed_out,
            "rule {}: {total} live, {} over complete decisions, {} timed out",
            r.rule,
            r.live_matched,
            replay.live_timed_out
        );
        if replay.live_timed_out == 0 {
            assert_eq!(r.matched, total, "rule {} live vs back-test", r.rule);
        }
    }
    assert!(replay.rules.iter().any(|r| r.live_matched > 0));
    // And no rule matched live that the back-test does not know.
    for rule in live.keys() {
        assert!(replay.rules.iter().any(|r| &r.rule == rule), "{rule}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
