//! The API over real HTTP on loopback, on SQLite and (when `POSGUARD_TEST_PG_URL` is
//! set) PostgreSQL: every route × every role allowed or refused as the grants say,
//! merchants confined to their own objects, one audit record per change, the error
//! shape, the login throttle, health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use api::auth::allowed;
use serde_json::{json, Value};
use services::accounts::{self, Actor, Role};
use store::{
    CaptureRow, CaseRow, FindingRow, MerchantRow, SafRow, SafState, TerminalRow, TxnKind, TxnRow,
    TxnState, Write,
};

const PASSWORD: &str = "correct horse battery";
const NOW: &str = "2026-12-01T02:00:00+00:00";

fn locations(name: &str) -> Vec<String> {
    let pid = std::process::id();
    let mut out = vec![std::env::temp_dir()
        .join(format!("posguard-api-{name}-{pid}"))
        .display()
        .to_string()];
    match std::env::var("POSGUARD_TEST_PG_URL") {
        Ok(url) => out.push(format!("{url}?schema=api_{name}_{pid}")),
        Err(_) => eprintln!("POSGUARD_TEST_PG_URL not set: PostgreSQL API tests skipped"),
    }
    out
}

fn cleanup(location: &str) {
    if let Some((url, schema)) = location.split_once("?schema=") {
        if let Ok(mut b) = store::PgBackend::connect(url) {
            let _ = b.drop_schema(schema);
        }
    } else {
        let _ = std::fs::remove_dir_all(location);
    }
}

fn merchant(id: &str) -> Write {
    Write::Merchant(MerchantRow {
        merchant_id: id.into(),
        name: format!("Shop {id}"),
        city: "Shanghai".into(),
        mcc: "5411".into(),
        status: "active".into(),
        created_at: NOW.into(),
        merchant_class: "standard".into(),
        risk_class: "low".into(),
    })
}

fn sale(id: i64, merchant: &str) -> Write {
    Write::NewTxn(TxnRow {
        txn_id: id,
        request_key: format!("1000000{id}/1/{id}/2"),
        terminal_id: format!("1000000{id}"),
        merchant_id: merchant.into(),
        batch: 1,
        stan: id,
        mti: "0200".into(),
        kind: TxnKind::Sale,
        amount_minor: 12_345,
        currency: "156".into(),
        pan_token: format!("tok{id}"),
        masked_pan: "622848******1234".into(),
        rrn: format!("R{id:011}"),
        auth_code: Some("123456".into()),
        response_code: Some("00".into()),
        state: TxnState::Approved,
        original_rrn: None,
        link_stan: Some(id),
        reply_hex: None,
        local_date: "2026-12-01".into(),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    })
}

const SHOP_A: &str = "898310000000001";
const TERMINAL: &str = "10000001";
const PII_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The API's security module (a test LMK) and the injection facility's KEK (a ZMK
/// of the key table), clear.
fn test_hsm() -> cardsec::SoftwareSecurityModule {
    let lmk = cardsec::Lmk::from_hex("0123456789ABCDEFFEDCBA9876543210").expect("lmk");
    cardsec::SoftwareSecurityModule::new(lmk, Box::new(rand_core::OsRng))
}
const KEK: &str = "3B9AC1E4F08A7D5C2D4E6F8091A2B3C4";

/// A year of the calendar an administrator loads (2027 is not shipped).
const CALENDAR_2027: &str = "year 2027\nholiday 2027-01-01 元旦 New Year's Day\n\
holiday 2027-02-05..2027-02-11 春节 Spring Festival\nworkday 2027-02-13 春节调休\n";

/// A document's bytes (what a PDF starts with is all the checks look at).
const PDF: &[u8] = b"%PDF-1.4 shop photo";

/// SHA-256 of [`PDF`], hex.
fn pdf_sha() -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(PDF))
}

/// Uploads every document a grocery company needs to application `id`.
fn upload_all(server: &Server, token: &str, id: i64) {
    for t in merchants::documents::required(
        merchants::application::ApplicantKind::Company,
        "5411",
        merchants::mcc::Table::builtin(),
    ) {
        let expires = if t.expires() {
            "&expires_on=2030-01-01"
        } else {
            ""
        };
        let (status, body) = server.raw(
            "POST",
            &format!(
                "/api/v1/applications/{id}/documents?type={}{expires}",
                t.name()
            ),
            Some(token),
            Some(("application/pdf", format!("%PDF-1.4 {}", t.name()))),
        );
        assert_eq!(status, 201, "{}: {body}", t.name());
    }
}

/// A merchant application that passes every check.
fn form() -> Value {
    json!({
        "legal_name": "上海示例便利店有限公司",
        "kind": "company",
        "uscc": "91110108MA01PQ7K31",
        "representative": {"name": "张伟", "id_number": "110105199003071239", "phone": "13800138000"},
        "registered_address": "上海市黄浦区南京东路1号",
        "business_address": "上海市黄浦区南京东路1号",
        "mcc": "5411",
        "settlement_account": {"bank": "工商银行", "name": "上海示例便利店有限公司", "number": "1001234509876543210"},
        "monthly_volume_minor": 30000000,
        "average_ticket_minor": 4500,
        "terminals": [{"install_address": "收银台1", "latitude": 31.24, "longitude": 121.49}],
    })
}
const FINDING: &str = "2026-12-01:missing_at_issuer:R00000000002";
const CLEARING: &str = "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n\
    R00000000001,123456,000001,10000001,898310000000001,622848******1234,t1.ab,12345,CNY,sale,2026-12-01T10:00:00\n";

/// Where a test's settlement files go.
fn files_dir(location: &str) -> std::path::PathBuf {
    let name = location.replace(['/', ':', '?', '='], "_");
    std::env::temp_dir().join(format!("posguard-api-files-{name}"))
}
const SHOP_B: &str = "898310000000002";

