//! The demo's merchants, onboarded the way every merchant is: each one applies (a
//! form with check-digit-valid codes and its documents), its application is submitted
//! and checked, a risk analyst takes and approves it, and operations provisions it —
//! the merchant, its terms and its terminals, whose master keys the security module
//! generates and hands out under the demo key-encryption key. The demo's terminals
//! load them from that key-injection output, as a key-loading device does.

use cardsec::{Key, KeyDelivery, KeyKind, SecurityModule, SoftwareSecurityModule};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use merchants::application::{Account, ApplicantKind, Form, Person, TerminalRequest};
use merchants::review::Who;
use services::accounts::Actor;
use services::onboarding::{self, PiiKey, Step};
use sim::demo_data::{DemoData, DEMO_KEK, DEMO_PII_KEY};
use store::Backend;

use crate::{Ctx, NodeError, Result};

/// One terminal's key-injection output as the demo hands it to its terminals: the
/// master key under the demo KEK, with the key's check value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedKey {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// The TMK under the demo KEK (TDES ECB), hex.
    pub cryptogram: String,
    /// The TMK's check value.
    pub kcv: String,
    /// The key profile (`003`, `004`).
    pub key_profile: String,
}

impl InjectedKey {
    /// The line of the key-injection file: `TID MID cryptogram KCV profile`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.terminal_id, self.merchant_id, self.cryptogram, self.kcv, self.key_profile
        )
    }

    /// Reads a line written by [`InjectedKey::line`].
    pub fn parse(line: &str) -> Option<InjectedKey> {
        let mut w = line.split_whitespace();
        let k = InjectedKey {
            terminal_id: w.next()?.into(),
            merchant_id: w.next()?.into(),
            cryptogram: w.next()?.into(),
            kcv: w.next()?.into(),
            key_profile: w.next()?.into(),
        };
        w.next().is_none().then_some(k)
    }

    /// The clear TMK (hex), as the key-loading device recovers it under the KEK; its
    /// check value must match.
    pub fn clear_tmk_hex(&self) -> Result<String> {
        let kek = Key::from_hex(DEMO_KEK)?;
        let mut bytes = hex::decode(&self.cryptogram).map_err(|_| {
            NodeError::Invalid(format!("terminal {}: the key is not hex", self.terminal_id))
        })?;
        kek.decrypt_ecb(&mut bytes)?;
        let key = Key::from_bytes(&bytes)?;
        let kcv = hex::encode_upper(cardsec::check_value(&key, 3));
        if kcv != self.kcv {
            return Err(NodeError::Invalid(format!(
                "terminal {}: the key's check value is {kcv}, not {} (another KEK?)",
                self.terminal_id, self.kcv
            )));
        }
        Ok(hex::encode_upper(key.expose()))
    }
}

/// Reads a key-injection file (lines of [`InjectedKey::line`], `#` comments).
pub fn read_injected(text: &str) -> Result<Vec<InjectedKey>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            InjectedKey::parse(l).ok_or_else(|| {
                NodeError::Invalid(format!(
                    "key-injection file line {}: TID MID cryptogram KCV profile",
                    i + 1
                ))
            })
        })
        .collect()
}

/// Gives the demo data set's terminals the identities and master keys provisioning
/// made (in the data set's order), and its merchants their new merchant ids.
pub fn with_injected(mut data: DemoData, keys: &[InjectedKey]) -> Result<DemoData> {
    if keys.len() != data.terminals.len() {
        return Err(NodeError::Invalid(format!(
            "the key-injection output has {} terminals, the demo data set {}: same --terminals on both?",
            keys.len(),
            data.terminals.len()
        )));
    }
    let mut merchant_ids = std::collections::HashMap::new();
    for (t, k) in data.terminals.iter_mut().zip(keys) {
        t.tmk_hex = k.clear_tmk_hex()?;
        t.terminal_id.clone_from(&k.terminal_id);
        merchant_ids.insert(t.merchant_id.clone(), k.merchant_id.clone());
        t.merchant_id.clone_from(&k.merchant_id);
    }
    for m in &mut data.merchants {
        if let Some(id) = merchant_ids.get(&m.merchant_id) {
            m.merchant_id.clone_from(id);
        }
    }
    Ok(data)
}

