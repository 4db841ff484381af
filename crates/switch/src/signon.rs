//! Sign-on and working keys, and the MAC check every terminal request passes.
//!
//! A sign-on (0800) carries no MAC: anyone who knows a terminal and merchant id can
//! send one. So a sign-on never changes the keys a terminal is using. The working keys
//! it delivers (under the terminal's TMK, field 62) are *pending*; they become current
//! only when a request MACed under the pending MAK arrives, which proves the sender
//! unwrapped them, that is, holds the TMK. Until then the current keys (and the
//! previous MAK, for messages signed just before a key change) stay valid. A forged
//! sign-on therefore changes nothing for the real terminal; the most it does is replace
//! pending keys the real terminal has not used yet, so that terminal signs on again.
//!
//! Each terminal has a key profile set at provisioning (`001` single, `003` double,
//! `004` double with a track key, under which track 2 then arrives encrypted); a
//! sign-on asking for weaker keys is refused with 63,
//! and sign-ons beyond `Config::max_sign_ons_per_minute` per terminal get 65.
//!
//! A sign-off (0820, 60.3 `002`) carries no MAC either, so it is acknowledged and
//! logged but disables nothing: the keys in use are retired by the next sign-on the
//! terminal completes, never by a message anyone could send.

use cardsec::{KeyLayout, SecError, WrappedKey};
use domain::ResponseCode;
use iso8583::subfields::Field60;
use iso8583::Message;
use records::{TerminalRow, Write};

use super::{Action, ConnId, Engine, Now, TerminalDialect, TerminalState, Wire};
use crate::msgs::received_mac;

/// How strong a layout's keys are: a terminal may not ask for less than its profile.
fn strength(layout: KeyLayout) -> u8 {
    match layout {
        KeyLayout::Single => 1,
        KeyLayout::Double => 2,
        KeyLayout::DoubleWithTrack => 3,
    }
}

impl TerminalState {
    /// The in-memory state of a stored terminal: its keys parsed once.
    pub(super) fn from_row(row: TerminalRow) -> TerminalState {
        let parse = |s: &Option<String>| s.as_deref().and_then(|t| WrappedKey::parse(t).ok());
        let pending_mak = row.pending_pik.as_ref().and(parse(&row.pending_mak));
        TerminalState {
            tmk: WrappedKey::parse(&row.tmk).ok(),
            pik: parse(&row.pik),
            maks: [parse(&row.mak), parse(&row.mak_prev)]
                .into_iter()
                .flatten()
                .collect(),
            pending_mak,
            tdk: parse(&row.tdk),
            sign_ons: Default::default(),
            row,
        }
    }
}

impl Engine {
    pub(super) fn put_terminal(&mut self, row: TerminalRow) {
        let sign_ons = self
            .terminals
            .get_mut(&row.terminal_id)
            .map(|t| std::mem::take(&mut t.sign_ons))
            .unwrap_or_default();
        let mut state = TerminalState::from_row(row);
        state.sign_ons = sign_ons;
        self.terminals.insert(state.row.terminal_id.clone(), state);
    }

    /// Network management: sign-on (0800), echo and sign-off (0820).
    pub(super) fn network(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: Message,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let Some(term) = self.terminals.get(&tid) else {
            tracing::warn!(terminal = %tid, "sign-on from an unknown terminal");
            return self.unsigned_reply(conn, wire, &req, ResponseCode::TERMINAL_NOT_REGISTERED);
        };
        // A provisioned terminal signs on at installation, before its first sale.
        if term.row.status != "active" && term.row.status != "pending_install" {
            return self.unsigned_reply(conn, wire, &req, ResponseCode::NOT_PERMITTED_TERMINAL);
        }
        let Ok(f60) = Field60::read(&req) else {
            return self.unsigned_reply(conn, wire, &req, ResponseCode::FORMAT_ERROR);
        };
        let code = f60.net_code.clone().unwrap_or_default();
        match (req.mti().as_str(), code.as_str()) {
            ("0800", c) => match KeyLayout::from_net_code(c) {
                Some(layout) => self.sign_on(now, conn, wire, req, layout),
                None => self.unsigned_reply(conn, wire, &req, ResponseCode::FORMAT_ERROR),
            },
            ("0820", "301") => self.unsigned_reply(conn, wire, &req, ResponseCode::APPROVED),
            ("0820", "002") => {
                tracing::info!(terminal = %tid, "sign-off acknowledged; the keys in use stay until the next sign-on is used");
                self.unsigned_reply(conn, wire, &req, ResponseCode::APPROVED)
            }
            _ => self.unsigned_reply(conn, wire, &req, ResponseCode::INVALID_TRANSACTION),
        }
    }

