-- radmfa SQLite schema, version 6: remembered second factors.
--
-- A client with `remember_second_factor_secs` lets a user who passed a second factor through
-- it log in again from the same Calling-Station-Id with the password alone until `expires_at`
-- (Unix seconds). One row per user, client and station (empty: the request had none); a
-- newer second factor replaces the row. Expired rows are purged with the delivery state.
CREATE TABLE remembered_logins (
    user         TEXT    NOT NULL,
    nas          TEXT    NOT NULL,
    station      TEXT    NOT NULL,
    -- The second factor that passed: totp, hotp, sms, voice.
    mode         TEXT    NOT NULL,
    verified_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (user, nas, station)
) STRICT;

CREATE INDEX remembered_logins_expires ON remembered_logins (expires_at);
