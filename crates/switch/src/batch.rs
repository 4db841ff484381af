//! Terminal batch settlement: the 0500 totals check, the 0320 batch upload and its
//! differences, and the captures that close a terminal's batch.
//!
//! Message layout (UnionPay conventions, `cup-pos`; every message MACed in field 64):
//!
//! - **0500** settlement: 11 STAN, 41, 42, 48 batch totals (62 digits, see
//!   `iso8583::subfields::BatchTotals`), 49 currency, 60 = `00` + batch + `201`.
//!   **0510**: 11, 12, 13, 39, 41, 42, 48 = the terminal's totals with each half's
//!   result digit set to posguard's verdict (`1` balanced, `2` not balanced), 49, 60.
//! - **0320** upload detail, one per approved sale, completion or refund of the batch:
//!   3 and 25 as the original, 4 its amount, 11 its STAN, 37 its RRN, 41, 42, 49,
//!   60 = the original's 60.1 (`22` sale, `20` completion, `25` refund) + batch + `201`.
//!   **0330**: the request's 3, 4, 11, 25, 37, 41, 42, 49, 60 echoed, 12, 13, 39.
//! - **0320** batch end: 11 a new STAN, 41, 42, 48 = number of details uploaded (n4),
//!   60 = `00` + batch + `202` (`207` when the terminal thought itself balanced; both
//!   end an open upload the same way). **0330** as above.
//!
//! posguard's totals come from the transactions it remembers for (terminal, batch):
//! debits are approved sales and completions (voided or reversed ones are no longer
//! `approved`), credits are approved refunds. posguard has no foreign BIN table: every
//! card counts as domestic, so a terminal's foreign totals must be zero to balance.
//!
//! Balanced: every debit and credit of the batch is captured (`how = "batch"`) and the
//! terminal moves to the next batch. Not balanced: posguard opens an upload session for
//! the terminal (bounded: `Config::max_batch_uploads` sessions, each holding at most
//! `Config::max_upload_entries` details); the batch end compares the upload with
//! posguard's journal by STAN, records every difference for an operator, captures
//! posguard's approved set (the journal is authoritative for online approvals; a
//! transaction only the terminal holds is not captured) and moves the terminal on.
//!
//! The last reply to each terminal's batch message is kept so that a retransmission
//! (same MTI, field 60, STAN and field 48) gets the same reply again, signed under the
//! key the repeat verified with — a terminal that lost the 0510 of a balanced batch
//! learns it balanced rather than getting a 77, and nothing is settled twice.
//! Sessions and last replies live in memory only: after a restart an upload must start
//! again from the 0500.

use std::collections::{BTreeMap, HashMap};

use domain::ResponseCode;
use iso8583::subfields::{BatchTotals, Field60, Totals};
use iso8583::Message;
use records::{BatchDiffRow, BatchSettlementRow, CaptureRow, Write};

use super::{Action, ConnId, Engine, Now, Wire};
use crate::kind::{TxnKind, TxnState};

/// 60.3 of a settlement request and of an upload detail.
const SETTLE: &str = "201";
/// 60.3 of a batch end after a settlement that did not balance.
const UPLOAD_END: &str = "202";
/// 60.3 of a batch end from a terminal that considered itself balanced.
const UPLOAD_END_BALANCED: &str = "207";

/// Upload sessions and the last batch reply per terminal.
#[derive(Debug, Default)]
pub(super) struct Batches {
    /// Open uploads, by terminal id (one per terminal: a new 0500 replaces it).
    sessions: HashMap<String, Session>,
    /// Sessions opened so far: orders sessions for eviction at the bound.
    opened: u64,
    /// The last batch reply sent to each terminal (one per registered terminal).
    last: HashMap<String, Answered>,
}

#[derive(Debug)]
struct Session {
    batch: i64,
    /// Field 48 of the 0500 that opened it.
    terminal_totals: String,
    seq: u64,
    entries: BTreeMap<i64, Uploaded>,
}

/// One uploaded detail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uploaded {
    kind: TxnKind,
    amount_minor: i64,
    rrn: Option<String>,
}

#[derive(Debug)]
struct Answered {
    request: String,
    /// Kept as a message and signed again when repeated: the terminal may have signed
    /// on (new MAC key) or reconnected (new TPDU) in between.
    reply: Message,
}

