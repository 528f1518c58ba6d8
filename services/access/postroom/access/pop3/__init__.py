"""POP3 (RFC 1939): the sans-I/O protocol and its asyncio server."""
