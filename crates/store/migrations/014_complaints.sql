-- posguard schema version 14: complaints. A complaint (who, through which channel,
-- about what, what they remember — never a clear card number — its deadlines, owner,
-- outcome and answer), the transactions it is linked to, every step, the disputes it
-- escalates to, and the money actions that wait for a second person's approval.
CREATE TABLE complaints (
    complaint_id    BIGINT PRIMARY KEY,
    source          TEXT NOT NULL,
    category        TEXT NOT NULL,
    complainant     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    language        TEXT NOT NULL,
    merchant_id     TEXT,
    clue            TEXT NOT NULL,
    status          TEXT NOT NULL,
    owner           TEXT,
    ack_due         TEXT NOT NULL,
    resolve_due     TEXT NOT NULL,
    resolve_days    BIGINT NOT NULL,
    acknowledged_at TEXT,
    resolved_at     TEXT,
    outcome         TEXT,
    answer          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX complaints_status ON complaints (status, resolve_due);
CREATE TABLE complaint_txns (
    complaint_id BIGINT NOT NULL,
    txn_id       BIGINT NOT NULL,
    linked_by    TEXT NOT NULL,
    linked_at    TEXT NOT NULL,
    PRIMARY KEY (complaint_id, txn_id)
);
CREATE TABLE complaint_events (
    complaint_id BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    at           TEXT NOT NULL,
    action       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    note         TEXT NOT NULL,
    PRIMARY KEY (complaint_id, seq)
);
CREATE TABLE disputes (
    dispute_id   BIGINT PRIMARY KEY,
    complaint_id BIGINT NOT NULL,
    txn_id       BIGINT NOT NULL,
    stage        TEXT NOT NULL,
    status       TEXT NOT NULL,
    evidence     TEXT NOT NULL,
    respond_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE complaint_actions (
    action_id     BIGINT PRIMARY KEY,
    complaint_id  BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    txn_id        BIGINT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    TEXT,
    status        TEXT NOT NULL
);