/// One transaction of posguard's set for a batch: approved sale, completion or refund.
#[derive(Debug, Clone)]
struct Held {
    txn_id: i64,
    stan: i64,
    kind: TxnKind,
    amount_minor: i64,
    rrn: String,
    local_date: String,
}

/// Why an upload detail was not recorded.
enum NotRecorded {
    NoSession,
    Full,
}

impl Batches {
    /// Identifies a request for retransmission matching.
    fn request_id(req: &Message) -> String {
        format!(
            "{}/{}/{}/{}",
            req.mti(),
            req.get_str(60).unwrap_or(""),
            req.get_str(11).unwrap_or(""),
            req.get_str(48).unwrap_or("")
        )
    }

    fn repeat(&self, tid: &str, req: &Message) -> Option<Message> {
        let a = self.last.get(tid)?;
        (a.request == Self::request_id(req)).then(|| a.reply.clone())
    }

    fn remember(&mut self, tid: &str, req: &Message, reply: &Message) {
        self.last.insert(
            tid.to_owned(),
            Answered {
                request: Self::request_id(req),
                reply: reply.clone(),
            },
        );
    }

    /// Opens (or restarts) the terminal's upload, evicting the oldest at the bound.
    fn open(&mut self, tid: &str, batch: i64, terminal_totals: String, max: usize) {
        if !self.sessions.contains_key(tid) && self.sessions.len() >= max.max(1) {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.seq)
                .map(|(t, _)| t.clone())
            {
                tracing::warn!(terminal = %oldest, "too many open batch uploads: the oldest is dropped");
                self.sessions.remove(&oldest);
            }
        }
        self.opened += 1;
        self.sessions.insert(
            tid.to_owned(),
            Session {
                batch,
                terminal_totals,
                seq: self.opened,
                entries: BTreeMap::new(),
            },
        );
    }

    fn record(
        &mut self,
        tid: &str,
        batch: i64,
        stan: i64,
        entry: Uploaded,
        max: usize,
    ) -> Result<(), NotRecorded> {
        let s = self
            .sessions
            .get_mut(tid)
            .filter(|s| s.batch == batch)
            .ok_or(NotRecorded::NoSession)?;
        if !s.entries.contains_key(&stan) && s.entries.len() >= max {
            return Err(NotRecorded::Full);
        }
        // A repeated detail (same STAN) replaces the first: uploads are idempotent.
        s.entries.insert(stan, entry);
        Ok(())
    }

    fn take(&mut self, tid: &str, batch: i64) -> Option<Session> {
        if self.sessions.get(tid)?.batch != batch {
            return None;
        }
        self.sessions.remove(tid)
    }
}

impl Engine {
    /// A 0500 or 0320 from a terminal: MAC checked like a financial request, then
    /// settlement, upload detail or batch end.
    pub(super) fn batch_message(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        raw: &[u8],
        req: Message,
    ) -> Vec<Action> {
        let wire = match self.verify_terminal(now, conn, wire, raw, &req) {
            Ok(w) => w,
            Err(reply) => return reply,
        };
        let tid = req.get_str(41).unwrap_or("").to_owned();
        if let Some(mut reply) = self.batches.repeat(&tid, &req) {
            tracing::info!(terminal = %tid, mti = %req.mti(), "repeated batch message answered again");
            return match self.sign_for_terminal(&tid, wire, &mut reply) {
                Some(bytes) => vec![Action::SendTerminal {
                    conn,
                    frame: wire.wrap(&bytes),
                }],
                None => vec![Action::CloseTerminal { conn }],
            };
        }
        let (Ok(f60), Ok(_)) = (Field60::read(&req), req.stan()) else {
            return self.signed_reply_now(conn, wire, &req, ResponseCode::FORMAT_ERROR);
        };
        if let Err(code) = self.batch_allowed(&tid, &req, &f60) {
            return self.signed_reply_now(conn, wire, &req, code);
        }
        let batch = i64::from(f60.batch);
        match (req.mti().as_str(), f60.net_code.as_deref()) {
            ("0500", Some(SETTLE)) => self.settle(now, conn, wire, &req, &tid, batch),
            ("0320", Some(SETTLE)) => self.upload_detail(now, conn, wire, &req, &tid, &f60),
            ("0320", Some(code @ (UPLOAD_END | UPLOAD_END_BALANCED))) => {
                if code == UPLOAD_END_BALANCED {
                    tracing::info!(terminal = %tid, batch, "batch end from a terminal that considered itself balanced");
                }
                self.upload_end(now, conn, wire, &req, &tid, batch)
            }
            _ => self.signed_reply_now(conn, wire, &req, ResponseCode::INVALID_TRANSACTION),
        }
    }

