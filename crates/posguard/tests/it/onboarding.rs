//! A merchant onboarded end to end, on SQLite and PostgreSQL: an application entered,
//! checked, reviewed and approved; `posguard merchant provision` makes the merchant,
//! its terms and a terminal whose master key is printed as two components; the
//! components are loaded into a terminal, which signs on, makes its test sale (the
//! terminal becomes active) and the sale settles to the new merchant's own account.

use posguard::demo_data::{CardFate, DemoTerminal};
use services::onboarding::{self, PiiKey};

use crate::scenarios::{card, code, stores, Pos, World};

const PII_KEY: &str = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";

fn form() -> merchants::application::Form {
    serde_json::from_value(serde_json::json!({
        "legal_name": "杭州新开张餐饮有限公司",
        "kind": "company",
        "uscc": "91110108123456788E",
        "representative": {"name": "李娜", "id_number": "32010220000201000X", "phone": "13912345678"},
        "registered_address": "杭州市西湖区文三路1号",
        "business_address": "杭州市西湖区文三路1号",
        "mcc": "5812",
        "settlement_account": {"bank": "建设银行杭州分行", "name": "杭州新开张餐饮有限公司", "number": "3300123456789012345678"},
        "monthly_volume_minor": 20000000,
        "average_ticket_minor": 8000,
        "terminals": [{"install_address": "前台", "latitude": 30.28, "longitude": 120.13}],
    }))
    .expect("form")
}

