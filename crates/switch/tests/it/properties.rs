//! No request a signed-on terminal can send panics the engine: correctly MACed requests
//! with arbitrary field values (PAN lengths 0–19, any track 2, PIN blocks, amounts,
//! sub-fields 60/61/63/90, batch messages) always get a reply.
//!
//! Cases come from seeded generators, so a failure names its seed and replays exactly;
//! `POSGUARD_ENGINE_CASES=N` runs more of them (CI runs the default).

use std::panic::{catch_unwind, AssertUnwindSafe};

use iso8583::{Message, Mti};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{card, World, MID, TID};

/// Seeds run by default; each drives one freshly signed-on engine through a session.
const DEFAULT_CASES: u64 = 150;
/// Requests per session: enough for originals, batches and repeats to meet.
const REQUESTS_PER_CASE: usize = 24;

/// Decimal digits, as many as `len` picks.
fn digits(rng: &mut ChaCha8Rng, len: std::ops::RangeInclusive<usize>) -> String {
    let n = rng.gen_range(len);
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

fn one_of<'a>(rng: &mut ChaCha8Rng, set: &[&'a str]) -> &'a str {
    set[rng.gen_range(0..set.len())]
}

/// A PAN of any length the codec carries, Luhn-valid half of the time.
fn pan(rng: &mut ChaCha8Rng) -> String {
    let len = if rng.gen_bool(0.5) {
        rng.gen_range(0..=19)
    } else {
        rng.gen_range(12..=13)
    };
    let mut p = digits(rng, len..=len);
    if len > 1 && rng.gen_bool(0.7) {
        p.pop();
        p.push(luhn_digit(&p));
    }
    p
}

fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                x - if x > 9 { 9 } else { 0 }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Track 2 content: well-formed, truncated, or any z-class characters.
fn track2(rng: &mut ChaCha8Rng) -> String {
    let sep = one_of(rng, &["=", "D"]);
    match rng.gen_range(0..4) {
        0 => {
            let n = rng.gen_range(0..=37);
            (0..n)
                .map(|_| char::from(b"0123456789="[rng.gen_range(0..11)]))
                .collect()
        }
        1 => format!("{}{sep}{}", pan(rng), digits(rng, 0..=7)),
        _ => {
            let t = format!(
                "{}{sep}{}201{}",
                pan(rng),
                digits(rng, 4..=4),
                digits(rng, 3..=3)
            );
            t.chars().take(37).collect()
        }
    }
}

/// A request of any kind with fields drawn from what the codec can carry.
fn request(rng: &mut ChaCha8Rng, stan: u32) -> Message {
    let mti = one_of(
        rng,
        &[
            "0200", "0200", "0200", "0100", "0220", "0400", "0320", "0500", "0800", "0820", "0120",
            "0600",
        ],
    );
    let mut m = Message::new(Mti::lit(mti));
    m.set(
        3,
        one_of(rng, &["000000", "200000", "310000", "030000", "000000"]),
    );
    if rng.gen_bool(0.15) {
        m.set(3, digits(rng, 6..=6));
    }
    match rng.gen_range(0..5) {
        0 => {}
        1 | 2 => {
            m.set(2, pan(rng));
        }
        _ => {
            m.set(35, track2(rng));
        }
    }
    if rng.gen_bool(0.9) {
        let amount = match rng.gen_range(0..4) {
            0 => "000000000000".to_owned(),
            1 => "999999999999".to_owned(),
            _ => format!("{:012}", rng.gen_range(1..5_000_000u64)),
        };
        m.set(4, amount);
    }
    let stan = if rng.gen_bool(0.8) {
        format!("{stan:06}")
    } else {
        digits(rng, 6..=6)
    };
    m.set(11, stan);
    if rng.gen_bool(0.5) {
        m.set(14, digits(rng, 4..=4));
    }
    m.set(22, one_of(rng, &["051", "021", "071", "801", "011", "999"]));
    m.set(25, one_of(rng, &["00", "06", "14", "99"]));
    if rng.gen_bool(0.3) {
        m.set(26, "12");
    }
    m.set(41, if rng.gen_bool(0.95) { TID } else { "99999999" });
    m.set(
        42,
        if rng.gen_bool(0.95) {
            MID
        } else {
            "999999999999999"
        },
    );
    if rng.gen_bool(0.9) {
        m.set(49, one_of(rng, &["156", "156", "840", "ABC", "000"]));
    }
    if rng.gen_bool(0.4) {
        m.set(52, rng.gen::<[u8; 8]>());
        m.set(53, digits(rng, 16..=16));
    }
    if rng.gen_bool(0.2) {
        let n = rng.gen_range(0..=120);
        m.set(48, digits(rng, n..=n));
    }
    let f60 = match rng.gen_range(0..4) {
        0 => digits(rng, 0..=30),
        _ => format!(
            "{}{:06}{}",
            one_of(rng, &["22", "22", "20", "23", "25", "10", "00"]),
            if rng.gen_bool(0.8) {
                1
            } else {
                rng.gen_range(0..3)
            },
            one_of(rng, &["", "000", "003", "001", "004", "5"])
        ),
    };
    if rng.gen_bool(0.95) {
        m.set(60, f60);
    }
    if rng.gen_bool(0.4) {
        let f61 = match rng.gen_range(0..3) {
            0 => digits(rng, 0..=29),
            _ => format!(
                "{:06}{:06}{}",
                rng.gen_range(0..3),
                rng.gen_range(1..=REQUESTS_PER_CASE as u32 + 4),
                digits(rng, 4..=4)
            ),
        };
        m.set(61, f61);
    }
    if rng.gen_bool(0.2) {
        let n = rng.gen_range(0..=64);
        m.set(62, (0..n).map(|_| rng.gen::<u8>()).collect::<Vec<_>>());
    }
    if rng.gen_bool(0.3) {
        let n = rng.gen_range(0..=40);
        let text: String = (0..n)
            .map(|_| char::from(rng.gen_range(0x20..=0x7eu8)))
            .collect();
        m.set(63, text);
    }
    if rng.gen_bool(0.1) {
        m.set(90, digits(rng, 42..=42));
    }
    m
}

