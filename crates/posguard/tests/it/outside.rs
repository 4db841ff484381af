//! A terminal written from the docs alone (`tests/outside/terminal.py`: pyiso8583 for
//! the cup-pos table, pycryptodome for DES, nothing of posguard's) against a loopback
//! acquirer and issuer: it signs on, sells, reverses (once with a wrong amount),
//! voids, sends an echo, a request with a bad MAC and one that does not decode, and
//! checks every reply against docs/protocol.md. This test then checks the money at the
//! issuer: only the sale that stands is debited.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use posguard::demo_data::{CardFate, DemoCard};

use crate::scenarios::{stores, World};

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// The test tools' Python (`scripts/test-requirements.txt`), installed if missing.
fn python() -> PathBuf {
    let venv = target_dir().join("test-tools/venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import iso8583, Crypto.Cipher.DES3"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return py;
    }
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "python3 -m venv {} failed", venv.display());
    }
    let requirements =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-requirements.txt");
    let ok = Command::new(&py)
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
    assert!(ok, "pip install -r {} failed", requirements.display());
    assert!(
        ready(&py),
        "the test tools are not importable after install"
    );
    py
}

fn cards_json(cards: &[&DemoCard]) -> String {
    let list: Vec<serde_json::Value> = cards
        .iter()
        .map(|c| {
            serde_json::json!({
                "pan": c.pan, "pin": c.pin, "expiry": c.expiry, "service_code": c.service_code,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Runs the outside terminal as `terminal` of the demo data with `cards`; returns its
/// JSON report.
async fn outside_terminal(w: &World, terminal: usize, cards: &[&DemoCard]) -> serde_json::Value {
    let t = &w.data.terminals[terminal];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside/terminal.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script)
        .arg(w.acquirer.ip().to_string())
        .arg(w.acquirer.port().to_string())
        .arg(&t.terminal_id)
        .arg(&t.merchant_id)
        .arg(&t.tmk_hex)
        .arg(t.key_layout.net_code())
        .arg(cards_json(cards))
        .arg(&t.location)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the outside terminal finishes within 120 s")
        .expect("run the outside terminal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "outside terminal failed: {stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("report {stdout}: {e}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_written_from_the_docs_alone_signs_on_sells_reverses_and_voids() {
    let store = stores("outside").remove(0);
    let w = World::start_with(&store, Default::default()).await;
    // Terminal 0 has key profile 003; terminal 3 has 004 (it encrypts track 2).
    for (terminal, first_card) in [(0usize, 0usize), (3, 4)] {
        let cards: Vec<DemoCard> = (first_card..first_card + 4)
            .map(|n| w.card(CardFate::Good, n).clone())
            .collect();
        let before: Vec<i64> = cards.iter().map(|c| w.account(c).balance_minor).collect();
        let refs: Vec<&DemoCard> = cards.iter().collect();
        let report = outside_terminal(&w, terminal, &refs).await;
        eprintln!("terminal {terminal}: {report}");
        assert_eq!(report["ok"], true, "terminal {terminal}: {report}");
        let codes: Vec<String> = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                format!(
                    "{}={}",
                    s["step"].as_str().unwrap_or("?"),
                    s["39"].as_str().unwrap_or("?")
                )
            })
            .collect();
        assert_eq!(
            codes.join(" "),
            "sign_on=00 echo=00 sale=00 sale_to_reverse=00 reversal=00 \
             sale_to_reverse_wrong_amount=00 reversal_wrong_amount=00 sale_to_void=00 void=00 \
             bad_mac=A0 sign_on=00 bad_mac_reversal=25 undecodable=30",
            "terminal {terminal}"
        );
        let after: Vec<i64> = cards.iter().map(|c| w.account(c).balance_minor).collect();
        // Only the first sale stands; the reversed (also the one reversed with a wrong
        // amount), the voided and the refused ones left the cardholders whole.
        assert_eq!(
            after,
            vec![before[0] - 12_34, before[1], before[2], before[3]],
            "terminal {terminal}: balances {before:?} -> {after:?}"
        );
    }
    w.finish(&store).await;
}
