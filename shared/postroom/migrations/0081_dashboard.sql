-- The admin dashboard counts delivery attempts per hour over the last day or two.
CREATE INDEX delivery_attempts_attempted ON delivery_attempts (attempted_at);
