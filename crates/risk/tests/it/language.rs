//! The rule language: parse and type errors name the rule and the position.

use risk::RuleSet;

fn load(when: &str) -> String {
    let text = format!("version = \"t\"\n[[rule]]\nid = \"r\"\ndescription = \"d\"\nwhen = '{when}'\naction = \"alert\"\n");
    match RuleSet::from_toml(&text) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conditions_are_parsed_and_type_checked() {
    let cases = [
        ("amount > 100 && card.count_1h >= 3", "ok"),
        ("entry in [\"fallback\", \"magstripe\"] || !chip_card", "ok"),
        ("(amount + 5) * 2 % 7 == 1", "ok"),
        ("amount > -5", "ok"),
        (
            "amount",
            "rule r: condition at 0: a condition must be boolean, this is integer",
        ),
        (
            "amount > \"big\"",
            "rule r: condition at 0: Gt cannot combine integer and string",
        ),
        (
            "card.count_2h > 1",
            "rule r: condition at 0: unknown attribute \"card.count_2h\"",
        ),
        (
            "card.distinct_cards_1d > 1",
            "rule r: condition at 0: unknown attribute \"card.distinct_cards_1d\"",
        ),
        (
            "amount > ",
            "rule r: condition at 9: expression ends too early",
        ),
        (
            "amount > 1 1",
            "rule r: condition at 11: unexpected text after the expression",
        ),
        (
            "entry in [1, \"x\"]",
            "rule r: condition at 0: list item Int(1) does not match string",
        ),
        (
            "amount $ 3",
            "rule r: condition at 7: unexpected character '$'",
        ),
        ("\"open", "rule r: condition at 0: unterminated string"),
    ];
    for (when, want) in cases {
        assert_eq!(load(when), want, "{when}");
    }
}

#[test]
fn rule_files_are_validated() {
    let bad = [
        ("version = \"v\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"decline\"\n", "rule a: decline needs a two-character code"),
        ("version = \"v\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"alert\"\ncode = \"05\"\n", "rule a: only decline takes a code"),
        ("version = \"v\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"alert\"\nscore = 101\n", "rule a: score must be 0-100"),
        ("version = \"v\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"alert\"\nmode = \"maybe\"\n", "rule a: mode is active, shadow or disabled"),
        ("version = \"v\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"alert\"\n[[rule]]\nid = \"a\"\ndescription = \"\"\nwhen = 'amount > 1'\naction = \"alert\"\n", "rule a: ids must be present and unique"),
    ];
    for (text, want) in bad {
        assert_eq!(RuleSet::from_toml(text).unwrap_err().to_string(), want);
    }
    assert!(RuleSet::from_toml("version = \"v\"\nunknown = 1\n")
        .unwrap_err()
        .to_string()
        .starts_with("rule file:"));
}
