-- Quotas enforced in the store: each account keeps what its mailboxes hold (octets and
-- messages), kept exact by statement triggers on messages, and an insert that takes the
-- account past its quota fails with SQLSTATE PRQ01. The counter is updated under the
-- account row's lock, so concurrent deliveries are serialised on it and cannot overshoot
-- together. A transaction that moves messages inside one account sets
-- postroom.quota_exempt: its copy and expunge leave the usage as it was.

ALTER TABLE accounts
    ADD COLUMN used_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN used_messages bigint NOT NULL DEFAULT 0,
    ADD COLUMN quota_messages bigint CHECK (quota_messages IS NULL OR quota_messages >= 0);

CREATE FUNCTION postroom_usage_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    over text;
BEGIN
    WITH added AS (
        SELECT mb.account_id, sum(n.size)::bigint AS bytes, count(*)::bigint AS messages
        FROM new_rows n JOIN mailboxes mb ON mb.id = n.mailbox_id
        GROUP BY mb.account_id
    ), counted AS (
        UPDATE accounts a
        SET used_bytes = a.used_bytes + added.bytes,
            used_messages = a.used_messages + added.messages
        FROM added WHERE a.id = added.account_id
        RETURNING a.address, a.used_bytes, a.quota_bytes, a.used_messages, a.quota_messages
    )
    SELECT address INTO over FROM counted
    WHERE used_bytes > quota_bytes OR used_messages > quota_messages
    LIMIT 1;
    IF over IS NOT NULL
       AND coalesce(current_setting('postroom.quota_exempt', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the mailbox of % is over its quota', over USING ERRCODE = 'PRQ01';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION postroom_usage_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH removed AS (
        SELECT mb.account_id, sum(o.size)::bigint AS bytes, count(*)::bigint AS messages
        FROM old_rows o JOIN mailboxes mb ON mb.id = o.mailbox_id
        GROUP BY mb.account_id
    )
    UPDATE accounts a
    SET used_bytes = a.used_bytes - removed.bytes,
        used_messages = a.used_messages - removed.messages
    FROM removed WHERE a.id = removed.account_id;
    RETURN NULL;
END
$$;

-- A mailbox's messages are deleted before the mailbox itself, while the mailbox still says
-- whose they are (a cascade would run after the mailbox row is gone, uncounted).
CREATE FUNCTION postroom_mailbox_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE mailbox_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER messages_usage_added AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION postroom_usage_added();
CREATE TRIGGER messages_usage_removed AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION postroom_usage_removed();
CREATE TRIGGER mailboxes_emptied BEFORE DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION postroom_mailbox_emptied();

-- The usage of what is already stored (the triggers above already hold messages' lock, so
-- nothing is added or removed between this count and the commit).
UPDATE accounts a SET used_bytes = s.bytes, used_messages = s.messages
FROM (SELECT mb.account_id, sum(m.size)::bigint AS bytes, count(*)::bigint AS messages
      FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id GROUP BY mb.account_id) s
WHERE a.id = s.account_id;
