-- radmfa SQLite schema, version 3: SMS codes, phone calls, method choice and app passwords
-- (issue 4).
--
-- No column holds an SMS code or an app password in clear: codes are stored as an HMAC keyed
-- with per-transaction salt, app passwords as argon2id PHC strings. Times are Unix seconds.

-- Per-user settings for the out-of-band factors.
CREATE TABLE user_profile (
    user            TEXT    PRIMARY KEY NOT NULL,
    -- E.164 number set with `radmfa user set-phone`; wins over the directory's.
    phone           TEXT,
    -- The user's default second factor.
    method          TEXT    CHECK (method IN ('totp', 'sms', 'voice')),
    -- Set by a fraud report from a call; only `radmfa user unblock` clears it.
    blocked_at      INTEGER,
    blocked_reason  TEXT
) STRICT;

CREATE TABLE app_passwords (
    id            INTEGER PRIMARY KEY,
    user          TEXT    NOT NULL,
    label         TEXT,
    -- argon2id PHC string ($argon2id$v=19$...).
    hash          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
) STRICT;

CREATE INDEX app_passwords_user ON app_passwords (user);

-- One row per SMS sent or call placed, per rate-limit key (user:NAME, nas:NAME).
CREATE TABLE send_events (
    key  TEXT    NOT NULL,
    at   INTEGER NOT NULL
) STRICT;

CREATE INDEX send_events_key_at ON send_events (key, at);

-- One SMS sent or call placed for one RADIUS request. `request_key` is the same for every
-- retransmit of that request (on any node), so the UNIQUE constraint makes the send happen
-- once. The status moves from 'pending' exactly once.
CREATE TABLE oob_transactions (
    id            TEXT    PRIMARY KEY NOT NULL,
    request_key   TEXT    NOT NULL UNIQUE,
    user          TEXT    NOT NULL,
    nas           TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('sms', 'voice')),
    phone         TEXT    NOT NULL,
    code_hash     BLOB,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'fraud', 'failed')),
    reason        TEXT,
    provider_ref  TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX oob_transactions_expires_at ON oob_transactions (expires_at);
