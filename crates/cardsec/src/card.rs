//! Card data: PAN, Luhn, brand by BIN, expiry, track 2, POS entry mode.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::SecError;

pub use domain::luhn_valid;

/// A clear primary account number: 12–19 digits. Secret: it prints masked and is
/// never stored; the rest of posguard keeps only its token and masked form.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pan(String);

impl Pan {
    /// Parses 12–19 digits (Luhn is checked separately: see [`Pan::luhn_ok`]).
    pub fn new(digits: &str) -> Result<Pan, SecError> {
        let ok = (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(SecError::BadPan);
        }
        Ok(Pan(digits.to_owned()))
    }

    /// The digits; callers must not log or store them.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether the check digit is right.
    pub fn luhn_ok(&self) -> bool {
        luhn_valid(&self.0)
    }

    /// The card brand by BIN.
    pub fn brand(&self) -> Brand {
        Brand::of(&self.0)
    }

    /// The first six digits (the BIN), which may be shown.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    /// The masked form, by the one masking rule (`domain::mask`): at most the first six
    /// and last four digits, and always at least six hidden.
    pub fn masked(&self) -> MaskedPan {
        MaskedPan(domain::mask_pan(self.0.as_bytes()))
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked(), f)
    }
}

/// A PAN with every digit the masking rule hides replaced by `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaskedPan(String);

impl MaskedPan {
    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a masked PAN back (as stored); it must have the masking rule's shape for
    /// its length, so it can contain no unmasked middle digits.
    pub fn parse(s: &str) -> Option<MaskedPan> {
        let ok = (12..=19).contains(&s.len()) && domain::mask::is_masked_pan(s);
        ok.then(|| MaskedPan(s.to_owned()))
    }
}

impl fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Card brand, from the BIN ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    /// Visa: 4.
    Visa,
    /// Mastercard: 51–55, 2221–2720.
    Mastercard,
    /// American Express: 34, 37.
    Amex,
    /// JCB: 3528–3589.
    Jcb,
    /// Discover: 6011, 644–649, 65.
    Discover,
    /// UnionPay: 62, 16–19 digits.
    UnionPay,
    /// Anything else.
    Unknown,
}

impl Brand {
    /// The brand of a PAN (or a prefix of at least 6 digits).
    pub fn of(digits: &str) -> Brand {
        let prefix = |n: usize| {
            digits
                .get(..n)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
        match () {
            _ if digits.starts_with('4') => Brand::Visa,
            _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Brand::Mastercard,
            _ if p2 == 34 || p2 == 37 => Brand::Amex,
            _ if (3528..=3589).contains(&p4) => Brand::Jcb,
            _ if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 => Brand::Discover,
            _ if p2 == 62 && (16..=19).contains(&digits.len()) => Brand::UnionPay,
            _ => Brand::Unknown,
        }
    }

    /// The brand's name.
    pub fn name(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Jcb => "jcb",
            Brand::Discover => "discover",
            Brand::UnionPay => "unionpay",
            Brand::Unknown => "unknown",
        }
    }
}

/// A card expiry month (field 14 or track 2, `YYMM`): valid through the end of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    /// Four-digit year (20YY).
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
}

impl Expiry {
    /// Parses `YYMM`.
    pub fn parse(yymm: &str) -> Option<Expiry> {
        if yymm.len() != 4 || !yymm.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = 2000 + yymm[..2].parse::<u16>().ok()?;
        let month = yymm[2..].parse::<u8>().ok()?;
        (1..=12).contains(&month).then_some(Expiry { year, month })
    }

    /// Whether the card is still valid in the given calendar month (the caller's clock).
    pub fn valid_in(&self, year: u16, month: u8) -> bool {
        (year, month) <= (self.year, self.month)
    }

    /// `YYMM` text.
    pub fn to_yymm(&self) -> String {
        format!("{:02}{:02}", self.year % 100, self.month)
    }
}

