"""Properties of message parsing: any bytes parse, and generated MIME agrees with the stdlib."""

from __future__ import annotations

import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.message import (
    BodyPart,
    ParsedMessage,
    _parse,
    decode_header_value,
    find_part,
    parse_message,
    part_bytes,
)

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def walk(node: BodyPart) -> list[BodyPart]:
    nodes = [node]
    for child in node.children:
        nodes.extend(walk(child))
    return nodes


def assert_well_formed(raw: bytes, message: ParsedMessage) -> None:
    """What every parse must satisfy, whatever the input."""
    assert message.size == len(raw)
    assert message.header_size == message.body.body_start
    for node in walk(message.body):
        assert 0 <= node.header_start <= node.body_start <= node.end <= len(raw)
        assert node.size == node.end - node.body_start
        if node.type == "multipart":
            assert node.children
        elif node.children:
            assert node.envelope is not None
            assert len(node.children) == 1
        previous_end = node.body_start
        for child in node.children:
            assert node.body_start <= child.header_start
            assert child.end <= node.end
            assert previous_end <= child.header_start
            previous_end = child.end
        if node.type != "multipart":
            # Every leaf and message/rfc822 part is reachable by its own number.
            assert find_part(message.body, node.part) is node
            assert part_bytes(raw, message.body, node.part) == raw[node.body_start : node.end]
    dumped = json.dumps(message.to_json(), ensure_ascii=False)
    # Postgres jsonb refuses NUL and lone surrogates.
    assert "\\u0000" not in dumped
    dumped.encode("utf-8")
    assert ParsedMessage.from_json(json.loads(dumped)) == message


@SETTINGS
@given(st.binary(max_size=4096))
def test_any_bytes_parse(raw: bytes) -> None:
    # _parse, not parse_message: the safety net in parse_message must never be what holds.
    assert_well_formed(raw, _parse(raw))


MIME_FRAGMENTS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--b",
    b"--b--",
    b"--c",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b'Content-Type: multipart/alternative; boundary="c"\r\n',
    b"Content-Type: multipart/digest; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/html; charset=utf-16\r\n",
    b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC\r\n",
    b"Subject: =?utf-8?q?=C3?= =?utf-7?b?K2Q=?=\r\n",
    b"From: a <b@c>, g: d@e;, (x\r\n",
    b'To: "q\\" <r@s>\r\n',
    b" folded\r\n",
    b"<p>html &amp; <script>",
    b"=C3=A9=\r\n",
    b"\x00\xff\x80",
]


@SETTINGS
@given(st.lists(st.sampled_from(MIME_FRAGMENTS) | st.binary(max_size=8), max_size=60).map(b"".join))
def test_mime_like_fragments_parse(raw: bytes) -> None:
    assert_well_formed(raw, _parse(raw))


@SETTINGS
@given(st.text(max_size=300))
def test_decode_header_value_returns_storable_text(value: str) -> None:
    decoded = decode_header_value(value)

    assert "\x00" not in decoded
    decoded.encode("utf-8")


# --- generated messages compared with the stdlib's parse ------------------------------------------

BODY_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from("\n \t"),
    max_size=400,
)
WORDS = (
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\\/=?"),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(bool)
)
TEXT_CTE = st.sampled_from([None, "quoted-printable", "base64"])


@st.composite
def attachment(draw: st.DrawFn, message: EmailMessage) -> None:
    kind = draw(st.sampled_from(["binary", "text", "message"]))
    if kind == "binary":
        message.add_attachment(
            draw(st.binary(max_size=600)),
            maintype="application",
            subtype=draw(st.sampled_from(["octet-stream", "pdf"])),
            filename=draw(WORDS),
        )
    elif kind == "text":
        message.add_attachment(draw(BODY_TEXT), filename=draw(WORDS), cte=draw(TEXT_CTE))
    else:
        inner = EmailMessage()
        inner["Subject"] = draw(WORDS)
        inner["From"] = "inner@example.org"
        inner.set_content(draw(BODY_TEXT), cte=draw(TEXT_CTE))
        if draw(st.booleans()):
            inner.add_attachment(draw(st.binary(max_size=100)), "application", "octet-stream")
        message.add_attachment(inner)


@st.composite
def generated(draw: st.DrawFn) -> tuple[bytes, EmailMessage]:
    message = EmailMessage()
    message["From"] = "Sender <sender@example.org>"
    message["To"] = "rcpt@example.net"
    message["Subject"] = draw(WORDS)
    message.set_content(draw(BODY_TEXT), cte=draw(TEXT_CTE))
    if draw(st.booleans()):
        message.add_alternative(f"<p>{draw(BODY_TEXT)}</p>", subtype="html")
    for _ in range(draw(st.integers(0, 3))):
        draw(attachment(message))
    # Fixed boundaries: the generator would otherwise draw them from the random module.
    for index, part in enumerate(message.walk()):
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_part{index}_=")
    linesep = draw(st.sampled_from(["\r\n", "\n"]))
    return message.as_bytes(policy=policy.default.clone(linesep=linesep)), message


def stdlib_leaves(ours: BodyPart, theirs: EmailMessage) -> list[tuple[BodyPart, EmailMessage]]:
    """Our nodes paired with the stdlib's, leaf by leaf."""
    assert ours.content_type == theirs.get_content_type()
    if theirs.get_content_type() == "message/rfc822":
        assert ours.envelope is not None
        return stdlib_leaves(ours.children[0], cast(EmailMessage, theirs.get_payload(0)))
    if theirs.is_multipart():
        payload = cast(list[EmailMessage], theirs.get_payload())
        assert len(ours.children) == len(payload)
        return [
            pair
            for o, t in zip(ours.children, payload, strict=True)
            for pair in stdlib_leaves(o, t)
        ]
    return [(ours, theirs)]


def parse_with_stdlib(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def squash(text: str) -> str:
    return " ".join(text.split())


@SETTINGS
@given(generated())
def test_generated_leaves_have_the_bytes_the_stdlib_finds(case: tuple[bytes, EmailMessage]) -> None:
    raw, _ = case
    message = _parse(raw)
    theirs = parse_with_stdlib(raw)

    for ours, leaf in stdlib_leaves(message.body, theirs):
        # The stdlib keeps the undecoded payload as surrogate-escaped text.
        assert raw[ours.body_start : ours.end] == cast(Any, leaf)._payload.encode(
            "ascii", "surrogateescape"
        )
    assert_well_formed(raw, message)


@SETTINGS
@given(generated())
def test_generated_messages_decode_like_the_stdlib(case: tuple[bytes, EmailMessage]) -> None:
    raw, original = case
    message = _parse(raw)
    theirs = parse_with_stdlib(raw)

    assert message.subject == str(original["Subject"])
    for ours, leaf in stdlib_leaves(message.body, theirs):
        if ours.content_type == "text/plain":
            assert squash(leaf.get_content()) in squash(message.text)
        if leaf.get_filename() is not None:
            assert ours.filename == leaf.get_filename()
    assert [a.filename for a in message.attachments] == [
        part.get_filename() for part in original.iter_attachments()
    ]


def test_parse_message_is_the_public_entry_point() -> None:
    assert parse_message(b"Subject: x\r\n\r\ny").subject == "x"
