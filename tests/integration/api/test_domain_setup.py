"""The admin API of DKIM keys and DNS records: /api/v1/admin/domains/{name}/dkim and /dns."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from cryptography.fernet import Fernet

from postroom import store
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import Conn
from tests.dns_server import DnsServer, Record
from tests.integration.api.conftest import client_for
from tests.zone import dkim_lookup

HOST = "mx.api.test"


@dataclass
class Admin:
    client: httpx.AsyncClient
    domain: str


MakeAdmin = Callable[[DnsServer], Awaitable[Admin]]
SECRET = Fernet.generate_key().decode()


@pytest.fixture
async def make_admin(database_url: str, conn: Conn) -> AsyncIterator[MakeAdmin]:
    """An admin of one fresh domain, logged in to an app whose DNS is the given test server
    (each call a new app on the same database and domain)."""
    domain = f"a{secrets.token_hex(4)}.test"
    await store.create_domain(conn, domain)
    password = "pw-" + secrets.token_hex(4)
    account = await store.create_account(conn, f"admin@{domain}", password, is_admin=True)
    async with AsyncExitStack() as stack:

        async def make(server: DnsServer) -> Admin:
            settings = Settings(
                database_url=database_url,
                hostname=HOST,
                dns_resolvers=server.servers,
                dns_timeout=2,
                key_encryption_key=SECRET,
            )
            app = create_app(settings, pool_size=2)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(client_for(app))
            reply = await client.post(
                "/api/v1/tokens", json={"address": account.address, "password": password}
            )
            client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
            return Admin(client, domain)

        yield make


@pytest.fixture
async def admin(make_admin: MakeAdmin, dns_server: Callable[..., DnsServer]) -> Admin:
    """An admin on an app whose DNS server knows none of the domain's records."""
    return await make_admin(dns_server([Record(HOST, "A", "127.0.0.7")]))


async def test_a_generated_key_is_listed_with_its_record(admin: Admin) -> None:
    url = f"/api/v1/admin/domains/{admin.domain}/dkim"
    reply = await admin.client.post(url, json={"algorithm": "ed25519", "selector": "e1"})
    assert reply.status_code == 201, reply.text
    key = reply.json()
    assert (key["selector"], key["algorithm"], key["state"]) == ("e1", "ed25519", "active")
    assert key["record_name"] == f"e1._domainkey.{admin.domain}"
    assert key["record"].startswith("v=DKIM1; k=ed25519; p=")
    assert key["zone_line"].startswith(f'e1._domainkey.{admin.domain}. 3600 IN TXT "v=DKIM1;')
    listed = (await admin.client.get(url)).json()
    assert [k["selector"] for k in listed] == ["e1"]
    assert "sealed_key" not in listed[0]
    assert "private" not in str(listed[0]).lower()


async def test_a_taken_selector_is_409_and_a_bad_one_422(admin: Admin) -> None:
    url = f"/api/v1/admin/domains/{admin.domain}/dkim"
    await admin.client.post(url, json={"algorithm": "ed25519", "selector": "e1"})
    taken = await admin.client.post(url, json={"algorithm": "ed25519", "selector": "e1"})
    assert taken.status_code == 409
    bad = await admin.client.post(url, json={"algorithm": "ed25519", "selector": "a_b"})
    assert bad.status_code == 422
    assert (await admin.client.post(url, json={"algorithm": "dsa"})).status_code == 422


async def test_an_unknown_domain_is_404(admin: Admin) -> None:
    reply = await admin.client.get("/api/v1/admin/domains/nowhere.test/dkim")
    assert (reply.status_code, reply.json()["detail"]) == (
        404,
        "domain nowhere.test does not exist",
    )
    assert (await admin.client.get("/api/v1/admin/domains/nowhere.test/dns")).status_code == 404


async def test_rotation_takes_two_calls_and_remove_deletes(admin: Admin) -> None:
    url = f"/api/v1/admin/domains/{admin.domain}/dkim"
    await admin.client.post(url, json={"algorithm": "ed25519", "selector": "old"})
    first = (await admin.client.post(f"{url}/rotate")).json()
    assert first["step"] == "pending"
    [new] = first["keys"]
    assert new["state"] == "pending"
    second = (await admin.client.post(f"{url}/rotate")).json()
    assert (second["step"], [k["selector"] for k in second["keys"]]) == (
        "active",
        [new["selector"]],
    )
    states = {k["selector"]: k["state"] for k in (await admin.client.get(url)).json()}
    assert states == {"old": "retired", new["selector"]: "active"}
    assert (await admin.client.delete(f"{url}/old")).status_code == 204
    assert (await admin.client.delete(f"{url}/old")).status_code == 404


async def test_dns_lists_every_record_and_check_asks_dns(
    admin: Admin, dns_server: Callable[..., DnsServer]
) -> None:
    base = f"/api/v1/admin/domains/{admin.domain}"
    await admin.client.post(f"{base}/dkim", json={"algorithm": "rsa", "selector": "r1"})
    shown = (await admin.client.get(f"{base}/dns")).json()
    purposes = [r["purpose"] for r in shown["records"]]
    assert purposes[:3] == ["mx", "spf", "dkim"]
    assert {"dmarc", "mta-sts", "tls-rpt", "srv", "autoconfig"} <= set(purposes)
    assert shown["zone"].startswith(f"; DNS records of {admin.domain}\n")
    # Nothing published yet: the test server knows none of the names.
    empty = (await admin.client.get(f"{base}/dns/check")).json()
    assert empty["ok"] is False
    assert {f["status"] for f in empty["findings"]} <= {"missing", "error"}


async def test_check_is_ok_once_the_records_are_published(
    admin: Admin, make_admin: MakeAdmin, dns_server: Callable[..., DnsServer]
) -> None:
    base = f"/api/v1/admin/domains/{admin.domain}"
    await admin.client.post(f"{base}/dkim", json={"algorithm": "rsa", "selector": "r1"})
    shown = (await admin.client.get(f"{base}/dns")).json()
    records = [Record(r["name"], r["type"], r["value"]) for r in shown["records"]]
    server = dns_server([*records, Record(HOST, "A", "127.0.0.7")])
    published = await make_admin(server)
    check = (await published.client.get(f"{base}/dns/check")).json()
    assert check["ok"] is True, [f for f in check["findings"] if f["status"] != "ok"]
    assert {f["status"] for f in check["findings"]} == {"ok"}
    [dkim_finding] = [f for f in check["findings"] if f["purpose"] == "dkim"]
    assert dkim_finding["found"] == [dkim_finding["value"]]
    # What the API says to publish is what a verifier finds there.
    assert dkim_lookup(server)(f"r1._domainkey.{admin.domain}.".encode()) == (
        dkim_finding["value"].encode()
    )


@pytest.mark.parametrize("selector", ["a%00b", "a_b", "x" * 70], ids=["nul", "underscore", "long"])
async def test_removing_a_selector_no_key_can_have_is_404(admin: Admin, selector: str) -> None:
    reply = await admin.client.delete(f"/api/v1/admin/domains/{admin.domain}/dkim/{selector}")
    assert reply.status_code == 404
