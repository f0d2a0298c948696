-- radmfa PostgreSQL schema, version 7: who made an admin change.
--
-- The account that ran the `radmfa` command behind an admin record ("root", or "root via
-- sudo from alice"); empty for login records, which the NAS's request explains.
ALTER TABLE audit ADD COLUMN actor TEXT;
