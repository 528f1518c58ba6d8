-- Send-as: addresses (or whole domains, written *@domain) an account may put in From: and
-- Sender: and use as its envelope sender on submission, beyond its own address and aliases.
ALTER TABLE accounts ADD COLUMN send_as text[] NOT NULL DEFAULT '{}';
