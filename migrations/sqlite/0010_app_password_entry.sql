-- radmfa SQLite schema, version 10 (PostgreSQL's 9): the directory entry (DN) an app
-- password was first used by. A name reused for another account (a leaver's sAMAccountName
-- given to a new hire) does not inherit the leaver's app passwords: `try_app_password`
-- refuses one whose entry is not the name's entry now. NULL until first used (app passwords
-- made before this version, or not used yet).
ALTER TABLE app_passwords ADD COLUMN dn TEXT;
