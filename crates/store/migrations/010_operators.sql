-- posguard schema version 10: the people and systems who use the API, their sessions,
-- and the audit trail of every change made through the API or the command line.
-- Passwords are argon2id hashes; session tokens and API keys are stored as SHA-256
-- hashes only (the clear token exists in the client and in one response).
CREATE TABLE operators (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    merchant_ids  TEXT NOT NULL DEFAULT '',
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    operator    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX sessions_operator ON sessions (operator);
-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    before      TEXT NOT NULL,
    after       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    source      TEXT NOT NULL
);
