//! Sign-on key delivery, MACs with delivered keys, PIN translation, rotation.

use cardsec::{
    check_value, EncryptedPinBlock, Key, KeyDelivery, KeyKind, KeyLayout, MacAlgorithm, Pan, Pin,
    PinBlock, SecError, SecurityModule, TerminalKeys, WrappedKey,
};

use crate::module;

#[test]
fn sign_on_delivery_mac_and_pin_translation_round_trip() {
    let hsm = module(1);
    // Key ceremony: the terminal's TMK is injected in clear at the terminal and
    // imported under the LMK at the acquirer; the zone PIN key is agreed with the issuer.
    let tmk_clear = Key::from_hex("70F2A84CCBC2AE8625CBB0F2C22AB923").unwrap();
    let zpk_clear = Key::from_hex("E0F4543F3E2A2C5FFC7E5E5A222E3E4D").unwrap();
    let tmk = hsm.import_key(KeyKind::Tmk, 1, &tmk_clear).unwrap();
    let zpk = hsm.import_key(KeyKind::Zpk, 1, &zpk_clear).unwrap();

    for layout in [
        KeyLayout::Single,
        KeyLayout::Double,
        KeyLayout::DoubleWithTrack,
    ] {
        let wk = hsm.generate_working_keys(&tmk, layout, 7).unwrap();
        assert_eq!(wk.field62.len(), layout.block_len());
        assert_eq!(wk.tdk.is_some(), layout == KeyLayout::DoubleWithTrack);
        // Terminal side: unwrap field 62 with the clear TMK; check values are verified.
        let term = TerminalKeys::unwrap(&tmk_clear, layout, &wk.field62).unwrap();
        assert!(term.pik.has_odd_parity() && term.mak.has_odd_parity());

        // A MAC the terminal makes with the delivered MAK verifies at the switch.
        let data = b"0200 sale from terminal 00000001";
        for alg in [
            MacAlgorithm::CupEcb,
            MacAlgorithm::X9_19,
            MacAlgorithm::X9_9,
        ] {
            let mac = alg.compute(&term.mak, data);
            hsm.verify_mac(&wk.mak, alg, data, &mac).unwrap();
            let mut tampered = data.to_vec();
            tampered[0] ^= 1;
            assert_eq!(
                hsm.verify_mac(&wk.mak, alg, &tampered, &mac),
                Err(SecError::MacMismatch)
            );
        }

        // A PIN block made with the delivered PIK translates to the ZPK and decrypts
        // there to the same clear block.
        let pan = Pan::new("6228480402564890018").unwrap();
        let clear = PinBlock::format0(&Pin::new("147258").unwrap(), &pan);
        let under_pik = clear.encrypt(&term.pik);
        let under_zpk = hsm.translate_pin(&wk.pik, &zpk, &pan, &under_pik).unwrap();
        assert_ne!(under_zpk.0, under_pik.0);
        assert_eq!(under_zpk.decrypt(&zpk_clear).expose(), clear.expose());
        // The issuer verifies it against the stored verification value.
        let pvv = hsm.pin_verification_value(&pan, &Pin::new("147258").unwrap());
        assert!(hsm.verify_pin(&zpk, &pan, &under_zpk, &pvv).unwrap());
        let wrong = PinBlock::format0(&Pin::new("147259").unwrap(), &pan).encrypt(&term.pik);
        let wrong = hsm.translate_pin(&wk.pik, &zpk, &pan, &wrong).unwrap();
        assert!(!hsm.verify_pin(&zpk, &pan, &wrong, &pvv).unwrap());
    }
}

#[test]
fn tampered_key_block_and_wrong_kinds_are_refused() {
    let hsm = module(2);
    let tmk_clear = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let tmk = hsm.import_key(KeyKind::Tmk, 1, &tmk_clear).unwrap();
    let wk = hsm
        .generate_working_keys(&tmk, KeyLayout::Double, 1)
        .unwrap();
    let mut block = wk.field62.clone();
    block[3] ^= 0xff;
    assert_eq!(
        TerminalKeys::unwrap(&tmk_clear, KeyLayout::Double, &block).unwrap_err(),
        SecError::CheckValueMismatch
    );
    assert!(matches!(
        TerminalKeys::unwrap(&tmk_clear, KeyLayout::DoubleWithTrack, &wk.field62),
        Err(SecError::KeyBlockLength { want: 60, got: 40 })
    ));
    // A MAC key presented as a PIN key, or a PIN key as a MAC key, is refused.
    let pan = Pan::new("4111111111111111").unwrap();
    let zpk = hsm.generate_key(KeyKind::Zpk, 1, 16).unwrap();
    let blk = EncryptedPinBlock([0; 8]);
    assert!(matches!(
        hsm.translate_pin(&wk.mak, &zpk, &pan, &blk),
        Err(SecError::WrongKeyKind { .. })
    ));
    assert!(matches!(
        hsm.generate_mac(&wk.pik, MacAlgorithm::X9_19, b"x"),
        Err(SecError::WrongKeyKind { .. })
    ));
    // Relabelling a wrapped key's kind in storage does not make it usable: the LMK
    // variant differs, so the check value fails.
    let relabelled = wk.mak.to_text().replacen("TAK", "TPK", 1);
    let forged = WrappedKey::parse(&relabelled).unwrap();
    assert_eq!(
        hsm.translate_pin(&forged, &zpk, &pan, &blk).unwrap_err(),
        SecError::CheckValueMismatch
    );
    // A PIN block under the wrong key is a format error, not a wrong PIN.
    let other = hsm
        .generate_working_keys(&tmk, KeyLayout::Double, 2)
        .unwrap();
    let term = TerminalKeys::unwrap(&tmk_clear, KeyLayout::Double, &other.field62).unwrap();
    let blk = PinBlock::format0(&Pin::new("1234").unwrap(), &pan).encrypt(&term.pik);
    assert_eq!(
        hsm.translate_pin(&wk.pik, &zpk, &pan, &blk).unwrap_err(),
        SecError::PinBlockFormat
    );
}

