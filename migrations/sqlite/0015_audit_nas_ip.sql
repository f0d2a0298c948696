-- radmfa SQLite schema, version 15 (PostgreSQL's 12): which NAS a login came through, in
-- every login's audit record. `client_ip` is the user's address (Calling-Station-Id) where
-- the NAS sends one, and only otherwise the NAS's, and `nas_name` the [[client]] entry: with
-- an entry for a whole network, or a proxy in front, no record said which box sent a login.
-- `nas_ip`: the address the request came from (the NAS, or the proxy); `nas_identifier`:
-- what the NAS calls itself (NAS-Identifier, else NAS-IP-Address or NAS-IPv6-Address),
-- which a proxy passes on. NULL for admin records and records written before.
ALTER TABLE audit ADD COLUMN nas_ip TEXT;
ALTER TABLE audit ADD COLUMN nas_identifier TEXT;
