-- Held deliveries: a delivery whose handling failed inside Postroom too often (an exception,
-- a worker that died holding it) stops being retried and waits for an administrator
-- (`postroom queue release ID`), so one poison entry cannot stall or loop the queue.
--
-- failures counts internal failures since the last release (last_failure says what the last
-- one was, apart from last_error, which keeps the mail's own story); held_state is the state the
-- delivery goes back to when released (its failure DSN may still be owed: dsn_due stays).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'deferred', 'delivered', 'bounced', 'held'));
ALTER TABLE deliveries ADD COLUMN failures integer NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_failure text;  -- what the last internal failure was
ALTER TABLE deliveries ADD COLUMN held_state text
    CHECK (held_state IN ('queued', 'deferred', 'delivered', 'bounced'));
ALTER TABLE deliveries ADD CONSTRAINT deliveries_held_has_state
    CHECK ((state = 'held') = (held_state IS NOT NULL));
CREATE INDEX deliveries_held ON deliveries (queue_message_id) WHERE state = 'held';
