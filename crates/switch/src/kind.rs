//! Which kind of transaction a terminal request asks for (the kinds and states
//! themselves are journal records: `records::TxnKind`, `records::TxnState`).

use iso8583::Message;
pub use records::{TxnKind, TxnState};

/// Classifies a terminal request (UnionPay conventions: MTI + 3 + 25 + 60.1); `None`
/// for combinations posguard does not accept.
pub fn of(msg: &Message) -> Option<TxnKind> {
    let mti = msg.mti();
    let pc = msg.get_str(3).unwrap_or("");
    let tx_type = msg.get_str(60).and_then(|s| s.get(0..2)).unwrap_or("");
    match (mti.as_str(), pc, tx_type) {
        ("0400", _, _) => Some(TxnKind::Reversal),
        ("0200", "310000", "01") => Some(TxnKind::Balance),
        ("0200", "000000", "22") => Some(TxnKind::Sale),
        ("0200", "200000", "23") => Some(TxnKind::Void),
        ("0220", "200000", "25") => Some(TxnKind::Refund),
        ("0100", "030000", "10") => Some(TxnKind::PreAuth),
        ("0100", "200000", "11") => Some(TxnKind::PreAuthCancel),
        ("0200", "000000", "20") => Some(TxnKind::Completion),
        _ => None,
    }
}
