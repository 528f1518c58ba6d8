-- Subscriptions outlive their mailboxes (RFC 3501 §6.3.6, RFC 5258 §3): a subscribed mailbox
-- that is deleted leaves its name here, listed by LSUB and LIST (SUBSCRIBED) as \NonExistent,
-- until it is unsubscribed or a mailbox of that name is created again (subscribed then).
CREATE TABLE dangling_subscriptions (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name <> ''),
    PRIMARY KEY (account_id, name)
);
