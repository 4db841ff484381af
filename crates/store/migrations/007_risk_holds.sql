-- posguard schema version 7: risk holds are written with their decision; decisions
-- that held settlement before this version get their hold record now, once.
INSERT INTO holds (hold_id, subject, reason, placed_by, placed_at, released_by, released_at)
SELECT 'risk:' || CAST(txn_id AS TEXT), 'txn:' || CAST(txn_id AS TEXT),
       'risk review: ' || matched, 'risk rules ' || version, at, NULL, NULL
FROM risk_decisions WHERE hold = 1
ON CONFLICT (hold_id) DO NOTHING;
