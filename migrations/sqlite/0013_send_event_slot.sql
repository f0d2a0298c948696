-- radmfa SQLite schema, version 13: which send took each send event.
--
-- A send the provider surely did not take (no connection made, a 4xx refusal) gives its
-- slot back, so a provider outage no longer leaves users and a whole NAS refused for the
-- window once it is over. `slot` names the send (its transaction's id) so that only its own
-- rows are deleted, never a concurrent send's. NULL for rows written before, or by an older
-- release run on this file again: those are never given back, as before.
--
-- Rebuilt, columns named, rather than altered: SQLite's ADD COLUMN cannot be run twice, and a
-- rebuild can (tests/cli.rs has processes race on the last migration applied again). Run
-- again it would only forget the slots of the sends in the window, which then stay counted.

CREATE TABLE send_events_new (
    key   TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    slot  TEXT
) STRICT;

INSERT INTO send_events_new (key, at) SELECT key, at FROM send_events;

DROP TABLE send_events;
ALTER TABLE send_events_new RENAME TO send_events;
CREATE INDEX send_events_key_at ON send_events (key, at);
CREATE INDEX send_events_slot ON send_events (slot);
