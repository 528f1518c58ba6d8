"""Rich text from the compose window: its HTML cleaned to what mail needs (nh3, on the
server, whatever the browser sent), and the plain text alternative made from it."""

from __future__ import annotations

from html.parser import HTMLParser

import nh3

# What the compose toolbar makes, and what pasted mail commonly holds; nothing active.
_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "hr", "i", "li",
    "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}}
_BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "blockquote", "pre", "hr", "ul", "ol"}


def clean(markup: str) -> str:
    """The HTML part as it will be sent: only formatting and http(s)/mailto links."""
    return nh3.clean(
        markup,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template"},
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


class _Text(HTMLParser):
    # The standard library's HTML tokenizer; turning blocks into lines is all we add.
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.quote = 0
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "blockquote":
            self.quote += 1
        if tag == "a":
            href = dict(attrs).get("href")
            self.links.append(href or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http:", "https:")):
                self.parts.append(f" <{href}>")
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.quote:
            data = data.replace("\n", "\n" + "> " * self.quote)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = "> " * self.quote + data
        self.parts.append(data)


def plain(markup: str) -> str:
    """Readable plain text of cleaned HTML: one line per block, lists as "- ", quotes as ">",
    link targets after their text; runs of blank lines kept to one."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) if not line.startswith(">") else line.rstrip()
             for line in "".join(parser.parts).split("\n")]  # fmt: skip
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"
