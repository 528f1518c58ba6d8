-- Conversations in the message list: each message carries the id of its conversation
-- (thread_id), set when it is stored, so listing a folder by conversation groups an indexed
-- column instead of following References per page view.
--
-- A message joins the conversation of an earlier message of the same account that it links
-- to (RFC 5256 §2.2: its Message-ID among the new one's References or In-Reply-To), else of
-- one that links to it (a reply stored before what it answers), else starts its own.
-- A copy (IMAP COPY, MOVE) keeps its original's conversation by the same rule.
CREATE SEQUENCE message_threads;
ALTER TABLE messages ADD COLUMN thread_id bigint;

-- Backfill, set-based: the conversation's root is the first entry of References (the thread's
-- first message, RFC 5322 §3.6.4), else the first id of In-Reply-To, else the message's own
-- Message-ID; messages of an account with the same root are one conversation, numbered by
-- the first message's id. A message with none of these is a conversation of its own.
WITH roots AS (
    SELECT m.id, x.account_id,
           coalesce(b.parsed -> 'references' ->> 0,
                    substring(b.parsed ->> 'in_reply_to' FROM '<[^<>[:space:]]+>'),
                    b.message_id) AS root
    FROM messages m
    JOIN mailboxes x ON x.id = m.mailbox_id
    JOIN blobs b ON b.id = m.blob_id
), numbered AS (
    SELECT id, CASE WHEN root IS NULL THEN id
                    ELSE min(id) OVER (PARTITION BY account_id, root) END AS thread_id
    FROM roots
)
UPDATE messages m SET thread_id = n.thread_id FROM numbered n WHERE m.id = n.id;
SELECT setval('message_threads', coalesce((SELECT max(id) FROM messages), 0) + 1, false);

CREATE FUNCTION messages_thread_id() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account bigint;
    own text;
    ids text[];
    found bigint;
BEGIN
    SELECT account_id INTO account FROM mailboxes WHERE id = NEW.mailbox_id;
    SELECT b.message_id,
           ARRAY(SELECT jsonb_array_elements_text(coalesce(b.parsed -> 'references', '[]')))
           || ARRAY(SELECT (regexp_matches(coalesce(b.parsed ->> 'in_reply_to', ''),
                                           '<[^<>[:space:]]+>', 'g'))[1])
      INTO own, ids
      FROM blobs b WHERE b.id = NEW.blob_id;
    IF own IS NOT NULL THEN
        ids := ids || own;
    END IF;
    IF cardinality(ids) > 0 THEN
        -- What it answers (or a copy of itself), by Message-ID.
        SELECT m.thread_id INTO found
          FROM blobs b
          JOIN messages m ON m.blob_id = b.id
          JOIN mailboxes x ON x.id = m.mailbox_id
         WHERE b.message_id = ANY(ids[1:500]) AND x.account_id = account
           AND m.thread_id IS NOT NULL
         LIMIT 1;
    END IF;
    IF found IS NULL AND own IS NOT NULL THEN
        -- A reply that arrived first (served by the indexes of migration 0080).
        SELECT m.thread_id INTO found
          FROM blobs b
          JOIN messages m ON m.blob_id = b.id
          JOIN mailboxes x ON x.id = m.mailbox_id
         WHERE b.id IN (SELECT id FROM blobs WHERE (parsed -> 'references') ? own
                        UNION SELECT id FROM blobs WHERE (parsed ->> 'in_reply_to') = own)
           AND x.account_id = account AND m.thread_id IS NOT NULL
         LIMIT 1;
    END IF;
    NEW.thread_id := coalesce(found, nextval('message_threads'));
    RETURN NEW;
END $$;

CREATE TRIGGER messages_thread_id BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.thread_id IS NULL) EXECUTE FUNCTION messages_thread_id();

ALTER TABLE messages ALTER COLUMN thread_id SET NOT NULL;
-- A folder by conversation: its groups read from this index (with the flag the unread count
-- needs), and the newest message of each conversation on a page found through it.
CREATE INDEX messages_threads ON messages (mailbox_id, thread_id, internal_date) INCLUDE (uid, seen);

-- The reader's choices for the list (one row per account that changed one).
CREATE TABLE web_preferences (
    account_id     bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    conversations  boolean NOT NULL DEFAULT false
);
