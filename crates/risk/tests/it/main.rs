//! The default rule set, one line per case: a transaction and its history, and the
//! decision and rules expected — each limit just under and just over its boundary.

mod language;

use risk::{Engine, Facts, Keys, MemoryVelocity, Policy, RuleSet};

/// Builds facts from `key=value` words over a normal daytime chip sale.
fn facts(tx: &str) -> Facts {
    let mut f = Facts {
        amount: 10_000,
        currency: "CNY".into(),
        kind: "sale".into(),
        mcc: "5411".into(),
        entry: "chip".into(),
        chip_card: true,
        pin: true,
        hour: 14,
        brand: "unionpay".into(),
        bin: "622848".into(),
        merchant_class: "standard".into(),
        merchant_status: "active".into(),
        merchant_age_days: 365,
        merchant_risk: "low".into(),
        terminal_distance_km: 0,
        merchant_day_limit: 0,
        counters: Vec::new(),
    };
    for word in tx.split_whitespace() {
        let (k, v) = word.split_once('=').expect("key=value");
        let n = || v.replace('_', "").parse::<i64>().expect("number");
        match k {
            "amount" => f.amount = n(),
            "class" => f.merchant_class = v.into(),
            "status" => f.merchant_status = v.into(),
            "age" => f.merchant_age_days = n(),
            "entry" => f.entry = v.into(),
            "chip" => f.chip_card = v == "true",
            "hour" => f.hour = n(),
            "km" => f.terminal_distance_km = n(),
            other => panic!("unknown fact {other}"),
        }
    }
    f
}

/// History: `N x AMOUNT [ago=SECS] [cards=each] [declined] [terminal=other]`, comma-separated.
fn replay(engine: &mut Engine, history: &str, now: i64) {
    for item in history.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = item.split_whitespace().collect();
        let count: usize = words[0].parse().expect("count");
        assert_eq!(words[1], "x");
        let amount: i64 = words[2].replace('_', "").parse().expect("amount");
        let mut ago = 30;
        let (mut each_card, mut declined, mut other_terminal) = (false, false, false);
        for w in &words[3..] {
            match *w {
                "cards=each" => each_card = true,
                "declined" => declined = true,
                "terminal=other" => other_terminal = true,
                w if w.starts_with("ago=") => ago = w[4..].parse().expect("ago"),
                w => panic!("unknown history word {w}"),
            }
        }
        for i in 0..count {
            let card = if each_card {
                format!("t1.other{i}")
            } else {
                "t1.card".to_owned()
            };
            let terminal = if other_terminal {
                "20000002"
            } else {
                "10000001"
            };
            let keys = Keys {
                card: &card,
                terminal,
                merchant: "898310005411000",
                bin: "622848",
            };
            let at = now - ago;
            engine.record(&keys, amount, at);
            if declined {
                engine.record_decline(&keys, amount, at);
            }
        }
    }
}

fn decide(rules: &RuleSet, tx: &str, history: &str) -> String {
    let mut engine = Engine::new(
        rules.clone(),
        Box::new(MemoryVelocity::new(10_000)),
        Policy::FailOpen,
        u64::MAX,
    );
    let now = 1_795_000_000;
    replay(&mut engine, history, now);
    let mut f = facts(tx);
    let keys = Keys {
        card: "t1.card",
        terminal: "10000001",
        merchant: "898310005411000",
        bin: "622848",
    };
    let d = engine.decide(&mut f, &keys, now, &|| 0);
    let verdict = match &d.verdict {
        risk::Verdict::Approve => "approve".to_owned(),
        risk::Verdict::Decline(c) => format!("decline {c}"),
        risk::Verdict::Review => "review".to_owned(),
    };
    let mut flags = String::new();
    if d.hold {
        flags.push_str(" hold");
    }
    if d.alert {
        flags.push_str(" alert");
    }
    format!("{verdict}{flags} [{}]", d.reasons())
}

