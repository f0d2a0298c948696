-- radmfa PostgreSQL schema, version 13 (SQLite's 16): where the login that sent an SMS or
-- placed a call came from, kept with the transaction for its fraud report's audit record;
-- see the SQLite migration of the same name.
ALTER TABLE oob_transactions ADD COLUMN client_ip TEXT;
ALTER TABLE oob_transactions ADD COLUMN nas_ip TEXT;
ALTER TABLE oob_transactions ADD COLUMN nas_identifier TEXT;
