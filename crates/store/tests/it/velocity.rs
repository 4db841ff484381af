//! Velocity counters behave identically in-process and in Redis: the same seeded
//! history goes to both, and every counter is compared after every step.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use risk::facts::Attr;
use risk::{Keys, MemoryVelocity, Velocity};
use store::RedisVelocity;

fn counters() -> Vec<risk::Counter> {
    let mut out = Vec::new();
    for subject in ["card", "terminal", "merchant", "bin", "dup"] {
        for metric in ["count", "sum", "declines", "distinct_cards", "same_amount"] {
            for window in ["60s", "10m", "1h", "1d"] {
                if let Some(Attr::Counter(c)) = Attr::parse(&format!("{subject}.{metric}_{window}"))
                {
                    out.push(c);
                }
            }
        }
    }
    out
}

#[test]
fn in_process_and_redis_counters_agree() {
    let Ok(url) = std::env::var("POSGUARD_TEST_REDIS_URL") else {
        eprintln!("POSGUARD_TEST_REDIS_URL not set: Redis velocity test skipped");
        return;
    };
    let prefix = format!("posguard-test-{}", std::process::id());
    let mut redis = RedisVelocity::connect(&url, &prefix).expect("connect redis");
    let mut memory = MemoryVelocity::new(100_000);
    let all = counters();
    assert!(
        all.len() >= 40,
        "every counter kind is compared: {}",
        all.len()
    );
    let cards: Vec<String> = (0..40).map(|i| format!("t1.card{i}")).collect();
    let terminals = [
        "10000001", "10000002", "10000003", "10000004", "10000005", "10000006",
    ];
    let merchants = ["898310000000001", "898310000000002", "898310000000003"];
    let amounts = [100, 500, 1_000, 4_242, 100_000];
    let mut rng = StdRng::seed_from_u64(8583);
    let mut now = 1_795_000_000i64;
    let mut compared = 0;
    for step in 0..600 {
        now += rng.gen_range(0..150);
        let t = rng.gen_range(0..terminals.len());
        let keys = Keys {
            card: &cards[rng.gen_range(0..cards.len())],
            terminal: terminals[t],
            merchant: merchants[t % 3],
            bin: if t % 2 == 0 { "622848" } else { "411111" },
        };
        let amount = amounts[rng.gen_range(0..amounts.len())];
        for c in &all {
            let (m, r) = (
                memory.query(&keys, amount, *c, now),
                redis.query(&keys, amount, *c, now),
            );
            assert_eq!(
                m,
                r,
                "step {step}: {} in-process {m}, redis {r}",
                Attr::Counter(*c).name()
            );
            compared += 1;
        }
        memory.record(&keys, amount, now);
        redis.record(&keys, amount, now);
        if rng.gen_bool(0.2) {
            memory.record_decline(&keys, amount, now);
            redis.record_decline(&keys, amount, now);
        }
    }
    println!("{compared} counter values compared");
    // Clean up this run's keys.
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .expect("keys");
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query(&mut conn).expect("del");
    }
}
