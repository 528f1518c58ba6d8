"""Client setup over HTTP: Thunderbird autoconfig, Outlook Autodiscover, an Apple profile, and
the MTA-STS policy (RFC 8461 §3.3), each naming the listeners' real ports."""

from __future__ import annotations

import plistlib

import defusedxml.ElementTree as ET
import httpx
import pytest
from fastapi import FastAPI

from postroom.config import Settings
from postroom.dns_records import mta_sts_id
from tests.integration.api.conftest import User, client_for
from tests.support import Tenant

OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""


@pytest.fixture
async def anonymous(app: FastAPI) -> httpx.AsyncClient:
    return client_for(app)


def servers(xml: bytes) -> list[tuple[str, str, str, str, str]]:
    provider = ET.fromstring(xml).find("emailProvider")
    assert provider is not None
    return [
        (
            s.tag,
            s.get("type", ""),
            s.findtext("hostname", ""),
            s.findtext("port", ""),
            s.findtext("socketType", ""),
        )
        for s in provider
        if s.tag.endswith("Server")
    ]


async def test_thunderbird_gets_every_listener_implicit_tls_first(
    anonymous: httpx.AsyncClient, tenant: Tenant
) -> None:
    domain = tenant.domain.name
    reply = await anonymous.get(
        "/.well-known/autoconfig/mail/config-v1.1.xml", params={"emailaddress": f"a@{domain}"}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/xml"
    defaults = Settings()
    assert servers(reply.content) == [
        ("incomingServer", "imap", "mail.test", str(defaults.imaps_port), "SSL"),
        ("incomingServer", "imap", "mail.test", str(defaults.imap_port), "STARTTLS"),
        ("incomingServer", "pop3", "mail.test", str(defaults.pop3s_port), "SSL"),
        ("incomingServer", "pop3", "mail.test", str(defaults.pop3_port), "STARTTLS"),
        ("outgoingServer", "smtp", "mail.test", str(defaults.submissions_port), "SSL"),
        ("outgoingServer", "smtp", "mail.test", str(defaults.submission_port), "STARTTLS"),
    ]
    root = ET.fromstring(reply.content)
    assert root.findtext("emailProvider/domain") == domain
    assert {u.text for u in root.iter("username")} == {"%EMAILADDRESS%"}


async def test_thunderbird_at_autoconfig_host_finds_the_domain_from_the_host(
    anonymous: httpx.AsyncClient, tenant: Tenant
) -> None:
    domain = tenant.domain.name
    reply = await anonymous.get(
        "/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{domain}:8080"}
    )
    assert reply.status_code == 200
    assert ET.fromstring(reply.content).findtext("emailProvider/domain") == domain


async def test_a_domain_not_served_here_is_404(anonymous: httpx.AsyncClient) -> None:
    reply = await anonymous.get(
        "/mail/config-v1.1.xml", params={"emailaddress": "a@elsewhere.test"}
    )
    assert reply.status_code == 404
    assert (
        await anonymous.get("/mail/config-v1.1.xml", params={"emailaddress": "x"})
    ).status_code == 400


async def test_outlook_autodiscover_answers_imap_pop3_and_smtp(
    anonymous: httpx.AsyncClient, tenant: Tenant
) -> None:
    address = tenant.address("alice")
    reply = await anonymous.post(
        "/autodiscover/autodiscover.xml", content=REQUEST.format(address=address)
    )
    assert reply.status_code == 200, reply.text
    account = ET.fromstring(reply.content).find(f"{OUTLOOK}Response/{OUTLOOK}Account")
    assert account is not None
    assert account.findtext(f"{OUTLOOK}Action") == "settings"
    defaults = Settings()
    protocols = {
        p.findtext(f"{OUTLOOK}Type"): (
            p.findtext(f"{OUTLOOK}Server"),
            p.findtext(f"{OUTLOOK}Port"),
            p.findtext(f"{OUTLOOK}SSL"),
            p.findtext(f"{OUTLOOK}LoginName"),
        )
        for p in account.findall(f"{OUTLOOK}Protocol")
    }
    assert protocols == {
        "IMAP": ("mail.test", str(defaults.imaps_port), "on", address),
        "POP3": ("mail.test", str(defaults.pop3s_port), "on", address),
        "SMTP": ("mail.test", str(defaults.submissions_port), "on", address),
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<Autodiscover/>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<x>&b;</x>",
    ],
    ids=["not-xml", "no-address", "entity-expansion"],
)
async def test_a_bad_autodiscover_request_is_400(anonymous: httpx.AsyncClient, body: bytes) -> None:
    reply = await anonymous.post("/Autodiscover/Autodiscover.xml", content=body)
    assert reply.status_code == 400


async def test_an_oversized_autodiscover_request_is_413(anonymous: httpx.AsyncClient) -> None:
    reply = await anonymous.post("/autodiscover/autodiscover.xml", content=b"<a>" + b"x" * 20000)
    assert reply.status_code == 413


async def test_the_apple_profile_sets_up_the_logged_in_account(alice: User) -> None:
    reply = await alice.client.get("/api/v1/autoconfig/apple.mobileconfig")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(reply.content)
    assert profile["PayloadType"] == "Configuration"
    [account] = profile["PayloadContent"]
    address = alice.account.address
    defaults = Settings()
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert (account["EmailAddress"], account["IncomingMailServerUsername"]) == (address, address)
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"]) == (
        "mail.test",
        defaults.imaps_port,
    )
    assert account["OutgoingMailServerPortNumber"] == defaults.submissions_port
    assert account["IncomingMailServerUseSSL"] is True
    assert "password" not in {k.lower() for k in account}  # the device asks for it
    again = plistlib.loads(
        (await alice.client.get("/api/v1/autoconfig/apple.mobileconfig")).content
    )
    assert again["PayloadUUID"] == profile["PayloadUUID"]  # a reinstall replaces it


async def test_the_apple_profile_needs_a_login(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/api/v1/autoconfig/apple.mobileconfig")).status_code == 401


async def test_the_mta_sts_policy_is_served_at_mta_sts_of_a_local_domain(
    anonymous: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    reply = await anonymous.get(
        "/.well-known/mta-sts.txt", headers={"Host": f"mta-sts.{tenant.domain.name}"}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "version: STSv1\r\nmode: testing\r\nmx: mail.test\r\nmax_age: 604800\r\n"
    # The id published in DNS is the digest of exactly this policy.
    settings: Settings = app.state.settings
    assert mta_sts_id(settings).isalnum()


@pytest.mark.parametrize("host", ["mail.test", "mta-sts.elsewhere.test", "[::1]"])
async def test_the_mta_sts_policy_is_404_at_other_hosts(
    anonymous: httpx.AsyncClient, host: str
) -> None:
    reply = await anonymous.get("/.well-known/mta-sts.txt", headers={"Host": host})
    assert reply.status_code == 404