/// A store with two merchants, a sale at each, and an operator of every role (the
/// merchant account sees shop A only).
fn seed(location: &str) {
    let mut db = store::open(location).expect("open");
    db.migrate().expect("migrate");
    db.apply(&[
        merchant(SHOP_A),
        merchant(SHOP_B),
        sale(1, SHOP_A),
        sale(2, SHOP_B),
    ])
    .expect("seed");
    let cli = Actor::cli("test", 1);
    // The back office's objects: a terminal, a captured sale settled, a finding, a
    // case, a queue entry handed to operators.
    db.apply(&[
        Write::Terminal(TerminalRow {
            terminal_id: TERMINAL.into(),
            merchant_id: SHOP_A.into(),
            status: "active".into(),
            tmk: "SECRET-TMK-UNDER-LMK".into(),
            pik: None,
            mak: None,
            mak_prev: None,
            key_version: 1,
            batch: 1,
            signed_on: true,
            install_location: "Shanghai".into(),
            updated_at: NOW.into(),
            key_profile: "003".into(),
            pending_pik: None,
            pending_mak: None,
            tdk: None,
            pending_tdk: None,
        }),
        Write::Capture(CaptureRow {
            txn_id: 1,
            how: "batch".into(),
            business_date: "2026-12-01".into(),
            at: NOW.into(),
        }),
        Write::Finding(FindingRow {
            finding_id: FINDING.into(),
            business_date: "2026-12-01".into(),
            class: "missing_at_issuer".into(),
            rrn: "R00000000002".into(),
            txn_id: Some(2),
            amount_minor: 12_345,
            evidence: "no clearing line".into(),
            action: "investigate".into(),
            status: "open".into(),
            owner: Some("operations".into()),
            deadline: Some("2026-12-04".into()),
            notes: String::new(),
            created_at: NOW.into(),
            updated_at: NOW.into(),
        }),
        Write::Case(CaseRow {
            case_id: 1,
            subject: format!("merchant:{SHOP_B}"),
            status: "open".into(),
            assignee: None,
            opened_at: NOW.into(),
            updated_at: NOW.into(),
        }),
        Write::Saf(SafRow {
            saf_id: 2,
            txn_id: 2,
            kind: "reversal".into(),
            message_hex: "SECRETMESSAGE".into(),
            attempts: 10,
            next_at_ms: 0,
            state: SafState::Exception,
            reason: "issuer answered 96".into(),
            owner: Some("operations".into()),
            created_at: NOW.into(),
            updated_at: NOW.into(),
        }),
    ])
    .expect("seed the back office");
    let cfg = services::money::MoneyConfig {
        out_dir: files_dir(location),
        ..Default::default()
    };
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    services::money::settle_date(db.as_mut(), day, &cfg, &cli, NOW).expect("settle");
    services::rules::upload(db.as_mut(), RULES, &cli, NOW).expect("rule set");
    use cardsec::SecurityModule as _;
    let zmk = test_hsm()
        .import_key(
            cardsec::KeyKind::Zmk,
            1,
            &cardsec::Key::from_hex(KEK).expect("kek"),
        )
        .expect("zmk");
    db.apply(&[Write::Key(store::KeyRow {
        kind: "ZMK".into(),
        version: 1,
        wrapped: zmk.to_text(),
        kcv: zmk.kcv_hex(),
        created_at: NOW.into(),
        created_by: "test".into(),
    })])
    .expect("kek");
    let f: merchants::application::Form = serde_json::from_value(form()).expect("form");
    let key = services::onboarding::PiiKey::from_hex(PII_KEY).expect("key");
    services::onboarding::create(db.as_mut(), &f, &key, day, &cli, NOW).expect("application");
    services::onboarding::attach_document(db.as_mut(), 1, "shop_photo", None, PDF, &cli, NOW)
        .expect("document");
    // A complaint about the first sale, with a refund waiting for approval.
    // (A merchant's, so the merchant account sees it too.)
    let filing = services::complaints::Filing {
        source: "merchant".into(),
        category: "merchant_credited_short".into(),
        contact: "the shop's manager".into(),
        language: "zh".into(),
        merchant_id: Some(SHOP_A.into()),
        rrn: Some("R00000000001".into()),
        ..Default::default()
    };
    let policies = services::complaints::Policies::default();
    services::complaints::file(db.as_mut(), &filing, &policies, &cli, NOW).expect("complaint");
    services::complaints::link(db.as_mut(), 1, &[1], &cli, NOW).expect("link");
    services::complaints::request_refund(db.as_mut(), 1, 1, 5_000, "debited twice", 0, &cli, NOW)
        .expect("refund waiting");
    services::complaints::escalate(db.as_mut(), 1, 1, &[], 10, &cli, NOW).expect("dispute");
    for r in Role::ALL {
        let shops = if r == Role::Merchant {
            vec![SHOP_A.to_owned()]
        } else {
            vec![]
        };
        accounts::add_operator(db.as_mut(), r.name(), r, PASSWORD, &shops, &cli, NOW)
            .expect("operator");
    }
}

