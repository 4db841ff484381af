//! `posguard iso decode|encode`.

use expect_test::{expect, Expect};

use crate::run;

/// The UnionPay sale frame of shared/spec/iso8583.md section 6.
const CUP_SALE: &str = "007f600003000060321032007202003020048000c08015000000000000001234000002030099303030303030303139353237313831383232313738373531353600192600000100060000000000435f01123238343431323334353637383930313233345f03063136303033365f04063230303832365c0230314233413039324145";

fn check(args: &[&str], stdin: &str, expect: Expect) {
    let (code, out, err) = run(args, stdin.as_bytes());
    expect.assert_eq(&format!(
        "exit {code}\n{}{err}",
        String::from_utf8_lossy(&out)
    ));
}

#[test]
fn decode_unionpay_frame_masks_secrets() {
    check(
        &["iso", "decode", "--dialect", "cup-pos", "--framed", "--hex"],
        CUP_SALE,
        expect![[r#"
            exit 0
            {"dialect":"cup-pos","tpdu":"6000030000","header":"603210320072","mti":"0200","fields":{"3":"000000","4":"000000001234","11":"000002","22":"030","25":"99","41":"00000001","42":"952718182217875","49":"156","60":"2600000100060000000","62":"5F01123238343431323334353637383930313233345F03063136303033365F04063230303832365C023031","64":"****************"},"subfields":{"60":{"60.1":"26","60.2":"000001","60.3":"000","60.4":"60000000"}},"masked":[64]}
        "#]],
    );
}

#[test]
fn decode_masks_pan_track_and_pin() {
    let msg = r#"{"mti":"0200","fields":{"2":"6228480402564890018","35":"6228480402564890018=30122011234","52":"0123456789ABCDEF","64":"1122334455667788"}}"#;
    let (code, hex, _) = run(
        &["iso", "encode", "--dialect", "cup-pos", "--framed", "--hex"],
        msg.as_bytes(),
    );
    assert_eq!(code, 0);
    check(
        &["iso", "decode", "--dialect", "cup-pos", "--framed", "--hex"],
        &String::from_utf8(hex).unwrap(),
        expect![[r#"
            exit 0
            {"dialect":"cup-pos","tpdu":"6000000000","header":"600000000000","mti":"0200","fields":{"2":"622848*********0018","35":"622848*********0018=***********","52":"****************","64":"****************"},"masked":[2,35,52,64]}
        "#]],
    );
}

#[test]
fn decode_then_encode_is_byte_identical() {
    for (dialect, framed, hex) in [
        ("cup-pos", true, CUP_SALE.to_owned()),
        (
            "iso87-ascii",
            false,
            hex::encode("02004000000000000000101234567890"),
        ),
    ] {
        let mut args = vec![
            "iso",
            "decode",
            "--dialect",
            dialect,
            "--hex",
            "--show-secrets",
        ];
        if framed {
            args.push("--framed");
        }
        let (code, json, err) = run(&args, hex.as_bytes());
        assert_eq!(code, 0, "{err}");
        args[1] = "encode";
        args.retain(|a| *a != "--show-secrets");
        let (code, back, err) = run(&args, &json);
        assert_eq!(code, 0, "{err}");
        assert_eq!(String::from_utf8(back).unwrap().trim(), hex.to_uppercase());
    }
}

#[test]
fn binary_input_and_several_frames() {
    let one = hex::decode(CUP_SALE).unwrap();
    let two = [one.clone(), one].concat();
    let (code, out, err) = run(&["iso", "decode", "--dialect", "cup-pos", "--framed"], &two);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
}

/// Bad input exits 2 with one line naming the field and offset.
#[test]
fn bad_input_exits_2_with_one_line() {
    let cases: Vec<(&[&str], &str, Expect)> = vec![
        (
            &["iso", "decode", "--dialect", "iso87-ascii"],
            "0200400000000000000020123",
            expect![[r#"
                exit 2
                error: message 1: field 2 at offset 20: length 20 not allowed (spec: max 19)
            "#]],
        ),
        (
            &["iso", "decode", "--dialect", "cup-pos", "--framed", "--hex"],
            &CUP_SALE[..200],
            expect![[r#"
                exit 2
                error: 100 bytes of an incomplete frame at the end
            "#]],
        ),
        (
            &["iso", "decode", "--dialect", "cup-pos", "--hex"],
            "02 00 zz",
            expect![[r#"
                exit 2
                error: line 1: not hexadecimal: Invalid character 'z' at position 4
            "#]],
        ),
        (
            &[
                "iso",
                "decode",
                "--dialect",
                "cup-pos",
                "--framed",
                "--hex",
                "--max-frame",
                "100",
            ],
            CUP_SALE,
            expect![[r#"
                exit 2
                error: frame 1: frame of 127 bytes exceeds the maximum of 100
            "#]],
        ),
        (
            &["iso", "encode", "--dialect", "cup-pos"],
            r#"{"mti":"0200","fields":{"4":"12AB"}}"#,
            expect![[r#"
                exit 2
                error: message 1: field 4 at offset 10: length 4 not allowed (spec: fixed 12)
            "#]],
        ),
        (
            &["iso", "encode", "--dialect", "cup-pos"],
            r#"{"mti":"0200","fields":{"2":"622848*********0018"}}"#,
            expect![[r#"
                exit 2
                error: message 1: field 2 at offset 10: byte 0x2A at position 6 not allowed in class n
            "#]],
        ),
        (
            &["iso", "encode", "--dialect", "iso87-ascii"],
            r#"{"mti":"0200","fields":{"65":"00"}}"#,
            expect![[r#"
                exit 2
                error: message 1: field 65 is not a data field
            "#]],
        ),
    ];
    for (args, stdin, expect) in cases {
        check(args, stdin, expect);
    }
}
