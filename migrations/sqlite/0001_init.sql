-- radmfa SQLite schema, version 1.
--
-- Token seeds are stored only sealed (XChaCha20-Poly1305 with the key from the separate key
-- file, AAD = serial); no column ever holds a plaintext seed, code or password.
-- Times are Unix seconds.

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
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
    secret      BLOB    NOT NULL
) STRICT;

CREATE INDEX tokens_user ON tokens (user);

CREATE TABLE user_state (
    user          TEXT    PRIMARY KEY NOT NULL,
    -- Consecutive wrong codes since the last success.
    failures      INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until  INTEGER
) STRICT;

CREATE TABLE challenges (
    -- SHA-256 of the State attribute we sent.
    state_hash  BLOB    PRIMARY KEY NOT NULL,
    user        TEXT    NOT NULL,
    nas         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- JSON
    context     TEXT    NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX challenges_expires_at ON challenges (expires_at);
CREATE INDEX challenges_user ON challenges (user);

CREATE TABLE audit (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          INTEGER NOT NULL,
    user          TEXT    NOT NULL,
    first_name    TEXT,
    last_name     TEXT,
    email         TEXT,
    phone         TEXT,
    token_serial  TEXT,
    mode          TEXT    NOT NULL,
    result        TEXT    NOT NULL,
    reason        TEXT,
    server_name   TEXT    NOT NULL,
    server_ip     TEXT,
    client_ip     TEXT,
    nas_name      TEXT,
    latency_ms    INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_user ON audit (user, time);
