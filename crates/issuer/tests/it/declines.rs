//! Every decline code, one line per case: the code, and proof that nothing moved.

use expect_test::expect;
use iso8583::{Message, Mti};
use issuer::CardStatus;

use super::{luhn_pan, Req, World, PAN};

/// Opens the default account, runs `case`, and reports its code and whether money moved.
fn run(name: &str, setup: impl Fn(&mut World), case: impl Fn(&mut World) -> String) -> String {
    let mut w = World::new();
    setup(&mut w);
    let money = |w: &World| -> Vec<(i64, i64)> {
        w.bank
            .accounts()
            .iter()
            .map(|a| (a.balance_minor, a.holds_minor))
            .collect()
    };
    let before = money(&w);
    let rc = case(&mut w);
    let moved = money(&w) != before || !w.bank.sms().is_empty();
    w.assert_books();
    format!(
        "{name}: {rc}{}\n",
        if moved { " (money moved)" } else { "" }
    )
}

fn default(w: &mut World) {
    w.open_default();
}

fn with_status(status: CardStatus) -> impl Fn(&mut World) {
    move |w: &mut World| {
        w.open(PAN, 100_000, 0, 500_000, status, "2712");
    }
}

fn sale(w: &mut World, r: Req) -> String {
    w.rc(&r).0
}

#[test]
fn decline_codes() {
    let mut out = String::new();
    out += &run("approved", default, |w| sale(w, Req::sale(1, 100)));
    out += &run("bad Luhn", default, |w| {
        sale(
            w,
            Req {
                pan: Some("6222021234567890129".into()),
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("unknown card", default, |w| {
        sale(
            w,
            Req {
                pan: Some(luhn_pan("622202999999999999")),
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("lost", with_status(CardStatus::Lost), |w| {
        sale(w, Req::sale(1, 100))
    });
    out += &run("stolen", with_status(CardStatus::Stolen), |w| {
        sale(w, Req::sale(1, 100))
    });
    out += &run("blocked", with_status(CardStatus::Blocked), |w| {
        sale(w, Req::sale(1, 100))
    });
    out += &run(
        "expired last month",
        |w| {
            w.open(PAN, 100_000, 0, 500_000, CardStatus::Active, "2502");
        },
        |w| {
            sale(
                w,
                Req {
                    expiry: Some("2502"),
                    ..Req::sale(1, 100)
                },
            )
        },
    );
    out += &run(
        "expires this month",
        |w| {
            w.open(PAN, 100_000, 0, 500_000, CardStatus::Active, "2503");
        },
        |w| {
            sale(
                w,
                Req {
                    expiry: Some("2503"),
                    ..Req::sale(1, 100)
                },
            )
        },
    );
    out += &run("wrong expiry presented", default, |w| {
        sale(
            w,
            Req {
                expiry: Some("2811"),
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("wrong PIN", default, |w| {
        sale(
            w,
            Req {
                pin: Some("999999"),
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("third wrong PIN", default, |w| {
        let codes: Vec<String> = (1..=4)
            .map(|i| {
                sale(
                    w,
                    Req {
                        pin: Some("999999"),
                        ..Req::sale(i, 100)
                    },
                )
            })
            .collect();
        let right = sale(w, Req::sale(9, 100));
        format!("{} then right PIN {right}", codes.join(" "))
    });
    out += &run("insufficient funds", default, |w| {
        sale(w, Req::sale(1, 100_001))
    });
    out += &run(
        "credit line covers it",
        |w| {
            w.open(PAN, 100_000, 50_000, 500_000, CardStatus::Active, "2712");
        },
        |w| sale(w, Req::sale(1, 150_000)),
    );
    out += &run(
        "over the daily limit",
        |w| {
            w.open(PAN, 100_000, 0, 30_000, CardStatus::Active, "2712");
        },
        |w| {
            let first = sale(w, Req::sale(1, 20_000));
            let second = sale(w, Req::sale(2, 20_000));
            format!("{first} then {second}")
        },
    );
    out += &run("zero amount", default, |w| sale(w, Req::sale(1, 0)));
    out += &run("other currency", default, |w| {
        sale(
            w,
            Req {
                currency: "840",
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("unsupported processing code", default, |w| {
        sale(
            w,
            Req {
                proc: "400000",
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("void of an unknown sale", default, |w| {
        sale(
            w,
            Req::follow_up(&Req::sale(1, 100), "000001", "0200", "200000", 100),
        )
    });
    out += &run("reversal of an unknown RRN", default, |w| {
        let m = Req::reversal(&Req::sale(1, 100), false);
        w.send_msg(m).get_str(39).unwrap_or("").to_owned()
    });
    out += &run("missing RRN", default, |w| {
        let mut m = Req::sale(1, 100).message(&w.zpk);
        m.remove(37);
        w.send_msg(m).get_str(39).unwrap_or("").to_owned()
    });
    out += &run("missing card", default, |w| {
        sale(
            w,
            Req {
                pan: None,
                ..Req::sale(1, 100)
            },
        )
    });
    out += &run("unsupported MTI", default, |w| {
        let mut m = Message::new(Mti::lit("0300"));
        m.set(11, "000001").set(41, "TERM0001");
        w.send_msg(m).get_str(39).unwrap_or("").to_owned()
    });
    out += &run("track 2 only", default, |w| {
        let mut m = Req {
            pan: None,
            expiry: None,
            ..Req::sale(1, 100)
        }
        .message(&w.zpk);
        m.set(35, format!("{PAN}=27122200000"));
        w.send_msg(m).get_str(39).unwrap_or("").to_owned()
    });
    expect![[r#"
        approved: 00 (money moved)
        bad Luhn: 14
        unknown card: 14
        lost: 41
        stolen: 43
        blocked: 62
        expired last month: 54
        expires this month: 00 (money moved)
        wrong expiry presented: 54
        wrong PIN: 55
        third wrong PIN: 55 55 75 75 then right PIN 75
        insufficient funds: 51
        credit line covers it: 00 (money moved)
        over the daily limit: 00 then 61 (money moved)
        zero amount: 13
        other currency: 12
        unsupported processing code: 12
        void of an unknown sale: 25
        reversal of an unknown RRN: 25
        missing RRN: 30
        missing card: 30
        unsupported MTI: 12
        track 2 only: 00 (money moved)
    "#]]
    .assert_eq(&out);
}
