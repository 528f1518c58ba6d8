"""Administration of what a domain needs to send well: DKIM keys and its DNS records.

The same functions as ``postroom dkim`` and ``postroom dns``, so both behave alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from postroom import dkim_admin, dns_records
from postroom.api.deps import AdminDep, ConnDep, SettingsDep
from postroom.db import Conn
from postroom.dkim import DkimKey
from postroom.dns import get_resolver
from postroom.dns_check import Finding, check
from postroom.errors import NotFound
from postroom.store import dkim as dkim_store
from postroom.store import get_domain

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class DkimKeyPublic(BaseModel):
    domain: str
    selector: str
    algorithm: Literal["rsa", "ed25519"]
    state: Literal["pending", "active", "retired"] = Field(
        description="active: signs and is published; pending: publish it, it signs after the "
        "next rotation; retired: no longer signs, keep it published until removed"
    )
    record_name: str = Field(description="where the TXT record goes: selector._domainkey.domain")
    record: str = Field(description="the TXT record's text (v=DKIM1; k=…; p=…)")
    zone_line: str
    created_at: datetime
    changed_at: datetime


class DkimKeyCreate(BaseModel):
    algorithm: Literal["rsa", "ed25519"] = "rsa"
    selector: str | None = Field(
        default=None, max_length=63, description="default: rsa<YYYYMM> or ed<YYYYMM>"
    )


class DkimRotation(BaseModel):
    step: Literal["pending", "active"] = Field(
        description="pending: new keys were made, publish them and rotate again; active: the "
        "pending keys now sign and the old ones are retired"
    )
    keys: list[DkimKeyPublic]


class DnsRecordPublic(BaseModel):
    purpose: str = Field(description="mx, spf, dkim, dmarc, mta-sts, mta-sts-host, tls-rpt, srv…")
    name: str
    type: Literal["MX", "TXT", "SRV", "CNAME"]
    value: str
    comment: str
    zone_line: str


class DnsRecords(BaseModel):
    domain: str
    records: list[DnsRecordPublic]
    zone: str = Field(description="all of them as a zone-file fragment")


class DnsFinding(DnsRecordPublic):
    status: Literal["ok", "missing", "different", "error"]
    found: list[str] = Field(description="what DNS answered at that name")
    note: str


class DnsCheck(BaseModel):
    domain: str
    ok: bool = Field(description="every record is ok")
    findings: list[DnsFinding]


def _key_public(key: DkimKey) -> DkimKeyPublic:
    return DkimKeyPublic(
        domain=key.domain,
        selector=key.selector,
        algorithm=key.algorithm,
        state=key.state,
        record_name=key.record_name,
        record=key.record,
        zone_line=dns_records.Record("dkim", key.record_name, "TXT", key.record, "").zone_line(),
        created_at=key.created_at,
        changed_at=key.changed_at,
    )


def _record_public(record: dns_records.Record) -> DnsRecordPublic:
    return DnsRecordPublic(
        purpose=record.purpose,
        name=record.name,
        type=record.type,
        value=record.value,
        comment=record.comment,
        zone_line=record.zone_line(),
    )


def _finding(finding: Finding) -> DnsFinding:
    return DnsFinding(
        **_record_public(finding.record).model_dump(),
        status=finding.status,
        found=list(finding.found),
        note=finding.note,
    )


@router.get("/domains/{name}/dkim", response_model=list[DkimKeyPublic])
async def list_dkim_keys(name: str, admin: AdminDep, conn: ConnDep) -> list[DkimKeyPublic]:
    """The domain's DKIM keys, newest first."""
    return [_key_public(k) for k in await dkim_store.list_keys(conn, name)]


@router.post("/domains/{name}/dkim", response_model=DkimKeyPublic, status_code=201)
async def generate_dkim_key(
    name: str, body: DkimKeyCreate, admin: AdminDep, conn: ConnDep, settings: SettingsDep
) -> DkimKeyPublic:
    """A new key that signs at once (RSA 2048 or Ed25519); publish its record."""
    key = await dkim_admin.generate(
        conn, settings, name, algorithm=body.algorithm, selector=body.selector
    )
    return _key_public(key)


@router.post("/domains/{name}/dkim/rotate", response_model=DkimRotation)
async def rotate_dkim_keys(
    name: str, admin: AdminDep, conn: ConnDep, settings: SettingsDep
) -> DkimRotation:
    """Key rollover in two calls: pending keys to publish, then the switch to them."""
    step, keys = await dkim_admin.rotate(conn, settings, name)
    return DkimRotation(step=step, keys=[_key_public(k) for k in keys])


@router.delete("/domains/{name}/dkim/{selector}", status_code=204)
async def remove_dkim_key(name: str, selector: str, admin: AdminDep, conn: ConnDep) -> Response:
    await dkim_store.remove_key(conn, name, selector.lower())
    return Response(status_code=204)


async def _records(conn: Conn, name: str, settings: SettingsDep) -> list[dns_records.Record]:
    domain = await get_domain(conn, name)
    if domain is None:
        raise NotFound(f"domain {name.lower()} does not exist")
    keys = await dkim_store.list_keys(conn, domain.name)
    return dns_records.required_records(domain.name, settings, keys)


@router.get("/domains/{name}/dns", response_model=DnsRecords)
async def domain_dns_records(
    name: str, admin: AdminDep, conn: ConnDep, settings: SettingsDep
) -> DnsRecords:
    """Every record the domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV…)."""
    records = await _records(conn, name, settings)
    return DnsRecords(
        domain=name.lower(),
        records=[_record_public(r) for r in records],
        zone=dns_records.zone_text(name.lower(), records),
    )


@router.get("/domains/{name}/dns/check", response_model=DnsCheck)
async def check_domain_dns(
    name: str, admin: AdminDep, conn: ConnDep, settings: SettingsDep
) -> DnsCheck:
    """Each needed record asked of DNS: ok, missing, different, or error (no answer)."""
    records = await _records(conn, name, settings)
    findings = await check(get_resolver(settings), records, settings.hostname)
    return DnsCheck(
        domain=name.lower(),
        ok=all(f.status == "ok" for f in findings),
        findings=[_finding(f) for f in findings],
    )
