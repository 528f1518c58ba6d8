"""DMARC (RFC 7489): policy discovery through postroom.dns, alignment and disposition.

The record is parsed and the policy applied by the ``dmarc`` package (tags, defaults, ``p``
against ``sp``, test mode); Organizational Domains come from the Public Suffix List of
``publicsuffixlist`` (a package republished with each list update). Alignment is ours:
the package's relaxed test compares name prefixes, which would align a public suffix with
every domain under it; RFC 7489 §3.1 compares Organizational Domains.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from email.utils import getaddresses
from functools import lru_cache

import dmarc  # type: ignore[import-untyped]
from publicsuffixlist import PublicSuffixList

from postroom.dns import DNSError, InvalidName, Resolver
from postroom.mailauth.results import DKIMResult, DMARCResult, SPFResult

_LESS_STRICT = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_SEVERITY = {"reject": 3, "quarantine": 2, "none": 1}


@lru_cache(maxsize=1)
def public_suffix_list() -> PublicSuffixList:
    """The list shipped with publicsuffixlist; unknown TLDs (``.test``) count as public."""
    return PublicSuffixList(accept_unknown=True)


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label (the domain itself when shorter)."""
    return public_suffix_list().privatesuffix(domain) or domain


class _Alignment(dmarc.DMARC):  # type: ignore[misc]
    def check_alignment(self, fd: str, ad: str, mode: object, psl: object = None) -> bool:
        fd, ad = fd.lower().rstrip("."), ad.lower().rstrip(".")
        if fd == ad:
            return True
        if mode is dmarc.DMARCAlignment.STRICT:
            return False
        # RFC 7489 §3.1.1, §3.1.2: relaxed, the Organizational Domains are the same.
        return organizational_domain(fd) == organizational_domain(ad)


