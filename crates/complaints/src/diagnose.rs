//! What happened to a complainant's money, read from the transaction's evidence —
//! its journal state and events, the store-and-forward queue's reversals and credit
//! adjustments, reconciliation's findings, settlement, payouts and holds — and said
//! twice: in words for the complainant (Chinese and English) and in detail for staff.
//! Every diagnosis names the evidence rows it rests on, and what is left to do.

use chrono::NaiveDateTime;
use records::{SafState, TxnKind, TxnState};
use serde::Serialize;

use crate::kinds::Category;

/// A transaction as the diagnosis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// Its id.
    pub txn_id: i64,
    /// Its RRN.
    pub rrn: String,
    /// Sale, refund, void, …
    pub kind: TxnKind,
    /// Where it stands in the journal.
    pub state: TxnState,
    /// Field 39 answered, if any.
    pub response_code: Option<String>,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// When (local time).
    pub at: NaiveDateTime,
}

/// A store-and-forward entry of the transaction: a reversal or a credit adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// Its id.
    pub saf_id: i64,
    /// `reversal` or `adjustment`.
    pub kind: String,
    /// Pending, done, exception.
    pub state: SafState,
    /// Sends so far.
    pub attempts: i64,
    /// Last change (local time).
    pub at: NaiveDateTime,
}

/// The transaction's settlement, if it settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// `S<date>-<merchant>`.
    pub settlement_id: String,
    /// The business date.
    pub business_date: chrono::NaiveDate,
    /// Net to the merchant for this transaction.
    pub net_minor: i64,
    /// The settlement's payouts: (value date, amount, paid).
    pub payouts: Vec<(chrono::NaiveDate, i64, bool)>,
}

/// A hold on the transaction or its merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `risk:<txn>`, `manual:<n>`, …
    pub hold_id: String,
    /// Why.
    pub reason: String,
    /// Since (local time).
    pub since: NaiveDateTime,
    /// Who released it, and when, if released.
    pub released: Option<(String, NaiveDateTime)>,
}

/// A reconciliation finding on the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its id.
    pub finding_id: String,
    /// `phantom_debit`, `reversal_not_applied`, `double_debit`, …
    pub class: String,
    /// `open`, `auto_resolving`, `auto_resolved`, `resolved`, …
    pub status: String,
    /// The business date it was found for.
    pub business_date: chrono::NaiveDate,
}

/// Everything known about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The transaction.
    pub txn: Txn,
    /// Its reversals and adjustments.
    pub advices: Vec<Advice>,
    /// Reconciliation's findings.
    pub findings: Vec<Finding>,
    /// Its settlement.
    pub settled: Option<Settled>,
    /// A hold on it or its merchant.
    pub hold: Option<Hold>,
}

/// What is left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Nothing: explain.
    Explain,
    /// A reversal is still being sent: expedite it.
    ExpediteReversal,
    /// An advice the issuer refused waits for an operator.
    OperatorException,
    /// A credit adjustment is on its way.
    AwaitAdjustment,
    /// The merchant's settlement is held: review the hold.
    ReviewHold,
    /// Not settled yet: it settles in the next run.
    AwaitSettlement,
    /// The evidence does not explain the complaint: investigate, or escalate to the
    /// issuer.
    Investigate,
}

/// A diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable, for programs (`declined`, `reversed`, `reversal_in_progress`, …).
    pub code: &'static str,
    /// For the complainant, in Chinese.
    pub zh: String,
    /// For the complainant, in English.
    pub en: String,
    /// For staff: the whole story with ids.
    pub staff: String,
    /// Whether the cardholder's money moved and stayed moved (a standing debit).
    pub debit_stands: bool,
    /// What is left to do.
    pub next: Next,
    /// The evidence rows it rests on (`txn:1`, `saf:7`, `finding:F…`, `settlement:S…`,
    /// `hold:risk:1`).
    pub evidence: Vec<String>,
}

fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

