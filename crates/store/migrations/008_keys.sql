-- posguard schema version 8: a terminal's key profile (the field 60.3 layout it was
-- provisioned for: 001 single, 003 double, 004 double with a track key), and working
-- keys delivered at sign-on that become current only once the terminal uses them.
ALTER TABLE terminals ADD COLUMN key_profile TEXT NOT NULL DEFAULT '003';
ALTER TABLE terminals ADD COLUMN pending_pik TEXT;
ALTER TABLE terminals ADD COLUMN pending_mak TEXT;
-- Keys the acquirer holds that are not a terminal's (zone keys agreed with the issuer,
-- the PAN-token data key), wrapped under the LMK, one row per version. A key is never
-- changed except to be re-wrapped under a new LMK.
CREATE TABLE security_keys (
    kind        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    wrapped     TEXT NOT NULL,
    kcv         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);
