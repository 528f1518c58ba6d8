"""Compose HTML: cleaned on the server, and its plain text alternative."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.api.richtext import clean, plain


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<b>bold</b> and <i>it</i>", "<b>bold</b> and <i>it</i>"),
        ('<p onclick="x()">hi</p>', "<p>hi</p>"),
        ("<script>alert(1)</script>ok", "ok"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
        (
            '<a href="https://x.test/">x</a>',
            '<a href="https://x.test/" rel="noopener noreferrer">x</a>',
        ),
        ('<img src="https://tracker.test/p.gif">', ""),
        ("<form><input name=a></form>", ""),
        ("<style>p{}</style><p>t</p>", "<p>t</p>"),
    ],
)
def test_clean_keeps_formatting_only(markup: str, expected: str) -> None:
    assert clean(markup) == expected


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo\n"),
        ("Line<br>next", "Line\nnext\n"),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n\n- b\n"),
        ('See <a href="https://x.test/">the page</a>.', "See the page <https://x.test/>.\n"),
        ("<blockquote>quoted</blockquote>mine", "> quoted\nmine\n"),
        ("a &amp; b &lt;c&gt;", "a & b <c>\n"),
    ],
)
def test_plain_text_alternative(markup: str, expected: str) -> None:
    assert plain(markup) == expected


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, [name for name, _ in attrs]))


TAGGY = st.lists(
    st.sampled_from(
        ["<script>", "</script>", "<p onclick=x>", "<a href='javascript:x'>", "<img src=x>",
         "<b>", "</b>", "<style>", "text", "<svg onload=x>", "&lt;", "<iframe>", " ", "\"'"]
    )
).map("".join)  # fmt: skip


@given(st.one_of(st.text(max_size=300), TAGGY))
def test_cleaned_html_never_holds_active_content(markup: str) -> None:
    parser = _Tags()
    parser.feed(clean(markup))
    for tag, attributes in parser.seen:
        assert tag not in ("script", "style", "img", "iframe", "svg", "form")
        assert not [a for a in attributes if a.startswith("on")]
    plain(clean(markup))
