-- radmfa SQLite schema, version 8: which key the seeds are sealed with.
--
-- One row, the published value "radmfa key check v1" sealed with the key file, as in the
-- PostgreSQL store. A node or a restored backup started with another key file then stops
-- at once, naming store.key_file, instead of failing every login whose seed it cannot open.
-- A database made before this version gets its row on the first start whose key opens the
-- seeds already in it.
CREATE TABLE key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sealed      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
