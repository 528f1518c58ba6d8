"""SASL PLAIN (RFC 4616) and LOGIN decoding for every protocol, with one authzid rule.

Each protocol frames the exchange its own way (SMTP's 334, IMAP's ``+``, POP3's ``+``) and
maps `SaslError` to its own reply; what a response means is decided here, once.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Literal

from postroom.address import canonical_identity

MECHANISMS = ("PLAIN", "LOGIN")
# RFC 4954 §4 / draft-murchison-sasl-login: LOGIN's two challenges, base64.
LOGIN_USERNAME = "VXNlcm5hbWU6"  # "Username:"
LOGIN_PASSWORD = "UGFzc3dvcmQ6"  # "Password:"  # noqa: S105 - a prompt, not a secret

SaslProblem = Literal["cancelled", "malformed", "authzid"]


class SaslError(Exception):
    """A response that ends the exchange: the client cancelled (``*``), sent something that
    is not base64 or not the mechanism's form, or asked to act as someone else."""

    def __init__(self, problem: SaslProblem) -> None:
        super().__init__(problem)
        self.problem: SaslProblem = problem


@dataclass(frozen=True, slots=True)
class Credentials:
    identity: str
    secret: str

    def __repr__(self) -> str:  # never show the secret, not even in a traceback
        return f"Credentials(identity={self.identity!r}, secret=***)"


def decode_response(text: str | bytes) -> bytes:
    """One client response line, without CRLF: ``*`` cancels, ``=`` is empty (RFC 4954 §4,
    RFC 5034 §4, RFC 9051 §6.2.2), anything else strict base64 (RFC 4648 §3.3: no junk)."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    raw = raw.strip(b" ")
    if raw == b"*":
        raise SaslError("cancelled")
    if raw == b"=":
        return b""
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        raise SaslError("malformed") from None


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("malformed") from None


def same_identity(a: str, b: str) -> bool:
    """Whether two identities name one account (case, IDNA, trailing dot, ``<>`` aside)."""
    first, second = canonical_identity(a), canonical_identity(b)
    if first is None or second is None:  # not addresses: the same name, whatever the case
        return a.strip().lower() == b.strip().lower()
    return first == second


def decode_plain(data: bytes) -> Credentials:
    """RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``. The one authzid rule: empty, or the
    same account as the authcid (nobody may act for someone else here, RFC 4616 §2's
    authorization is not offered); an empty authcid or password is malformed."""
    parts = data.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("malformed")
    authzid, authcid, password = (_utf8(p) for p in parts)
    if not authcid or not password:
        raise SaslError("malformed")
    if authzid and not same_identity(authzid, authcid):
        raise SaslError("authzid")
    return Credentials(authcid, password)


def decode_text(data: bytes) -> str:
    """A LOGIN username or password (UTF-8)."""
    return _utf8(data)