/// The API on a loopback port, on its own runtime thread.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(location: &str) -> Server {
        let mut db = store::open(location).expect("open");
        db.migrate().expect("migrate");
        let clock: api::Clock = Arc::new(|| {
            chrono::DateTime::parse_from_rfc3339(NOW)
                .expect("time")
                .to_utc()
        });
        let money = services::money::MoneyConfig {
            out_dir: files_dir(location),
            ..Default::default()
        };
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let api = api::Api::with_money(db, clock, money);
                api.set_pii_key(services::onboarding::PiiKey::from_hex(PII_KEY).expect("key"));
                api.set_security_module(Arc::new(test_hsm()));
                api::serve(listener, api, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
            });
        });
        Server {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (status, JSON body or Null, raw text).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self.raw(
            method,
            path,
            token,
            body.map(|b| ("application/json", b.to_string())),
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request with a body of any type; (status, JSON body or Null).
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(String, String)>,
    ) -> (u16, Value) {
        let (status, text) = self.raw(
            method,
            path,
            token,
            body.as_ref().map(|(c, b)| (c.as_str(), b.clone())),
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (u16, String) {
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(30))
            .build();
        let mut req = agent.request(method, &self.url(path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = match body {
            Some((ctype, b)) => req.set("Content-Type", ctype).send_string(&b),
            None => req.call(),
        };
        match resp {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn login(&self, name: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/api/v1/session",
            None,
            Some(&json!({"name": name, "password": PASSWORD})),
        );
        assert_eq!(status, 201, "login {name}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A concrete request for a route of the table, and the body it sends (content type,
/// text).
fn request_for(method: &str, template: &str, role: Role) -> (String, Option<(String, String)>) {
    let path = template
        .replace("{rrn}", "R00000000001")
        .replace("{merchant_id}", SHOP_A)
        .replace("{hold_id}", "manual:1")
        .replace("{terminal_id}", TERMINAL)
        .replace("{settlement_id}", &settlement_id())
        .replace("{business_date}", "2026-12-01")
        .replace("{file}", "payouts")
        .replace("{finding_id}", FINDING)
        .replace("{case_id}", "1")
        .replace("{saf_id}", "2")
        .replace("{version}", "candidate-1")
        .replace("{app_id}", "1")
        .replace("{year}", "2027")
        .replace("{complaint_id}", "1")
        .replace("{action_id}", "1")
        .replace("{dispute_id}", "1")
        .replace("{sha256}", &pdf_sha());
    let path = match template {
        "/api/v1/merchants/{merchant_id}/statement" => format!("{path}?date=2026-12-01"),
        "/api/v1/applications/{app_id}/documents" if method == "POST" => {
            format!("{path}?type=shop_photo")
        }
        "/api/v1/clearing-files" => format!("{path}?business_date=2026-12-01"),
        "/api/v1/complaints/report" => format!("{path}?from=2026-11-01&to=2026-12-31"),
        _ => path,
    };
    match (method, template) {
        ("PUT", "/api/v1/calendars/{year}") => {
            return (path, Some(("text/plain".into(), CALENDAR_2027.into())))
        }
        ("PUT", "/api/v1/mcc-table") => {
            return (
                path,
                Some((
                    "text/plain".into(),
                    include_str!("../../../merchants/calendars/mcc.txt").into(),
                )),
            )
        }
        _ => {}
    }
    if (method, template) == ("POST", "/api/v1/applications/{app_id}/documents") {
        return (
            path,
            Some((
                "application/pdf".into(),
                String::from_utf8_lossy(PDF).into_owned(),
            )),
        );
    }
    let body = match (method, template) {
        ("POST", "/api/v1/holds") => {
            Some(json!({"subject": format!("merchant:{SHOP_A}"), "reason": "chargeback review"}))
        }
        ("POST", "/api/v1/operators") => Some(json!({
            "name": format!("new-{}", role.name()), "role": "support", "password": PASSWORD,
        })),
        ("POST", "/api/v1/session") => Some(json!({"name": role.name(), "password": PASSWORD})),
        ("POST", "/api/v1/settlement-runs" | "/api/v1/recon-runs") => {
            Some(json!({"business_date": "2026-12-01"}))
        }
        ("POST", "/api/v1/payouts/confirm") => Some(json!({"value_date": "2026-12-31"})),
        ("POST", "/api/v1/merchants/{merchant_id}/rereview") => {
            Some(json!({"risk_rating": "low", "note": "site visit done"}))
        }
        ("POST", "/api/v1/blocklist") => Some(json!({
            "kind": "account", "value": "6222000011112222333", "reason": "fraud ring",
        })),
        ("POST", "/api/v1/merchants/{merchant_id}/status") => {
            Some(json!({"status": "suspended", "reason": "chargeback ratio over 1%"}))
        }
        ("POST", "/api/v1/complaints") if role == Role::Merchant => Some(json!({
            "source": "merchant", "category": "merchant_not_credited", "contact": "the manager",
            "language": "zh", "rrn": "R00000000001",
        })),
        ("POST", "/api/v1/complaints") => Some(json!({
            "source": "cardholder_phone", "category": "unrecognised", "contact": "13800000000",
            "language": "zh", "rrn": "R00000000001",
        })),
        ("POST", "/api/v1/complaints/assign") => {
            Some(json!({"complaint_ids": [1], "owner": "support.li"}))
        }
        ("POST", "/api/v1/complaints/{complaint_id}/link") => Some(json!({"txn_ids": [1]})),
        ("POST", "/api/v1/complaints/{complaint_id}/extend") => {
            Some(json!({"days": 30, "reason": "waiting for the issuer's records"}))
        }
        ("POST", "/api/v1/complaints/{complaint_id}/resolve") => {
            Some(json!({"outcome": "explained"}))
        }
        ("POST", "/api/v1/complaints/{complaint_id}/escalate") => Some(json!({
            "txn_id": 1, "evidence": [{"kind": "receipt", "text": "the terminal's slip"}],
        })),
        ("POST", "/api/v1/disputes/{dispute_id}") => Some(json!({
            "evidence": [{"kind": "transaction_log", "text": "journal events of the sale"}],
        })),
        ("POST", "/api/v1/complaints/{complaint_id}/refund") => {
            Some(json!({"txn_id": 1, "amount_minor": 100, "reason": "goodwill"}))
        }
        ("POST", "/api/v1/merchants/{merchant_id}/limits") => Some(
            json!({"txn_limit_minor": 500_000, "day_limit_minor": 5_000_000, "reason": "risk rating raised"}),
        ),
        ("POST", "/api/v1/terminals/{terminal_id}/location") => Some(
            json!({"latitude": 31.2304, "longitude": 121.4737, "reason": "moved to the new shop"}),
        ),
        ("POST", "/api/v1/terminals/{terminal_id}/status") => {
            Some(json!({"status": "disabled", "reason": "reported stolen"}))
        }
        ("POST", "/api/v1/applications" | "/api/v1/applications/{app_id}/resubmit") => Some(form()),
        ("POST", "/api/v1/applications/{app_id}/approve") => Some(json!({"note": "low"})),
        (
            "POST",
            "/api/v1/applications/{app_id}/submit" | "/api/v1/applications/{app_id}/withdraw",
        ) => None,
        ("POST", t) if t.starts_with("/api/v1/applications/") => Some(json!({"note": "zhao.lei"})),
        ("POST", t) if t.ends_with("/assign") => Some(json!({"assignee": "wang.fang"})),
        ("POST", t) if t.ends_with("/resolve") || t.ends_with("/note") => {
            Some(json!({"note": "called the issuer: credited on 12-02"}))
        }
        ("POST", "/api/v1/risk/cases/{case_id}/close") => Some(json!({"verdict": "not-fraud"})),
        ("POST", "/api/v1/risk/backtests" | "/api/v1/risk/rule-sets") => {
            Some(json!({"rules": RULES}))
        }
        ("POST", "/api/v1/risk/rule-sets/{version}/status") => Some(json!({"status": "shadow"})),
        ("POST", "/api/v1/clearing-files") => {
            return (path, Some(("text/csv".into(), CLEARING.into())));
        }
        _ => None,
    };
    (
        path,
        body.map(|b| ("application/json".to_owned(), b.to_string())),
    )
}

const RULES: &str = "version = \"candidate-1\"\n\n[[rule]]\nid = \"big-night\"\ndescription = \"large sales\"\nwhen = \"amount > 100000\"\naction = \"review\"\nscore = 10\n";

/// The settlement the seed's run made for shop A.
fn settlement_id() -> String {
    format!("S20261201-{SHOP_A}")
}

#[test]
fn every_route_allows_exactly_the_roles_the_grants_name() {
    for location in locations("routes") {
        cleanup(&location);
        seed(&location);
        let server = Server::start(&location);
        // A hold to release.
        let admin = server.login("admin");
        let (status, _) = server.call(
            "POST",
            "/api/v1/holds",
            Some(&admin),
            Some(&json!({"subject": format!("merchant:{SHOP_B}"), "reason": "setup"})),
        );
        assert_eq!(status, 201);
        let tokens: std::collections::HashMap<Role, String> = Role::ALL
            .into_iter()
            .map(|r| (r, server.login(r.name())))
            .collect();
        let mut checked = 0;
        for (method, template, permission) in api::ROUTES {
            // Without credentials: 401 (logging in needs none).
            let (path, body) = request_for(method, template, Role::Admin);
            let (status, err) = server.send(method, &path, None, body.clone());
            match permission {
                None => assert!(
                    (200..300).contains(&status),
                    "{method} {path} without credentials: {status} {err}"
                ),
                Some(_) => {
                    assert_eq!(status, 401, "{method} {path} without credentials: {err}");
                    assert_eq!(err["error"]["code"], "unauthenticated");
                }
            }
            let Some(p) = permission else { continue };
            for role in Role::ALL {
                // Logging out ends the token: that route gets a fresh one.
                let token = if *template == "/api/v1/session" {
                    server.login(role.name())
                } else {
                    tokens[&role].clone()
                };
                let (path, body) = request_for(method, template, role);
                let (status, resp) = server.send(method, &path, Some(&token), body);
                // An application's review steps depend on where it stands: an allowed
                // role may be answered 409 (not now), never 401, 403 or 404.
                // So do a complaint's steps.
                let stateful = method == &"POST"
                    && (template.starts_with("/api/v1/applications/")
                        || template.starts_with("/api/v1/complaint"));
                if allowed(role, *p) && stateful {
                    assert!(
                        (200..300).contains(&status) || status == 409,
                        "{role} {method} {path} should be allowed: {status} {resp} ({location})"
                    );
                } else if allowed(role, *p) {
                    assert!(
                        (200..300).contains(&status),
                        "{role} {method} {path} should be allowed: {status} {resp} ({location})"
                    );
                } else {
                    assert_eq!(
                        status, 403,
                        "{role} {method} {path} should be refused: {resp}"
                    );
                    assert_eq!(resp["error"]["code"], "forbidden");
                }
                checked += 1;
            }
        }
        let open = api::ROUTES.iter().filter(|r| r.2.is_none()).count();
        assert_eq!(checked, (api::ROUTES.len() - open) * Role::ALL.len());
        drop(server);
        cleanup(&location);
    }
}

/// The OpenAPI document names every route of the table with its method, and the
/// schemas it refers to.
#[test]
fn the_openapi_document_has_every_route() {
    let location = locations("openapi").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let (status, doc) = server.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{doc}"
    );
    for (method, path, permission) in api::ROUTES {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
        assert_eq!(
            op["security"].is_array(),
            permission.is_some(),
            "{method} {path}"
        );
    }
    for schema in [
        "ErrorBody",
        "LoginBody",
        "HoldBody",
        "OperatorBody",
        "DateBody",
        "PayoutBody",
        "AssignBody",
        "NoteBody",
        "CloseBody",
        "BacktestBody",
        "RulesBody",
        "StatusBody",
        "StatusChangeBody",
        "Form",
        "ReviewBody",
        "BlockBody",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let text = doc.to_string();
    assert!(!text.contains("password_hash"));
    drop(server);
    cleanup(&location);
}

#[test]
fn a_merchant_sees_only_its_own_and_others_do_not_exist_for_it() {
    for location in locations("merchant") {
        cleanup(&location);
        seed(&location);
        let server = Server::start(&location);
        let shop = server.login("merchant");
        // Complaints: the merchant files about its own money, as itself; it sees its
        // own complaints, never a cardholder's (which carries the cardholder's contact);
        // the acquirer-wide report is staff's.
        let support = server.login("support");
        let (status, theirs) = server.call(
            "POST",
            "/api/v1/complaints",
            Some(&support),
            Some(
                &json!({"source": "cardholder_phone", "category": "unrecognised",
                         "contact": "13912345678", "language": "en", "rrn": "R00000000001"}),
            ),
        );
        assert_eq!(status, 201, "{theirs}");
        let (status, own) = server.call(
            "POST",
            "/api/v1/complaints",
            Some(&shop),
            Some(
                &json!({"source": "cardholder_web", "category": "merchant_not_credited",
                         "contact": "the manager", "language": "zh", "rrn": "R00000000001"}),
            ),
        );
        assert_eq!(status, 201, "{own}");
        assert_eq!(
            (own["source"].as_str(), own["merchant_id"].as_str()),
            (Some("merchant"), Some(SHOP_A))
        );
        let (status, e) = server.call(
            "POST",
            "/api/v1/complaints",
            Some(&shop),
            Some(&json!({"source": "merchant", "category": "unrecognised",
                         "contact": "x", "language": "zh", "rrn": "R00000000001"})),
        );
        assert_eq!(status, 400, "{e}");
        let (_, mine) = server.call("GET", "/api/v1/complaints", Some(&shop), None);
        let ids: Vec<i64> = mine["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|c| c["complaint_id"].as_i64())
            .collect();
        assert!(
            ids.contains(&own["complaint_id"].as_i64().expect("id")),
            "{mine}"
        );
        assert!(
            !ids.contains(&theirs["complaint_id"].as_i64().expect("id")),
            "{mine}"
        );
        assert!(!mine.to_string().contains("13912345678"));
        let path = format!("/api/v1/complaints/{}", theirs["complaint_id"]);
        assert_eq!(server.call("GET", &path, Some(&shop), None).0, 404);
        let report = "/api/v1/complaints/report?from=2026-11-01&to=2026-12-31";
        assert_eq!(server.call("GET", report, Some(&shop), None).0, 403);
        let (status, list) = server.call("GET", "/api/v1/transactions", Some(&shop), None);
        assert_eq!(status, 200);
        let rrns: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["rrn"].as_str())
            .collect();
        assert_eq!(rrns, ["R00000000001"], "{location}");
        for path in [
            "/api/v1/transactions/R00000000002".to_owned(),
            "/api/v1/transactions/R00000000002/timeline".to_owned(),
            format!("/api/v1/merchants/{SHOP_B}"),
            "/api/v1/transactions/R99999999999".to_owned(),
        ] {
            let (status, body) = server.call("GET", &path, Some(&shop), None);
            assert_eq!(status, 404, "{path}: {body}");
            assert_eq!(body["error"]["code"], "not_found");
        }
        // The back office's merchant-facing objects: its own only.
        let (_, list) = server.call("GET", "/api/v1/settlements", Some(&shop), None);
        let ids: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|s| s["merchant_id"].as_str())
            .collect();
        assert_eq!(ids, [SHOP_A], "{list}");
        let (_, list) = server.call("GET", "/api/v1/terminals", Some(&shop), None);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert!(!list.to_string().contains("SECRET"), "no key in {list}");
        for path in [
            format!("/api/v1/settlements/S20261201-{SHOP_B}"),
            format!("/api/v1/merchants/{SHOP_B}/statement?date=2026-12-01"),
        ] {
            let (status, body) = server.call("GET", &path, Some(&shop), None);
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (status, own) = server.call(
            "GET",
            &format!("/api/v1/merchants/{SHOP_A}/statement?date=2026-12-01"),
            Some(&shop),
            None,
        );
        assert_eq!(status, 200, "{own}");
        assert_eq!(own["settlements"][0]["net_minor"], 12_302, "{own}");
        let (status, detail) = server.call(
            "GET",
            &format!("/api/v1/settlements/{}", settlement_id()),
            Some(&shop),
            None,
        );
        assert_eq!(status, 200);
        assert_eq!(detail["items"][0]["rrn"], "R00000000001", "{detail}");
        assert_eq!(detail["payouts"][0]["status"], "instructed", "{detail}");
        // Asking for another merchant's transactions by filter finds nothing.
        let (_, list) = server.call(
            "GET",
            &format!("/api/v1/transactions?merchant={SHOP_B}"),
            Some(&shop),
            None,
        );
        assert_eq!(list["items"], json!([]));
        let (_, list) = server.call("GET", "/api/v1/merchants", Some(&shop), None);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        // Staff see both.
        let ops = server.login("operations");
        let (_, list) = server.call("GET", "/api/v1/transactions", Some(&ops), None);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
        // The CSV export honours the list's filters and the merchant's confinement.
        let csv = |token: &str, query: &str| {
            let (status, text) = server.raw(
                "GET",
                &format!("/api/v1/transactions?format=csv{query}"),
                Some(token),
                None,
            );
            assert_eq!(status, 200, "{text}");
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        };
        let rows = csv(&ops, "");
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows[0].starts_with("txn_id,rrn,kind,state,"), "{rows:?}");
        assert!(rows[1].contains("R00000000001") && rows[2].contains("R00000000002"));
        assert_eq!(csv(&ops, "&state=declined").len(), 1, "header only");
        assert_eq!(csv(&ops, &format!("&merchant={SHOP_B}")).len(), 2);
        let rows = csv(&shop, "");
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows[1].contains("R00000000001"));
        assert!(
            !rows.concat().contains("tok1"),
            "no PAN token in the export"
        );
        drop(server);
        cleanup(&location);
    }
}

/// A change through the API: method, path, body (content type, text), the audit
/// action and object it records, and who makes it.
type Change<'a> = (
    &'a str,
    String,
    Option<(String, String)>,
    &'a str,
    String,
    &'a str,
);

#[test]
fn every_change_leaves_exactly_one_audit_record_with_before_and_after() {
    for location in locations("audit") {
        cleanup(&location);
        seed(&location);
        let server = Server::start(&location);
        let auditor = server.login("auditor");
        let audit = |after: i64| -> Vec<Value> {
            let (status, body) = server.call(
                "GET",
                &format!("/api/v1/audit?after={after}&limit=500"),
                Some(&auditor),
                None,
            );
            assert_eq!(status, 200, "{body}");
            body["items"].as_array().expect("items").clone()
        };
        let seq = |items: &[Value]| items.last().and_then(|a| a["seq"].as_i64()).unwrap_or(0);
        let base = audit(0);
        // The seeded operators and the auditor's login are there already.
        assert!(base
            .iter()
            .any(|a| a["action"] == "operator.add" && a["object"] == "operator:admin"));
        let mut last = seq(&base);
        let ops = server.login("operations");
        let admin = server.login("admin");
        let logins = audit(last);
        assert_eq!(
            logins
                .iter()
                .map(|a| a["action"].as_str().unwrap_or(""))
                .collect::<Vec<_>>(),
            ["session.login", "session.login"]
        );
        last = seq(&logins);
        // (method, path, body, action, object, who): every kind of change the API makes.
        let json_body = |v: Value| Some(("application/json".to_owned(), v.to_string()));
        let changes: Vec<Change> = vec![
            (
                "POST",
                "/api/v1/holds".into(),
                json_body(json!({"subject": "txn:R00000000001", "reason": "cardholder dispute"})),
                "hold.place",
                "hold:manual:1".into(),
                "operations",
            ),
            (
                "DELETE",
                "/api/v1/holds/manual:1".into(),
                None,
                "hold.release",
                "hold:manual:1".into(),
                "operations",
            ),
            (
                "POST",
                "/api/v1/operators".into(),
                json_body(json!({"name": "li.na", "role": "finance", "password": PASSWORD})),
                "operator.add",
                "operator:li.na".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/settlement-runs".into(),
                json_body(json!({"business_date": "2026-12-02"})),
                "settlement.run",
                "settlement_run:2026-12-02".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/payouts/confirm".into(),
                json_body(json!({"value_date": "2026-12-31"})),
                "payout.confirm",
                format!("payout:{}:0", settlement_id()),
                "admin",
            ),
            (
                "POST",
                "/api/v1/clearing-files?business_date=2026-12-01".into(),
                Some(("text/csv".into(), CLEARING.into())),
                "recon.ingest",
                String::new(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/recon-runs".into(),
                json_body(json!({"business_date": "2026-12-01"})),
                "recon.run",
                "recon_run:2026-12-01".into(),
                "admin",
            ),
            (
                "POST",
                format!("/api/v1/findings/{FINDING}/assign"),
                json_body(json!({"assignee": "wang.fang"})),
                "exception.assign",
                format!("finding:{FINDING}"),
                "admin",
            ),
            (
                "POST",
                format!("/api/v1/findings/{FINDING}/resolve"),
                json_body(json!({"note": "found at the issuer"})),
                "exception.resolve",
                format!("finding:{FINDING}"),
                "admin",
            ),
            (
                "POST",
                "/api/v1/risk/cases/1/assign".into(),
                json_body(json!({"assignee": "zhao.lei"})),
                "case.assign",
                "case:1".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/risk/cases/1/note".into(),
                json_body(json!({"note": "same card at three shops"})),
                "case.note",
                "case:1".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/risk/cases/1/close".into(),
                json_body(json!({"verdict": "fraud"})),
                "case.status",
                "case:1".into(),
                "admin",
            ),
            (
                "POST",
                format!("/api/v1/terminals/{TERMINAL}/status"),
                json_body(json!({"status": "disabled", "reason": "reported stolen"})),
                "terminal.status",
                format!("terminal:{TERMINAL}"),
                "admin",
            ),
            (
                "POST",
                format!("/api/v1/merchants/{SHOP_B}/status"),
                json_body(json!({"status": "suspended", "reason": "chargebacks"})),
                "merchant.status",
                format!("merchant:{SHOP_B}"),
                "admin",
            ),
            (
                "POST",
                "/api/v1/risk/rule-sets".into(),
                json_body(json!({"rules": RULES.replace("candidate-1", "candidate-2")})),
                "rules.upload",
                "rule_set:candidate-2".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/risk/rule-sets/candidate-2/status".into(),
                json_body(json!({"status": "active"})),
                "rules.active",
                "rule_set:candidate-2".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/saf/2/retry".into(),
                None,
                "saf.retry",
                "saf:2".into(),
                "admin",
            ),
            (
                "POST",
                "/api/v1/saf/2/resolve".into(),
                json_body(json!({"note": "issuer confirmed the reversal by phone"})),
                "saf.resolve",
                "saf:2".into(),
                "admin",
            ),
        ];
        for (method, path, body, action, object, who) in changes {
            let token = if who == "admin" { &admin } else { &ops };
            let (status, resp) = server.send(method, &path, Some(token), body);
            assert!(
                (200..300).contains(&status),
                "{method} {path}: {status} {resp}"
            );
            let new = audit(last);
            // Confirming payouts records each payout paid (the seed settled both shops).
            let records = if action == "payout.confirm" { 2 } else { 1 };
            assert_eq!(new.len(), records, "{method} {path}: {new:?}");
            let a = &new[0];
            assert_eq!(a["action"].as_str(), Some(action), "{method} {path}");
            if object.is_empty() {
                assert!(a["object"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("recon_file:")));
            } else {
                assert_eq!(
                    a["object"].as_str(),
                    Some(object.as_str()),
                    "{method} {path}"
                );
            }
            assert_eq!(a["actor"], who);
            assert_eq!(a["source"], "127.0.0.1");
            assert_eq!(a["request_id"].as_str().map(str::len), Some(16));
            match action {
                "hold.place" | "operator.add" | "settlement.run" | "recon.ingest" | "recon.run"
                | "rules.upload" => {
                    assert_eq!(a["before"], Value::Null, "{action}");
                    assert!(a["after"].is_object(), "{action}");
                }
                "hold.release" => {
                    assert_eq!(a["before"]["released_at"], Value::Null);
                    assert_eq!(a["after"]["released_at"], NOW);
                }
                _ => {
                    assert!(a["before"].is_object(), "{action}: {a}");
                    assert!(a["after"].is_object(), "{action}: {a}");
                    assert_ne!(a["before"], a["after"], "{action}");
                }
            }
            let text = a.to_string();
            assert!(
                !text.contains("argon2"),
                "no password hash in the audit trail"
            );
            assert!(!text.contains("SECRET"), "no stored message or key: {text}");
            last = seq(&new);
        }
        // Doing again what is done records nothing: a settled date, paid payouts, the
        // same clearing file, a pending entry sent again, a done entry resolved.
        for (method, path, body) in [
            (
                "POST",
                "/api/v1/settlement-runs".to_owned(),
                json_body(json!({"business_date": "2026-12-02"})),
            ),
            (
                "POST",
                "/api/v1/payouts/confirm".to_owned(),
                json_body(json!({"value_date": "2026-12-31"})),
            ),
            (
                "POST",
                "/api/v1/clearing-files?business_date=2026-12-01".to_owned(),
                Some(("text/csv".to_owned(), CLEARING.to_owned())),
            ),
            (
                "POST",
                "/api/v1/saf/2/resolve".to_owned(),
                json_body(json!({"note": "again"})),
            ),
        ] {
            let (status, resp) = server.send(method, &path, Some(&admin), body);
            assert!((200..300).contains(&status), "{path}: {status} {resp}");
            assert!(audit(last).is_empty(), "{path} again recorded something");
        }
        // The queue's depth says where the entry went.
        let (status, depth) = server.call("GET", "/api/v1/saf/depth", Some(&admin), None);
        assert_eq!(status, 200);
        assert_eq!(
            depth["by_state"],
            json!({"pending": 0, "done": 1, "exception": 0}),
            "{depth}"
        );
        assert_eq!(depth["oldest_pending_age_secs"], Value::Null);
        // A done entry cannot be sent again.
        let (status, resp) = server.send("POST", "/api/v1/saf/2/retry", Some(&admin), None);
        assert_eq!(status, 409, "{resp}");
        assert!(audit(last).is_empty());
        // Releasing a released hold changes nothing and records nothing.
        let (status, _) = server.call("DELETE", "/api/v1/holds/manual:1", Some(&ops), None);
        assert_eq!(status, 204);
        assert!(audit(last).is_empty());
        // A refused change records nothing.
        let (status, _) = server.call(
            "POST",
            "/api/v1/holds",
            Some(&auditor),
            Some(&json!({"subject": "txn:R00000000001", "reason": "x"})),
        );
        assert_eq!(status, 403);
        assert!(audit(last).is_empty());
        // Logging out is recorded, and the token stops working.
        let (status, _) = server.call("DELETE", "/api/v1/session", Some(&ops), None);
        assert_eq!(status, 204);
        let new = audit(last);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0]["action"], "session.logout");
        let (status, _) = server.call("GET", "/api/v1/me", Some(&ops), None);
        assert_eq!(status, 401);
        drop(server);
        cleanup(&location);
    }
}

/// Every list answers CSV with its columns, honouring its filters; a merchant's
/// export holds its own rows only.
#[test]
fn every_list_exports_csv_honouring_its_filters() {
    let location = locations("csv").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let admin = server.login("admin");
    let shop = server.login("merchant");
    let rows = |token: &str, path: &str| -> Vec<String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, text) =
            server.raw("GET", &format!("{path}{sep}format=csv"), Some(token), None);
        assert_eq!(status, 200, "{path}: {text}");
        text.lines().map(str::to_owned).collect()
    };
    let lists: Vec<&str> = api::ROUTES
        .iter()
        .filter(|(m, p, perm)| *m == "GET" && !p.contains('{') && perm.is_some())
        .map(|(_, p, _)| *p)
        .filter(|p| !["/api/v1/me"].contains(p))
        .collect();
    assert!(lists.len() >= 12, "{lists:?}");
    for path in &lists {
        let path = if *path == "/api/v1/complaints/report" {
            format!("{path}?from=2026-11-01&to=2026-12-31")
        } else {
            (*path).to_owned()
        };
        let all = rows(&admin, &path);
        assert!(!all.is_empty() && !all[0].is_empty(), "{path}: no header");
        assert!(!all.concat().contains("SECRET"), "{path} exports a secret");
    }
    // (path with a filter, data rows expected): the filters apply to the export.
    for (path, expect) in [
        (format!("/api/v1/settlements?merchant={SHOP_B}"), 1),
        ("/api/v1/settlements?date=2026-11-30".to_owned(), 0),
        ("/api/v1/settlements".to_owned(), 2),
        ("/api/v1/findings?status=open".to_owned(), 1),
        ("/api/v1/findings?status=resolved".to_owned(), 0),
        ("/api/v1/saf?state=exception".to_owned(), 1),
        ("/api/v1/saf?state=done".to_owned(), 0),
        ("/api/v1/terminals?status=active".to_owned(), 1),
        ("/api/v1/terminals?merchant=898310000000002".to_owned(), 0),
        ("/api/v1/risk/cases?status=open".to_owned(), 1),
        ("/api/v1/settlement-runs".to_owned(), 1),
        ("/api/v1/merchants".to_owned(), 2),
    ] {
        assert_eq!(rows(&admin, &path).len(), expect + 1, "{path}");
    }
    assert_eq!(
        rows(&shop, "/api/v1/settlements").len(),
        2,
        "own settlement only"
    );
    assert_eq!(rows(&shop, "/api/v1/merchants").len(), 2);
    assert_eq!(
        rows(&admin, "/api/v1/settlements")[0],
        "settlement_id,merchant_id,business_date,settlement_account,gross_minor,refunds_minor,fees_minor,held_minor,net_minor,txn_count,created_at"
    );
    // A page is a page, and `next` continues it.
    let (_, first) = server.call("GET", "/api/v1/merchants?limit=1", Some(&admin), None);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["next"], 1);
    let (_, second) = server.call(
        "GET",
        "/api/v1/merchants?limit=1&after=1",
        Some(&admin),
        None,
    );
    assert_eq!(second["items"][0]["merchant_id"], SHOP_B);
    assert_eq!(second["next"], Value::Null);
    drop(server);
    cleanup(&location);
}

