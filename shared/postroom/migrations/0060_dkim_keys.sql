-- DKIM keys of the local domains (RFC 6376): the private key sealed (postroom.keyring), the
-- public key as the p= value of its DNS TXT record.
--
-- state: 'active' keys sign and are published; 'pending' keys are published and wait for
-- their record to reach DNS before a rotation makes them active; 'retired' keys no longer
-- sign but stay published until removed, so mail already signed with them still verifies.
CREATE TABLE dkim_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id    bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector     text NOT NULL CHECK (selector ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    algorithm    text NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    state        text NOT NULL CHECK (state IN ('pending', 'active', 'retired')),
    sealed_key   bytea NOT NULL,
    public_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, selector)
);
