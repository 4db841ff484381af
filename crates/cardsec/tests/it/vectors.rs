//! Every known-answer vector of `test_data/vectors.txt`.

use std::collections::HashMap;

use cardsec::{
    check_value, cup_ecb_mac, x9_19_mac, x9_9_mac, EncryptedPinBlock, Key, Pan, Pin, PinBlock,
};

fn vectors() -> Vec<(String, HashMap<String, String>)> {
    include_str!("../../test_data/vectors.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split('|');
            let kind = parts.next().expect("kind").to_owned();
            let fields = parts
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("name=value");
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            (kind, fields)
        })
        .collect()
}

fn data(f: &HashMap<String, String>) -> Vec<u8> {
    match (f.get("ascii"), f.get("hex")) {
        (Some(a), _) => a.as_bytes().to_vec(),
        (_, Some(h)) => hex::decode(h).expect("hex"),
        _ => panic!("vector without data"),
    }
}

fn up(b: &[u8]) -> String {
    hex::encode_upper(b)
}

#[test]
fn every_known_answer_vector_passes() {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (kind, f) in vectors() {
        let key = |name: &str| Key::from_hex(&f[name]).expect("key");
        match kind.as_str() {
            "pin0" => {
                let pan = Pan::new(&f["pan"]).expect("pan");
                let pin = Pin::new(&f["pin"]).expect("pin");
                let block = PinBlock::format0(&pin, &pan);
                assert_eq!(up(block.expose()), f["clear"], "format 0 of {}", f["pan"]);
                assert_eq!(
                    block.pin(&pan).expect("parses back").expose(),
                    f["pin"].as_bytes()
                );
                if let Some(enc) = f.get("enc") {
                    let e = block.encrypt(&key("key"));
                    assert_eq!(up(&e.0), *enc);
                    let back = EncryptedPinBlock(e.0).decrypt(&key("key"));
                    assert_eq!(up(back.expose()), f["clear"]);
                }
            }
            "x919" => assert_eq!(
                up(&x9_19_mac(&key("key"), &data(&f))),
                f["mac"],
                "X9.19 {f:?}"
            ),
            "x99" => assert_eq!(up(&x9_9_mac(&key("key"), &data(&f))), f["mac"], "X9.9"),
            "kcv" => {
                let k = key("key");
                assert_eq!(up(&check_value(&k, 4)), f["kcv"]);
                assert_eq!(up(&check_value(&k, 3)), f["kcv"][..6]);
            }
            "unwrap" => {
                let mut b = hex::decode(&f["enc"]).expect("hex");
                key("tmk").decrypt_ecb(&mut b).expect("decrypt");
                assert_eq!(up(&b), f["clear"]);
                let tak = Key::from_bytes(&b).expect("key");
                assert_eq!(up(&check_value(&tak, 4)), f["kcv"]);
            }
            "cupmac" => {
                let frame = hex::decode(&f["frame"]).expect("hex");
                // 2-byte length, 5-byte TPDU, 6-byte header; field 64 is the last 8 bytes.
                let iso = &frame[13..];
                let (input, field64) = iso.split_at(iso.len() - 8);
                let mac = cup_ecb_mac(&key("key"), input);
                assert_eq!(std::str::from_utf8(&mac).expect("ascii"), f["mac"]);
                assert_eq!(field64, f["mac"].as_bytes());
            }
            other => panic!("unknown vector kind {other}"),
        }
        *counts.entry(kind).or_default() += 1;
    }
    let mut summary: Vec<_> = counts.into_iter().collect();
    summary.sort();
    assert_eq!(
        format!("{summary:?}"),
        r#"[("cupmac", 1), ("kcv", 2), ("pin0", 5), ("unwrap", 1), ("x919", 6), ("x99", 1)]"#
    );
}

#[test]
fn pin_block_rules() {
    assert!(Pin::new("123").is_err());
    assert!(Pin::new("1234567890123").is_err());
    assert!(Pin::new("12a4").is_err());
    let pan = Pan::new("4111111111111111").unwrap();
    // A block whose padding is not F is refused (a wrong key gives such blocks).
    let mut bad = *PinBlock::format0(&Pin::new("1234").unwrap(), &pan).expose();
    bad[7] ^= 0x01;
    assert!(PinBlock::from_bytes(bad).pin(&pan).is_err());
}