/// One session: sign on, a good sale so originals exist, then arbitrary requests,
/// each correctly MACed; every one that packs must be answered.
fn session(seed: u64) -> Result<[usize; 2], String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = World::new();
    let mut t = w.terminal(1);
    w.approve(&mut t, |t| t.sale(&card(), 1_000));
    let mut answered = [0usize; 2];
    for i in 0..REQUESTS_PER_CASE {
        let mut req = request(&mut rng, 2 + i as u32);
        let Some(framed) = w.try_craft(&mut req) else {
            continue; // a value the codec refuses to pack: the fuzzer covers raw bytes
        };
        let closed = w.closed;
        let replies = w.deliver(&framed);
        if replies.is_empty() && w.closed == closed {
            return Err(format!(
                "request {i} ({}) got neither a reply nor a close: {req:?}",
                req.mti()
            ));
        }
        answered[0] += replies.len();
        answered[1] += replies
            .iter()
            .filter(|r| crate::harness::unpack_reply(r).get_str(39) == Some("00"))
            .count();
    }
    Ok(answered)
}

#[test]
fn every_signed_request_with_arbitrary_fields_is_answered_without_a_panic() {
    let cases = std::env::var("POSGUARD_ENGINE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let (mut answered, mut approved) = (0, 0);
    for seed in 0..cases {
        match catch_unwind(AssertUnwindSafe(|| session(seed))) {
            Ok(Ok([n, ok])) => {
                answered += n;
                approved += ok;
            }
            Ok(Err(why)) => panic!("seed {seed}: {why}"),
            Err(_) => panic!("seed {seed}: the engine panicked (replay: this seed)"),
        }
    }
    eprintln!("{cases} sessions: {answered} replies, {approved} approved");
    assert!(answered as u64 > cases * REQUESTS_PER_CASE as u64 / 2);
}

/// The engine as it was seen to die: a correctly MACed sale whose PAN is 12
/// Luhn-valid digits and which carries a PIN block.
#[test]
fn a_twelve_digit_pan_with_a_pin_block_is_answered() {
    for field in [2, 35] {
        let mut w = World::new();
        let mut t = w.terminal(1);
        let req = t.sale(&card(), 1_000).unwrap();
        let pan = "622848000031";
        assert!(cardsec::luhn_valid(pan));
        let framed = w.tamper(&req.frame, |m| {
            m.remove(2);
            m.remove(35);
            if field == 2 {
                m.set(2, pan);
            } else {
                m.set(35, format!("{pan}=2812201000"));
            }
            m.set(22, "021");
            m.set(52, [0x12u8; 8]);
            m.set(53, "2600000000000000");
        });
        let replies = w.replies(&framed);
        assert_eq!(replies.len(), 1, "field {field}");
        // The block is not a format 0 block for this PAN under the terminal's key.
        assert_eq!(replies[0].get_str(39), Some("99"), "field {field}");
    }
}
