"""`dns check`: each record a domain needs, asked of DNS and judged ok, missing or different."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dns.rdatatype
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.IN.SRV import SRV

from postroom.dns import DNSError, Resolver, mx_records
from postroom.dns_records import Record

Status = Literal["ok", "missing", "different", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What DNS has for one required record; ``found`` as DNS answered, ``note`` why not ok."""

    record: Record
    status: Status
    found: tuple[str, ...] = ()
    note: str = ""


def tags(text: str) -> dict[str, str]:
    """RFC 6376 §3.2 tag=value list (DKIM, DMARC, MTA-STS and TLS-RPT records share it)."""
    result: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            result.setdefault(name.strip().lower(), "".join(value.split()))
    return result


def _version(text: str, version: str) -> bool:
    return tags(text).get("v", "").lower() == version.lower() and text.lstrip().lower().startswith(
        "v="
    )


def _judge_txt(record: Record, texts: list[str]) -> Finding:
    purpose = record.purpose
    found = tuple(texts)
    if purpose == "spf":
        # RFC 7208 §4.5: records that start with "v=spf1" (then a space or nothing).
        spf = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if not spf:
            return Finding(record, "missing", found)
        if len(spf) > 1:
            return Finding(record, "different", tuple(spf), "more than one SPF record (permerror)")
        terms = {t.lstrip("+").lower() for t in spf[0].split()[1:]}
        if "mx" in terms or spf[0] == record.value:
            return Finding(record, "ok", tuple(spf))
        return Finding(record, "different", tuple(spf), "does not authorize the MX hosts")
    version = {"dkim": "DKIM1", "dmarc": "DMARC1", "mta-sts": "STSv1", "tls-rpt": "TLSRPTv1"}[
        purpose
    ]
    # RFC 6376 §3.6.1: v= is optional in a key record, and then any record there is one.
    candidates = [t for t in texts if _version(t, version) or (purpose == "dkim" and "p=" in t)]
    if not candidates:
        return Finding(record, "missing", found)
    if len(candidates) > 1 and purpose != "dkim":
        return Finding(record, "different", tuple(candidates), f"more than one v={version}")
    want = tags(record.value)
    if purpose == "dkim":
        for text in candidates:
            have = tags(text)
            if have.get("p") == want["p"] and have.get("k", "rsa") == want["k"]:
                return Finding(record, "ok", (text,))
        return Finding(record, "different", tuple(candidates), "another public key")
    have = tags(candidates[0])
    if purpose == "dmarc" and have.get("p", "").lower() not in ("none", "quarantine", "reject"):
        return Finding(record, "different", tuple(candidates), "no valid p= policy")
    if purpose == "mta-sts" and have.get("id") != want["id"]:
        # RFC 8461 §3.1: senders refetch the policy only when the id changes.
        return Finding(record, "different", tuple(candidates), "the id is not the policy's")
    if purpose == "tls-rpt" and not have.get("rua"):
        return Finding(record, "different", tuple(candidates), "no rua= to report to")
    return Finding(record, "ok", tuple(candidates))


async def _host_records(resolver: Resolver, record: Record, host: str) -> Finding:
    """A name that must lead to our host: a CNAME to it, or the same addresses."""
    answer = await resolver.lookup(record.name, dns.rdatatype.CNAME)
    cnames = [r for r in answer.records if isinstance(r, CNAME)]
    targets = [r.target.to_text(omit_final_dot=True).lower() for r in cnames]
    if targets:
        status: Status = "ok" if host in targets else "different"
        return Finding(record, status, tuple(f"{t}." for t in targets))
    mine = await resolver.addresses(record.name)
    if not mine:
        return Finding(record, "missing")
    ours = await resolver.addresses(host)
    if set(mine) == set(ours):
        return Finding(record, "ok", tuple(mine))
    return Finding(record, "different", tuple(mine), f"not the addresses of {host}")


async def check_record(resolver: Resolver, record: Record, host: str) -> Finding:
    try:
        if record.type == "MX":
            exchanges = mx_records(await resolver.mx(record.name))
            if not exchanges:
                return Finding(record, "missing")
            found = tuple(f"{p} {x}." for p, x in sorted(exchanges))
            ok = host in {x.lower() for _, x in exchanges}
            if not ok:
                return Finding(record, "different", found, f"no MX {host}")
            return Finding(record, "ok", found)
        if record.type == "TXT":
            texts = [t.decode("utf-8", "replace") for t in await resolver.txt(record.name)]
            return _judge_txt(record, texts)
        if record.type == "SRV":
            answer = await resolver.lookup(record.name, dns.rdatatype.SRV)
            srv = [r for r in answer.records if isinstance(r, SRV)]
            if not srv:
                return Finding(record, "missing")
            port = int(record.value.split()[2])
            found = tuple(r.to_text() for r in srv)
            for r in srv:
                if r.target.to_text(omit_final_dot=True).lower() == host and r.port == port:
                    return Finding(record, "ok", found)
            return Finding(record, "different", found, f"not {host} port {port}")
        return await _host_records(resolver, record, host)
    except DNSError as exc:
        return Finding(record, "error", (), str(exc))


async def check(resolver: Resolver, records: Sequence[Record], host: str) -> list[Finding]:
    """Every record asked at once; findings in the order of ``records``."""
    return list(await asyncio.gather(*(check_record(resolver, r, host) for r in records)))
