"""Multi-line message responses: byte-stuffing and TOP, chunk boundaries anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.pop3.protocol import DotStuffer, TopFilter


def stuff(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.feed(c) for c in chunks) + stuffer.end()


def unstuff(response: bytes) -> bytes:
    """What a client does (RFC 1939 §3): drop the terminator, remove one leading dot."""
    assert response.endswith(b"\r\n.\r\n") or response == b".\r\n"
    lines = response[:-3].split(b"\n")
    return b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize(
    ("message", "response"),
    [
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"no final newline", b"no final newline\r\n.\r\n"),
        (b"", b".\r\n"),
        (b"bare\n.dot\n", b"bare\n..dot\n\r\n.\r\n"),
    ],
    ids=["plain", "dot-line", "dot-start", "terminator-in-body", "no-crlf", "empty", "bare-lf"],
)
def test_dot_stuffing(message: bytes, response: bytes) -> None:
    assert stuff([message]) == response


def test_dot_at_start_of_a_chunk_after_a_line_end_is_stuffed() -> None:
    assert stuff([b"a\r\n", b".b\r\n"]) == b"a\r\n..b\r\n.\r\n"


def test_crlf_split_across_chunks_ends_the_message_cleanly() -> None:
    assert stuff([b"a\r", b"\n"]) == b"a\r\n.\r\n"


def test_dot_in_the_middle_of_a_line_split_across_chunks_is_not_stuffed() -> None:
    assert stuff([b"a", b".b\r\n"]) == b"a.b\r\n.\r\n"


lines = st.lists(
    st.sampled_from([b"", b".", b"..", b".x", b"x.", b"From: a", b"\r", b" ."]), max_size=12
)


@given(lines, st.lists(st.integers(min_value=1, max_value=9), max_size=6))
def test_client_recovers_the_message_for_any_chunking(parts: list[bytes], cuts: list[int]) -> None:
    message = b"".join(p + b"\r\n" for p in parts)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(message[pos : pos + cut])
        pos += cut
    chunks.append(message[pos:])
    response = stuff(chunks)
    assert response == stuff([message])
    assert unstuff(response) == message
    assert b"\r\n.\r\n" not in response[:-5]


def top(message: bytes, n: int, chunk: int) -> bytes:
    f = TopFilter(n)
    out = b""
    for i in range(0, len(message), chunk):
        out += f.feed(message[i : i + chunk])
        if f.done:
            break
    return out


MESSAGE = b"From: a\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, b"From: a\r\nSubject: s\r\n\r\n"),
        (2, b"From: a\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n"),
        (10, MESSAGE),
    ],
    ids=["no-body", "two-lines", "more-than-there-are"],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_top_sends_the_header_and_n_body_lines(n: int, expected: bytes, chunk: int) -> None:
    assert top(MESSAGE, n, chunk) == expected


def test_top_of_a_message_without_body_is_the_whole_message() -> None:
    assert top(b"From: a\r\nSubject: s\r\n", 3, 4) == b"From: a\r\nSubject: s\r\n"
