-- posguard schema version 9: the track key (TDK) of a terminal provisioned for key
-- layout 004, wrapped under the LMK: the current one, and the one delivered at the
-- last sign-on that becomes current with the other pending keys.
ALTER TABLE terminals ADD COLUMN tdk TEXT;
ALTER TABLE terminals ADD COLUMN pending_tdk TEXT;
