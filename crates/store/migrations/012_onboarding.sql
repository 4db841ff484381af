-- posguard schema version 12: merchant applications and their review.
-- The form is JSON with personal ID numbers masked; their keyed tokens (HMAC) are
-- columns, for duplicate checks. Never a clear personal ID number.
CREATE TABLE applications (
    app_id          BIGINT PRIMARY KEY,
    status          TEXT NOT NULL,
    legal_name      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    mcc             TEXT NOT NULL,
    risk_level      TEXT NOT NULL,
    form            TEXT NOT NULL,
    problems        TEXT NOT NULL,
    uscc            TEXT NOT NULL,
    rep_id_token    TEXT NOT NULL,
    account_number  TEXT NOT NULL,
    applicant       TEXT NOT NULL,
    assignee        TEXT,
    sla_due         TEXT,
    merchant_id     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX applications_status ON applications (status);
CREATE INDEX applications_uscc ON applications (uscc);
CREATE INDEX applications_rep ON applications (rep_id_token);
-- Every step of a review, in order.
CREATE TABLE application_events (
    app_id  BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    at      TEXT NOT NULL,
    action  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    status  TEXT NOT NULL,
    note    TEXT NOT NULL,
    PRIMARY KEY (app_id, seq)
);
-- Documents, content-addressed (SHA-256 of the bytes, base64 in `data`): one copy
-- however many applications carry it.
CREATE TABLE documents (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    data         TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE application_documents (
    app_id      BIGINT NOT NULL,
    doc_type    TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    expires_on  TEXT,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    PRIMARY KEY (app_id, doc_type, sha256)
);
-- Who may not become a merchant: unified social credit codes, settlement accounts,
-- and representatives by their ID number's keyed token (never the number).
CREATE TABLE blocklist (
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
-- Each merchant's periodic re-review: when it is due (months by risk rating).
CREATE TABLE merchant_reviews (
    merchant_id TEXT PRIMARY KEY,
    risk_level  TEXT NOT NULL,
    due_on      TEXT NOT NULL,
    last_on     TEXT NOT NULL
);
