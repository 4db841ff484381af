//! Dialects: a field table plus how the MTI, bitmaps and length prefixes are written.
//!
//! One generic packer and unpacker reads the table; nothing here is specific to a
//! field number except field 1 (the secondary bitmap).

use std::sync::LazyLock;

use crate::error::{Error, ErrorKind, Part};
use crate::message::{Message, Mti};
use crate::spec::{parse_table, Class, Encoding, FieldSpec, LenType};

/// How the MTI, bitmaps and length prefixes of a dialect are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadEncoding {
    /// MTI as 4 ASCII digits, bitmaps as 16 hex characters, prefixes as ASCII digits.
    Ascii,
    /// MTI as 2 BCD bytes, bitmaps as 8 binary bytes, prefixes as BCD (1 byte LL, 2 LLL).
    Binary,
}

/// An ISO 8583 dialect: a name, a head encoding and a field table.
#[derive(Debug)]
pub struct Dialect {
    name: &'static str,
    head: HeadEncoding,
    fields: Vec<Option<FieldSpec>>,
}

static ISO87_ASCII: LazyLock<Dialect> = LazyLock::new(|| {
    Dialect::from_table(
        "iso87-ascii",
        HeadEncoding::Ascii,
        include_str!("../tables/iso87-ascii.txt"),
    )
});
static CUP_POS: LazyLock<Dialect> = LazyLock::new(|| {
    Dialect::from_table(
        "cup-pos",
        HeadEncoding::Binary,
        include_str!("../tables/cup-pos.txt"),
    )
});

/// The names [`Dialect::by_name`] accepts.
pub const DIALECT_NAMES: [&str; 2] = ["iso87-ascii", "cup-pos"];

impl Dialect {
    fn from_table(name: &'static str, head: HeadEncoding, text: &'static str) -> Dialect {
        // The tables are compiled into the binary; a unit test parses both.
        let fields = parse_table(text).unwrap_or_else(|e| panic!("{name} table: {e}"));
        Dialect { name, head, fields }
    }

