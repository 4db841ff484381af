//! What a restarted engine still knows about the transactions it reloads.

use domain::ResponseCode;

use crate::harness::{card, World};

#[test]
fn refunds_taken_before_a_restart_still_count_against_the_sale() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let c = card();
    let sale = w.approve(&mut t, |t| t.sale(&c, 10_000)).entry.unwrap();
    w.approve(&mut t, |t| t.refund(&c, 6_000, &sale));
    w.restart();
    // 6,000 of the 10,000 are already refunded: another 6,000 is too much.
    let req = t.refund(&c, 6_000, &sale).unwrap();
    let out = w.exchange(&mut t, req);
    assert_eq!(
        out.response_code,
        Some(ResponseCode::INVALID_AMOUNT),
        "{out:?}"
    );
    // The remaining 4,000 still can be.
    w.approve(&mut t, |t| t.refund(&c, 4_000, &sale));
}