/// Parsed track 2: PAN, expiry, service code, discretionary data. Secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Track2 {
    pan: Pan,
    #[zeroize(skip)]
    expiry: Option<Expiry>,
    service_code: String,
    discretionary: String,
    /// The track as read, for forwarding to the issuer.
    text: String,
}

impl Track2 {
    /// Parses `PAN = YYMM service-code discretionary` (separator `=` or `D`), ≤ 37 chars.
    pub fn parse(s: &str) -> Result<Track2, SecError> {
        if s.len() > 37 {
            return Err(SecError::BadTrack2("longer than 37 characters"));
        }
        let sep = s
            .find(['=', 'D'])
            .ok_or(SecError::BadTrack2("no separator"))?;
        let pan = Pan::new(&s[..sep]).map_err(|_| SecError::BadTrack2("PAN part"))?;
        let rest = &s[sep + 1..];
        if !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SecError::BadTrack2("non-digit after separator"));
        }
        if rest.len() < 7 {
            return Err(SecError::BadTrack2("expiry and service code missing"));
        }
        let expiry = Expiry::parse(&rest[..4]);
        Ok(Track2 {
            pan,
            expiry,
            service_code: rest[4..7].to_owned(),
            discretionary: rest[7..].to_owned(),
            text: s.to_owned(),
        })
    }

    /// The track as read (secret: it goes only into the issuer link's field 35).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The PAN.
    pub fn pan(&self) -> &Pan {
        &self.pan
    }

    /// The expiry, if it is a valid month.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// The three-digit service code.
    pub fn service_code(&self) -> &str {
        &self.service_code
    }

    /// Whether the card has a chip (service code starting 2 or 6).
    pub fn is_chip_card(&self) -> bool {
        self.service_code.starts_with(['2', '6'])
    }
}

impl fmt::Debug for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Track2({}=[redacted])", self.pan.masked())
    }
}

impl fmt::Display for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How the PAN was read (field 22 positions 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanEntry {
    /// 01: keyed by hand.
    Manual,
    /// 02: magnetic stripe.
    Magstripe,
    /// 05: contact chip.
    Chip,
    /// 07: contactless chip.
    ContactlessChip,
    /// 80: magstripe read after the chip failed (fallback).
    Fallback,
    /// 90: full magnetic stripe.
    FullMagstripe,
    /// 91: contactless magstripe.
    ContactlessMagstripe,
    /// Any other code.
    Unknown,
}

/// Field 22: how the PAN was read and whether the terminal can take a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMode {
    /// How the PAN was read.
    pub pan_entry: PanEntry,
    /// Position 3 = 1: the terminal can accept a PIN.
    pub pin_capable: bool,
}

impl EntryMode {
    /// Reads field 22 (three digits).
    pub fn parse(field22: &str) -> Option<EntryMode> {
        if field22.len() != 3 || !field22.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let pan_entry = match &field22[..2] {
            "01" => PanEntry::Manual,
            "02" => PanEntry::Magstripe,
            "05" => PanEntry::Chip,
            "07" => PanEntry::ContactlessChip,
            "80" => PanEntry::Fallback,
            "90" => PanEntry::FullMagstripe,
            "91" => PanEntry::ContactlessMagstripe,
            _ => PanEntry::Unknown,
        };
        Some(EntryMode {
            pan_entry,
            pin_capable: &field22[2..] == "1",
        })
    }

    /// Whether the card was read from its stripe (any magstripe mode, incl. fallback).
    pub fn is_magstripe(&self) -> bool {
        matches!(
            self.pan_entry,
            PanEntry::Magstripe
                | PanEntry::Fallback
                | PanEntry::FullMagstripe
                | PanEntry::ContactlessMagstripe
        )
    }

    /// Whether the card was read from its chip.
    pub fn is_chip(&self) -> bool {
        matches!(self.pan_entry, PanEntry::Chip | PanEntry::ContactlessChip)
    }
}
