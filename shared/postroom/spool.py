"""Messages on their way in, kept in a file rather than in memory, within a byte budget.

A protocol server writes a message here piece by piece as it arrives (SMTP DATA after
unstuffing), so a connection holds one piece in memory (and a small message, up to
SPILL_SIZE), never a large message: fifty senders of
50 MiB each cost disk, not RAM; the store then takes the content as a stream of pieces
(`store.put_blob_stream`).

`InflightBudget` bounds the octets of every message being received by one process at once;
a writer past it is refused (SMTP 452 4.3.1, IMAP NO [LIMIT]) and gives its share back.
Files are written with plain writes: they land in the page cache in microseconds, and the
reader's chunks (64 KiB and more) keep the number of writes small.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from postroom.errors import LimitExceeded

# The start of the message is also kept in memory: header fields are read from it.
HEAD_SIZE = 64 * 1024
CHUNK_SIZE = 1024 * 1024
# Up to this much stays in memory, no file made: most mail is small, and a file per message
# would cost more than it saves. 500 connections hold at most 128 MiB so.
SPILL_SIZE = 256 * 1024


class InflightBudget:
    """Octets of messages being received by this process, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def reserve(self, octets: int) -> bool:
        if self.in_use + octets > self.limit:
            return False
        self.in_use += octets
        return True

    def release(self, octets: int) -> None:
        self.in_use = max(0, self.in_use - octets)


class SpoolFile:
    """One message being received: in memory up to SPILL_SIZE, past it in a file under
    ``folder`` (unlinked from the start, so nothing is left behind by a crash)."""

    def __init__(self, folder: Path, budget: InflightBudget | None = None) -> None:
        self._folder = folder
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self._budget = budget
        self._reserved = 0
        self.size = 0
        self.head = bytearray()

    def write(self, data: bytes) -> None:
        """Append a piece; raises `LimitExceeded` when the process's budget has no room."""
        if self._budget is not None:
            if not self._budget.reserve(len(data)):
                raise LimitExceeded("too many messages are being received at once")
            self._reserved += len(data)
        if self._file is None and len(self._memory) + len(data) <= SPILL_SIZE:
            self._memory += data
        else:
            if self._file is None:
                self._folder.mkdir(parents=True, exist_ok=True)
                self._file = tempfile.TemporaryFile(dir=self._folder, prefix="in-")  # noqa: SIM115 - closed by close()
                self._file.write(self._memory)
                self._memory = bytearray()
            self._file.write(data)
        if len(self.head) < HEAD_SIZE:
            self.head += data[: HEAD_SIZE - len(self.head)]
        self.size += len(data)

    def read_all(self) -> bytes:
        """The whole message in memory (for a small one, or a check that needs it all)."""
        if self._file is None:
            return bytes(self._memory)
        self._file.flush()
        return os.pread(self._file.fileno(), self.size, 0)

    async def chunks(self, start: int = 0, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Bytes ``start..`` in pieces of ``size``, one piece in memory at a time."""
        if self._file is None:
            for offset in range(start, self.size, size):
                yield bytes(self._memory[offset : offset + size])
            return
        self._file.flush()
        offset = start
        while offset < self.size:
            piece = os.pread(self._file.fileno(), min(size, self.size - offset), offset)
            if not piece:
                break
            yield piece
            offset += len(piece)

    def close(self) -> None:
        """Delete the file and give its octets back to the budget."""
        if self._budget is not None:
            self._budget.release(self._reserved)
        self._reserved = 0
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
