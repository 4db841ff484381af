//! `posguard simulate`: the deterministic simulation from the command line.

use clap::Args;
use sim::{run as run_sim, SimConfig};

/// `posguard simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The seed (the first seed with `--seeds`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sales the terminals start per run.
    #[arg(long, default_value_t = 12)]
    transactions: u32,
    /// Run this many consecutive seeds.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Terminals.
    #[arg(long, default_value_t = 3)]
    terminals: usize,
    /// Acquirer crashes per run.
    #[arg(long, default_value_t = 1)]
    crashes: u32,
    /// Skip the acquirer's crash recovery (to see the simulation catch it).
    #[arg(long)]
    skip_recovery: bool,
    /// Business days: each day's load is reconciled the next morning.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Turn on the issuer's faults only reconciliation catches (double debits,
    /// reversals acknowledged and not applied, late and corrupt clearing lines).
    #[arg(long)]
    recon_faults: bool,
}

/// Runs `posguard simulate`; fails if any seed breaks an invariant.
pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for seed in a.seed..a.seed.saturating_add(a.seeds.max(1)) {
        let mut cfg = SimConfig::new(seed, a.transactions);
        cfg.terminals = a.terminals.max(1);
        cfg.acquirer_crashes = a.crashes;
        cfg.skip_recovery = a.skip_recovery;
        cfg.days = a.days.max(1);
        if a.recon_faults {
            cfg.issuer_faults = sim::recon_fault_mix();
        }
        let out = run_sim(&cfg);
        let verdict = if out.violations.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        println!(
            "seed {seed}: {verdict} — {} events, {} ms simulated, {} approved sales, {} reversals applied, {} reconciliation findings, {} credit adjustments, {} crashes, {} messages dropped, trace {:016x}",
            out.events, out.sim_ms, out.approved_sales, out.reversals_applied, out.findings, out.adjustments, out.crashes, out.dropped, out.trace_hash
        );
        if !out.violations.is_empty() {
            failed += 1;
            for v in &out.violations {
                println!("  violation: {v}");
            }
            println!("  replay: {}", cfg.replay_command());
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} seeds broke an invariant");
    }
    Ok(())
}
