//! Who complains, through which channel, and about what.

use serde::{Deserialize, Serialize};

/// Where a complaint comes from (its deadlines depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A cardholder on the phone.
    CardholderPhone,
    /// A cardholder through the web form.
    CardholderWeb,
    /// A merchant.
    Merchant,
    /// A card's issuing bank, on its cardholder's behalf.
    IssuingBank,
    /// Forwarded by the regulator's hotline (with its own clock).
    RegulatorHotline,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 5] = [
        Source::CardholderPhone,
        Source::CardholderWeb,
        Source::Merchant,
        Source::IssuingBank,
        Source::RegulatorHotline,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Source::CardholderPhone => "cardholder_phone",
            Source::CardholderWeb => "cardholder_web",
            Source::Merchant => "merchant",
            Source::IssuingBank => "issuing_bank",
            Source::RegulatorHotline => "regulator_hotline",
        }
    }

    /// The source of a stored name.
    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What the complaint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Debited, but the terminal said the sale failed.
    DebitedButFailed,
    /// Debited twice for one purchase.
    DebitedTwice,
    /// A refund or void not credited.
    RefundNotReceived,
    /// Debited another amount than the sale's.
    AmountWrong,
    /// A transaction the cardholder does not recognise.
    Unrecognised,
    /// A merchant not paid for its sales.
    MerchantNotCredited,
    /// A merchant paid less than it expected.
    MerchantCreditedShort,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 7] = [
        Category::DebitedButFailed,
        Category::DebitedTwice,
        Category::RefundNotReceived,
        Category::AmountWrong,
        Category::Unrecognised,
        Category::MerchantNotCredited,
        Category::MerchantCreditedShort,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Category::DebitedButFailed => "debited_but_failed",
            Category::DebitedTwice => "debited_twice",
            Category::RefundNotReceived => "refund_not_received",
            Category::AmountWrong => "amount_wrong",
            Category::Unrecognised => "unrecognised",
            Category::MerchantNotCredited => "merchant_not_credited",
            Category::MerchantCreditedShort => "merchant_credited_short",
        }
    }

    /// The category of a stored name.
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether the complainant is the merchant (else the cardholder).
    pub fn is_merchants(self) -> bool {
        matches!(
            self,
            Category::MerchantNotCredited | Category::MerchantCreditedShort
        )
    }

    /// How many transactions it usually concerns (a double debit: two).
    pub fn transactions(self) -> usize {
        if self == Category::DebitedTwice {
            2
        } else {
            1
        }
    }
}
