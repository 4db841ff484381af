//! Rule-set versions in the store: a node started without a rule file puts the
//! version in force to work while it runs — active, its rules act; shadow, they are
//! recorded and never act — on SQLite and PostgreSQL.

use std::time::Duration;

use posguard::demo_data::CardFate;

use crate::scenarios::{card, code, stores, Setup, World};

const BLOCK: &str = r#"version = "block-4300"

[[rule]]
id = "block.over.42"
description = "Sales over 42.50 are declined"
when = "amount > 4_250"
action = "decline"
code = "61"
score = 50
"#;

/// Sets `version`'s status through the service, as the API does.
async fn set(store: &str, version: &str, status: services::rules::RuleStatus) {
    let (s, v) = (store.to_owned(), version.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut db = posguard::node::open_store(&s).expect("open");
        let actor = services::accounts::Actor::cli("test", 1);
        let at = "2026-12-01T02:00:00+00:00";
        if services::rules::in_force(db.as_mut())
            .expect("in force")
            .is_none()
            && db.rule_sets().expect("rule sets").is_empty()
        {
            services::rules::upload(db.as_mut(), BLOCK, &actor, at).expect("upload");
        }
        services::rules::set_status(db.as_mut(), &v, status, &actor, at).expect("status");
    })
    .await
    .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_puts_the_rule_set_in_force_to_work() {
    for store in stores("rules") {
        let setup = Setup {
            key_check_secs: 1,
            ..Setup::default()
        };
        let w = World::start_with(&store, setup).await;
        let mut pos = w.pos(0).await;
        let c = w.card(CardFate::Good, 0).clone();
        let sell = async |pos: &mut crate::scenarios::Pos, amount: i64| {
            let r = pos.term.sale(&card(&c), amount).expect("sale");
            code(&pos.send(r).await)
        };
        assert_eq!(
            sell(&mut pos, 4_300).await,
            "00",
            "the default rules pass it"
        );
        // Active: within a few checks, sales over 42.50 are declined 61.
        set(&store, "block-4300", services::rules::RuleStatus::Active).await;
        let mut got = String::new();
        for _ in 0..100 {
            got = sell(&mut pos, 4_300).await;
            if got == "61" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(got, "61", "the active version declines ({store})");
        assert_eq!(sell(&mut pos, 4_200).await, "00", "under its limit");
        // Shadow: recorded, never acting.
        set(&store, "block-4300", services::rules::RuleStatus::Shadow).await;
        for _ in 0..100 {
            got = sell(&mut pos, 4_300).await;
            if got == "00" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(got, "00", "the shadow version never acts ({store})");
        w.finish(&store).await;
    }
}