    /// ISO 8583:1987, all ASCII, byte-compatible with pyiso8583's `default_ascii`.
    pub fn iso87_ascii() -> &'static Dialect {
        &ISO87_ASCII
    }

    /// The UnionPay-style binary POS terminal dialect.
    pub fn cup_pos() -> &'static Dialect {
        &CUP_POS
    }

    /// Looks a dialect up by name (`iso87-ascii` or `cup-pos`).
    pub fn by_name(name: &str) -> Option<&'static Dialect> {
        match name {
            "iso87-ascii" => Some(Dialect::iso87_ascii()),
            "cup-pos" => Some(Dialect::cup_pos()),
            _ => None,
        }
    }

    /// The dialect's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How the MTI, bitmaps and length prefixes are written.
    pub fn head(&self) -> HeadEncoding {
        self.head
    }

    /// The specification of a field, if the number is 2–128.
    pub fn field(&self, field: u8) -> Option<&FieldSpec> {
        self.fields.get(usize::from(field))?.as_ref()
    }

    /// Bytes the MTI occupies on the wire.
    fn mti_len(&self) -> usize {
        match self.head {
            HeadEncoding::Ascii => 4,
            HeadEncoding::Binary => 2,
        }
    }

    /// Bytes one bitmap occupies on the wire.
    fn bitmap_len(&self) -> usize {
        match self.head {
            HeadEncoding::Ascii => 16,
            HeadEncoding::Binary => 8,
        }
    }

    /// Bytes a length prefix occupies on the wire.
    fn prefix_len(&self, t: LenType) -> usize {
        match (self.head, t) {
            (_, LenType::Fixed) => 0,
            (HeadEncoding::Ascii, LenType::Ll) => 2,
            (HeadEncoding::Ascii, LenType::Lll) => 3,
            (HeadEncoding::Binary, LenType::Ll) => 1,
            (HeadEncoding::Binary, LenType::Lll) => 2,
        }
    }

    /// Packs a message into a new buffer.
    pub fn pack(&self, msg: &Message) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        self.pack_into(msg, &mut out)?;
        Ok(out)
    }

    /// Packs a message, appending to `out`. On error `out` is left as it was.
    pub fn pack_into(&self, msg: &Message, out: &mut Vec<u8>) -> Result<(), Error> {
        let base = out.len();
        let r = self.pack_inner(msg, out, base);
        if r.is_err() {
            out.truncate(base);
        }
        r
    }

    fn pack_inner(&self, msg: &Message, out: &mut Vec<u8>, base: usize) -> Result<(), Error> {
        let mut bitmap: u128 = 0;
        for f in msg.field_numbers() {
            let kind = match f {
                1 | 65 => ErrorKind::ReservedField,
                2..=128 => {
                    bitmap |= 1u128 << (128 - u32::from(f));
                    continue;
                }
                _ => ErrorKind::NoSuchField,
            };
            return Err(Error::new(Part::Field(f), 0, kind));
        }
        if bitmap & ((1u128 << 64) - 1) != 0 {
            bitmap |= 1u128 << 127;
        }
        let digits = msg.mti().digits();
        match self.head {
            HeadEncoding::Ascii => out.extend_from_slice(&digits),
            HeadEncoding::Binary => {
                out.push(((digits[0] - b'0') << 4) | (digits[1] - b'0'));
                out.push(((digits[2] - b'0') << 4) | (digits[3] - b'0'));
            }
        }
        let words = if bitmap & (1u128 << 127) != 0 { 2 } else { 1 };
        let bytes = bitmap.to_be_bytes();
        match self.head {
            HeadEncoding::Binary => out.extend_from_slice(&bytes[..8 * words]),
            HeadEncoding::Ascii => push_hex(out, &bytes[..8 * words]),
        }
        for (f, value) in msg.fields() {
            let spec = self.fields[usize::from(f)].as_ref().ok_or_else(|| {
                Error::new(Part::Field(f), out.len() - base, ErrorKind::NoSuchField)
            })?;
            self.pack_field(spec, value, out, base)?;
        }
        Ok(())
    }

    fn pack_field(
        &self,
        spec: &FieldSpec,
        value: &[u8],
        out: &mut Vec<u8>,
        base: usize,
    ) -> Result<(), Error> {
        let at = out.len() - base;
        let err = |kind| Error::new(Part::Field(spec.field), at, kind);
        let units = spec.encoding.units_of(value.len());
        check_len(spec, units).map_err(err)?;
        if spec.class.is_text() {
            check_class(spec.class, value).map_err(err)?;
        }
        match (self.head, spec.len_type) {
            (_, LenType::Fixed) => {}
            (HeadEncoding::Ascii, t) => {
                let n = self.prefix_len(t);
                push_decimal(out, units, n);
            }
            (HeadEncoding::Binary, LenType::Ll) => out.push(bcd_byte(units)),
            (HeadEncoding::Binary, LenType::Lll) => {
                out.push(bcd_byte(units / 100));
                out.push(bcd_byte(units % 100));
            }
        }
        match spec.encoding {
            Encoding::Ascii | Encoding::Bin => out.extend_from_slice(value),
            Encoding::Hex => push_hex(out, value),
            Encoding::BcdLeft => push_bcd(out, value, false),
            Encoding::BcdRight => push_bcd(out, value, true),
        }
        Ok(())
    }

    /// Unpacks one message; every byte must belong to it.
    pub fn unpack(&self, b: &[u8]) -> Result<Message, Error> {
        let mut partial = None;
        self.unpack_into(b, &mut partial)
    }

    /// What could be read of a message that does not unpack: its MTI and every field
    /// before the first that fails (`None` when not even the MTI and bitmap read). A
    /// reply to a malformed request echoes these, so the terminal can match it.
    pub fn unpack_partial(&self, b: &[u8]) -> Option<Message> {
        let mut partial = None;
        match self.unpack_into(b, &mut partial) {
            Ok(m) => Some(m),
            Err(_) => partial,
        }
    }

    fn unpack_into(&self, b: &[u8], partial: &mut Option<Message>) -> Result<Message, Error> {
        let mut pos = 0;
        let mti = self.unpack_mti(b)?;
        pos += self.mti_len();
        let mut bitmap = u128::from(self.unpack_bitmap_word(b, pos)?) << 64;
        pos += self.bitmap_len();
        if bitmap & (1u128 << 127) != 0 {
            bitmap |= u128::from(self.unpack_bitmap_word(b, pos)?);
            pos += self.bitmap_len();
        }
        if bitmap & (1u128 << 63) != 0 {
            return Err(Error::new(Part::Field(65), pos, ErrorKind::TertiaryBitmap));
        }
        let mut msg = Message::with_capacity(mti, bitmap.count_ones() as usize, b.len() * 2);
        let mut rest = bitmap & !(1u128 << 127);
        while rest != 0 {
            let f = rest.leading_zeros() as u8 + 1;
            rest &= !(1u128 << (128 - u32::from(f)));
            // Every field 2–128 is in both tables (checked when the table is read).
            let Some(spec) = self.fields[usize::from(f)].as_ref() else {
                *partial = Some(msg);
                return Err(Error::new(Part::Field(f), pos, ErrorKind::NoSuchField));
            };
            match self.unpack_field(spec, b, pos, &mut msg) {
                Ok(next) => pos = next,
                Err(e) => {
                    *partial = Some(msg);
                    return Err(e);
                }
            }
        }
        if pos != b.len() {
            let count = b.len() - pos;
            *partial = Some(msg);
            return Err(Error::new(
                Part::Trailer,
                pos,
                ErrorKind::TrailingBytes { count },
            ));
        }
        Ok(msg)
    }

    fn unpack_mti(&self, b: &[u8]) -> Result<Mti, Error> {
        let n = self.mti_len();
        let raw = take(b, 0, n).map_err(|k| Error::new(Part::Mti, 0, k))?;
        let digits = match self.head {
            HeadEncoding::Ascii => [raw[0], raw[1], raw[2], raw[3]],
            HeadEncoding::Binary => {
                let hi = nibble_digits(raw[0]);
                let lo = nibble_digits(raw[1]);
                [hi[0], hi[1], lo[0], lo[1]]
            }
        };
        Mti::from_digits(digits).ok_or(Error::new(Part::Mti, 0, ErrorKind::BadMti))
    }

    fn unpack_bitmap_word(&self, b: &[u8], pos: usize) -> Result<u64, Error> {
        let raw = take(b, pos, self.bitmap_len()).map_err(|k| Error::new(Part::Bitmap, pos, k))?;
        let mut word = [0u8; 8];
        match self.head {
            HeadEncoding::Binary => word.copy_from_slice(raw),
            HeadEncoding::Ascii => {
                for (i, pair) in raw.chunks_exact(2).enumerate() {
                    word[i] = hex_pair(pair[0], pair[1]).ok_or(Error::new(
                        Part::Bitmap,
                        pos + 2 * i,
                        ErrorKind::BadHex,
                    ))?;
                }
            }
        }
        Ok(u64::from_be_bytes(word))
    }

    fn unpack_prefix(&self, spec: &FieldSpec, b: &[u8], pos: usize) -> Result<usize, ErrorKind> {
        let n = self.prefix_len(spec.len_type);
        let raw = take(b, pos, n)?;
        let mut units = 0usize;
        match self.head {
            HeadEncoding::Ascii => {
                for &c in raw {
                    if !c.is_ascii_digit() {
                        return Err(ErrorKind::BadLengthPrefix);
                    }
                    units = units * 10 + usize::from(c - b'0');
                }
            }
            HeadEncoding::Binary => {
                for &c in raw {
                    let (hi, lo) = (c >> 4, c & 0x0f);
                    if hi > 9 || lo > 9 {
                        return Err(ErrorKind::BadLengthPrefix);
                    }
                    units = units * 100 + usize::from(hi * 10 + lo);
                }
            }
        }
        Ok(units)
    }

    fn unpack_field(
        &self,
        spec: &FieldSpec,
        b: &[u8],
        start: usize,
        msg: &mut Message,
    ) -> Result<usize, Error> {
        let err = |at: usize| move |kind| Error::new(Part::Field(spec.field), at, kind);
        let units = match spec.len_type {
            LenType::Fixed => usize::from(spec.max),
            _ => self.unpack_prefix(spec, b, start).map_err(err(start))?,
        };
        check_len(spec, units).map_err(err(start))?;
        let pos = start + self.prefix_len(spec.len_type);
        let wire = take(b, pos, spec.encoding.wire_len(units)).map_err(err(pos))?;
        let data_start = msg.data_mut().len();
        let data = msg.data_mut();
        match spec.encoding {
            Encoding::Ascii => {
                check_class(spec.class, wire).map_err(err(pos))?;
                data.extend_from_slice(wire);
            }
            Encoding::Bin => data.extend_from_slice(wire),
            Encoding::Hex => {
                for (i, pair) in wire.chunks_exact(2).enumerate() {
                    let byte = hex_pair(pair[0], pair[1]).ok_or(ErrorKind::BadHex);
                    data.push(byte.map_err(err(pos + 2 * i))?);
                }
            }
            Encoding::BcdLeft | Encoding::BcdRight => {
                let right = spec.encoding == Encoding::BcdRight;
                unpack_bcd(wire, units, right, spec.class == Class::Z, data).map_err(err(pos))?;
            }
        }
        msg.push_ordered(spec.field, data_start);
        Ok(pos + wire.len())
    }
}

