-- ENVELOPE and BODYSTRUCTURE as IMAP writes them (postroom.imap_encoding), computed when the
-- content is parsed: a FETCH of a message list reads them instead of decoding `parsed` and
-- formatting it for every message. Content parsed before this migration has NULL here and
-- is formatted from `parsed` as before.
ALTER TABLE blobs
    ADD COLUMN imap_envelope bytea,
    ADD COLUMN imap_bodystructure bytea;
