//! Fuzzes the acquirer's transaction engine through its sans-IO API: a signed-on
//! terminal sends correctly MACed requests with arbitrary field values (and raw
//! frames), the issuer answers; no input may panic, and every MACed request is
//! answered or its connection closed.
#![no_main]

#[path = "shared/mod.rs"]
mod shared;

use std::sync::Arc;

use cardsec::{cup_ecb_mac, Key, KeyKind, KeyLayout, Lmk, SecurityModule, SoftwareSecurityModule, TerminalKeys};
use iso8583::frame::{CupEnvelope, CupHeader, Tpdu};
use iso8583::{Dialect, Message, Mti};
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use shared::Bytes;
use records::{MerchantRow, TerminalRow};
use switch::{Action, Config, ConnId, Engine, Input, JournalState, Now, TerminalDialect, ZoneKeys};

const TID: &str = "00000001";
const MID: &str = "123456789012345";
const TMK: &str = "70F2A84CCBC2AE8625CBB0F2C22AB923";
const CONN: ConnId = ConnId(1);

fn envelope(message: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    CupEnvelope {
        tpdu: Tpdu::from_bytes([0x60, 0x00, 0x03, 0x00, 0x00]),
        header: CupHeader([0x60, 0x32, 0x10, 0x32, 0x00, 0x72]),
        message,
    }
    .write(&mut body);
    body
}

fn engine() -> Engine {
    let lmk = Lmk::from_hex("0123456789ABCDEFFEDCBA9876543210").expect("lmk");
    let hsm = Arc::new(SoftwareSecurityModule::new(lmk, Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(1))));
    let import = |kind, hex: &str| hsm.import_key(kind, 1, &Key::from_hex(hex).expect("hex")).expect("import");
    let zone = ZoneKeys {
        zpk: import(KeyKind::Zpk, "E0F4543F3E2A2C5FFC7E5E5A222E3E4D"),
        zak: import(KeyKind::Zak, "89B07B35A1B3F47E89B07B35A1B3F47E"),
    };
    let at = "2026-01-01T00:00:00+00:00".to_owned();
    let merchant = MerchantRow {
        merchant_id: MID.into(),
        name: "Fuzz Shop".into(),
        city: "Shanghai".into(),
        mcc: "5411".into(),
        status: "active".into(),
        created_at: at.clone(),
        merchant_class: "standard".into(),
        risk_class: "low".into(),
    };
    let terminal = TerminalRow {
        terminal_id: TID.into(),
        merchant_id: MID.into(),
        status: "active".into(),
        tmk: import(KeyKind::Tmk, TMK).to_text(),
        pik: None,
        mak: None,
        mak_prev: None,
        key_version: 0,
        batch: 1,
        signed_on: false,
        install_location: String::new(),
        updated_at: at,
        key_profile: "003".into(),
        pending_pik: None,
        pending_mak: None,
        tdk: None,
        pending_tdk: None,
    };
    Engine::new(Config::default(), hsm, zone, vec![merchant], vec![terminal], JournalState::default())
}

/// Carries out actions as a driver whose writes all succeed and whose issuer approves;
/// returns the frames sent to the terminal and whether the connection was closed.
fn run(e: &mut Engine, now: &mut i64, input: Input<'_>, replies: &mut Vec<Vec<u8>>) -> bool {
    *now += 61_000;
    let mut queue = vec![e.handle(Now { unix_ms: *now }, input)];
    let mut closed = false;
    while let Some(actions) = queue.pop() {
        for a in actions {
            match a {
                Action::Persist { then, .. } => queue.push(then),
                Action::SendTerminal { frame, .. } => replies.push(frame),
                Action::CloseTerminal { .. } => closed = true,
                Action::SendIssuer { txn_id, .. } => {
                    // Silence: the issuer never answers; the timer fires at once.
                    queue.push(e.handle(Now { unix_ms: *now }, Input::IssuerTimeout { txn_id }));
                }
                Action::Abandon { txn_id } => queue.push(e.handle(Now { unix_ms: *now }, Input::Abandoned { txn_id })),
                Action::NoReply { .. } | Action::StartIssuerTimer { .. } | Action::StartSafTimer { .. } => {}
            }
        }
    }
    closed
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut e = engine();
    let mut now = 1_795_000_000_000i64;
    let dialect = Dialect::cup_pos();
    // Sign on and learn the MAC key the way a terminal does.
    let mut on = Message::new(Mti::lit("0800"));
    on.set(11, "000001").set(41, TID).set(42, MID).set(60, "00000001003");
    let mut replies = Vec::new();
    run(&mut e, &mut now, Input::TerminalFrame { conn: CONN, dialect: TerminalDialect::CupPos, frame: &envelope(&dialect.pack(&on).expect("pack")) }, &mut replies);
    let reply = CupEnvelope::split(&replies[0]).expect("reply");
    let reply = dialect.unpack(reply.message).expect("reply");
    let keys = TerminalKeys::unwrap(&Key::from_hex(TMK).expect("tmk"), KeyLayout::Double, reply.get(62).expect("keys")).expect("unwrap");
    for _ in 0..8 {
        if b.0.is_empty() {
            break;
        }
        let frame = if b.byte() % 8 == 0 {
            // Raw bytes, unsigned.
            let n = usize::from(b.byte());
            let raw = b.0[..n.min(b.0.len())].to_vec();
            b.0 = &b.0[n.min(b.0.len())..];
            raw
        } else {
            let mut m = shared::message(
                dialect,
                &["0200", "0100", "0220", "0400", "0320", "0500", "0800", "0820"],
                &[2, 3, 4, 11, 14, 22, 25, 26, 35, 41, 42, 48, 49, 52, 53, 60, 61, 62, 63, 90],
                &[(41, TID), (42, MID), (49, "156"), (3, "000000"), (60, "22000001000")],
                &mut b,
            );
            m.set(64, [0u8; 8]);
            let Ok(mut packed) = dialect.pack(&m) else { continue };
            let n = packed.len() - 8;
            let mac = cup_ecb_mac(&keys.mak, &packed[..n]);
            packed[n..].copy_from_slice(&mac);
            envelope(&packed)
        };
        let mut out = Vec::new();
        let closed = run(&mut e, &mut now, Input::TerminalFrame { conn: CONN, dialect: TerminalDialect::CupPos, frame: &frame }, &mut out);
        let request = CupEnvelope::split(&frame).ok().and_then(|env| dialect.unpack(env.message).ok());
        if request.is_some_and(|r| r.mti().is_request()) {
            assert!(closed || !out.is_empty(), "a request got neither a reply nor a close");
        }
    }
});
