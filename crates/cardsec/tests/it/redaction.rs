//! No secret type can reveal itself through formatting or serialization.

use std::marker::PhantomData;

use cardsec::{
    DataKey, EncryptedPinBlock, Key, KeyKind, Lmk, Pan, Pin, PinBlock, SecurityModule, Track2,
};

use crate::module;

/// `Probe::<T>::serializable()` is true only if `T: Serialize` (inherent methods win
/// over the blanket trait method).
struct Probe<T>(PhantomData<T>);
trait NotSerializable {
    fn serializable(&self) -> bool {
        false
    }
}
impl<T> NotSerializable for Probe<T> {}
impl<T: serde::Serialize> Probe<T> {
    #[allow(dead_code)]
    fn serializable(&self) -> bool {
        true
    }
}

#[test]
fn the_probe_can_tell() {
    assert!(Probe::<String>(PhantomData).serializable());
}

#[test]
fn secret_types_do_not_implement_serialize() {
    assert!(!Probe::<Pan>(PhantomData).serializable());
    assert!(!Probe::<Pin>(PhantomData).serializable());
    assert!(!Probe::<PinBlock>(PhantomData).serializable());
    assert!(!Probe::<EncryptedPinBlock>(PhantomData).serializable());
    assert!(!Probe::<Track2>(PhantomData).serializable());
    assert!(!Probe::<Key>(PhantomData).serializable());
    assert!(!Probe::<Lmk>(PhantomData).serializable());
    assert!(!Probe::<DataKey>(PhantomData).serializable());
}

/// A struct holding secrets, as a caller might write one, formatted every way.
#[derive(Debug)]
#[allow(dead_code)]
struct Holder {
    pan: Pan,
    pin: Pin,
    block: PinBlock,
    enc: EncryptedPinBlock,
    track2: Track2,
    key: Key,
    lmk: Lmk,
    data_key: DataKey,
}

#[test]
fn formatting_never_reveals_a_secret() {
    let pan_digits = "6228480402564890018";
    let pan = Pan::new(pan_digits).unwrap();
    let pin = Pin::new("987654").unwrap();
    let block = PinBlock::format0(&pin, &pan);
    let key = Key::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let enc = block.encrypt(&key);
    let secrets = [
        pan_digits.to_owned(),
        "987654".to_owned(),
        hex::encode_upper(block.expose()),
        hex::encode(block.expose()),
        hex::encode_upper(enc.0),
        "0123456789ABCDEF".to_owned(),
        "0123456789abcdef".to_owned(),
        "30122011234567890".to_owned(),
        "4AC5B1AD".to_owned(),
    ];
    let holder = Holder {
        pan: pan.clone(),
        pin: pin.clone(),
        block: block.clone(),
        enc,
        track2: Track2::parse("6228480402564890018=30122011234567890").unwrap(),
        key: key.clone(),
        lmk: Lmk::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap(),
        data_key: DataKey::new(1, b"4AC5B1AD4AC5B1AD4AC5B1AD").unwrap(),
    };
    let shown = [
        format!("{holder:?}"),
        format!("{holder:#?}"),
        format!("{pan} {pin} {block} {enc} {key} {}", holder.track2),
        format!("{pan:?} {pin:?} {block:?} {enc:?} {key:?}"),
        format!("{:?}", module(9)),
        format!("{:?}", module(9).import_key(KeyKind::Zpk, 1, &key).unwrap()),
        module(9)
            .import_key(KeyKind::Zpk, 1, &key)
            .unwrap()
            .to_text(),
    ];
    for text in &shown {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s:?} revealed in {text:?}");
        }
    }
    assert!(
        shown[2].contains("622848*********0018"),
        "masked PAN is what shows: {}",
        shown[2]
    );
}
