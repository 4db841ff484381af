//! Security module throughput: MAC verify (UnionPay ECB and X9.19 over a typical sale)
//! and PIN translate, next to one TDES block encryption measured in the same run.
//!
//! Criterion's `thrpt` is operations per second on one core.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use cardsec::{
    Key, KeyKind, KeyLayout, Lmk, MacAlgorithm, Pan, Pin, PinBlock, SecurityModule,
    SoftwareSecurityModule, TerminalKeys,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let lmk = Lmk::from_hex("0123456789ABCDEFFEDCBA9876543210").expect("lmk");
    let hsm = SoftwareSecurityModule::new(lmk, Box::new(ChaCha20Rng::seed_from_u64(1)));
    let tmk_clear = Key::from_hex("70F2A84CCBC2AE8625CBB0F2C22AB923").expect("tmk");
    let tmk = hsm.import_key(KeyKind::Tmk, 1, &tmk_clear).expect("import");
    let zpk = hsm.generate_key(KeyKind::Zpk, 1, 16).expect("zpk");
    let wk = hsm
        .generate_working_keys(&tmk, KeyLayout::Double, 1)
        .expect("keys");
    let term = TerminalKeys::unwrap(&tmk_clear, KeyLayout::Double, &wk.field62).expect("unwrap");
    let sale = vec![0x5au8; 150]; // a typical cup-pos sale is about 150 bytes up to field 63
    let pan = Pan::new("6228480402564890018").expect("pan");
    let block = PinBlock::format0(&Pin::new("147258").expect("pin"), &pan).encrypt(&term.pik);

    let mut g = c.benchmark_group("cardsec");
    g.throughput(Throughput::Elements(1));
    let scheduled = term.mak.cipher();
    g.bench_function("baseline: one TDES block, key scheduled", |b| {
        b.iter(|| {
            let mut blk = [0u8; 8];
            scheduled.encrypt_block(black_box(&mut blk));
            blk
        })
    });
    g.bench_function("baseline: TDES key schedule + one block", |b| {
        b.iter(|| {
            let mut blk = [0u8; 8];
            black_box(&term.mak).encrypt_block(&mut blk);
            blk
        })
    });
    for alg in [MacAlgorithm::CupEcb, MacAlgorithm::X9_19] {
        let mac = alg.compute(&term.mak, &sale);
        g.bench_function(format!("MAC verify {alg:?} (150 bytes)"), |b| {
            b.iter(|| {
                hsm.verify_mac(&wk.mak, alg, black_box(&sale), &mac)
                    .expect("verifies")
            })
        });
    }
    g.bench_function("PIN translate TPK->ZPK", |b| {
        b.iter(|| {
            hsm.translate_pin(&wk.pik, &zpk, &pan, black_box(&block))
                .expect("translates")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
