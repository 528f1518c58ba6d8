-- When each UID was expunged, so that housekeeping can forget expunges older than
-- POSTROOM_EXPUNGED_RETENTION (a client that resynchronises from further back finds those
-- messages gone by their absence instead of in VANISHED).
ALTER TABLE expunged ADD COLUMN expunged_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX expunged_at ON expunged (expunged_at);
