//! Key management as an auditor would check it: no LMK, no start; keys loaded through
//! `posguard keys`; and after a demo-sized load, nothing in the store (the SQLite files
//! byte by byte, a `pg_dump` of the PostgreSQL schema) opens under the public demo keys.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cardsec::{DataKey, Lmk, Pan, SoftwareSecurityModule, WrappedKey};
use issuer::ClearKeys;
use posguard::demo_data::{demo_data, DEMO_LMK};
use posguard::node::NodeKeys;
use posguard::run_cli::{fleet_config, node_options};

use crate::scenarios::{cleanup, demo_issuer, stores, Node};

const LMK: &str = "7A5B2C4D6E8F90A1B2C3D4E5F6071829";
const ZPK: &str = "2F2F2F2F2F2F2F2F5D5D5D5D5D5D5D5D";
const ZAK: &str = "6B6B6B6B6B6B6B6B1A1A1A1A1A1A1A1A";
const TOKEN_KEY: &str = "5E1C0A7793B1D24F68E0C3A9B2D4F6081A2B3C4D5E6F7081";

/// The issuer simulator's keys, agreed with the acquirer's key table (not the demo's).
fn issuer_keys() -> ClearKeys {
    ClearKeys {
        lmk_hex: "00112233445566778899AABBCCDDEEFF".into(),
        zpk_hex: ZPK.into(),
        zak_hex: ZAK.into(),
        token_key_hex: TOKEN_KEY.into(),
        token_key_id: 1,
    }
}