/// The clear TMK from the provision command's two components.
fn combine(out: &str) -> (String, String, String) {
    let merchant = out
        .lines()
        .find_map(|l| l.strip_prefix("merchant "))
        .and_then(|l| l.split_whitespace().next())
        .expect("merchant line")
        .to_owned();
    let terminal = out
        .lines()
        .find_map(|l| l.strip_prefix("terminal "))
        .and_then(|l| l.split_whitespace().next())
        .expect("terminal line")
        .to_owned();
    let parts: Vec<Vec<u8>> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("TMK component "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|h| hex::decode(h).expect("hex"))
        .collect();
    assert_eq!(parts.len(), 2, "{out}");
    let mut key = cardsec::Key::from_bytes(
        &parts[0]
            .iter()
            .zip(&parts[1])
            .map(|(a, b)| a ^ b)
            .collect::<Vec<u8>>(),
    )
    .expect("key");
    key.fix_parity();
    (merchant, terminal, hex::encode_upper(key.expose()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_application_becomes_a_merchant_whose_new_terminal_sells_and_settles() {
    for store in stores("onboard") {
        let s = store.clone();
        tokio::task::spawn_blocking(move || crate::scenarios::cleanup(&s))
            .await
            .expect("cleanup");
        let s = store.clone();
        let lmk_file =
            std::env::temp_dir().join(format!("posguard-onboard-lmk-{}", std::process::id()));
        std::fs::write(&lmk_file, posguard::demo_data::DEMO_LMK).expect("lmk file");
        let lmk_arg = lmk_file.display().to_string();
        let out = tokio::task::spawn_blocking(move || {
            // The applicant's and the reviewer's steps on the command line: the form
            // and its documents as files, the PII key from its file.
            let dir =
                std::env::temp_dir().join(format!("posguard-onboard-cli-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let file = |name: &str, bytes: &[u8]| {
                let p = dir.join(name);
                std::fs::write(&p, bytes).expect("write");
                p.display().to_string()
            };
            let key_file = file("pii.key", PII_KEY.as_bytes());
            let form_file = file(
                "form.json",
                serde_json::to_string(&form()).expect("json").as_bytes(),
            );
            let at_flag = if s.starts_with("postgres") {
                "--database-url"
            } else {
                "--data"
            };
            let cli = |args: &[&str]| {
                let mut argv = args.to_vec();
                argv.extend([at_flag, s.as_str()]);
                let (code, out, err) = crate::run(&argv, b"");
                assert_eq!(code, 0, "{argv:?}: {err}");
                String::from_utf8(out).expect("utf-8")
            };
            let out = cli(&[
                "application",
                "create",
                "--form",
                &form_file,
                "--pii-key-file",
                &key_file,
            ]);
            assert!(out.starts_with("application 1 draft"), "{out}");
            let kind = merchants::application::ApplicantKind::Company;
            for t in merchants::documents::required(kind, "5812", merchants::mcc::Table::builtin())
            {
                let pdf = file(
                    &format!("{}.pdf", t.name()),
                    format!("%PDF-1.4 {}", t.name()).as_bytes(),
                );
                let mut args = vec![
                    "application",
                    "document",
                    "1",
                    "--type",
                    t.name(),
                    "--file",
                    &pdf,
                ];
                if t.expires() {
                    args.extend(["--expires-on", "2030-01-01"]);
                }
                cli(&args);
            }
            for (step, note) in [("submit", ""), ("assign", "zhao.lei"), ("approve", "low")] {
                let out = cli(&[
                    "application",
                    "step",
                    "1",
                    step,
                    "--note",
                    note,
                    "--pii-key-file",
                    &key_file,
                ]);
                assert!(!out.contains("checks_failed"), "{step}: {out}");
            }
            let shown = cli(&["application", "show", "1"]);
            assert!(shown.contains("application 1 approved"), "{shown}");
            assert!(shown.contains("approve by os:"), "{shown}");
            // No clear resident ID number in what the command printed.
            assert!(!shown.contains("32010220000201000X"), "{shown}");
            let _ = std::fs::remove_dir_all(&dir);
            let at = if s.starts_with("postgres") {
                "--database-url"
            } else {
                "--data"
            };
            let args = [
                "merchant",
                "provision",
                at,
                &s,
                "--lmk-file",
                &lmk_arg,
                "--application",
                "1",
            ];
            let (code, out, err) = crate::run(&args, b"");
            assert_eq!(code, 0, "{err}");
            // Provisioning twice is refused.
            let (again, _, err) = crate::run(&args, b"");
            assert_eq!(again, 2, "{err}");
            String::from_utf8(out).expect("utf-8")
        })
        .await
        .expect("join");
        let _ = std::fs::remove_file(&lmk_file);
        assert!(out.contains("(pending install)"), "{out}");
        let (merchant, terminal, tmk_hex) = combine(&out);
        eprintln!("onboarded ({store}): merchant {merchant}, terminal {terminal}");
        // The node starts on the store with the new merchant (no demo seeding: the store
        // has a terminal already).
        let w = World::start_with(&store, crate::scenarios::Setup::default()).await;
        let t = DemoTerminal {
            terminal_id: terminal.clone(),
            merchant_id: merchant.clone(),
            tmk_hex,
            location: "30.2800,120.1300".into(),
            key_layout: cardsec::KeyLayout::Double,
        };
        let mut pos = Pos::signed_on(w.acquirer, &t).await;
        let c = w.card(CardFate::Good, 0).clone();
        let r = pos.term.sale(&card(&c), 8_800).expect("sale");
        assert_eq!(code(&pos.send(r).await), "00", "the test sale");
        let s = store.clone();
        let merchant_id = merchant.clone();
        let (status, settlement) = tokio::task::spawn_blocking(move || {
            let merchant = merchant_id;
            let mut db = posguard::node::open_store(&s).expect("open");
            let status = db
                .terminals()
                .expect("terminals")
                .into_iter()
                .find(|x| x.terminal_id == terminal)
                .map(|x| x.status)
                .expect("terminal");
            let sale = posguard::check::load_journal(&s)
                .expect("journal")
                .into_iter()
                .find(|x| x.merchant_id == merchant)
                .expect("the sale");
            let day =
                chrono::NaiveDate::parse_from_str(&sale.local_date, "%Y-%m-%d").expect("date");
            let cfg = services::money::MoneyConfig {
                out_dir: std::env::temp_dir()
                    .join(format!("posguard-onboard-files-{}", std::process::id())),
                ..Default::default()
            };
            let actor = services::accounts::Actor::cli("test", 1);
            let report = services::money::settle_date(
                db.as_mut(),
                day,
                &cfg,
                &actor,
                "2026-12-02T01:00:00+00:00",
            )
            .expect("settle");
            let mine = report
                .settlements
                .into_iter()
                .find(|x| x.merchant_id == merchant)
                .expect("the new merchant settled");
            (status, mine)
        })
        .await
        .expect("join");
        assert_eq!(status, "active", "the test sale installed the terminal");
        assert_eq!(settlement.settlement_account, "3300123456789012345678");
        assert_eq!(settlement.gross_minor, 8_800);
        assert!(
            settlement.net_minor > 0 && settlement.net_minor < 8_800,
            "{settlement:?}"
        );
        // The periodic re-review: due in 24 months for a low-risk merchant; 30 days
        // past due its settlement is held, the re-review releases it. Then the
        // blocklist exits it: suspended, its terminal disabled.
        let s = store.clone();
        let m = merchant.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = posguard::node::open_store(&s).expect("open");
            let actor = services::accounts::Actor::cli("test", 1);
            let at = "2026-12-03T01:00:00+00:00";
            let review = db
                .merchant_reviews()
                .expect("reviews")
                .into_iter()
                .find(|r| r.merchant_id == m)
                .expect("a re-review schedule");
            let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date");
            let due = day(&review.due_on);
            assert_eq!(review.risk_level, "low");
            let grace_end = due + chrono::Duration::days(30);
            let sweep = |db: &mut dyn store::Backend, d| {
                onboarding::enforce_rereviews(db, d, &actor, at).expect("sweep")
            };
            assert!(sweep(db.as_mut(), grace_end).is_empty(), "within the grace");
            let held_now = sweep(db.as_mut(), grace_end + chrono::Duration::days(1));
            assert_eq!(held_now, std::slice::from_ref(&m));
            let held = |db: &mut dyn store::Backend| {
                db.holds(true)
                    .expect("holds")
                    .iter()
                    .any(|h| h.hold_id == format!("rereview:{m}"))
            };
            assert!(held(db.as_mut()));
            let next = onboarding::complete_rereview(
                db.as_mut(),
                &m,
                "medium",
                "site visit",
                day("2029-01-02"),
                &actor,
                at,
            )
            .expect("re-review");
            assert_eq!(next.due_on, "2030-01-02", "12 months for medium risk");
            // The new rating's limits are the merchant's terms now.
            let terms = db.terms_of(&m).expect("read").expect("terms");
            assert_eq!(
                (
                    terms.txn_limit_minor,
                    terms.day_limit_minor,
                    terms.reserve_bps
                ),
                (2_000_000, 20_000_000, 0),
                "a standard merchant rated medium"
            );
            // Rated high: lower limits, a 10% reserve kept 90 days, and no same-day
            // settlement.
            onboarding::complete_rereview(
                db.as_mut(),
                &m,
                "high",
                "chargebacks rising",
                day("2029-02-01"),
                &actor,
                at,
            )
            .expect("re-review");
            let terms = db.terms_of(&m).expect("read").expect("terms");
            assert_eq!(
                (terms.txn_limit_minor, terms.reserve_bps, terms.reserve_days),
                (1_000_000, 1_000, 90)
            );
            let same_day = store::TermsRow {
                cycle: "D+0:100000".into(),
                ..terms
            };
            let refused = services::money::set_terms(db.as_mut(), same_day, &actor, at);
            assert!(
                matches!(refused, Err(services::ServiceError::BadInput(_))),
                "{refused:?}"
            );
            assert!(!held(db.as_mut()), "the re-review releases the hold");
            let key = PiiKey::from_hex(PII_KEY).expect("key");
            onboarding::block(
                db.as_mut(),
                "account",
                "3300123456789012345678",
                "fraud ring",
                &key,
                &actor,
                at,
            )
            .expect("block");
            let status = db.merchant(&m).expect("read").expect("merchant").status;
            assert_eq!(status, "suspended", "the blocklist exits the merchant");
            assert!(db
                .terminals()
                .expect("terminals")
                .iter()
                .filter(|t| t.merchant_id == m)
                .all(|t| t.status == "disabled"));
        })
        .await
        .expect("join");
        w.finish(&store).await;
    }
}

/// A change made through the API reaches every node serving the merchant without a
/// restart: with two nodes on one store, the second node's very next sale after it has
/// the change (PostgreSQL wakes it with `NOTIFY`; SQLite is read every 100 ms) is
/// declined with the right code, and none of these reaches the issuer: a limit
/// lowered (61), the merchant suspended (03), the terminal disabled (58); undone, the
/// sales go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_obey_changes_made_through_the_api_at_once() {
    use std::sync::atomic::Ordering;
    for store in stores("feed") {
        let w = World::start_with(&store, crate::scenarios::Setup::default()).await;
        let mut second = node_options_for(&store, w.issuer.iso_addr());
        second.switch.node = 2;
        let mut data = w.data.clone();
        let node2 = crate::scenarios::Node::start(second, &mut data).await;
        let t = w.data.terminals[0].clone();
        let mid = t.merchant_id.clone();
        // An operator, and the API on the same store.
        let api = crate::scenarios::ApiServer::start(
            &store,
            "ops.wang",
            services::accounts::Role::Operations,
        )
        .await;
        let (api_addr, token) = (api.addr, api.token.clone());
        // The second node serves the terminal: its installation sale activates it.
        let mut pos = crate::scenarios::Pos::signed_on(node2.addr, &t).await;
        let mut nth = 0;
        let mut sell = |pos: &mut crate::scenarios::Pos| {
            nth += 1;
            let c = w.card(CardFate::Good, nth % 20).clone();
            pos.term.sale(&card(&c), 1_500).expect("sale")
        };
        let r = sell(&mut pos);
        assert_eq!(
            code(&pos.send(r).await),
            "00",
            "the installation sale ({store})"
        );
        let small = 1_000;
        let changes: [(&str, String, serde_json::Value, &str, serde_json::Value); 3] = [
            (
                "limit lowered",
                format!("/api/v1/merchants/{mid}/limits"),
                serde_json::json!({"txn_limit_minor": small, "day_limit_minor": 10_000_000, "reason": "test"}),
                "61",
                serde_json::json!({"txn_limit_minor": 1_000_000, "day_limit_minor": 10_000_000, "reason": "test over"}),
            ),
            (
                "merchant suspended",
                format!("/api/v1/merchants/{mid}/status"),
                serde_json::json!({"status": "suspended", "reason": "suspected fraud"}),
                "03",
                serde_json::json!({"status": "active", "reason": "cleared"}),
            ),
            (
                "terminal disabled",
                format!("/api/v1/terminals/{}/status", t.terminal_id),
                serde_json::json!({"status": "disabled", "reason": "reported stolen"}),
                "58",
                serde_json::json!({"status": "active", "reason": "found"}),
            ),
        ];
        let post = |path: String, body: serde_json::Value| {
            let (token, s) = (token.clone(), store.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    ureq::post(&format!("http://{api_addr}{path}"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .send_json(body)
                        .expect("change accepted");
                    // The audit record of the change: the feed position it is at.
                    let mut db = posguard::node::open_store(&s).expect("open");
                    db.audit_after(0, 1_000_000)
                        .expect("audit")
                        .last()
                        .map(|a| a.seq)
                        .expect("an audit record")
                })
                .await
                .expect("join")
            }
        };
        // Bounded: the change reaches the node within milliseconds (PostgreSQL) or
        // 100 ms (SQLite); the bound is for a machine under load.
        let reached = |seq: i64| {
            let stats = node2.stats.clone();
            async move {
                let t0 = tokio::time::Instant::now();
                while stats.feed_position.load(Ordering::Relaxed) < seq {
                    assert!(
                        t0.elapsed() < std::time::Duration::from_secs(20),
                        "the change never reached the second node"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                t0.elapsed()
            }
        };
        for (what, path, body, want, undo) in changes {
            let seq = post(path.clone(), body).await;
            let took = reached(seq).await;
            eprintln!("{what} ({store}): on the second node after {took:?}");
            let sent = node2.stats.issuer_sent.load(Ordering::Relaxed);
            let r = sell(&mut pos);
            assert_eq!(code(&pos.send(r).await), want, "{what} ({store})");
            assert_eq!(
                node2.stats.issuer_sent.load(Ordering::Relaxed),
                sent,
                "{what}: the refused sale reached the issuer"
            );
            let seq = post(path, undo).await;
            reached(seq).await;
            let r = sell(&mut pos);
            assert_eq!(code(&pos.send(r).await), "00", "{what} undone ({store})");
        }
        api.stop().await;
        node2.stop().await;
        w.finish(&store).await;
    }
}

fn node_options_for(store: &str, issuer: std::net::SocketAddr) -> posguard::node::NodeOptions {
    let mut o = posguard::run_cli::node_options(store.to_owned(), issuer, 5_000);
    // No echo on the idle issuer link while the test counts what reaches the issuer.
    o.gateway.echo_interval = std::time::Duration::from_secs(3_600);
    o
}
