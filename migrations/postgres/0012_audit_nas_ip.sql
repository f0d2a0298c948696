-- radmfa PostgreSQL schema, version 12 (SQLite's 15): the address the request came from
-- (the NAS, or the proxy in front of it), in every login's audit record; see the SQLite
-- migration of the same name.
ALTER TABLE audit ADD COLUMN nas_ip TEXT;