/// The first character of `alphabet` that makes `code(prefix + c)` pass `ok`.
fn completed(prefix: &str, alphabet: &str, ok: impl Fn(&str) -> bool) -> String {
    alphabet
        .chars()
        .map(|c| format!("{prefix}{c}"))
        .find(|s| ok(s))
        .unwrap_or_else(|| unreachable!("one check character always fits"))
}

/// A unified social credit code of demo merchant `i` (Shanghai, a company).
fn uscc(i: usize) -> String {
    let org = completed(&format!("{:08}", 31_500_000 + i * 37), "0123456789X", |c| {
        merchants::checks::org_code(c).is_ok()
    });
    completed(
        &format!("91310115{org}"),
        "0123456789ABCDEFGHJKLMNPQRTUWXY",
        |c| merchants::checks::uscc(c).is_ok(),
    )
}

/// A resident identity number born in 1980 + `i % 20` (a Shanghai district).
fn resident_id(i: usize, today: NaiveDate) -> String {
    let body = format!(
        "310101{}0{}{:02}{:03}",
        1980 + i % 20,
        1 + i % 9,
        1 + i % 28,
        i % 1000
    );
    completed(&body, "0123456789X", |c| {
        merchants::checks::resident_id(c, today).is_ok()
    })
}

/// Demo merchant `i`'s application: the first merchant is an individual shop (the
/// small merchants' limits), the others companies.
fn form(data: &DemoData, i: usize, today: NaiveDate) -> Form {
    let m = &data.merchants[i];
    let kind = if m.class == "small" {
        ApplicantKind::Individual
    } else {
        ApplicantKind::Company
    };
    let owner = format!("OWNER {i:03}");
    let account_name = match kind {
        ApplicantKind::Company => m.name.clone(),
        ApplicantKind::Individual => owner.clone(),
    };
    let address = format!("{}, {} HAPPY ROAD", m.city, 10 + i);
    let terminals = data
        .terminals
        .iter()
        .filter(|t| t.merchant_id == m.merchant_id)
        .map(|t| {
            let (lat, lon) = t
                .location
                .split_once(',')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or((31.23, 121.47));
            TerminalRequest {
                install_address: format!("{address}, COUNTER {}", t.terminal_id),
                latitude: lat,
                longitude: lon,
                encrypts_track: t.key_layout == cardsec::KeyLayout::DoubleWithTrack,
            }
        })
        .collect();
    Form {
        legal_name: m.name.clone(),
        kind,
        uscc: (kind == ApplicantKind::Company).then(|| uscc(i)),
        representative: Person {
            name: owner,
            id_number: resident_id(i, today),
            phone: format!("139{:08}", 20_000_000 + i),
        },
        registered_address: address.clone(),
        business_address: address,
        mcc: m.mcc.clone(),
        settlement_account: Account {
            bank: "DEMO BANK SHANGHAI BRANCH".into(),
            name: account_name,
            number: format!("3100{:018}", 6_222_021_000 + i as u64 * 7_919),
        },
        monthly_volume_minor: 30_000_000,
        average_ticket_minor: 8_000,
        terminals,
    }
}

fn actor(name: &str, role: &str) -> Actor {
    Actor {
        name: name.into(),
        role: role.into(),
        request_id: "demo".into(),
        source: "demo".into(),
    }
}

