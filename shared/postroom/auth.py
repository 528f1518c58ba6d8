"""Password hashing (argon2id) for accounts."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A verification against this hash costs as much as a real one, so that a login for an
# unknown address takes as long as one with a wrong password (no user enumeration by timing).
_DUMMY_PASSWORD = "postroom-dummy-password"  # noqa: S105 - not a secret, a timing decoy

MAX_PASSWORD_LENGTH = 1024


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's second recommended option (argon2id, 64 MiB, t=3).
    return PasswordHasher()


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
