//! The merchant category codes posguard accepts, with each one's fee class, whether
//! it calls for a stricter review, and the industry licence it needs — data
//! (`crates/merchants/calendars/mcc.txt`), read once.

/// The fee class of an MCC (`shared/spec/people.md` §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeClass {
    /// Regulated fees at 90% of the caps.
    Standard,
    /// Everyday necessities: regulated fees at 78% of the caps.
    Preferential,
    /// Public welfare: no issuer or network fee.
    Exempt,
}

impl FeeClass {
    /// The name stored (`standard`, `preferential`, `exempt`).
    pub fn name(self) -> &'static str {
        match self {
            FeeClass::Standard => "standard",
            FeeClass::Preferential => "preferential",
            FeeClass::Exempt => "exempt",
        }
    }

    /// The class of a stored name.
    pub fn parse(s: &str) -> Option<FeeClass> {
        match s {
            "standard" => Some(FeeClass::Standard),
            "preferential" => Some(FeeClass::Preferential),
            "exempt" => Some(FeeClass::Exempt),
            _ => None,
        }
    }
}

/// One MCC of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mcc {
    /// The four digits.
    pub code: String,
    /// Its fee class.
    pub class: FeeClass,
    /// A stricter review (cash-like, gambling, telemarketing…).
    pub high_risk: bool,
    /// The industry licence it needs, if any.
    pub licence: Option<String>,
    /// What it is.
    pub name: String,
}

/// The shipped table.
pub fn table() -> &'static [Mcc] {
    static TABLE: std::sync::OnceLock<Vec<Mcc>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| parse(include_str!("../calendars/mcc.txt")))
}

/// An MCC of the table.
pub fn lookup(code: &str) -> Option<&'static Mcc> {
    table().iter().find(|m| m.code == code)
}

fn parse(text: &str) -> Vec<Mcc> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            let [code, class, risk, licence, name] = f.as_slice() else {
                return None;
            };
            Some(Mcc {
                code: (*code).to_owned(),
                class: FeeClass::parse(class)?,
                high_risk: *risk == "high",
                licence: (*licence != "-").then(|| (*licence).to_owned()),
                name: (*name).to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reads_whole() {
        let lines = include_str!("../calendars/mcc.txt")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(table().len(), lines, "every line of the table parses");
        assert_eq!(
            lookup("5411").map(|m| m.class),
            Some(FeeClass::Preferential)
        );
        assert_eq!(lookup("8062").map(|m| m.class), Some(FeeClass::Exempt));
        assert!(lookup("7995").is_some_and(|m| m.high_risk));
        assert!(lookup("0000").is_none());
    }
}
