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
    rows.into_iter().map(|t| (t.kind, t.state)).collect()
}

async fn saf_states(store: &str) -> Vec<String> {
    let s = store.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut db = store::open(&s).expect("open");
        let mut all = Vec::new();
        for state in ["pending", "done", "exception"] {
            all.extend(
                db.saf_in_state(state)
                    .expect("saf")
                    .into_iter()
                    .map(|r| r.state),
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
        let mut pos = Pos::connect(w.acquirer, &w.data.terminals[0]).await;
        assert_eq!(code(&pos.sign_on().await), "00");
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
        w.stop().await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || cleanup(&s))
            .await
            .expect("cleanup");
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
        let mut pos = Pos::connect(w.acquirer, &w.data.terminals[1]).await;
        assert_eq!(code(&pos.sign_on().await), "00");
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
        w.stop().await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || cleanup(&s))
            .await
            .expect("cleanup");
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
        let mut pos = Pos::connect(w.acquirer, &t).await;
        assert_eq!(code(&pos.sign_on().await), "00");
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
        w.stop().await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || cleanup(&s))
            .await
            .expect("cleanup");
    }
}
