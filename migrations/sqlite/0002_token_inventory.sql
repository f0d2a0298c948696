-- radmfa SQLite schema, version 2: hardware and imported OATH tokens (issue 3).
--
-- A token may be in stock (user IS NULL), carry vendor data and a validity period, and keeps
-- the state that long-lived tokens need: the TOTP clock drift learned from accepted codes and
-- a pending HOTP self-service resynchronisation.

ALTER TABLE tokens ADD COLUMN manufacturer TEXT;
ALTER TABLE tokens ADD COLUMN model TEXT;
-- Unix seconds; the token verifies only in [valid_from, valid_until).
ALTER TABLE tokens ADD COLUMN valid_from INTEGER;
ALTER TABLE tokens ADD COLUMN valid_until INTEGER;
-- TOTP: steps the token's clock runs ahead (+) or behind (-); the window is centred on it.
ALTER TABLE tokens ADD COLUMN drift INTEGER NOT NULL DEFAULT 0;
-- HOTP: after a code beyond the look-ahead window, the counter the next code must have
-- (resync_counter) and when the first code came (resync_at). Both NULL when none is pending.
ALTER TABLE tokens ADD COLUMN resync_counter INTEGER CHECK (resync_counter >= 0);
ALTER TABLE tokens ADD COLUMN resync_at INTEGER;
