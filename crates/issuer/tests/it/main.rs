//! Integration tests of the issuer simulator: the bank's money, the TCP link, the HTTP API.

mod bank;
mod declines;
mod faults;
mod http;
mod server;

use cardsec::{mac_equal, x9_19_mac, Key, Pan, Pin, PinBlock};
use chrono::{NaiveDate, NaiveDateTime};
use domain::Currency;
use iso8583::subfields::OriginalData;
use iso8583::{Dialect, Message, Mti};
use issuer::{
    linkmac, AccountId, AccountView, Bank, CardStatus, ClearKeys, Faults, Language, NewAccount,
};

/// The card every scenario uses (Luhn-valid UnionPay number).
pub const PAN: &str = "6222021234567890128";
/// Its PIN.
pub const PIN: &str = "123456";
/// The acquirer id on the link.
pub const ACQUIRER: &str = "48020000";

/// A PAN with its Luhn check digit appended.
pub fn luhn_pan(body: &str) -> String {
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|p| cardsec::luhn_valid(p))
        .expect("one check digit fits")
}

/// The time every scenario runs at: 2025-03-21 14:05:09 local.
pub fn now() -> NaiveDateTime {
    day().and_hms_opt(14, 5, 9).expect("valid time")
}

/// The scenarios' local date.
pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 21).expect("valid date")
}

/// One request on the link, before signing.
#[derive(Clone)]
pub struct Req {
    /// MTI.
    pub mti: &'static str,
    /// Field 3.
    pub proc: &'static str,
    /// Field 25.
    pub cond: &'static str,
    /// Field 4.
    pub amount_minor: Option<i64>,
    /// Field 49.
    pub currency: &'static str,
    /// Field 2.
    pub pan: Option<String>,
    /// Field 14.
    pub expiry: Option<&'static str>,
    /// The PIN for field 52.
    pub pin: Option<&'static str>,
    /// Field 37.
    pub rrn: String,
    /// Field 11.
    pub stan: u32,
    /// Field 38.
    pub auth_code: Option<String>,
    /// The original's MTI and STAN, for field 90.
    pub original: Option<(&'static str, u32)>,
}

impl Req {
    /// A sale of `amount_minor` fen with the test card and its PIN.
    pub fn sale(rrn: u64, amount_minor: i64) -> Req {
        Req {
            mti: "0200",
            proc: "000000",
            cond: "00",
            amount_minor: Some(amount_minor),
            currency: "156",
            pan: Some(PAN.into()),
            expiry: Some("2712"),
            pin: Some(PIN),
            rrn: format!("{rrn:012}"),
            stan: rrn as u32,
            auth_code: None,
            original: None,
        }
    }

    /// A balance inquiry.
    pub fn balance(rrn: u64) -> Req {
        Req {
            proc: "310000",
            amount_minor: None,
            ..Req::sale(rrn, 0)
        }
    }

    /// A pre-authorization.
    pub fn preauth(rrn: u64, amount_minor: i64) -> Req {
        Req {
            mti: "0100",
            proc: "030000",
            cond: "06",
            ..Req::sale(rrn, amount_minor)
        }
    }

    /// A follow-up (void, refund, cancel, completion) of `orig`, with `orig`'s RRN.
    pub fn follow_up(
        orig: &Req,
        auth: &str,
        mti: &'static str,
        proc: &'static str,
        amount_minor: i64,
    ) -> Req {
        Req {
            mti,
            proc,
            cond: orig.cond,
            amount_minor: Some(amount_minor),
            pin: None,
            expiry: None,
            stan: orig.stan + 500_000,
            auth_code: Some(auth.into()),
            original: Some((orig.mti, orig.stan)),
            ..orig.clone()
        }
    }

    /// The reversal advice (0420, or 0421 when `repeat`) of `orig`.
    pub fn reversal(orig: &Req, repeat: bool) -> Message {
        let mut m = Message::new(Mti::lit(if repeat { "0421" } else { "0420" }));
        m.set(2, orig.pan.as_deref().unwrap_or(PAN));
        m.set(3, orig.proc);
        if let Some(a) = orig.amount_minor {
            m.set(4, format!("{a:012}"));
        }
        m.set(7, "0321140509");
        m.set(11, format!("{:06}", orig.stan));
        m.set(32, ACQUIRER);
        m.set(37, &orig.rrn);
        m.set(39, "98");
        m.set(41, "TERM0001");
        m.set(42, "MERCHANT0000001");
        m.set(49, orig.currency);
        m.set(90, orig.field90());
        m
    }

    fn field90(&self) -> String {
        OriginalData {
            mti: self.mti.into(),
            stan: format!("{:06}", self.stan),
            datetime: "0321140509".into(),
            acquirer: ACQUIRER.into(),
            forwarder: String::new(),
        }
        .to_text()
    }

    /// The unsigned message.
    pub fn message(&self, zpk: &Key) -> Message {
        let mut m = Message::new(self.mti.parse().expect("MTI"));
        if let Some(p) = &self.pan {
            m.set(2, p);
        }
        m.set(3, self.proc);
        if let Some(a) = self.amount_minor {
            m.set(4, format!("{a:012}"));
        }
        m.set(7, "0321140509");
        m.set(11, format!("{:06}", self.stan));
        m.set(12, "140509");
        m.set(13, "0321");
        if let Some(e) = self.expiry {
            m.set(14, e);
        }
        m.set(22, "051");
        m.set(25, self.cond);
        m.set(32, ACQUIRER);
        m.set(37, &self.rrn);
        if let Some(a) = &self.auth_code {
            m.set(38, a);
        }
        m.set(41, "TERM0001");
        m.set(42, "MERCHANT0000001");
        m.set(43, format!("{:<40}", "Lucky Noodles Shanghai"));
        m.set(49, self.currency);
        if let (Some(pin), Some(pan)) = (self.pin, &self.pan) {
            if let (Ok(pin), Ok(pan)) = (Pin::new(pin), Pan::new(pan)) {
                m.set(52, PinBlock::format0(&pin, &pan).encrypt(zpk).0);
            }
        }
        if self.original.is_some() {
            m.set(90, self.field90_of_original());
        }
        m
    }

