-- radmfa SQLite schema, version 5: one-time bypass.
--
-- `radmfa user bypass USER` lets the user's next login with the right password through
-- without a second factor, once, until this time (Unix seconds). The login that uses it
-- clears it in the same statement that checks it, so it works once across all nodes.
ALTER TABLE user_profile ADD COLUMN bypass_until INTEGER;
