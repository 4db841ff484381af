//! A scripted fake acquirer written with the same codec and cardsec: it delivers keys,
//! checks MACs and PIN blocks, and answers with MACed replies.

use std::collections::HashMap;

use cardsec::{check_value, cup_ecb_mac, mac_equal, EncryptedPinBlock, Key, Pan, Track2};
use iso8583::frame::{CupEnvelope, CupHeader, Tpdu};
use iso8583::{Dialect, Message};

pub const TMK: &str = "70F2A84CCBC2AE8625CBB0F2C22AB923";
pub const PIK: &str = "E0F4543F3E2A2C5FFC7E5E5A222E3E4D";
pub const MAK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// A request as the host received it.
pub struct Incoming {
    pub tpdu: Tpdu,
    pub header: CupHeader,
    pub raw: Vec<u8>,
    pub msg: Message,
}

impl Incoming {
    pub fn str(&self, field: u8) -> &str {
        self.msg.get_str(field).unwrap_or("")
    }
}

/// Everything a test can script about the host.
pub struct FakeHost {
    pub tmk: Key,
    pub pik: Key,
    pub mak: Key,
    /// The batch the sign-on reply assigns.
    pub batch: u32,
    /// Correct PIN by PAN; a sale with another PIN is declined `55`.
    pub pins: HashMap<String, String>,
    /// PANs declined `51`.
    pub poor: Vec<String>,
    /// Prefix of every RRN (distinguishes hosts sharing a run).
    pub rrn_prefix: u32,
    /// The result digit a 0510 carries: 1 balanced, 2 not balanced.
    pub settle_result: u8,
    /// Terminals whose settlements are answered not balanced whatever `settle_result` says.
    pub unbalanced: Vec<String>,
    next_rrn: u64,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost {
            tmk: Key::from_hex(TMK).unwrap(),
            pik: Key::from_hex(PIK).unwrap(),
            mak: Key::from_hex(MAK).unwrap(),
            batch: 7,
            pins: HashMap::new(),
            poor: Vec::new(),
            rrn_prefix: 0,
            settle_result: 1,
            unbalanced: Vec::new(),
            next_rrn: 0,
        }
    }

    /// Field 62 for layout `003`: each key under the TMK, then its 4-byte check value.
    pub fn field62(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for k in [&self.pik, &self.mak] {
            let mut enc = k.expose().to_vec();
            self.tmk.encrypt_ecb(&mut enc).unwrap();
            out.extend_from_slice(&enc);
            out.extend_from_slice(&check_value(k, 4));
        }
        out
    }

    /// Parses a request frame as the terminal wrote it (length prefix included).
    pub fn receive(&self, frame: &[u8]) -> Incoming {
        let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        assert_eq!(len, frame.len() - 2, "length prefix");
        let env = CupEnvelope::split(&frame[2..]).unwrap();
        Incoming {
            tpdu: env.tpdu,
            header: env.header,
            raw: env.message.to_vec(),
            msg: Dialect::cup_pos().unpack(env.message).unwrap(),
        }
    }

    /// Whether the request's field 64 is the UnionPay ECB MAC under the MAK.
    pub fn mac_ok(&self, req: &Incoming) -> bool {
        let Some(mac) = req.msg.get(64) else {
            return false;
        };
        let n = req.raw.len();
        mac_equal(&cup_ecb_mac(&self.mak, &req.raw[..n - 8]), mac)
    }

    /// The PAN of a request, from field 2 or track 2.
    pub fn pan(&self, req: &Incoming) -> Option<String> {
        if let Some(p) = req.msg.get_str(2) {
            return Some(p.to_owned());
        }
        let t2 = Track2::parse(req.msg.get_str(35)?).ok()?;
        Some(t2.pan().digits().to_owned())
    }

    /// Decrypts field 52 under the PIK and recovers the PIN with the PAN.
    pub fn pin(&self, req: &Incoming) -> Option<String> {
        let block: [u8; 8] = req.msg.get(52)?.try_into().ok()?;
        let pan = Pan::new(&self.pan(req)?).ok()?;
        let clear = EncryptedPinBlock(block).decrypt(&self.pik);
        let pin = clear.pin(&pan).ok()?;
        Some(String::from_utf8(pin.expose().to_vec()).unwrap())
    }

    /// The reply an honest acquirer would send, with field 39 = `rc`.
    pub fn reply(&mut self, req: &Incoming, rc: &str) -> Message {
        let mti = req.msg.mti().response();
        let mut m = Message::new(mti);
        for f in [3, 4, 11, 25, 41, 42, 49, 60] {
            if let Some(v) = req.msg.get(f) {
                m.set(f, v);
            }
        }
        m.set(12, "103000").set(13, "0321").set(32, "48020000");
        m.set(39, rc);
        self.next_rrn += 1;
        m.set(37, format!("{:04}{:08}", self.rrn_prefix, self.next_rrn));
        match mti.as_str() {
            "0810" => {
                m.set(60, format!("00{:06}003", self.batch));
                if rc == "00" {
                    m.set(62, self.field62());
                }
            }
            "0830" | "0410" | "0330" => {}
            "0510" => {
                let result = if self.unbalanced.iter().any(|t| t == req.str(41)) {
                    2
                } else {
                    self.settle_result
                };
                m.set(48, with_result(req.str(48), result));
            }
            _ => {
                if rc == "00" {
                    m.set(38, format!("A{:05}", self.next_rrn % 100_000));
                }
                if req.str(3) == "310000" && rc == "00" {
                    m.set(54, "1002156C000000123456");
                }
            }
        }
        m
    }

    /// Packs a reply for the terminal: MACed unless network management, TPDU swapped.
    /// Returns the frame body (what `FrameDecoder` yields).
    pub fn frame(&self, req: &Incoming, mut reply: Message) -> Vec<u8> {
        let maced = !matches!(reply.mti().as_str(), "0810" | "0830");
        if maced {
            reply.set(64, [0u8; 8]);
        }
        let mut packed = Dialect::cup_pos().pack(&reply).unwrap();
        if maced {
            let n = packed.len();
            let mac = cup_ecb_mac(&self.mak, &packed[..n - 8]);
            packed[n - 8..].copy_from_slice(&mac);
        }
        let mut body = Vec::new();
        CupEnvelope {
            tpdu: req.tpdu.reply(),
            header: req.header,
            message: &packed,
        }
        .write(&mut body);
        body
    }

    /// What the approve-everything acquirer of the fleet test does with one request.
    pub fn answer(&mut self, frame: &[u8]) -> Vec<u8> {
        let req = self.receive(frame);
        let mti = req.msg.mti();
        let rc = if matches!(mti.as_str(), "0800" | "0820") {
            "00"
        } else if !self.mac_ok(&req) {
            "A0"
        } else {
            self.decide(&req)
        };
        let reply = self.reply(&req, rc);
        self.frame(&req, reply)
    }

    fn decide(&self, req: &Incoming) -> &'static str {
        let Some(pan) = self.pan(req) else {
            return "00";
        };
        if self.poor.contains(&pan) && req.msg.get_str(3) == Some("000000") {
            return "51";
        }
        match (self.pins.get(&pan), req.msg.has(52)) {
            (Some(want), true) if self.pin(req).as_ref() != Some(want) => "55",
            _ => "00",
        }
    }
}

/// Field 48 totals with each half's result digit (the 31st) set to `result`.
pub fn with_result(totals: &str, result: u8) -> String {
    totals
        .char_indices()
        .map(|(i, c)| {
            if i % 31 == 30 {
                char::from(b'0' + result)
            } else {
                c
            }
        })
        .collect()
}

/// Renders a request's fields, one per line; secrets (2, 35, 52, 64) as lengths only.
pub fn render(msg: &Message) -> String {
    let mut s = format!("mti {}\n", msg.mti());
    for (f, v) in msg.fields() {
        let shown = match f {
            2 | 35 | 52 | 62 | 64 => format!("[{} bytes]", v.len()),
            _ => String::from_utf8_lossy(v).into_owned(),
        };
        s.push_str(&format!("{f:>3} {shown}\n"));
    }
    s
}
