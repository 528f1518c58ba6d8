"""The message and envelope as Sieve tests see them: header values, addresses, body text, dates."""

from __future__ import annotations

import email
import email.header
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from email.message import Message
from functools import cached_property

from postroom.sieve.match import ascii_lower


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 5228 §5.4: the SMTP envelope; ``sender`` is empty for the null reverse path."""

    sender: str
    recipient: str
    original_recipient: str | None = None


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_TAG = re.compile(r"<[^>]*>")


class MessageView:
    """Lazily parsed views of one raw message; nothing is parsed a test does not ask for."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.size = len(raw)

    @cached_property
    def _split(self) -> tuple[bytes, bytes]:
        if self.raw.startswith((b"\r\n", b"\n")):
            return b"", self.raw.split(b"\n", 1)[1]
        found = _BLANK_LINE.search(self.raw)
        if found is None:
            return self.raw, b""
        return self.raw[: found.start()], self.raw[found.end() :]

    @cached_property
    def fields(self) -> list[tuple[str, str]]:
        """Header fields in order: lower-case name and unfolded raw value (RFC 5322 §2.2.3)."""
        result: list[tuple[str, str]] = []
        text = self._split[0].decode("utf-8", "replace")
        for line in re.split(r"\r?\n", text):
            if line[:1] in (" ", "\t") and result:
                name, value = result[-1]
                result[-1] = (name, value + line)
                continue
            name, colon, value = line.partition(":")
            if colon and name and " " not in name.strip():
                result.append((name.strip().lower(), value))
        return result

    def raw_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for field_name, value in self.fields if field_name == wanted]

    def header_values(self, name: str, index: int | None = None, last: bool = False) -> list[str]:
        """RFC 5228 §5.7: decoded (RFC 2047) header values, leading and trailing space removed."""
        values = _select(self.raw_values(name), index, last)
        return [_decode_words(value).strip() for value in values]

    def addresses(self, name: str, index: int | None = None, last: bool = False) -> list[str]:
        """RFC 5228 §5.1: the addr-specs in a structured address header."""
        result: list[str] = []
        for value in _select(self.raw_values(name), index, last):
            for _display, addr in email.utils.getaddresses([value]):
                if addr:
                    result.append(addr)
        return result

    @cached_property
    def _mime(self) -> Message:
        return email.message_from_bytes(self.raw)

    def body_texts(self, transform: str, content_types: tuple[str, ...]) -> list[str]:
        """RFC 5173 §5: the body as :raw, :content or :text (the default) see it."""
        if transform == "raw":
            return [self._split[1].decode("utf-8", "replace")]
        if transform == "text":
            content_types = ("text",)
        texts: list[str] = []
        for part in self._mime.walk():
            maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
            if part.is_multipart():
                continue
            if not any(_type_matches(t, maintype, subtype) for t in content_types):
                continue
            texts.append(_part_text(part, html_as_text=transform == "text"))
        return texts

    def date_values(self, name: str, index: int | None, last: bool) -> list[datetime]:
        result: list[datetime] = []
        for value in _select(self.raw_values(name), index, last):
            if name.lower() == "received":
                # RFC 5260 §4: the date of a Received field follows its last ';'.
                value = value.rpartition(";")[2]
            try:
                parsed = email.utils.parsedate_to_datetime(value.strip())
            except (TypeError, ValueError, IndexError):
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)  # RFC 5322 §3.3: -0000 means UTC
            result.append(parsed)
        return result


def _select(values: list[str], index: int | None, last: bool) -> list[str]:
    # RFC 5260 §6: :index N picks the Nth occurrence (from the end with :last), 1-based.
    if index is None:
        return values
    if index < 1 or index > len(values):
        return []
    return [values[-index] if last else values[index - 1]]


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _type_matches(wanted: str, maintype: str, subtype: str) -> bool:
    # RFC 5173 §5.2: "" matches every part, "text" every text/*, "text/html" that type only.
    wanted = ascii_lower(wanted)
    if wanted == "":
        return True
    if "/" in wanted:
        return wanted == f"{maintype}/{subtype}"
    return wanted == maintype


def _part_text(part: Message, *, html_as_text: bool) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    if html_as_text and part.get_content_subtype() == "html":
        text = _TAG.sub(" ", text)
    return text


def date_part(value: datetime, part: str) -> str | None:
    """RFC 5260 §4.2 date-part of an aware datetime; None for an unknown part."""
    part = part.lower()
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    if part == "year":
        return f"{value.year:04d}"
    if part == "month":
        return f"{value.month:02d}"
    if part == "day":
        return f"{value.day:02d}"
    if part == "date":
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if part == "julian":
        # Modified Julian Day: days since 1858-11-17.
        return str((value.date() - date(1858, 11, 17)).days)
    if part == "hour":
        return f"{value.hour:02d}"
    if part == "minute":
        return f"{value.minute:02d}"
    if part == "second":
        return f"{value.second:02d}"
    if part == "time":
        return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if part == "iso8601":
        return value.strftime("%Y-%m-%dT%H:%M:%S") + f"{zone[:3]}:{zone[3:]}"
    if part == "std11":
        return email.utils.format_datetime(value)
    if part == "zone":
        return zone
    if part == "weekday":
        return str((value.weekday() + 1) % 7)  # 0 is Sunday
    return None


def parse_zone(text: str) -> timezone | None:
    match = re.fullmatch(r"([+-])(\d\d)(\d\d)", text)
    if match is None:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))
