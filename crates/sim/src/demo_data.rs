//! The demo data set: merchants, terminals with their master keys, and cardholders.
//!
//! Deterministic from a seed, so the acquirer, the issuer simulator and the terminal
//! fleet — started separately — agree on it. Demo keys are for demonstrations only.

use cardsec::{luhn_valid, KeyLayout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The demo's local master key (acquirer) — never use it outside a demo.
pub const DEMO_LMK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// The demo's key-encryption key: onboarding hands each demo terminal's master key out
/// under it, and the demo's key-loading step (the terminal simulators) recovers it —
/// never use it outside a demo.
pub const DEMO_KEK: &str = "89ABCDEF01234567FEDCBA9876543210";

/// The demo's key for personal ID number tokens (HMAC-SHA256) — never use it outside
/// a demo.
pub const DEMO_PII_KEY: &str = "de70de70de70de70de70de70de70de70de70de70de70de70de70de70de70de70";

/// A demo merchant.
#[derive(Debug, Clone)]
pub struct DemoMerchant {
    /// Field 42.
    pub merchant_id: String,
    /// Name.
    pub name: String,
    /// City.
    pub city: String,
    /// MCC.
    pub mcc: String,
    /// Size class for risk limits: `small`, `standard`, `large`.
    pub class: String,
    /// Days since onboarding.
    pub age_days: i64,
}

/// A demo terminal.
#[derive(Clone)]
pub struct DemoTerminal {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42 of its merchant.
    pub merchant_id: String,
    /// Clear TMK (hex), as injected at the key-loading facility.
    pub tmk_hex: String,
    /// Registered install location.
    pub location: String,
    /// The key layout it is provisioned for: every fourth terminal (the 4th, 8th, …)
    /// gets a track key too (`004`) and sends track 2 encrypted; the others `003`.
    pub key_layout: KeyLayout,
}

impl std::fmt::Debug for DemoTerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DemoTerminal({} of {})",
            self.terminal_id, self.merchant_id
        )
    }
}

/// What the issuer will do with a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFate {
    /// A good card with money.
    Good,
    /// Reported lost (41).
    Lost,
    /// Reported stolen (43).
    Stolen,
    /// Expired (54).
    Expired,
    /// Almost no money (51).
    Poor,
    /// Blocked by the issuer (62).
    Blocked,
}

/// A demo cardholder and card.
#[derive(Clone)]
pub struct DemoCard {
    /// PAN (clear: the demo issues the cards).
    pub pan: String,
    /// PIN.
    pub pin: String,
    /// YYMM.
    pub expiry: String,
    /// Track 2 service code (`201` chip, `101` magstripe only).
    pub service_code: String,
    /// Opening balance in fen.
    pub balance_minor: i64,
    /// Credit limit in fen.
    pub credit_limit_minor: i64,
    /// Daily spending limit in fen.
    pub daily_limit_minor: i64,
    /// Holder's name.
    pub holder: String,
    /// Phone for SMS.
    pub phone: String,
    /// `zh` or `en`.
    pub language: String,
    /// What the issuer will do.
    pub fate: CardFate,
}

impl std::fmt::Debug for DemoCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DemoCard({} {:?})",
            domain::mask_pan(self.pan.as_bytes()),
            self.fate
        )
    }
}

/// The whole demo data set.
#[derive(Debug, Clone)]
pub struct DemoData {
    /// Merchants.
    pub merchants: Vec<DemoMerchant>,
    /// Terminals.
    pub terminals: Vec<DemoTerminal>,
    /// Cards.
    pub cards: Vec<DemoCard>,
}

fn with_luhn(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|p| luhn_valid(p))
        .unwrap_or_else(|| unreachable!("one check digit always fits"))
}

