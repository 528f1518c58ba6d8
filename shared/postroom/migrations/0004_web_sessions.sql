-- Sessions of the web mail and the API: a browser cookie or a bearer token for scripts.
--
-- Only the SHA-256 of a token is kept, so a copy of the database lets nobody log in. Expired
-- rows are removed lazily when someone logs in.
CREATE TABLE web_sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    client_address text
);
CREATE INDEX web_sessions_account ON web_sessions (account_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
