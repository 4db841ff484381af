//! What every reply carries, so a terminal can match and print it: the request's 11,
//! 41 and 42, the host's time in 12/13, the acquirer id (32), the RRN (37) where a
//! transaction exists — also when the request is refused before the journal or does
//! not even decode.

use chrono::{DateTime, FixedOffset};
use iso8583::Message;

use crate::harness::{card, unpack_reply, World};

/// The host's local time (UTC+8) of `rfc3339`, as 12 and 13 carry it.
fn host_time(rfc3339: &str) -> (String, String) {
    let t = DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    (t.format("%H%M%S").to_string(), t.format("%m%d").to_string())
}

fn echoes(reply: &Message, req: &Message) {
    for f in [11, 41, 42] {
        assert_eq!(reply.get(f), req.get(f), "field {f} echoed");
    }
    assert!(reply.has(12) && reply.has(13), "host time");
    assert_eq!(reply.get_str(32), Some("48020000"), "acquirer id");
}

#[test]
fn an_approved_sale_is_answered_with_the_hosts_time_of_the_transaction() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let sent = World::open(&req.frame);
    let reply = w.replies(&req.frame).remove(0);
    echoes(&reply, &sent);
    let row = w
        .txns
        .values()
        .find(|r| r.kind == records::TxnKind::Sale)
        .unwrap();
    let (hms, md) = host_time(&row.created_at);
    assert_eq!(reply.get_str(12), Some(hms.as_str()));
    assert_eq!(reply.get_str(13), Some(md.as_str()));
    assert_eq!(reply.get_str(37), Some(row.rrn.as_str()));
    assert!(reply.has(64), "signed");
}

#[test]
fn a_mac_failure_is_answered_unsigned_with_everything_to_match_it() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let sent = World::open(&req.frame);
    let mut bad = req.frame.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x01;
    let reply = w.replies(&bad).remove(0);
    assert_eq!(reply.get_str(39), Some("A0"));
    echoes(&reply, &sent);
    assert!(!reply.has(64), "an A0 reply carries no MAC");
}

#[test]
fn a_reused_stan_is_answered_94_signed_with_everything_to_match_it() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let _ = w.replies(&req.frame);
    let other = w.tamper(&req.frame, |m| {
        m.set(4, "000000002000");
    });
    let sent = World::open(&other);
    let reply = w.replies(&other).remove(0);
    assert_eq!(reply.get_str(39), Some("94"));
    echoes(&reply, &sent);
    assert!(reply.has(64), "signed under the key it came with");
}

#[test]
fn an_undecodable_request_is_answered_30_with_what_could_be_read() {
    let mut w = World::new();
    let mut t = w.terminal(1);
    let req = t.sale(&card(), 1_000).unwrap();
    let sent = World::open(&req.frame);
    // Field 60 (after 41 and 42, just before the 8-byte MAC) gets a nibble BCD
    // cannot hold.
    let mut body = req.frame[2..].to_vec();
    let f60 = sent.get(60).unwrap();
    let n = body.len();
    let first = n - 8 - f60.len().div_ceil(2);
    let len = f60.len();
    assert_eq!(
        body[first - 2..first],
        [
            (len / 100) as u8,
            (((len / 10 % 10) << 4) | (len % 10)) as u8
        ],
        "field 60's length prefix"
    );
    body[first] = 0xAA;
    let mut framed = Vec::new();
    iso8583::frame::encode_frame(&body, 8192, &mut framed).unwrap();
    let replies = w.deliver(&framed);
    assert_eq!(replies.len(), 1, "answered, not closed");
    let reply = unpack_reply(&replies[0]);
    assert_eq!(reply.get_str(39), Some("30"));
    echoes(&reply, &sent);
}
