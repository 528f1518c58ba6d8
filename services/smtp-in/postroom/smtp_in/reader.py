"""SMTP framing without I/O: bytes in, command lines and DATA content (unstuffed) out.

Fed whatever the socket gave (`feed`), the reader hands out one event at a time
(`next_event`): a command line, a refused line, or, after `begin_data`, the message content
in chunks as it is unstuffed and finally the end of DATA. It never raises on client input and
holds at most one command line (`MAX_LINE`) plus what was fed and not yet read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from postroom.smtp_in import replies as R
from postroom.smtp_in.replies import Reply

# RFC 5321 §4.5.3.1.4 allows 512 octets per command line; extensions (SIZE, SMTPUTF8, AUTH
# initial responses of RFC 4954 §4) need more, so a command line may have this many octets.
MAX_LINE = 4096
TERMINATOR = b"\r\n.\r\n"


@dataclass(frozen=True, slots=True)
class Line:
    """A command line (or an AUTH response) without its CRLF."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line refused before it is parsed (too long, not ended by CRLF): answer ``reply``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Content:
    """The next piece of the message, dot-stuffing undone (RFC 5321 §4.5.2)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfData:
    """CRLF.CRLF was read. ``problem`` is the reply when the content was refused on the way
    (too big, a bare CR or LF): the client gets it now, in sync with its pipeline."""

    problem: Reply | None
    size: int  # octets of unstuffed content


Event: TypeAlias = Line | BadLine | Content | EndOfData


class _Data:
    """One DATA section being framed: unstuffs as it goes, checks line endings and size.

    The stream is read as if preceded by CRLF, so that a "." on the first line and an empty
    message look like every other line. Only a tail of at most four octets (a CRLF that may
    start the terminator or a stuffed dot) waits for the next chunk.
    """

    __slots__ = ("_carry", "_first", "bare", "max_size", "size")

    def __init__(self, max_size: int) -> None:
        self._carry = b"\r\n"
        self._first = True  # the leading CRLF above is still in the output
        self.max_size = max_size
        self.size = 0
        self.bare = False

    def _unstuff(self, region: bytes) -> bytes:
        # RFC 5321 §2.3.8: CR and LF appear only together. Refusing anything else makes the
        # smuggling of a second message past a lenient next hop impossible ("\n.\n" etc.).
        crlf = region.count(b"\r\n")
        if region.count(b"\n") != crlf or region.count(b"\r") != crlf:
            self.bare = True
        out = region.replace(b"\r\n.", b"\r\n")
        if self._first:
            out = out[2:]
            self._first = False
        self.size += len(out)
        return out

    def feed(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        """(content ready, None) or (the last content, what followed the terminator)."""
        data = self._carry + chunk
        end = data.find(TERMINATOR)
        if end >= 0:
            self._carry = b""
            return self._unstuff(data[: end + 2]), data[end + 5 :]
        cut = len(data) - 4
        # Keep a CR, or a CRLF, at the cut for the next chunk: it may begin "\r\n." or the
        # terminator, whose meaning the next octets decide.
        if cut > 0 and data[cut - 1] == 0x0D:
            cut -= 1
        elif cut > 1 and data[cut - 2 : cut] == b"\r\n":
            cut -= 2
        if cut <= 0:
            self._carry = data
            return b"", None
        self._carry = data[cut:]
        return self._unstuff(data[:cut]), None


class Reader:
    """The framing of one SMTP connection's input."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # octets at the start of _buf known to hold no LF
        self._skipping = False  # discarding an overlong line up to its LF
        self._data: _Data | None = None
        self._pending_end: _Data | None = None  # the end, due after the last Content

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def partial(self) -> bool:
        """Part of a line or of a message is held: the client is sending, not idle."""
        return bool(self._buf) or self._skipping or self._data is not None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def discard(self) -> int:
        """Drop everything not yet read (STARTTLS); the number of octets dropped."""
        dropped = len(self._buf)
        self._buf.clear()
        self._scanned = 0
        self._skipping = False
        return dropped

    def begin_data(self, max_size: int) -> None:
        """What follows the DATA command's 354 is message content up to CRLF.CRLF."""
        self._data = _Data(max_size)

    def next_event(self) -> Event | None:
        """The next event, or None when more input is needed."""
        if self._data is not None:
            return self._next_content(self._data)
        return self._next_line()

    def _next_content(self, data: _Data) -> Event | None:
        if not self._buf:
            return None
        chunk = bytes(self._buf)
        self._buf.clear()
        content, rest = data.feed(chunk)
        if data.size > data.max_size:
            content = b""  # discarded; the 552 comes at the end, in sync
        if rest is None:
            return Content(content) if content else None
        self._buf += rest
        self._data = None
        if content:
            # The last piece first; the end follows on the next call.
            self._pending_end = data
            return Content(content)
        return self._end(data)

    def _end(self, data: _Data) -> EndOfData:
        problem = None
        if data.size > data.max_size:
            problem = R.R552_TOO_BIG
        elif data.bare:
            problem = R.R554_BARE_LINE_ENDING
        return EndOfData(problem, data.size)

    def _next_line(self) -> Event | None:
        if self._pending_end is not None:
            data, self._pending_end = self._pending_end, None
            return self._end(data)
        buf = self._buf
        end = buf.find(b"\n", self._scanned)
        if end < 0:
            if len(buf) > MAX_LINE:
                # Discard the overlong line up to its end, then answer it (in sync).
                self._skipping = True
                buf.clear()
                self._scanned = 0
            else:
                self._scanned = len(buf)
            return None
        self._scanned = 0
        line = bytes(buf[: end + 1])
        del buf[: end + 1]
        if self._skipping:
            self._skipping = False
            return BadLine(R.R500_LINE_TOO_LONG)
        if len(line) > MAX_LINE:
            return BadLine(R.R500_LINE_TOO_LONG)
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            return BadLine(R.R500_BARE_LF)
        return Line(line[:-2])
