"""Parse a message once at delivery: IMAP envelope, MIME tree with byte offsets, search text."""

# Everything a reader needs later (IMAP ENVELOPE/BODYSTRUCTURE and BODY[section], listing,
# search) is computed here once and stored as JSON beside the raw message. The MIME tree is
# found by scanning the raw bytes, never by re-serialising a parsed message, so that every
# BODY[section] fetch returns the exact octets that arrived. Nothing here raises on malformed
# input; work is bounded by MAX_DEPTH, MAX_PARTS and MAX_SEARCH_TEXT.

from __future__ import annotations

import binascii
import codecs
import functools
import html
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "JSON_VERSION",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MAX_SEARCH_TEXT",
    "PREVIEW_LENGTH",
    "Address",
    "Attachment",
    "BodyPart",
    "Envelope",
    "ParsedMessage",
    "decode_header_value",
    "find_part",
    "header_fields",
    "parse_message",
    "part_bytes",
]

log = logging.getLogger(__name__)

# Bumped whenever the JSON shape or the parsing rules change, so stored rows can be re-parsed.
JSON_VERSION = 1
# Nesting deeper than this (multipart in multipart, message in message) is kept as one opaque
# leaf: no legitimate mail nests this far, and recursion must stay bounded.
MAX_DEPTH = 32
# Body parts per message; boundaries beyond this are not split out.
MAX_PARTS = 1000
# Characters of searchable text kept per message.
MAX_SEARCH_TEXT = 1 << 20
PREVIEW_LENGTH = 200
# Addresses kept per address header, and characters of one address header that are parsed.
MAX_ADDRESSES = 10_000
MAX_ADDRESS_FIELD = 256 * 1024
MAX_REFERENCES = 1000
# Transfer-encoded octets of one text part decoded for search, and characters of HTML per
# message reduced to text (html.unescape costs a Python call per character reference).
MAX_TEXT_PART_INPUT = 8 << 20
MAX_HTML_INPUT = 2 << 20


