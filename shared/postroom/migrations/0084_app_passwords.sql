-- App passwords: one per device or program, for IMAP, POP3 and SMTP (never the web login,
-- which may ask for a second factor). Only the argon2id hash is kept; the login path checks
-- them beside the account's password (LoginRecord.secrets) and notes when each was last used.
CREATE TABLE app_passwords (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    last_used_from text
);
CREATE INDEX app_passwords_account ON app_passwords (account_id);