def from_domains(message: bytes) -> list[str] | None:
    """The domains of the From header field (RFC 5322 §3.6.2), or None if unusable.

    RFC 7489 §6.6.1: each author domain is checked; no From, or one without a domain,
    leaves nothing to check.
    """
    end = message.find(b"\r\n\r\n")
    head = message[: end if end >= 0 else len(message)].decode("utf-8", "replace")
    values = [
        m.group(1)
        for m in re.finditer(r"^From[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    ]
    if not values:
        return None
    # The same From fields come again and again (each sender writes its own the same way):
    # their domains are worked out once (email.utils' parser and IDNA are most of the cost).
    key = tuple(values)
    try:
        found = _authors[key]
    except KeyError:
        found = _author_domains(values)
        if len(_authors) >= AUTHORS_KEPT:
            _authors.pop(next(iter(_authors)))  # the oldest entry
        _authors[key] = found
    return list(found) if found is not None else None


AUTHORS_KEPT = 4096
_authors: dict[tuple[str, ...], tuple[str, ...] | None] = {}


def _author_domains(values: list[str]) -> tuple[str, ...] | None:
    domains = []
    for _name, address in getaddresses([v.replace("\r\n", "") for v in values]):
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        if not address or "@" not in address or not domain:
            return None
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        domains.append(domain)
    return tuple(dict.fromkeys(domains)) or None


async def evaluate(
    message: bytes,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
    resolver: Resolver,
    rng: random.Random | None = None,
    domains: list[str] | None = None,
) -> DMARCResult:
    """The DMARC result of the message: the strictest over its author domains (``domains``:
    ``from_domains(message)`` when the caller has it already)."""
    domains = domains or from_domains(message)
    if not domains:
        return DMARCResult("none", "", reason="no usable From address")
    results = [await _evaluate_domain(d, spf, dkim, resolver, rng) for d in domains[:5]]
    return max(results, key=_rank)


def _rank(result: DMARCResult) -> tuple[int, int]:
    failing = result.result in ("fail", "temperror")
    return (_SEVERITY.get(result.disposition, 0) if failing else 0, failing)


async def _evaluate_domain(
    domain: str,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
    resolver: Resolver,
    rng: random.Random | None,
) -> DMARCResult:
    # RFC 7489 §6.6.3: the record at the author domain, else at its Organizational Domain.
    org = organizational_domain(domain)
    try:
        records = await _records(resolver, domain)
        found_at_org = False
        if not records and org != domain:
            records = await _records(resolver, org)
            found_at_org = True
    except DNSError as exc:
        return DMARCResult("temperror", domain, reason=f"policy lookup: {exc}")
    if len(records) != 1:
        # None, or several: "policy discovery terminates and DMARC processing is not applied".
        reason = "no policy" if not records else "several policy records"
        return DMARCResult("none", domain, reason=reason)
    # The outcome depends on the record and the results alone (and a draw when pct < 100):
    # it is kept by them, so a domain's next message does not parse the record again.
    key = (
        domain,
        records[0],
        found_at_org,
        spf.domain,
        spf.result,
        tuple((d.domain, d.result) for d in dkim),
    )
    kept = _outcomes.get(key)
    if kept is None:
        kept = _outcome(domain, org, records[0], found_at_org, spf, dkim)
        if len(_outcomes) >= OUTCOMES_KEPT:
            _outcomes.pop(next(iter(_outcomes)))  # the oldest entry
        _outcomes[key] = kept
    result, pct = kept
    # RFC 7489 §6.6.4: a message outside the pct sample gets the next less strict policy.
    sampled_out = (
        pct < 100
        and result.result in ("fail", "temperror")
        and (rng or random.Random()).random() * 100 >= pct  # noqa: S311
    )
    if sampled_out:
        return replace(result, disposition=_LESS_STRICT[result.disposition])
    return result


OUTCOMES_KEPT = 4096
_outcomes: dict[tuple[object, ...], tuple[DMARCResult, int]] = {}


def _outcome(
    domain: str,
    org: str,
    record: str,
    found_at_org: bool,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
) -> tuple[DMARCResult, int]:
    """The result before the pct sampling, and pct (100 when the record has none)."""
    try:
        policy = dmarc.Policy("DMARC1", domain, org if found_at_org else None)
        policy.parse_record(record, strict=False)
    except dmarc.RecordSyntaxError as exc:
        return DMARCResult("permerror", domain, reason=f"bad policy record: {exc}"), 100
    auth: list[object] = []
    if spf.domain:
        auth.append(dmarc.SPF(spf.domain, dmarc.SPFResult(spf.result)))
    auth += [dmarc.DKIM(d.domain, dmarc.DKIMResult(d.result)) for d in dkim if d.domain]
    checker = _Alignment()
    outcome = checker.get_result(
        policy,
        auth_results=dmarc.AuthResults(
            spf=next((a for a in auth if isinstance(a, dmarc.SPF)), None),
            dkim=[a for a in auth if isinstance(a, dmarc.DKIM)] or None,
        ),
    )
    published = str(policy.p.value)
    if found_at_org and policy.sp is not dmarc.DMARCDisposition.UNSPECIFIED:
        published = str(policy.sp.value)  # RFC 7489 §6.3: sp for subdomains of the OD
    pct = int(policy.pct)
    if outcome.result is dmarc.DMARCResult.PASS:
        return DMARCResult("pass", domain, policy=published, disposition="none"), pct
    disposition = str(outcome.disposition.value)
    temporary = spf.result == "temperror" or any(d.result == "temperror" for d in dkim)
    if temporary:
        # A pass may have been missed: the outcome is not final (RFC 7489 §11.2 temperror).
        return DMARCResult(
            "temperror", domain, published, disposition, "an underlying check failed temporarily"
        ), pct
    return DMARCResult("fail", domain, published, disposition, "no aligned pass"), pct


async def _records(resolver: Resolver, domain: str) -> list[str]:
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except InvalidName:
        return []
    # RFC 7489 §6.6.3 step 2: records that do not start with "v=DMARC1" are discarded.
    return [t.decode("utf-8", "replace") for t in texts if _DMARC_RECORD.match(t)]


_DMARC_RECORD = re.compile(rb"v\s*=\s*DMARC1\s*(;|$)")
