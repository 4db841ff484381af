//! A merchant's transaction limits, by its class and risk rating: what provisioning
//! writes into the merchant's terms and the switch enforces (field 39 `61`).
//! Individual merchants have the small merchants' limits of the brief (R10): 10,000.00
//! a transaction and 100,000.00 a day; companies more, less for a higher risk.

/// Limits in minor units (fen); 0 means none beyond the switch's own maximum. The
/// rating also sets the rolling reserve (high risk: 10% of each payout kept 90 days)
/// and the re-review period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest sale or pre-authorization.
    pub per_txn_minor: i64,
    /// Most sales and pre-authorizations a (local) day, all terminals together.
    pub per_day_minor: i64,
    /// The share of each payout kept back, basis points (0: none).
    pub reserve_bps: i64,
    /// Days it is kept.
    pub reserve_days: i64,
}

/// The limits for a merchant class (`small`, `standard`, `large`) and risk rating
/// (`low`, `medium`, `high`); an unknown one gets the strictest.
pub fn for_merchant(class: &str, rating: &str) -> Limits {
    let (per_txn, per_day) = match (class, rating) {
        ("small", "high") => (500_000, 5_000_000),
        ("small", _) => (1_000_000, 10_000_000),
        ("standard", "low") => (5_000_000, 50_000_000),
        ("standard", "medium") => (2_000_000, 20_000_000),
        ("large", "low") => (20_000_000, 500_000_000),
        ("large", "medium") => (10_000_000, 200_000_000),
        ("standard" | "large", "high") => (1_000_000, 10_000_000),
        _ => (500_000, 5_000_000),
    };
    let (reserve_bps, reserve_days) = if matches!(rating, "low" | "medium") {
        (0, 0)
    } else {
        (1_000, 90)
    };
    Limits {
        per_txn_minor: per_txn,
        per_day_minor: per_day,
        reserve_bps,
        reserve_days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The brief's small merchants' limits (R10); a higher risk, lower limits and a
    /// reserve; an unknown class or rating the strictest.
    #[test]
    fn limits_and_reserves_by_class_and_rating() {
        let cases = [
            ("small", "medium", (1_000_000, 10_000_000, 0, 0)),
            ("small", "high", (500_000, 5_000_000, 1_000, 90)),
            ("standard", "low", (5_000_000, 50_000_000, 0, 0)),
            ("standard", "medium", (2_000_000, 20_000_000, 0, 0)),
            ("standard", "high", (1_000_000, 10_000_000, 1_000, 90)),
            ("large", "low", (20_000_000, 500_000_000, 0, 0)),
            ("mystery", "low", (500_000, 5_000_000, 0, 0)),
            ("standard", "unrated", (500_000, 5_000_000, 1_000, 90)),
        ];
        for (class, rating, (t, d, bps, days)) in cases {
            let l = for_merchant(class, rating);
            assert_eq!(
                (
                    l.per_txn_minor,
                    l.per_day_minor,
                    l.reserve_bps,
                    l.reserve_days
                ),
                (t, d, bps, days),
                "{class} {rating}"
            );
        }
    }
}
