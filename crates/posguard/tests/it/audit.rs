//! Every change made on the command line leaves exactly one audit record, naming the
//! OS user who ran the command, with the object before and after — on SQLite and
//! PostgreSQL.

use store::{CaseRow, FindingRow, MerchantRow, Write};

use crate::run;
use crate::scenarios::{cleanup, stores};

fn store_args(store: &str) -> Vec<String> {
    if store.starts_with("postgres://") {
        vec!["--database-url".into(), store.into()]
    } else {
        vec!["--data".into(), store.into()]
    }
}

/// A command, its standard input, the last record's action and object, and how many
/// records it leaves.
type Step<'a> = (Vec<String>, &'a [u8], &'a str, &'a str, usize);

fn audit(store: &str) -> Vec<store::AuditRow> {
    let mut db = store::open(store).expect("open");
    db.migrate().expect("migrate");
    db.audit_after(0, 10_000).expect("audit")
}

#[test]
fn every_command_line_change_leaves_one_audit_record() {
    for store in stores("cli_audit") {
        cleanup(&store);
        {
            let mut db = store::open(&store).expect("open");
            db.migrate().expect("migrate");
            db.apply(&[
                Write::Merchant(MerchantRow {
                    merchant_id: "898310000000001".into(),
                    name: "Shop".into(),
                    city: "Shanghai".into(),
                    mcc: "5411".into(),
                    status: "active".into(),
                    created_at: "2026-12-01T00:00:00+00:00".into(),
                    merchant_class: "standard".into(),
                    risk_class: "low".into(),
                }),
                Write::Finding(FindingRow {
                    finding_id: "2026-11-30:R00000000009:phantom_debit".into(),
                    business_date: "2026-11-30".into(),
                    class: "phantom_debit".into(),
                    rrn: "R00000000009".into(),
                    txn_id: None,
                    amount_minor: 4_200,
                    evidence: "debited at the issuer, reversed at posguard".into(),
                    action: "give the money back".into(),
                    status: "open".into(),
                    owner: None,
                    deadline: None,
                    notes: String::new(),
                    created_at: "2026-12-01T00:00:00+00:00".into(),
                    updated_at: "2026-12-01T00:00:00+00:00".into(),
                }),
                Write::Case(CaseRow {
                    case_id: 7,
                    subject: "card tok1 testing".into(),
                    status: "open".into(),
                    assignee: None,
                    opened_at: "2026-12-01T00:00:00+00:00".into(),
                    updated_at: "2026-12-01T00:00:00+00:00".into(),
                }),
                crate::settle::txn(
                    9,
                    "898310000000001",
                    "10000001",
                    "sale",
                    "approved",
                    4_200,
                    "622848******1234",
                    "2026-11-30 10:00",
                ),
            ])
            .expect("seed");
        }
        let files = std::env::temp_dir().join(format!(
            "posguard-cli-audit-files-{}-{}",
            std::process::id(),
            store.len()
        ));
        let clearing = files.join("clearing.csv");
        std::fs::create_dir_all(&files).expect("files dir");
        std::fs::write(
            &clearing,
            "rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time\n",
        )
        .expect("clearing file");
        let filing = files.join("filing.json");
        std::fs::write(
            &filing,
            r#"{"source": "cardholder_phone", "category": "unrecognised", "contact": "13800000000",
                "language": "en", "last4": "1234", "from": "2026-11-30 09:50", "to": "2026-11-30 10:10"}"#,
        )
        .expect("filing");
        // A four-eyes threshold of 0.10: the command line honours the configuration.
        let config = files.join("complaints.toml");
        std::fs::write(&config, "four_eyes_minor = 10\n").expect("config");
        let (files_arg, clearing_arg, filing_arg, config_arg) = (
            files.display().to_string(),
            clearing.display().to_string(),
            filing.display().to_string(),
            config.display().to_string(),
        );
        let s = store_args(&store);
        let with = |args: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            v.extend(s.iter().cloned());
            v
        };
        let pw = b"a long enough password\n".as_slice();
        // (command, stdin, the last record's action and object, records it leaves).
        let steps: Vec<Step> = vec![
            (
                with(&[
                    "user",
                    "add",
                    "zhang.wei",
                    "--role",
                    "finance",
                    "--password-stdin",
                ]),
                pw,
                "operator.add",
                "operator:zhang.wei",
                1,
            ),
            (
                with(&["user", "passwd", "zhang.wei", "--password-stdin"]),
                b"another long password\n",
                "operator.passwd",
                "operator:zhang.wei",
                1,
            ),
            (
                with(&["user", "disable", "zhang.wei"]),
                b"",
                "operator.disable",
                "operator:zhang.wei",
                1,
            ),
            (
                with(&[
                    "hold",
                    "place",
                    "--merchant",
                    "898310000000001",
                    "--reason",
                    "KYC review",
                    "--by",
                    "ops.li",
                ]),
                b"",
                "hold.place",
                "hold:manual:1",
                1,
            ),
            (
                with(&["hold", "release", "manual:1", "--by", "ops.li"]),
                b"",
                "hold.release",
                "hold:manual:1",
                1,
            ),
            (
                with(&["case", "assign", "7", "analyst.wu"]),
                b"",
                "case.assign",
                "case:7",
                1,
            ),
            (
                with(&["case", "note", "7", "three cards in a minute"]),
                b"",
                "case.note",
                "case:7",
                1,
            ),
            (
                with(&["case", "close", "7", "fraud"]),
                b"",
                "case.status",
                "case:7",
                1,
            ),
            (
                with(&["settle", "--date", "2026-11-30", "--out", &files_arg]),
                b"",
                "settlement.run",
                "settlement_run:2026-11-30",
                1,
            ),
            (
                with(&["payout", "confirm", "--value-date", "2026-12-31"]),
                b"",
                "payout.confirm",
                "payout:S20261130-898310000000001:0",
                1,
            ),
            (
                with(&[
                    "recon",
                    "--date",
                    "2026-11-30",
                    "--issuer-file",
                    &clearing_arg,
                ]),
                b"",
                "recon.run",
                "recon_run:2026-11-30",
                2,
            ),
            (
                with(&["merchant", "calendar", "--year", "2027"]),
                b"year 2027\nholiday 2027-02-05..2027-02-11 Spring Festival\nworkday 2027-02-13 make-up\n",
                "reference.calendar",
                "reference:calendar:2027",
                1,
            ),
            (
                with(&["complaint", "file", "--filing", &filing_arg]),
                b"",
                "complaint.file",
                "complaint:1",
                1,
            ),
            (
                with(&["complaint", "link", "1", "--txn", "9"]),
                b"",
                "complaint.link",
                "complaint:1",
                1,
            ),
            (
                with(&["complaint", "resolve", "1"]),
                b"",
                "complaint.resolve",
                "complaint:1",
                1,
            ),
            (
                with(&["complaint", "file", "--filing", &filing_arg]),
                b"",
                "complaint.file",
                "complaint:2",
                1,
            ),
            (
                with(&["complaint", "link", "2", "--txn", "9"]),
                b"",
                "complaint.link",
                "complaint:2",
                1,
            ),
            (
                with(&[
                    "complaint",
                    "refund",
                    "2",
                    "--txn",
                    "9",
                    "--amount",
                    "100",
                    "--reason",
                    "goodwill",
                    "--complaints-config",
                    &config_arg,
                ]),
                b"",
                "complaint.request_refund",
                "complaint:2",
                1,
            ),
            (
                with(&["merchant", "mcc-table"]),
                include_bytes!("../../../merchants/calendars/mcc.txt"),
                "reference.mcc",
                "reference:mcc",
                1,
            ),
        ];
        let mut seen = audit(&store).len();
        assert_eq!(seen, 0);
        for (args, stdin, action, object, records) in steps {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, _, err) = run(&argv, stdin);
            assert_eq!(code, 0, "{argv:?}: {err}");
            let all = audit(&store);
            assert_eq!(
                all.len(),
                seen + records,
                "{argv:?} left {} records",
                all.len() - seen
            );
            let a = all.last().expect("record");
            assert_eq!(
                (a.action.as_str(), a.object.as_str()),
                (action, object),
                "{argv:?}"
            );
            assert!(a.actor.starts_with("os:"), "{a:?}");
            assert_eq!((a.role.as_str(), a.source.as_str()), ("cli", "cli"));
            assert!(a.request_id.starts_with("pid:"));
            let (before, after): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&a.before).expect("before"),
                serde_json::from_str(&a.after).expect("after"),
            );
            assert!(after.is_object(), "{argv:?}: {after}");
            assert_eq!(
                before.is_null(),
                action.ends_with(".add")
                    || [
                        "hold.place",
                        "settlement.run",
                        "recon.run",
                        "complaint.file"
                    ]
                    .contains(&action),
                "{argv:?}: {before}"
            );
            assert!(
                !a.before.contains("argon2") && !a.after.contains("argon2"),
                "no password hash: {a:?}"
            );
            seen = all.len();
        }
        // A refused change leaves nothing.
        let argv = with(&["hold", "release", "manual:9", "--by", "ops.li"]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        assert_eq!(run(&argv, b"").0, 2);
        assert_eq!(audit(&store).len(), seen);
        // The ingest before the run is recorded too.
        let all = audit(&store);
        assert!(
            all.iter()
                .position(|a| a.action == "recon.ingest")
                .is_some_and(|i| all[i + 1].action == "recon.run"),
            "{all:?}"
        );
        let _ = std::fs::remove_dir_all(&files);
        cleanup(&store);
    }
}