#[test]
fn rotated_mac_keys_verify_until_retired() {
    let hsm = module(3);
    let tmk_clear = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let tmk = hsm.import_key(KeyKind::Tmk, 1, &tmk_clear).unwrap();
    let v1 = hsm
        .generate_working_keys(&tmk, KeyLayout::Double, 1)
        .unwrap();
    let v2 = hsm
        .generate_working_keys(&tmk, KeyLayout::Double, 2)
        .unwrap();
    let t1 = TerminalKeys::unwrap(&tmk_clear, KeyLayout::Double, &v1.field62).unwrap();
    let data = b"message signed before the terminal picked up version 2";
    let mac = MacAlgorithm::CupEcb.compute(&t1.mak, data);
    let active = [v2.mak.clone(), v1.mak.clone()];
    assert_eq!(
        hsm.verify_mac_any(&active, MacAlgorithm::CupEcb, data, &mac),
        Ok(1)
    );
    let retired = [v2.mak.clone()];
    assert_eq!(
        hsm.verify_mac_any(&retired, MacAlgorithm::CupEcb, data, &mac),
        Err(SecError::MacMismatch)
    );
    // Wrapped keys survive their storage form.
    assert_eq!(WrappedKey::parse(&v2.mak.to_text()).unwrap(), v2.mak);
    assert_eq!(v2.mak.version(), 2);
}

#[test]
fn tokens_are_stable_keyed_and_rekeyable() {
    let hsm = module(4);
    let pan = Pan::new("6228480402564890018").unwrap();
    let t = hsm.tokenize(&pan);
    assert_eq!(t, hsm.tokenize(&pan));
    assert_eq!(t.key_id(), 1);
    assert_ne!(t, hsm.tokenize(&Pan::new("6228480402564890026").unwrap()));
    assert_eq!(cardsec::PanToken::parse(&t.to_string()), Some(t));
    assert!(!t.to_string().contains("6228480402564890018"));
    // Another LMK gives other tokens; a new data key gives tokens with its id.
    let mut other = module(4);
    other.set_data_key(cardsec::DataKey::new(2, &[9u8; 32]).unwrap());
    let t2 = other.tokenize(&pan);
    assert_eq!(t2.key_id(), 2);
    assert_ne!(t2, t);
}

/// A terminal master key generated for injection: the two custodians' components XOR
/// to the key, or the cryptogram under the injection facility's KEK decrypts to it;
/// either way the terminal's key delivers working keys the switch's copy agrees with.
#[test]
fn a_generated_tmk_reaches_the_terminal_in_components_or_under_a_kek() {
    let hsm = module(3);
    let kek_clear = Key::from_hex("3B9AC1E4F08A7D5C2D4E6F8091A2B3C4").unwrap();
    let kek = hsm.import_key(KeyKind::Zmk, 1, &kek_clear).unwrap();
    for under_kek in [false, true] {
        let (tmk, delivery) = hsm
            .generate_for_injection(KeyKind::Tmk, 1, 16, under_kek.then_some(&kek))
            .unwrap();
        let clear = match &delivery {
            KeyDelivery::Components { components, kcv } => {
                let a = Key::from_hex(&components[0].hex).unwrap();
                let b = Key::from_hex(&components[1].hex).unwrap();
                assert_eq!(hex::encode_upper(check_value(&a, 3)), components[0].kcv);
                let mut k = Key::from_bytes(
                    &a.expose()
                        .iter()
                        .zip(b.expose())
                        .map(|(x, y)| x ^ y)
                        .collect::<Vec<u8>>(),
                )
                .unwrap();
                k.fix_parity();
                assert_eq!(&hex::encode_upper(check_value(&k, 3)), kcv);
                assert!(!format!("{delivery:?}").contains(components[0].hex.as_str()));
                k
            }
            KeyDelivery::UnderKek {
                cryptogram,
                kek_kcv,
                kcv,
            } => {
                assert_eq!(kek_kcv, &kek.kcv_hex());
                let mut bytes = hex::decode(cryptogram).unwrap();
                kek_clear.decrypt_ecb(&mut bytes).unwrap();
                let k = Key::from_bytes(&bytes).unwrap();
                assert_eq!(&hex::encode_upper(check_value(&k, 3)), kcv);
                k
            }
        };
        assert_eq!(hex::encode_upper(check_value(&clear, 3)), tmk.kcv_hex());
        let wk = hsm
            .generate_working_keys(&tmk, KeyLayout::Double, 1)
            .unwrap();
        TerminalKeys::unwrap(&clear, KeyLayout::Double, &wk.field62).expect("the terminal's TMK");
    }
}
