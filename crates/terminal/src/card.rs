//! The card a terminal reads: how it was presented and what goes into fields 2, 14, 22, 35 and 52.

use std::fmt;

use cardsec::{encrypt_track, Key, Pan, Pin, PinBlock};
use iso8583::Message;

use crate::TerminalError;

/// Field 53 of a request whose track 2 is encrypted: PIN block format 0 with the PAN
/// (`1`), double-length keys (`6`), track data encrypted (`1`), the rest reserved.
pub const TRACK_ENCRYPTED: &str = "1610000000000000";

/// How the card was presented to the terminal (field 22 positions 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// Contact chip (`05`).
    Chip,
    /// Contactless chip (`07`).
    Contactless,
    /// Magnetic stripe (`02`).
    Magstripe,
    /// Magnetic stripe after the chip failed (`80`).
    Fallback,
    /// PAN keyed by hand (`01`).
    Manual,
}

impl EntryKind {
    /// Field 22 for this entry mode; position 3 says whether a PIN can be taken.
    pub fn field22(self, pin_entered: bool) -> &'static str {
        match self {
            EntryKind::Chip => "051",
            EntryKind::Contactless => "071",
            EntryKind::Magstripe => "021",
            EntryKind::Fallback => "801",
            EntryKind::Manual if pin_entered => "011",
            EntryKind::Manual => "012",
        }
    }
}

/// A card as the simulator presents it: PAN, optional PIN, expiry, service code, entry mode.
///
/// The PAN and PIN are secrets: `Debug` shows the masked PAN and never the PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    /// The primary account number, 12–19 digits.
    pub pan: String,
    /// The PIN the cardholder types, if any (4–12 digits).
    pub pin: Option<String>,
    /// Expiry `YYMM`.
    pub expiry: String,
    /// Three-digit service code (`201`/`620` chip, `101` magstripe only).
    pub service_code: String,
    /// How the card is presented.
    pub entry: EntryKind,
}

impl Card {
    /// A card with the given PAN, PIN, expiry and entry mode, service code `201`.
    pub fn new(pan: &str, pin: Option<&str>, expiry: &str, entry: EntryKind) -> Card {
        Card {
            pan: pan.to_owned(),
            pin: pin.map(str::to_owned),
            expiry: expiry.to_owned(),
            service_code: "201".to_owned(),
            entry,
        }
    }

    /// The masked PAN (the masking rule of `domain::mask`), safe to show.
    pub fn masked_pan(&self) -> String {
        match Pan::new(&self.pan) {
            Ok(p) => p.masked().as_str().to_owned(),
            Err(_) => "[invalid PAN]".to_owned(),
        }
    }

    /// Track 2 as the terminal reads it: `PAN=YYMM` service code, discretionary data.
    fn track2(&self) -> String {
        let mut t = format!("{}={}{}", self.pan, self.expiry, self.service_code);
        let room = 37usize.saturating_sub(t.len()).min(5);
        t.extend(std::iter::repeat_n('0', room));
        t
    }

    fn checked(&self) -> Result<Pan, TerminalError> {
        let pan =
            Pan::new(&self.pan).map_err(|_| TerminalError::Card("PAN must be 12-19 digits"))?;
        let expiry_ok = self.expiry.len() == 4 && self.expiry.bytes().all(|b| b.is_ascii_digit());
        if !expiry_ok {
            return Err(TerminalError::Card("expiry must be YYMM"));
        }
        let sc_ok =
            self.service_code.len() == 3 && self.service_code.bytes().all(|b| b.is_ascii_digit());
        if !sc_ok {
            return Err(TerminalError::Card("service code must be 3 digits"));
        }
        Ok(pan)
    }

    /// Writes field 2 (manual entry) or 35 (anything read from the card); with a track
    /// key, track 2 goes encrypted under it and field 53 says so (position 3 `1`).
    pub(crate) fn write_pan(
        &self,
        msg: &mut Message,
        tdk: Option<&Key>,
    ) -> Result<(), TerminalError> {
        self.checked()?;
        if self.entry == EntryKind::Manual {
            msg.set(2, &self.pan);
        } else if let Some(tdk) = tdk {
            let track = encrypt_track(tdk, &self.track2())
                .map_err(|_| TerminalError::Card("track 2 too short to encrypt"))?;
            msg.set(35, track);
            msg.set(53, TRACK_ENCRYPTED);
        } else {
            msg.set(35, self.track2());
        }
        Ok(())
    }

    /// Writes 2 or 35, 14, 22 and — when a PIN was entered — 52 under the PIN key.
    pub(crate) fn write_presentment(
        &self,
        msg: &mut Message,
        pik: &Key,
        tdk: Option<&Key>,
    ) -> Result<(), TerminalError> {
        let pan = self.checked()?;
        self.write_pan(msg, tdk)?;
        msg.set(14, &self.expiry);
        msg.set(22, self.entry.field22(self.pin.is_some()));
        if let Some(digits) = &self.pin {
            let pin =
                Pin::new(digits).map_err(|_| TerminalError::Card("PIN must be 4-12 digits"))?;
            let block = PinBlock::format0(&pin, &pan).encrypt(pik);
            msg.set(52, block.0);
        }
        Ok(())
    }
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("pan", &self.masked_pan())
            .field("pin", &self.pin.as_ref().map(|_| "[redacted]"))
            .field("expiry", &self.expiry)
            .field("service_code", &self.service_code)
            .field("entry", &self.entry)
            .finish()
    }
}
