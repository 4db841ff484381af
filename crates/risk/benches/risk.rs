//! Risk decision latency with the default rule set and warm counters, next to an empty
//! rule set measured in the same run: p50/p99/p99.9 and decisions per second, one core.
#![allow(missing_docs)]
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::time::Instant;

use hdrhistogram::Histogram;
use risk::{Engine, Facts, Keys, MemoryVelocity, Policy, RuleSet};

fn facts(i: usize) -> Facts {
    Facts {
        amount: 1_000 + (i as i64 * 7919) % 500_000,
        currency: "CNY".into(),
        kind: "sale".into(),
        mcc: "5411".into(),
        entry: if i % 10 == 0 { "contactless" } else { "chip" }.into(),
        chip_card: true,
        pin: true,
        hour: (i % 24) as i64,
        brand: "unionpay".into(),
        bin: "622848".into(),
        merchant_class: if i % 3 == 0 { "small" } else { "standard" }.into(),
        merchant_status: "active".into(),
        merchant_age_days: 400,
        merchant_risk: "low".into(),
        terminal_distance_km: 0,
        merchant_day_limit: 0,
        counters: Vec::new(),
    }
}

fn run(name: &str, rules: RuleSet) {
    let mut engine = Engine::new(
        rules,
        Box::new(MemoryVelocity::new(2_000_000)),
        Policy::FailOpen,
        1_000_000,
    );
    let cards: Vec<String> = (0..20_000).map(|i| format!("t7.{i:040}")).collect();
    let terminals: Vec<String> = (0..2_000)
        .map(|i| format!("{:08}", 10_000_000 + i))
        .collect();
    let merchants: Vec<String> = (0..500)
        .map(|i| format!("{:015}", 898_310_000_000_000u64 + i))
        .collect();
    let mut now = 1_795_000_000i64;
    // Warm the counters: a day's worth of history for every subject.
    for i in 0..200_000usize {
        let keys = Keys {
            card: &cards[i % cards.len()],
            terminal: &terminals[i % terminals.len()],
            merchant: &merchants[i % merchants.len()],
            bin: "622848",
        };
        engine.record(
            &keys,
            1_000 + (i as i64 % 50_000),
            now - 86_000 + (i as i64 * 86_000 / 200_000),
        );
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
    let n = 300_000usize;
    let start = Instant::now();
    for i in 0..n {
        let keys = Keys {
            card: &cards[(i * 31) % cards.len()],
            terminal: &terminals[(i * 17) % terminals.len()],
            merchant: &merchants[(i * 13) % merchants.len()],
            bin: "622848",
        };
        let mut f = facts(i);
        let t = Instant::now();
        let d = engine.decide(&mut f, &keys, now, &|| 0);
        engine.record(&keys, f.amount, now);
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        std::hint::black_box(d);
        if i % 50 == 0 {
            now += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<44} {:>9.0}/s   p50 {:>6.2} µs   p99 {:>6.2} µs   p99.9 {:>6.2} µs   max {:>7.2} µs",
        n as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.value_at_quantile(0.999) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
}

fn main() {
    println!("risk decision + counter update, one core, warm counters (20,000 cards, 2,000 terminals, 500 merchants):");
    run(
        "baseline: empty rule set",
        RuleSet::from_toml("version = \"empty\"\n").expect("empty"),
    );
    let d = RuleSet::default_rules();
    let name = format!(
        "default rule set ({} rules, {} counters)",
        d.rules.len(),
        d.counters.len()
    );
    run(&name, d);
}
