"""SPF (RFC 7208) of the HELO and MAIL FROM identities, evaluated by pyspf over postroom.dns.

pyspf is the reference implementation in Python (it passes the RFC 7208 test suite and
enforces the limits of §4.6.4: 10 DNS-querying terms, 2 void lookups, 10 MX or PTR names).
What it leaves to us is DNS: its lookups are answered from postroom.dns (``replay``).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import spf  # type: ignore[import-untyped]

from postroom.dns import DNSError, InvalidName, Resolver
from postroom.mailauth.replay import Answers, replay
from postroom.mailauth.results import SPFResult

# RFC 7208 §4.6.4: at most 10 terms that query DNS, each MX/PTR term at most 10 names, plus
# the record itself and an explanation: the questions one evaluation can ask.
MAX_QUESTIONS = 1 + 10 + 10 * 10 + 2
# RFC 7208 §4.6.4: an evaluation SHOULD be given at least 20 seconds.
TIME_LIMIT = 20.0

_TYPES = {"A", "AAAA", "MX", "PTR", "TXT", "SPF"}

Question = tuple[str, str]
# What one question gave: the (key, value) pairs pyspf expects, or a temporary error text.
Reply = list[tuple[Question, Any]] | str


async def check_host(
    resolver: Resolver, *, client_ip: str, sender: str, helo: str, identity: str
) -> SPFResult:
    """RFC 7208 §4: check_host() for ``sender`` (``postmaster@helo`` when empty)."""
    known = known_result(resolver, client_ip=client_ip, sender=sender, helo=helo, identity=identity)
    if known is not None:
        return known
    address = sender or (f"postmaster@{helo}" if helo else "")
    domain = address.rpartition("@")[2].lower().rstrip(".")
    key = ("spf", identity, client_ip, helo, domain)
    seen = _Seen()

    def evaluate(answers: Answers[Question, Reply]) -> tuple[str, int, str]:
        spf.DNSLookup = _lookup_from(answers)
        query = spf.query(i=client_ip, s=address, h=helo or domain, strict=True)
        result: tuple[str, int, str] = query.check()
        return result

    async def fetch(question: Question) -> Reply:
        return await _ask(resolver, question, seen)

    try:
        async with asyncio.timeout(TIME_LIMIT):
            # The domain's TXT records are always the first question: ask before the first run.
            result, _code, explanation = await replay(
                evaluate, fetch, prefetch=[(domain, "TXT")], max_runs=MAX_QUESTIONS + 1
            )
    except TimeoutError:
        return SPFResult("temperror", identity, domain, address, "DNS took too long")
    except RuntimeError as exc:
        return SPFResult("permerror", identity, domain, address, str(exc))
    found = SPFResult(result, identity, domain, address, explanation)
    if result != "temperror" and not seen.temporary:
        kept = (result, explanation)
        resolver.keep((*key, address) if seen.macros else key, kept, seen.expires)
    return found


def known_result(
    resolver: Resolver, *, client_ip: str, sender: str, helo: str, identity: str
) -> SPFResult | None:
    """The result of ``check_host`` when it needs no DNS: no domain to check, or a result
    kept from an earlier evaluation whose answers still hold; else None."""
    address = sender or (f"postmaster@{helo}" if helo else "")
    domain = address.rpartition("@")[2].lower().rstrip(".")
    if not domain or "." not in domain or domain.startswith("["):
        # RFC 7208 §4.3: no valid domain to check (a single label, an address literal).
        return SPFResult("none", identity, "", address, "no domain to check")
    # The same client, domain and HELO give the same result while the DNS answers that made
    # it hold; the address counts too when a record has macros (RFC 7208 §7.2: %{s}, %{l}).
    key = ("spf", identity, client_ip, helo, domain)
    kept = resolver.recall(key)
    if kept is None:
        kept = resolver.recall((*key, address))
    if isinstance(kept, tuple):
        return SPFResult(kept[0], identity, domain, address, kept[1])
    return None


class _Seen:
    """What the answers of one evaluation were like: when the first expires, whether a
    record may hold a macro, whether a question failed."""

    def __init__(self) -> None:
        self.expires = math.inf
        self.macros = False
        self.temporary = False


def _lookup_from(answers: Answers[Question, Reply]) -> Any:
    def lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> Any:
        reply = answers.need((name.lower().rstrip("."), qtype))
        if isinstance(reply, str):
            raise spf.TempError(reply)
        return reply

    return lookup


async def _ask(resolver: Resolver, question: Question, seen: _Seen) -> Reply:
    name, qtype = question
    if qtype not in _TYPES:
        return []
    if qtype == "SPF":
        return []  # RFC 7208 §3.1: type SPF records are not used
    try:
        answer = await resolver.lookup(name, qtype)
    except InvalidName:
        return []  # pyspf counts it as a void lookup, as an empty answer
    except DNSError as exc:
        seen.temporary = True
        return f"DNS {exc}"
    seen.expires = min(seen.expires, answer.expires)
    replies: list[tuple[Question, Any]] = []
    record: Any  # A, AAAA, MX, PTR or TXT rdata, told apart by qtype
    for record in answer.records:
        if qtype in ("A", "AAAA"):
            value: Any = record.to_text()
        elif qtype == "MX":
            value = (int(record.preference), record.exchange.to_text(omit_final_dot=True))
        elif qtype == "PTR":
            value = record.target.to_text(omit_final_dot=True)
        else:
            value = list(record.strings)
            seen.macros = seen.macros or any(b"%" in part for part in value)
        replies.append(((name, qtype), value))
    return replies