/// The console's session: an HttpOnly, SameSite=Strict cookie no page script can read,
/// a CSRF token for changes, and no bearer token in the response.
#[test]
fn the_console_session_is_an_httponly_cookie_and_changes_need_its_csrf_token() {
    let location = locations("cookie").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let resp = agent
        .post(&server.url("/api/v1/session"))
        .send_json(json!({"name": "operations", "password": PASSWORD, "cookie": true}))
        .expect("login");
    assert_eq!(resp.status(), 201);
    let set_cookie = resp.header("set-cookie").expect("set-cookie").to_owned();
    let body: Value = resp.into_json().expect("json");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=28800",
    ] {
        assert!(set_cookie.contains(attr), "{attr} missing: {set_cookie}");
    }
    assert!(
        body.get("token").is_none(),
        "no bearer token for the console: {body}"
    );
    let csrf = body["csrf_token"].as_str().expect("csrf").to_owned();
    let cookie = set_cookie.split(';').next().expect("cookie").to_owned();
    assert!(cookie.starts_with("posguard_session="), "{cookie}");
    // Reads need the cookie only; /me gives a reloaded page its CSRF token back.
    let me: Value = agent
        .get(&server.url("/api/v1/me"))
        .set("Cookie", &cookie)
        .call()
        .expect("me")
        .into_json()
        .expect("json");
    assert_eq!(me["operator"]["name"], "operations");
    assert_eq!(me["csrf_token"], csrf.as_str());
    let hold = json!({"subject": format!("merchant:{SHOP_A}"), "reason": "cookie test"});
    // A change without the CSRF token, or with a wrong one, is refused.
    for token in [None, Some("0".repeat(64))] {
        let mut req = agent
            .post(&server.url("/api/v1/holds"))
            .set("Cookie", &cookie);
        if let Some(t) = &token {
            req = req.set("x-csrf-token", t);
        }
        match req.send_json(hold.clone()) {
            Err(ureq::Error::Status(403, r)) => {
                let e: Value = r.into_json().expect("json");
                assert_eq!(e["error"]["code"], "csrf", "{e}");
            }
            other => panic!("expected 403 without the CSRF token, got {other:?}"),
        }
    }
    let resp = agent
        .post(&server.url("/api/v1/holds"))
        .set("Cookie", &cookie)
        .set("x-csrf-token", &csrf)
        .send_json(hold)
        .expect("hold with the CSRF token");
    assert_eq!(resp.status(), 201);
    // Logging out ends the session and clears the cookie.
    let resp = agent
        .delete(&server.url("/api/v1/session"))
        .set("Cookie", &cookie)
        .set("x-csrf-token", &csrf)
        .call()
        .expect("logout");
    assert_eq!(resp.status(), 204);
    assert!(resp
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    match agent
        .get(&server.url("/api/v1/me"))
        .set("Cookie", &cookie)
        .call()
    {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 after logout, got {other:?}"),
    }
    drop(server);
    cleanup(&location);
}

