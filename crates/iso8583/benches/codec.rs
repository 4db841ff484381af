//! Codec throughput: pack, unpack and pack+unpack of a typical sale in each dialect,
//! next to a baseline measured in the same run (copying the same bytes).
//!
//! Criterion reports `thrpt` in messages per second on one core (elements = messages).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use iso8583::{Dialect, Message, Mti};

/// A typical chip sale from a terminal, as the cup-pos dialect carries it.
fn cup_sale() -> Message {
    let mut m = Message::new(Mti::lit("0200"));
    m.set(2, "6228480402564890018")
        .set(3, "000000")
        .set(4, "000000012345")
        .set(11, "000123")
        .set(14, "3012")
        .set(22, "051")
        .set(23, "001")
        .set(25, "00")
        .set(26, "12")
        .set(35, "6228480402564890018=30122011234567890")
        .set(41, "00000001")
        .set(42, "952718182217875")
        .set(49, "156")
        .set(52, [0x6a, 0x1b, 0x22, 0x9c, 0x01, 0x73, 0xfe, 0x44])
        .set(53, "2600000000000000")
        .set(55, [0x9f; 120])
        .set(60, "22000001000601")
        .set(64, [0x42, 0x33, 0x41, 0x30, 0x39, 0x32, 0x41, 0x45]);
    m
}

/// A typical host-to-host 0200 as the iso87-ascii dialect carries it.
fn ascii_sale() -> Message {
    let mut m = Message::new(Mti::lit("0200"));
    m.set(2, "6228480402564890018")
        .set(3, "000000")
        .set(4, "000000012345")
        .set(7, "1121103000")
        .set(11, "000123")
        .set(12, "103000")
        .set(13, "1121")
        .set(14, "3012")
        .set(22, "051")
        .set(25, "00")
        .set(32, "48020000")
        .set(35, "6228480402564890018=30122011234567890")
        .set(37, "532510000123")
        .set(41, "00000001")
        .set(42, "952718182217875")
        .set(43, "POSGUARD DEMO STORE      SHANGHAI    CN ")
        .set(49, "156")
        .set(52, [0x6a, 0x1b, 0x22, 0x9c, 0x01, 0x73, 0xfe, 0x44])
        .set(64, [0x42, 0x33, 0x41, 0x30, 0x39, 0x32, 0x41, 0x45]);
    m
}

fn bench(c: &mut Criterion) {
    for (name, dialect, msg) in [
        ("cup-pos sale", Dialect::cup_pos(), cup_sale()),
        ("iso87-ascii 0200", Dialect::iso87_ascii(), ascii_sale()),
    ] {
        let bytes = dialect.pack(&msg).expect("typical sale packs");
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("baseline: copy bytes", |b| {
            b.iter(|| black_box(black_box(&bytes).to_vec()))
        });
        g.bench_function("pack", |b| {
            let mut out = Vec::with_capacity(512);
            b.iter(|| {
                out.clear();
                dialect.pack_into(black_box(&msg), &mut out).expect("pack");
                black_box(out.len())
            })
        });
        g.bench_function("unpack", |b| {
            b.iter(|| black_box(dialect.unpack(black_box(&bytes)).expect("unpack")))
        });
        g.bench_function("pack+unpack", |b| {
            let mut out = Vec::with_capacity(512);
            b.iter(|| {
                out.clear();
                dialect.pack_into(black_box(&msg), &mut out).expect("pack");
                black_box(dialect.unpack(&out).expect("unpack"))
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
