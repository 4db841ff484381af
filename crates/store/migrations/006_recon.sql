-- posguard schema version 6: reconciliation. Every clearing file ingested (once per
-- content hash), every line of it (valid or not: nothing is lost), and every finding
-- with its evidence, action and — for exceptions — owner, status, deadline and notes.
CREATE TABLE recon_files (
    file_hash    TEXT PRIMARY KEY,
    file_date    TEXT NOT NULL,
    name         TEXT NOT NULL,
    lines        BIGINT NOT NULL,
    bad_lines    BIGINT NOT NULL,
    ingested_at  TEXT NOT NULL
);
CREATE INDEX recon_files_date ON recon_files (file_date);

CREATE TABLE recon_lines (
    file_hash    TEXT NOT NULL,
    line         BIGINT NOT NULL,
    file_date    TEXT NOT NULL,
    valid        BIGINT NOT NULL,
    problem      TEXT NOT NULL,
    rrn          TEXT NOT NULL,
    auth_code    TEXT NOT NULL,
    stan         TEXT NOT NULL,
    terminal     TEXT NOT NULL,
    merchant     TEXT NOT NULL,
    masked_pan   TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    at           TEXT NOT NULL,
    PRIMARY KEY (file_hash, line)
);
CREATE INDEX recon_lines_date ON recon_lines (file_date);

CREATE TABLE recon_findings (
    finding_id     TEXT PRIMARY KEY,
    business_date  TEXT NOT NULL,
    class          TEXT NOT NULL,
    rrn            TEXT NOT NULL,
    txn_id         BIGINT,
    amount_minor   BIGINT NOT NULL,
    evidence       TEXT NOT NULL,
    action         TEXT NOT NULL,
    status         TEXT NOT NULL,
    owner          TEXT,
    deadline       TEXT,
    notes          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX recon_findings_status ON recon_findings (status, business_date);