/// A merchant application through its review over HTTP: entered, checked, assigned,
/// asked for more, corrected, checked again, approved; another whose check fails and a
/// reviewer overrides; refused steps. Every step is an event and one audit record;
/// no clear personal ID number is stored or returned.
#[test]
fn an_application_goes_through_review_and_every_step_is_audited() {
    for location in locations("onboarding") {
        cleanup(&location);
        seed(&location);
        let server = Server::start(&location);
        let (ops, risk, auditor) = (
            server.login("operations"),
            server.login("risk_analyst"),
            server.login("auditor"),
        );
        let audit_len = || {
            let (_, body) = server.call("GET", "/api/v1/audit?limit=500", Some(&auditor), None);
            body["items"].as_array().map_or(0, Vec::len)
        };
        let mut f = form();
        f["legal_name"] = json!("上海第二便利店有限公司");
        f["settlement_account"]["name"] = json!("上海第二便利店有限公司");
        f["settlement_account"]["number"] = json!("1001234509876549999");
        f["uscc"] = json!("91110108MA0B2C3D6X");
        f["representative"]["id_number"] = json!("440304200101010022");
        let (status, app) = server.call("POST", "/api/v1/applications", Some(&ops), Some(&f));
        assert_eq!(status, 201, "{app}");
        let id = app["app_id"].as_i64().expect("id");
        assert_eq!(app["status"], "draft");
        assert_eq!(
            app["form"]["representative"]["id_number"],
            "440304********0022"
        );
        assert!(
            !app.to_string().contains("440304200101010022"),
            "no clear ID"
        );
        upload_all(&server, &ops, id);
        let path = |step: &str| format!("/api/v1/applications/{id}/{step}");
        let note = |n: &str| json!({"note": n});
        // (who, step, body, status after, audit records, actions recorded)
        let steps: Vec<(&str, &str, Option<Value>, &str, usize)> = vec![
            (&ops, "submit", None, "checks_passed", 2),
            (&risk, "assign", Some(note("zhao.lei")), "in_review", 1),
            (
                &risk,
                "request-info",
                Some(note("the shop-front photo")),
                "info_requested",
                1,
            ),
            (&ops, "resubmit", Some(f.clone()), "checks_passed", 2),
            (&risk, "assign", Some(note("zhao.lei")), "in_review", 1),
            (&risk, "approve", Some(note("low")), "approved", 1),
        ];
        for (token, step, body, want, records) in steps {
            let before = audit_len();
            let (status, app) = server.call("POST", &path(step), Some(token), body.as_ref());
            assert_eq!(status, 200, "{step}: {app}");
            assert_eq!(app["status"], want, "{step}: {app}");
            assert_eq!(audit_len(), before + records, "{step}: audit records");
        }
        let (_, detail) = server.call(
            "GET",
            &format!("/api/v1/applications/{id}"),
            Some(&auditor),
            None,
        );
        let actions: Vec<&str> = detail["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            actions,
            [
                "create",
                "document",
                "document",
                "document",
                "document",
                "document",
                "document",
                "document",
                "submit",
                "checks_pass",
                "assign",
                "request_info",
                "resubmit",
                "checks_pass",
                "assign",
                "approve"
            ]
        );
        assert_eq!(detail["risk_level"], "low");
        // The review's SLA: 3 working days from the checks (2026-12-01, a Tuesday).
        assert_eq!(detail["sla_due"], "2026-12-04", "{detail}");
        // Provisioning: the merchant, and its terminal's master key under the KEK.
        let (status, made) = server.call("POST", &path("provision"), Some(&ops), None);
        assert_eq!(status, 200, "{made}");
        let mid = made["merchant_id"].as_str().expect("mid").to_owned();
        assert!(mid.starts_with("898310005411"), "{mid}");
        let t = &made["terminals"][0];
        let mut tmk = hex::decode(t["tmk_under_kek"].as_str().expect("cryptogram")).expect("hex");
        cardsec::Key::from_hex(KEK)
            .expect("kek")
            .decrypt_ecb(&mut tmk)
            .expect("decrypt");
        let tmk = cardsec::Key::from_bytes(&tmk).expect("tmk");
        assert_eq!(
            hex::encode_upper(cardsec::check_value(&tmk, 3)),
            t["tmk_kcv"].as_str().expect("kcv")
        );
        let (status, _) = server.call("POST", &path("provision"), Some(&ops), None);
        assert_eq!(status, 409, "an application provisions once");
        let (_, term) = server.call(
            "GET",
            &format!(
                "/api/v1/terminals/{}",
                t["terminal_id"].as_str().expect("tid")
            ),
            Some(&ops),
            None,
        );
        assert_eq!(term["status"], "pending_install", "{term}");
        // A decided application takes no more steps.
        let (status, e) = server.call("POST", &path("reject"), Some(&risk), Some(&note("no")));
        assert_eq!(status, 409, "{e}");
        // An applicant's step is not the reviewer's, and the other way round.
        let (status, _) = server.call("POST", &path("approve"), Some(&ops), Some(&note("low")));
        assert_eq!(status, 403);
        // A duplicate, then a failed check overridden by a reviewer.
        let (_, dup) = server.call("POST", "/api/v1/applications", Some(&ops), Some(&f));
        let dup_id = dup["app_id"].as_i64().expect("id");
        upload_all(&server, &ops, dup_id);
        let (status, dup) = server.call(
            "POST",
            &format!("/api/v1/applications/{dup_id}/submit"),
            Some(&ops),
            None,
        );
        assert_eq!(status, 200);
        assert_eq!(dup["status"], "checks_failed", "{dup}");
        let fields: Vec<&str> = dup["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter(|p| p["code"] == "duplicate")
            .filter_map(|p| p["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "uscc",
                "representative.id_number",
                "settlement_account.number"
            ]
        );
        let (status, over) = server.call(
            "POST",
            &format!("/api/v1/applications/{dup_id}/override"),
            Some(&risk),
            Some(&note("a branch of the same company, confirmed by phone")),
        );
        assert_eq!(status, 200);
        assert_eq!(over["status"], "checks_passed");
        // A blocklisted representative fails the checks of a new application.
        let admin = server.login("admin");
        let (status, b) = server.call(
            "POST",
            "/api/v1/blocklist",
            Some(&admin),
            Some(&json!({"kind": "representative", "value": "110105199003071239", "reason": "fraud ring"})),
        );
        assert_eq!(status, 201, "{b}");
        assert!(
            b["value"].as_str().is_some_and(|v| v.starts_with("pii1:")),
            "{b}"
        );
        let mut g = form();
        g["legal_name"] = json!("上海第三便利店有限公司");
        g["settlement_account"]["name"] = json!("上海第三便利店有限公司");
        g["settlement_account"]["number"] = json!("1001234509876541111");
        g["uscc"] = json!("91110108123456788E");
        let (_, third) = server.call("POST", "/api/v1/applications", Some(&ops), Some(&g));
        let third_id = third["app_id"].as_i64().expect("id");
        upload_all(&server, &ops, third_id);
        let (_, third) = server.call(
            "POST",
            &format!("/api/v1/applications/{third_id}/submit"),
            Some(&ops),
            None,
        );
        assert_eq!(third["status"], "checks_failed");
        assert!(
            third["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .any(|p| p["code"] == "blocklist" && p["field"] == "representative.id_number"),
            "{third}"
        );
        // A blocklist hit is not a reviewer's to override.
        let (status, e) = server.call(
            "POST",
            &format!("/api/v1/applications/{third_id}/override"),
            Some(&risk),
            Some(&note("known customer")),
        );
        assert_eq!(status, 409, "{e}");
        assert!(e.to_string().contains("blocklist"), "{e}");
        // An early pilot-region code whose check character does not verify: refused by
        // the checks, then overridden by a reviewer as exactly that, with the reason.
        let mut p = form();
        p["legal_name"] = json!("福州试点商贸有限公司");
        p["settlement_account"]["name"] = json!("福州试点商贸有限公司");
        p["settlement_account"]["number"] = json!("1001234509876542222");
        p["representative"]["id_number"] = json!("310104198808081238");
        p["uscc"] = json!("91350100M0001TGQXM");
        let (_, pilot) = server.call("POST", "/api/v1/applications", Some(&ops), Some(&p));
        let pilot_id = pilot["app_id"].as_i64().expect("id");
        upload_all(&server, &ops, pilot_id);
        let (_, pilot) = server.call(
            "POST",
            &format!("/api/v1/applications/{pilot_id}/submit"),
            Some(&ops),
            None,
        );
        assert_eq!(pilot["status"], "checks_failed", "{pilot}");
        let codes: Vec<&str> = pilot["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["code"].as_str())
            .collect();
        assert!(codes.iter().all(|c| c.starts_with("uscc.")), "{pilot}");
        let (status, over) = server.call(
            "POST",
            &format!("/api/v1/applications/{pilot_id}/override"),
            Some(&risk),
            Some(&note("pilot-region code confirmed on the SAMR register")),
        );
        assert_eq!(status, 200, "{over}");
        assert_eq!(over["status"], "checks_passed");
        let (_, detail) = server.call(
            "GET",
            &format!("/api/v1/applications/{pilot_id}"),
            Some(&risk),
            None,
        );
        assert!(
            detail["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["action"] == "override"
                    && e["note"].as_str().is_some_and(
                        |n| n.contains("pilot-region code") && n.contains("SAMR register")
                    )),
            "{detail}"
        );
        // The stored rows and the audit trail hold no clear ID number.
        let (_, trail) = server.call("GET", "/api/v1/audit?limit=500", Some(&auditor), None);
        assert!(!trail.to_string().contains("440304200101010022"));
        assert!(!trail.to_string().contains("110105199003071239"));
        let (_, list) = server.call(
            "GET",
            "/api/v1/applications?status=checks_passed",
            Some(&risk),
            None,
        );
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
        drop(server);
        cleanup(&location);
    }
}

#[test]
fn bad_requests_get_one_error_shape_naming_the_field() {
    let location = locations("errors").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let ops = server.login("operations");
    let hold = |body: String, ctype: &str| {
        let (status, text) = server.raw("POST", "/api/v1/holds", Some(&ops), Some((ctype, body)));
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        )
    };
    let (status, e) = hold("{\"subject\": ".into(), "application/json");
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{e}"
    );
    let (status, e) = hold(
        json!({"subject": "txn:R00000000001", "reason": "x", "amount": 5}).to_string(),
        "application/json",
    );
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("amount")),
        "{e}"
    );
    let (status, e) = hold(
        json!({"subject": "txn:R00000000001"}).to_string(),
        "application/json",
    );
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("reason")),
        "{e}"
    );
    let (status, e) = hold(
        json!({"subject": "bank:1", "reason": "x"}).to_string(),
        "application/json",
    );
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("subject")),
        "{e}"
    );
    let (status, e) = hold("x".repeat(api::MAX_BODY + 1), "application/json");
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{e}"
    );
    let (status, e) = hold("subject=x".into(), "application/x-www-form-urlencoded");
    assert_eq!(status, 415, "{e}");
    // A clear card number is never a search key.
    let (status, e) = server.call(
        "GET",
        "/api/v1/transactions?masked_pan=6228480402564890018",
        Some(&ops),
        None,
    );
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("masked_pan")),
        "{e}"
    );
    let (status, e) = server.call("GET", "/api/v1/transactions?limit=100000", Some(&ops), None);
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("limit")),
        "{e}"
    );
    let (status, e) = server.call("GET", "/api/v1/transactions?colour=red", Some(&ops), None);
    assert_eq!(status, 400, "{e}");
    let (status, e) = server.call("GET", "/api/v1/nothing-here", Some(&ops), None);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    drop(server);
    cleanup(&location);
}

