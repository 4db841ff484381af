//! The deterministic simulation: many seeds, replay, and a deliberately broken
//! recovery that must be caught.

use sim::{recon_fault_mix, run, SimConfig};

/// Seeds run in CI; `POSGUARD_SIM_SEEDS` runs more.
fn seeds() -> u64 {
    std::env::var("POSGUARD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000)
}

#[test]
fn every_seed_keeps_every_invariant() {
    let n = seeds();
    let mut failures = Vec::new();
    let mut crashes = 0;
    let mut reversals = 0;
    for seed in 0..n {
        let cfg = SimConfig::new(seed, 12);
        let out = run(&cfg);
        crashes += out.crashes;
        reversals += out.reversals_applied;
        if !out.violations.is_empty() {
            failures.push(format!(
                "seed {seed}: {:?}\n  replay: {}",
                out.violations,
                cfg.replay_command()
            ));
        }
    }
    println!("{n} seeds: {crashes} acquirer crashes, {reversals} reversals applied");
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        crashes > 0 && reversals > 0,
        "the fault mix must actually exercise crashes and reversals"
    );
}

#[test]
fn the_same_seed_replays_exactly() {
    for seed in [3, 17, 4242] {
        let cfg = SimConfig::new(seed, 20);
        let (a, b) = (run(&cfg), run(&cfg));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(
            (a.events, a.sim_ms, a.approved_sales),
            (b.events, b.sim_ms, b.approved_sales),
            "seed {seed}"
        );
    }
}

#[test]
fn skipping_crash_recovery_is_caught() {
    let mut caught = Vec::new();
    for seed in 0..300 {
        let mut cfg = SimConfig::new(seed, 12);
        cfg.skip_recovery = true;
        cfg.acquirer_crashes = 3;
        let out = run(&cfg);
        if !out.violations.is_empty() {
            caught.push((cfg.replay_command(), out.violations));
        }
    }
    println!("recovery disabled: {} of 300 seeds caught", caught.len());
    if let Some((replay, v)) = caught.first() {
        println!("  first: {replay}\n    {}", v.join("\n    "));
    }
    assert!(
        !caught.is_empty(),
        "a node that does not recover must break an invariant on some seed"
    );
}

#[test]
fn repeated_crashes_keep_every_invariant() {
    // Several restarts of one node: rows reloaded more than once keep numbering their
    // events after the ones already stored (the store refuses a reused number).
    for seed in 0..200 {
        let mut cfg = SimConfig::new(seed, 12);
        cfg.acquirer_crashes = 3;
        let out = run(&cfg);
        assert!(
            out.violations.is_empty(),
            "{}: {:?}",
            cfg.replay_command(),
            out.violations
        );
    }
}

#[test]
fn issuer_faults_over_several_days_are_given_back_by_reconciliation() {
    // Double debits, reversals acknowledged and not applied, clearing lines late by a
    // day or with a wrong amount — over four business days, each reconciled the next
    // morning: after each, no cardholder stays debited for a failed sale and no
    // approved sale is charged twice.
    let n = seeds() / 4;
    let (mut adjustments, mut findings) = (0, 0);
    let mut failures = Vec::new();
    for seed in 0..n {
        let mut cfg = SimConfig::new(seed, 12);
        cfg.days = 4;
        cfg.issuer_faults = recon_fault_mix();
        let out = run(&cfg);
        adjustments += out.adjustments;
        findings += out.findings;
        if !out.violations.is_empty() {
            failures.push(format!("{}: {:?}", cfg.replay_command(), out.violations));
        }
    }
    println!("{n} seeds x 4 days: {findings} findings, {adjustments} credit adjustments");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(adjustments > 0, "the faults must call for adjustments");
}

#[test]
fn skipping_reconciliation_is_caught() {
    let caught = (0..50)
        .filter(|&seed| {
            let mut cfg = SimConfig::new(seed, 12);
            cfg.days = 2;
            cfg.issuer_faults = recon_fault_mix();
            cfg.skip_reconciliation = true;
            !run(&cfg).violations.is_empty()
        })
        .count();
    println!("reconciliation skipped: {caught} of 50 seeds caught");
    assert!(
        caught > 0,
        "issuer faults left alone must break an invariant"
    );
}

/// Seeds of every matrix cell run in CI; `POSGUARD_MATRIX_SEEDS` runs more (offline,
/// `posguard simulate --matrix --seeds N` is faster: release build, every core).
fn matrix_seeds() -> u64 {
    std::env::var("POSGUARD_MATRIX_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

#[test]
fn every_cell_of_the_fault_matrix_keeps_every_invariant() {
    let n = matrix_seeds();
    let mut failures = Vec::new();
    let mut runs = 0;
    for cell in sim::matrix() {
        for seed in 0..n {
            let cfg = cell.config(seed);
            let out = run(&cfg);
            runs += 1;
            if !out.violations.is_empty() {
                failures.push(format!(
                    "{} seed {seed}: {:?}\n  replay: {}",
                    cell.name,
                    out.violations,
                    cfg.replay_command()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
