//! `posguard acquirer --http`: a node serves the operators' API, health and metrics
//! next to its terminal listener.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released: the caller retries if another test took it
/// in between).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[allow(clippy::disallowed_methods)] // a test's deadline
fn now() -> Instant {
    Instant::now()
}

/// Waits for `url` to answer 200, or the process to exit; whether it answered.
fn wait_for(agent: &ureq::Agent, url: &str, child: &mut Child, secs: u64) -> bool {
    let deadline = now() + Duration::from_secs(secs);
    while now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if agent.get(url).call().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Waits for a TCP listener on loopback `port`, or the process to exit.
fn listening(port: u16, child: &mut Child) -> bool {
    let deadline = now() + Duration::from_secs(60);
    while now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn stderr_of(node: &mut Node) -> String {
    let mut err = String::new();
    let _ = node.0.kill();
    if let Some(mut e) = node.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

/// The sum of the samples of `metrics` whose lines start with `prefix` (`None`: no
/// such line).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A node with an issuer simulator behind it serves the API, is ready only with its
/// issuer link up, and its /metrics carries the switching metrics once terminals
/// have sold: requests by kind and code, end-to-end and issuer latency, risk
/// verdicts, journal commits, links and connections.
#[test]
fn an_acquirer_node_serves_the_api_health_and_metrics() {
    let dir = std::env::temp_dir().join(format!("posguard-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("data").display().to_string();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    // Up to three tries: a port taken by another test between probe and bind makes a
    // process exit at once with a bind error, and the next try takes other ports.
    let keys = dir.join("terminals.keys").display().to_string();
    for attempt in 0..3 {
        let (issuer, issuer_http, http, terminals) =
            (free_port(), free_port(), free_port(), free_port());
        let mut sim = Node(
            Command::new(env!("CARGO_BIN_EXE_posguard"))
                .args(["issuer-sim", "--listen", &format!("127.0.0.1:{issuer}")])
                .args(["--http", &format!("127.0.0.1:{issuer_http}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start issuer simulator"),
        );
        if !listening(issuer, &mut sim.0) {
            let err = stderr_of(&mut sim);
            assert!(
                attempt < 2 && err.contains("bind"),
                "the issuer simulator did not come up: {err}"
            );
            continue;
        }
        let mut node = Node(
            Command::new(env!("CARGO_BIN_EXE_posguard"))
                .args(["acquirer", "--demo-data", "--data", &data])
                .args(["--terminal-keys", &keys])
                .args(["--listen", &format!("127.0.0.1:{terminals}")])
                .args(["--http", &format!("127.0.0.1:{http}")])
                .args(["--issuer", &format!("127.0.0.1:{issuer}")])
                .args(["--settlement-dir", &dir.join("files").display().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start acquirer"),
        );
        let url = |p: &str| format!("http://127.0.0.1:{http}{p}");
        if !wait_for(&agent, &url("/health/live"), &mut node.0, 60) {
            let err = stderr_of(&mut node);
            assert!(
                attempt < 2 && err.contains("bind"),
                "the node's API did not come up: {err}"
            );
            continue;
        }
        // Ready once the store answers and an issuer link is up.
        assert!(
            wait_for(&agent, &url("/health/ready"), &mut node.0, 60),
            "the node never became ready: {}",
            stderr_of(&mut node)
        );
        let ready: serde_json::Value = agent
            .get(&url("/health/ready"))
            .call()
            .expect("ready")
            .into_json()
            .expect("json");
        assert_eq!(ready["issuer_link"], "up", "{ready}");
        // Five good sales from the demo fleet.
        let out = Command::new(env!("CARGO_BIN_EXE_posguard"))
            .args(["terminals", "--acquirer", &format!("127.0.0.1:{terminals}")])
            .args(["--terminal-keys", &keys])
            .args([
                "--transactions",
                "5",
                "--sales-only",
                "--rate",
                "0",
                "--duration",
                "60",
            ])
            .args([
                "--state",
                &dir.join("terminals.state").display().to_string(),
            ])
            .output()
            .expect("terminals");
        assert!(
            out.status.success(),
            "terminals: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Five sales answered (risk may decline or review one of them), at least one
        // approved by the issuer.
        let checks = [
            ("posguard_requests_total{kind=\"sale\"", 5.0),
            ("posguard_requests_total{kind=\"sale\",code=\"00\"}", 1.0),
            (
                "posguard_request_duration_seconds_count{kind=\"sale\"}",
                5.0,
            ),
            ("posguard_issuer_duration_seconds_count", 1.0),
            ("posguard_risk_decisions_total{verdict=", 5.0),
            ("posguard_journal_commit_seconds_count", 1.0),
            ("posguard_journal_group_writes_count", 1.0),
            ("posguard_issuer_links_up", 1.0),
            // The gateway's counters are published once a second.
            ("posguard_issuer_sent_total", 1.0),
            ("posguard_terminal_frames_total", 5.0),
        ];
        let short = |metrics: &str| {
            checks
                .iter()
                .find(|(prefix, at_least)| !sample(metrics, prefix).is_some_and(|v| v >= *at_least))
                .map(|(prefix, at_least)| (*prefix, *at_least, sample(metrics, prefix)))
        };
        let deadline = now() + Duration::from_secs(30);
        let metrics = loop {
            let metrics = agent
                .get(&url("/metrics"))
                .call()
                .expect("metrics")
                .into_string()
                .expect("text");
            match short(&metrics) {
                None => break metrics,
                Some((prefix, at_least, v)) if now() > deadline => {
                    panic!("{prefix} should be at least {at_least}, is {v:?}:\n{metrics}")
                }
                Some(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        assert!(metrics.contains("posguard_saf_pending"), "{metrics}");
        assert!(
            metrics.contains("posguard_terminal_connections"),
            "{metrics}"
        );
        if let Some(promtool) = crate::promtool() {
            let mut check = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("promtool");
            use std::io::Write as _;
            check
                .stdin
                .take()
                .expect("stdin")
                .write_all(metrics.as_bytes())
                .expect("write");
            let out = check.wait_with_output().expect("promtool");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && !text.contains("error"),
                "promtool: {text}"
            );
        }
        // The API refuses without credentials, in its one error shape.
        match agent.get(&url("/api/v1/transactions")).call() {
            Err(ureq::Error::Status(401, r)) => {
                let body = r.into_string().unwrap_or_default();
                assert!(body.contains("\"unauthenticated\""), "{body}");
            }
            other => panic!("expected 401, got {other:?}"),
        }
        // Without its issuer the node is not ready.
        drop(sim);
        let deadline = now() + Duration::from_secs(60);
        let mut status = 200;
        while now() < deadline && status == 200 {
            status = match agent.get(&url("/health/ready")).call() {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(_) => 0,
            };
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(status, 503, "still ready without an issuer");
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    panic!("no free ports in three tries");
}
