//! The transactions a terminal knows, with their MTI, processing code and field 60.1.

use std::fmt;

use iso8583::Mti;

/// A terminal transaction (or network message) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxKind {
    /// 0800 sign-on with key delivery.
    SignOn,
    /// 0820 sign-off.
    SignOff,
    /// 0820 echo test.
    Echo,
    /// 0200 balance inquiry.
    Balance,
    /// 0200 sale.
    Sale,
    /// 0200 sale void.
    Void,
    /// 0220 refund.
    Refund,
    /// 0100 pre-authorization.
    PreAuth,
    /// 0100 pre-authorization cancel.
    PreAuthCancel,
    /// 0200 pre-authorization completion.
    Completion,
    /// 0400 reversal of a reversible request.
    Reversal,
    /// 0500 batch settlement (60.3 `201`, field 48 the batch totals).
    Settle,
    /// 0320 batch upload of one approved transaction (60.3 `201`; 60.1, 3 and 25 are
    /// its original's).
    BatchUpload,
    /// 0320 batch end after an upload (60.3 `202`, field 48 the upload count).
    BatchEnd,
}

impl TxKind {
    /// Every kind, in report order.
    pub const ALL: [TxKind; 14] = [
        TxKind::SignOn,
        TxKind::SignOff,
        TxKind::Echo,
        TxKind::Balance,
        TxKind::Sale,
        TxKind::Void,
        TxKind::Refund,
        TxKind::PreAuth,
        TxKind::PreAuthCancel,
        TxKind::Completion,
        TxKind::Reversal,
        TxKind::Settle,
        TxKind::BatchUpload,
        TxKind::BatchEnd,
    ];

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TxKind::SignOn => "sign-on",
            TxKind::SignOff => "sign-off",
            TxKind::Echo => "echo",
            TxKind::Balance => "balance",
            TxKind::Sale => "sale",
            TxKind::Void => "void",
            TxKind::Refund => "refund",
            TxKind::PreAuth => "pre-auth",
            TxKind::PreAuthCancel => "pre-auth-cancel",
            TxKind::Completion => "completion",
            TxKind::Reversal => "reversal",
            TxKind::Settle => "settle",
            TxKind::BatchUpload => "batch-upload",
            TxKind::BatchEnd => "batch-end",
        }
    }

    /// The request MTI.
    pub fn mti(self) -> Mti {
        match self {
            TxKind::SignOn => Mti::lit("0800"),
            TxKind::SignOff | TxKind::Echo => Mti::lit("0820"),
            TxKind::Balance | TxKind::Sale | TxKind::Void | TxKind::Completion => Mti::lit("0200"),
            TxKind::Refund => Mti::lit("0220"),
            TxKind::PreAuth | TxKind::PreAuthCancel => Mti::lit("0100"),
            TxKind::Reversal => Mti::lit("0400"),
            TxKind::Settle => Mti::lit("0500"),
            TxKind::BatchUpload | TxKind::BatchEnd => Mti::lit("0320"),
        }
    }

    /// Field 3, for financial requests.
    pub fn processing_code(self) -> Option<&'static str> {
        match self {
            TxKind::Balance => Some("310000"),
            TxKind::Sale | TxKind::Completion => Some("000000"),
            TxKind::Void | TxKind::Refund | TxKind::PreAuthCancel => Some("200000"),
            TxKind::PreAuth => Some("030000"),
            _ => None,
        }
    }

    /// Field 25, for financial requests.
    pub fn condition_code(self) -> Option<&'static str> {
        match self {
            TxKind::Balance | TxKind::Sale | TxKind::Void | TxKind::Refund => Some("00"),
            TxKind::PreAuth | TxKind::PreAuthCancel | TxKind::Completion => Some("06"),
            _ => None,
        }
    }

    /// Field 60.1 (a batch upload detail carries its original's instead).
    pub fn tx_type(self) -> &'static str {
        match self {
            TxKind::SignOn
            | TxKind::SignOff
            | TxKind::Echo
            | TxKind::Reversal
            | TxKind::Settle
            | TxKind::BatchUpload
            | TxKind::BatchEnd => "00",
            TxKind::Balance => "01",
            TxKind::Sale => "22",
            TxKind::Void => "23",
            TxKind::Refund => "25",
            TxKind::PreAuth => "10",
            TxKind::PreAuthCancel => "11",
            TxKind::Completion => "20",
        }
    }

    /// Whether the terminal keeps a pending reversal while the request is unanswered.
    pub fn is_reversible(self) -> bool {
        matches!(
            self,
            TxKind::Sale
                | TxKind::Void
                | TxKind::PreAuth
                | TxKind::PreAuthCancel
                | TxKind::Completion
        )
    }

    /// Whether the request and its reply carry a MAC (every non-network message).
    pub fn is_maced(self) -> bool {
        !matches!(self, TxKind::SignOn | TxKind::SignOff | TxKind::Echo)
    }

    /// Whether this is a message of the batch settlement (0500, 0320).
    pub fn is_settlement(self) -> bool {
        matches!(
            self,
            TxKind::Settle | TxKind::BatchUpload | TxKind::BatchEnd
        )
    }

    /// Whether this is a financial request a cardholder started (not network, not reversal).
    pub fn is_financial(self) -> bool {
        self.processing_code().is_some()
    }
}

impl fmt::Display for TxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
