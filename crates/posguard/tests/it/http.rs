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

#[test]
fn an_acquirer_node_serves_the_api_health_and_metrics() {
    let dir = std::env::temp_dir().join(format!("posguard-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.display().to_string();
    // Up to three tries: a port taken by another test between probe and bind makes the
    // node exit at once with a bind error, and the next try takes other ports.
    for attempt in 0..3 {
        let (http, terminals) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_posguard"))
            .args(["acquirer", "--demo-data", "--data", &data])
            .args(["--listen", &format!("127.0.0.1:{terminals}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--issuer", "127.0.0.1:9"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start acquirer");
        let mut node = Node(child);
        let deadline = now() + Duration::from_secs(60);
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let url = |p: &str| format!("http://127.0.0.1:{http}{p}");
        let mut up = false;
        while now() < deadline {
            if let Ok(Some(_)) = node.0.try_wait() {
                break;
            }
            if agent.get(&url("/health/live")).call().is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !up {
            let mut err = String::new();
            let _ = node.0.kill();
            if let Some(mut e) = node.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(
                attempt < 2 && err.contains("bind"),
                "the node's API did not come up: {err}"
            );
            continue;
        }
        let ready = agent.get(&url("/health/ready")).call().expect("ready");
        assert_eq!(ready.status(), 200);
        let metrics = agent
            .get(&url("/metrics"))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text");
        assert!(metrics.contains("posguard_saf_pending"), "{metrics}");
        // The API refuses without credentials, in its one error shape.
        match agent.get(&url("/api/v1/transactions")).call() {
            Err(ureq::Error::Status(401, r)) => {
                let body = r.into_string().unwrap_or_default();
                assert!(body.contains("\"unauthenticated\""), "{body}");
            }
            other => panic!("expected 401, got {other:?}"),
        }
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    panic!("no free ports in three tries");
}
