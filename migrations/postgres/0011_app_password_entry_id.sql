-- radmfa PostgreSQL schema, version 11 (SQLite's 14): the lasting identity (entryUUID,
-- objectGUID) of the directory entry an app password was first used by; see the SQLite
-- migration of the same name.
ALTER TABLE app_passwords ADD COLUMN entry_id TEXT;
