-- What a web mail reader keeps: senders whose remote images load without asking, the
-- contacts learned from correspondence (and edited), and identities with their signatures.
CREATE TABLE remote_image_senders (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sender      text NOT NULL CHECK (sender = lower(sender) AND length(sender) <= 320),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sender)
);

CREATE TABLE contacts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address     text NOT NULL CHECK (address = lower(address) AND length(address) <= 320),
    name        text CHECK (length(name) <= 200),
    uses        integer NOT NULL DEFAULT 0,
    last_used   timestamptz,
    UNIQUE (account_id, address)
);
-- Autocomplete: the account's contacts by prefix of address or name, most used first.
CREATE INDEX contacts_prefix ON contacts (account_id, address text_pattern_ops);

CREATE TABLE identities (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address     text NOT NULL CHECK (address = lower(address)),
    name        text CHECK (length(name) <= 200),
    signature   text CHECK (length(signature) <= 10000),
    PRIMARY KEY (account_id, address)
);
