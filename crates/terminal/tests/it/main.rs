//! Integration tests of the terminal: the sans-IO terminal against a scripted host,
//! and a loopback run of the fleet.

mod fleet;
mod host;
mod requests;
mod reversal;
mod settlement;

use cardsec::Key;
use terminal::{Card, EntryKind, Terminal, TerminalConfig};

use host::FakeHost;

/// The test terminal.
pub const TID: &str = "00000001";
/// The test merchant.
pub const MID: &str = "123456789012345";
/// A good UnionPay card.
pub const PAN: &str = "6228480402564890018";
/// Its PIN.
pub const PIN: &str = "147258";

/// The test terminal's configuration, with the host's TMK.
pub fn config() -> TerminalConfig {
    TerminalConfig::new(
        TID.parse().unwrap(),
        MID.parse().unwrap(),
        Key::from_hex(host::TMK).unwrap(),
    )
}

/// The good card, read from its chip, with its PIN.
pub fn chip_card() -> Card {
    Card::new(PAN, Some(PIN), "2812", EntryKind::Chip)
}

/// A terminal that signed on with the host (batch 7, keys delivered).
pub fn signed_on(host: &mut FakeHost) -> Terminal {
    signed_on_with(host, config())
}

/// Signs a terminal of the given configuration on with the host.
pub fn signed_on_with(host: &mut FakeHost, config: TerminalConfig) -> Terminal {
    let mut t = Terminal::new(config);
    let req = t.sign_on().unwrap();
    let inc = host.receive(&req.frame);
    let reply = host.reply(&inc, "00");
    let out = t.on_reply(&host.frame(&inc, reply)).unwrap();
    assert!(out.is_approved(), "{out:?}");
    assert!(t.is_signed_on());
    t
}

/// Sends a request to the host and returns the host's view of it plus the reply frame.
pub fn answer(host: &mut FakeHost, frame: &[u8], rc: &str) -> (host::Incoming, Vec<u8>) {
    let inc = host.receive(frame);
    assert!(host.mac_ok(&inc), "request MAC must verify");
    let reply = host.reply(&inc, rc);
    let body = host.frame(&inc, reply);
    (inc, body)
}
