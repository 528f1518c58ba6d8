"""ManageSieve (RFC 5804): the sans-I/O protocol and its asyncio server."""
