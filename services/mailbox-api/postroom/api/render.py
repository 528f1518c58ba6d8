"""Reading a stored message for people: its text and HTML bodies, sanitized, and its parts."""

from __future__ import annotations

import base64
import email.policy
import io
import re
import zipfile
from collections.abc import Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass
from email import message_from_bytes
from typing import Any
from urllib.parse import quote, unquote

import nh3

from postroom import store
from postroom.db import Conn
from postroom.errors import NotFound
from postroom.message import BodyPart, decode_header_value
from postroom.store.types import MessageContent

# A body larger than this is shown cut short (the raw message has all of it).
MAX_DISPLAY_PART = 4 * 1024 * 1024
# An image the sender hosts tells them when (and where) the message was read: not loaded
# until the reader asks. This stands in for it.
BLOCKED_IMAGE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='16' height='16'%3E"
    "%3Crect width='16' height='16' fill='%23ddd'/%3E%3C/svg%3E"
)
_STYLE_PROPERTIES = frozenset(
    {
        "background-color", "border", "border-bottom", "border-collapse", "border-color",
        "border-left", "border-radius", "border-right", "border-spacing", "border-style",
        "border-top", "border-width", "color", "direction", "display", "font", "font-family",
        "font-size", "font-style", "font-variant", "font-weight", "height", "letter-spacing",
        "line-height", "list-style-type", "margin", "margin-bottom", "margin-left",
        "margin-right", "margin-top", "max-width", "min-width", "padding", "padding-bottom",
        "padding-left", "padding-right", "padding-top", "table-layout", "text-align",
        "text-decoration", "text-indent", "text-transform", "vertical-align", "white-space",
        "width", "word-break",
    }
)  # fmt: skip
_ATTRIBUTES: dict[str, set[str]] = deepcopy(nh3.ALLOWED_ATTRIBUTES)
for _tag in (
    "div",
    "span",
    "p",
    "td",
    "th",
    "table",
    "tr",
    "font",
    "img",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "blockquote",
    "center",
    "pre",
    "tbody",
):
    _ATTRIBUTES.setdefault(_tag, set()).add("style")
_ATTRIBUTES.setdefault("font", set()).update({"color", "face", "size"})
_ATTRIBUTES.setdefault("table", set()).update({"width", "cellpadding", "cellspacing", "border"})
_ATTRIBUTES.setdefault("td", set()).update({"width", "valign", "bgcolor"})
_ATTRIBUTES["a"].add("title")
_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SanitizedHtml:
    html: str
    remote_images: bool


def sanitize_html(
    markup: str, *, allow_remote_images: bool, inline_images: Mapping[str, str] | None = None
) -> SanitizedHtml:
    """Remove everything active from an HTML body (scripts, handlers, javascript: links, forms,
    frames, remote content unless allowed); what remains can only be looked at. ``cid:``
    images (RFC 2392) become the data: URIs of ``inline_images`` (by Content-ID), others are
    blocked."""
    found_remote = False

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        nonlocal found_remote
        if value.lower().startswith("cid:"):
            if tag == "img" and attr == "src":
                return (inline_images or {}).get(content_id(value[4:]), BLOCKED_IMAGE)
            return None
        if tag == "img" and attr == "src":
            if value.lower().startswith(("http:", "https:", "//")):
                found_remote = True
                return value if allow_remote_images else BLOCKED_IMAGE
            if value.lower().startswith("data:image/"):
                return value
            return BLOCKED_IMAGE
        return value

    cleaned = nh3.clean(
        markup,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template"},
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes={"http", "https", "mailto", "data", "cid"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=set(_STYLE_PROPERTIES),
        strip_comments=True,
    )
    return SanitizedHtml(cleaned, found_remote)


# Images shown in place of cid: references: raster types a browser decodes without running
# anything (never SVG), and at most this much decoded data per message.
INLINE_IMAGE_TYPES = frozenset({"png", "gif", "jpeg", "webp"})
MAX_INLINE_IMAGES = 4 * 1024 * 1024
_CID_REF = re.compile(r"""["'\s=]cid:([^"'\s>]{1,998})""", re.IGNORECASE)


def content_id(text: str) -> str:
    """A Content-ID as a cid: URL names it (RFC 2392: URL-encoded, without angle brackets)."""
    return unquote(text).strip().removeprefix("<").removesuffix(">")


def cid_references(markup: str) -> set[str]:
    """The Content-IDs an HTML body refers to with cid: URLs."""
    return {content_id(m[1]) for m in _CID_REF.finditer(markup)}


def _leaves(node: BodyPart) -> Iterator[BodyPart]:
    if node.type == "multipart":
        for child in node.children:
            yield from _leaves(child)
    else:
        yield node


async def inline_images(conn: Conn, content: MessageContent, wanted: set[str]) -> dict[str, str]:
    """data: URIs of the message's image parts whose Content-ID is ``wanted``."""
    found: dict[str, str] = {}
    total = 0
    for node in _leaves(root_part(content)):
        if not node.id or node.type != "image" or node.subtype not in INLINE_IMAGE_TYPES:
            continue
        key = content_id(node.id)
        if key not in wanted or key in found:
            continue
        data = await decoded_part(conn, content, node)
        total += len(data)
        if total > MAX_INLINE_IMAGES:
            break
        found[key] = f"data:image/{node.subtype};base64,{base64.b64encode(data).decode()}"
    return found


def body_csp(*, allow_remote_images: bool) -> str:
    """The policy of a served message body: nothing may run, load or submit."""
    images = "data: http: https:" if allow_remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    )