    /// The checks financial requests get that apply to batch messages: merchant,
    /// terminal status and the current batch (77 otherwise).
    fn batch_allowed(&self, tid: &str, req: &Message, f60: &Field60) -> Result<(), ResponseCode> {
        let term = self
            .terminals
            .get(tid)
            .ok_or(ResponseCode::TERMINAL_NOT_REGISTERED)?;
        if req.get_str(42) != Some(term.row.merchant_id.as_str()) {
            return Err(ResponseCode::INVALID_MERCHANT);
        }
        if term.row.status != "active" {
            return Err(ResponseCode::NOT_PERMITTED_TERMINAL);
        }
        if i64::from(f60.batch) != term.row.batch {
            return Err(ResponseCode::BATCH_MISMATCH);
        }
        Ok(())
    }

    fn settle(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        tid: &str,
        batch: i64,
    ) -> Vec<Action> {
        let Ok(theirs) = BatchTotals::read(req) else {
            return self.signed_reply_now(conn, wire, req, ResponseCode::FORMAT_ERROR);
        };
        let sent = req.get_str(48).unwrap_or("").to_owned();
        let held = self.held(tid, batch);
        let ours = totals_of(&held);
        let verdict = |t: Totals, o: Totals| Totals {
            result: if same_totals(t, o) { 1 } else { 2 },
            ..t
        };
        let answer = BatchTotals {
            domestic: verdict(theirs.domestic, ours.domestic),
            foreign: verdict(theirs.foreign, ours.foreign),
        };
        let balanced = answer.domestic.result == 1 && answer.foreign.result == 1;
        let mut writes = vec![Write::BatchSettlement(BatchSettlementRow {
            terminal_id: tid.to_owned(),
            batch,
            at: self.rfc3339(now),
            result: if balanced { "balanced" } else { "not_balanced" }.into(),
            terminal_totals: sent.clone(),
            posguard_totals: digits(&ours),
            uploaded: 0,
        })];
        if balanced {
            tracing::info!(terminal = %tid, batch, transactions = held.len(), "batch balanced");
            self.batches.sessions.remove(tid);
            writes.extend(self.captures(now, &held));
            writes.extend(self.advance_batch(now, tid));
        } else {
            tracing::warn!(
                terminal = %tid,
                batch,
                terminal_totals = %sent,
                posguard_totals = %digits(&ours),
                "batch not balanced: waiting for the terminal's upload"
            );
            self.batches
                .open(tid, batch, sent, self.cfg.max_batch_uploads);
        }
        let f48 = answer.to_text().ok();
        self.batch_reply(
            conn,
            wire,
            req,
            ResponseCode::APPROVED,
            f48.as_deref(),
            now,
            writes,
        )
    }

    fn upload_detail(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        tid: &str,
        f60: &Field60,
    ) -> Vec<Action> {
        let kind = match f60.tx_type.as_str() {
            "22" => TxnKind::Sale,
            "20" => TxnKind::Completion,
            "25" => TxnKind::Refund,
            _ => return self.signed_reply_now(conn, wire, req, ResponseCode::INVALID_TRANSACTION),
        };
        let (Some(amount_minor), Ok(stan)) = (
            req.get_str(4).and_then(|s| s.parse::<i64>().ok()),
            req.stan(),
        ) else {
            return self.signed_reply_now(conn, wire, req, ResponseCode::FORMAT_ERROR);
        };
        let entry = Uploaded {
            kind,
            amount_minor,
            rrn: req.get_str(37).map(str::to_owned),
        };
        let batch = i64::from(f60.batch);
        let max = self.cfg.max_upload_entries;
        let code = match self
            .batches
            .record(tid, batch, i64::from(stan.get()), entry, max)
        {
            Ok(()) => ResponseCode::APPROVED,
            Err(NotRecorded::NoSession) => {
                tracing::warn!(terminal = %tid, batch, "batch upload without a settlement that asked for it");
                ResponseCode::INVALID_TRANSACTION
            }
            Err(NotRecorded::Full) => {
                tracing::warn!(terminal = %tid, batch, max, "batch upload holds its maximum of details");
                ResponseCode::INVALID_TRANSACTION
            }
        };
        self.batch_reply(conn, wire, req, code, None, now, Vec::new())
    }

