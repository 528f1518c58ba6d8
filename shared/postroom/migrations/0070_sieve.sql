-- Sieve scripts of each account (RFC 5228, managed over ManageSieve RFC 5804 and the API):
-- the source as uploaded and its compiled form, checked and built once when stored. At most
-- one script of an account is active (RFC 5804 §1.1).
CREATE TABLE sieve_scripts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    source       text NOT NULL,
    compiled     text NOT NULL,          -- postroom.sieve.CompiledScript.to_json()
    active       boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts (account_id) WHERE active;

-- Vacation replies sent (RFC 5230 §4.2): one per sender and handle per period, shared by every
-- delivery worker; a row is the time the last reply went out.
CREATE TABLE sieve_vacation_replies (
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sender       text NOT NULL,
    handle       text NOT NULL,
    replied_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, sender, handle)
);
CREATE INDEX sieve_vacation_replies_age ON sieve_vacation_replies (replied_at);