def html_document(body: str, *, allow_remote_images: bool) -> str:
    """A whole document around a sanitized body. It carries its policy in a meta element too,
    because the web page shows it through ``srcdoc`` (a sandboxed frame of no origin, which
    the SameSite session cookie would not reach), where only a meta policy applies."""
    images = "data: http: https:" if allow_remote_images else "data:"
    policy = f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; form-action 'none'"
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<base target="_blank"></head><body>' + body + "</body></html>"
    )


# --- walking the MIME tree ----------------------------------------------------------------


def root_part(content: MessageContent) -> BodyPart:
    return BodyPart.from_json(content.parsed["body"])


def _is_attachment(node: BodyPart) -> bool:
    if node.disposition is not None and node.disposition[0] == "attachment":
        return True
    return node.type != "text" and node.type != "multipart"


def _body_leaves(node: BodyPart) -> Iterator[BodyPart]:
    """Leaves shown as the message's body, in order (attached messages not descended into)."""
    if node.type == "multipart":
        for child in node.children:
            yield from _body_leaves(child)
    elif not _is_attachment(node):
        yield node


def body_parts(content: MessageContent) -> tuple[BodyPart | None, BodyPart | None]:
    """The first text/plain and the first text/html part of the body."""
    text = html = None
    for leaf in _body_leaves(root_part(content)):
        if leaf.subtype == "plain" and text is None:
            text = leaf
        elif leaf.subtype == "html" and html is None:
            html = leaf
    return text, html


def find(content: MessageContent, part: str) -> BodyPart | None:
    from postroom.message import find_part

    return find_part(root_part(content), part)


async def decoded_part(conn: Conn, content: MessageContent, node: BodyPart) -> bytes:
    """The part's body with its transfer encoding undone."""
    length = min(
        node.end - node.header_start, MAX_DISPLAY_PART + (node.body_start - node.header_start)
    )
    chunk = await store.read_blob_range(conn, content.message.blob_id, node.header_start, length)
    entity = message_from_bytes(chunk, policy=email.policy.default)
    payload = entity.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


async def part_text(conn: Conn, content: MessageContent, node: BodyPart) -> str:
    data = await decoded_part(conn, content, node)
    charset = node.param("charset") or "us-ascii"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


# --- headers ------------------------------------------------------------------------------


def addresses(parsed: dict[str, Any], field: str) -> list[tuple[str | None, str]]:
    """Decoded (name, address) pairs of an envelope address field."""
    envelope = parsed.get("envelope") or {}
    out: list[tuple[str | None, str]] = []
    for entry in envelope.get(field) or []:
        name, _, mailbox, host = entry
        if host is None or mailbox is None:
            continue  # group markers
        out.append(
            (decode_header_value(name) if name else None, f"{mailbox}@{host}" if host else mailbox)
        )
    return out


# --- downloads ----------------------------------------------------------------------------


def safe_content_type(node: BodyPart) -> str:
    value = f"{node.type}/{node.subtype}".lower()
    return value if _TOKEN.match(value) else "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the RFC 6266 / RFC 8187 UTF-8 name."""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", filename).strip(" .") or "attachment"
    name = name[:200]
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()-]", "_", name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def part_filename(node: BodyPart) -> str:
    if node.filename:
        return node.filename
    extension = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}.get(
        node.content_type, ".bin"
    )
    return f"part-{node.part or 'body'}{extension}"


async def load(conn: Conn, mailbox_id: int, uid: int) -> MessageContent:
    from postroom.store.types import MailboxId

    found = await store.fetch_content(conn, MailboxId(mailbox_id), [uid])
    if not found or found[0].message.uid != uid:
        raise NotFound(f"message {uid} does not exist")
    if not found[0].parsed:
        raise NotFound(f"message {uid} has no parsed content")
    return found[0]


def reply_subject(subject: str | None, prefix: str) -> str:
    text = (subject or "").strip()
    if text.lower().startswith(prefix.lower()):
        return text
    return f"{prefix} {text}".strip()


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    """A zip of the files, each name made safe (no folders) and unique (``name (2).ext``)."""
    buffer = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            safe = re.sub(r"[\x00-\x1f\x7f/\\:]", "_", name).strip(" .")[:200] or "attachment"
            stem, dot, ext = safe.rpartition(".")
            if not dot:
                stem, ext = safe, ""
            candidate, n = safe, 1
            while candidate.lower() in used:
                n += 1
                candidate = f"{stem} ({n}){dot}{ext}"
            used.add(candidate.lower())
            archive.writestr(candidate, data)
    return buffer.getvalue()
