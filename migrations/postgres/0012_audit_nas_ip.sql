-- radmfa PostgreSQL schema, version 12 (SQLite's 15): which NAS a login came through (the
-- request's source address, and what the NAS calls itself), in every login's audit record;
-- see the SQLite migration of the same name.
ALTER TABLE audit ADD COLUMN nas_ip TEXT;
ALTER TABLE audit ADD COLUMN nas_identifier TEXT;
