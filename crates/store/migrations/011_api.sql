-- posguard schema version 11: what the operators' API reads.
-- Every reconciliation run with its report, so operators read what a run found
-- without running it again (a date may be reconciled again when a late file comes
-- in: each run is a row).
CREATE TABLE recon_runs (
    business_date TEXT NOT NULL,
    ran_at        TEXT NOT NULL,
    report        TEXT NOT NULL,
    PRIMARY KEY (business_date, ran_at)
);
-- Searches: a merchant's transactions in id order; a card (masked) by date.
CREATE INDEX transactions_merchant ON transactions (merchant_id, txn_id);
CREATE INDEX transactions_masked_pan ON transactions (masked_pan, local_date);
-- A transaction's timeline finds its clearing lines and findings by RRN.
CREATE INDEX recon_lines_rrn ON recon_lines (rrn);
CREATE INDEX recon_findings_rrn ON recon_findings (rrn);
-- Risk rule-set versions uploaded through the API: validated, then put in force as
-- `active` (its rules act as their modes say) or `shadow` (every rule recorded,
-- none acting); at most one version is in force, the one before is `retired`.
CREATE TABLE rule_sets (
    version     TEXT PRIMARY KEY,
    rules       TEXT NOT NULL,
    status      TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    changed_at  TEXT NOT NULL
);
