"""BINARY (RFC 3516): body parts with their Content-Transfer-Encoding undone, and APPEND of
messages with binary parts.

FETCH BINARY[part] decodes the part's stored octets (base64, quoted-printable; 7bit, 8bit
and binary are as stored) and answers them as a literal, or as a literal8 (``~{n}``) when
they are not text a literal should carry: a NUL, or a CR or LF outside a CRLF pair. A part
in an encoding this server does not know is ``NO [UNKNOWN-CTE]`` (§4.3). The part is read
and decoded whole: at most one message's size in memory, as APPEND already allows.

A message appended with a literal8 (§4.4) may have parts in ``Content-Transfer-Encoding:
binary`` or with NULs; such leaf parts are re-encoded as base64 before the message is
stored (`to_seven_bit`), so that BODY[] always answers a valid literal and BINARY gives the
octets back.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable

from postroom.access.imap import wire
from postroom.access.imap.parser import FetchBinary
from postroom.message import BodyPart, find_part, parse_message, transfer_decode
from postroom.store.types import BlobId, MessageContent

ReadRange = Callable[[BlobId, int, int], Awaitable[bytes]]

# RFC 2045 §6.1: the encodings whose octets are the content.
_IDENTITY = frozenset({"7BIT", "8BIT", "BINARY", ""})
# A CR not before LF, or an LF not after CR.
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_CTE_FIELD = re.compile(rb"^Content-Transfer-Encoding[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n", re.I | re.M)


class UnknownCte(Exception):
    """RFC 3516 §4.3: the part's Content-Transfer-Encoding cannot be decoded here."""


def _quoted_printable(data: bytes) -> bytes:
    """RFC 2045 §6.7: trailing white space is dropped, a line ending in "=" is joined to the
    next (a soft line break), and every other line break is CRLF."""
    lines = data.split(b"\n")
    out = []
    for index, line in enumerate(lines):
        line = line.removesuffix(b"\r").rstrip(b" \t")
        if line.endswith(b"="):
            out.append(line[:-1])
        else:
            out.append(line if index == len(lines) - 1 else line + b"\r\n")
    return binascii.a2b_qp(b"".join(out))


def decode(data: bytes, encoding: str) -> bytes:
    name = encoding.upper()
    if name == "QUOTED-PRINTABLE":
        return _quoted_printable(data)
    if name == "BASE64":
        return transfer_decode(data, name)
    if name in _IDENTITY:
        return data
    raise UnknownCte(encoding)


def is_binary(data: bytes) -> bool:
    """Whether octets need a literal8 (RFC 3516 §4.2) rather than a literal."""
    return b"\x00" in data or _BARE_LINE_END.search(data) is not None


def _literal(data: bytes, *, binary: bool) -> bytes:
    if not data:
        return b'""'
    return (b"~" if binary else b"") + wire.literal_prefix(len(data)) + data


async def render(content: MessageContent, item: FetchBinary, read: ReadRange) -> bytes:
    """``BINARY[part]<partial> ~{n}...``, ``BINARY.SIZE[part] n``, or ``BINARY[part] NIL``
    for a part the message does not have."""
    label = item.label().encode("ascii")
    blob = content.message.blob_id
    if not item.part:
        # BINARY[]: the whole message as delivered, nothing to decode.
        data = content.header_prefix + await read(blob, 0, content.blob_size)
    else:
        node = find_part(BodyPart.from_json(content.parsed["body"]), ".".join(map(str, item.part)))
        if node is None:
            return label + (b" 0" if item.size_only else b" NIL")
        data = await read(blob, node.body_start, node.end - node.body_start)
        if not node.children:
            data = decode(data, node.encoding)
    if item.size_only:
        return label + b" %d" % len(data)
    binary = is_binary(data)
    if item.partial is not None:
        data = data[item.partial.offset : item.partial.offset + item.partial.count]
    return label + b" " + _literal(data, binary=binary)


def to_seven_bit(raw: bytes) -> bytes:
    """The message with every leaf part in ``binary`` encoding, or holding a NUL, re-encoded
    as base64 (RFC 3516 §4.4: what a literal8 APPEND may carry, made storable as text)."""
    if b"\x00" not in raw and b"binary" not in raw.lower():
        return raw
    edits: list[tuple[int, int, bytes]] = []

    def visit(node: BodyPart) -> None:
        if node.children:
            for child in node.children:
                visit(child)
            return
        body = raw[node.body_start : node.end]
        if node.encoding.upper() != "BINARY" and b"\x00" not in body:
            return
        header = raw[node.header_start : node.body_start]
        blank = b""
        if header.endswith(b"\r\n\r\n") or header == b"\r\n":
            blank = b"\r\n"
        elif header.endswith(b"\n\n") or header == b"\n":
            blank = b"\n"
        fields = _CTE_FIELD.sub(b"", header[: len(header) - len(blank)])
        if fields and not fields.endswith(b"\n"):
            fields += b"\r\n"
        encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
        new_header = fields + b"Content-Transfer-Encoding: base64\r\n" + (blank or b"\r\n")
        edits.append((node.header_start, node.end, new_header + encoded))

    visit(parse_message(raw).body)
    out = raw
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    return out
