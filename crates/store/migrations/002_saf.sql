-- posguard schema version 2: the store-and-forward queue.
-- One row per message that must reach the issuer (reversal advices today): retried
-- with backoff until acknowledged, or turned into an operator exception after the
-- configured number of attempts. Messages carry no PAN and no PIN block.
CREATE TABLE saf (
    saf_id       BIGINT PRIMARY KEY,
    txn_id       BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    message_hex  TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at_ms   BIGINT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    owner        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX saf_due ON saf (state, next_at_ms);
