"""Sender Rewriting Scheme (SRS, libsrs2's guarded scheme): forward and reverse addresses.

Forwarded mail leaves with ``SRS0=HHHH=TT=orig.domain=local@our.host`` as its envelope
sender, so that it passes SPF at the next hop and its bounces come back here, where the
address is checked (HMAC-SHA1 hash, day stamp) and turned back into the original sender.
A sender that already is an SRS0 address (another forwarder's) becomes SRS1, which bounces
to that forwarder. Written here rather than taken from PyPI: the packages there (srslib,
pysrs) are untyped, unmaintained since 2017, and compare hashes in non-constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from postroom.config import Settings

HASH_LENGTH = 4  # libsrs2's default: 24 bits of the HMAC
_STAMP_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32, 5 bits a letter
_STAMP_MODULUS = 1 << 10  # two letters: days modulo 1024, as in libsrs2
_SEPARATORS = "=+-"


class InvalidSrs(ValueError):
    """An SRS address whose hash or day stamp does not verify, or that is malformed."""


def secret_file(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "srs.key"


def secret(settings: Settings) -> bytes:
    if settings.srs_secret is not None:
        return settings.srs_secret.get_secret_value().encode()
    from postroom.keyring import read_or_make

    return read_or_make(secret_file(settings))


def _hash(key: bytes, *parts: str) -> str:
    # libsrs2 hashes the lowercased fields, so the hash survives a case-folding relay.
    mac = hmac.new(key, "".join(parts).lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()[:HASH_LENGTH]


def _hash_ok(key: bytes, given: str, *parts: str) -> bool:
    # Case-insensitive, as libsrs2 (a relay may fold the local part's case).
    expected = _hash(key, *parts).lower().encode()
    return len(given) == HASH_LENGTH and hmac.compare_digest(expected, given.lower().encode())


def _day(now: float) -> int:
    return int(now // 86400)


def _stamp(day: int) -> str:
    day %= _STAMP_MODULUS
    return _STAMP_ALPHABET[day >> 5] + _STAMP_ALPHABET[day & 31]


def _stamp_age(stamp: str, today: int) -> int | None:
    stamp = stamp.upper()
    if len(stamp) != 2 or any(c not in _STAMP_ALPHABET for c in stamp):
        return None
    value = _STAMP_ALPHABET.index(stamp[0]) << 5 | _STAMP_ALPHABET.index(stamp[1])
    return (today - value) % _STAMP_MODULUS


def is_srs(address: str) -> bool:
    local = address.rpartition("@")[0]
    return len(local) > 4 and local[:4].upper() in ("SRS0", "SRS1") and local[4] in _SEPARATORS


def forward(address: str, domain: str, key: bytes, *, now: float | None = None) -> str:
    """The envelope sender for ``address``'s mail forwarded from ``domain``."""
    local, _, host = address.rpartition("@")
    if not local or not host:
        raise InvalidSrs(f"not an address: {address!r}")
    upper = local[:4].upper()
    if upper == "SRS1" and local[4:5] in tuple(_SEPARATORS):
        # Already bounced through several forwarders: keep the first hop, hash it anew.
        fields = local[5:].split("=", 2)
        if len(fields) == 3:
            _old, first_hop, opaque = fields
            return f"SRS1={_hash(key, first_hop, opaque)}={first_hop}={opaque}@{domain}"
    if upper == "SRS0" and local[4:5] in tuple(_SEPARATORS):
        opaque = local[4:]  # keeps its leading separator, as libsrs2 does
        return f"SRS1={_hash(key, host, opaque)}={host}={opaque}@{domain}"
    stamp = _stamp(_day(time.time() if now is None else now))
    return f"SRS0={_hash(key, stamp, host, local)}={stamp}={host}={local}@{domain}"


def reverse(address: str, key: bytes, max_age_days: int, *, now: float | None = None) -> str:
    """The address a bounce to the SRS ``address`` goes back to; InvalidSrs if forged,
    expired or malformed."""
    local = address.rpartition("@")[0]
    tag, sep, rest = local[:4].upper(), local[4:5], local[5:]
    if not sep or sep not in _SEPARATORS:
        raise InvalidSrs("not an SRS address")
    if tag == "SRS0":
        fields = rest.split("=", 3)
        if len(fields) != 4 or not all(fields):
            raise InvalidSrs("malformed SRS0 address")
        given, stamp, host, orig_local = fields
        if not _hash_ok(key, given, stamp, host, orig_local):
            raise InvalidSrs("SRS0 hash does not verify")
        age = _stamp_age(stamp, _day(time.time() if now is None else now))
        if age is None or age > max_age_days:
            raise InvalidSrs("SRS0 address expired")
        return f"{orig_local}@{host}"
    if tag == "SRS1":
        fields = rest.split("=", 2)
        if len(fields) != 3 or not all(fields) or fields[2][0] not in _SEPARATORS:
            raise InvalidSrs("malformed SRS1 address")
        given, first_hop, opaque = fields
        if not _hash_ok(key, given, first_hop, opaque):
            raise InvalidSrs("SRS1 hash does not verify")
        return f"SRS0{opaque}@{first_hop}"
    raise InvalidSrs("not an SRS address")


async def bounce_target(
    settings: Settings,
    address: str,
    is_local_domain: Callable[[str], Awaitable[bool]],
    *,
    now: float | None = None,
) -> str | None:
    """Where mail to ``address`` goes back to when it is an SRS address of ours (the host
    name's or a local domain's): the original sender. None when it is not such an address;
    `InvalidSrs` when it is but is forged, expired or malformed. smtp-in (RCPT TO) and the
    delivery worker (a DSN's recipient) both decide with this."""
    if not is_srs(address):
        return None
    domain = address.rpartition("@")[2].lower()
    if domain != settings.hostname.lower() and not await is_local_domain(domain):
        return None
    return reverse(address, secret(settings), settings.srs_max_age_days, now=now)


def rewrite_sender(
    settings: Settings, reverse_path: str, *, sender_is_local: bool, domain: str
) -> str:
    """The envelope sender of a copy forwarded from ``domain`` to a remote address: the
    null sender and our own domains' senders stay as they are (SPF passes for them)."""
    if not reverse_path or sender_is_local:
        return reverse_path
    if reverse_path.rpartition("@")[2].lower() == settings.hostname.lower():
        return reverse_path
    return forward(reverse_path, domain, secret(settings))
