"""IMAP4rev1 (RFC 3501) server: parser, codecs, session and network wiring."""
