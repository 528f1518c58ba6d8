"""COMPRESS=DEFLATE (RFC 4978) over real sockets, with a client that compresses, in the clear
and inside implicit TLS; the refusals by transcript."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from postroom.db import Conn
from postroom.store.types import Account
from tests.integration.access.imap_support import (
    ImapEndpoint,
    Transcript,
    message,
    running_imap,
)
from tests.support import Tenant


class DeflateClient:
    """A minimal IMAP client that can switch both directions to raw DEFLATE (RFC 1951)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.buffer = b""

    def compress(self) -> None:
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def packed(self, data: bytes) -> bytes:
        assert self.deflate is not None
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    async def send(self, data: bytes) -> None:
        self.writer.write(self.packed(data) if self.deflate is not None else data)
        await self.writer.drain()

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            raw = await self.reader.read(65536)
            assert raw, "connection closed"
            self.buffer += self.inflate.decompress(raw) if self.inflate is not None else raw
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            raw = await self.reader.read(65536)
            assert raw, "connection closed"
            self.buffer += self.inflate.decompress(raw) if self.inflate is not None else raw
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    async def until(self, tag: bytes) -> list[bytes]:
        """Lines up to the tagged one, literals inlined."""
        lines = []
        while True:
            line = await self.line()
            if line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -1])
                line += b"\r\n" + await self.read_exactly(size) + await self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines


@asynccontextmanager
async def logged_in(
    imap: ImapEndpoint, account: Account, *, tls: bool = False
) -> AsyncIterator[DeflateClient]:
    if tls:
        reader, writer = await asyncio.open_connection(
            imap.host, imap.tls_port, ssl=imap.client_context(), server_hostname="127.0.0.1"
        )
    else:
        reader, writer = await asyncio.open_connection(imap.host, imap.port)
    client = DeflateClient(reader, writer)
    try:
        await client.line()
        await client.send(f"a LOGIN {account.address} pw\r\n".encode())
        assert (await client.until(b"a"))[-1].startswith(b"a OK")
        yield client
    finally:
        writer.close()


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw")


async def session_after_compress(client: DeflateClient) -> None:
    """COMPRESS, then an APPEND (with a literal over the streaming size) and its FETCH,
    compressed both ways, then a second COMPRESS."""
    await client.send(b"c COMPRESS DEFLATE\r\n")
    assert await client.line() == b"c OK DEFLATE active"  # the last octets in the clear
    client.compress()
    big = message("big", "".join(f"line {n:06d} of the message\r\n" for n in range(12_000)))
    await client.send(b"d APPEND INBOX {%d}\r\n" % len(big))
    assert (await client.line()).startswith(b"+ ")
    await client.send(big + b"\r\n")
    assert (await client.until(b"d"))[-1].startswith(b"d OK [APPENDUID ")
    await client.send(b"e SELECT INBOX\r\n")
    assert (await client.until(b"e"))[-1] == b"e OK [READ-WRITE] SELECT completed"
    await client.send(b"f FETCH 1 (BODY.PEEK[])\r\n")
    fetched = await client.until(b"f")
    assert fetched == [
        b"* 1 FETCH (BODY[] {%d}\r\n" % len(big) + big + b")",
        b"f OK FETCH completed",
    ]
    # RFC 4978 §3: a second COMPRESS is refused, compressed like everything else now.
    await client.send(b"g COMPRESS DEFLATE\r\n")
    assert await client.line() == b"g NO [COMPRESSIONACTIVE] DEFLATE is already active"


async def test_compress_deflate_in_the_clear(
    database_url: str, tmp_path: Path, alice: Account
) -> None:
    async with running_imap(database_url, tmp_path) as imap, logged_in(imap, alice) as client:
        await session_after_compress(client)


async def test_compress_deflate_inside_implicit_tls(
    database_url: str, tmp_path: Path, alice: Account
) -> None:
    # RFC 4978 §6: TLS first, then compression; the compressed stream goes through TLS.
    async with (
        running_imap(database_url, tmp_path) as imap,
        logged_in(imap, alice, tls=True) as client,
    ):
        await session_after_compress(client)


async def test_data_sent_right_after_compress_is_read_as_compressed(
    database_url: str, tmp_path: Path, alice: Account
) -> None:
    async with running_imap(database_url, tmp_path) as imap, logged_in(imap, alice) as client:
        helper = DeflateClient(client.reader, client.writer)
        helper.compress()
        client.writer.write(b"c COMPRESS DEFLATE\r\n" + helper.packed(b"d NOOP\r\n"))
        await client.writer.drain()
        assert await client.line() == b"c OK DEFLATE active"
        client.inflate = zlib.decompressobj(-15)
        client.buffer = client.inflate.decompress(client.buffer)  # read with the OK, if any
        assert await client.until(b"d") == [b"d OK NOOP completed"]


async def test_idle_works_compressed(database_url: str, tmp_path: Path, alice: Account) -> None:
    async with running_imap(database_url, tmp_path) as imap, logged_in(imap, alice) as client:
        await client.send(b"c COMPRESS DEFLATE\r\n")
        await client.line()
        client.compress()
        await client.send(b"d IDLE\r\n")
        assert await client.line() == b"+ idling"
        await client.send(b"DONE\r\n")
        assert await client.until(b"d") == [b"d OK IDLE terminated"]


async def test_compress_before_login_is_not_allowed(conn: Conn) -> None:
    assert await Transcript(conn).lines("a COMPRESS DEFLATE") == [
        "a BAD COMPRESS not allowed in not authenticated"
    ]


async def test_an_unknown_mechanism_is_bad(conn: Conn, alice: Account) -> None:
    t = Transcript(conn)
    await t.send(f"a LOGIN {alice.address} pw")
    assert await t.lines("b COMPRESS LZ4") == ["b BAD Unknown compression mechanism"]
    assert "COMPRESS=DEFLATE" in (await t.lines("c CAPABILITY"))[0].split()
