"""Results of the sender checks, and the Authentication-Results header field (RFC 8601)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from authres import (  # type: ignore[import-untyped]
    AuthenticationResultProperty,
    DKIMAuthenticationResult,
    NoneAuthenticationResult,
    SPFAuthenticationResult,
)
from authres.arc import ARCAuthenticationResult  # type: ignore[import-untyped]
from authres.dmarc import DMARCAuthenticationResult  # type: ignore[import-untyped]

HEADER_NAME = b"Authentication-Results"


@dataclass(frozen=True, slots=True)
class SPFResult:
    """RFC 7208 §2.6: pass, fail, softfail, neutral, none, temperror or permerror."""

    result: str
    identity: str
    """``mailfrom`` or ``helo`` (RFC 7208 §2.3, §2.4)."""
    domain: str
    """The domain whose policy was checked; empty when there was none to check."""
    sender: str
    """The checked address (``postmaster@<helo>`` for HELO or a null reverse-path)."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DKIMResult:
    """One DKIM-Signature: pass, fail, policy, neutral, temperror or permerror (RFC 8601 §2.7.1)."""

    result: str
    domain: str
    selector: str
    algorithm: str
    b: str
    """The first characters of the signature (``header.b``, RFC 6008) that tell signatures apart."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DMARCResult:
    """RFC 7489 §11.2: pass, fail, none, temperror or permerror, and what the policy asks."""

    result: str
    from_domain: str
    policy: str = ""
    """The published policy that applies (``p``, or ``sp`` for a subdomain); empty: none found."""
    disposition: str = "none"
    """What to do: ``none``, ``quarantine`` or ``reject`` (after ``pct``)."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ARCResult:
    """RFC 8617 §4.4: the chain validation status, pass, fail or none."""

    result: str
    instances: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AuthResults:
    """Everything checked for one message."""

    spf_helo: SPFResult | None
    spf_mailfrom: SPFResult
    dkim: tuple[DKIMResult, ...]
    dmarc: DMARCResult
    arc: ARCResult

    @property
    def spf(self) -> SPFResult:
        """The SPF result DMARC uses: MAIL FROM's, or HELO's for a null reverse-path."""
        return self.spf_mailfrom

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the queue entry and the trace: ``dataclasses.asdict``'s,
        built directly (asdict deep-copies every string, a quarter of a check's CPU)."""
        return {
            "spf_helo": _fields(self.spf_helo) if self.spf_helo is not None else None,
            "spf_mailfrom": _fields(self.spf_mailfrom),
            "dkim": tuple(_fields(d) for d in self.dkim),
            "dmarc": _fields(self.dmarc),
            "arc": _fields(self.arc),
        }

    def summary(self) -> dict[str, str]:
        """One result per method (the best DKIM one), for counters and short views."""
        best = "none"
        for rank in ("pass", "fail", "policy", "neutral", "temperror", "permerror"):
            if any(d.result == rank for d in self.dkim):
                best = rank
                break
        return {
            "spf": self.spf_mailfrom.result,
            "dkim": best,
            "dmarc": self.dmarc.result,
            "arc": self.arc.result,
        }


def _fields(result: SPFResult | DKIMResult | DMARCResult | ARCResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in result.__slots__}


_UNSAFE = re.compile(r"[^\x21-\x7e]|[;()\"\\]")


def _safe(value: str) -> str:
    """A property value that cannot break the header: printable ASCII, no specials."""
    return _UNSAFE.sub("?", value)


def authentication_results(authserv_id: str, results: AuthResults) -> bytes:
    """The header field, folded one result per line, ending in CRLF (RFC 8601 §2.2)."""
    clauses: list[str] = []
    if results.spf_helo is not None:
        clauses.append(_clause("spf_helo", results.spf_helo.result, results.spf_helo.domain))
    mailfrom = results.spf_mailfrom
    clauses.append(_clause("spf_mailfrom", mailfrom.result, mailfrom.sender))
    for sig in results.dkim:
        clause = _clause("dkim", sig.result, sig.domain, sig.selector, sig.algorithm)
        if sig.b:  # differs for every message: not worth keeping
            clause += " " + str(AuthenticationResultProperty("header", "b", _safe(sig.b)))
        clauses.append(clause)
    if not results.dkim:
        clauses.append(_clause("dkim_none"))
    dmarc = results.dmarc
    clauses.append(
        _clause("dmarc", dmarc.result, dmarc.policy, dmarc.disposition, dmarc.from_domain)
    )
    clauses.append(_clause("arc", results.arc.result))
    text = ";\r\n\t".join([_authserv_id(authserv_id), *clauses])
    return HEADER_NAME + b": " + text.encode("ascii") + b"\r\n"


# The text of a clause depends on its method, result and properties alone, and these repeat
# from message to message (the same senders, the same outcomes): each is built once (with
# authres) and kept, instead of building authres's objects for every message.
CLAUSES_KEPT = 4096
_clauses: dict[tuple[str, ...], str] = {}


def _clause(*key: str) -> str:
    text = _clauses.get(key)
    if text is None:
        text = _build_clause(*key)
        if len(_clauses) >= CLAUSES_KEPT:
            _clauses.pop(next(iter(_clauses)))  # the oldest entry
        _clauses[key] = text
    return text


@lru_cache(maxsize=16)
def _authserv_id(authserv_id: str) -> str:
    return _safe(authserv_id)


def _build_clause(kind: str, *values: str) -> str:
    clause: object
    if kind == "spf_helo":
        result, domain = values
        clause = SPFAuthenticationResult(result=result, smtp_helo=_safe(domain))
    elif kind == "spf_mailfrom":
        result, sender = values
        clause = (
            SPFAuthenticationResult(result=result, smtp_mailfrom=_safe(sender))
            if sender
            else SPFAuthenticationResult(result=result)
        )
    elif kind == "dkim":
        result, domain, selector, algorithm = values
        clause = DKIMAuthenticationResult(
            result=result,
            header_d=_safe(domain) or "?",
            header_s=_safe(selector) or "?",
            header_a=_safe(algorithm) or "?",
        )
    elif kind == "dkim_none":
        clause = DKIMAuthenticationResult(result="none")
    elif kind == "dmarc":
        result, policy, disposition, from_domain = values
        clause = DMARCAuthenticationResult(
            result=result,
            result_comment=f"p={policy} dis={disposition}" if policy else None,
            header_from=_safe(from_domain) if from_domain else None,
        )
    else:
        (result,) = values
        clause = ARCAuthenticationResult(result=result)
    return str(clause)


def none_results(authserv_id: str) -> bytes:
    """``Authentication-Results: <id>; none``: nothing was checked (RFC 8601 §2.2)."""
    return HEADER_NAME + f": {_safe(authserv_id)}; {NoneAuthenticationResult()}\r\n".encode()


_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")


def authserv_id_of(value: bytes) -> bytes:
    """The authserv-id an Authentication-Results value claims (RFC 8601 §2.2), lower case."""
    text = re.sub(rb"\r?\n", b"", value)
    for _ in range(4):  # comments nest (RFC 5322 §3.2.2); a few levels are plenty here
        text = _COMMENT.sub(b" ", text)
    token = text.strip().split(b";", 1)[0].strip().split(None, 1)
    if not token:
        return b""
    return token[0].strip(b'"').rstrip(b".").lower()


def remove_our_authentication_results(message: bytes, authserv_id: str) -> bytes:
    """``message`` without the Authentication-Results fields that claim our authserv-id.

    RFC 8601 §5: a border MTA deletes such fields, so that later readers can trust a
    field with our authserv-id to be ours. Other fields are kept byte for byte.
    """
    ours = authserv_id.lower().rstrip(".").encode()
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = len(message)
    head = message[:end]
    if HEADER_NAME.lower() not in head.lower():
        return message
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    dropping = False
    for index, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name, colon, value = line.partition(b":")
        dropping = False
        if colon and name.strip().lower() == HEADER_NAME.lower():
            # The authserv-id may sit on a continuation line when the sender folded right
            # after the colon: read the whole field.
            parts = [value]
            for follow in lines[index + 1 :]:
                if follow[:1] not in (b" ", b"\t"):
                    break
                parts.append(follow)
            dropping = authserv_id_of(b" ".join(parts)) == ours
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + message[end:]
