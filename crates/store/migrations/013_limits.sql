-- posguard schema version 13: a merchant's transaction limits are part of its terms
-- (set by class and risk rating at provisioning; 0 = none beyond the switch's own).
ALTER TABLE merchant_terms ADD COLUMN txn_limit_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE merchant_terms ADD COLUMN day_limit_minor BIGINT NOT NULL DEFAULT 0;
