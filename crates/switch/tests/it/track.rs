//! Track 2 under the terminal's track key (key layout `004`): the terminal encrypts it,
//! only the security module decrypts it, and a terminal that holds a track key cannot
//! be talked into sending (or be impersonated with) a clear track.

use cardsec::{encrypt_track, Key};
use iso8583::{Dialect, Message};

use crate::harness::{card, World};

/// The track the test card's chip gives (see `terminal::Card`).
const CLEAR: &str = "6228480402564890018=281220100000";

fn rc(w: &World) -> String {
    w.last_reply
        .as_ref()
        .and_then(|m| m.get_str(39))
        .unwrap_or("")
        .to_owned()
}

fn to_issuer(w: &World) -> Message {
    Dialect::iso87_ascii()
        .unpack(w.to_issuer.last().expect("a message to the issuer"))
        .unwrap()
}

#[test]
fn a_terminal_with_a_track_key_sends_track_2_encrypted_and_the_issuer_gets_it_clear() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    assert!(w.tdk.is_some(), "layout 004 delivers a track key");
    let req = t.sale(&card(), 1_000).unwrap();
    let sent = World::open(&req.frame);
    let f35 = sent.get_str(35).unwrap().to_owned();
    assert_ne!(f35, CLEAR, "track 2 leaves the terminal encrypted");
    assert_eq!(f35.len(), CLEAR.len());
    assert_eq!(
        f35,
        encrypt_track(w.tdk.as_ref().unwrap(), CLEAR).unwrap(),
        "under the delivered track key"
    );
    assert_eq!(sent.get_str(53), Some("1610000000000000"));
    let out = w.exchange(&mut t, req);
    assert!(out.is_approved(), "{out:?}");
    assert_eq!(to_issuer(&w).get_str(35), Some(CLEAR));
    // Nothing durable holds the track, clear or encrypted.
    let written = format!("{:?}", w.writes);
    assert!(!written.contains(CLEAR) && !written.contains(&f35));
    assert!(!written.contains("6228480402564890018"));
}

#[test]
fn a_new_sign_on_brings_a_new_track_key_that_is_used_from_then_on() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    let first = w.tdk.as_ref().unwrap().expose().to_vec();
    w.approve(&mut t, |t| t.sale(&card(), 1_000));
    w.sign_on(&mut t);
    assert_ne!(w.tdk.as_ref().unwrap().expose(), &first[..]);
    w.approve(&mut t, |t| t.sale(&card(), 2_000));
    assert_eq!(to_issuer(&w).get_str(35), Some(CLEAR));
}

#[test]
fn a_clear_track_from_a_terminal_that_must_encrypt_is_refused() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let clear = w.tamper(&req.frame, |m| {
        m.set(35, CLEAR);
        m.remove(53);
    });
    let sent = w.to_issuer.len();
    w.exchange_as(&mut t, &clear);
    assert_eq!(rc(&w), "63");
    assert_eq!(w.to_issuer.len(), sent, "nothing forwarded");
}

#[test]
fn a_track_encrypted_under_another_key_is_refused() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let other = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let forged = w.tamper(&req.frame, |m| {
        m.set(35, encrypt_track(&other, CLEAR).unwrap());
    });
    w.exchange_as(&mut t, &forged);
    assert_eq!(rc(&w), "14");
}

#[test]
fn an_encrypted_track_from_a_terminal_without_a_track_key_is_refused() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    assert!(w.tdk.is_none());
    let req = t.sale(&card(), 1_000).unwrap();
    let claimed = w.tamper(&req.frame, |m| {
        m.set(53, "1610000000000000");
    });
    w.exchange_as(&mut t, &claimed);
    assert_eq!(rc(&w), "63");
}

#[test]
fn a_terminal_provisioned_for_a_track_key_cannot_sign_on_without_one() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    let req = t.sign_on().unwrap();
    let without = w.tamper(&req.frame, |m| {
        m.set(60, "00000001003");
    });
    let replies = w.replies(&without);
    assert_eq!(replies[0].get_str(39), Some("63"));
}

#[test]
fn a_sale_with_an_encrypted_track_is_voided_and_reversed() {
    let mut w = World::with_track_key();
    let mut t = w.terminal(1);
    let c = card();
    let sale = w.approve(&mut t, |t| t.sale(&c, 1_000));
    let entry = sale.entry.clone().expect("an approved sale is recorded");
    // The void's track is encrypted too, and matches the original's card.
    w.approve(&mut t, |t| t.void(&c, &entry));
    // A sale the customer cancels after approval: the reversal repeats the encrypted
    // track with its field 53.
    w.approve(&mut t, |t| t.sale(&c, 3_000));
    t.cancel_after_approval().unwrap();
    let req = t.reversal().unwrap().expect("a reversal owed");
    let sent = World::open(&req.frame);
    assert_eq!(sent.get_str(53), Some("1610000000000000"));
    let out = w.exchange(&mut t, req);
    assert!(out.is_approved(), "{out:?}");
    let states: Vec<&str> = w.txns.values().map(|r| r.state.name()).collect();
    assert!(
        states.contains(&"voided") && states.contains(&"reversed"),
        "{states:?}"
    );
}