    fn upload_end(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        tid: &str,
        batch: i64,
    ) -> Vec<Action> {
        let Some(announced) = req
            .get_str(48)
            .filter(|s| s.len() == 4)
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return self.signed_reply_now(conn, wire, req, ResponseCode::FORMAT_ERROR);
        };
        let Some(session) = self.batches.take(tid, batch) else {
            tracing::warn!(terminal = %tid, batch, "batch end without an open upload");
            return self.batch_reply(
                conn,
                wire,
                req,
                ResponseCode::INVALID_TRANSACTION,
                None,
                now,
                Vec::new(),
            );
        };
        let held = self.held(tid, batch);
        let received = session.entries.len() as i64;
        let known = self.journal_of(tid, batch);
        let mut diffs = differences(tid, batch, &held, &session.entries, &known);
        if announced != received {
            diffs.push(BatchDiffRow {
                terminal_id: tid.to_owned(),
                batch,
                stan: 0,
                side: "count_differs".into(),
                rrn: None,
                kind: String::new(),
                amount_minor: 0,
                detail: format!(
                    "the batch end announces {announced} uploads; posguard received {received}"
                ),
            });
        }
        for d in &diffs {
            tracing::warn!(
                terminal = %tid,
                batch,
                stan = d.stan,
                side = %d.side,
                kind = %d.kind,
                amount_minor = d.amount_minor,
                detail = %d.detail,
                "batch upload difference"
            );
        }
        tracing::info!(terminal = %tid, batch, uploaded = received, differences = diffs.len(), "batch uploaded and closed");
        let mut writes = vec![Write::BatchSettlement(BatchSettlementRow {
            terminal_id: tid.to_owned(),
            batch,
            at: self.rfc3339(now),
            result: "uploaded".into(),
            terminal_totals: session.terminal_totals,
            posguard_totals: digits(&totals_of(&held)),
            uploaded: received,
        })];
        writes.extend(diffs.into_iter().map(Write::BatchDiff));
        writes.extend(self.captures(now, &held));
        writes.extend(self.advance_batch(now, tid));
        self.batch_reply(conn, wire, req, ResponseCode::APPROVED, None, now, writes)
    }

    /// posguard's set for a batch: its approved sales, completions and refunds, by STAN.
    fn held(&self, tid: &str, batch: i64) -> Vec<Held> {
        let from = (tid.to_owned(), batch, i64::MIN);
        let to = (tid.to_owned(), batch, i64::MAX);
        self.by_terminal_stan
            .range(from..=to)
            .filter_map(|(_, id)| self.txns.get(id))
            .filter(|t| {
                t.state == TxnState::Approved
                    && matches!(
                        t.kind,
                        TxnKind::Sale | TxnKind::Completion | TxnKind::Refund
                    )
            })
            .map(|t| Held {
                txn_id: t.row.txn_id,
                stan: t.row.stan,
                kind: t.kind,
                amount_minor: t.row.amount_minor,
                rrn: t.row.rrn.clone(),
                local_date: t.row.local_date.clone(),
            })
            .collect()
    }

    /// Every transaction posguard remembers for a batch, whatever its state, by STAN:
    /// `kind state`, to explain a transaction only the terminal counted.
    fn journal_of(&self, tid: &str, batch: i64) -> BTreeMap<i64, String> {
        let from = (tid.to_owned(), batch, i64::MIN);
        let to = (tid.to_owned(), batch, i64::MAX);
        self.by_terminal_stan
            .range(from..=to)
            .filter_map(|((_, _, stan), id)| {
                let t = self.txns.get(id)?;
                Some((*stan, format!("{} {}", t.kind.name(), t.state.name())))
            })
            .collect()
    }

    fn captures(&self, now: Now, held: &[Held]) -> Vec<Write> {
        let at = self.rfc3339(now);
        held.iter()
            .map(|h| {
                Write::Capture(CaptureRow {
                    txn_id: h.txn_id,
                    how: "batch".into(),
                    business_date: h.local_date.clone(),
                    at: at.clone(),
                })
            })
            .collect()
    }

    /// Moves the terminal to its next batch (in memory now; the write makes it durable).
    fn advance_batch(&mut self, now: Now, tid: &str) -> Option<Write> {
        let mut row = self.terminals.get(tid)?.row.clone();
        row.batch = next_batch(row.batch);
        row.updated_at = self.rfc3339(now);
        self.put_terminal(row.clone());
        Some(Write::Terminal(row))
    }

    /// Signs a batch reply, remembers it for retransmissions, and sends it once
    /// `writes` are durable.
    #[allow(clippy::too_many_arguments)]
    fn batch_reply(
        &mut self,
        conn: ConnId,
        wire: Wire,
        req: &Message,
        code: ResponseCode,
        f48: Option<&str>,
        now: Now,
        writes: Vec<Write>,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let local = self.local(now);
        let mut reply = Message::new(req.mti().response());
        for f in [3, 4, 11, 25, 37, 41, 42, 49, 60] {
            if let Some(v) = req.get(f) {
                reply.set(f, v);
            }
        }
        reply.set(12, local.format("%H%M%S").to_string());
        reply.set(13, local.format("%m%d").to_string());
        reply.set_response_code(code);
        if let Some(t) = f48 {
            reply.set(48, t);
        }
        let then = match self.sign_for_terminal(&tid, wire, &mut reply) {
            Some(bytes) => {
                self.batches.remember(&tid, req, &reply);
                vec![Action::SendTerminal {
                    conn,
                    frame: wire.wrap(&bytes),
                }]
            }
            None => self.unsigned_reply(conn, wire, req, code),
        };
        if writes.is_empty() {
            return then;
        }
        vec![Action::Persist {
            writes,
            then,
            on_fail: vec![Action::CloseTerminal { conn }],
        }]
    }
}

