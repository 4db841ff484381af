//! Transaction kinds and states: what a terminal asked for, and where it stands; and
//! where a store-and-forward entry stands.

/// A value stored in the journal by name.
pub trait Stored: Sized + Copy + 'static {
    /// Every value.
    const VALUES: &'static [Self];
    /// The name stored in the journal.
    fn name(self) -> &'static str;
    /// Reads a stored name.
    fn parse(s: &str) -> Option<Self> {
        Self::VALUES.iter().copied().find(|v| v.name() == s)
    }
}

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

/// Where a store-and-forward entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafState {
    /// Still to be acknowledged by the issuer: it is repeated until it is.
    Pending,
    /// The issuer answered it.
    Done,
    /// Put to an operator (and no longer repeated): a person decides.
    Exception,
}

impl SafState {
    /// Every state.
    pub const ALL: [SafState; 3] = [SafState::Pending, SafState::Done, SafState::Exception];

    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        match self {
            SafState::Pending => "pending",
            SafState::Done => "done",
            SafState::Exception => "exception",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<SafState> {
        SafState::ALL.into_iter().find(|k| k.name() == s)
    }
}

macro_rules! stored {
    ($($ty:ident),*) => {$(
        impl Stored for $ty {
            const VALUES: &'static [$ty] = &$ty::ALL;
            fn name(self) -> &'static str {
                $ty::name(self)
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
stored!(TxnKind, TxnState, SafState);

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
        for k in SafState::ALL {
            assert_eq!(SafState::parse(k.name()), Some(k));
            assert_eq!(<SafState as Stored>::parse(&k.to_string()), Some(k));
        }
        assert_eq!(TxnKind::parse("Sale"), None);
    }
}
