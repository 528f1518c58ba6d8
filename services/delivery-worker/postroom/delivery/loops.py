"""Mail loops at local delivery: the Delivered-To fields a message already carries.

Each copy Postroom files carries ``Delivered-To: <account>`` and each copy an alias forwards
elsewhere ``Delivered-To: <alias>`` (as Postfix's local delivery writes them). A message that
comes back with one of those naming the address it is now for has gone round a loop: it is
refused (RFC 3463 5.4.6) rather than delivered or forwarded once more.
"""

from __future__ import annotations

import re

_DELIVERED_TO = re.compile(rb"^delivered-to:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.I | re.M)


def delivered_to(header: bytes) -> set[str]:
    """The addresses of the header section's Delivered-To fields, lowercased."""
    end = header.find(b"\r\n\r\n")
    head = header[: end + 2] if end >= 0 else header
    found = set()
    for match in _DELIVERED_TO.finditer(head):
        value = b" ".join(match[1].split()).decode("utf-8", "replace").strip().strip("<>")
        if value:
            found.add(value.lower())
    return found
