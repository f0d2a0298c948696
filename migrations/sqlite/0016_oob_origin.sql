-- radmfa SQLite schema, version 16 (PostgreSQL's 13): where the login that sent an SMS or
-- placed a call came from (its audit record's client_ip, nas_ip and nas_identifier), kept
-- with the transaction: the fraud report the callee makes later, on whichever node takes
-- the provider's callback, has no request at hand, and its record named only the user and
-- the [[client]] entry. NULL in rows written before, and by the previous release.
ALTER TABLE oob_transactions ADD COLUMN client_ip TEXT;
ALTER TABLE oob_transactions ADD COLUMN nas_ip TEXT;
ALTER TABLE oob_transactions ADD COLUMN nas_identifier TEXT;
