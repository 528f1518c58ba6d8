-- Delivery status notifications and the TLS of each delivery attempt.
--
-- dsn_due marks a bounced delivery whose failure DSN (RFC 3464) is still to be sent: it is set
-- in the same transaction that bounces the delivery, and cleared in the same transaction that
-- spools the DSN (recording its queue entry in dsn_queue_message_id), so a crash between the
-- two only delays the DSN and never sends it twice.
ALTER TABLE deliveries ADD COLUMN dsn_due boolean NOT NULL DEFAULT false;
CREATE INDEX deliveries_dsn_due ON deliveries (queue_message_id) WHERE dsn_due;
-- Deferred deliveries that have not yet had their delay warning.
CREATE INDEX deliveries_delay_unwarned ON deliveries (queue_message_id)
    WHERE state = 'deferred' AND delay_warned_at IS NULL;

ALTER TABLE delivery_attempts ADD COLUMN tls text;   -- e.g. 'TLSv1.3', NULL without TLS
