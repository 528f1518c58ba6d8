"""DKIM signing at the hand-off to another server: what arrives at the next hop verifies."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest

from postroom import dkim_admin, dns_records, store
from postroom.config import Settings
from postroom.db import Conn
from postroom.dns import Resolver
from postroom.mailauth.check import authenticate
from postroom.mailauth.results import authentication_results
from postroom.store import dkim as dkim_store
from tests.dns_server import DnsServer, Record
from tests.integration.delivery.harness import Sink, message, settings_for
from tests.rspamd_server import start_rspamd
from tests.support import Tenant
from tests.zone import dkim_lookup, served


def dkim_settings(sink: Sink, tmp_path: Path, **env: str) -> Settings:
    return settings_for(sink, POSTROOM_DATA_DIR=str(tmp_path), **env)


async def published(
    conn: Conn, settings: Settings, domain: str, dns_server: Callable[..., DnsServer]
) -> Callable[..., bytes | None]:
    """The domain's records as `postroom dns show` prints them, served by a real DNS server;
    returns dkimpy's lookup asking that server."""
    keys = await dkim_store.list_keys(conn, domain)
    server = dns_server(served(dns_records.required_records(domain, settings, keys)))
    return dkim_lookup(server)


def signatures(content: bytes) -> list[dict[str, str]]:
    head = content.split(b"\r\n\r\n")[0].decode().replace("\r\n", "")
    found = []
    for field in re.findall(r"DKIM-Signature:(.*?)(?=\S+:|$)", head):
        tags = dict(t.strip().split("=", 1) for t in field.replace(" ", "").split(";") if "=" in t)
        found.append(tags)
    return found


async def test_mail_from_a_local_domain_is_signed_by_every_active_key(
    tenant: Tenant,
    make_harness: Any,
    sink: Sink,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> None:
    settings = dkim_settings(sink, tmp_path)
    domain = tenant.domain.name
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="rsa", selector="r1")
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    h = await make_harness(settings)
    alice = tenant.address("alice")
    await h.deliver(await h.spool(message(sender=alice), alice, ["bob@remote.test"]))
    [received] = sink.handler.received
    content = received.content
    assert sorted((s["a"], s["d"], s["s"]) for s in signatures(content)) == [
        ("ed25519-sha256", domain, "e1"),
        ("rsa-sha256", domain, "r1"),
    ]
    lookup = await published(tenant.conn, settings, domain, dns_server)
    verifier = dkim.DKIM(content)
    assert verifier.verify(idx=0, dnsfunc=lookup)
    assert verifier.verify(idx=1, dnsfunc=lookup)
    # And the verdict is DNS's: a server without the records fails the same message.
    assert not dkim.verify(content, dnsfunc=dkim_lookup(dns_server([])))


async def test_pending_and_retired_keys_do_not_sign(
    tenant: Tenant, make_harness: Any, sink: Sink, tmp_path: Path
) -> None:
    settings = dkim_settings(sink, tmp_path)
    domain = tenant.domain.name
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="old")
    await dkim_admin.rotate(tenant.conn, settings, domain)  # a pending key
    h = await make_harness(settings)
    alice = tenant.address("alice")
    await h.deliver(await h.spool(message(sender=alice), alice, ["bob@remote.test"]))
    assert [s["s"] for s in signatures(sink.handler.received[0].content)] == ["old"]


async def test_mail_from_a_foreign_domain_is_not_signed(
    tenant: Tenant, make_harness: Any, sink: Sink, tmp_path: Path
) -> None:
    settings = dkim_settings(sink, tmp_path)
    await dkim_admin.generate(tenant.conn, settings, tenant.domain.name, algorithm="ed25519")
    h = await make_harness(settings)
    raw = message(sender="someone@elsewhere.test")
    await h.deliver(await h.spool(raw, "someone@elsewhere.test", ["bob@remote.test"]))
    assert sink.handler.received[0].content == raw


