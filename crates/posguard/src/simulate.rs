//! `posguard simulate`: the deterministic simulation from the command line, one regime
//! or the whole fault-mix matrix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::Args;
use sim::{run as run_sim, SimConfig, SimOutcome};

/// `posguard simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The seed (the first seed with `--seeds`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sales the terminals start per run.
    #[arg(long, default_value_t = 12)]
    transactions: u32,
    /// Run this many consecutive seeds (of every cell with `--matrix`).
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
    /// Run every cell of the fault-mix matrix (`--seeds` seeds each) and print each
    /// cell's pass count; the other settings come from the cells.
    #[arg(long, conflicts_with = "cell")]
    matrix: bool,
    /// Run one cell of the matrix (the name a failure's replay command gives).
    #[arg(long)]
    cell: Option<String>,
    /// Worker threads for `--matrix` (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

fn line(seed: u64, out: &SimOutcome) -> String {
    let verdict = if out.violations.is_empty() {
        "ok"
    } else {
        "FAILED"
    };
    format!(
        "seed {seed}: {verdict} — {} events, {} ms simulated, {} approved sales, {} reversals applied, {} reconciliation findings, {} credit adjustments, {} crashes, {} messages dropped, trace {:016x}",
        out.events, out.sim_ms, out.approved_sales, out.reversals_applied, out.findings, out.adjustments, out.crashes, out.dropped, out.trace_hash
    )
}

fn failure(cfg: &SimConfig, out: &SimOutcome) -> String {
    let mut s = String::new();
    for v in &out.violations {
        s.push_str(&format!("  violation: {v}\n"));
    }
    s.push_str(&format!("  replay: {}\n", cfg.replay_command()));
    s
}

/// Runs `posguard simulate`; fails if any seed breaks an invariant.
pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    if a.matrix {
        return run_matrix(&a);
    }
    // Silent unless RUST_LOG asks (to follow one replayed seed).
    crate::init_logging("off");
    let cell = match &a.cell {
        Some(name) => Some(sim::cell(name).ok_or_else(|| {
            crate::BadInput(format!(
                "no matrix cell {name}; the cells are: {}",
                sim::matrix()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
        None => None,
    };
    let mut failed = 0;
    for seed in a.seed..a.seed.saturating_add(a.seeds.max(1)) {
        let cfg = match &cell {
            Some(c) => c.config(seed),
            None => {
                let mut cfg = SimConfig::new(seed, a.transactions);
                cfg.terminals = a.terminals.max(1);
                cfg.acquirer_crashes = a.crashes;
                cfg.skip_recovery = a.skip_recovery;
                cfg.days = a.days.max(1);
                if a.recon_faults {
                    cfg.issuer_faults = sim::recon_fault_mix();
                }
                cfg
            }
        };
        let out = run_sim(&cfg);
        println!("{}", line(seed, &out));
        if !out.violations.is_empty() {
            failed += 1;
            print!("{}", failure(&cfg, &out));
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} seeds broke an invariant");
    }
    Ok(())
}

/// Every cell, `--seeds` seeds each, over `--jobs` threads; one line per cell. (The
/// wall clock only times the run for the summary line.)
#[allow(clippy::disallowed_methods)]
fn run_matrix(a: &SimulateArgs) -> anyhow::Result<()> {
    let cells = sim::matrix();
    let seeds = a.seeds.max(1);
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let work: Vec<(usize, u64)> = (0..cells.len())
        .flat_map(|c| (a.seed..a.seed.saturating_add(seeds)).map(move |s| (c, s)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(u64, Vec<String>)>> = Mutex::new(vec![(0, Vec::new()); cells.len()]);
    let started = std::time::Instant::now();
    println!(
        "matrix: {} cells × {seeds} seeds = {} runs on {jobs} threads",
        cells.len(),
        work.len()
    );
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, seed)) = work.get(i) else {
                    break;
                };
                let cfg = cells[c].config(seed);
                let out = run_sim(&cfg);
                let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                if out.violations.is_empty() {
                    r[c].0 += 1;
                } else if r[c].1.len() < 5 {
                    r[c].1
                        .push(format!("{}\n{}", line(seed, &out), failure(&cfg, &out)));
                } else {
                    r[c].1.push(String::new());
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failed = 0u64;
    for (cell, (passed, failures)) in cells.iter().zip(&results) {
        let n = failures.len() as u64;
        failed += n;
        println!("{:<36} {passed:>7} of {:>7} passed", cell.name, passed + n);
        for f in failures.iter().filter(|f| !f.is_empty()) {
            print!("  {f}");
        }
    }
    println!(
        "matrix: {} of {} runs passed in {:.0} s",
        work.len() as u64 - failed,
        work.len(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        anyhow::bail!("{failed} runs broke an invariant");
    }
    Ok(())
}
