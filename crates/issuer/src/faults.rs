//! Fault injection: what the simulator does wrong, on purpose, with a seeded generator.
//!
//! Transport faults (latency, dropped, late and duplicated replies, refused
//! connections) are applied by [`crate::server`]; bank faults (reversals acknowledged
//! but not applied, double debits, late or corrupt clearing lines) by [`crate::Bank`].
//! Every fault is off by default. Rates are per mille (0–1000).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which faults to inject and how often. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Smallest added reply latency, milliseconds.
    pub latency_min_ms: u64,
    /// Largest added reply latency, milliseconds (uniform between min and max).
    pub latency_max_ms: u64,
    /// Approved financial requests whose effect is applied but whose reply is never sent.
    pub drop_after_debit_permille: u16,
    /// Replies sent `late_ms` late (meant to exceed the acquirer's timeout).
    pub late_permille: u16,
    /// The delay of a late reply, milliseconds.
    pub late_ms: u64,
    /// Replies sent twice.
    pub duplicate_permille: u16,
    /// Close every new connection at once.
    pub refuse_connections: bool,
    /// Reversals answered `00` without undoing the original.
    pub reversal_ack_without_apply_permille: u16,
    /// Approved sales and completions debited twice (two postings, SMS and clearing lines).
    pub double_debit_permille: u16,
    /// Clearing lines published in the next day's file instead of their own.
    pub late_clearing_line_permille: u16,
    /// Clearing lines whose amount is published one minor unit too high.
    pub corrupt_clearing_line_permille: u16,
    /// The first this many replies to reversal advices (0420/0421), over all
    /// connections, are never sent: the reversal is applied and the acquirer repeats it.
    #[serde(default)]
    pub drop_reversal_replies: u32,
}

/// What the server does with one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyPlan {
    /// Send nothing at all.
    pub drop: bool,
    /// Wait this long before sending, milliseconds.
    pub delay_ms: u64,
    /// Send the reply twice.
    pub duplicate: bool,
}

/// Draws `true` with probability `permille`/1000; draws nothing when the rate is 0.
pub(crate) fn chance(rng: &mut impl Rng, permille: u16) -> bool {
    permille > 0 && rng.gen_range(0..1000u16) < permille
}

impl Faults {
    /// Whether any transport fault is on (the server then spends generator draws).
    pub fn any_transport(&self) -> bool {
        self.latency_max_ms > 0
            || self.drop_after_debit_permille > 0
            || self.late_permille > 0
            || self.duplicate_permille > 0
    }

    /// Decides the fate of one reply; `approved_financial` says whether it approves
    /// a financial request (only those can be dropped after the debit).
    pub fn plan(&self, rng: &mut impl Rng, approved_financial: bool) -> ReplyPlan {
        let mut plan = ReplyPlan::default();
        if approved_financial && chance(rng, self.drop_after_debit_permille) {
            plan.drop = true;
            return plan;
        }
        if self.latency_max_ms > 0 {
            let lo = self.latency_min_ms.min(self.latency_max_ms);
            plan.delay_ms = rng.gen_range(lo..=self.latency_max_ms);
        }
        if chance(rng, self.late_permille) {
            plan.delay_ms = plan.delay_ms.saturating_add(self.late_ms);
        }
        plan.duplicate = chance(rng, self.duplicate_permille);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn off_by_default_and_bounded() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(Faults::default().plan(&mut rng, true), ReplyPlan::default());
        let f = Faults {
            latency_min_ms: 5,
            latency_max_ms: 10,
            drop_after_debit_permille: 1000,
            ..Faults::default()
        };
        assert!(f.plan(&mut rng, true).drop);
        for _ in 0..100 {
            let p = f.plan(&mut rng, false);
            assert!(!p.drop && (5..=10).contains(&p.delay_ms));
        }
    }
}
