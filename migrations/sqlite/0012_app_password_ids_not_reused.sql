-- radmfa SQLite schema, version 12: app password ids are never given out again.
--
-- As for tokens in version 11: `INTEGER PRIMARY KEY` alone gives a new row max(id) + 1, so
-- deleting the newest app password and adding another reused its id. The audit then named
-- two credentials `app-password-N` (an admin tracing a stolen laptop's password found the
-- next one's logins under its number), and an admin's `app-password delete USER N` made from
-- an older listing could remove the new password. AUTOINCREMENT never reuses an id, as
-- PostgreSQL's identity columns never do. SQLite cannot add it to a table, so the table is
-- rebuilt, columns named.

CREATE TABLE app_passwords_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user          TEXT    NOT NULL,
    label         TEXT,
    -- argon2id PHC string ($argon2id$v=19$...).
    hash          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    -- The directory entry the password was first used by (version 10).
    dn            TEXT
) STRICT;

INSERT INTO app_passwords_new (id, user, label, hash, created_at, last_used_at, dn)
    SELECT id, user, label, hash, created_at, last_used_at, dn FROM app_passwords;

DROP TABLE app_passwords;
ALTER TABLE app_passwords_new RENAME TO app_passwords;
CREATE INDEX app_passwords_user ON app_passwords (user);
