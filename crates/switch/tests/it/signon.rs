//! Sign-on needs no MAC, so it must change nothing for the real terminal: working
//! keys become current only once used, a terminal's key profile cannot be weakened,
//! sign-ons are rate-limited, a sign-off disables nothing, and a retransmission after
//! a new sign-on is answered under the key it came with.

use cardsec::Key;
use iso8583::Message;
use records::Write;
use terminal::{Terminal, TerminalConfig};

use crate::harness::{card, unpack_reply, World, MID, TID};

/// Someone who knows the terminal and merchant ids (they are printed on receipts)
/// but not the terminal master key.
fn forger() -> Terminal {
    Terminal::new(TerminalConfig::new(
        TID.parse().unwrap(),
        MID.parse().unwrap(),
        Key::from_hex("0123456789ABCDEF0123456789ABCDEF").unwrap(),
    ))
}

fn rc(m: &Message) -> &str {
    m.get_str(39).unwrap_or("")
}

fn terminal_writes(w: &World) -> usize {
    w.writes
        .iter()
        .filter(|x| matches!(x, Write::Terminal(_)))
        .count()
}

#[test]
fn forged_sign_ons_do_not_change_what_the_real_terminals_next_sale_gets() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    w.approve(&mut t, |t| t.sale(&card(), 1_000));
    for _ in 0..2 {
        let req = forger().sign_on().unwrap();
        let replies = w.replies(&req.frame);
        // The forger gets keys under a TMK it does not hold: useless to it.
        assert_eq!(rc(&replies[0]), "00");
    }
    let out = w.approve(&mut t, |t| t.sale(&card(), 2_000));
    assert_eq!(out.response_code.map(|c| c.to_string()), Some("00".into()));
}

#[test]
fn new_keys_become_current_when_the_terminal_uses_them() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    w.approve(&mut t, |t| t.sale(&card(), 1_000));
    w.sign_on(&mut t);
    // Signed on again: the next sale is MACed under the new key and verifies.
    w.approve(&mut t, |t| t.sale(&card(), 2_000));
    let versions: Vec<(i64, bool)> = w
        .writes
        .iter()
        .filter_map(|x| match x {
            Write::Terminal(r) => Some((r.key_version, r.pending_mak.is_some())),
            _ => None,
        })
        .collect();
    // Delivered (pending), used (current v1), delivered again, used (current v2).
    assert_eq!(versions, vec![(0, true), (1, false), (1, true), (2, false)]);
}

#[test]
fn a_sign_on_asking_for_weaker_keys_than_the_profile_is_refused() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let before = terminal_writes(&w);
    let req = t.sign_on().unwrap();
    // The terminal is provisioned for double-length keys (003); ask for single DES.
    let single = w.tamper(&req.frame, |m| {
        m.set(60, "00000001001");
    });
    let replies = w.replies(&single);
    assert_eq!(rc(&replies[0]), "63");
    assert!(!replies[0].has(62), "no keys delivered");
    assert_eq!(terminal_writes(&w), before, "nothing written");
}

#[test]
fn sign_ons_beyond_the_rate_are_refused() {
    let mut w = World::new();
    let req = forger().sign_on().unwrap();
    let codes: Vec<String> = (0..8)
        .map(|_| {
            rc(&w
                .deliver_now(&req.frame)
                .iter()
                .map(|b| unpack_reply(b))
                .next()
                .unwrap())
            .to_owned()
        })
        .collect();
    assert_eq!(codes, ["00", "00", "00", "00", "00", "00", "65", "65"]);
    // A minute later sign-ons are accepted again.
    assert_eq!(rc(&w.replies(&req.frame)[0]), "00");
}

#[test]
fn a_forged_sign_off_disables_nothing() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    w.approve(&mut t, |t| t.sale(&card(), 1_000));
    let off = forger().sign_off().unwrap();
    assert_eq!(rc(&w.replies(&off.frame)[0]), "00");
    w.approve(&mut t, |t| t.sale(&card(), 2_000));
}

#[test]
fn a_retransmission_after_a_new_sign_on_is_answered_under_the_key_it_came_with() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let sale = t.sale(&card(), 1_000).unwrap();
    let first = w.exchange(&mut t, sale.clone());
    assert!(first.is_approved());
    // The terminal signs on again and sends the request once more, MACed under its
    // new key (as a terminal that lost the reply and restarted would).
    w.sign_on(&mut t);
    let again = w.rewrite(&World::open(&sale.frame), |_| {});
    let replies = w.deliver(&again);
    assert_eq!(replies.len(), 1);
    let reply = unpack_reply(&replies[0]);
    assert_eq!(rc(&reply), "00");
    assert_eq!(
        reply.get_str(37),
        first.rrn.map(|r| r.to_string()).as_deref()
    );
    assert!(
        w.reply_mac_ok(&replies[0]),
        "signed under the terminal's new key"
    );
    assert_eq!(w.to_issuer.len(), 1, "answered from the journal");
}