/// Runs the binary with `args`, `stdin` and the environment changed by `env`.
fn posguard(args: &[&str], stdin: &str, env: &[(&str, Option<&str>)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_posguard"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().expect("start posguard");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("posguard-keys-{name}-{}", std::process::id()))
}

#[test]
fn the_acquirer_refuses_to_start_without_an_lmk_or_its_keys() {
    let dir = temp("refuse");
    let data = dir.join("db").display().to_string();
    let base = ["acquirer", "--data", &data, "--listen", "127.0.0.1:0"];
    let (code, out) = posguard(&base, "", &[("POSGUARD_LMK", None)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no LMK") && out.contains("--lmk-file"),
        "{out}"
    );
    // An LMK, but no zone keys loaded yet: refused, naming the key and the command.
    let (code, out) = posguard(&base, "", &[("POSGUARD_LMK", Some(LMK))]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no ZPK in the key table") && out.contains("posguard keys import"),
        "{out}"
    );
    // A key ceremony whose second component was mistyped: refused by its check value.
    std::fs::create_dir_all(&dir).expect("dir");
    let (a, b) = (dir.join("c1"), dir.join("c2"));
    std::fs::write(&a, "0123456789ABCDEF0123456789ABCDEF 08D7B4\n").expect("c1");
    std::fs::write(&b, "FEDCBA9876543210FEDCBA9876543210 000000\n").expect("c2");
    let comp = |p: &std::path::Path| p.display().to_string();
    let mut args = base.to_vec();
    let (ca, cb) = (comp(&a), comp(&b));
    args.extend(["--lmk-component", &ca, "--lmk-component", &cb]);
    let (code, out) = posguard(&args, "", &[("POSGUARD_LMK", None)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("check value"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every wrapped key (`KIND:version:cipher:kcv`) and token (`t<id>.<40 hex>`) written
/// anywhere in `text`, even run together with the bytes around it.
fn secrets_in(text: &str) -> (Vec<WrappedKey>, Vec<String>) {
    let hex_run = |s: &str| s.bytes().take_while(u8::is_ascii_hexdigit).count();
    let mut keys = Vec::new();
    for kind in ["TMK", "TPK", "TAK", "TDK", "ZMK", "ZPK", "ZAK", "DEK"] {
        for (at, _) in text.match_indices(&format!("{kind}:")) {
            let rest = &text[at + 4..];
            let v = rest.bytes().take_while(u8::is_ascii_digit).count();
            let Some(after_v) = rest.get(v..).and_then(|r| r.strip_prefix(':')) else {
                continue;
            };
            let c = hex_run(after_v);
            let Some(kcv) = after_v
                .get(c..)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|r| r.get(..6))
            else {
                continue;
            };
            let candidate = format!("{kind}:{}:{}:{kcv}", &rest[..v], &after_v[..c]);
            if let Ok(k) = WrappedKey::parse(&candidate) {
                keys.push(k);
            }
        }
    }
    let mut tokens = Vec::new();
    for (at, _) in text.match_indices('.') {
        let before = &text[..at];
        let id = before.bytes().rev().take_while(u8::is_ascii_digit).count();
        let after = &text[at + 1..];
        if id == 0 || !before[..at - id].ends_with('t') || hex_run(after) < 40 {
            continue;
        }
        tokens.push(format!("t{}.{}", &before[at - id..], &after[..40]));
    }
    (keys, tokens)
}

/// What a store holds, as text: the SQLite files byte for byte, or `pg_dump`'s output.
fn dump(store: &str) -> String {
    if let Some((url, schema)) = store.split_once("?schema=") {
        let out = Command::new("pg_dump")
            .args(["--dbname", url, "--schema", schema, "--data-only"])
            .output()
            .expect("pg_dump runs (PostgreSQL's client tools are installed with the server)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8_lossy(&out.stdout).into_owned();
    }
    // Every file of the data directory, the documents' directory too.
    let mut text = String::new();
    let mut dirs = vec![std::path::PathBuf::from(store)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("data directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            // SQLite's -wal and -shm files go when the last connection closes, which a
            // stopped node's watches do on their own threads: one may vanish meanwhile.
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("read: {e}"),
            };
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push('\n');
        }
    }
    text
}

fn load_keys(store: &str) {
    for (kind, clear) in [("zpk", ZPK), ("zak", ZAK), ("dek", TOKEN_KEY)] {
        let args = ["keys", "import", "--kind", kind, "--by", "test custodian"];
        let mut args = args.to_vec();
        let at = if store.starts_with("postgres") {
            "--database-url"
        } else {
            "--data"
        };
        args.extend([at, store]);
        let (code, out) = posguard(&args, clear, &[("POSGUARD_LMK", Some(LMK))]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("v1 loaded, kcv"), "{out}");
    }
    // Each load left one audit record naming the key by kind, version and check
    // value, never the key itself.
    let mut db = posguard::node::open_store(store).expect("open");
    let audit = db.audit_after(0, 100).expect("audit");
    let loads: Vec<&store::AuditRow> = audit.iter().filter(|a| a.action == "key.import").collect();
    assert_eq!(
        loads.iter().map(|a| a.object.as_str()).collect::<Vec<_>>(),
        ["key:ZPK:v1", "key:ZAK:v1", "key:DEK:v1"]
    );
    for (a, clear) in loads.iter().zip([ZPK, ZAK, TOKEN_KEY]) {
        assert!(a.after.contains("\"kcv\""), "{a:?}");
        assert!(
            !a.after.to_uppercase().contains(clear),
            "a clear key in the audit trail"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_load_nothing_stored_opens_under_the_demo_keys() {
    for store in stores("keys") {
        let mut data = demo_data(5, 4, 60);
        let issuer = demo_issuer(&data, issuer_keys()).await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || load_keys(&s))
            .await
            .expect("join");
        let mut opts = node_options(store.clone(), issuer.iso_addr(), 5_000);
        opts.keys = NodeKeys::Configured(Arc::new(Lmk::from_hex(LMK).expect("lmk")), None);
        let node = Node::start(opts, &mut data).await;
        let addr = node.addr;
        let mut fleet = fleet_config(&data, addr, 200.0, Duration::from_secs(20), 9);
        fleet.max_transactions = Some(150);
        let report = terminal::run_fleet(fleet).await;
        node.stop().await;
        issuer.stop().await;
        assert!(report.approved_entries().count() > 50, "{report}");

        let text = tokio::task::spawn_blocking({
            let s = store.clone();
            move || dump(&s)
        })
        .await
        .expect("join");
        let (wrapped, tokens) = secrets_in(&text);
        let demo = SoftwareSecurityModule::new(
            Lmk::from_hex(DEMO_LMK).expect("demo lmk"),
            Box::new(rand::rngs::OsRng),
        );
        let ours = SoftwareSecurityModule::new(
            Lmk::from_hex(LMK).expect("lmk"),
            Box::new(rand::rngs::OsRng),
        );
        // The search finds the keys (terminal master and working keys, zone and token
        // keys) and the tokens: it is not looking in the wrong place.
        for kind in ["TMK", "TPK", "TAK", "ZPK", "ZAK", "DEK"] {
            assert!(
                wrapped.iter().any(|k| k.kind().name() == kind),
                "{store}: no {kind} found among {} keys",
                wrapped.len()
            );
        }
        assert!(wrapped.iter().all(|k| ours.holds(k)), "{store}");
        assert!(
            !wrapped.iter().any(|k| demo.holds(k)),
            "{store}: a key opens under the demo LMK"
        );
        let demo_key = DataKey::new(
            ClearKeys::demo().token_key_id,
            &hex::decode(ClearKeys::demo().token_key_hex).expect("hex"),
        )
        .expect("demo token key");
        let ours_key = DataKey::new(1, &hex::decode(TOKEN_KEY).expect("hex")).expect("key");
        let pans: Vec<Pan> = data
            .cards
            .iter()
            .map(|c| Pan::new(&c.pan).expect("pan"))
            .collect();
        let under = |k: &DataKey| -> Vec<String> {
            pans.iter().map(|p| k.tokenize(p).to_string()).collect()
        };
        let (demo_tokens, our_tokens) = (under(&demo_key), under(&ours_key));
        assert!(tokens.len() > 50, "{store}: {} tokens found", tokens.len());
        assert!(tokens.iter().all(|t| our_tokens.contains(t)), "{store}");
        assert!(
            !tokens.iter().any(|t| demo_tokens.contains(t)),
            "{store}: a token reverses under the demo key"
        );
        if !store.starts_with("postgres") {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &std::path::Path| {
                std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
            };
            // Owner-only all the way down (the documents' directory too).
            let mut dirs = vec![std::path::PathBuf::from(&store)];
            while let Some(dir) = dirs.pop() {
                assert_eq!(mode(&dir), 0o700, "{}", dir.display());
                for entry in std::fs::read_dir(&dir).expect("dir") {
                    let p = entry.expect("entry").path();
                    if p.is_dir() {
                        dirs.push(p);
                    } else {
                        assert_eq!(mode(&p), 0o600, "{}", p.display());
                    }
                }
            }
        }
        println!(
            "{store}: {} wrapped keys and {} tokens found, none open under the demo keys",
            wrapped.len(),
            tokens.len()
        );
        let s = store.clone();
        tokio::task::spawn_blocking(move || cleanup(&s))
            .await
            .expect("cleanup");
    }
}

/// Rotating the LMK while terminals keep selling: the node restarts on the new LMK
/// with the old one as previous (in a cluster, one node at a time), still reads every
/// key wrapped under the old one and wraps everything new under the new one;
/// `posguard keys rewrap` then re-wraps what is left while the node runs (twice: the
/// second run changes nothing); after it the node runs on the new LMK alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lmk_is_rotated_while_terminals_keep_selling() {
    use crate::scenarios::{code, Pos};
    const NEW_LMK: &str = "1F2E3D4C5B6A79880F1E2D3C4B5A6978";
    let dir = temp("rotate");
    std::fs::create_dir_all(&dir).expect("dir");
    let store = dir.join("db").display().to_string();
    let new_file = dir.join("new.lmk");
    std::fs::write(&new_file, NEW_LMK).expect("new lmk file");
    let mut data = demo_data(8, 2, 40);
    let issuer = demo_issuer(&data, issuer_keys()).await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || load_keys(&s))
        .await
        .expect("join");
    let lmk = |hex: &str| Arc::new(Lmk::from_hex(hex).expect("lmk"));
    let node_on = |keys: NodeKeys| {
        let mut o = node_options(store.clone(), issuer.iso_addr(), 5_000);
        o.keys = keys;
        o
    };
    let card = {
        let c = data
            .cards
            .iter()
            .find(|c| c.fate == posguard::demo_data::CardFate::Good)
            .expect("card");
        terminal::Card::new(&c.pan, Some(&c.pin), &c.expiry, terminal::EntryKind::Chip)
    };
    let sell = |pos: &mut Pos, amount: i64| pos.term.sale(&card, amount).expect("sale");
    // On the old LMK: the first terminal signs on and sells.
    let node = Node::start(node_on(NodeKeys::Configured(lmk(LMK), None)), &mut data).await;
    let mut first = Pos::signed_on(node.addr, &data.terminals[0]).await;
    let r = sell(&mut first, 1_001);
    assert_eq!(code(&first.send(r).await), "00");
    node.stop().await;
    // On the new LMK with the old as previous: the old keys still work, a new sign-on
    // is wrapped under the new LMK, and the key table is re-wrapped while it runs.
    let node = Node::start(
        node_on(NodeKeys::Configured(lmk(NEW_LMK), Some(lmk(LMK)))),
        &mut data,
    )
    .await;
    let mut first = first.reconnect(node.addr).await;
    let r = sell(&mut first, 1_002);
    assert_eq!(
        code(&first.send(r).await),
        "00",
        "keys under the old LMK still read"
    );
    let mut second = Pos::signed_on(node.addr, &data.terminals[1]).await;
    let r = sell(&mut second, 1_003);
    assert_eq!(code(&second.send(r).await), "00");
    let new_arg = new_file.display().to_string();
    for _ in 0..2 {
        let s = store.clone();
        let a = new_arg.clone();
        let (status, out) = tokio::task::spawn_blocking(move || {
            posguard(
                &["keys", "rewrap", "--data", &s, "--new-lmk-file", &a],
                "",
                &[("POSGUARD_LMK", Some(LMK))],
            )
        })
        .await
        .expect("join");
        assert_eq!(status, 0, "{out}");
    }
    // Each re-wrap is in the audit trail, with the LMKs' check values.
    let s = store.clone();
    let rewraps = tokio::task::spawn_blocking(move || {
        let mut db = posguard::node::open_store(&s).expect("open");
        db.audit_after(0, 100).expect("audit")
    })
    .await
    .expect("join")
    .into_iter()
    .filter(|a| a.action == "key.rewrap")
    .count();
    assert_eq!(rewraps, 2);
    let r = sell(&mut first, 1_004);
    assert_eq!(code(&first.send(r).await), "00");
    node.stop().await;
    // On the new LMK alone: everything at rest is under it.
    let node = Node::start(node_on(NodeKeys::Configured(lmk(NEW_LMK), None)), &mut data).await;
    for (pos, amount) in [(first, 1_005), (second, 1_006)] {
        let mut pos = pos.reconnect(node.addr).await;
        let r = sell(&mut pos, amount);
        assert_eq!(code(&pos.send(r).await), "00");
    }
    node.stop().await;
    issuer.stop().await;
    let s = store.clone();
    let at_rest: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut db = store::open(&s).expect("open");
        let mut texts: Vec<String> = db
            .keys()
            .expect("keys")
            .into_iter()
            .map(|k| k.wrapped)
            .collect();
        for t in db.terminals().expect("terminals") {
            texts.push(t.tmk);
            texts.extend(
                [
                    t.pik,
                    t.mak,
                    t.mak_prev,
                    t.pending_pik,
                    t.pending_mak,
                    t.tdk,
                    t.pending_tdk,
                ]
                .into_iter()
                .flatten(),
            );
        }
        texts
    })
    .await
    .expect("join");
    let new_only = SoftwareSecurityModule::new(
        Lmk::from_hex(NEW_LMK).expect("lmk"),
        Box::new(rand::rngs::OsRng),
    );
    assert!(at_rest.len() >= 9, "{at_rest:?}");
    for text in &at_rest {
        let k = WrappedKey::parse(text).expect("wrapped key");
        assert!(new_only.holds(&k), "{k:?} is not under the new LMK");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Zone keys and the token key change while the node runs, the way acquirer and
/// issuer switch keys: the issuer learns version 2 and accepts both; `posguard keys
/// import` loads version 2 at the acquirer while terminals sell; the node takes it
/// within its key check (no restart) and signs, translates PINs and tokenizes under
/// it; the issuer then retires version 1 and sales go on; a void of a sale made
/// before the change still matches its original's card (token under key 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_and_token_keys_rotate_while_terminals_keep_selling() {
    use crate::scenarios::{code, Pos};
    const ZPK2: &str = "3E3E3E3E3E3E3E3E7C7C7C7C7C7C7C7C";
    const ZAK2: &str = "4A4A4A4A4A4A4A4A2C2C2C2C2C2C2C2C";
    const TOKEN_KEY2: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F00112233445566778";
    let dir = temp("zone-rotate");
    std::fs::create_dir_all(&dir).expect("dir");
    let store = dir.join("db").display().to_string();
    let mut data = demo_data(9, 2, 40);
    let issuer = demo_issuer(&data, issuer_keys()).await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || load_keys(&s))
        .await
        .expect("join");
    let mut o = node_options(store.clone(), issuer.iso_addr(), 5_000);
    o.keys = NodeKeys::Configured(Arc::new(Lmk::from_hex(LMK).expect("lmk")), None);
    o.gateway.key_check_secs = 1;
    let node = Node::start(o, &mut data).await;
    let c = data
        .cards
        .iter()
        .find(|c| c.fate == posguard::demo_data::CardFate::Good)
        .expect("card");
    // With a PIN: the PIN block goes to the issuer under the ZPK in use.
    let card = terminal::Card::new(&c.pan, Some(&c.pin), &c.expiry, terminal::EntryKind::Chip);
    let mut pos = Pos::signed_on(node.addr, &data.terminals[0]).await;
    let r = pos.term.sale(&card, 1_001).expect("sale");
    let first = pos.send(r).await;
    assert_eq!(code(&first), "00");
    let first = first.entry.expect("the first sale is recorded");

    issuer
        .bank()
        .lock()
        .expect("bank")
        .add_zone_keys(
            2,
            &cardsec::Key::from_hex(ZPK2).expect("zpk"),
            &cardsec::Key::from_hex(ZAK2).expect("zak"),
        )
        .expect("issuer learns version 2");
    let r = pos.term.sale(&card, 1_002).expect("sale");
    assert_eq!(code(&pos.send(r).await), "00", "still on version 1");

    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        for (kind, clear) in [("zpk", ZPK2), ("zak", ZAK2), ("dek", TOKEN_KEY2)] {
            let args = [
                "keys",
                "import",
                "--kind",
                kind,
                "--by",
                "test custodian",
                "--data",
                &s,
            ];
            let (code, out) = posguard(&args, clear, &[("POSGUARD_LMK", Some(LMK))]);
            assert_eq!(code, 0, "{out}");
            assert!(out.contains("v2 loaded, kcv"), "{out}");
        }
    })
    .await
    .expect("join");
    // Terminals keep selling while the node notices; each sale is approved, under
    // version 1 or 2. A sale tokenized under key 2 shows the switch happened (the
    // token key was loaded last, so the zone keys of version 2 came with it or before).
    let latest_token = |s: String| {
        let mut db = store::open(&s).expect("open");
        db.transactions_after(0, 1_000)
            .expect("transactions")
            .into_iter()
            .filter(|t| t.kind == store::TxnKind::Sale)
            .max_by_key(|t| t.txn_id)
            .map(|t| t.pan_token)
            .unwrap_or_default()
    };
    let mut switched = false;
    for amount in 1_003..1_063 {
        let r = pos.term.sale(&card, amount).expect("sale");
        assert_eq!(
            code(&pos.send(r).await),
            "00",
            "sale of {amount} during the switch"
        );
        let s = store.clone();
        let token = tokio::task::spawn_blocking(move || latest_token(s))
            .await
            .expect("join");
        if token.starts_with("t2.") {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        switched,
        "the node took the new keys within 30 s without a restart"
    );

    issuer.bank().lock().expect("bank").retire_zone_keys(1);
    let r = pos.term.sale(&card, 2_001).expect("sale");
    assert_eq!(
        code(&pos.send(r).await),
        "00",
        "signed and PIN-translated under version 2 alone"
    );
    let r = pos.term.void(&card, &first).expect("void");
    assert_eq!(
        code(&pos.send(r).await),
        "00",
        "a void matches an original tokenized under the replaced token key"
    );
    node.stop().await;
    issuer.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The issuer simulator with an API token refuses `posguard recon` without it, and the
/// command says which variable to set; with `POSGUARD_ISSUER_API_TOKEN` it fetches
/// the clearing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recon_fetches_the_clearing_file_with_the_issuers_api_token() {
    const TOKEN: &str = "recon-test-token-0123456789";
    let config = issuer::IssuerConfig {
        listen_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        api_token: Some(TOKEN.into()),
        ..issuer::IssuerConfig::default()
    };
    let bank = issuer::Bank::from_clear_keys(&config.keys).expect("issuer keys");
    let issuer =
        issuer::Issuer::start_with(config, bank, Arc::new(posguard::run_cli::shanghai_now))
            .await
            .expect("issuer");
    let dir = temp("recon-token");
    let store = dir.join("db").display().to_string();
    let http = issuer.http_addr().to_string();
    let run = move |token: Option<&'static str>| {
        let (store, http) = (store.clone(), http.clone());
        tokio::task::spawn_blocking(move || {
            posguard(
                &[
                    "recon",
                    "--data",
                    &store,
                    "--date",
                    "2026-11-18",
                    "--issuer-http",
                    &http,
                ],
                "",
                &[("POSGUARD_ISSUER_API_TOKEN", token)],
            )
        })
    };
    let (code, out) = run(None).await.expect("join");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("POSGUARD_ISSUER_API_TOKEN"), "{out}");
    let (code, out) = run(Some(TOKEN)).await.expect("join");
    assert_eq!(code, 0, "{out}");
    issuer.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An outside terminal learns a demo terminal's TMK from `posguard terminals
/// --print-keys`, which reads the key-injection output onboarding wrote: the same
/// terminal, merchant, key (by its check value) and profile the acquirer holds.
#[test]
fn the_demo_terminals_keys_are_printed_for_outside_terminals() {
    let dir = std::env::temp_dir().join(format!("posguard-print-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = dir.join("db").display().to_string();
    let opts =
        posguard::run_cli::node_options(store.clone(), "127.0.0.1:9".parse().expect("addr"), 1_000);
    let keys = posguard::run_cli::onboard_store(&opts, &demo_data(8583, 4, 2_000))
        .expect("onboard")
        .expect("a fresh store");
    let file = dir.join("terminals.keys");
    posguard::run_cli::write_injected(&file, &keys).expect("write");
    let file_arg = file.display().to_string();
    let (code, out, err) = crate::run(
        &[
            "terminals",
            "--print-keys",
            "--terminals",
            "4",
            "--terminal-keys",
            &file_arg,
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).expect("utf8");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    let held = posguard::node::open_store(&store)
        .expect("open")
        .terminals()
        .expect("terminals");
    for row in &rows {
        let t = held
            .iter()
            .find(|t| t.terminal_id == row[0])
            .expect("a provisioned terminal");
        let key = cardsec::Key::from_hex(row[2]).expect("tmk");
        let kcv = hex::encode_upper(cardsec::check_value(&key, 3));
        let wrapped = cardsec::WrappedKey::parse(&t.tmk).expect("wrapped");
        assert_eq!(row[1], t.merchant_id);
        assert_eq!(row[3], kcv);
        assert_eq!(wrapped.kcv_hex(), kcv, "the key the acquirer holds");
        assert_eq!(row[4], t.key_profile);
    }
    assert_eq!(rows[3][4], "004", "every fourth terminal has a track key");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--key-check-secs` is bounded: 0 is no interval at all, and beyond an hour a new
/// zone key would go unused for too long.
#[test]
fn the_key_check_interval_is_bounded() {
    for bad in ["0", "3601", "x"] {
        let (code, _, err) = crate::run(&["acquirer", "--demo-data", "--key-check-secs", bad], b"");
        assert_eq!(code, 2, "--key-check-secs {bad}: {err}");
        assert!(err.contains("--key-check-secs"), "{err}");
    }
}

/// A configuration file with an unknown key or a value out of range stops the node at
/// start, naming the key, before anything listens.
#[test]
fn a_bad_configuration_file_is_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("posguard-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (text, says) in [
        (
            "[limits]\nmax_conections_per_ip = 5\n",
            "max_conections_per_ip",
        ),
        ("node = 10\n", "node is 0-9"),
    ] {
        let path = dir.join("node.toml");
        std::fs::write(&path, text).expect("write");
        let (code, _, err) = crate::run(
            &[
                "acquirer",
                "--demo-data",
                "--config",
                &path.display().to_string(),
            ],
            b"",
        );
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
