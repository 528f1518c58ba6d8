"""Client setup over HTTP: Thunderbird autoconfig, Outlook Autodiscover, an Apple profile for
the logged-in account, and each local domain's MTA-STS policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from postroom import dns_records, store
from postroom.address import parse_address
from postroom.api import autoconfig
from postroom.api.deps import AccountDep, ConnDep, SettingsDep
from postroom.api.problems import Problem
from postroom.db import Conn
from postroom.errors import InvalidInput

router = APIRouter()

XML = "application/xml"
# Autodiscover requests are a few hundred bytes; anything past this is not one.
MAX_AUTODISCOVER_REQUEST = 16 * 1024


def _request_host(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):
        return ""  # an IPv6 literal names no domain
    return host.rsplit(":", 1)[0].strip().rstrip(".").lower()


async def _local_domain(conn: Conn, name: str) -> str:
    domain = await store.get_domain(conn, name) if name else None
    if domain is None:
        raise Problem(404, f"{name or 'that'} is not a domain served here")
    return domain.name


def _domain_of(address: str) -> str:
    try:
        return parse_address(address).domain
    except InvalidInput as exc:
        raise Problem(400, str(exc)) from None


@router.get("/.well-known/autoconfig/mail/config-v1.1.xml", include_in_schema=False)
@router.get("/mail/config-v1.1.xml", include_in_schema=False)
async def thunderbird_autoconfig(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    emailaddress: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """Thunderbird's autoconfig: the domain of ``emailaddress``, else of the Host header
    (``autoconfig.<domain>`` or the domain itself)."""
    if emailaddress:
        name = _domain_of(emailaddress)
    else:
        name = _request_host(request).removeprefix("autoconfig.")
    domain = await _local_domain(conn, name)
    return Response(autoconfig.thunderbird(domain, settings), media_type=XML)


@router.post("/autodiscover/autodiscover.xml", include_in_schema=False)
@router.post("/Autodiscover/Autodiscover.xml", include_in_schema=False)
async def outlook_autodiscover(request: Request, conn: ConnDep, settings: SettingsDep) -> Response:
    """Microsoft's Autodiscover, the plain-old-XML form Outlook posts."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_AUTODISCOVER_REQUEST:
            raise Problem(413, "an Autodiscover request is a few hundred bytes")
    try:
        address = autoconfig.autodiscover_address(body)
    except autoconfig.BadRequest as exc:
        raise Problem(400, str(exc)) from None
    await _local_domain(conn, _domain_of(address))
    return Response(autoconfig.autodiscover(address, settings), media_type=XML)


@router.get(
    "/api/v1/autoconfig/apple.mobileconfig",
    tags=["autoconfig"],
    response_class=Response,
    responses={200: {"content": {"application/x-apple-aspen-config": {}}}},
)
async def apple_profile(account: AccountDep, settings: SettingsDep) -> Response:
    """An Apple configuration profile that sets up the caller's account (IMAP and SMTP)."""
    return Response(
        autoconfig.apple_profile(account.address, settings),
        media_type="application/x-apple-aspen-config",
        headers={"Content-Disposition": 'attachment; filename="mail.mobileconfig"'},
    )


@router.get("/.well-known/mta-sts.txt", include_in_schema=False)
async def mta_sts_policy(request: Request, conn: ConnDep, settings: SettingsDep) -> Response:
    """RFC 8461 §3.3: the policy, for a request to ``mta-sts.<local domain>``."""
    host = _request_host(request)
    if not host.startswith("mta-sts."):
        raise Problem(404, "the MTA-STS policy is served at mta-sts.<domain>")
    await _local_domain(conn, host.removeprefix("mta-sts."))
    return Response(dns_records.mta_sts_policy(settings), media_type="text/plain")
