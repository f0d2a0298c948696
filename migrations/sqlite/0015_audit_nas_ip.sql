-- radmfa SQLite schema, version 15 (PostgreSQL's 12): the address the request came from
-- (the NAS, or the proxy in front of it), in every login's audit record. `client_ip` is the
-- user's address (Calling-Station-Id) where the NAS sends one, and only otherwise the
-- NAS's: with a [[client]] entry for a whole network, no record said which box sent a
-- login. NULL for admin records and records written before.
ALTER TABLE audit ADD COLUMN nas_ip TEXT;
