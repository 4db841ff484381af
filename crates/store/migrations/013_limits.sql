-- posguard schema version 13: a merchant's transaction limits are part of its terms
-- (set by class and risk rating at provisioning; 0 = none beyond the switch's own),
-- documents' bytes leave the base64 column, and reference tables can be loaded.
ALTER TABLE merchant_terms ADD COLUMN txn_limit_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE merchant_terms ADD COLUMN day_limit_minor BIGINT NOT NULL DEFAULT 0;
-- A rolling reserve (high-risk merchants): a share of each payout paid days later.
ALTER TABLE merchant_terms ADD COLUMN reserve_bps BIGINT NOT NULL DEFAULT 0;
ALTER TABLE merchant_terms ADD COLUMN reserve_days BIGINT NOT NULL DEFAULT 0;
-- Documents' bytes: on PostgreSQL in this column; beside an SQLite database they are
-- files in the data directory (documents/<first two hex digits>/<sha256>) and the
-- column stays empty. `data` keeps the base64 of the rows written before.
ALTER TABLE documents ADD COLUMN content BYTEA;
-- Reference tables an administrator loads, in their file formats: a year of the
-- working-day calendar (`calendar:YYYY`, in place of the shipped year) and the MCC
-- table (`mcc`, in place of the shipped one).
CREATE TABLE reference_tables (
    name      TEXT PRIMARY KEY,
    body      TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
