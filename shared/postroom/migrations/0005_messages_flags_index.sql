-- IMAP FETCH 1:* (FLAGS) and a sync client's flag check read every message's flags in UID
-- order. With the flags in the index, Postgres answers from the index alone (an index-only
-- scan), without visiting the table's rows. Flag changes already update indexes (modseq,
-- the unseen and deleted partial indexes), so this adds one more of the same kind.
CREATE INDEX messages_flags ON messages (mailbox_id, uid)
    INCLUDE (seen, answered, flagged, deleted, draft, keywords);
