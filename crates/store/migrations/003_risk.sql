-- posguard schema version 3: risk decisions (append-only), alerts and cases, and the
-- merchant attributes risk rules read.
ALTER TABLE merchants ADD COLUMN merchant_class TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE merchants ADD COLUMN risk_class TEXT NOT NULL DEFAULT 'low';

CREATE TABLE risk_decisions (
    txn_id      BIGINT PRIMARY KEY,
    version     TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    score       BIGINT NOT NULL,
    hold        BIGINT NOT NULL,
    alert       BIGINT NOT NULL,
    policy      TEXT,
    matched     TEXT NOT NULL,
    shadow      TEXT NOT NULL,
    details     TEXT NOT NULL,
    at          TEXT NOT NULL
);

CREATE TABLE cases (
    case_id     BIGINT PRIMARY KEY,
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL,
    assignee    TEXT,
    opened_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX cases_subject ON cases (subject, status);

CREATE TABLE case_entries (
    case_id     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    txn_id      BIGINT,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
