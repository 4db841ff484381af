//! The fault-mix matrix: the simulation is run over many regimes, not one.
//!
//! A cell fixes every setting but the seed: the fleet's size (terminals and sales per
//! run), acquirer crashes during the load, the network (drops, duplicates, long delays,
//! reordering, issuer outages), and the days simulated with or without the issuer's
//! reconciliation faults (double debits, reversals acknowledged but not applied, late
//! and corrupt clearing lines) and with a crash while reconciliation's credit
//! adjustments are on their way. `posguard simulate --matrix --seeds N` runs N seeds of
//! every cell; the test suite runs a few of each.

use crate::world::{recon_fault_mix, SimConfig};

/// One regime of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Its name, e.g. `8x60/crash4/rough/4d-recon-crash` (what `--cell` takes).
    pub name: String,
    base: SimConfig,
}

impl Cell {
    /// The run of this cell for `seed`.
    pub fn config(&self, seed: u64) -> SimConfig {
        SimConfig {
            seed,
            ..self.base.clone()
        }
    }
}

/// Every cell of the matrix (36): fleet size × crashes × network × days.
pub fn matrix() -> Vec<Cell> {
    let mut cells = Vec::new();
    for (size, terminals, transactions) in [("3x12", 3, 12), ("8x60", 8, 60)] {
        for crashes in [0u32, 2, 4] {
            for network in ["calm", "rough"] {
                for days in ["1d", "2d-recon", "4d-recon-crash"] {
                    let mut c = SimConfig::new(0, transactions);
                    c.terminals = terminals;
                    c.acquirer_crashes = crashes;
                    if network == "calm" {
                        c.drop_permille = 10;
                        c.duplicate_permille = 10;
                        c.long_delay_permille = 5;
                        c.delay_max_ms = 20;
                        c.issuer_outages = 0;
                    } else {
                        c.drop_permille = 80;
                        c.duplicate_permille = 60;
                        c.long_delay_permille = 50;
                        c.delay_max_ms = 120;
                        c.issuer_outages = 2;
                    }
                    match days {
                        "1d" => c.days = 1,
                        "2d-recon" => {
                            c.days = 2;
                            c.issuer_faults = recon_fault_mix();
                        }
                        _ => {
                            c.days = 4;
                            c.issuer_faults = recon_fault_mix();
                            c.crash_during_adjustments = true;
                        }
                    }
                    let name = format!("{size}/crash{crashes}/{network}/{days}");
                    c.cell = Some(name.clone());
                    cells.push(Cell { name, base: c });
                }
            }
        }
    }
    cells
}

/// The cell named `name`.
pub fn cell(name: &str) -> Option<Cell> {
    matrix().into_iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_distinct_and_replay_by_name() {
        let cells = matrix();
        assert_eq!(cells.len(), 36);
        let names: std::collections::BTreeSet<_> = cells.iter().map(|c| &c.name).collect();
        assert_eq!(names.len(), cells.len());
        let c = cell("8x60/crash4/rough/4d-recon-crash").unwrap().config(7);
        assert_eq!(
            (c.terminals, c.transactions, c.acquirer_crashes, c.days),
            (8, 60, 4, 4)
        );
        assert!(c.crash_during_adjustments);
        assert_eq!(
            c.replay_command(),
            "posguard simulate --cell 8x60/crash4/rough/4d-recon-crash --seed 7"
        );
    }
}
