-- radmfa SQLite schema, version 11: token ids are never given out again.
--
-- `INTEGER PRIMARY KEY` alone gives a new row max(id) + 1, so deleting the newest token and
-- enrolling another reused its id. A login that read a token before an admin reset its user
-- could then use up a time step of whoever got the id next (its update matched the new
-- row), and be accepted. AUTOINCREMENT never reuses an id, as PostgreSQL's identity
-- columns never do. SQLite cannot add it to a table, so the table is rebuilt, columns named.

CREATE TABLE tokens_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    serial      TEXT    NOT NULL UNIQUE,
    user        TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('totp', 'hotp')),
    algorithm   TEXT    NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits      INTEGER NOT NULL CHECK (digits > 0),
    period      INTEGER NOT NULL CHECK (period >= 0),
    -- HOTP: next expected counter value.
    counter     INTEGER NOT NULL DEFAULT 0 CHECK (counter >= 0),
    -- TOTP: last accepted time step; that step and earlier ones are refused.
    last_step   INTEGER,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    -- version || nonce || ciphertext || tag
    secret      BLOB    NOT NULL,
    manufacturer TEXT,
    model       TEXT,
    -- Unix seconds; the token verifies only in [valid_from, valid_until).
    valid_from  INTEGER,
    valid_until INTEGER,
    -- TOTP: steps the token's clock runs ahead (+) or behind (-); the window is centred on it.
    drift       INTEGER NOT NULL DEFAULT 0,
    -- HOTP: the counter the next code must have after a code beyond the look-ahead window,
    -- and when that code came; both NULL when none is pending.
    resync_counter INTEGER CHECK (resync_counter >= 0),
    resync_at   INTEGER,
    -- 'enroll' (a seed radmfa generated) or 'import' (a vendor file's token).
    origin      TEXT    NOT NULL DEFAULT 'import' CHECK (origin IN ('enroll', 'import'))
) STRICT;

INSERT INTO tokens_new (id, serial, user, kind, algorithm, digits, period, counter, last_step,
                        enabled, created_at, secret, manufacturer, model, valid_from,
                        valid_until, drift, resync_counter, resync_at, origin)
    SELECT id, serial, user, kind, algorithm, digits, period, counter, last_step, enabled,
           created_at, secret, manufacturer, model, valid_from, valid_until, drift,
           resync_counter, resync_at, origin
    FROM tokens;

DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_user ON tokens (user);
