"""Mail addresses: validation and the canonical form the store keys on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.errors import InvalidInput

# RFC 5321 §4.5.3.1: local part at most 64 octets, domain 255, path 256.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_ADDRESS = 254

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# RFC 5321 §4.1.2 Dot-string; UTF-8 local parts (RFC 6531) are accepted as well.
_DOT_STRING = re.compile(rf"^(?:{_ATEXT}|[^\x00-\x7f])+(?:\.(?:{_ATEXT}|[^\x00-\x7f])+)*$")
_QUOTED = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e]|[^\x00-\x7f])*"$')
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class Address:
    local_part: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"


def normalize_domain(domain: str) -> str:
    """Lowercase A-label form of a domain name, or InvalidInput."""
    text = domain.strip().rstrip(".")
    if not text:
        raise InvalidInput("the domain is empty")
    try:
        ascii_form = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise InvalidInput(f"{domain!r} is not a valid domain name") from None
    ascii_form = ascii_form.lower()
    labels = ascii_form.split(".")
    if len(ascii_form) > MAX_DOMAIN or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{domain!r} is not a valid domain name")
    return ascii_form


def parse_address(text: str) -> Address:
    """Split and validate ``local@domain``; the domain is normalised, the local part kept."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput(f"{text!r} is not a mail address (expected local-part@domain)")
    if len(local.encode()) > MAX_LOCAL_PART:
        raise InvalidInput(f"{text!r}: the local part is longer than {MAX_LOCAL_PART} octets")
    if not (_DOT_STRING.match(local) or _QUOTED.match(local)):
        raise InvalidInput(f"{text!r} is not a valid mail address")
    address = Address(local, normalize_domain(domain))
    if len(str(address).encode()) > MAX_ADDRESS:
        raise InvalidInput(f"{text!r} is longer than {MAX_ADDRESS} octets")
    return address


def canonical(text: str) -> str:
    """The form accounts and aliases are keyed by: the whole address lowercased."""
    address = parse_address(text)
    return f"{address.local_part.lower()}@{address.domain}"


def canonical_identity(text: str) -> str | None:
    """The account a login names, however it is written: surrounding white space and ``<>``,
    case, a trailing dot and a Unicode domain (IDNA) make no difference. None when the text is
    not an address at all (such logins share one throttling bucket)."""
    try:
        return canonical(text)
    except InvalidInput:
        return None


def without_tag(local_part: str) -> str | None:
    """``user+tag`` → ``user`` (plus addressing), or None when there is no tag."""
    base, plus, _tag = local_part.partition("+")
    return base if plus and base else None
