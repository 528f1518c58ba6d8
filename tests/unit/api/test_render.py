"""Sanitizing HTML bodies and naming downloads: pure functions, no database."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.api.compose import parse_recipients
from postroom.api.render import BLOCKED_IMAGE, content_disposition, sanitize_html
from postroom.errors import InvalidInput


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<script>alert(1)</script><p>x</p>", "<p>x</p>"),
        ('<img src="x" onerror="alert(1)">', f'<img src="{BLOCKED_IMAGE}">'),
        (
            '<a href="javascript:alert(1)">y</a>',
            '<a target="_blank" rel="noopener noreferrer">y</a>',
        ),
        ('<img src="https://t.example/p.gif">', f'<img src="{BLOCKED_IMAGE}">'),
        (
            '<p style="color: red; background: url(https://t.example/)">z</p>',
            '<p style="color:red">z</p>',
        ),
        ("<iframe src='https://e.example'></iframe>ok", "ok"),
        ('<img src="data:image/png;base64,AAAA">', '<img src="data:image/png;base64,AAAA">'),
    ],
    ids=[
        "script",
        "onerror",
        "javascript-link",
        "remote-image",
        "style-url",
        "iframe",
        "data-image",
    ],
)
def test_sanitize_html(markup: str, expected: str) -> None:
    assert sanitize_html(markup, allow_remote_images=False).html == expected


def test_remote_images_are_reported_and_kept_when_allowed() -> None:
    result = sanitize_html('<img src="https://t.example/p.gif">', allow_remote_images=True)
    assert result.remote_images is True
    assert result.html == '<img src="https://t.example/p.gif">'


@given(st.text(alphabet=st.sampled_from(list("<>/=\"' abcdeiloprstxn:()j")), max_size=200))
def test_sanitized_html_never_has_scripts_or_handlers(markup: str) -> None:
    cleaned = sanitize_html(markup, allow_remote_images=False).html.lower()
    assert "<script" not in cleaned
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", cleaned)
    assert "javascript:" not in re.sub(r">[^<]*<", "><", cleaned)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        (
            "résumé.pdf",
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        (
            'a"b\r\nX: y.txt',
            "attachment; filename=\"a_b__X_ y.txt\"; filename*=UTF-8''a%22b__X%3A%20y.txt",
        ),
        (
            "../../etc/passwd",
            "attachment; filename=\"_.._etc_passwd\"; filename*=UTF-8''_.._etc_passwd",
        ),
        ("", "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"),
    ],
    ids=["plain", "utf8", "quote-and-crlf", "path", "empty"],
)
def test_content_disposition_is_safe(name: str, header: str) -> None:
    assert content_disposition(name) == header


@pytest.mark.parametrize(
    ("fields", "addresses"),
    [
        (["bob@example.test"], ["bob@example.test"]),
        (["Bob <bob@example.test>, carol@x.test"], ["bob@example.test", "carol@x.test"]),
        (["", " "], []),
    ],
    ids=["one", "list", "empty"],
)
def test_parse_recipients(fields: list[str], addresses: list[str]) -> None:
    assert parse_recipients(fields, "to") == addresses


@pytest.mark.parametrize(
    "field", ["not an address", "a@b@", "x@\r\nBcc: y@z"], ids=["words", "two-at", "crlf"]
)
def test_parse_recipients_refuses_garbage(field: str) -> None:
    with pytest.raises(InvalidInput):
        parse_recipients([field], "to")


@given(st.text(max_size=300))
def test_parse_recipients_only_raises_invalid_input(field: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_recipients([field], "to")