#[test]
fn failed_logins_are_throttled_per_account_and_the_answer_never_says_which_part_was_wrong() {
    let location = locations("throttle").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let attempt = |name: &str, password: &str| {
        server.call(
            "POST",
            "/api/v1/session",
            None,
            Some(&json!({"name": name, "password": password})),
        )
    };
    let (s1, e1) = attempt("finance", "wrong password 1");
    let (s2, e2) = attempt("nobody-at-all", "wrong password 1");
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(e1, e2, "an unknown name and a wrong password answer alike");
    // Three more make five for the address (all of this test's attempts come from
    // 127.0.0.1) and four for the account.
    for _ in 0..3 {
        assert_eq!(attempt("finance", "wrong password 2").0, 401);
    }
    // Five failures from the address: even the right password waits.
    let (status, e) = attempt("finance", PASSWORD);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{e}"
    );
    drop(server);
    cleanup(&location);
}

#[test]
fn health_and_metrics_answer_without_credentials_and_show_no_customer_data() {
    let location = locations("health").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let (status, body) = server.call("GET", "/health/live", None, None);
    assert_eq!((status, body["status"].as_str()), (200, Some("live")));
    let (status, body) = server.call("GET", "/health/ready", None, None);
    assert_eq!((status, body["store"].as_str()), (200, Some("ok")));
    let ops = server.login("operations");
    let _ = server.call("GET", "/api/v1/transactions", Some(&ops), None);
    let (status, text) = server.raw("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    for needle in [
        "posguard_api_requests_total{method=\"GET\",route=\"/api/v1/transactions\",status=\"200\"} 1",
        "posguard_api_requests_total{method=\"POST\",route=\"/api/v1/session\",status=\"201\"} 1",
        "posguard_saf_pending 0",
        "posguard_transactions_in_flight 0",
        // The seeded complaint waits for a refund's approval: open, within its deadline.
        "posguard_complaints_open 1",
        "posguard_complaints_breached 0",
        "posguard_api_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(!text.contains("622848") && !text.contains(SHOP_A));
    drop(server);
    cleanup(&location);
}

/// `promtool` (Debian's `prometheus` package): on a fresh machine `.ci/run` installs it;
/// elsewhere its tests say they skipped, and under CI a missing one fails.
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is not installed and CI=true: install Debian's prometheus package"
        );
        eprintln!("promtool not installed: the metrics and alert-rule checks skipped");
    }
    found
}

