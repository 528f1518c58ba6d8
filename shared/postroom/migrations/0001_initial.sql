-- The mail store and the delivery queue.
--
-- Addresses are stored lowercased (the domain always; the local part too, since Postroom treats
-- local parts case-insensitively, as nearly every mail server does despite RFC 5321 §2.4).

CREATE TABLE domains (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name = lower(name) AND name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id      bigint NOT NULL REFERENCES domains (id) ON DELETE RESTRICT,
    address        text NOT NULL UNIQUE CHECK (address = lower(address) AND address LIKE '_%@_%'),
    password_hash  text NOT NULL,        -- argon2id, PHC string format
    is_admin       boolean NOT NULL DEFAULT false,
    disabled       boolean NOT NULL DEFAULT false,
    quota_bytes    bigint CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_domain ON accounts (domain_id);

-- source is 'user@domain' (exact) or '@domain' (catch-all); one row per destination, so an
-- alias may fan out. Destinations may be local or remote addresses.
CREATE TABLE aliases (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id    bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    source       text NOT NULL CHECK (source = lower(source) AND source LIKE '%@_%'),
    destination  text NOT NULL CHECK (destination LIKE '_%@_%'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, destination)
);
CREATE INDEX aliases_domain ON aliases (domain_id);

-- RFC 3501 §2.3.1.1: UIDVALIDITY must grow whenever a name is reused; one global sequence
-- seeded from the clock makes every new mailbox's value larger than any before it.
CREATE SEQUENCE uid_validity_seq MINVALUE 1 MAXVALUE 4294967295;
SELECT setval('uid_validity_seq', extract(epoch FROM now())::bigint);

CREATE TABLE mailboxes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (name <> ''),   -- '/'-separated path, UTF-8
    uid_validity      bigint NOT NULL DEFAULT nextval('uid_validity_seq'),
    uid_next          bigint NOT NULL DEFAULT 1,
    highest_modseq    bigint NOT NULL DEFAULT 1,
    first_recent_uid  bigint NOT NULL DEFAULT 1,           -- rev1 \Recent: UIDs >= this are new
    special_use       text CHECK (special_use IN ('\All', '\Archive', '\Drafts', '\Flagged',
                                                  '\Junk', '\Sent', '\Trash')),
    subscribed        boolean NOT NULL DEFAULT true,
    selectable        boolean NOT NULL DEFAULT true,       -- false: \Noselect parent left by DELETE
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

-- Message content, stored once however many mailboxes hold it (content-addressed by SHA-256).
-- What readers need is computed once, when the content first enters a mailbox, so that nobody
-- re-parses it to list, FETCH or search it; content that only passes through the queue to
-- another server is never parsed (parsed stays NULL).
CREATE TABLE blobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256           bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
    size             integer NOT NULL,
    data             bytea NOT NULL,
    parsed           jsonb,                   -- postroom.message.ParsedMessage.to_json()
    header_size      integer,
    subject          text,                    -- decoded, for listing, sorting and search
    from_text        text,
    to_text          text,
    cc_text          text,
    message_id       text,
    sent_date        timestamptz,             -- the Date: header
    has_attachments  boolean,
    header_text      text,                    -- decoded header fields, one "Name: value" a line
    search_text      text,                    -- decoded text parts (and the address headers)
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- Most mail is not worth compressing on the hot path, and uncompressed out-of-line storage
-- lets substring() read a part of a large message without fetching all of it.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX blobs_message_id ON blobs (message_id);

-- One entry per message per mailbox (IMAP's UID space). header_prefix holds the per-recipient
-- trace fields (Return-Path, Delivered-To) prepended at delivery, so the blob stays shared.
CREATE TABLE messages (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mailbox_id     bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid            bigint NOT NULL CHECK (uid > 0),
    blob_id        bigint NOT NULL REFERENCES blobs (id),
    header_prefix  bytea NOT NULL DEFAULT '',
    size           integer NOT NULL,          -- length(header_prefix) + blobs.size
    internal_date  timestamptz NOT NULL DEFAULT now(),
    seen           boolean NOT NULL DEFAULT false,
    answered       boolean NOT NULL DEFAULT false,
    flagged        boolean NOT NULL DEFAULT false,
    deleted        boolean NOT NULL DEFAULT false,
    draft          boolean NOT NULL DEFAULT false,
    keywords       text[] NOT NULL DEFAULT '{}',
    modseq         bigint NOT NULL,
    delivery_key   text UNIQUE,               -- idempotent delivery: one copy per delivery and account
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages (blob_id);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE NOT seen;
CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE deleted;

-- Expunged UIDs, so that other sessions on the mailbox can be told (IMAP untagged EXPUNGE).
CREATE TABLE expunged (
    mailbox_id  bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid         bigint NOT NULL,
    modseq      bigint NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

-- The queue: a spooled message and how it arrived ...
CREATE TABLE queue_messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    blob_id          bigint NOT NULL REFERENCES blobs (id),
    reverse_path     text NOT NULL,            -- '' is the null sender <>
    received_at      timestamptz NOT NULL,
    source           text NOT NULL CHECK (source IN ('smtp', 'submission', 'api', 'bounce', 'local')),
    client_address   text,
    client_name      text,
    helo_name        text,
    protocol         text,                     -- ESMTP, ESMTPS, ESMTPSA ... (RFC 3848)
    tls              text,                     -- e.g. 'TLSv1.3 TLS_AES_256_GCM_SHA384', NULL without TLS
    auth_account_id  bigint REFERENCES accounts (id) ON DELETE SET NULL,
    message_id       text,
    size             integer NOT NULL,
    env_id           text,                     -- RFC 3461 ENVID
    dsn_ret          text CHECK (dsn_ret IN ('FULL', 'HDRS')),
    bounce_of        bigint REFERENCES queue_messages (id) ON DELETE SET NULL
);
CREATE INDEX queue_messages_received ON queue_messages (received_at);
CREATE INDEX queue_messages_message_id ON queue_messages (message_id);
CREATE INDEX queue_messages_reverse_path ON queue_messages (reverse_path);
CREATE INDEX queue_messages_blob ON queue_messages (blob_id);

-- ... and one delivery per recipient.
CREATE TABLE deliveries (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_message_id    bigint NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
    recipient           text NOT NULL,
    original_recipient  text,
    notify              text,                  -- RFC 3461 NOTIFY, e.g. 'FAILURE,DELAY'
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'deferred', 'delivered', 'bounced')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL,
    lease_until         timestamptz,
    lease_owner         text,
    last_error          text,
    last_attempt_at     timestamptz,
    finished_at         timestamptz,
    delay_warned_at     timestamptz,
    dsn_queue_message_id bigint REFERENCES queue_messages (id) ON DELETE SET NULL
);
CREATE INDEX deliveries_message ON deliveries (queue_message_id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('queued', 'deferred');
CREATE INDEX deliveries_recipient ON deliveries (recipient);

CREATE TABLE delivery_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'bounced')),
    host          text,                        -- next hop, or 'local'
    reply_code    integer,
    reply_text    text
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);
