"""Postroom access service: POP3 and IMAP for mail clients."""