    /// Whether this sign-on is within the terminal's rate; records it if so.
    fn sign_on_allowed(&mut self, now: Now, tid: &str) -> bool {
        let limit = self.cfg.max_sign_ons_per_minute.max(1);
        let Some(term) = self.terminals.get_mut(tid) else {
            return false;
        };
        while term
            .sign_ons
            .front()
            .is_some_and(|&at| at <= now.unix_ms - 60_000)
        {
            term.sign_ons.pop_front();
        }
        if term.sign_ons.len() >= limit {
            return false;
        }
        term.sign_ons.push_back(now.unix_ms);
        true
    }

    fn sign_on(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        req: Message,
        layout: KeyLayout,
    ) -> Vec<Action> {
        let tid = req.get_str(41).unwrap_or("").to_owned();
        let Some(term) = self.terminals.get(&tid) else {
            return vec![];
        };
        let profile = KeyLayout::from_net_code(&term.row.key_profile).unwrap_or(KeyLayout::Double);
        if strength(layout) < strength(profile) {
            tracing::warn!(terminal = %tid, asked = layout.net_code(), profile = profile.net_code(), "sign-on asking for weaker keys than the terminal's profile refused");
            return self.unsigned_reply(conn, wire, &req, ResponseCode::SECURITY_VIOLATION);
        }
        let Some(tmk) = term.tmk.clone() else {
            tracing::error!(terminal = %tid, "terminal master key unreadable");
            return self.unsigned_reply(conn, wire, &req, ResponseCode::SYSTEM_MALFUNCTION);
        };
        if !self.sign_on_allowed(now, &tid) {
            tracing::warn!(terminal = %tid, limit = self.cfg.max_sign_ons_per_minute, "sign-on rate exceeded");
            return self.unsigned_reply(conn, wire, &req, ResponseCode::OVER_FREQUENCY_LIMIT);
        }
        let Some(term) = self.terminals.get(&tid) else {
            return vec![];
        };
        let pending_version = term.pending_mak.as_ref().map_or(0, WrappedKey::version);
        let version = (term.row.key_version as u32).max(pending_version) + 1;
        let keys = match self.hsm.generate_working_keys(&tmk, layout, version) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "working key generation failed");
                return self.unsigned_reply(conn, wire, &req, ResponseCode::SYSTEM_MALFUNCTION);
            }
        };
        let mut row = term.row.clone();
        row.pending_pik = Some(keys.pik.to_text());
        row.pending_mak = Some(keys.mak.to_text());
        row.pending_tdk = keys.tdk.as_ref().map(WrappedKey::to_text);
        row.updated_at = self.rfc3339(now);
        let local = self.local(now);
        let mut reply = Message::new(req.mti().response());
        reply.set(11, req.get(11).unwrap_or(b"000000"));
        reply.set(12, local.format("%H%M%S").to_string());
        reply.set(13, local.format("%m%d").to_string());
        reply.set(32, self.cfg.acquirer_id.as_str());
        reply.set(37, format!("{:012}", 0));
        reply.set_response_code(ResponseCode::APPROVED);
        reply.set(41, row.terminal_id.as_str());
        reply.set(42, row.merchant_id.as_str());
        let f60 = Field60 {
            tx_type: "00".into(),
            batch: row.batch as u32,
            net_code: Some(layout.net_code().into()),
            rest: String::new(),
        };
        reply.set(60, f60.to_text());
        match wire.dialect {
            TerminalDialect::CupPos => reply.set(62, &keys.field62),
            // Field 62 is text in iso87-ascii: the key block travels as hex.
            TerminalDialect::Iso87Ascii => reply.set(62, hex::encode_upper(&keys.field62)),
        };
        self.put_terminal(row.clone());
        let then = match wire.codec().pack(&reply) {
            Ok(bytes) => vec![Action::SendTerminal {
                conn,
                frame: wire.wrap(&bytes),
            }],
            Err(e) => {
                tracing::error!(error = %e, "sign-on reply does not pack");
                vec![Action::CloseTerminal { conn }]
            }
        };
        tracing::info!(terminal = %row.terminal_id, version, "working keys delivered; current once used");
        vec![Action::Persist {
            writes: vec![Write::Terminal(row)],
            then,
            on_fail: vec![Action::CloseTerminal { conn }],
        }]
    }

    /// Checks a MACed terminal request: the terminal is known and has keys, and the MAC
    /// verifies under one of them (current, previous, or pending — which then become
    /// current: the terminal has shown it holds them). Returns the wire carrying the
    /// key version that verified (replies are signed under it), or the unsigned reply
    /// to send instead.
    pub(super) fn verify_terminal(
        &mut self,
        now: Now,
        conn: ConnId,
        wire: Wire,
        raw: &[u8],
        req: &Message,
    ) -> Result<Wire, Vec<Action>> {
        let tid = req.get_str(41).unwrap_or("");
        let Some(term) = self.terminals.get(tid) else {
            tracing::warn!(terminal = %tid, "request from an unknown terminal");
            return Err(self.unsigned_reply(
                conn,
                wire,
                req,
                ResponseCode::TERMINAL_NOT_REGISTERED,
            ));
        };
        if term.maks.is_empty() && term.pending_mak.is_none() {
            return Err(self.unsigned_reply(conn, wire, req, ResponseCode::MAC_ERROR));
        }
        let received = received_mac(wire.codec(), raw, req).ok_or(SecError::MacMismatch);
        let verified = received.and_then(|(data, mac)| {
            self.hsm
                .verify_mac_any(&term.maks, wire.mac(), data, &mac)
                .map(|v| (v, false))
                .or_else(|e| match &term.pending_mak {
                    Some(mak) => self
                        .hsm
                        .verify_mac(mak, wire.mac(), data, &mac)
                        .map(|()| (mak.version(), true)),
                    None => Err(e),
                })
        });
        let wire = Wire {
            mac_version: verified.as_ref().ok().map(|(v, _)| *v),
            ..wire
        };
        match verified {
            Ok((_, false)) => Ok(wire),
            Ok((version, true)) => {
                self.promote(now, tid, version);
                Ok(wire)
            }
            Err(e) => {
                tracing::warn!(terminal = %tid, error = %e, "terminal MAC did not verify");
                Err(self.unsigned_reply(conn, wire, req, ResponseCode::MAC_ERROR))
            }
        }
    }

    /// The terminal used its pending keys: they become current, the current MAK
    /// becomes the previous one. The change is written before the request's own
    /// writes (`Engine::on_terminal` puts it first).
    fn promote(&mut self, now: Now, tid: &str, version: u32) {
        let Some(term) = self.terminals.get(tid) else {
            return;
        };
        let mut row = term.row.clone();
        row.mak_prev = row.mak.take();
        row.pik = row.pending_pik.take();
        row.mak = row.pending_mak.take();
        row.tdk = row.pending_tdk.take();
        row.key_version = i64::from(version);
        row.signed_on = true;
        row.updated_at = self.rfc3339(now);
        tracing::info!(terminal = %tid, version, "terminal used its new working keys; they are current");
        self.put_terminal(row.clone());
        self.promoted = Some(Write::Terminal(row));
    }
}
