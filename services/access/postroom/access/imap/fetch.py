"""FETCH data items (RFC 3501 §6.4.5, §7.4.2): ENVELOPE, BODYSTRUCTURE and body sections.

Rendering works from what the store keeps of each message (flags, the parsed structure
with byte offsets) and names the octets of body sections as slices of the stored blob, so
the caller streams large sections instead of building whole responses in memory. Reading a
header for HEADER.FIELDS goes through an injected reader; nothing here does I/O itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from postroom.access.imap import binary, wire
from postroom.access.imap.parser import (
    FetchAttribute,
    FetchBinary,
    FetchBody,
    FetchItem,
    Partial,
    Section,
)
from postroom.imap_encoding import body_bytes, envelope_bytes
from postroom.message import BodyPart, find_part, header_fields
from postroom.store.messages import Summary
from postroom.store.types import SYSTEM_FLAGS, BlobId, Message, MessageContent

# Items that need the parsed structure or the message's octets, not only its flags.
_STRUCTURE_ITEMS = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE"})
_CONTENT_ITEMS = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})
# RFC 3501 §6.4.5: these set \Seen (BODY.PEEK and RFC822.HEADER do not).
_SEEN_ITEMS = frozenset({"RFC822", "RFC822.TEXT"})

ReadRange = Callable[[BlobId, int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class BlobSlice:
    """Octets ``start..end`` of a stored blob, to be read and written by the caller."""

    blob_id: BlobId
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


Piece = bytes | BlobSlice


def needs_content(items: Sequence[FetchAttribute]) -> bool:
    """Whether the items need the parsed structure (``fetch_content``) and not just flags."""
    for item in items:
        if isinstance(item, FetchBody | FetchBinary):
            return True
        if item.name in _STRUCTURE_ITEMS or item.name in _CONTENT_ITEMS:
            return True
    return False


def needs_parsed(items: Sequence[FetchAttribute]) -> bool:
    """Whether the items need the whole parsed structure, not only the ENVELOPE and
    BODYSTRUCTURE the store keeps ready (`MessageContent.imap_envelope`)."""
    for item in items:
        if isinstance(item, FetchBody | FetchBinary):
            return True
        if item.name == "BODY" or item.name in _CONTENT_ITEMS:
            return True
    return False


# Items a message list asks for, answered from one row a message (`store.list_summaries`).
_SUMMARY_ITEMS = frozenset(
    {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE", "BODYSTRUCTURE"}
)


def summary_only(items: Sequence[FetchAttribute]) -> bool:
    """FETCH of items a message list asks for only (``UID RFC822.SIZE INTERNALDATE ENVELOPE``
    and the like): answered by `summary_line` from `store.list_summaries`."""
    return all(isinstance(item, FetchItem) and item.name in _SUMMARY_ITEMS for item in items)


def summary_line(names: Sequence[str]) -> Callable[[int, Summary, bytes], bytes]:
    """``* seq FETCH (...)`` of the items ``names``, in that order, from a `Summary` row and
    the message's formatted flag list: the same octets as `render`, without its per-message
    objects."""
    formats = {
        "UID": b"UID %d",
        "FLAGS": b"FLAGS %s",
        "INTERNALDATE": b'INTERNALDATE "%s"',
        "RFC822.SIZE": b"RFC822.SIZE %d",
        "MODSEQ": b"MODSEQ (%d)",  # RFC 7162 §3.1.4.2
        "ENVELOPE": b"ENVELOPE %s",
        "BODYSTRUCTURE": b"BODYSTRUCTURE %s",
    }
    template = b"* %d FETCH (" + b" ".join(formats[name] for name in names) + b")\r\n"
    kinds = tuple(names)

    def line(seq: int, row: Summary, flags: bytes) -> bytes:
        uid, size, date, _, modseq, envelope, structure, parsed = row
        args: list[object] = [seq]
        for kind in kinds:
            if kind == "UID":
                args.append(uid)
            elif kind == "FLAGS":
                args.append(flags)
            elif kind == "INTERNALDATE":
                args.append(date)
            elif kind == "RFC822.SIZE":
                args.append(size)
            elif kind == "MODSEQ":
                args.append(modseq)
            elif kind == "ENVELOPE":
                if envelope is None:
                    assert parsed is not None
                    envelope = envelope_bytes(parsed["envelope"])
                args.append(envelope)
            else:
                if structure is None:
                    assert parsed is not None
                    structure = body_bytes(parsed["body"], extensible=True)
                args.append(structure)
        return template % tuple(args)

    return line


def flags_only(items: Sequence[FetchAttribute]) -> bool:
    """FETCH of FLAGS (and UID) only: answered from flags alone."""
    names = [item.name for item in items if isinstance(item, FetchItem)]
    return len(names) == len(items) and "FLAGS" in names and set(names) <= {"FLAGS", "UID"}


def sets_seen(items: Sequence[FetchAttribute]) -> bool:
    """RFC 3501 §6.4.5: BODY[section] (not .PEEK), RFC822 and RFC822.TEXT set \\Seen."""
    for item in items:
        if isinstance(item, FetchBody) and not item.peek:
            return True
        if isinstance(item, FetchBinary) and not (item.peek or item.size_only):
            return True  # RFC 3516 §4.2: BINARY sets \\Seen as BODY does
        if isinstance(item, FetchItem) and item.name in _SEEN_ITEMS:
            return True
    return False


def flag_list(flags: Iterable[str], *, recent: bool = False) -> bytes:
    """Flags in a stable order: system flags first, then keywords; \\Recent per session."""
    system = [name for name in SYSTEM_FLAGS if name in flags]
    keywords = sorted(flag for flag in flags if not flag.startswith("\\"))
    if recent:
        system.append("\\Recent")
    return wire.format_flags([*system, *keywords])


# --- ENVELOPE and BODYSTRUCTURE ----------------------------------------------------------


def _addresses(value: Sequence[Sequence[str | None]] | None) -> wire.WireValue:
    # address-list = "(" 1*address ")" / nil: addresses side by side, no SP between them.
    if not value:
        return None
    return [wire.Run([[a[0], a[1], a[2], a[3]] for a in value])]


def envelope_value(envelope: Mapping[str, Any]) -> wire.WireValue:
    """RFC 3501 §7.4.2 ENVELOPE from the stored `postroom.message.Envelope` JSON."""
    return [
        envelope["date"],
        envelope["subject"],
        _addresses(envelope["from"]),
        _addresses(envelope["sender"]),
        _addresses(envelope["reply_to"]),
        _addresses(envelope["to"]),
        _addresses(envelope["cc"]),
        _addresses(envelope["bcc"]),
        envelope["in_reply_to"],
        envelope["message_id"],
    ]


def _params(pairs: Sequence[Sequence[str]]) -> wire.WireValue:
    # body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    if not pairs:
        return None
    return [text for key, value in pairs for text in (key.upper(), value)]


def _disposition(value: Sequence[Any] | None) -> wire.WireValue:
    if value is None:
        return None
    return [str(value[0]).upper(), _params(value[1])]


def body_value(node: Mapping[str, Any], *, extensible: bool) -> wire.WireValue:
    """BODY (``extensible`` False) or BODYSTRUCTURE (True) of one MIME node, recursively."""
    kind, subtype = node["type"].upper(), node["subtype"].upper()
    language = None if node["language"] is None else list(node["language"])
    if kind == "MULTIPART" and node["children"]:
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        children = [body_value(child, extensible=extensible) for child in node["children"]]
        out: list[wire.WireValue] = [wire.Run(children), subtype]
        if extensible:
            out += [
                _params(node["params"]),
                _disposition(node["disposition"]),
                language,
                node["location"],
            ]
        return out
    fields: list[wire.WireValue] = [
        kind,
        subtype,
        _params(node["params"]),
        node["id"],
        node["description"],
        node["encoding"].upper(),
        node["size"],
    ]
    if kind == "MESSAGE" and subtype == "RFC822" and node["envelope"] and node["children"]:
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        fields += [
            envelope_value(node["envelope"]),
            body_value(node["children"][0], extensible=extensible),
            node["lines"] or 0,
        ]
    elif kind == "TEXT":
        fields.append(node["lines"] or 0)
    if extensible:
        # body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
        fields += [node["md5"], _disposition(node["disposition"]), language, node["location"]]
    return fields


# --- body sections -----------------------------------------------------------------------


def _delivered(content: MessageContent, start: int, end: int) -> list[Piece]:
    """Octets ``start..end`` of the message as delivered: the trace prefix, then the blob."""
    prefix = content.header_prefix
    pieces: list[Piece] = []
    if start < len(prefix):
        pieces.append(prefix[start : min(end, len(prefix))])
    blob_start, blob_end = max(start - len(prefix), 0), min(end - len(prefix), content.blob_size)
    if blob_end > blob_start:
        pieces.append(BlobSlice(content.message.blob_id, blob_start, blob_end))
    return pieces


def _size(pieces: Sequence[Piece]) -> int:
    return sum(len(p) if isinstance(p, bytes) else p.size for p in pieces)


def _slice(pieces: Sequence[Piece], partial: Partial) -> list[Piece]:
    """The partial ``<offset.count>`` of a section made of pieces."""
    out: list[Piece] = []
    begin, stop = partial.offset, partial.offset + partial.count
    position = 0
    for piece in pieces:
        size = len(piece) if isinstance(piece, bytes) else piece.size
        low, high = max(begin - position, 0), min(stop - position, size)
        if high > low:
            if isinstance(piece, bytes):
                out.append(piece[low:high])
            else:
                out.append(BlobSlice(piece.blob_id, piece.start + low, piece.start + high))
        position += size
    return out


async def read_pieces(pieces: Sequence[Piece], read: ReadRange) -> bytes:
    chunks = []
    for piece in pieces:
        if isinstance(piece, bytes):
            chunks.append(piece)
        else:
            chunks.append(await read(piece.blob_id, piece.start, piece.size))
    return b"".join(chunks)


async def section_pieces(
    content: MessageContent, section: Section, read: ReadRange
) -> list[Piece] | None:
    """The octets of BODY[section] (RFC 3501 §6.4.5), or None when there is no such part.

    Offsets in the stored structure index the blob; the delivered message is the trace
    prefix followed by the blob, so only the top-level header and the whole message shift.
    """
    prefix = len(content.header_prefix)
    total = prefix + content.blob_size
    header_end = prefix + content.header_size
    if not section.part:
        if section.text is None:
            return _delivered(content, 0, total)
        if section.text == "TEXT":
            return _delivered(content, header_end, total)
        header = _delivered(content, 0, header_end)
    else:
        body = BodyPart.from_json(content.parsed["body"])
        node = find_part(body, ".".join(str(n) for n in section.part))
        if node is None:
            return None
        if section.text is None:
            return _delivered(content, prefix + node.body_start, prefix + node.end)
        if section.text == "MIME":
            return _delivered(content, prefix + node.header_start, prefix + node.body_start)
        # HEADER and TEXT after a part number need a MESSAGE/RFC822 part.
        if node.envelope is None or not node.children:
            return None
        root = node.children[0]
        if section.text == "TEXT":
            return _delivered(content, prefix + root.body_start, prefix + root.end)
        header = _delivered(content, prefix + root.header_start, prefix + root.body_start)
    if section.text == "HEADER":
        return header
    raw = await read_pieces(header, read)
    return [header_fields(raw, section.fields, exclude=section.text == "HEADER.FIELDS.NOT")]


def _literal(pieces: Sequence[Piece]) -> list[Piece]:
    size = _size(pieces)
    if size == 0:
        return [b'""']
    return [wire.literal_prefix(size), *pieces]


async def render(
    seq: int,
    message: Message,
    content: MessageContent | None,
    items: Sequence[FetchAttribute],
    read: ReadRange,
    *,
    with_uid: bool,
    recent: bool,
    with_flags: bool,
) -> list[Piece]:
    """``* seq FETCH (...)`` for one message, as pieces (bytes and blob slices).

    ``with_uid`` adds UID (RFC 3501 §6.4.8: always in UID FETCH responses); ``with_flags``
    adds FLAGS when fetching set \\Seen (§6.4.5: the change is announced in the response).
    """
    out: list[Piece] = [b"* %d FETCH (" % seq]
    first = True
    names = {item.name for item in items if isinstance(item, FetchItem)}

    def sep() -> None:
        nonlocal first
        if not first:
            out.append(b" ")
        first = False

    if with_uid and "UID" not in names:
        sep()
        out.append(b"UID %d" % message.uid)
    if with_flags and "FLAGS" not in names:
        sep()
        out.append(b"FLAGS " + flag_list(message.flags, recent=recent))
    for item in items:
        sep()
        if isinstance(item, FetchItem):
            out.extend(await _render_item(item.name, message, content, read, recent))
            continue
        assert content is not None
        if isinstance(item, FetchBinary):
            out.append(await binary.render(content, item, read))
            continue
        pieces = await section_pieces(content, item.section, read)
        label = item.label().encode("ascii")
        if pieces is None:
            out.append(label + b" NIL")
            continue
        if item.partial is not None:
            pieces = _slice(pieces, item.partial)
        out.append(label + b" ")
        out.extend(_literal(pieces))
    out.append(b")\r\n")
    return out


async def _render_item(
    name: str, message: Message, content: MessageContent | None, read: ReadRange, recent: bool
) -> list[Piece]:
    if name == "UID":
        return [b"UID %d" % message.uid]
    if name == "FLAGS":
        return [b"FLAGS " + flag_list(message.flags, recent=recent)]
    if name == "INTERNALDATE":
        return [b"INTERNALDATE " + wire.quote(wire.format_internal_date(message.internal_date))]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % message.size]
    if name == "MODSEQ":
        return [b"MODSEQ (%d)" % message.modseq]  # RFC 7162 §3.1.4.2
    assert content is not None
    if name == "ENVELOPE":
        if content.imap_envelope is not None:
            return [b"ENVELOPE " + content.imap_envelope]
        return [b"ENVELOPE " + envelope_bytes(content.parsed["envelope"])]
    if name == "BODYSTRUCTURE" and content.imap_bodystructure is not None:
        return [b"BODYSTRUCTURE " + content.imap_bodystructure]
    if name in ("BODY", "BODYSTRUCTURE"):
        structure = body_bytes(content.parsed["body"], extensible=name == "BODYSTRUCTURE")
        return [name.encode("ascii") + b" " + structure]
    # RFC822 is BODY[], RFC822.HEADER BODY.PEEK[HEADER], RFC822.TEXT BODY[TEXT].
    section = {"RFC822": Section(), "RFC822.HEADER": Section(text="HEADER")}.get(
        name, Section(text="TEXT")
    )
    pieces = await section_pieces(content, section, read)
    return [name.encode("ascii") + b" ", *_literal(pieces or [])]
