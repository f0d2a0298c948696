-- radmfa PostgreSQL schema, version 4: where a token came from.
-- Mirrors migrations/sqlite/0004_token_origin.sql.
--
-- 'enroll': a seed radmfa generated for an authenticator app (`radmfa user enroll-totp`);
-- it exists nowhere else and is deleted when the user is reset or deleted.
-- 'import': a token from a vendor file (hardware, or seeds made elsewhere); resetting or
-- deleting its user returns it to stock, unassigned, with its counter and drift kept.
ALTER TABLE tokens ADD COLUMN origin TEXT NOT NULL DEFAULT 'import'
    CHECK (origin IN ('enroll', 'import'));
-- Tokens enrolled before this version: their serials are TOTP- and eight hex digits.
UPDATE tokens SET origin = 'enroll' WHERE serial ~ '^TOTP-[0-9A-F]{8}$';
