"""An IMAP4rev2 client over a real socket (RFC 9051; imaplib knows only IMAP4rev1): it
sees both revisions advertised, enables IMAP4rev2 and then speaks it: UTF-8 mailbox names,
SELECT's LIST response, ESEARCH, LIST (SUBSCRIBED) instead of LSUB."""

from __future__ import annotations

import asyncio

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import ImapEndpoint, message
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def command(self, tag: str, text: str) -> list[str]:
        """Send a command; the lines of its answer up to the tagged one, as UTF-8."""
        self.writer.write(f"{tag} {text}\r\n".encode())
        await self.writer.drain()
        lines = []
        while True:
            line = (await self.reader.readline()).decode().removesuffix("\r\n")
            lines.append(line)
            if line.startswith(tag + " "):
                return lines


async def test_rev2_client_enables_imap4rev2_and_speaks_it(
    conn: Conn, imap: ImapEndpoint, alice: Account
) -> None:
    box = await store.get_mailbox(conn, alice.id, "INBOX")
    assert box is not None
    await store.append_message(conn, box.id, message("hello"))
    reader, writer = await asyncio.open_connection(imap.host, imap.port)
    client = Client(reader, writer)
    try:
        greeting = (await reader.readline()).decode()
        assert greeting.startswith("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
        assert (await client.command("a", f"LOGIN {alice.address} pw"))[-1].startswith("a OK")
        assert await client.command("b", "ENABLE IMAP4rev2") == [
            "* ENABLED IMAP4rev2",
            "b OK ENABLE completed",
        ]
        assert await client.command("c", 'CREATE "Entwürfe/日本語"') == ["c OK CREATE completed"]
        assert await client.command("d", 'SUBSCRIBE "Entwürfe/日本語"') == [
            "d OK SUBSCRIBE completed"
        ]
        assert await client.command("e", 'LIST (SUBSCRIBED) "" "Entw*"') == [
            '* LIST (\\HasNoChildren \\Subscribed) "/" "Entwürfe/日本語"',
            "e OK LIST completed",
        ]
        selected = await client.command("f", "SELECT Inbox")
        assert '* LIST (\\HasNoChildren) "/" INBOX' in selected
        assert [line for line in selected if "RECENT" in line or "UNSEEN" in line] == []
        assert await client.command("g", "SEARCH ALL") == [
            '* ESEARCH (TAG "g") ALL 1',
            "g OK SEARCH completed",
        ]
        assert await client.command("h", 'LSUB "" *') == [
            "h BAD LSUB is not part of IMAP4rev2, use LIST (SUBSCRIBED)"
        ]
        assert (await client.command("i", "LOGOUT"))[-1] == "i OK LOGOUT completed"
    finally:
        writer.close()
