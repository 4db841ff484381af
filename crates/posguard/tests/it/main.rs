//! End-to-end tests of the posguard binary.

mod audit;
mod complaints;
mod crash;
mod demo;
mod faults;
mod http;
mod iso;
mod keys;
mod layers;
mod onboarding;
mod outside;
mod recon;
mod recon_money;
mod reload;
mod rerun;
mod rules;
mod scenarios;
mod settle;
mod tls;

use std::io::Write;
use std::process::{Command, Stdio};

/// Debian's `promtool`, if installed (under CI it must be).
pub fn promtool() -> Option<std::path::PathBuf> {
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
        eprintln!("promtool not installed: the node's metrics check skipped");
    }
    found
}

/// Runs the binary with `args`, feeding `stdin`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posguard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start posguard");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
