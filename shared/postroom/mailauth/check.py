"""Every sender check of one received message, and what the results ask us to do with it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Literal

from postroom.dns import DNSError, Resolver
from postroom.mailauth import arc as arc_check
from postroom.mailauth import dkim as dkim_check
from postroom.mailauth import dmarc as dmarc_check
from postroom.mailauth import spf as spf_check
from postroom.mailauth.results import AuthResults, SPFResult

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
    helo_checkable = "." in helo_domain and not helo_domain.startswith("[")

    async def spf_helo() -> SPFResult | None:
        if not helo_checkable:
            return None  # RFC 7208 §2.3: an address literal or a bare word is not checked
        return await spf_check.check_host(
            resolver, client_ip=client_ip, sender="", helo=helo_domain, identity="helo"
        )

    async def spf_mailfrom() -> SPFResult:
        return await spf_check.check_host(
            resolver, client_ip=client_ip, sender=mail_from, helo=helo_domain, identity="mailfrom"
        )

    authors = dmarc_check.from_domains(message)

    async def warm_dmarc() -> None:
        # Ask for the policy while the other checks run; the evaluation then finds it cached.
        for domain in (authors or [])[:1]:
            with contextlib.suppress(DNSError):
                await resolver.txt(f"_dmarc.{domain}")

    helo_result, mailfrom_result, dkim_results, arc_result, _ = await asyncio.gather(
        spf_helo(),
        spf_mailfrom(),
        dkim_check.verify_signatures(
            message,
            resolver,
            max_signatures=max_signatures,
            in_thread=len(message) > THREAD_THRESHOLD,
        ),
        arc_check.validate_chain(message, resolver, in_thread=len(message) > THREAD_THRESHOLD),
        warm_dmarc(),
    )
    dmarc_result = await dmarc_check.evaluate(
        message, mailfrom_result, dkim_results, resolver, rng, domains=authors
    )
    return AuthResults(helo_result, mailfrom_result, dkim_results, dmarc_result, arc_result)


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