/// Onboards the demo merchants through the application, review and provisioning
/// path — each on the day the data set says it joined — if the store has no terminals
/// yet. Returns the key-injection output, one per demo terminal in the data set's
/// order (`None` when the store was onboarded already).
pub fn onboard_demo(
    db: &mut dyn Backend,
    hsm: &SoftwareSecurityModule,
    data: &DemoData,
    now_rfc3339: &str,
) -> Result<Option<Vec<InjectedKey>>> {
    if !db.terminals().ctx("read terminals")?.is_empty() {
        return Ok(None);
    }
    let now = DateTime::parse_from_rfc3339(now_rfc3339)
        .map_err(|_| NodeError::Invalid(format!("{now_rfc3339:?} is not a time")))?;
    let pii = PiiKey::from_hex(DEMO_PII_KEY)?;
    let kek = hsm.import_key(KeyKind::Zmk, 1, &Key::from_hex(DEMO_KEK)?)?;
    let analyst = actor("demo:risk.analyst", "risk_analyst");
    let mccs = services::reference::mcc_table(db)?;
    let operations = actor("demo:operations", "operations");
    let mut injected = vec![None; data.terminals.len()];
    for (i, m) in data.merchants.iter().enumerate() {
        let joined: DateTime<FixedOffset> = now - Duration::days(m.age_days);
        let at = joined.to_utc().to_rfc3339();
        let today = (joined.to_utc() + Duration::hours(8)).date_naive();
        let f = form(data, i, today);
        let applicant = actor(&format!("demo:applicant.{i}"), "merchant");
        let app = onboarding::create(db, &f, &pii, today, &applicant, &at)?;
        for doc in merchants::documents::required(f.kind, &f.mcc, &mccs) {
            let expires = doc.expires().then(|| today + Duration::days(3 * 365));
            let pdf = format!("%PDF-1.4\n% {} {} (demo)\n%%EOF\n", m.name, doc.name());
            onboarding::attach_document(
                db,
                app.app_id,
                doc.name(),
                expires,
                pdf.as_bytes(),
                &applicant,
                &at,
            )?;
        }
        let rating = merchants::application::risk_level(&f, &mccs).to_owned();
        for (step, who, by) in [
            (Step::Submit, Who::Applicant, &applicant),
            (Step::Assign(analyst.name.clone()), Who::Reviewer, &analyst),
            (Step::Approve(rating), Who::Reviewer, &analyst),
        ] {
            let row = onboarding::step(db, app.app_id, step, who, &pii, today, by, &at)?;
            if row.status == "checks_failed" {
                return Err(NodeError::Invalid(format!(
                    "demo application {} failed its checks: {}",
                    app.app_id, row.problems
                )));
            }
        }
        let made = onboarding::provision(db, app.app_id, hsm, Some(&kek), &operations, &at)?;
        // A merchant that joined long ago has had its periodic re-reviews since, each on
        // its due date.
        let today_now = (now.to_utc() + Duration::hours(8)).date_naive();
        for _ in 0..20 {
            let due = db
                .merchant_reviews()
                .ctx("read re-reviews")?
                .into_iter()
                .find(|r| r.merchant_id == made.merchant_id)
                .and_then(|r| NaiveDate::parse_from_str(&r.due_on, "%Y-%m-%d").ok());
            let Some(due) = due.filter(|d| *d <= today_now) else {
                break;
            };
            let on = due
                .and_hms_opt(2, 0, 0)
                .map_or_else(|| at.clone(), |t| t.and_utc().to_rfc3339());
            onboarding::complete_rereview(
                db,
                &made.merchant_id,
                merchants::application::risk_level(&f, &mccs),
                "periodic re-review: documents current, site visited",
                due,
                &analyst,
                &on,
            )?;
        }
        let mine = data
            .terminals
            .iter()
            .enumerate()
            .filter(|(_, t)| t.merchant_id == m.merchant_id)
            .map(|(j, t)| (j, t.key_layout));
        for ((j, layout), p) in mine.zip(made.terminals) {
            let KeyDelivery::UnderKek {
                cryptogram, kcv, ..
            } = p.delivery
            else {
                return Err(NodeError::Invalid(
                    "a key under the KEK was asked for".into(),
                ));
            };
            injected[j] = Some(InjectedKey {
                terminal_id: p.terminal_id,
                merchant_id: made.merchant_id.clone(),
                cryptogram,
                kcv,
                key_profile: layout.net_code().into(),
            });
        }
    }
    injected
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or_else(|| NodeError::Invalid("a demo terminal has no merchant".into()))
}
