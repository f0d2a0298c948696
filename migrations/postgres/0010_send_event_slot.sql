-- radmfa PostgreSQL schema, version 10 (SQLite's 13): which send took each send event, so
-- a send the provider surely did not take gives back its own slot; see the SQLite migration
-- of the same name.
ALTER TABLE send_events ADD COLUMN slot TEXT;

CREATE INDEX send_events_slot ON send_events (slot);
