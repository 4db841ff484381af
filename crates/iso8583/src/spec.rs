//! Field specifications: what each data element holds and how a dialect writes it.
//!
//! The tables themselves are data (`tables/*.txt`), read once by [`parse_table`].

use std::fmt;

/// What characters (or bytes) a field's value may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Decimal digits only.
    N,
    /// Letters, digits and spaces (ISO 8583 pads fixed `an` fields with spaces).
    An,
    /// Printable ASCII (0x20–0x7E).
    Ans,
    /// Track data: digits and the separator (`=`, or `D` in ASCII dialects), and the
    /// hex nibbles `A`–`F` a track encrypted under the terminal's track key carries (its
    /// ciphertext can be any nibble; the card parser checks a clear track).
    Z,
    /// An amount with a sign: `C` or `D` followed by digits.
    Xn,
    /// Arbitrary bytes (PIN blocks, MACs, ICC data, key blocks).
    B,
}

impl Class {
    /// Whether `byte` may appear at position `pos` of a value of this class.
    #[inline]
    pub fn allows(self, byte: u8, pos: usize) -> bool {
        match self {
            Class::N => byte.is_ascii_digit(),
            Class::An => byte.is_ascii_alphanumeric() || byte == b' ',
            Class::Ans => (0x20..=0x7e).contains(&byte),
            Class::Z => byte.is_ascii_digit() || byte == b'=' || (b'A'..=b'F').contains(&byte),
            Class::Xn => {
                if pos == 0 {
                    byte == b'C' || byte == b'D'
                } else {
                    byte.is_ascii_digit()
                }
            }
            Class::B => true,
        }
    }

    /// Whether values of this class are text (as opposed to raw bytes).
    pub fn is_text(self) -> bool {
        self != Class::B
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::N => "n",
            Class::An => "an",
            Class::Ans => "ans",
            Class::Z => "z",
            Class::Xn => "xn",
            Class::B => "b",
        })
    }
}

/// Whether a field has a fixed length or a length prefix of two or three digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenType {
    /// Always exactly `max` units.
    Fixed,
    /// A two-digit length prefix (LLVAR).
    Ll,
    /// A three-digit length prefix (LLLVAR).
    Lll,
}

/// How a field's value is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One ASCII byte per character.
    Ascii,
    /// Raw bytes as uppercase hexadecimal characters (two per byte).
    Hex,
    /// Raw bytes as they are.
    Bin,
    /// Packed BCD, left-aligned: an odd digit count leaves a pad nibble at the end.
    BcdLeft,
    /// Packed BCD, right-aligned: an odd digit count leaves a pad nibble at the start.
    BcdRight,
}

impl Encoding {
    /// Bytes on the wire for `units` length units.
    #[inline]
    pub fn wire_len(self, units: usize) -> usize {
        match self {
            Encoding::BcdLeft | Encoding::BcdRight => units.div_ceil(2),
            _ => units,
        }
    }

    /// Length units (what the prefix counts) for a logical value of `len` bytes.
    #[inline]
    pub fn units_of(self, len: usize) -> usize {
        match self {
            Encoding::Hex => len * 2,
            _ => len,
        }
    }
}

/// One data element's specification in one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field number, 2–128.
    pub field: u8,
    /// Permitted content.
    pub class: Class,
    /// Fixed or variable length.
    pub len_type: LenType,
    /// Exact (fixed) or maximum (variable) length in wire units.
    pub max: u16,
    /// Wire representation.
    pub encoding: Encoding,
    /// Human-readable name, as in the table.
    pub name: &'static str,
}

/// A line of a field table that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field table line {line}: {reason}")]
pub struct TableError {
    /// One-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: String,
}

/// Whether a field number can carry data: 2–128 except 65.
///
/// Field 1 is the secondary bitmap; bit 65 announces a tertiary bitmap (pyiso8583's
/// reading), which posguard does not support.
pub fn is_data_field(field: u8) -> bool {
    (2..=128).contains(&field) && field != 65
}

/// Reads a field table: one line per field, `field class length encoding name`.
///
/// Returns an array indexed by field number. Index 0, 1 (secondary bitmap) and 65
/// (tertiary bitmap indicator) are always `None`; every other field 2–128 must appear
/// exactly once.
pub fn parse_table(text: &'static str) -> Result<Vec<Option<FieldSpec>>, TableError> {
    let mut table: Vec<Option<FieldSpec>> = vec![None; 129];
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| TableError {
            line: i + 1,
            reason,
        };
        let mut rest = line;
        let mut next = |what: &str| {
            let word = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| err(format!("missing {what}")))?;
            let at = rest.find(word).unwrap_or(0) + word.len();
            rest = &rest[at..];
            Ok::<&'static str, TableError>(word)
        };
        let field: u8 = next("field")?
            .parse()
            .map_err(|_| err("bad field number".into()))?;
        let class = match next("class")? {
            "n" => Class::N,
            "an" => Class::An,
            "ans" => Class::Ans,
            "z" => Class::Z,
            "xn" => Class::Xn,
            "b" => Class::B,
            other => return Err(err(format!("unknown class {other:?}"))),
        };
        let len = next("length")?;
        let (len_type, digits) = if let Some(d) = len.strip_prefix("LLL") {
            (LenType::Lll, d)
        } else if let Some(d) = len.strip_prefix("LL") {
            (LenType::Ll, d)
        } else {
            (LenType::Fixed, len)
        };
        let max: u16 = digits
            .parse()
            .map_err(|_| err(format!("bad length {len:?}")))?;
        let encoding = match next("encoding")? {
            "ascii" => Encoding::Ascii,
            "hex" => Encoding::Hex,
            "bin" => Encoding::Bin,
            "bcd-l" => Encoding::BcdLeft,
            "bcd-r" => Encoding::BcdRight,
            other => return Err(err(format!("unknown encoding {other:?}"))),
        };
        let name = rest.trim();
        let limit = match len_type {
            LenType::Fixed => 999,
            LenType::Ll => 99,
            LenType::Lll => 999,
        };
        if !is_data_field(field) {
            return Err(err(format!("field {field} is not a data field")));
        }
        if max == 0 || max > limit {
            return Err(err(format!("length {max} outside 1-{limit}")));
        }
        if encoding == Encoding::Hex && max % 2 != 0 {
            return Err(err("hex fields need an even length".into()));
        }
        let binary = matches!(encoding, Encoding::Hex | Encoding::Bin);
        if binary != (class == Class::B) {
            return Err(err(
                "class b goes with hex or bin encoding, and only with them".into(),
            ));
        }
        if matches!(encoding, Encoding::BcdLeft | Encoding::BcdRight)
            && !matches!(class, Class::N | Class::Z)
        {
            return Err(err("BCD encoding needs class n or z".into()));
        }
        let slot = &mut table[usize::from(field)];
        if slot.is_some() {
            return Err(err(format!("field {field} appears twice")));
        }
        *slot = Some(FieldSpec {
            field,
            class,
            len_type,
            max,
            encoding,
            name,
        });
    }
    if let Some(missing) =
        (2..=128u8).find(|f| is_data_field(*f) && table[usize::from(*f)].is_none())
    {
        return Err(TableError {
            line: 0,
            reason: format!("field {missing} is missing"),
        });
    }
    Ok(table)
}
