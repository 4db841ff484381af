//! Card data: Luhn, brands, expiry, track 2, entry modes.

use cardsec::{luhn_valid, Brand, EntryMode, Expiry, MaskedPan, Pan, PanEntry, Track2};

#[test]
fn luhn() {
    for (digits, ok) in [
        ("79927398713", true),
        ("4111111111111111", true),
        ("4111111111111112", false),
        ("6228480402564890018", true),
        ("", false),
        ("41111x", false),
    ] {
        assert_eq!(luhn_valid(digits), ok, "{digits}");
    }
}

#[test]
fn brands_by_bin() {
    for (pan, brand) in [
        ("4111111111111111", Brand::Visa),
        ("5105105105105100", Brand::Mastercard),
        ("2221000000000009", Brand::Mastercard),
        ("2720990000000000", Brand::Mastercard),
        ("2721000000000000", Brand::Unknown),
        ("340000000000009", Brand::Amex),
        ("370000000000002", Brand::Amex),
        ("3528000000000007", Brand::Jcb),
        ("3589000000000000", Brand::Jcb),
        ("3590000000000000", Brand::Unknown),
        ("6011000000000004", Brand::Discover),
        ("6440000000000000", Brand::Discover),
        ("6500000000000002", Brand::Discover),
        ("6228480402564890018", Brand::UnionPay),
        ("622848040256489", Brand::Unknown),
    ] {
        assert_eq!(Brand::of(pan), brand, "{pan}");
    }
}

#[test]
fn expiry_is_valid_through_the_end_of_its_month() {
    let e = Expiry::parse("2612").unwrap();
    assert!(e.valid_in(2026, 12));
    assert!(e.valid_in(2026, 11));
    assert!(!e.valid_in(2027, 1));
    assert!(Expiry::parse("2613").is_none());
    assert!(Expiry::parse("26a2").is_none());
    assert_eq!(e.to_yymm(), "2612");
}

#[test]
fn track2_and_chip_detection() {
    let t = Track2::parse("6228480402564890018=30122011234567890").unwrap();
    assert_eq!(t.pan().digits(), "6228480402564890018");
    assert_eq!(t.expiry(), Expiry::parse("3012"));
    assert_eq!(t.service_code(), "201");
    assert!(t.is_chip_card());
    assert!(!Track2::parse("4111111111111111D30121011234")
        .unwrap()
        .is_chip_card());
    assert!(Track2::parse("4111111111111111").is_err());
    assert!(Track2::parse("4111111111111111=3012").is_err());
    assert!(Track2::parse("4111111111111111=30122011234567890123456789").is_err());
}

#[test]
fn entry_modes() {
    for (f22, entry, magstripe, chip, pin) in [
        ("051", PanEntry::Chip, false, true, true),
        ("071", PanEntry::ContactlessChip, false, true, true),
        ("021", PanEntry::Magstripe, true, false, true),
        ("801", PanEntry::Fallback, true, false, true),
        ("902", PanEntry::FullMagstripe, true, false, false),
        ("912", PanEntry::ContactlessMagstripe, true, false, false),
        ("012", PanEntry::Manual, false, false, false),
        ("332", PanEntry::Unknown, false, false, false),
    ] {
        let m = EntryMode::parse(f22).unwrap();
        assert_eq!(
            (m.pan_entry, m.is_magstripe(), m.is_chip(), m.pin_capable),
            (entry, magstripe, chip, pin),
            "{f22}"
        );
    }
    assert!(EntryMode::parse("05").is_none());
}

#[test]
fn masked_pan_shows_first_six_and_last_four() {
    let pan = Pan::new("6228480402564890018").unwrap();
    assert_eq!(pan.masked().as_str(), "622848*********0018");
    assert_eq!(pan.bin(), "622848");
    assert_eq!(MaskedPan::parse("622848*********0018"), Some(pan.masked()));
    assert_eq!(MaskedPan::parse("6228480402564890018"), None);
    assert!(Pan::new("12345678901").is_err());
    assert!(Pan::new("12345678901234567890").is_err());
}

/// Shorter PANs show fewer digits: never more than six and four, always six hidden
/// (a 12-digit PAN once showed ten of its twelve digits).
#[test]
fn short_pans_keep_six_digits_hidden() {
    for (pan, masked) in [
        ("622848000031", "62******0031"),
        ("6228480000312", "622******0312"),
        ("6228480000312345", "622848******2345"),
    ] {
        let p = Pan::new(pan).unwrap();
        assert_eq!(p.masked().as_str(), masked);
        assert_eq!(format!("{p:?}"), format!("Pan({masked})"));
        assert_eq!(MaskedPan::parse(masked), Some(p.masked()));
    }
    assert_eq!(
        MaskedPan::parse("622848**0031"),
        None,
        "the old 12-digit shape"
    );
}
