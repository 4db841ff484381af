//! Transaction kinds and states: what a terminal asked for, and where it stands.

use iso8583::Message;

/// What a terminal request asks for (UnionPay conventions: MTI + 3 + 25 + 60.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnKind {
    /// Balance inquiry (0200, 310000, 60.1 01).
    Balance,
    /// Sale (0200, 000000/00, 60.1 22).
    Sale,
    /// Sale void (0200, 200000/00, 60.1 23).
    Void,
    /// Refund (0220, 200000, 60.1 25).
    Refund,
    /// Pre-authorization (0100, 030000/06, 60.1 10).
    PreAuth,
    /// Pre-auth cancel (0100, 200000/06, 60.1 11).
    PreAuthCancel,
    /// Pre-auth completion (0200, 000000/06, 60.1 20).
    Completion,
    /// Terminal reversal (0400).
    Reversal,
}

impl TxnKind {
    /// Classifies a terminal request; `None` for combinations posguard does not accept.
    pub fn of(msg: &Message) -> Option<TxnKind> {
        let mti = msg.mti();
        let pc = msg.get_str(3).unwrap_or("");
        let tx_type = msg.get_str(60).and_then(|s| s.get(0..2)).unwrap_or("");
        match (mti.as_str(), pc, tx_type) {
            ("0400", _, _) => Some(TxnKind::Reversal),
            ("0200", "310000", "01") => Some(TxnKind::Balance),
            ("0200", "000000", "22") => Some(TxnKind::Sale),
            ("0200", "200000", "23") => Some(TxnKind::Void),
            ("0220", "200000", "25") => Some(TxnKind::Refund),
            ("0100", "030000", "10") => Some(TxnKind::PreAuth),
            ("0100", "200000", "11") => Some(TxnKind::PreAuthCancel),
            ("0200", "000000", "20") => Some(TxnKind::Completion),
            _ => None,
        }
    }

    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::Balance => "balance",
            TxnKind::Sale => "sale",
            TxnKind::Void => "void",
            TxnKind::Refund => "refund",
            TxnKind::PreAuth => "preauth",
            TxnKind::PreAuthCancel => "preauth_cancel",
            TxnKind::Completion => "completion",
            TxnKind::Reversal => "reversal",
        }
    }

    /// Every kind.
    pub const ALL: [TxnKind; 8] = [
        TxnKind::Balance,
        TxnKind::Sale,
        TxnKind::Void,
        TxnKind::Refund,
        TxnKind::PreAuth,
        TxnKind::PreAuthCancel,
        TxnKind::Completion,
        TxnKind::Reversal,
    ];

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<TxnKind> {
        TxnKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether the kind names an original transaction (field 61).
    pub fn needs_original(self) -> bool {
        matches!(
            self,
            TxnKind::Void | TxnKind::Refund | TxnKind::PreAuthCancel | TxnKind::Completion
        )
    }

    /// Whether the kind moves money at the issuer and so must be reversed if its
    /// outcome is unknown.
    pub fn is_reversible(self) -> bool {
        matches!(
            self,
            TxnKind::Sale
                | TxnKind::Void
                | TxnKind::PreAuth
                | TxnKind::PreAuthCancel
                | TxnKind::Completion
        )
    }
}

/// Where a transaction stands. Transitions only move forward (see [`TxnState::can_become`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// Journaled and sent to the issuer; no answer yet.
    Authorizing,
    /// The issuer approved and the terminal was (or is being) told.
    Approved,
    /// The issuer declined.
    Declined,
    /// posguard declined before anything reached the issuer.
    Rejected,
    /// No answer from the issuer in time: the terminal was told 98.
    TimedOut,
    /// The issuer link was down: nothing was sent, the terminal was told 91.
    Unavailable,
    /// A reversal has been decided and is on its way to the issuer.
    ReversalPending,
    /// The issuer acknowledged the reversal.
    Reversed,
    /// A later void of this transaction was approved.
    Voided,
    /// A terminal reversal record (kind `reversal`) that has been answered.
    Recorded,
}

impl TxnState {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Authorizing => "authorizing",
            TxnState::Approved => "approved",
            TxnState::Declined => "declined",
            TxnState::Rejected => "rejected",
            TxnState::TimedOut => "timed_out",
            TxnState::Unavailable => "unavailable",
            TxnState::ReversalPending => "reversal_pending",
            TxnState::Reversed => "reversed",
            TxnState::Voided => "voided",
            TxnState::Recorded => "recorded",
        }
    }

    /// Every state.
    pub const ALL: [TxnState; 10] = [
        TxnState::Authorizing,
        TxnState::Approved,
        TxnState::Declined,
        TxnState::Rejected,
        TxnState::TimedOut,
        TxnState::Unavailable,
        TxnState::ReversalPending,
        TxnState::Reversed,
        TxnState::Voided,
        TxnState::Recorded,
    ];

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether moving from `self` to `next` is allowed: states never go back.
    pub fn can_become(self, next: TxnState) -> bool {
        use TxnState::*;
        matches!(
            (self, next),
            (
                Authorizing,
                Approved | Declined | TimedOut | Unavailable | ReversalPending
            ) | (Approved, ReversalPending | Voided)
                | (TimedOut, ReversalPending)
                | (ReversalPending, Reversed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        use TxnState::*;
        assert!(Authorizing.can_become(Approved));
        assert!(Approved.can_become(ReversalPending));
        assert!(ReversalPending.can_become(Reversed));
        assert!(!Reversed.can_become(Approved));
        assert!(!Declined.can_become(Approved));
        assert!(!Approved.can_become(Authorizing));
        for s in TxnState::ALL {
            assert_eq!(TxnState::parse(s.name()), Some(s));
        }
        for k in TxnKind::ALL {
            assert_eq!(TxnKind::parse(k.name()), Some(k));
        }
    }
}
