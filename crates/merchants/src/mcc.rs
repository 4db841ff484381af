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

/// A table of the MCCs accepted: the shipped one, or one an administrator loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table(Vec<Mcc>);

/// Why a table was refused: the line (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TableError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// MCCs a table holds at most.
pub const MAX_MCCS: usize = 2_000;

impl Table {
    /// The shipped table (`calendars/mcc.txt`).
    pub fn builtin() -> &'static Table {
        static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            Table::parse(include_str!("../calendars/mcc.txt"))
                .unwrap_or_else(|e| unreachable!("the shipped MCC table reads: {e}"))
        })
    }

    /// Reads a table: `code | fee class | risk | licence | name` a line, `#` comments.
    /// Every line must read (a four-digit code once, a fee class `standard`,
    /// `preferential` or `exempt`, risk `normal` or `high`, a licence or `-`, a name).
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let mut out: Vec<Mcc> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| TableError {
                line: i + 1,
                reason,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            let [code, class, risk, licence, name] = f.as_slice() else {
                return Err(err(
                    "expected code | fee class | risk | licence | name".into()
                ));
            };
            if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("{code:?} is not a four-digit MCC")));
            }
            if out.iter().any(|m| m.code == *code) {
                return Err(err(format!("MCC {code} is listed twice")));
            }
            let class = FeeClass::parse(class).ok_or_else(|| {
                err(format!(
                    "{class:?}: the fee class is standard, preferential or exempt"
                ))
            })?;
            let high_risk = match *risk {
                "high" => true,
                "normal" => false,
                r => return Err(err(format!("{r:?}: the risk is normal or high"))),
            };
            if licence.is_empty() || name.is_empty() || name.chars().count() > 100 {
                return Err(err(
                    "the licence (or -) and a name of at most 100 characters are needed".into(),
                ));
            }
            out.push(Mcc {
                code: (*code).to_owned(),
                class,
                high_risk,
                licence: (*licence != "-").then(|| (*licence).to_owned()),
                name: (*name).to_owned(),
            });
            if out.len() > MAX_MCCS {
                return Err(err(format!("a table holds at most {MAX_MCCS} MCCs")));
            }
        }
        if out.is_empty() {
            return Err(TableError {
                line: 0,
                reason: "the table lists no MCC".into(),
            });
        }
        Ok(Table(out))
    }

    /// An MCC of the table.
    pub fn lookup(&self, code: &str) -> Option<&Mcc> {
        self.0.iter().find(|m| m.code == code)
    }

    /// Every MCC, in the table's order.
    pub fn entries(&self) -> &[Mcc] {
        &self.0
    }
}

/// The shipped table's MCCs.
pub fn table() -> &'static [Mcc] {
    Table::builtin().entries()
}

/// An MCC of the shipped table.
pub fn lookup(code: &str) -> Option<&'static Mcc> {
    Table::builtin().lookup(code)
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