/// The totals of a set (all domestic: posguard has no foreign BIN table).
fn totals_of(held: &[Held]) -> BatchTotals {
    let mut d = Totals::default();
    for h in held {
        let amount = u64::try_from(h.amount_minor).unwrap_or(0);
        if h.kind == TxnKind::Refund {
            d.credit_minor += amount;
            d.credit_count += 1;
        } else {
            d.debit_minor += amount;
            d.debit_count += 1;
        }
    }
    BatchTotals {
        domestic: d,
        foreign: Totals::default(),
    }
}

/// Amounts and counts agree (the result digit is not compared).
fn same_totals(a: Totals, b: Totals) -> bool {
    (a.debit_minor, a.debit_count, a.credit_minor, a.credit_count)
        == (b.debit_minor, b.debit_count, b.credit_minor, b.credit_count)
}

/// Totals as field 48's 62 digits; wider where a value outgrows its digits, so the
/// record still says what posguard counted.
fn digits(t: &BatchTotals) -> String {
    [t.domestic, t.foreign]
        .iter()
        .map(|h| {
            format!(
                "{:012}{:03}{:012}{:03}{}",
                h.debit_minor, h.debit_count, h.credit_minor, h.credit_count, h.result
            )
        })
        .collect()
}

/// The batch after `batch` (60.2 is six digits; 0 is not a batch number).
fn next_batch(batch: i64) -> i64 {
    if batch >= 999_999 {
        1
    } else {
        batch + 1
    }
}

