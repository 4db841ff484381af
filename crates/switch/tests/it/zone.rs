//! Zone keys changed while the node runs: used at once, and the ZAK they replace still
//! verifies the issuer's replies to what was signed under it.

use cardsec::Key;
use iso8583::{Dialect, Message};

use crate::harness::{card, World};

fn to_issuer(w: &World) -> Message {
    Dialect::iso87_ascii()
        .unpack(w.to_issuer.last().expect("a message to the issuer"))
        .unwrap()
}

/// Zone keys changed while a sale waits for the issuer: the next message goes out
/// under the new ZAK (field 53 names it), and the issuer's reply to the sale, signed
/// under the ZAK the sale went out with, still verifies.
#[test]
fn new_zone_keys_are_used_at_once_and_replies_under_the_old_zak_still_verify() {
    use cardsec::{KeyKind, SecurityModule};
    use switch::{Input, ZoneKeys};
    let mut w = World::new();
    let mut t = w.terminal(1);
    w.issuer_silent = true;
    let req = t.sale(&card(), 1_000).unwrap();
    assert!(w.deliver(&req.frame).is_empty(), "waiting for the issuer");
    let waiting = w.to_issuer.last().unwrap().clone();
    assert_eq!(to_issuer(&w).get_str(53), Some("0100000010000001"));
    let v2 = |kind, hex| {
        w.hsm
            .import_key(kind, 2, &Key::from_hex(hex).unwrap())
            .unwrap()
    };
    let zone = ZoneKeys {
        zpk: v2(KeyKind::Zpk, "3E3E3E3E3E3E3E3E7C7C7C7C7C7C7C7C"),
        zak: v2(KeyKind::Zak, "4A4A4A4A4A4A4A4A2C2C2C2C2C2C2C2C"),
    };
    w.engine.update_keys(zone, None);
    // The issuer answers the sale under the ZAK it came with (version 1).
    let reply = w.issuer(&waiting);
    w.feed(Input::IssuerFrame { frame: &reply });
    let frames = w.take_sent();
    assert_eq!(frames.len(), 1, "the sale is answered");
    let out = t.on_reply(&frames[0]).unwrap();
    assert!(out.is_approved(), "{out:?}");
    // The next sale goes out under version 2.
    let req = t.sale(&card(), 2_000).unwrap();
    let _ = w.deliver(&req.frame);
    assert_eq!(to_issuer(&w).get_str(53), Some("0100000020000002"));
}
