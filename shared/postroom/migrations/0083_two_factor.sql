-- Two-factor login for the web: a TOTP secret per account (RFC 6238), sealed like the DKIM
-- keys, and one-time recovery codes (only their SHA-256 is kept).
CREATE TABLE account_totp (
    account_id    bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    secret_sealed bytea NOT NULL,
    enabled       boolean NOT NULL DEFAULT false,   -- confirmed with a first code
    last_step     bigint NOT NULL DEFAULT 0,        -- RFC 6238 §5.2: a code is used once
    failures      integer NOT NULL DEFAULT 0,
    failed_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE totp_recovery_codes (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL CHECK (length(code_hash) = 32),
    used_at     timestamptz,
    PRIMARY KEY (account_id, code_hash)
);
