"""DKIM canonicalisation (RFC 6376 §3.4) and b= removal (§3.7): our quicker forms give
exactly what dkimpy's own functions give, for any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.mailauth import dkim as ours
from tests.mailauth_support import SigningKey

# Text made mostly of what the functions look at: spaces, tabs, line breaks, tag syntax.
_SPECIAL = st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\r\n", b"b", b"=", b";", b"a", b"/"])
texts = st.lists(_SPECIAL | st.binary(max_size=3), max_size=60).map(b"".join)


@given(texts)
def test_trailing_whitespace_is_stripped_as_dkimpy_does(text: bytes) -> None:
    assert ours._strip_trailing_whitespace(text) == ours.DKIMPY_STRIP_TRAILING_WHITESPACE(text)


@given(texts)
def test_whitespace_is_compressed_as_dkimpy_does(text: bytes) -> None:
    assert ours._compress_whitespace(text) == ours.DKIMPY_COMPRESS_WHITESPACE(text)


@given(texts)
def test_header_values_are_unfolded_as_dkimpy_does(text: bytes) -> None:
    assert ours._unfold_header_value(text) == ours.DKIMPY_UNFOLD_HEADER_VALUE(text)


@given(texts)
def test_b_tag_value_is_removed_as_dkimpy_does(text: bytes) -> None:
    assert ours.dkim.RE_BTAG.sub(b"\\1", text) == ours.DKIMPY_RE_BTAG.sub(b"\\1", text)


_B64 = st.text("ABCabc019+/=", min_size=1, max_size=8).map(str.encode)
_FWS = st.sampled_from([b"", b" ", b"\t", b"\r\n ", b"\r\n\t", b"\n ", b"  \r\n  "])


@given(st.lists(st.tuples(_FWS, _B64), max_size=12), _FWS, st.sampled_from([b"", b"\r\n"]))
def test_b_tag_of_a_folded_signature_is_removed_as_dkimpy_does(
    parts: list[tuple[bytes, bytes]], before: bytes, end: bytes
) -> None:
    value = b"v=1; a=rsa-sha256; bh=abc=;" + before + b"b=" + b"".join(a + b for a, b in parts)
    value += end
    assert ours.dkim.RE_BTAG.sub(b"\\1", value) == ours.DKIMPY_RE_BTAG.sub(b"\\1", value)


def test_a_relaxed_signature_with_folded_b_tag_verifies() -> None:
    key = SigningKey.rsa()
    message = b"From: a@example.test\r\nSubject:  two  spaces\t\r\n\r\nbody \t \r\n\r\n\r\n"
    signed = key.sign(message, "example.test", "sel")
    assert b"b=" in signed
    verifier = ours.dkim.DKIM(signed)
    assert verifier.verify(dnsfunc=lambda name, timeout=5: key.record.encode())


_LINE = st.sampled_from(
    [b"From: a@example.test", b"Subject: x", b" folded", b"\tfolded", b"", b"From x", b"bad line",
     b"X-A:b", b": empty name", b"Name :x", b"body text"]
) | st.binary(max_size=8)  # fmt: skip
_BREAK = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])


def _parsed(parse: object, message: bytes) -> object:
    try:
        return parse(message)  # type: ignore[operator]
    except Exception as exc:  # the same failure counts as the same result
        return (type(exc), str(exc))


@given(st.lists(st.tuples(_LINE, _BREAK), max_size=12), _LINE)
def test_message_is_parsed_as_dkimpy_does(lines: list[tuple[bytes, bytes]], last: bytes) -> None:
    message = b"".join(line + end for line, end in lines) + last
    assert _parsed(ours._rfc822_parse, message) == _parsed(ours.DKIMPY_RFC822_PARSE, message)


_TAG_PART = st.sampled_from([b"v", b"=", b";", b" ", b"\t", b"a1", b"_", b"1", b"b=ab/+=", b"\xe9"])


@given(st.lists(_TAG_PART | st.binary(max_size=2), max_size=20).map(b"".join))
def test_tag_lists_are_parsed_as_dkimpy_does(text: bytes) -> None:
    assert _parsed(ours._parse_tag_value, text) == _parsed(ours.DKIMPY_PARSE_TAG_VALUE, text)
