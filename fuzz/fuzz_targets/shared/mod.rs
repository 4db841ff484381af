//! Turns fuzz bytes into messages whose field values fit their field's class and
//! length, so the fuzzer reaches past the codec into the state machines.

use iso8583::spec::{Class, LenType};
use iso8583::{Dialect, Message, Mti};

/// Reads bytes off the front of the fuzz input; zeros once it runs out.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn pick<'s, T>(&mut self, set: &'s [T]) -> &'s T {
        &set[usize::from(self.byte()) % set.len()]
    }
}

/// A value of `field`'s class, of a length the field allows (or one past it, rarely).
fn value(dialect: &Dialect, field: u8, b: &mut Bytes<'_>) -> Vec<u8> {
    let Some(spec) = dialect.field(field) else {
        return Vec::new();
    };
    let max = usize::from(spec.max).min(64);
    let len = match spec.len_type {
        LenType::Fixed => usize::from(spec.max),
        _ => usize::from(b.byte()) % (max + 1),
    };
    (0..len)
        .map(|i| {
            let x = b.byte();
            match spec.class {
                Class::N => b'0' + x % 10,
                Class::An => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[usize::from(x) % 42],
                Class::Ans => 0x20 + x % 95,
                Class::Z => b"0123456789=D"[usize::from(x) % 12],
                Class::Xn if i == 0 => b"CD"[usize::from(x) % 2],
                Class::Xn => b'0' + x % 10,
                Class::B => x,
            }
        })
        .collect()
}

/// A request-shaped message: one of `mtis`, then each of `fields` present or not, with
/// `fixed` values (terminal and merchant ids) most of the time.
pub fn message(
    dialect: &Dialect,
    mtis: &[&str],
    fields: &[u8],
    fixed: &[(u8, &str)],
    b: &mut Bytes<'_>,
) -> Message {
    let mut m = Message::new(Mti::lit(*b.pick(mtis)));
    for &f in fields {
        if b.byte() % 3 == 0 {
            continue;
        }
        match fixed.iter().find(|(n, _)| *n == f) {
            Some((_, v)) if b.byte() % 8 != 0 => m.set(f, *v),
            _ => m.set(f, value(dialect, f, b)),
        };
    }
    m
}
