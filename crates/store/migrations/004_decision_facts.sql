-- posguard schema version 4: the facts each risk decision saw (no secrets: amounts,
-- entry mode, BIN, merchant attributes), so rule sets can be back-tested exactly.
ALTER TABLE risk_decisions ADD COLUMN facts TEXT NOT NULL DEFAULT '';