#[test]
fn default_rules_one_line_per_case() {
    let rules = RuleSet::default_rules();
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        // transaction                          history                                 expected
        ("amount=10000",                        "",                                     "approve []"),
        ("class=small amount=999_999",          "",                                     "approve []"),
        ("class=small amount=1_000_000",        "",                                     "approve alert [cashout.round_amount]"),
        ("class=small amount=1_000_001",        "",                                     "decline 61 [limit.txn.small_merchant]"),
        ("class=small amount=599_990",          "10 x 940_001 cards=each terminal=other", "approve []"),
        ("class=small amount=599_991",          "10 x 940_001 cards=each terminal=other", "decline 61 [limit.day.small_merchant]"),
        ("amount=100_004",                      "9 x 544_444 terminal=other ago=7200",  "approve []"),
        ("amount=100_005",                      "9 x 544_444 terminal=other ago=7200",  "decline 61 [limit.day.card_amount]"),
        ("amount=100",                          "29 x 100 terminal=other ago=7200",     "approve []"),
        ("amount=100",                          "30 x 100 terminal=other ago=7200",     "decline 65 [limit.day.card_count]"),
        ("amount=4200",                         "1 x 4200 ago=61",                      "approve []"),
        ("amount=4200",                         "1 x 4200 ago=59",                      "decline 94 [duplicate.swipe]"),
        ("amount=300",                          "2 x 500 declined terminal=other",      "approve []"),
        ("amount=300",                          "3 x 500 declined terminal=other",      "decline 65 [card_testing.card]"),
        ("amount=999",                          "14 x 100 cards=each",                  "approve []"),
        ("amount=999",                          "15 x 100 cards=each",                  "review hold alert [card_testing.terminal]"),
        ("amount=1000",                         "15 x 100 cards=each",                  "approve []"),
        ("amount=5000",                         "9 x 100 cards=each declined",          "approve []"),
        ("amount=5000",                         "10 x 100 cards=each declined",         "approve alert [declines.terminal]"),
        ("amount=5000",                         "10 x 100 cards=each declined, 31 x 100 cards=each", "approve []"),
        ("amount=5000",                         "10 x 100 cards=each declined, 30 x 100 cards=each", "approve alert [declines.terminal]"),
        ("entry=magstripe chip=false",          "",                                     "approve []"),
        ("entry=fallback chip=true",            "",                                     "decline 57 [fallback.chip_card]"),
        ("entry=magstripe chip=true",           "",                                     "decline 57 [fallback.chip_card]"),
        ("entry=manual chip=false",             "",                                     "review hold alert [entry.manual]"),
        ("km=50",                               "",                                     "approve []"),
        ("km=51",                               "",                                     "review hold alert [terminal.relocated]"),
        ("hour=6 amount=900_001",               "",                                     "approve []"),
        ("hour=5 amount=499_999",               "",                                     "approve []"),
        ("hour=5 amount=500_001",               "",                                     "review hold alert [night.large_amount]"),
        ("amount=500_000",                      "",                                     "approve alert [cashout.round_amount]"),
        ("amount=400_000",                      "",                                     "approve []"),
        ("amount=500_100",                      "",                                     "approve []"),
        ("amount=100_000",                      "2 x 100_000 cards=each terminal=other", "approve []"),
        ("amount=100_000",                      "3 x 100_000 cards=each terminal=other", "review hold alert [cashout.repeated_amount]"),
        ("amount=99_999",                       "3 x 99_999 cards=each terminal=other",  "approve []"),
        ("class=small amount=200",              "19 x 100 cards=each terminal=other",   "approve []"),
        ("class=small amount=200",              "20 x 100 cards=each terminal=other",   "approve alert [cashout.card_burst]"),
        ("amount=200",                          "20 x 100 cards=each terminal=other",   "approve []"),
        ("age=29 amount=100_000",               "19 x 100_000 cards=each terminal=other ago=7200", "approve []"),
        ("age=29 amount=100_001",               "19 x 100_000 cards=each terminal=other ago=7200", "approve hold [merchant.new_volume]"),
        ("age=30 amount=100_001",               "19 x 100_000 cards=each terminal=other ago=7200", "approve []"),
        ("status=suspended",                    "",                                     "decline 03 [merchant.not_active]"),
        ("status=under_review",                 "",                                     "approve hold [merchant.under_review]"),
        // Several rules at once: the decline wins, every match is reported.
        ("class=small amount=2_000_000 hour=3", "",                                     "decline 61 hold alert [limit.txn.small_merchant,night.large_amount,cashout.round_amount]"),
    ];
    let mut failures = Vec::new();
    for (tx, history, want) in cases {
        let got = decide(&rules, tx, history);
        if got != *want {
            failures.push(format!(
                "{tx:<40} {history:<45} want {want}\n{:<86} got  {got}",
                ""
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn shadow_rules_are_recorded_and_never_act() {
    let text = include_str!("../../rules/default.toml").replace(
        "id = \"fallback.chip_card\"",
        "id = \"fallback.chip_card\"\nmode = \"shadow\"",
    );
    let rules = RuleSet::from_toml(&text).expect("rules");
    let mut engine = Engine::new(
        rules,
        Box::new(MemoryVelocity::new(100)),
        Policy::FailOpen,
        u64::MAX,
    );
    let keys = Keys {
        card: "c",
        terminal: "t",
        merchant: "m",
        bin: "b",
    };
    let d = engine.decide(&mut facts("entry=fallback chip=true"), &keys, 0, &|| 0);
    assert_eq!(d.verdict, risk::Verdict::Approve);
    assert_eq!(d.matched.len(), 1);
    assert!(d.matched[0].shadow);
    assert_eq!(
        d.matched[0].values,
        [
            ("entry".to_owned(), "\"fallback\"".to_owned()),
            ("chip_card".to_owned(), "true".to_owned())
        ]
    );
}

#[test]
fn a_rule_set_in_shadow_acts_on_nothing() {
    let rules = RuleSet::default_rules();
    let history = "30 x 100 terminal=other ago=7200";
    assert_eq!(
        decide(&rules, "amount=100", history),
        "decline 65 [limit.day.card_count]"
    );
    assert_eq!(
        decide(&rules.clone().in_shadow(), "amount=100", history),
        "approve []",
        "the match is recorded as shadow (see above), the sale is not declined"
    );
}

#[test]
fn time_budget_applies_the_policy_and_says_so() {
    let keys = Keys {
        card: "c",
        terminal: "t",
        merchant: "m",
        bin: "b",
    };
    for (policy, want) in [
        (Policy::FailOpen, "approve"),
        (Policy::FailClosed, "decline 96"),
        (Policy::ApproveAndHold, "approve hold"),
    ] {
        let mut engine = Engine::new(
            RuleSet::default_rules(),
            Box::new(MemoryVelocity::new(100)),
            policy,
            1_000,
        );
        let tick = std::cell::Cell::new(0u64);
        // Each clock reading advances 600 ns: the budget runs out after a rule or two.
        let clock = || {
            tick.set(tick.get() + 600);
            tick.get()
        };
        let d = engine.decide(&mut facts("class=small amount=2_000_000"), &keys, 0, &clock);
        assert_eq!(d.policy, Some(policy));
        let got = match (&d.verdict, d.hold) {
            (risk::Verdict::Decline(c), _) => format!("decline {c}"),
            (_, true) => "approve hold".into(),
            _ => "approve".into(),
        };
        assert_eq!(got, want, "{policy:?}");
    }
}

#[test]
fn hot_reload_changes_the_version_that_decides() {
    let mut engine = Engine::new(
        RuleSet::default_rules(),
        Box::new(MemoryVelocity::new(100)),
        Policy::FailOpen,
        u64::MAX,
    );
    let keys = Keys {
        card: "c",
        terminal: "t",
        merchant: "m",
        bin: "b",
    };
    assert_eq!(
        engine
            .decide(&mut facts("amount=100"), &keys, 0, &|| 0)
            .version,
        "default-2026.11.1"
    );
    let stricter = include_str!("../../rules/default.toml")
        .replace("default-2026.11.1", "strict-1")
        .replace("amount > 1_000_000", "amount > 100");
    engine.reload(RuleSet::from_toml(&stricter).expect("rules"));
    let d = engine.decide(&mut facts("class=small amount=101"), &keys, 0, &|| 0);
    assert_eq!(
        (d.version.as_str(), d.verdict),
        ("strict-1", risk::Verdict::Decline("61".into()))
    );
}

/// A sweep of idle subjects changes no answer: a merchant whose last sale's minute
/// bucket still falls in the day window keeps it (a sweep used to drop the series at
/// the second of its last sale, and sweeps fall every 4,096 records, so a back-test and
/// the live engine saw different day sums).
#[test]
fn sweeping_idle_subjects_changes_no_counter() {
    use risk::{Counter, Metric, Subject, Velocity, Window};
    let keys = |card: &str, merchant: &str| (card.to_owned(), merchant.to_owned());
    let sum_1d = Counter {
        subject: Subject::Merchant,
        metric: Metric::Sum,
        window: Window::D1,
    };
    let mut v = MemoryVelocity::new(10_000);
    let (c, m) = keys("card-a", "old-shop");
    let k = Keys {
        card: &c,
        terminal: "T1",
        merchant: &m,
        bin: "622848",
    };
    v.record(&k, 500, 100);
    // A day and ten seconds later: the sale's bucket (100..120 s) still ends inside the
    // window (after 110 s). Enough other records follow to trigger a sweep.
    let now = 100 + 86_400 + 10;
    for i in 0..4_096 {
        let (c, m) = keys(&format!("card-{i}"), "busy-shop");
        let other = Keys {
            card: &c,
            terminal: "T2",
            merchant: &m,
            bin: "622848",
        };
        v.record(&other, 1, now);
    }
    assert_eq!(v.query(&k, 0, sum_1d, now), 500);
}