/// What the terminal uploaded against what posguard holds, by STAN.
fn differences(
    tid: &str,
    batch: i64,
    held: &[Held],
    uploaded: &BTreeMap<i64, Uploaded>,
    known: &BTreeMap<i64, String>,
) -> Vec<BatchDiffRow> {
    let row = |stan: i64, side: &str, rrn: Option<String>, kind: TxnKind, amount_minor, detail| {
        BatchDiffRow {
            terminal_id: tid.to_owned(),
            batch,
            stan,
            side: side.into(),
            rrn,
            kind: kind.name().into(),
            amount_minor,
            detail,
        }
    };
    let ours: BTreeMap<i64, &Held> = held.iter().map(|h| (h.stan, h)).collect();
    let mut out = Vec::new();
    for (stan, h) in &ours {
        match uploaded.get(stan) {
            None => out.push(row(
                *stan,
                "posguard_only",
                Some(h.rrn.clone()),
                h.kind,
                h.amount_minor,
                "approved in posguard's journal; the terminal did not upload it".into(),
            )),
            Some(u) if u.kind != h.kind => {
                let detail = format!("the terminal uploaded a {} with this STAN", u.kind.name());
                out.push(row(
                    *stan,
                    "posguard_only",
                    Some(h.rrn.clone()),
                    h.kind,
                    h.amount_minor,
                    detail,
                ));
                let detail = format!("posguard holds a {} with this STAN", h.kind.name());
                out.push(row(
                    *stan,
                    "terminal_only",
                    u.rrn.clone(),
                    u.kind,
                    u.amount_minor,
                    detail,
                ));
            }
            Some(u) if u.amount_minor != h.amount_minor => out.push(row(
                *stan,
                "amount_differs",
                Some(h.rrn.clone()),
                h.kind,
                h.amount_minor,
                format!("the terminal uploaded {}", u.amount_minor),
            )),
            Some(_) => {}
        }
    }
    for (stan, u) in uploaded {
        if !ours.contains_key(stan) {
            let detail = match known.get(stan) {
                Some(k) => format!("posguard's journal has it as {k}: not captured"),
                None => "unknown to posguard's journal: not captured".to_owned(),
            };
            out.push(row(
                *stan,
                "terminal_only",
                u.rrn.clone(),
                u.kind,
                u.amount_minor,
                detail,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(stan: i64, kind: TxnKind, amount_minor: i64) -> Held {
        Held {
            txn_id: stan * 10,
            stan,
            kind,
            amount_minor,
            rrn: format!("{stan:012}"),
            local_date: "2026-01-01".into(),
        }
    }

    fn up(kind: TxnKind, amount_minor: i64) -> Uploaded {
        Uploaded {
            kind,
            amount_minor,
            rrn: None,
        }
    }

    #[test]
    fn totals_split_debits_and_credits() {
        let set = [
            held(1, TxnKind::Sale, 1_000),
            held(2, TxnKind::Completion, 250),
            held(3, TxnKind::Refund, 99),
        ];
        expect_test::expect![[r#"
            "00000000125000200000000009900100000000000000000000000000000000"
        "#]]
        .assert_debug_eq(&digits(&totals_of(&set)));
    }

    #[test]
    fn differences_by_stan() {
        let set = [
            held(1, TxnKind::Sale, 1_000),
            held(2, TxnKind::Sale, 500),
            held(3, TxnKind::Refund, 99),
            held(4, TxnKind::Sale, 7),
        ];
        let uploaded: BTreeMap<i64, Uploaded> = [
            (1, up(TxnKind::Sale, 1_000)),
            (3, up(TxnKind::Refund, 100)),
            (4, up(TxnKind::Refund, 7)),
            (8, up(TxnKind::Sale, 30)),
            (9, up(TxnKind::Sale, 42)),
        ]
        .into_iter()
        .collect();
        let known = [
            (4, "sale approved".to_owned()),
            (8, "sale voided".to_owned()),
        ]
        .into_iter()
        .collect();
        let shown: Vec<String> = differences("T1", 5, &set, &uploaded, &known)
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} {} {}",
                    d.stan, d.side, d.kind, d.amount_minor, d.detail
                )
            })
            .collect();
        expect_test::expect![[r#"
            [
                "2 posguard_only sale 500 approved in posguard's journal; the terminal did not upload it",
                "3 amount_differs refund 99 the terminal uploaded 100",
                "4 posguard_only sale 7 the terminal uploaded a refund with this STAN",
                "4 terminal_only refund 7 posguard holds a sale with this STAN",
                "8 terminal_only sale 30 posguard's journal has it as sale voided: not captured",
                "9 terminal_only sale 42 unknown to posguard's journal: not captured",
            ]
        "#]]
        .assert_debug_eq(&shown);
    }

    #[test]
    fn sessions_are_bounded() {
        let mut b = Batches::default();
        b.open("T1", 1, String::new(), 2);
        b.open("T2", 1, String::new(), 2);
        b.open("T3", 1, String::new(), 2);
        assert!(!b.sessions.contains_key("T1"), "the oldest is dropped");
        assert_eq!(b.sessions.len(), 2);
        assert!(b.record("T2", 1, 1, up(TxnKind::Sale, 1), 1).is_ok());
        assert!(
            b.record("T2", 1, 1, up(TxnKind::Sale, 2), 1).is_ok(),
            "a repeat replaces"
        );
        assert!(matches!(
            b.record("T2", 1, 2, up(TxnKind::Sale, 1), 1),
            Err(NotRecorded::Full)
        ));
        assert!(matches!(
            b.record("T2", 2, 1, up(TxnKind::Sale, 1), 1),
            Err(NotRecorded::NoSession)
        ));
        assert!(b.take("T2", 2).is_none());
        assert_eq!(b.take("T2", 1).map(|s| s.entries.len()), Some(1));
    }

    #[test]
    fn batch_numbers_wrap_at_six_digits() {
        assert_eq!(next_batch(1), 2);
        assert_eq!(next_batch(999_999), 1);
    }
}
