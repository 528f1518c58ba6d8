"""DATA into a file as it arrives, then into Postgres as a stream: no message held in RAM.

`FileSink` is the session's `MessageSink`: each unstuffed piece from the reader goes to a
`postroom.spool.SpoolFile` under ``<data dir>/spool``, counted against the process's
`InflightBudget` (`POSTROOM_MAX_INFLIGHT_BYTES`); past it the message is refused with
452 4.3.1 after the end of DATA, and its octets are given back. At the end, `store` streams
the trace fields and the file into a blob (`store.put_blob_stream`), one piece at a time.
A file rather than Postgres in chunks during DATA: a slow sender then holds no database
connection and no transaction, and an aborted transfer leaves nothing to clean up there.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from postroom import store
from postroom.db import Conn
from postroom.errors import LimitExceeded
from postroom.smtp_in import received
from postroom.smtp_in.replies import Reply, SmtpError
from postroom.spool import HEAD_SIZE, InflightBudget, SpoolFile
from postroom.store.types import BlobId

# RFC 3463 §3.4: X.3.1 mail system full; RFC 5321 §4.2.2: 452 insufficient system storage.
R452_BUSY = Reply(452, "4.3.1", "Insufficient system storage, try again later")
# Smaller messages are read back whole and spooled in one statement, as before: faster, and
# their memory is within the budget anyway.
IN_MEMORY_LIMIT = 1024 * 1024


class FileSink:
    """The content of one DATA, in a file, within the process's budget."""

    def __init__(self, folder: Path, budget: InflightBudget) -> None:
        self.file = SpoolFile(folder, budget)

    @property
    def size(self) -> int:
        return self.file.size

    async def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except LimitExceeded:
            self.file.close()
            raise SmtpError(R452_BUSY, "inflight_budget") from None

    async def read(self) -> bytes:
        return self.file.read_all()

    async def discard(self) -> None:
        self.file.close()

    def header_section(self) -> bytes:
        """The header fields and the empty line after them, as far as the kept head goes."""
        head = bytes(self.file.head)
        end = head.find(b"\r\n\r\n")
        return head if end < 0 else head[: end + 4]

    @property
    def streamed(self) -> bool:
        """Large enough to be stored as a stream rather than read back whole."""
        return self.file.size > IN_MEMORY_LIMIT

    async def store(
        self, conn: Conn, prefix: bytes, *, submission: bool, hostname: str, now: datetime
    ) -> tuple[BlobId, bytes]:
        """Store ``prefix`` (the trace fields) and the content as one blob; its id and the
        header section (for the Message-ID). On submission the Message-ID and Date fields
        are added when missing (RFC 6409 §8), as for a message in memory."""
        head = bytes(self.file.head)
        start = 0
        end = head.find(b"\r\n\r\n")
        if submission and end >= 0:
            section = head[: end + 4]
            prefix += received.add_submission_headers(section, hostname=hostname, now=now)
            start = len(section)
        size = len(prefix) + self.file.size - start
        digest = hashlib.sha256(prefix)
        async for piece in self.file.chunks(start):
            digest.update(piece)

        async def pieces() -> AsyncIterator[bytes]:
            yield prefix
            async for piece in self.file.chunks(start):
                yield piece

        blob_id = await store.put_blob_stream(conn, digest.digest(), size, pieces())
        return blob_id, prefix + head[start : HEAD_SIZE if end < 0 else end + 4]
