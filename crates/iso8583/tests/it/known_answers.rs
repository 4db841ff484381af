//! Known-answer messages from `test_data/known_answers.txt`, decoded field by field
//! and re-encoded byte-identical.

use expect_test::{expect, Expect};
use iso8583::frame::{CupEnvelope, FrameDecoder, DEFAULT_MAX_FRAME};
use iso8583::subfields::describe;
use iso8583::Dialect;

use crate::render;

struct Vector {
    name: String,
    dialect: &'static Dialect,
    framed: bool,
    bytes: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../../test_data/known_answers.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Vector {
                name: cols[0].to_owned(),
                dialect: Dialect::by_name(cols[1]).expect("dialect"),
                framed: cols[2] == "yes",
                bytes: hex::decode(cols[3]).expect("hex"),
            }
        })
        .collect()
}

fn check(name: &str, expect: Expect) {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == name)
        .expect("vector present");
    let mut out = String::new();
    let iso = if v.framed {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        dec.feed(&v.bytes);
        let frame = dec
            .next_frame()
            .expect("frame")
            .expect("whole frame")
            .to_vec();
        assert_eq!(dec.pending(), 0);
        let env = CupEnvelope::split(&frame).expect("envelope");
        out.push_str(&format!(
            "tpdu = {} header = {}\n",
            hex::encode_upper(env.tpdu.to_bytes()),
            hex::encode_upper(env.header.0)
        ));
        env.message.to_vec()
    } else {
        v.bytes.clone()
    };
    let msg = v.dialect.unpack(&iso).expect("decodes");
    out.push_str(&render(v.dialect, &msg));
    for (f, subs) in describe(&msg) {
        for (k, val) in subs {
            out.push_str(&format!("  {k} = {val}  (field {f})\n"));
        }
    }
    expect.assert_eq(&out);
    assert_eq!(
        v.dialect.pack(&msg).expect("re-encodes"),
        iso,
        "{name} re-encodes byte-identical"
    );
}

#[test]
fn pyiso8583_readme_example() {
    check(
        "pyiso8583_readme",
        expect![[r#"
            mti = 0200
              2 n    = 1234567890
        "#]],
    );
}

#[test]
fn unionpay_sale_frame_decodes_field_by_field() {
    check(
        "cup_pos_sale",
        expect![[r#"
            tpdu = 6000030000 header = 603210320072
            mti = 0200
              3 n    = 000000
              4 n    = 000000001234
             11 n    = 000002
             22 n    = 030
             25 n    = 99
             41 ans  = 00000001
             42 ans  = 952718182217875
             49 an   = 156
             60 n    = 2600000100060000000
             62 b    = 5F01123238343431323334353637383930313233345F03063136303033365F04063230303832365C023031
             64 b    = 4233413039324145
              60.1 = 26  (field 60)
              60.2 = 000001  (field 60)
              60.3 = 000  (field 60)
              60.4 = 60000000  (field 60)
        "#]],
    );
}
