"""A message the API sends, written to a spool file as it is built, then stored as a stream.

`compose.build` makes the message with a short random placeholder in place of each uploaded
file; `write` copies that skeleton to a `postroom.spool.SpoolFile` (under
``<data dir>/spool``, counted against the process's `InflightBudget`) and puts each file's
base64 where its placeholder was, read from the upload (which the form parser has already
spooled to disk) a piece at a time. So a send holds the skeleton (headers and text) and one
piece of an attachment in memory, never the message: its size is known before a byte is
written (413 past the limit), and the budget refuses it (503) before the disk fills.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fastapi import UploadFile

from postroom import store
from postroom.api import compose
from postroom.api.problems import Problem
from postroom.db import Conn
from postroom.errors import InvalidInput, LimitExceeded
from postroom.spool import InflightBudget, SpoolFile
from postroom.store.types import BlobId

# RFC 2045 §6.8: base64 lines of at most 76 characters, 57 octets each.
LINE_OCTETS = 57
LINE_CHARS = 76
# Octets of an upload read at once (a multiple of a line: every piece but the last encodes
# to whole lines).
PIECE = LINE_OCTETS * 4096


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Placeholder:
    """Where one upload goes: the line its placeholder content encodes to, and the upload."""

    line: bytes
    source: Readable
    size: int


class InMemory:
    """Content already read (an attachment kept from a draft), read as an upload is."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._file.read(size)


@dataclass
class Attachments:
    """The files of a message being built: a placeholder part each for `compose.Draft`
    (``parts``), and what `write` streams in its place (``placeholders``)."""

    parts: list[compose.Upload] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)

    def add(self, filename: str, content_type: str | None, source: Readable, size: int) -> None:
        content = placeholder()
        self.parts.append(compose.Upload(filename, content_type, content))
        self.placeholders.append(Placeholder(placeholder_line(content), source, size))

    def add_upload(self, upload: UploadFile) -> None:
        self.add(upload.filename or "attachment", upload.content_type, upload, _size(upload))

    def __len__(self) -> int:
        return len(self.parts)


def uploaded(files: Sequence[UploadFile | str] | None) -> list[UploadFile]:
    """The files of a form (a browser's empty file input, a field with an empty name, is
    left out)."""
    return [f for f in files or [] if not isinstance(f, str) and (f.filename or f.size)]


def _size(upload: UploadFile) -> int:
    """The upload's size as the form parser counted it (else as its file says)."""
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


def placeholder() -> bytes:
    """Content for an attachment part that `write` replaces: 24 random octets encode to one
    base64 line of 32 characters, found nowhere else in the message."""
    return secrets.token_bytes(24)


def placeholder_line(content: bytes) -> bytes:
    return base64.b64encode(content) + b"\r\n"


def encoded_size(octets: int) -> int:
    """Octets ``octets`` of content take as base64 in CRLF-ended lines of 76 characters."""
    chars = 4 * -(-octets // 3)
    return chars + 2 * -(-chars // LINE_CHARS)


def message_size(skeleton: bytes, uploads: Sequence[Placeholder]) -> int:
    """The size of the message once every placeholder line is replaced by its upload."""
    return len(skeleton) + sum(encoded_size(u.size) - len(u.line) for u in uploads)


def checked_size(
    skeleton: bytes, uploads: Sequence[Placeholder], limit: int, what: str = "message"
) -> int:
    """The message's size; 413 over ``limit``, known before a byte of it is written."""
    size = message_size(skeleton, uploads)
    if size > limit:
        raise Problem(413, f"the {what} is {size} octets; the limit is {limit}")
    return size


@asynccontextmanager
async def spooled(
    folder: Path, budget: InflightBudget, skeleton: bytes, uploads: Sequence[Placeholder]
) -> AsyncIterator[SpoolFile]:
    """The message written to a spool file under ``folder`` (503 when ``budget`` has no
    room for it), deleted and given back to the budget afterwards."""
    spool = SpoolFile(folder, budget)
    try:
        try:
            await write(spool, skeleton, uploads)
        except LimitExceeded:
            raise Problem(503, "too many messages are being received; try again shortly") from None
        yield spool
    finally:
        spool.close()


async def write(spool: SpoolFile, skeleton: bytes, uploads: Sequence[Placeholder]) -> None:
    """The message into ``spool``: the skeleton with each placeholder line replaced by its
    upload in base64. Raises `postroom.errors.LimitExceeded` when the budget has no room."""
    start = 0
    for upload in uploads:
        at = skeleton.index(upload.line, start)
        spool.write(skeleton[start:at])
        await _write_base64(spool, upload)
        start = at + len(upload.line)
    spool.write(skeleton[start:])


async def _write_base64(spool: SpoolFile, upload: Placeholder) -> None:
    remaining = upload.size
    pending = b""
    while remaining > 0:
        piece = await upload.source.read(min(PIECE, remaining))
        if not piece:
            raise InvalidInput("an upload is shorter than its size")
        remaining -= len(piece)
        pending += piece
        # Whole lines only until the end, so that only the last line is short.
        whole = len(pending) - len(pending) % LINE_OCTETS if remaining else len(pending)
        spool.write(base64.encodebytes(pending[:whole]).replace(b"\n", b"\r\n"))
        pending = pending[whole:]


async def store_blob(conn: Conn, spool: SpoolFile, prefix: bytes = b"") -> BlobId:
    """``prefix`` and the spooled message as one blob, streamed (one piece in memory)."""
    digest = hashlib.sha256(prefix)
    async for piece in spool.chunks():
        digest.update(piece)

    async def pieces() -> AsyncIterator[bytes]:
        yield prefix
        async for piece in spool.chunks():
            yield piece

    return await store.put_blob_stream(conn, digest.digest(), len(prefix) + spool.size, pieces())