    fn field90_of_original(&self) -> String {
        let (mti, stan) = self.original.unwrap_or(("0200", 0));
        OriginalData {
            mti: mti.into(),
            stan: format!("{stan:06}"),
            datetime: "0321140509".into(),
            acquirer: ACQUIRER.into(),
            forwarder: String::new(),
        }
        .to_text()
    }
}

/// An active card for Li Lei in CNY, expiring 2712, with the test PIN.
pub fn new_account(
    pan: &str,
    balance_minor: i64,
    credit_limit_minor: i64,
    daily_limit_minor: i64,
) -> NewAccount {
    NewAccount {
        pan: Pan::new(pan).expect("PAN"),
        pin: Pin::new(PIN).expect("PIN"),
        expiry: cardsec::Expiry::parse("2712").expect("expiry"),
        currency: Currency::CNY,
        balance_minor,
        credit_limit_minor,
        daily_limit_minor,
        status: CardStatus::Active,
        holder: "Li Lei".into(),
        phone: "13800000000".into(),
        language: Language::Zh,
    }
}

/// A bank under the demo keys with the acquirer's view of the zone keys.
pub struct World {
    /// The bank.
    pub bank: Bank,
    /// The acquirer's clear ZAK.
    pub zak: Key,
    /// The acquirer's clear ZPK.
    pub zpk: Key,
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl World {
    /// A bank with no faults.
    pub fn new() -> World {
        World::with_faults(Faults::default())
    }

    /// A bank with bank-side faults on (seed 1).
    pub fn with_faults(faults: Faults) -> World {
        let keys = ClearKeys::demo();
        World {
            bank: Bank::from_clear_keys(&keys)
                .expect("demo keys")
                .with_faults(faults, 1),
            zak: Key::from_hex(&keys.zak_hex).expect("ZAK"),
            zpk: Key::from_hex(&keys.zpk_hex).expect("ZPK"),
        }
    }

    /// Opens the test card's account: 1,000.00 CNY, no credit line, 5,000.00 a day.
    pub fn open_default(&mut self) -> AccountId {
        self.open(PAN, 100_000, 0, 500_000, CardStatus::Active, "2712")
    }

    /// Opens an account with its card.
    pub fn open(
        &mut self,
        pan: &str,
        balance_minor: i64,
        credit_limit_minor: i64,
        daily_limit_minor: i64,
        status: CardStatus,
        expiry: &str,
    ) -> AccountId {
        let new = NewAccount {
            status,
            expiry: cardsec::Expiry::parse(expiry).expect("expiry"),
            ..new_account(pan, balance_minor, credit_limit_minor, daily_limit_minor)
        };
        self.bank.open_account(now(), new).expect("account opens")
    }

    /// Signs a message with the acquirer's ZAK.
    pub fn sign(&self, m: &mut Message) -> Vec<u8> {
        linkmac::sign(m, |d| Ok(x9_19_mac(&self.zak, d))).expect("signs")
    }

    /// Whether a reply carries a valid MAC under the ZAK.
    pub fn mac_valid(&self, m: &Message) -> bool {
        linkmac::verify(m, None, |d, mac| mac_equal(&x9_19_mac(&self.zak, d), mac))
    }

    /// Sends a signed message and returns the reply, checking the reply's MAC.
    pub fn send_msg(&mut self, mut m: Message) -> Message {
        let raw = self.sign(&mut m);
        let reply = self
            .bank
            .handle_packed(now(), &raw)
            .expect("unpacks")
            .expect("a reply");
        let reply_message = reply.message.clone();
        assert_eq!(
            reply.into_wire().expect("wire"),
            Dialect::iso87_ascii().pack(&reply_message).expect("packs"),
            "the bytes packed when signing are the reply's bytes"
        );
        let reply = reply_message;
        assert_eq!(reply.mti(), m.mti().response());
        assert!(self.mac_valid(&reply), "reply MAC");
        reply
    }

    /// Sends a request and returns the reply.
    pub fn send(&mut self, r: &Req) -> Message {
        let m = r.message(&self.zpk);
        self.send_msg(m)
    }

    /// Sends a request and returns its response code and authorization code.
    pub fn rc(&mut self, r: &Req) -> (String, String) {
        let reply = self.send(r);
        (
            reply.get_str(39).unwrap_or("").to_owned(),
            reply.get_str(38).unwrap_or("").to_owned(),
        )
    }

    /// The `type` of every clearing line, in order.
    pub fn clearing_kinds(&self) -> Vec<&'static str> {
        self.bank
            .clearing_records()
            .iter()
            .map(|r| r.kind.as_str())
            .collect()
    }

    /// An account's balances.
    pub fn acct(&self, id: AccountId) -> AccountView {
        self.bank.account(id).expect("account")
    }

    /// Asserts that the book balances: every balance is what its postings add up to,
    /// and every currency sums to zero.
    pub fn assert_books(&self) {
        let t = self.bank.book().totals();
        assert!(t.balanced, "book unbalanced: {t:?}");
        if let Err(e) = self.bank.book().verify() {
            panic!("book does not verify: {e}");
        }
    }
}
