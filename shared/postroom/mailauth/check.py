"""Every sender check of one received message, and what the results ask us to do with it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Coroutine
from typing import Any, Literal

from postroom.dns import DNSError, Resolver
from postroom.mailauth import arc as arc_check
from postroom.mailauth import dkim as dkim_check
from postroom.mailauth import dmarc as dmarc_check
from postroom.mailauth import spf as spf_check
from postroom.mailauth.results import ARCResult, AuthResults, DKIMResult, SPFResult

Disposition = Literal["accept", "junk", "reject", "tempfail"]

# Messages larger than this are hashed in a worker thread, off the event loop.
THREAD_THRESHOLD = 256 * 1024


async def authenticate(
    message: bytes,
    *,
    client_ip: str,
    helo: str,
    mail_from: str,
    resolver: Resolver,
    max_signatures: int = 5,
    rng: random.Random | None = None,
) -> AuthResults:
    """SPF of HELO and MAIL FROM, every DKIM signature (up to a limit), ARC, then DMARC."""
    helo_domain = helo.lower().rstrip(".")
    # RFC 7208 §2.3: an address literal or a bare word is not checked.
    helo_checkable = "." in helo_domain and not helo_domain.startswith("[")
    authors = dmarc_check.from_domains(message)
    large = len(message) > THREAD_THRESHOLD

    # What needs no DNS, or only answers already cached, is found here at once; the rest
    # runs concurrently. Most mail from a known sender leaves DKIM alone, awaited directly:
    # no task, no trip through the event loop for each check.
    helo_result: SPFResult | None = None
    mailfrom_result = spf_check.known_result(
        resolver, client_ip=client_ip, sender=mail_from, helo=helo_domain, identity="mailfrom"
    )
    arc_result = None if arc_check.has_arc_sets(message) else ARCResult("none")
    waits: dict[str, Coroutine[Any, Any, Any]] = {}
    if helo_checkable:
        helo_result = spf_check.known_result(
            resolver, client_ip=client_ip, sender="", helo=helo_domain, identity="helo"
        )
        if helo_result is None:
            waits["helo"] = spf_check.check_host(
                resolver, client_ip=client_ip, sender="", helo=helo_domain, identity="helo"
            )
    if mailfrom_result is None:
        waits["mailfrom"] = spf_check.check_host(
            resolver, client_ip=client_ip, sender=mail_from, helo=helo_domain, identity="mailfrom"
        )
    waits["dkim"] = dkim_check.verify_signatures(
        message, resolver, max_signatures=max_signatures, in_thread=large
    )
    if arc_result is None:
        waits["arc"] = arc_check.validate_chain(message, resolver, in_thread=large)
    if authors and resolver.cached(f"_dmarc.{authors[0]}", "TXT") is None:
        # Ask for the policy while the other checks run; the evaluation then finds it cached.
        waits["dmarc"] = _warm(resolver, f"_dmarc.{authors[0]}")
    if len(waits) == 1:
        found = {"dkim": await waits["dkim"]}
    else:
        found = dict(zip(waits, await asyncio.gather(*waits.values()), strict=True))
    dkim_results: tuple[DKIMResult, ...] = found["dkim"]
    helo_result = found.get("helo", helo_result)
    mailfrom_result = found.get("mailfrom", mailfrom_result)
    arc_result = found.get("arc", arc_result)
    assert mailfrom_result is not None
    assert arc_result is not None
    dmarc_result = await dmarc_check.evaluate(
        message, mailfrom_result, dkim_results, resolver, rng, domains=authors
    )
    return AuthResults(helo_result, mailfrom_result, dkim_results, dmarc_result, arc_result)


async def _warm(resolver: Resolver, name: str) -> None:
    with contextlib.suppress(DNSError):
        await resolver.txt(name)


def disposition(results: AuthResults, *, enforce: bool) -> Disposition:
    """What the DMARC policy asks: refuse, file into Junk, try later, or accept.

    A temporary DNS failure defers the message only when a policy that rejects or
    quarantines may apply: the author domain's own policy could not be fetched, or it asks
    for reject/quarantine and a check that might have passed could not complete.
    """
    if not enforce:
        return "accept"
    dmarc = results.dmarc
    if dmarc.result == "fail":
        if dmarc.disposition == "reject":
            return "reject"
        if dmarc.disposition == "quarantine":
            return "junk"
    if dmarc.result == "temperror" and (
        not dmarc.policy or dmarc.disposition in ("reject", "quarantine")
    ):
        return "tempfail"
    return "accept"
