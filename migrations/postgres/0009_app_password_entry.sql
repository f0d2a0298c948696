-- radmfa PostgreSQL schema, version 9 (SQLite's 10): the directory entry (DN) an app
-- password was first used by; see the SQLite migration of the same name.
ALTER TABLE app_passwords ADD COLUMN dn TEXT;
