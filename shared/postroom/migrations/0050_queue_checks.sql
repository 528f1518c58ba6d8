-- What smtp-in's checks of a received message decided, kept with its queue entry.
--
-- target_special_use: the folder local delivery files it into, named by its RFC 6154 special
-- use ('\Junk' when a DMARC policy or the spam filter asks for quarantine); NULL is INBOX.
-- checks: the results shown in the trace: sender authentication (SPF, DKIM, DMARC, ARC) and
-- the spam filter's action, score and symbols.
ALTER TABLE queue_messages ADD COLUMN target_special_use text;
ALTER TABLE queue_messages ADD COLUMN checks jsonb;
