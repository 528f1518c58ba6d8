"""Password hashing (argon2id) for accounts."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A verification against this hash costs as much as a real one, so that a login for an
# unknown address takes as long as one with a wrong password (no user enumeration by timing).
_DUMMY_PASSWORD = "postroom-dummy-password"  # noqa: S105 - not a secret, a timing decoy

MAX_PASSWORD_LENGTH = 1024


# RFC 9106 section 4, the second recommended option: argon2id, t=3, 64 MiB, 4 lanes (as
# argon2-cffi's defaults). ``POSTROOM_ARGON2_PARAMETERS`` (``t=1,m=8,p=1``: passes, memory in
# KiB, lanes) replaces them; the test suite sets tiny ones so that an account does not cost
# 150 ms of CPU. A hash records its own parameters: one made with others still verifies, and
# the next login rehashes it with these.
DEFAULT_PARAMETERS = {"t": 3, "m": 65536, "p": 4}


def parameters(text: str) -> dict[str, int]:
    """The argon2id cost ``t=..,m=..,p=..`` names (any omitted keeps its default)."""
    result = dict(DEFAULT_PARAMETERS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in result or not value.strip().isdigit():
            raise ValueError(f"argon2 parameter {item!r} is not t=, m= or p= with a number")
        result[key] = int(value)
    if result["t"] < 1 or result["p"] < 1 or result["m"] < 8 * result["p"]:
        raise ValueError("argon2 parameters need t >= 1, p >= 1 and m >= 8 * p (KiB)")
    return result


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    cost = parameters(os.environ.get("POSTROOM_ARGON2_PARAMETERS", ""))
    return PasswordHasher(time_cost=cost["t"], memory_cost=cost["m"], parallelism=cost["p"])


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; never raises for a malformed hash or input."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    target = password_hash or _dummy_hash()
    try:
        ok = hasher().verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    try:
        return hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash(_DUMMY_PASSWORD)


def plaintext_auth_allowed(*, tls: bool, peer_ip: str | None, allow_plaintext: bool) -> bool:
    """May a password be sent on this connection? With TLS, from loopback, or when configured.

    As Dovecot's disable_plaintext_auth: a password in the clear is refused before TLS, except
    from the machine itself.
    """
    if tls or allow_plaintext:
        return True
    if peer_ip is None:
        return False
    try:
        return ipaddress.ip_address(peer_ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
