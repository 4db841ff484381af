//! Property tests: valid messages round-trip byte-identical in both dialects, and
//! arbitrary bytes never panic the unpacker.

use iso8583::spec::{Class, Encoding, LenType};
use iso8583::{Dialect, ErrorKind, Message, Mti, Part, DIALECT_NAMES};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random value of a field's class and an allowed length, in logical form.
pub fn random_value(dialect: &Dialect, field: u8, rng: &mut StdRng) -> Vec<u8> {
    let spec = dialect.field(field).expect("field in table");
    let units = match spec.len_type {
        LenType::Fixed => usize::from(spec.max),
        _ => rng.gen_range(0..=usize::from(spec.max).min(120)),
    };
    let len = match spec.encoding {
        Encoding::Hex => units / 2,
        _ => units,
    };
    (0..len)
        .map(|i| {
            let pick = |set: &[u8], rng: &mut StdRng| set[rng.gen_range(0..set.len())];
            match spec.class {
                Class::N => pick(b"0123456789", rng),
                Class::An => pick(
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ",
                    rng,
                ),
                Class::Ans => rng.gen_range(0x20..=0x7e),
                Class::Z => pick(b"0123456789=ABCEF", rng),
                Class::Xn if i == 0 => pick(b"CD", rng),
                Class::Xn => pick(b"0123456789", rng),
                Class::B => rng.gen(),
            }
        })
        .collect()
}

/// A random valid message: a random MTI and a random subset of fields 2–128.
pub fn random_message(dialect: &Dialect, rng: &mut StdRng) -> Message {
    let d: [u8; 4] = std::array::from_fn(|_| b'0' + rng.gen_range(0..10u8));
    let mut msg = Message::new(Mti::from_digits(d).expect("digits"));
    let secondary = rng.gen_bool(0.3);
    let count = rng.gen_range(0..24);
    for _ in 0..count {
        let top = if secondary { 128 } else { 64 };
        let field = rng.gen_range(2..=top);
        if !iso8583::spec::is_data_field(field) {
            continue;
        }
        let value = random_value(dialect, field, rng);
        msg.set(field, value);
    }
    msg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_messages_round_trip_byte_identical(seed in any::<u64>(), which in 0usize..2) {
        let dialect = Dialect::by_name(DIALECT_NAMES[which]).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let msg = random_message(dialect, &mut rng);
        let bytes = dialect.pack(&msg).unwrap();
        let back = dialect.unpack(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(dialect.pack(&back).unwrap(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), which in 0usize..2) {
        let dialect = Dialect::by_name(DIALECT_NAMES[which]).unwrap();
        if let Ok(msg) = dialect.unpack(&bytes) {
            // Whatever decodes must re-encode to something that decodes the same.
            let again = dialect.pack(&msg).unwrap();
            prop_assert_eq!(dialect.unpack(&again).unwrap(), msg);
        }
    }

    /// Corrupting one byte of a valid message gives a value or an error, never a panic.
    #[test]
    fn corrupted_valid_messages_never_panic(seed in any::<u64>(), which in 0usize..2, at in any::<usize>(), byte in any::<u8>()) {
        let dialect = Dialect::by_name(DIALECT_NAMES[which]).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bytes = dialect.pack(&random_message(dialect, &mut rng)).unwrap();
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = dialect.unpack(&bytes);
        bytes.truncate(i);
        let _ = dialect.unpack(&bytes);
    }
}

/// Malformed inputs and the error each gives: part, offset and reason.
#[test]
fn malformed_inputs_name_field_and_offset() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "iso87-ascii",
            b"02",
            "MTI at offset 0: needs 4 more bytes, 2 left",
        ),
        (
            "iso87-ascii",
            b"02X04000000000000000",
            "MTI at offset 0: MTI must be four digits",
        ),
        (
            "iso87-ascii",
            b"02004000000000Z00000",
            "bitmap at offset 14: not hexadecimal text",
        ),
        (
            "iso87-ascii",
            b"02004000000000000000201234",
            "field 2 at offset 20: length 20 not allowed (spec: max 19)",
        ),
        (
            "iso87-ascii",
            b"0200400000000000000010123456789",
            "field 2 at offset 22: needs 10 more bytes, 9 left",
        ),
        (
            "iso87-ascii",
            b"020040000000000000001012345X7890",
            "field 2 at offset 22: byte 0x58 at position 5 not allowed in class n",
        ),
        (
            "iso87-ascii",
            b"02004000000000000000101234567890!",
            "trailer at offset 32: 1 unexpected bytes after the last field",
        ),
        (
            "iso87-ascii",
            b"02004000000000000000A01234567890",
            "field 2 at offset 20: length prefix is not a number",
        ),
        (
            "cup-pos",
            &[
                0x02, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x12, 0x3A, 0x40,
            ],
            "field 2 at offset 11: nibble 0xA is not a BCD digit",
        ),
        (
            "cup-pos",
            &[
                0x02, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x12, 0x34, 0x51,
            ],
            "field 2 at offset 11: nibble 0x1 is not a BCD digit",
        ),
        (
            "cup-pos",
            &[0x02, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0],
            "bitmap at offset 10: needs 8 more bytes, 0 left",
        ),
    ];
    for (dialect, bytes, want) in cases {
        let d = Dialect::by_name(dialect).unwrap();
        let err = d.unpack(bytes).expect_err("malformed input must fail");
        assert_eq!(
            err.to_string(),
            *want,
            "{dialect} {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn pack_refuses_values_the_spec_forbids() {
    let d = Dialect::iso87_ascii();
    let mut m = Message::new(Mti::lit("0200"));
    m.set(4, "12345");
    let e = d.pack(&m).unwrap_err();
    assert_eq!(e.part, Part::Field(4));
    assert_eq!(
        e.to_string(),
        "field 4 at offset 20: length 5 not allowed (spec: fixed 12)"
    );
    let mut m = Message::new(Mti::lit("0200"));
    m.set(1, "x");
    assert_eq!(d.pack(&m).unwrap_err().kind, ErrorKind::ReservedField);
    let mut m = Message::new(Mti::lit("0200"));
    m.set(41, "TERM\x00001");
    assert!(matches!(
        d.pack(&m).unwrap_err().kind,
        ErrorKind::BadCharacter {
            byte: 0,
            pos: 4,
            ..
        }
    ));
}

#[test]
fn tertiary_bitmap_is_refused_by_name() {
    let d = Dialect::iso87_ascii();
    let e = d
        .unpack(b"020080000000000000008000000000000000")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field 65 at offset 36: tertiary bitmap (fields 129-192) is not supported"
    );
}

#[test]
fn secondary_bitmap_appears_only_when_needed() {
    let d = Dialect::iso87_ascii();
    let mut m = Message::new(Mti::lit("0800"));
    m.set(11, "000001");
    assert_eq!(&d.pack(&m).unwrap()[4..20], b"0020000000000000");
    m.set(70, "301");
    let bytes = d.pack(&m).unwrap();
    assert_eq!(&bytes[4..36], b"80200000000000000400000000000000");
    assert_eq!(d.unpack(&bytes).unwrap(), m);
}