async def test_our_dsn_is_signed_for_the_domain_of_the_host_name(
    tenant: Tenant,
    make_harness: Any,
    sink: Sink,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> None:
    domain = tenant.domain.name
    settings = dkim_settings(sink, tmp_path, POSTROOM_HOSTNAME=f"mail.{domain}")
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    sink.handler.rcpt_replies["gone@remote.test"] = ["550 5.1.1 no such user"]
    h = await make_harness(settings)
    spooled = await h.spool(message(), "sender@remote.test", ["gone@remote.test"])
    await h.deliver(spooled)
    [dsn] = sink.handler.received
    assert dsn.mail_from == "<>"
    assert f"From: Mail Delivery System <MAILER-DAEMON@mail.{domain}>" in dsn.content.decode()
    [signature] = signatures(dsn.content)
    assert (signature["d"], signature["s"]) == (domain, "e1")
    lookup = await published(tenant.conn, settings, domain, dns_server)
    assert dkim.verify(dsn.content, dnsfunc=lookup)


async def test_a_key_sealed_under_another_secret_leaves_mail_unsigned_and_delivered(
    tenant: Tenant, make_harness: Any, sink: Sink, tmp_path: Path
) -> None:
    domain = tenant.domain.name
    await dkim_admin.generate(
        tenant.conn, dkim_settings(sink, tmp_path / "a"), domain, algorithm="ed25519"
    )
    h = await make_harness(dkim_settings(sink, tmp_path / "b"))
    alice = tenant.address("alice")
    raw = message(sender=alice)
    await h.deliver(await h.spool(raw, alice, ["bob@remote.test"]))
    assert sink.handler.received[0].content == raw


async def test_a_receiver_finds_dkim_spf_and_dmarc_pass_with_the_records_of_dns_show(
    tenant: Tenant,
    make_harness: Any,
    sink: Sink,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> None:
    """The walk of docs/deliverability.md: keys made, `dns show` published, a message sent;
    the receiving side (Postroom's own inbound checks) says dkim=pass spf=pass dmarc=pass."""
    domain = tenant.domain.name
    host = f"mail.{domain}"
    settings = dkim_settings(sink, tmp_path, POSTROOM_HOSTNAME=host)
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="rsa", selector="r1")
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    keys = await dkim_store.list_keys(tenant.conn, domain)
    zone = served(dns_records.required_records(domain, settings, keys))
    # The sending host's address, which the MX (and so SPF's "mx") names.
    server = dns_server([*zone, Record(host, "A", "127.0.0.1")])
    h = await make_harness(settings)
    alice = tenant.address("alice")
    await h.deliver(await h.spool(message(sender=alice), alice, ["bob@remote.test"]))
    [received] = sink.handler.received
    results = await authenticate(
        received.content,
        client_ip="127.0.0.1",
        helo=host,
        mail_from=received.mail_from.strip("<>"),
        resolver=Resolver(server.servers, timeout=3),
    )
    header = authentication_results("mx.remote.test", results).decode()
    assert "spf=pass smtp.mailfrom=" + alice in header
    assert f"dkim=pass header.d={domain} header.a=rsa-sha256 header.s=r1" in header
    assert f"dkim=pass header.d={domain} header.a=ed25519-sha256 header.s=e1" in header
    assert "dmarc=pass" in header


async def test_mail_forwarded_by_an_alias_to_another_server_is_signed(
    tenant: Tenant,
    make_harness: Any,
    sink: Sink,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> None:
    settings = dkim_settings(sink, tmp_path)
    domain = tenant.domain.name
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    await store.add_alias(tenant.conn, tenant.address("team"), "bob@remote.test")
    h = await make_harness(settings)
    carol = tenant.address("carol")
    await h.deliver(await h.spool(message(sender=carol), carol, [tenant.address("team")]))
    [forwarded] = sink.handler.received
    assert forwarded.rcpt_tos == ["bob@remote.test"]
    [signature] = signatures(forwarded.content)
    assert (signature["d"], signature["s"]) == (domain, "e1")
    lookup = await published(tenant.conn, settings, domain, dns_server)
    assert dkim.verify(forwarded.content, dnsfunc=lookup)


@pytest.mark.peer
async def test_rspamd_verifies_what_we_sign(
    tenant: Tenant,
    make_harness: Any,
    sink: Sink,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> None:
    """A second, independent verifier: Debian's rspamd, resolving through the test DNS server."""
    settings = dkim_settings(sink, tmp_path)
    domain = tenant.domain.name
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="rsa", selector="r1")
    await dkim_admin.generate(tenant.conn, settings, domain, algorithm="ed25519", selector="e1")
    keys = await dkim_store.list_keys(tenant.conn, domain)
    server = dns_server(served(dns_records.required_records(domain, settings, keys)))
    h = await make_harness(settings)
    alice = tenant.address("alice")
    await h.deliver(await h.spool(message(sender=alice), alice, ["bob@remote.test"]))
    [received] = sink.handler.received
    with start_rspamd(tmp_path / "rspamd", dns=server.resolvers, enabled=("dkim",)) as rspamd:
        async with httpx.AsyncClient(timeout=30) as client:
            reply = await client.post(
                f"{rspamd.url}/checkv2",
                content=received.content,
                # rspamd skips DKIM for mail from local networks; the client address is only
                # a header here (TEST-NET-1, RFC 5737), never a connection.
                headers={"IP": "192.0.2.1", "From": alice, "Rcpt": "bob@remote.test"},
            )
    symbols = reply.json()["symbols"]
    assert "R_DKIM_ALLOW" in symbols, " ".join(sorted(symbols))
    assert not {"R_DKIM_REJECT", "R_DKIM_PERMFAIL", "R_DKIM_TEMPFAIL"} & set(symbols)
    assert symbols["DKIM_TRACE"]["options"] == [f"{domain}:+"]