# --------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True, slots=True)
class Address:
    """One address structure of an IMAP ENVELOPE (RFC 3501 §7.4.2).

    ``name`` is the display name as written, quoted-strings unquoted but encoded-words kept.
    Group syntax (RFC 5322 §3.4): a group start is ``(None, None, group name, None)`` and a
    group end is all ``None``; an ordinary mailbox always has a ``host`` (``""`` when the header
    gave none), so ``host is None`` means group marker, as RFC 3501 defines.
    """

    name: str | None
    adl: str | None  # a source route ("@a,@b") of obsolete syntax, RFC 5322 §4.4
    mailbox: str | None
    host: str | None

    def to_json(self) -> list[str | None]:
        return [self.name, self.adl, self.mailbox, self.host]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> Address:
        return cls(data[0], data[1], data[2], data[3])


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 3501 §7.4.2 ENVELOPE: header values unfolded, encoded-words not decoded.

    A member is None when its header is absent (NIL); the string members are ``""`` when the
    header is present but empty, as RFC 3501 §7.4.2 requires.
    """

    date: str | None
    subject: str | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: str | None
    message_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "subject": self.subject,
            "from": _addresses_to_json(self.from_),
            "sender": _addresses_to_json(self.sender),
            "reply_to": _addresses_to_json(self.reply_to),
            "to": _addresses_to_json(self.to),
            "cc": _addresses_to_json(self.cc),
            "bcc": _addresses_to_json(self.bcc),
            "in_reply_to": self.in_reply_to,
            "message_id": self.message_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Envelope:
        return cls(
            date=data["date"],
            subject=data["subject"],
            from_=_addresses_from_json(data["from"]),
            sender=_addresses_from_json(data["sender"]),
            reply_to=_addresses_from_json(data["reply_to"]),
            to=_addresses_from_json(data["to"]),
            cc=_addresses_from_json(data["cc"]),
            bcc=_addresses_from_json(data["bcc"]),
            in_reply_to=data["in_reply_to"],
            message_id=data["message_id"],
        )


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One node of the MIME tree, with everything BODYSTRUCTURE needs and its byte offsets.

    ``part`` is the RFC 3501 §6.4.5 section number that fetches this node's body. A message
    whose body is not multipart has only part 1, so the top node is ``"1"`` then; a multipart
    body has no number of its own and carries its message's prefix (``""`` at the top, ``"2"``
    for the multipart inside a message/rfc822 part 2, whose children are ``"2.1"``...).

    Offsets index the raw message: ``raw[header_start:body_start]`` is the part header with its
    blank line (BODY[n.MIME]), ``raw[body_start:end]`` the body (BODY[n]).

    Invariants readers may rely on: a ``multipart`` node has at least one child; a node has an
    ``envelope`` exactly when it is a message/rfc822 whose encapsulated message was parsed, and
    then ``children`` holds that message's top node; every other node is a leaf.
    """

    part: str
    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    id: str | None
    description: str | None
    encoding: str
    md5: str | None
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None
    language: tuple[str, ...] | None
    location: str | None
    header_start: int
    body_start: int
    end: int
    size: int
    lines: int | None
    children: tuple[BodyPart, ...]
    envelope: Envelope | None
    filename: str | None

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        """The Content-Type parameter ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.params:
            if key == wanted:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "type": self.type,
            "subtype": self.subtype,
            "params": [list(p) for p in self.params],
            "id": self.id,
            "description": self.description,
            "encoding": self.encoding,
            "md5": self.md5,
            "disposition": (
                None
                if self.disposition is None
                else [self.disposition[0], [list(p) for p in self.disposition[1]]]
            ),
            "language": None if self.language is None else list(self.language),
            "location": self.location,
            "header_start": self.header_start,
            "body_start": self.body_start,
            "end": self.end,
            "size": self.size,
            "lines": self.lines,
            "children": [child.to_json() for child in self.children],
            "envelope": None if self.envelope is None else self.envelope.to_json(),
            "filename": self.filename,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BodyPart:
        disposition = data["disposition"]
        language = data["language"]
        envelope = data["envelope"]
        return cls(
            part=data["part"],
            type=data["type"],
            subtype=data["subtype"],
            params=_pairs_from_json(data["params"]),
            id=data["id"],
            description=data["description"],
            encoding=data["encoding"],
            md5=data["md5"],
            disposition=(
                None if disposition is None else (disposition[0], _pairs_from_json(disposition[1]))
            ),
            language=None if language is None else tuple(language),
            location=data["location"],
            header_start=data["header_start"],
            body_start=data["body_start"],
            end=data["end"],
            size=data["size"],
            lines=data["lines"],
            children=tuple(cls.from_json(child) for child in data["children"]),
            envelope=None if envelope is None else Envelope.from_json(envelope),
            filename=data["filename"],
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part shown to the user as an attachment.

    ``size`` is the decoded size in octets (what the saved file will weigh), not the
    transfer-encoded size BODYSTRUCTURE reports.
    """

    part: str
    filename: str | None
    content_type: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            part=data["part"],
            filename=data["filename"],
            content_type=data["content_type"],
            size=data["size"],
        )


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything known about one message without reading it again."""

    size: int
    header_size: int
    envelope: Envelope
    body: BodyPart
    subject: str | None
    from_: tuple[tuple[str, str], ...]
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    has_attachments: bool
    attachments: tuple[Attachment, ...]
    text: str
    preview: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "size": self.size,
            "header_size": self.header_size,
            "envelope": self.envelope.to_json(),
            "body": self.body.to_json(),
            "subject": self.subject,
            "from": [list(p) for p in self.from_],
            "to": [list(p) for p in self.to],
            "cc": [list(p) for p in self.cc],
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "date": None if self.date is None else self.date.isoformat(),
            "has_attachments": self.has_attachments,
            "attachments": [a.to_json() for a in self.attachments],
            "text": self.text,
            "preview": self.preview,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParsedMessage:
        date = data["date"]
        return cls(
            size=data["size"],
            header_size=data["header_size"],
            envelope=Envelope.from_json(data["envelope"]),
            body=BodyPart.from_json(data["body"]),
            subject=data["subject"],
            from_=_pairs_from_json(data["from"]),
            to=_pairs_from_json(data["to"]),
            cc=_pairs_from_json(data["cc"]),
            message_id=data["message_id"],
            in_reply_to=data["in_reply_to"],
            references=tuple(data["references"]),
            date=None if date is None else datetime.fromisoformat(date),
            has_attachments=data["has_attachments"],
            attachments=tuple(Attachment.from_json(a) for a in data["attachments"]),
            text=data.get("text", ""),  # the store keeps the text in a column of its own
            preview=data["preview"],
        )


def _addresses_to_json(addresses: tuple[Address, ...] | None) -> list[list[str | None]] | None:
    return None if addresses is None else [a.to_json() for a in addresses]


def _addresses_from_json(data: Sequence[Any] | None) -> tuple[Address, ...] | None:
    return None if data is None else tuple(Address.from_json(a) for a in data)


def _pairs_from_json(data: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((pair[0], pair[1]) for pair in data)


# --------------------------------------------------------------------------------------------
# Text decoding


# Lone surrogates and NUL cannot be stored in Postgres text or jsonb.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    if "\x00" not in text and text.isascii():
        return text
    return _UNSTORABLE.sub("\ufffd", text)


# Labels seen in real mail that Python does not know, or knows as a narrower charset than the
# one the sending software actually used.
_CHARSET_ALIASES = {
    "us-ascii": "utf-8",  # 8-bit text labelled ASCII is nearly always UTF-8; ASCII is a subset
    "ascii": "utf-8",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
}
# Codecs a stranger must not pick: not text encodings, or quadratic on hostile input.
_REFUSED_CODECS = frozenset(
    {
        "idna",
        "punycode",
        "raw-unicode-escape",
        "unicode-escape",
        "undefined",
        "base64",
        "bz2",
        "hex",
        "quopri",
        "rot-13",
        "uu",
        "zlib",
    }
)
_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}")


@functools.lru_cache(maxsize=256)
def _codec(charset: str | None) -> str:
    """Python codec name for a MIME charset label; unknown labels read as UTF-8."""
    if not charset:
        return "utf-8"
    # RFC 2231 §5: an encoded-word charset may carry "*language".
    label = charset.strip().strip("\"'").split("*", 1)[0].lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not _CHARSET_NAME.fullmatch(label):
        return "utf-8"
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return "utf-8"
    return "utf-8" if name in _REFUSED_CODECS else name


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the labelled charset, never failing: bad octets become U+FFFD."""
    try:
        text = data.decode(_codec(charset), errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        text = data.decode("utf-8", errors="replace")
    return _storable(text)


def _header_text(data: bytes) -> str:
    """A raw header value as text: UTF-8 (RFC 6532), else the octets one for one as Latin-1."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return _storable(text)


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def _b64decode(data: bytes) -> bytes:
    """Base64 as mailers actually write it: stray characters and missing padding tolerated."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    cleaned = data.translate(None, _NOT_B64)
    extra = len(cleaned) % 4
    if extra == 1:
        cleaned = cleaned[:-1]
    elif extra:
        cleaned += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return b""


def _b64_decoded_size(data: bytes) -> int:
    """Octets base64 ``data`` decodes to, without decoding it (RFC 2045 §6.8: 4 chars, 3 octets)."""
    return len(data.translate(None, _NOT_B64)) * 3 // 4


def transfer_decode(data: bytes, encoding: str) -> bytes:
    """A body's octets with its Content-Transfer-Encoding (upper-cased) undone."""
    return _transfer_decode(data, encoding)


def _transfer_decode(data: bytes, encoding: str) -> bytes:
    # RFC 2045 §6.8 and §6.7; every other encoding is the identity (7bit, 8bit, binary, and
    # unknown ones, whose bytes are the best guess there is).
    if encoding == "BASE64":
        return _b64decode(data)
    if encoding == "QUOTED-PRINTABLE":
        return binascii.a2b_qp(data)
    return data


# RFC 2047 §2: =?charset?encoding?encoded-text?= ; encoded-text has no "?" and no space, but
# some mailers put spaces inside Q words, so only "?" ends it.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded-words in an (unfolded or folded) header value; never raises."""
    try:
        return _decode_encoded_words(value)
    except Exception:  # a decoder bug must not stop delivery; show the value as written
        log.exception("message.decode_header_value.failed")
        return _storable(value)


def _decode_encoded_words(value: str) -> str:
    value = _FOLD.sub("", value)  # RFC 5322 §2.2.3 unfolding
    if "=?" not in value:
        return _storable(value)
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    last = 0
    after_word = False

    def flush() -> None:
        if pending:
            out.append(_decode_bytes(bytes(pending), pending_charset))
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        between = value[last : match.start()]
        # RFC 2047 §6.2: white space between adjacent encoded-words is not displayed.
        if between and not (after_word and between.strip(" \t\r\n") == ""):
            flush()
            out.append(between)
        charset, encoding, text = match.group(1), match.group(2).upper(), match.group(3)
        raw_text = text.encode("ascii", "replace")
        data = _b64decode(raw_text) if encoding == "B" else binascii.a2b_qp(raw_text, header=True)
        # Adjacent words in one charset are joined before decoding: senders split multi-octet
        # characters across words although RFC 2047 §5 forbids it.
        if pending and charset.lower() != pending_charset:
            flush()
        pending += data
        pending_charset = charset.lower()
        last = match.end()
        after_word = True
    flush()
    out.append(value[last:])
    return _storable("".join(out))


# --------------------------------------------------------------------------------------------
# Header fields


# RFC 5322 §2.2: the header ends at the first empty line.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# RFC 5322 §3.6.8: field-name is printable ASCII except ":" (obs-syntax allows WSP before it).
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def _header_end(raw: bytes, start: int, end: int) -> int:
    """Offset of the body of the entity at ``start``: just past the blank line, or ``end``."""
    if start >= end:
        return end
    if raw[start] == 0x0A:
        return start + 1
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    match = _BLANK_LINE.search(raw, start, end)
    return match.end() if match else end


def _read_fields(raw: bytes, start: int, stop: int, wanted: frozenset[str]) -> dict[str, str]:
    """First occurrence of each wanted field in ``raw[start:stop]``, unfolded and stripped."""
    found: dict[str, str] = {}
    name: str | None = None
    chunks: list[bytes] = []

    def flush() -> None:
        if name is not None:
            found[name] = _header_text(b"".join(chunks)).strip(" \t\r\n")

    for line in raw[start:stop].split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            # RFC 5322 §2.2.3: unfolding removes the line break, keeps the white space.
            if name is not None:
                chunks.append(line)
            continue
        flush()
        name = None
        colon = line.find(b":")
        if colon <= 0:
            continue
        field = line[:colon].rstrip(b" \t").decode("latin-1").lower()
        if field in wanted and field not in found:
            name = field
            chunks = [line[colon + 1 :]]
    flush()
    return found


_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def header_fields(header_bytes: bytes, names: Iterable[str], *, exclude: bool = False) -> bytes:
    """The fields of a header named in ``names`` (or not named, with ``exclude``), byte-exact.

    For RFC 3501 §6.4.5 BODY[HEADER.FIELDS (...)] and HEADER.FIELDS.NOT: matching is
    case-insensitive, folded continuation lines go with their field, and the result ends with
    the header's delimiting blank line (CRLF when the header had none).
    """
    wanted = {name.strip().lower() for name in names}
    out: list[bytes] = []
    keep = False
    eol = b"\r\n"
    blank = b""
    for match in _LINE.finditer(header_bytes):
        line = match.group()
        if line in (b"\r\n", b"\n"):
            blank = line
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        colon = line.find(b":")
        field = line[:colon].rstrip(b" \t").decode("latin-1").lower() if colon > 0 else ""
        keep = (field in wanted) != exclude
        if keep:
            out.append(line)
        if line.endswith(b"\n"):
            eol = b"\r\n" if line.endswith(b"\r\n") else b"\n"
    if out and not out[-1].endswith(b"\n"):
        out.append(eol)
    out.append(blank or b"\r\n")
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Addresses (RFC 5322 §3.4, with the obsolete forms of §4.4 read leniently)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "quoted", "literal", "comment", "special"
    text: str  # the value: quoted-strings and comments unquoted
    raw: str  # as written
    space_before: bool


_ADDRESS_TOKEN = re.compile(
    r"""
      (?P<ws>[ \t\r\n]+)
    | (?P<quoted>"[^"\\]*(?:\\.[^"\\]*)*"?)
    | (?P<literal>\[[^\]\\]*(?:\\.[^\]\\]*)*\]?)
    | (?P<comment>\()
    | (?P<special>[<>@,;:.])
    | (?P<word>[^ \t\r\n"(),.:;<>@\[\]]+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_COMMENT_CHARS = re.compile(r"[()\\]")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _tokens(value: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    space = False
    n = len(value)
    while pos < n:
        match = _ADDRESS_TOKEN.match(value, pos)
        if match is None:  # pragma: no cover - "other" matches any character
            break
        kind = match.lastgroup
        text = match.group()
        pos = match.end()
        if kind == "ws":
            space = True
            continue
        if kind == "comment":
            # RFC 5322 §3.2.2: comments nest and may hold quoted-pairs.
            depth, i = 1, pos
            while depth:
                found = _COMMENT_CHARS.search(value, i)
                if found is None:
                    i = n
                    break
                i = found.end()
                if found.group() == "\\":
                    i += 1
                elif found.group() == "(":
                    depth += 1
                else:
                    depth -= 1
            inner = value[pos : i - 1 if depth == 0 else i]
            tokens.append(_Token("comment", _QUOTED_PAIR.sub(r"\1", inner).strip(), "", space))
            pos = i
            space = True
            continue
        if kind == "other":
            continue
        if kind == "quoted":
            inner = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
            tokens.append(_Token("quoted", _QUOTED_PAIR.sub(r"\1", inner), text, space))
        else:
            tokens.append(_Token(kind or "word", text, text, space))
        space = False
    return tokens


def _is_special(token: _Token, chars: str) -> bool:
    return token.kind == "special" and token.text in chars


def _phrase(tokens: Sequence[_Token]) -> str:
    """A display name as written: words with their original spacing, quotes removed."""
    out: list[str] = []
    for token in tokens:
        if token.kind == "comment":
            continue
        if out and token.space_before:
            out.append(" ")
        out.append(token.text)
    return "".join(out).strip()


def _addr_spec(tokens: Sequence[_Token]) -> tuple[str, str]:
    """(local-part, domain) of an addr-spec; domain ``""`` when there is no "@"."""
    words = [t for t in tokens if t.kind != "comment"]
    at = max((i for i, t in enumerate(words) if _is_special(t, "@")), default=-1)
    if at < 0:
        return _phrase(words), ""
    local = "".join(t.raw for t in words[:at])
    domain = "".join(t.raw for t in words[at + 1 :])
    return local, domain


_GROUP_END = Address(None, None, None, None)


def _parse_addresses(value: str) -> tuple[Address, ...]:
    tokens = _tokens(value[:MAX_ADDRESS_FIELD])
    out: list[Address] = []
    n = len(tokens)
    i = 0
    in_group = False
    while i < n and len(out) < MAX_ADDRESSES:
        token = tokens[i]
        if _is_special(token, ","):
            i += 1
            continue
        if _is_special(token, ";"):
            if in_group:
                out.append(_GROUP_END)
                in_group = False
            i += 1
            continue
        # One item runs to "," or ";", unless "<" (name-addr) or ":" (group) comes first.
        j = i
        while j < n and not _is_special(tokens[j], ",;<" if in_group else ",;<:"):
            j += 1
        if j < n and _is_special(tokens[j], ":"):
            # RFC 5322 §3.4 group; RFC 3501 §7.4.2: start marker carries the group name.
            out.append(Address(None, None, _phrase(tokens[i:j]), None))
            in_group = True
            i = j + 1
            continue
        if j < n and _is_special(tokens[j], "<"):
            name = _phrase(tokens[i:j]) or None
            close = j + 1
            while close < n and not _is_special(tokens[close], ">"):
                close += 1
            if close == n:  # no ">": the address ends at the next separator
                close = j + 1
                while close < n and not _is_special(tokens[close], ",;"):
                    close += 1
            inner = tokens[j + 1 : close]
            # RFC 5322 §4.4 obs-route "<@a,@b:user@host>": the route is the address's adl
            # (RFC 3501 §7.4.2 "at-domain-list (source route)").
            route = None
            if inner and _is_special(inner[0], "@"):
                colon = next((k for k, t in enumerate(inner) if _is_special(t, ":")), -1)
                route = "".join(t.raw for t in inner[:colon]) or None if colon > 0 else None
                inner = inner[colon + 1 :]
            mailbox, host = _addr_spec(inner)
            i = close + 1 if close < n and _is_special(tokens[close], ">") else close
            while i < n and not _is_special(tokens[i], ",;"):
                if name is None and tokens[i].kind == "comment" and tokens[i].text:
                    name = tokens[i].text
                i += 1
            out.append(Address(name, route, mailbox, host))
            continue
        item = tokens[i:j]
        mailbox, host = _addr_spec(item)
        if mailbox or host:
            # "user@host (Name)": the old RFC 822 way of giving a display name.
            comment = next((t.text for t in item if t.kind == "comment" and t.text), None)
            out.append(Address(comment, None, mailbox, host))
        i = j
    if in_group and len(out) < MAX_ADDRESSES:
        out.append(_GROUP_END)
    return tuple(out)


def _decoded_pairs(addresses: tuple[Address, ...] | None) -> tuple[tuple[str, str], ...]:
    """(decoded display name, address) for each mailbox, group markers left out."""
    pairs: list[tuple[str, str]] = []
    for address in addresses or ():
        if address.host is None:
            continue
        mailbox = address.mailbox or ""
        addr = f"{mailbox}@{address.host}" if address.host else mailbox
        if addr:
            pairs.append((decode_header_value(address.name) if address.name else "", addr))
    return tuple(pairs)


# --------------------------------------------------------------------------------------------
# Envelope


_ENVELOPE_FIELDS = frozenset(
    {
        "date",
        "subject",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "in-reply-to",
        "message-id",
        "references",
    }
)


def _envelope(fields: Mapping[str, str]) -> Envelope:
    def addresses(name: str) -> tuple[Address, ...] | None:
        value = fields.get(name)
        if value is None:
            return None
        parsed = _parse_addresses(value)
        return parsed or None

    from_ = addresses("from")
    # RFC 3501 §7.4.2: an absent or empty Sender or Reply-To is filled from From.
    sender = addresses("sender") or from_
    reply_to = addresses("reply-to") or from_
    return Envelope(
        date=fields.get("date"),
        subject=fields.get("subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=addresses("to"),
        cc=addresses("cc"),
        bcc=addresses("bcc"),
        in_reply_to=fields.get("in-reply-to"),
        message_id=fields.get("message-id"),
    )


_MSG_ID = re.compile(r"<[^<>]*>")


def _first_msg_id(value: str | None) -> str | None:
    """The first "<...>" of a msg-id field (RFC 5322 §3.6.4), white space removed."""
    if value is None:
        return None
    match = _MSG_ID.search(value)
    found = "".join((match.group() if match else value).split())
    return found or None


def _references(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    ids = ["".join(m.group().split()) for m in _MSG_ID.finditer(value)]
    if not ids:
        ids = value.split()
    return tuple(i for i in ids[:MAX_REFERENCES] if i not in ("", "<>"))


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if parsed.tzinfo is None:
        # RFC 5322 §3.3: "-0000" says the time is UTC and the local zone unknown.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --------------------------------------------------------------------------------------------
# MIME parameters (RFC 2045 §5.1, RFC 2231)


_PARAM_PIECE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^;"]+|;', re.DOTALL)
_EXTENDED_NAME = re.compile(r"([^*]+)\*(?:(\d{1,4})(\*)?)?")


def _parse_params(text: str) -> tuple[tuple[str, str], ...]:
    """Parameters after the value of a Content-Type or Content-Disposition field.

    Names are lowercased (RFC 2045 §5.1: they are case-insensitive); RFC 2231 continuations
    are joined and charset-tagged values decoded.
    """
    chunks: list[str] = []
    current: list[str] = []
    for match in _PARAM_PIECE.finditer(text):
        piece = match.group()
        if piece == ";":
            chunks.append("".join(current))
            current = []
        else:
            current.append(piece)
    chunks.append("".join(current))

    order: list[str] = []
    plain: dict[str, str] = {}
    # RFC 2231 §3 and §4: name*N (literal) and name*N* / name* (charset'language'%XX).
    segments: dict[str, dict[int, tuple[bool, str]]] = {}
    for chunk in chunks:
        name, sep, value = chunk.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        value = value.strip()
        if value.startswith('"'):
            end = _closing_quote(value)
            value = _QUOTED_PAIR.sub(r"\1", value[1:end])
        extended = _EXTENDED_NAME.fullmatch(name)
        if extended:
            base = extended.group(1)
            index = int(extended.group(2)) if extended.group(2) is not None else 0
            encoded = extended.group(2) is None or extended.group(3) is not None
            if base not in plain and base not in segments:
                order.append(base)
            segments.setdefault(base, {}).setdefault(index, (encoded, value))
        else:
            if name not in plain and name not in segments:
                order.append(name)
            plain.setdefault(name, value)

    params: list[tuple[str, str]] = []
    for base in order:
        if base in segments:
            params.append((base, _join_segments(segments[base])))
        else:
            params.append((base, plain[base]))
    return tuple(params)


def _closing_quote(value: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return i
        i += 1
    return len(value)


def _join_segments(segments: Mapping[int, tuple[bool, str]]) -> str:
    charset: str | None = None
    data = bytearray()
    for position, index in enumerate(sorted(segments)):
        encoded, value = segments[index]
        if encoded:
            if position == 0:
                # RFC 2231 §4: the first segment starts with charset'language'.
                parts = value.split("'", 2)
                if len(parts) == 3:
                    charset, value = parts[0] or None, parts[2]
            data += unquote_to_bytes(value)
        else:
            data += value.encode("utf-8")
    return _decode_bytes(bytes(data), charset)


# --------------------------------------------------------------------------------------------
# MIME structure


_PART_FIELDS = frozenset(
    {
        "content-type",
        "content-transfer-encoding",
        "content-id",
        "content-description",
        "content-md5",
        "content-disposition",
        "content-language",
        "content-location",
    }
)
_MESSAGE_FIELDS = _PART_FIELDS | _ENVELOPE_FIELDS
_MEDIA_TYPE = re.compile(r"\s*([^\s/;()\"]+)\s*/\s*([^\s;()\"]+)")
_TOKEN = re.compile(r"\s*([^\s;()\"]+)")
_DEFAULT_TEXT = ("text", "plain", (("charset", "us-ascii"),))


class _Budget:
    """Parts still allowed in this message."""

    __slots__ = ("parts",)

    def __init__(self, parts: int) -> None:
        self.parts = parts


def _content_type(
    fields: Mapping[str, str], default: tuple[str, str]
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    value = fields.get("content-type")
    if value is None:
        # RFC 2045 §5.2 default; RFC 2046 §5.1.5 makes it message/rfc822 inside a digest.
        if default == ("text", "plain"):
            return _DEFAULT_TEXT
        return default[0], default[1], ()
    match = _MEDIA_TYPE.match(value)
    if match is None:
        # RFC 2045 §5.2: a syntactically invalid Content-Type means text/plain; charset=us-ascii.
        return _DEFAULT_TEXT
    return match.group(1).lower(), match.group(2).lower(), _parse_params(value[match.end() :])


def _disposition(value: str | None) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    if value is None:
        return None
    match = _TOKEN.match(value)
    if match is None:
        return None
    return match.group(1).lower(), _parse_params(value[match.end() :].lstrip(" \t;"))


def _lookup(params: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _filename(
    params: tuple[tuple[str, str], ...],
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None,
) -> str | None:
    # RFC 2183 §2.3 filename, else the older Content-Type "name" (RFC 1341).
    value = _lookup(disposition[1], "filename") if disposition else None
    if value is None:
        value = _lookup(params, "name")
    if value is None:
        return None
    # Encoded-words in parameters break RFC 2047 §5, but common mailers write them.
    if "=?" in value:
        value = decode_header_value(value)
    # RFC 2183 §2.3: directory information in the name must not be honoured.
    value = re.split(r"[/\\]", value)[-1].strip()
    return value or None


def _count_lines(raw: bytes, start: int, end: int) -> int:
    """Text lines of ``raw[start:end]``; a last line without line break counts too."""
    if end <= start:
        return 0
    lines = raw.count(b"\n", start, end)
    return lines if raw[end - 1] == 0x0A else lines + 1


def _delimiters(
    raw: bytes, boundary: bytes, start: int, end: int, limit: int
) -> list[tuple[int, int, bool]]:
    """(line start, line end, is close-delimiter) for each boundary line in raw[start:end].

    RFC 2046 §5.1.1: a delimiter line is "--" boundary at the start of a line, then optional
    white space (transport padding); a close-delimiter has "--" after the boundary, and what
    follows it (the epilogue) is ignored. The RFC's note says matching the start of a line
    suffices, but a bare prefix match would split "--b" inside a nested multipart whose
    boundary is "b2" (seen in hand-made mail); so after the boundary only "--", white space or
    the line end may follow. Bare LF line ends are accepted as well as CRLF. At most ``limit``
    delimiters are returned.
    """
    dash = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    while len(found) < limit:
        i = raw.find(dash, pos, end)
        if i < 0:
            return found
        after = i + len(dash)
        closing = after + 2 <= end and raw.startswith(b"--", after)
        at_line_start = i == start or raw[i - 1] == 0x0A
        if at_line_start and (closing or after == end or raw[after] in b" \t\r\n"):
            line_end = raw.find(b"\n", after, end)
            line_end = end if line_end < 0 else line_end + 1
            found.append((i, line_end, closing))
            if closing:
                return found
            pos = line_end
        else:
            pos = i + 1
    return found


def _parse_entity(
    raw: bytes,
    start: int,
    end: int,
    *,
    label: str,
    message_root: bool,
    default_type: tuple[str, str],
    depth: int,
    budget: _Budget,
) -> tuple[BodyPart, dict[str, str]]:
    """Parse the entity (header + body) in raw[start:end].

    ``message_root`` says the entity is a whole message (top level or inside message/rfc822)
    and ``label`` its section prefix; otherwise ``label`` is the entity's own part number.
    """
    budget.parts -= 1
    # A body part whose first line is no header field has an empty header (RFC 2046 §5.1.1
    # lets a part have no header fields; some mailers also drop the blank line after them).
    header_less = not (
        message_root or start >= end or raw[start] in b"\r\n" or _FIELD_START.match(raw, start, end)
    )
    body_start = start if header_less else _header_end(raw, start, end)
    fields = _read_fields(raw, start, body_start, _MESSAGE_FIELDS if message_root else _PART_FIELDS)
    type_, subtype, params = _content_type(fields, default_type)
    encoding_match = _TOKEN.match(fields.get("content-transfer-encoding", ""))
    # RFC 2045 §6.1: "7BIT" is the default.
    encoding = encoding_match.group(1).upper() if encoding_match else "7BIT"
    disposition = _disposition(fields.get("content-disposition"))
    language_field = fields.get("content-language")
    language = (
        None
        if language_field is None
        else tuple(tag.strip() for tag in language_field.split(",") if tag.strip()) or None
    )

    boundary = _lookup(params, "boundary") if type_ == "multipart" else None
    if type_ == "multipart" and not boundary:
        # RFC 2046 §5.1.1 makes boundary mandatory; without it the Content-Type is invalid and
        # RFC 2045 §5.2 says to read the body as plain text.
        type_, subtype, params = _DEFAULT_TEXT
    too_deep = depth >= MAX_DEPTH or budget.parts <= 0
    if type_ == "multipart" and too_deep:
        # Opaque data, as RFC 2049 §2 (7) has a user agent treat what it cannot interpret.
        type_, subtype = "application", "octet-stream"

    multipart = type_ == "multipart"
    part = label
    if message_root and not multipart:
        part = f"{label}.1" if label else "1"

    children: tuple[BodyPart, ...] = ()
    envelope: Envelope | None = None
    if multipart and boundary:
        children = _parse_multipart(
            raw,
            boundary.encode("utf-8", "replace"),
            body_start,
            end,
            part=part,
            digest=subtype == "digest",
            depth=depth,
            budget=budget,
        )
    elif (
        type_ == "message"
        and subtype == "rfc822"
        and not too_deep
        # RFC 2046 §5.2.1: only 7bit, 8bit or binary are allowed; an encoded message cannot
        # be addressed by offsets and stays an opaque leaf.
        and encoding in ("7BIT", "8BIT", "BINARY")
    ):
        inner, inner_fields = _parse_entity(
            raw,
            body_start,
            end,
            label=part,
            message_root=True,
            default_type=("text", "plain"),
            depth=depth + 1,
            budget=budget,
        )
        children = (inner,)
        envelope = _envelope(inner_fields)

    lines = (
        _count_lines(raw, body_start, end)
        if type_ == "text" or (type_ == "message" and subtype == "rfc822")
        else None
    )
    node = BodyPart(
        part=part,
        type=type_,
        subtype=subtype,
        params=params,
        id=fields.get("content-id"),
        description=fields.get("content-description"),
        encoding=encoding,
        md5=fields.get("content-md5"),
        disposition=disposition,
        language=language,
        location=fields.get("content-location"),
        header_start=start,
        body_start=body_start,
        end=end,
        size=end - body_start,
        lines=lines,
        children=children,
        envelope=envelope,
        filename=None if multipart else _filename(params, disposition),
    )
    return node, fields


def _parse_multipart(
    raw: bytes,
    boundary: bytes,
    start: int,
    end: int,
    *,
    part: str,
    digest: bool,
    depth: int,
    budget: _Budget,
) -> tuple[BodyPart, ...]:
    # Parts beyond the budget are never parsed, so their delimiters need not be found either.
    delimiters = _delimiters(raw, boundary, start, end, max(budget.parts, 1) + 1)
    # RFC 2046 §5.1.1: each body part runs from after a delimiter line to the line break
    # before the next one (that CRLF belongs to the delimiter); the preamble before the first
    # delimiter and the epilogue after the close-delimiter belong to no part. A missing
    # close-delimiter ends the last part at the end of the enclosing body.
    spans: list[tuple[int, int]] = []
    for k, (_, line_end, closing) in enumerate(delimiters):
        if closing:
            break
        if k + 1 < len(delimiters):
            next_start = delimiters[k + 1][0]
            part_end = next_start - 1
            if part_end > line_end and raw[part_end - 1] == 0x0D:
                part_end -= 1
            spans.append((line_end, max(part_end, line_end)))
        else:
            spans.append((line_end, end))
    if not spans:
        # No body part at all: what comes before the close-delimiter (the whole body when there
        # is no delimiter) is read as one part, so that its text is not lost.
        spans.append((start, delimiters[0][0] if delimiters else end))
    default_type = ("message", "rfc822") if digest else ("text", "plain")
    children: list[BodyPart] = []
    for index, (part_start, part_end) in enumerate(spans, start=1):
        if children and budget.parts <= 0:
            break
        child, _ = _parse_entity(
            raw,
            part_start,
            part_end,
            label=f"{part}.{index}" if part else str(index),
            message_root=False,
            default_type=default_type,
            depth=depth + 1,
            budget=budget,
        )
        children.append(child)
    return tuple(children)


# --------------------------------------------------------------------------------------------
# Sections (RFC 3501 §6.4.5)


_SECTION = re.compile(
    r"((?:[1-9][0-9]*)(?:\.[1-9][0-9]*)*)?"
    r"(?:(?(1)\.)(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)(?:\s*\((.*)\))?)?",
    re.IGNORECASE | re.DOTALL,
)


def _numbered_child(container: BodyPart, number: int, *, message_root: bool) -> BodyPart | None:
    if container.type == "multipart" and container.children:
        return container.children[number - 1] if number <= len(container.children) else None
    # RFC 3501 §6.4.5: a message whose body is not multipart has only a part 1.
    if message_root and number == 1:
        return container
    return None


def find_part(body: BodyPart, part: str) -> BodyPart | None:
    """The node an RFC 3501 §6.4.5 part number ("1", "2.1.3") names, or None."""
    if part == "":
        return body
    try:
        numbers = [int(n) for n in part.split(".")]
    except ValueError:
        return None
    if any(n < 1 or str(n) != s for n, s in zip(numbers, part.split("."), strict=True)):
        return None
    node = _numbered_child(body, numbers[0], message_root=True)
    for number in numbers[1:]:
        if node is None:
            return None
        if node.type == "multipart":
            node = _numbered_child(node, number, message_root=False)
        elif node.envelope is not None and node.children:
            # A message/rfc822 part numbers the parts of the message it encapsulates.
            node = _numbered_child(node.children[0], number, message_root=True)
        else:
            return None
    return node


def part_bytes(raw: bytes, body: BodyPart, section: str) -> bytes | None:
    """The exact octets of BODY[section] (RFC 3501 §6.4.5), or None if there is no such part.

    ``section`` is what goes between the brackets: "", "1.2", "1.2.MIME", "HEADER", "TEXT",
    "2.HEADER", "2.TEXT", "HEADER.FIELDS (From To)", "2.HEADER.FIELDS.NOT (Received)".
    """
    match = _SECTION.fullmatch(section.strip())
    if match is None:
        return None
    numbers, keyword, field_list = match.group(1), match.group(2), match.group(3)
    keyword = keyword.upper() if keyword else None
    if (field_list is not None) != (keyword in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")):
        return None
    if numbers is None:
        if keyword is None:
            return raw
        if keyword == "MIME":
            return None
        root: BodyPart = body
    else:
        node = find_part(body, numbers)
        if node is None:
            return None
        if keyword is None:
            return raw[node.body_start : node.end]
        if keyword == "MIME":
            return raw[node.header_start : node.body_start]
        # RFC 3501 §6.4.5: HEADER and TEXT after a number need a MESSAGE/RFC822 part.
        if node.envelope is None or not node.children:
            return None
        root = node.children[0]
    header = raw[root.header_start : root.body_start]
    if keyword == "HEADER":
        return header
    if keyword == "TEXT":
        return raw[root.body_start : root.end]
    names = [name.strip('"') for name in (field_list or "").split()]
    return header_fields(header, names, exclude=keyword == "HEADER.FIELDS.NOT")


# --------------------------------------------------------------------------------------------
# Searchable text


# HTML is reduced to text with linear regular expressions, not html.parser: on Python 3.11
# html.parser is quadratic on unclosed tags (64 KiB of "<a " takes most of a minute), and a
# stranger chooses this input. Search text needs the words, not a faithful DOM.
_NON_TEXT_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)"  # comment
    r"|<(script|style)\b.*?(?:</\1\s*>|\Z)"  # element whose content is not text
    r"|<[!?][^>]*>?",  # doctype, processing instruction, CDATA
    re.DOTALL | re.IGNORECASE,
)
# Elements that break a line when rendered; other tags (b, span, a...) may sit inside a word.
_BLOCK_TAG = re.compile(
    # The look-ahead fails fast on a "<" that starts no such tag, before the alternation.
    r"<(?=/?[AaBbDdHhLlOoPpSsTtUu])/?(?:address|blockquote|br|dd|div|dl|dt|h[1-6]|hr|li|ol|p|pre"
    r"|section|table|td|th|title|tr|ul)\b[^>]*>?",
    re.IGNORECASE,
)
_TAG = re.compile(r"</?[A-Za-z][^>]*>?")
_SPACES = re.compile(r"[ \t\f\v\xa0]+")
_LINE_BREAKS = re.compile(r" ?\n\s*")


def _html_to_text(markup: str) -> str:
    # Constant replacements keep every pass inside the regular-expression engine.
    text = _TAG.sub("", _BLOCK_TAG.sub("\n", _NON_TEXT_MARKUP.sub(" ", markup)))
    return _LINE_BREAKS.sub("\n", _SPACES.sub(" ", html.unescape(text)))


class _TextSink:
    """Collects body text up to MAX_SEARCH_TEXT characters."""

    __slots__ = ("chunks", "html_budget", "remaining")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.remaining = MAX_SEARCH_TEXT
        self.html_budget = MAX_HTML_INPUT

    def add(self, text: str) -> None:
        if self.remaining <= 0 or not text:
            return
        text = text[: self.remaining]
        self.chunks.append(text)
        self.remaining -= len(text)


def _leaf_text(raw: bytes, node: BodyPart, sink: _TextSink) -> str:
    data = raw[node.body_start : min(node.end, node.body_start + MAX_TEXT_PART_INPUT)]
    decoded = _decode_bytes(_transfer_decode(data, node.encoding), node.param("charset"))
    decoded = decoded.replace("\r\n", "\n").replace("\r", "\n")
    if node.subtype == "html":
        markup = decoded[: sink.html_budget]
        sink.html_budget -= len(markup)
        return _html_to_text(markup)
    return decoded


def _collect_text(raw: bytes, node: BodyPart, sink: _TextSink) -> None:
    if sink.remaining <= 0:
        return
    if node.type == "multipart":
        children = node.children
        if node.subtype == "alternative":
            # RFC 2046 §5.1.4: alternatives carry the same content; index one of them, the
            # plain text if offered (cheapest to decode), else the last (the richest).
            plain = [c for c in children if c.type == "text" and c.subtype == "plain"]
            children = (plain[0],) if plain else children[-1:]
        for child in children:
            _collect_text(raw, child, sink)
    elif node.envelope is not None:
        # IMAP SEARCH BODY/TEXT (RFC 3501 §6.4.4) covers an attached message, headers too.
        sink.add("\n".join(_header_lines(node.envelope)))
        for child in node.children:
            _collect_text(raw, child, sink)
    elif node.type == "text" and node.subtype in ("plain", "html"):
        sink.add(_leaf_text(raw, node, sink).strip())


def search_body_start(parsed: ParsedMessage) -> int:
    """Where the body text begins in ``parsed.text``, after the header lines it starts with
    (IMAP SEARCH BODY looks only from there)."""
    lines = "\n".join(_header_lines(parsed.envelope))
    return len(lines) + 2 if lines else 0


def _header_lines(envelope: Envelope) -> list[str]:
    lines: list[str] = []
    for field in (envelope.from_, envelope.to, envelope.cc):
        names = [f"{name} <{addr}>" if name else addr for name, addr in _decoded_pairs(field)]
        if names:
            lines.append(", ".join(names))
    if envelope.subject:
        lines.append(decode_header_value(envelope.subject))
    return lines


def _preview(chunks: Iterable[str]) -> str:
    words: list[str] = []
    length = 0
    for chunk in chunks:
        for word in chunk.split():
            words.append(word)
            length += len(word) + 1
            if length > PREVIEW_LENGTH:
                return " ".join(words)[:PREVIEW_LENGTH].rstrip()
    return " ".join(words)


# --------------------------------------------------------------------------------------------
# Attachments


def _is_attachment(node: BodyPart) -> bool:
    if node.type == "multipart":
        return False
    if node.disposition is not None and node.disposition[0] == "attachment":
        return True
    return node.type != "text" and node.filename is not None


def _decoded_size(raw: bytes, node: BodyPart) -> int:
    if node.encoding == "BASE64":
        return _b64_decoded_size(raw[node.body_start : node.end])
    if node.encoding == "QUOTED-PRINTABLE":
        return len(binascii.a2b_qp(raw[node.body_start : node.end]))
    return node.size


def _attachments(raw: bytes, node: BodyPart, out: list[Attachment]) -> None:
    if _is_attachment(node):
        out.append(
            Attachment(node.part, node.filename, node.content_type, _decoded_size(raw, node))
        )
        return
    for child in node.children:
        _attachments(raw, child, out)


# --------------------------------------------------------------------------------------------
# Entry point


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a message as it will be stored; never raises, whatever the bytes."""
    try:
        return _parse(raw)
    except Exception:  # a parser bug must not lose or bounce mail; store a minimal structure
        log.exception("message.parse.failed", extra={"size": len(raw)})
        return _fallback(raw)


def _parse(raw: bytes) -> ParsedMessage:
    body, fields = _parse_entity(
        raw,
        0,
        len(raw),
        label="",
        message_root=True,
        default_type=("text", "plain"),
        depth=0,
        budget=_Budget(MAX_PARTS),
    )
    envelope = _envelope(fields)
    subject = decode_header_value(envelope.subject) if envelope.subject is not None else None

    sink = _TextSink()
    _collect_text(raw, body, sink)
    body_chunks = sink.chunks
    header_text = "\n".join(_header_lines(envelope))
    text = "\n\n".join(t for t in (header_text, "\n".join(body_chunks)) if t)[:MAX_SEARCH_TEXT]

    attachments: list[Attachment] = []
    _attachments(raw, body, attachments)
    return ParsedMessage(
        size=len(raw),
        header_size=body.body_start,
        envelope=envelope,
        body=body,
        subject=subject,
        from_=_decoded_pairs(envelope.from_),
        to=_decoded_pairs(envelope.to),
        cc=_decoded_pairs(envelope.cc),
        message_id=_first_msg_id(envelope.message_id),
        in_reply_to=_first_msg_id(envelope.in_reply_to),
        references=_references(fields.get("references")),
        date=_date(envelope.date),
        has_attachments=bool(attachments),
        attachments=tuple(attachments),
        text=text,
        preview=_preview(body_chunks),
    )


def _fallback(raw: bytes) -> ParsedMessage:
    header_size = _header_end(raw, 0, len(raw))
    text_type, text_subtype, params = _DEFAULT_TEXT
    body = BodyPart(
        part="1",
        type=text_type,
        subtype=text_subtype,
        params=params,
        id=None,
        description=None,
        encoding="7BIT",
        md5=None,
        disposition=None,
        language=None,
        location=None,
        header_start=0,
        body_start=header_size,
        end=len(raw),
        size=len(raw) - header_size,
        lines=_count_lines(raw, header_size, len(raw)),
        children=(),
        envelope=None,
        filename=None,
    )
    envelope = Envelope(None, None, None, None, None, None, None, None, None, None)
    return ParsedMessage(
        size=len(raw),
        header_size=header_size,
        envelope=envelope,
        body=body,
        subject=None,
        from_=(),
        to=(),
        cc=(),
        message_id=None,
        in_reply_to=None,
        references=(),
        date=None,
        has_attachments=False,
        attachments=(),
        text="",
        preview="",
    )
