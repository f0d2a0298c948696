-- radmfa SQLite schema, version 14 (PostgreSQL's 11): the lasting identity (entryUUID,
-- objectGUID) of the directory entry an app password was first used by. A DN is not
-- enough: a leaver's entry deleted and a new hire's made under the same name have the same
-- DN, and the leaver's app password would log in to the new account. `try_app_password`
-- refuses one whose entry is not the name's entry now. NULL until first used after this
-- version, or where the directory shows no such attribute.
ALTER TABLE app_passwords ADD COLUMN entry_id TEXT;
