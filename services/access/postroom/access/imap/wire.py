"""Serialisation of IMAP response values: strings, literals, lists, dates, flags (RFC 3501 §9)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime

from postroom.access.imap import mutf7
from postroom.imap_encoding import literal_prefix, quote

__all__ = [
    "Atom",
    "Run",
    "WireValue",
    "astring",
    "decode_mailbox",
    "decode_pattern",
    "encode_list",
    "encode_mailbox",
    "encode_value",
    "format_flags",
    "format_internal_date",
    "literal_prefix",
    "nstring",
    "number",
    "quote",
]

# Strings: `quote` and `literal_prefix` (postroom.imap_encoding, which the store uses too).
# ASTRING-CHAR = ATOM-CHAR / resp-specials: CHAR except "(" ")" "{" SP CTL "%" "*" DQUOTE "\".
_ASTRING = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\]+')
# RFC 9051 §4.3.1: after ENABLE IMAP4rev2, a quoted string may carry UTF-8 (not NUL, CR, LF).
_UTF8_QUOTABLE = re.compile(rb"[^\x00\r\n]*")
_QUOTED_SPECIALS = re.compile(rb'(["\\])')
# Net-Unicode (RFC 5198 §2) has no control characters (C0, DEL, C1) in a name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TOKEN_FORBIDDEN = re.compile(r"[\x00\r\n]|[^\x00-\x7f]")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Atom(str):
    """A token written as is, without quotes: an atom, a flag, or a FETCH label such as
    ``BODY[HEADER]``. `encode_value` writes every other `str` as a string."""

    __slots__ = ()


# What `encode_value` accepts: None is NIL, int a number, str and bytes strings, other
# sequences (lists, tuples) parenthesised lists, `Run` items side by side. ENVELOPE and
# BODYSTRUCTURE are built from these.
WireValue = str | bytes | int | None | Sequence["WireValue"]


class Run(tuple[WireValue, ...]):
    """Values written side by side, with neither spaces nor parentheses.

    RFC 3501 §9 joins some lists without SP: an address list is ``"(" 1*address ")"``,
    so ``[Run(addresses)]``; a multipart body is ``"(" 1*body SP media-subtype ...``, so
    ``[Run(parts), "MIXED", ...]``.
    """

    __slots__ = ()


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def astring(value: str | bytes) -> bytes:
    """An astring: bare when it is all ASTRING-CHARs, otherwise quoted or a literal.

    "NIL" is quoted so that a reader expecting an nstring cannot take it for nil.
    """
    data = _as_bytes(value)
    if _ASTRING.fullmatch(data) and data.upper() != b"NIL":
        return data
    return quote(data)


def nstring(value: str | bytes | None) -> bytes:
    """An nstring: NIL for None, otherwise a quoted string or literal."""
    return b"NIL" if value is None else quote(value)


def number(value: int) -> bytes:
    """A number (RFC 3501 §9: 1*DIGIT, so never negative)."""
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"not an IMAP number: {value!r}")
    return b"%d" % value


def encode_list(items: Iterable[bytes]) -> bytes:
    """A parenthesised list of already-encoded items."""
    return b"(" + b" ".join(items) + b")"


def encode_mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name as an astring: in modified UTF-7 (RFC 3501 §5.1.3), or in UTF-8
    once IMAP4rev2 is enabled (RFC 9051 §5.1; §4.3.1: a quoted string may carry UTF-8)."""
    if not utf8:
        return astring(mutf7.encode(name))
    data = name.encode("utf-8")
    if _ASTRING.fullmatch(data) and data.upper() != b"NIL":
        return data
    if _UTF8_QUOTABLE.fullmatch(data):
        return b'"' + _QUOTED_SPECIALS.sub(rb"\\\1", data) + b'"'
    return quote(data)


def decode_mailbox(raw: bytes, *, utf8: bool) -> str:
    """The mailbox a client named: `raw` as sent, modified UTF-7 (RFC 3501 §5.1.3), or
    UTF-8 once IMAP4rev2 is enabled (RFC 9051 §5.1).

    Raises ValueError for a name no mailbox can have: not valid modified UTF-7, or (UTF-8)
    not Net-Unicode (RFC 5198: UTF-8 in Normalization Form C, without control characters;
    RFC 9051 §5.1 lets a server refuse denormalized names rather than convert them).
    """
    if utf8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("mailbox name is not Net-Unicode") from None
        if _CONTROL.search(name) or unicodedata.normalize("NFC", name) != name:
            raise ValueError("mailbox name is not Net-Unicode")
    else:
        try:
            name = mutf7.decode(raw.decode("ascii"))
        except ValueError:  # UnicodeDecodeError included
            raise ValueError("mailbox name is not valid modified UTF-7") from None
    # RFC 3501 §5.1, RFC 9051 §5.1: "The case-insensitive mailbox name INBOX is a special
    # name reserved to mean the primary mailbox"; only that exact name, not its children.
    return "INBOX" if name.upper() == "INBOX" else name


def decode_pattern(raw: bytes, *, utf8: bool) -> str | None:
    """A LIST pattern as `decode_mailbox` decodes names (``*`` and ``%`` kept), or None
    when no mailbox name can match it (the answer is then an empty list, not an error,
    as Dovecot answers)."""
    try:
        return raw.decode("utf-8") if utf8 else mutf7.decode(raw.decode("ascii"))
    except ValueError:
        return None


def format_flags(flags: Iterable[str]) -> bytes:
    """A flag list: ``(\\Seen $Forwarded)``."""
    return encode_list(_token(flag) for flag in flags)


def format_internal_date(moment: datetime) -> str:
    """An INTERNALDATE without its quotes: ``dd-Mon-yyyy hh:mm:ss +zzzz``.

    RFC 3501 §9: date-day-fixed = (SP DIGIT) / 2DIGIT, so days below 10 start with a space.
    The month is always English, whatever the locale. `moment` must carry a time zone.
    """
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("an internal date needs a time zone")
    minutes = round(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (
        f"{moment.day:2d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {sign}{hours:02d}{minutes:02d}"
    )


def _token(value: str) -> bytes:
    if not value or _TOKEN_FORBIDDEN.search(value):
        raise ValueError(f"not a token that can be written bare: {value!r}")
    return value.encode("ascii")


def encode_value(value: WireValue) -> bytes:
    """Encode a nested value: None is NIL, int a number, `Atom` bare, other str and bytes
    a quoted string or literal, a list, tuple or other sequence a parenthesised list,
    `Run` its items side by side.

    This is how ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2) reach the wire.
    """
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return _token(value)
    if isinstance(value, str | bytes):
        return quote(value)
    if isinstance(value, int):
        return number(value)
    if isinstance(value, Run):
        return b"".join(encode_value(item) for item in value)
    if isinstance(value, Sequence):
        return encode_list(encode_value(item) for item in value)
    raise TypeError(f"cannot encode {type(value).__name__} for IMAP")