#[test]
fn promtool_accepts_the_metrics_and_the_alert_rules_pass_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    let out = std::process::Command::new(&promtool)
        .args(["test", "rules", "posguard-alerts-test.yml"])
        .current_dir(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let location = locations("promtool").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let ops = server.login("operations");
    let _ = server.call("GET", "/api/v1/transactions", Some(&ops), None);
    let (status, text) = server.raw("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
    cleanup(&location);
}

/// The test tools' virtual environment (`scripts/test-requirements.txt`), installed if
/// missing (`scripts/test.sh` installs it before the suite runs).
fn test_tools() -> Option<std::path::PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    let venv = target.join("test-tools/venv");
    let st = venv.join("bin/schemathesis");
    if !st.is_file() {
        let requirements = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/test-requirements.txt");
        let py = venv.join("bin/python");
        let made = py.is_file()
            || std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
        let installed = made
            && std::process::Command::new(&py)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        if !installed || !st.is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "schemathesis could not be installed and CI=true"
            );
            eprintln!("schemathesis not available: the property-based API test skipped");
            return None;
        }
    }
    Some(st)
}

/// schemathesis drives every operation of the OpenAPI document with generated valid and
/// invalid requests (fixed seed, deterministic generation) as an admin: no server
/// error, every status, content type, header and body as documented, invalid data
/// refused. Its positive-data check is left out: some valid-looking requests are
/// refused on purpose by rules a schema cannot state (merchant ids only with the
/// merchant role). Logging out is left out so the token lives through the run.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(st) = test_tools() else { return };
    let location = locations("schemathesis").remove(0);
    cleanup(&location);
    seed(&location);
    let server = Server::start(&location);
    let admin = server.login("admin");
    let out = std::process::Command::new(st)
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "8583",
            "--generation-deterministic",
        ])
        .args(["--exclude-operation-id", "delete_session"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("Tested:"), "{text}");
    drop(server);
    cleanup(&location);
}

