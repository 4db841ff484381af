-- posguard schema version 5: money after the approval. Merchant pricing and settlement
-- terms, holds, the double-entry ledger (accounts and append-only transfers), captures,
-- settlement runs, per-merchant settlements, the settlement of each transaction (at
-- most once: the transaction id is the key), payout instructions, and terminal batch
-- settlements with their differences.
CREATE TABLE merchant_terms (
    merchant_id         TEXT PRIMARY KEY,
    settlement_account  TEXT NOT NULL,
    cycle               TEXT NOT NULL,
    debit_bps           BIGINT NOT NULL,
    credit_bps          BIGINT NOT NULL,
    debit_cap_minor     BIGINT NOT NULL,
    min_fee_minor       BIGINT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE holds (
    hold_id      TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    placed_by    TEXT NOT NULL,
    placed_at    TEXT NOT NULL,
    released_by  TEXT,
    released_at  TEXT
);
CREATE INDEX holds_subject ON holds (subject);

CREATE TABLE ledger_accounts (
    account_id       TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    currency         TEXT NOT NULL,
    limit_kind       TEXT NOT NULL,
    debits_posted    BIGINT NOT NULL,
    debits_pending   BIGINT NOT NULL,
    credits_posted   BIGINT NOT NULL,
    credits_pending  BIGINT NOT NULL
);

CREATE TABLE ledger_transfers (
    transfer_id     TEXT PRIMARY KEY,
    debit_account   TEXT NOT NULL,
    credit_account  TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    flow            TEXT NOT NULL,
    pending_id      TEXT,
    code            TEXT NOT NULL,
    linked          BIGINT NOT NULL,
    resolved        BIGINT NOT NULL,
    at              TEXT NOT NULL
);

CREATE TABLE captures (
    txn_id         BIGINT PRIMARY KEY,
    how            TEXT NOT NULL,
    business_date  TEXT NOT NULL,
    at             TEXT NOT NULL
);

CREATE TABLE settlement_runs (
    business_date  TEXT PRIMARY KEY,
    ran_at         TEXT NOT NULL,
    merchants      BIGINT NOT NULL,
    items          BIGINT NOT NULL,
    net_minor      BIGINT NOT NULL,
    file           TEXT NOT NULL
);

CREATE TABLE settlements (
    settlement_id       TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    business_date       TEXT NOT NULL,
    settlement_account  TEXT NOT NULL,
    gross_minor         BIGINT NOT NULL,
    refunds_minor       BIGINT NOT NULL,
    fees_minor          BIGINT NOT NULL,
    held_minor          BIGINT NOT NULL,
    net_minor           BIGINT NOT NULL,
    txn_count           BIGINT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE INDEX settlements_merchant ON settlements (merchant_id, business_date);

CREATE TABLE settlement_items (
    txn_id         BIGINT PRIMARY KEY,
    settlement_id  TEXT NOT NULL,
    fee_minor      BIGINT NOT NULL,
    net_minor      BIGINT NOT NULL
);
CREATE INDEX settlement_items_settlement ON settlement_items (settlement_id);

CREATE TABLE payouts (
    settlement_id       TEXT NOT NULL,
    seq                 BIGINT NOT NULL,
    value_date          TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL,
    settlement_account  TEXT NOT NULL,
    status              TEXT NOT NULL,
    PRIMARY KEY (settlement_id, seq)
);

CREATE TABLE batch_settlements (
    terminal_id      TEXT NOT NULL,
    batch            BIGINT NOT NULL,
    at               TEXT NOT NULL,
    result           TEXT NOT NULL,
    terminal_totals  TEXT NOT NULL,
    posguard_totals  TEXT NOT NULL,
    uploaded         BIGINT NOT NULL,
    PRIMARY KEY (terminal_id, batch)
);

CREATE TABLE batch_differences (
    terminal_id  TEXT NOT NULL,
    batch        BIGINT NOT NULL,
    stan         BIGINT NOT NULL,
    side         TEXT NOT NULL,
    rrn          TEXT,
    kind         TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    detail       TEXT NOT NULL,
    PRIMARY KEY (terminal_id, batch, stan, side)
);
