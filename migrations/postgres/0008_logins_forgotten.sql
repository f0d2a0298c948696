-- radmfa PostgreSQL schema, version 8 (SQLite's 9): when a user's remembered second
-- factors were last forgotten (`user forget`, `user reset`, a token taken away, a fraud
-- report).
--
-- A login that passed its second factor before that moment must not write its remembered
-- row back after the forget deleted the others: `remember_login` checks this first.
ALTER TABLE user_profile ADD COLUMN logins_forgotten_at BIGINT;