/// An administrator loads a year of the working-day calendar (2027 is not shipped) and
/// the MCC table through the API; what is refused changes nothing; review SLAs and
/// settlement's T+1 count on the loaded year across its Spring Festival with a make-up
/// working day, and the application checks on the loaded table.
#[test]
fn loaded_calendars_and_mcc_tables_are_what_dates_and_checks_count_on() {
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    for location in locations("reference") {
        cleanup(&location);
        seed(&location);
        let server = Server::start(&location);
        let admin = server.login("admin");
        let put = |path: &str, ctype: &str, body: &str| {
            server.raw("PUT", path, Some(&admin), Some((ctype, body.to_owned())))
        };
        let (status, e) = put("/api/v1/calendars/2027", "text/plain", "year 2028\n");
        assert_eq!(status, 400, "a year declares itself: {e}");
        let (status, e) = put("/api/v1/calendars/2027", "application/json", CALENDAR_2027);
        assert_eq!(status, 415, "{e}");
        let (status, e) = put(
            "/api/v1/calendars/2027",
            "text/plain",
            "year 2027\nholiday 2027-13-01 x\n",
        );
        assert_eq!(status, 400, "{e}");
        assert!(e.contains("line 2"), "{e}");
        let (_, before) = server.call("GET", "/api/v1/calendars/2027", Some(&admin), None);
        assert_eq!(before["source"], "weekends only", "{before}");
        let (status, e) = put("/api/v1/calendars/2027", "text/plain", CALENDAR_2027);
        assert_eq!(status, 200, "{e}");
        let (_, cal) = server.call("GET", "/api/v1/calendars/2027", Some(&admin), None);
        assert_eq!(cal["source"], "loaded", "{cal}");
        assert_eq!(cal["workdays"], json!(["2027-02-13"]), "{cal}");
        assert!(
            cal["holidays"]
                .as_array()
                .expect("holidays")
                .contains(&json!("2027-02-08")),
            "{cal}"
        );
        let (_, shipped) = server.call("GET", "/api/v1/calendars/2026", Some(&admin), None);
        assert_eq!(shipped["source"], "shipped", "{shipped}");
        // The MCC table: leaving out an MCC a merchant has is refused; one that adds a
        // code is loaded, and an application with it passes the form's checks.
        let shipped_mccs = include_str!("../../../merchants/calendars/mcc.txt");
        let without: String = shipped_mccs
            .lines()
            .filter(|l| !l.starts_with("5411"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (status, e) = put("/api/v1/mcc-table", "text/plain", &without);
        assert_eq!(status, 409, "{e}");
        assert!(e.contains("5411"), "{e}");
        let (_, table) = server.call("GET", "/api/v1/mcc-table", Some(&admin), None);
        assert!(!table["items"].to_string().contains("\"0742\""), "{table}");
        let more =
            format!("{shipped_mccs}0742 | standard | normal | vet-licence | Veterinary services\n");
        let (status, e) = put("/api/v1/mcc-table", "text/plain", &more);
        assert_eq!(status, 200, "{e}");
        let (_, table) = server.call("GET", "/api/v1/mcc-table", Some(&admin), None);
        assert!(table["items"].to_string().contains("\"0742\""), "{table}");
        let ops = server.login("operations");
        let mut f = form();
        f["mcc"] = json!("0742");
        let (status, app) = server.call("POST", "/api/v1/applications", Some(&ops), Some(&f));
        assert_eq!(status, 201, "{app}");
        assert!(
            !app["problems"].to_string().contains("mcc.unknown"),
            "{app}"
        );
        // Every change left its audit record.
        let (_, trail) = server.call("GET", "/api/v1/audit?limit=500", Some(&admin), None);
        let actions: Vec<&str> = trail["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["action"].as_str())
            .filter(|a| a.starts_with("reference."))
            .collect();
        assert_eq!(actions, ["reference.calendar", "reference.mcc"]);
        drop(server);
        // The services count on the loaded year: 2027-02-05..11 off, Saturday 13th
        // worked. A sale of business date 2027-02-04 is paid on the 12th (T+1), and a
        // review whose checks pass on the 4th is due three working days on: the 15th.
        let mut db = store::open(&location).expect("open");
        let cal = services::reference::calendar(db.as_mut()).expect("calendar");
        assert_eq!(cal.add_working_days(d("2027-02-04"), 1), d("2027-02-12"));
        assert_eq!(cal.add_working_days(d("2027-02-04"), 3), d("2027-02-15"));
        let mut later = match sale(9, SHOP_A) {
            Write::NewTxn(t) => t,
            _ => unreachable!("a sale is a new transaction"),
        };
        later.local_date = "2027-02-04".into();
        later.created_at = "2027-02-04T02:00:00+00:00".into();
        later.updated_at = later.created_at.clone();
        db.apply(&[
            Write::NewTxn(later),
            Write::Capture(CaptureRow {
                txn_id: 9,
                how: "batch".into(),
                business_date: "2027-02-04".into(),
                at: NOW.into(),
            }),
        ])
        .expect("a sale of 2027-02-04");
        let money = services::money::txn_money(
            db.as_mut(),
            "R00000000009",
            &services::money::MoneyConfig::default(),
        )
        .expect("money");
        assert!(
            money
                .lines
                .iter()
                .any(|l| l.contains("paid out on 2027-02-12")),
            "{money}"
        );
        drop(db);
        cleanup(&location);
    }
}