fn hm(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Diagnoses one transaction for a complaint of `category`.
pub fn diagnose(category: Category, e: &Evidence) -> Diagnosis {
    let t = &e.txn;
    let mut evidence = vec![format!("txn:{}", t.txn_id)];
    let amount = yuan(t.amount_minor);
    let reversal = e.advices.iter().rev().find(|a| a.kind == "reversal");
    let adjustment = e.advices.iter().rev().find(|a| a.kind == "adjustment");
    let code39 = t.response_code.clone().unwrap_or_else(|| "—".into());
    let d = |code, zh: String, en: String, staff: String, debit_stands, next, evidence| Diagnosis {
        code,
        zh,
        en,
        staff,
        debit_stands,
        next,
        evidence,
    };
    // A credit adjustment reconciliation asked for: the money comes back that way.
    if let Some(a) = adjustment {
        evidence.push(format!("saf:{}", a.saf_id));
        for f in &e.findings {
            evidence.push(format!("finding:{}", f.finding_id));
        }
        let found = e.findings.first().map_or(String::new(), |f| {
            format!(" ({} on {})", f.class, f.business_date)
        });
        return match a.state {
            SafState::Done => d(
                "adjusted",
                format!("经对账发现该笔{amount}元扣款有误，已于{}向发卡行发送差错退款并被受理，款项将退回您的账户。", hm(&a.at)),
                format!("Reconciliation found the {amount} debit in error; a credit adjustment was sent to your bank and accepted at {}. The money returns to your account.", hm(&a.at)),
                format!("txn {} {}: reconciliation{found}; adjustment saf {} done after {} send(s) at {}", t.txn_id, t.state.name(), a.saf_id, a.attempts, hm(&a.at)),
                false,
                Next::Explain,
                evidence,
            ),
            SafState::Pending => d(
                "adjustment_in_progress",
                format!("经对账发现该笔{amount}元扣款有误，差错退款正在向发卡行发送（第{}次）。", a.attempts.max(1)),
                format!("Reconciliation found the {amount} debit in error; the credit adjustment is being sent to your bank (attempt {}).", a.attempts.max(1)),
                format!("txn {}: reconciliation{found}; adjustment saf {} pending, {} send(s)", t.txn_id, a.saf_id, a.attempts),
                true,
                Next::AwaitAdjustment,
                evidence,
            ),
            SafState::Exception => d(
                "adjustment_exception",
                format!("该笔{amount}元差错退款需人工处理，我们会尽快联系发卡行。"),
                format!("The credit adjustment of {amount} needs an operator; we are taking it up with your bank."),
                format!("txn {}: reconciliation{found}; adjustment saf {} refused by the issuer (exception) after {} send(s)", t.txn_id, a.saf_id, a.attempts),
                true,
                Next::OperatorException,
                evidence,
            ),
        };
    }
    match t.state {
        TxnState::Declined | TxnState::Rejected => {
            let by = if t.state == TxnState::Declined {
                ("发卡行", "your bank")
            } else {
                ("收单机构", "the acquirer")
            };
            d(
                "declined",
                format!(
                    "该笔{amount}元交易于{}被{}拒绝（{code39}），没有扣款。",
                    hm(&t.at),
                    by.0
                ),
                format!(
                    "The {amount} transaction at {} was declined by {} ({code39}): no money moved.",
                    hm(&t.at),
                    by.1
                ),
                format!(
                    "txn {} {} {} response {code39}: no debit",
                    t.txn_id,
                    t.kind.name(),
                    t.state.name()
                ),
                false,
                Next::Explain,
                evidence,
            )
        }
        TxnState::TimedOut | TxnState::Unavailable if reversal.is_none() => d(
            "not_completed",
            format!("该笔{amount}元交易未能完成（{}），没有扣款。", hm(&t.at)),
            format!(
                "The {amount} transaction at {} did not complete: no money moved.",
                hm(&t.at)
            ),
            format!(
                "txn {} {}: never approved, no reversal needed",
                t.txn_id,
                t.state.name()
            ),
            false,
            Next::Explain,
            evidence,
        ),
        _ if reversal.is_some() => {
            let r = reversal.unwrap_or_else(|| unreachable!("matched on is_some"));
            evidence.push(format!("saf:{}", r.saf_id));
            match r.state {
                SafState::Done => d(
                    "reversed",
                    format!("该笔{amount}元交易发卡行已批准，但终端未收到结果；系统已于{}自动冲正并获发卡行确认，扣款将退回（以发卡行到账为准）。", hm(&r.at)),
                    format!("Your bank approved the {amount} transaction but the terminal did not get the answer; it was reversed automatically at {}, acknowledged by your bank. The debit is undone.", hm(&r.at)),
                    format!("txn {} {} response {code39}: reversal saf {} done after {} send(s) at {}", t.txn_id, t.state.name(), r.saf_id, r.attempts, hm(&r.at)),
                    false,
                    Next::Explain,
                    evidence,
                ),
                SafState::Pending => d(
                    "reversal_in_progress",
                    format!("该笔{amount}元交易的冲正正在向发卡行重发（第{}次），确认后扣款将退回。", r.attempts.max(1)),
                    format!("The reversal of the {amount} transaction is still being sent to your bank (attempt {}); the debit is undone once it is acknowledged.", r.attempts.max(1)),
                    format!("txn {} {}: reversal saf {} pending after {} send(s), last {}; alert raised", t.txn_id, t.state.name(), r.saf_id, r.attempts, hm(&r.at)),
                    true,
                    Next::ExpediteReversal,
                    evidence,
                ),
                SafState::Exception => d(
                    "reversal_exception",
                    format!("该笔{amount}元交易的冲正需人工处理，我们会尽快联系发卡行。"),
                    format!("The reversal of the {amount} transaction needs an operator; we are taking it up with your bank."),
                    format!("txn {}: reversal saf {} exception after {} send(s)", t.txn_id, r.saf_id, r.attempts),
                    true,
                    Next::OperatorException,
                    evidence,
                ),
            }
        }
        TxnState::Voided => d(
            "voided",
            format!("该笔{amount}元交易已撤销，扣款已退回。"),
            format!("The {amount} transaction was voided: the debit is undone."),
            format!("txn {} voided", t.txn_id),
            false,
            Next::Explain,
            evidence,
        ),
        TxnState::Approved | TxnState::Recorded => {
            approved(category, e, evidence, &amount, &code39)
        }
        _ => d(
            "unexplained",
            format!("我们正在核查该笔{amount}元交易。"),
            format!("We are looking into the {amount} transaction."),
            format!(
                "txn {} {}: no reversal, no finding",
                t.txn_id,
                t.state.name()
            ),
            false,
            Next::Investigate,
            evidence,
        ),
    }
}

/// An approved transaction that stands: for the cardholder it is a real sale; for the
/// merchant, where its money is.
fn approved(
    category: Category,
    e: &Evidence,
    mut evidence: Vec<String>,
    amount: &str,
    code39: &str,
) -> Diagnosis {
    let t = &e.txn;
    if t.kind == TxnKind::Refund {
        return Diagnosis {
            code: "refund_sent",
            zh: format!("该笔{amount}元退货已于{}获发卡行受理（{code39}），款项由发卡行退回您的账户（一般需1至7个工作日）。", hm(&t.at)),
            en: format!("The refund of {amount} was accepted by your bank at {} ({code39}); your bank credits it to your account (banks take 1 to 7 working days).", hm(&t.at)),
            staff: format!("txn {} refund {} approved {code39}", t.txn_id, t.rrn),
            debit_stands: false,
            next: Next::Explain,
            evidence,
        };
    }
    if !category.is_merchants() {
        let (code, next) = match category {
            Category::DebitedButFailed | Category::DebitedTwice | Category::AmountWrong => {
                ("approved_stands", Next::Investigate)
            }
            _ => ("approved_stands", Next::Explain),
        };
        return Diagnosis {
            code,
            zh: format!("该笔{amount}元交易于{}获发卡行批准（{code39}），终端已收到结果，交易成立。", hm(&t.at)),
            en: format!("The {amount} transaction at {} was approved by your bank ({code39}) and the terminal received the answer: the sale stands.", hm(&t.at)),
            staff: format!("txn {} {} {} approved, no reversal, no finding", t.txn_id, t.kind.name(), t.rrn),
            debit_stands: true,
            next,
            evidence,
        };
    }
    if let Some(h) = e.hold.as_ref().filter(|h| h.released.is_none()) {
        evidence.push(format!("hold:{}", h.hold_id));
        return Diagnosis {
            code: "held",
            zh: format!(
                "该笔{amount}元交易的结算已暂缓：{}（自{}起）。",
                h.reason,
                hm(&h.since)
            ),
            en: format!(
                "The settlement of the {amount} transaction is held: {} (since {}).",
                h.reason,
                hm(&h.since)
            ),
            staff: format!(
                "txn {}: hold {} since {}: {}",
                t.txn_id,
                h.hold_id,
                hm(&h.since),
                h.reason
            ),
            debit_stands: true,
            next: Next::ReviewHold,
            evidence,
        };
    }
    match &e.settled {
        Some(s) => {
            evidence.push(format!("settlement:{}", s.settlement_id));
            let paid: Vec<String> = s
                .payouts
                .iter()
                .map(|(d, a, p)| {
                    format!("{} {}{}", d, yuan(*a), if *p { "" } else { " (scheduled)" })
                })
                .collect();
            let all_paid = !s.payouts.is_empty() && s.payouts.iter().all(|p| p.2);
            let released = e
                .hold
                .as_ref()
                .and_then(|h| h.released.as_ref().map(|r| (h, r)));
            if let Some((h, _)) = released {
                evidence.push(format!("hold:{}", h.hold_id));
            }
            let release = released.map_or(String::new(), |(h, (by, at))| {
                format!("; hold {} released by {by} at {}", h.hold_id, hm(at))
            });
            Diagnosis {
                code: if all_paid { "paid_out" } else { "settled" },
                zh: format!(
                    "该笔{amount}元交易已于{}结算（{}），净额{}元，付款：{}。",
                    s.business_date,
                    s.settlement_id,
                    yuan(s.net_minor),
                    paid.join("，")
                ),
                en: format!(
                    "The {amount} transaction settled for {} in {}, net {}; payouts: {}.",
                    s.business_date,
                    s.settlement_id,
                    yuan(s.net_minor),
                    paid.join(", ")
                ),
                staff: format!(
                    "txn {}: settlement {} net {}{release}; payouts {}",
                    t.txn_id,
                    s.settlement_id,
                    s.net_minor,
                    paid.join(", ")
                ),
                debit_stands: true,
                next: if all_paid {
                    Next::Explain
                } else {
                    Next::AwaitSettlement
                },
                evidence,
            }
        }
        None => Diagnosis {
            code: "not_settled_yet",
            zh: format!("该笔{amount}元交易已批准，将在下一次结算中入账。"),
            en: format!("The {amount} transaction is approved and settles in the next run."),
            staff: format!("txn {}: approved, not settled, no hold", t.txn_id),
            debit_stands: true,
            next: Next::AwaitSettlement,
            evidence,
        },
    }
}
