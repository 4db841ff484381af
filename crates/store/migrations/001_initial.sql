-- posguard schema version 1: merchants, terminals, the transaction journal.
-- Portable SQL for SQLite and PostgreSQL: BIGINT and TEXT only; timestamps are
-- RFC 3339 text in UTC; no clear PAN, track data, PIN block or clear key anywhere.
CREATE TABLE merchants (
    merchant_id   TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    city          TEXT NOT NULL,
    mcc           TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE terminals (
    terminal_id      TEXT PRIMARY KEY,
    merchant_id      TEXT NOT NULL REFERENCES merchants (merchant_id),
    status           TEXT NOT NULL,
    tmk              TEXT NOT NULL,
    pik              TEXT,
    mak              TEXT,
    mak_prev         TEXT,
    key_version      BIGINT NOT NULL,
    batch            BIGINT NOT NULL,
    signed_on        BIGINT NOT NULL,
    install_location TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE transactions (
    txn_id         BIGINT PRIMARY KEY,
    request_key    TEXT NOT NULL UNIQUE,
    terminal_id    TEXT NOT NULL,
    merchant_id    TEXT NOT NULL,
    batch          BIGINT NOT NULL,
    stan           BIGINT NOT NULL,
    mti            TEXT NOT NULL,
    kind           TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    pan_token      TEXT NOT NULL,
    masked_pan     TEXT NOT NULL,
    rrn            TEXT NOT NULL UNIQUE,
    auth_code      TEXT,
    response_code  TEXT,
    state          TEXT NOT NULL,
    original_rrn   TEXT,
    link_stan      BIGINT,
    reply_hex      TEXT,
    local_date     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX transactions_local_date ON transactions (local_date);
CREATE INDEX transactions_terminal ON transactions (terminal_id, batch, stan);

CREATE TABLE txn_events (
    txn_id  BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    PRIMARY KEY (txn_id, seq)
);
