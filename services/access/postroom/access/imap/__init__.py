"""IMAP4rev1 and IMAP4rev2 (RFC 3501, 9051) server: parser, codecs, session, network wiring."""
