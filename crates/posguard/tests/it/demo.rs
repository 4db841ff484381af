//! `posguard demo` with its fault mix: every anomaly resolved, nothing left over.

use posguard::demo::{demo, DemoArgs};
use posguard::run_cli::DemoDataArgs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_faults_resolves_every_anomaly() {
    let dir = std::env::temp_dir().join(format!("posguard-demo-test-{}", std::process::id()));
    let args = DemoArgs {
        demo: DemoDataArgs {
            data_seed: 8583,
            terminals: 8,
            cards: 60,
        },
        duration: 6,
        rate: 80.0,
        data: dir.display().to_string(),
        seed: 5,
        quiet: true,
        no_faults: false,
    };
    let out = demo(args).await.expect("demo runs");
    println!("{}\n{}{}{}", out.fleet, out.resolution, out.sms, out.check);
    assert!(out.fleet.transactions > 100, "the fleet ran");
    assert!(
        !out.resolution.kinds.is_empty(),
        "the fault mix produced anomalies to resolve"
    );
    assert_eq!(out.resolution.unresolved(), 0, "{}", out.resolution);
    assert_eq!(out.resolution.exceptions, 0);
    assert!(out.sms.matches(), "{}", out.sms);
    assert_eq!(out.check.anomalies(), 0, "{}", out.check);
    let _ = std::fs::remove_dir_all(&dir);
}