fn take(b: &[u8], pos: usize, n: usize) -> Result<&[u8], ErrorKind> {
    let available = b.len().saturating_sub(pos);
    if available < n {
        return Err(ErrorKind::Truncated {
            needed: n,
            available,
        });
    }
    Ok(&b[pos..pos + n])
}

fn check_len(spec: &FieldSpec, units: usize) -> Result<(), ErrorKind> {
    let max = usize::from(spec.max);
    let ok = match spec.len_type {
        LenType::Fixed => units == max,
        _ => units <= max,
    } && (spec.encoding != Encoding::Hex || units % 2 == 0);
    if ok {
        return Ok(());
    }
    let spec = match spec.len_type {
        LenType::Fixed => format!("fixed {max}"),
        _ => format!("max {max}"),
    };
    Err(ErrorKind::BadLength { len: units, spec })
}

fn check_class(class: Class, value: &[u8]) -> Result<(), ErrorKind> {
    match value
        .iter()
        .enumerate()
        .find(|(i, c)| !class.allows(**c, *i))
    {
        None => Ok(()),
        Some((pos, &byte)) => {
            let class = match class {
                Class::N => "n",
                Class::An => "an",
                Class::Ans => "ans",
                Class::Z => "z",
                Class::Xn => "xn",
                Class::B => "b",
            };
            Err(ErrorKind::BadCharacter { byte, pos, class })
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    Some((hex_val(hi)? << 4) | hex_val(lo)?)
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn bcd_byte(n: usize) -> u8 {
    (((n / 10) % 10) as u8) << 4 | (n % 10) as u8
}

fn nibble_digits(b: u8) -> [u8; 2] {
    let digit = |n: u8| if n <= 9 { b'0' + n } else { b'?' };
    [digit(b >> 4), digit(b & 0x0f)]
}

/// The nibble for one character of an `n` or `z` value (checked beforehand).
fn bcd_nibble(c: u8) -> u8 {
    match c {
        b'=' | b'D' => 0x0d,
        b'A'..=b'F' => c - b'A' + 10,
        _ => c.wrapping_sub(b'0') & 0x0f,
    }
}

fn push_bcd(out: &mut Vec<u8>, value: &[u8], right_aligned: bool) {
    let odd = value.len() % 2 == 1;
    let mut nibbles = value.iter().map(|&c| bcd_nibble(c));
    if odd && right_aligned {
        let first = nibbles.next().unwrap_or(0);
        out.push(first);
    }
    loop {
        match (nibbles.next(), nibbles.next()) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            (Some(hi), None) => {
                out.push(hi << 4);
                break;
            }
            _ => break,
        }
    }
}

/// Unpacks `digits` BCD digits; the pad nibble of an odd count must be 0 or F.
fn unpack_bcd(
    wire: &[u8],
    digits: usize,
    right_aligned: bool,
    track: bool,
    out: &mut Vec<u8>,
) -> Result<(), ErrorKind> {
    let skip_first = digits % 2 == 1 && right_aligned;
    let total = wire.len() * 2;
    let (first, last) = if skip_first { (1, total) } else { (0, digits) };
    for i in 0..total {
        let byte = wire[i / 2];
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        if i < first || i >= last {
            if nibble != 0 && nibble != 0x0f {
                return Err(ErrorKind::BadBcd { nibble });
            }
            continue;
        }
        match nibble {
            0..=9 => out.push(b'0' + nibble),
            0x0d if track => out.push(b'='),
            // An encrypted track's ciphertext (the separator's nibble is `=` above).
            0x0a..=0x0f if track => out.push(b"0123456789ABCDEF"[usize::from(nibble)]),
            _ => return Err(ErrorKind::BadBcd { nibble }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_parse_and_cover_every_field() {
        for name in DIALECT_NAMES {
            let d = Dialect::by_name(name).unwrap();
            for f in (2..=128).filter(|f| *f != 65) {
                assert!(d.field(f).is_some(), "{name} lacks field {f}");
            }
            assert!(d.field(1).is_none() && d.field(65).is_none() && d.field(129).is_none());
        }
    }

    #[test]
    fn bcd_alignment() {
        let mut out = Vec::new();
        push_bcd(&mut out, b"021", false);
        push_bcd(&mut out, b"001", true);
        assert_eq!(out, [0x02, 0x10, 0x00, 0x01]);
        let mut text = Vec::new();
        unpack_bcd(&out[..2], 3, false, false, &mut text).unwrap();
        unpack_bcd(&out[2..], 3, true, false, &mut text).unwrap();
        assert_eq!(text, b"021001");
        assert!(unpack_bcd(&[0x12, 0x35], 3, false, false, &mut text).is_err());
    }
}