/// Builds the demo data set: `terminals` terminals over `terminals / 4` merchants
/// (at least one), and `cards` good cards plus a few of each declining kind.
pub fn demo_data(seed: u64, terminals: usize, cards: usize) -> DemoData {
    let mut rng = StdRng::seed_from_u64(seed);
    let names = [
        "HAPPY MART",
        "JADE TEA HOUSE",
        "EAST WIND ELECTRONICS",
        "LOTUS PHARMACY",
        "GOLDEN NOODLE",
        "RIVERSIDE BOOKS",
    ];
    let cities = [
        "SHANGHAI",
        "BEIJING",
        "SHENZHEN",
        "HANGZHOU",
        "CHENGDU",
        "GUANGZHOU",
    ];
    let mccs = ["5411", "5814", "5732", "5912", "5812", "5942"];
    let n_merchants = terminals.div_ceil(4).max(1);
    let merchants: Vec<DemoMerchant> = (0..n_merchants)
        .map(|i| DemoMerchant {
            merchant_id: format!("898310{:09}", 5_411_000 + i),
            name: names[i % names.len()].into(),
            city: cities[i % cities.len()].into(),
            mcc: mccs[i % mccs.len()].into(),
            // One small shop, one merchant onboarded ten days ago, the rest established.
            class: if i == 0 { "small" } else { "standard" }.into(),
            age_days: if i == 1 { 10 } else { 400 },
        })
        .collect();
    let terminals: Vec<DemoTerminal> = (0..terminals.max(1))
        .map(|i| {
            let tmk: [u8; 16] = rng.gen();
            DemoTerminal {
                terminal_id: format!("{:08}", 10_000_001 + i),
                // The small shop has one terminal; the others share the rest.
                merchant_id: merchants[if i == 0 || n_merchants == 1 {
                    0
                } else {
                    1 + (i - 1) % (n_merchants - 1)
                }]
                .merchant_id
                .clone(),
                tmk_hex: hex::encode_upper(tmk),
                key_layout: if i % 4 == 3 {
                    KeyLayout::DoubleWithTrack
                } else {
                    KeyLayout::Double
                },
                location: format!(
                    "{:.4},{:.4}",
                    31.2 + (i as f64) * 0.01,
                    121.4 + (i as f64) * 0.01
                ),
            }
        })
        .collect();
    let mut all = Vec::new();
    let fates = std::iter::repeat_n(CardFate::Good, cards.max(1)).chain([
        CardFate::Lost,
        CardFate::Stolen,
        CardFate::Expired,
        CardFate::Poor,
        CardFate::Blocked,
        CardFate::Lost,
        CardFate::Expired,
        CardFate::Poor,
    ]);
    for (i, fate) in fates.enumerate() {
        let unionpay = i % 3 != 2;
        let body = if unionpay {
            format!("6228480{:011}", 10_000_000 + i * 7919)
        } else {
            format!("4{:014}", 31_000_000 + i * 7919)
        };
        let pan = with_luhn(&body);
        let (balance, credit) = match fate {
            CardFate::Poor => (500, 0),
            _ => (
                rng.gen_range(2_000_000..20_000_000),
                if i % 2 == 0 { 5_000_000 } else { 0 },
            ),
        };
        all.push(DemoCard {
            pan,
            pin: format!("{:06}", rng.gen_range(0..1_000_000)),
            expiry: if fate == CardFate::Expired {
                "2401".into()
            } else {
                "3012".into()
            },
            service_code: if i % 4 == 3 {
                "101".into()
            } else {
                "201".into()
            },
            balance_minor: balance,
            credit_limit_minor: credit,
            daily_limit_minor: 5_000_000,
            holder: format!("CARDHOLDER {i:04}"),
            phone: format!("1380000{:04}", i % 10_000),
            language: if i % 2 == 0 { "zh".into() } else { "en".into() },
            fate,
        });
    }
    DemoData {
        merchants,
        terminals,
        cards: all,
    }
}

/// Opens the demo cardholders' accounts at an issuer simulator.
pub fn open_accounts(
    bank: &mut issuer::Bank,
    data: &DemoData,
    now: chrono::NaiveDateTime,
) -> Result<(), String> {
    use issuer::{CardStatus, Language, NewAccount};
    for c in &data.cards {
        let status = match c.fate {
            CardFate::Lost => CardStatus::Lost,
            CardFate::Stolen => CardStatus::Stolen,
            CardFate::Blocked => CardStatus::Blocked,
            _ => CardStatus::Active,
        };
        let account = NewAccount {
            pan: cardsec::Pan::new(&c.pan).map_err(|e| e.to_string())?,
            pin: cardsec::Pin::new(&c.pin).map_err(|e| e.to_string())?,
            expiry: cardsec::Expiry::parse(&c.expiry).ok_or("demo expiry")?,
            currency: domain::Currency::CNY,
            balance_minor: c.balance_minor,
            credit_limit_minor: c.credit_limit_minor,
            daily_limit_minor: c.daily_limit_minor,
            status,
            holder: c.holder.clone(),
            phone: c.phone.clone(),
            language: if c.language == "zh" {
                Language::Zh
            } else {
                Language::En
            },
        };
        bank.open_account(now, account).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        let a = demo_data(7, 10, 50);
        let b = demo_data(7, 10, 50);
        assert_eq!(
            a.cards.iter().map(|c| c.pan.clone()).collect::<Vec<_>>(),
            b.cards.iter().map(|c| c.pan.clone()).collect::<Vec<_>>()
        );
        assert_eq!(a.merchants.len(), 3);
        assert_eq!(a.terminals.len(), 10);
        assert_eq!(a.cards.len(), 58);
        assert!(a.cards.iter().all(|c| luhn_valid(&c.pan)));
        assert!(a.merchants.iter().all(|m| m.merchant_id.len() == 15));
        let mut pans: Vec<_> = a.cards.iter().map(|c| c.pan.clone()).collect();
        pans.sort();
        pans.dedup();
        assert_eq!(pans.len(), 58);
    }
}
