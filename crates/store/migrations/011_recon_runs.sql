-- posguard schema version 11: every reconciliation run with its report, so operators
-- read what a run found without running it again (a date may be reconciled again
-- when a late file comes in: each run is a row).
CREATE TABLE recon_runs (
    business_date TEXT NOT NULL,
    ran_at        TEXT NOT NULL,
    report        TEXT NOT NULL,
    PRIMARY KEY (business_date, ran_at)
);
