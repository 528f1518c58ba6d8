-- ACME (RFC 8555): the account at each directory (its key sealed like a DKIM key), the
-- HTTP-01 answers any API replica serves while an order is being validated, and the
-- certificates issued (the private key sealed). Every TLS listener loads the newest one.
CREATE TABLE acme_accounts (
    directory   text PRIMARY KEY,
    uri         text NOT NULL,
    contact     text NOT NULL,
    sealed_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE acme_challenges (
    token              text PRIMARY KEY CHECK (token ~ '^[A-Za-z0-9_-]+$' AND length(token) <= 256),
    key_authorization  text NOT NULL,
    expires_at         timestamptz NOT NULL
);

CREATE TABLE acme_certificates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    directory   text NOT NULL,
    names       text[] NOT NULL,
    chain_pem   text NOT NULL,
    sealed_key  bytea NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_certificates_newest ON acme_certificates (issued_at DESC, id DESC);
