//! Interoperability with pyiso8583, an independent ISO 8583 implementation.
//!
//! The test installs pyiso8583 (pinned) into a virtual environment under the
//! workspace's `target/` directory, then checks both directions: pyiso8583 encodes
//! thousands of random valid `default_ascii` messages that posguard must decode to
//! the same field values and re-encode byte-identical; posguard encodes thousands
//! that pyiso8583 must decode to the same values.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use iso8583::spec::LenType;
use iso8583::{Dialect, Message};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::properties::random_message;

const PYISO8583: &str = "pyiso8583==4.0.1";
const MESSAGES: usize = 3000;

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// The venv's python with pyiso8583 importable, creating the venv if needed.
fn python() -> PathBuf {
    let venv = target_dir().join("test-tools/venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import importlib.metadata as m; assert m.version('pyiso8583') == '4.0.1'",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return py;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "python3 -m venv {} failed",
        venv.display()
    );
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PYISO8583,
        ])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "pip install {PYISO8583} failed"
    );
    assert!(ready(&py), "{PYISO8583} not importable after install");
    py
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pyiso8583_interop.py")
}

/// posguard's iso87-ascii table as JSON for the Python side.
fn table_json(d: &Dialect) -> String {
    let mut map = serde_json::Map::new();
    for f in (2..=128u8).filter(|f| iso8583::spec::is_data_field(*f)) {
        let s = d.field(f).expect("field");
        let len_type = match s.len_type {
            LenType::Fixed => "fixed",
            LenType::Ll => "ll",
            LenType::Lll => "lll",
        };
        map.insert(
            f.to_string(),
            serde_json::json!({"class": s.class.to_string(), "len_type": len_type, "max": s.max}),
        );
    }
    serde_json::Value::Object(map).to_string()
}

/// A message's fields as pyiso8583 shows them: text as text, binary fields as hex.
fn as_strings(d: &Dialect, m: &Message) -> BTreeMap<String, String> {
    m.fields()
        .map(|(f, v)| {
            let text = if d.field(f).expect("field").class.is_text() {
                String::from_utf8(v.to_vec()).expect("text field is ASCII")
            } else {
                hex::encode_upper(v)
            };
            (f.to_string(), text)
        })
        .collect()
}

fn json_fields(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["fields"]
        .as_object()
        .expect("fields object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect()
}

#[test]
fn pyiso8583_and_posguard_agree_in_both_directions() {
    let d = Dialect::iso87_ascii();
    let py = python();
    let tmp = target_dir().join("test-tools/iso87-ascii-table.json");
    std::fs::write(&tmp, table_json(d)).expect("write table");

    // pyiso8583 encodes, posguard decodes and re-encodes.
    let out = Command::new(&py)
        .arg(script())
        .args(["encode"])
        .arg(&tmp)
        .args(["8583", &MESSAGES.to_string()])
        .output()
        .expect("run pyiso8583 encoder");
    assert!(
        out.status.success(),
        "encoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let (hex_bytes, json) = line.split_once('\t').expect("two columns");
        let bytes = hex::decode(hex_bytes).expect("hex");
        let want: serde_json::Value = serde_json::from_str(json).expect("json");
        let msg = d
            .unpack(&bytes)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(
            msg.mti().as_str(),
            want["t"].as_str().expect("mti"),
            "message {i}"
        );
        assert_eq!(as_strings(d, &msg), json_fields(&want), "message {i}");
        assert_eq!(
            d.pack(&msg).expect("pack"),
            bytes,
            "message {i} re-encodes byte-identical"
        );
        seen += 1;
    }
    assert_eq!(seen, MESSAGES);

    // posguard encodes, pyiso8583 decodes.
    let mut rng = StdRng::seed_from_u64(8583);
    let msgs: Vec<Message> = (0..MESSAGES).map(|_| random_message(d, &mut rng)).collect();
    let mut input = String::new();
    for m in &msgs {
        input.push_str(&hex::encode(d.pack(m).expect("pack")));
        input.push('\n');
    }
    let mut child = Command::new(&py)
        .arg(script())
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pyiso8583 decoder");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("decoder output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to decoder");
    assert!(
        out.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let decoded: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(decoded.len(), msgs.len());
    for (i, (m, got)) in msgs.iter().zip(&decoded).enumerate() {
        assert_eq!(got["t"].as_str(), Some(m.mti().as_str()), "message {i}");
        assert_eq!(json_fields(got), as_strings(d, m), "message {i}");
    }
}

#[test]
fn lowercase_hex_is_accepted_and_uppercase_is_written() {
    let d = Dialect::iso87_ascii();
    let mut m = Message::new(iso8583::Mti::lit("0200"));
    m.set(52, [0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89]);
    let packed = d.pack(&m).expect("pack");
    assert!(packed.ends_with(b"ABCDEF0123456789"));
    let mut lower = packed.clone();
    let n = lower.len();
    lower[n - 16..].make_ascii_lowercase();
    lower[4..20].make_ascii_lowercase();
    assert_eq!(d.unpack(&lower).expect("lowercase decodes"), m);
}

/// What real peers send and ISO 8583:1987 permits decodes: a format-B track 1 in field
/// 45 (`^`, `/`, spaces), an alphabetic currency code in 49 ("a or n 3"), spaces in
/// `an` and `ans` fields (fixed `an` fields are space-padded) — encoded by pyiso8583.
#[test]
fn values_real_peers_send_decode() {
    let d = Dialect::iso87_ascii();
    let fields = [
        ("2", "4111111111111111"),
        ("4", "000000001000"),
        ("37", "RRN 1234    "),
        ("38", "AB 12 "),
        ("43", "Lucky Noodles           Shanghai      CN"),
        ("44", "A 1 B"),
        ("45", "B4111111111111111^DOE/JOHN Q^2512101000000000000"),
        ("49", "CNY"),
    ];
    let mut doc = serde_json::Map::new();
    doc.insert("t".into(), "0200".into());
    for (k, v) in fields {
        doc.insert(k.into(), v.into());
    }
    let out = Command::new(python())
        .arg(script())
        .arg("encode-doc")
        .arg(serde_json::Value::Object(doc).to_string())
        .output()
        .expect("run pyiso8583 encoder");
    assert!(
        out.status.success(),
        "encoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = hex::decode(String::from_utf8(out.stdout).expect("utf8").trim()).expect("hex");
    let msg = d.unpack(&bytes).expect("decodes");
    for (k, v) in fields {
        let f: u8 = k.parse().expect("field");
        assert_eq!(msg.get_str(f), Some(v), "field {f}");
    }
    assert_eq!(msg.currency().expect("currency"), domain::Currency::CNY);
    assert_eq!(d.pack(&msg).expect("re-encodes"), bytes);
}
