"""The relay host: all non-local mail through it, over verified TLS with AUTH; refused
credentials, missing TLS or an untrusted certificate defer the mail instead of leaking it."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from postroom.config import load_settings
from postroom.store import queue as queue_store
from tests.dns_server import DnsServer, Record
from tests.integration.delivery.harness import (
    Sink,
    SinkHandler,
    free_port,
    message,
    start_sink,
)

USER, PASSWORD = "relayuser", "s3cret-relay"


@dataclass
class Relay:
    handler: SinkHandler
    port: int
    ca_file: Path
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def start_relay(
    ca: trustme.CA, ca_file: Path, *, name: str = "127.0.0.1", implicit: bool = False, **kw: Any
) -> Iterator[Relay]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    handler = SinkHandler()
    relay = Relay(handler, free_port(), ca_file)

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = (data.login.decode(), data.password.decode()) == (USER, PASSWORD)
        relay.logins.append((data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)

    options: dict[str, Any] = {"ssl_context": context} if implicit else {"tls_context": context}
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=relay.port,
        authenticator=authenticator,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS when offering AUTH; with implicit TLS every
        # byte is encrypted anyway.
        auth_require_tls=not implicit,
        ready_timeout=10,
        **options,
        **kw,
    )
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


@pytest.fixture
def relay(ca: trustme.CA, ca_file: Path) -> Iterator[Relay]:
    yield from start_relay(ca, ca_file)


def relay_env(relay: Relay, **extra: str) -> dict[str, str]:
    return {
        "POSTROOM_HOSTNAME": "mx.postroom.test",
        "POSTROOM_RELAYHOST": f"[127.0.0.1]:{relay.port}",
        "POSTROOM_RELAYHOST_USERNAME": USER,
        "POSTROOM_RELAYHOST_PASSWORD": PASSWORD,
        "POSTROOM_RELAYHOST_CA_FILE": str(relay.ca_file),
        **extra,
    }


async def test_mail_for_every_remote_domain_goes_through_the_relay_with_auth_over_tls(
    make_harness: Any, relay: Relay
) -> None:
    h = await make_harness(load_settings(relay_env(relay)))
    spooled = await h.spool(message(), "a@example.test", ["x@one.test", "y@two.test"])
    await h.deliver(spooled)
    assert sorted(r for got in relay.handler.received for r in got.rcpt_tos) == [
        "x@one.test",
        "y@two.test",
    ]
    assert all(got.tls for got in relay.handler.received)
    assert relay.logins[0] == (USER, True)
    entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
    assert [d.state for d in entry.deliveries] == ["delivered", "delivered"]
    assert {a.host for a in entry.attempts} == {f"127.0.0.1:{relay.port}"}
    assert all(a.tls and a.tls.startswith("TLSv1.") for a in entry.attempts)


async def test_a_wrong_password_defers_and_sends_nothing(make_harness: Any, relay: Relay) -> None:
    env = relay_env(relay, POSTROOM_RELAYHOST_PASSWORD="wrong")
    h = await make_harness(load_settings(env))
    spooled = await h.spool(message(), "a@example.test", ["x@one.test"])
    await h.deliver(spooled)
    [delivery] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("4.7.8 the relay host refused our credentials: 535")
    assert relay.handler.received == []
    assert relay.logins == [(USER, False)]


async def test_without_credentials_the_relays_530_defers_instead_of_bouncing(
    make_harness: Any, relay: Relay
) -> None:
    env = relay_env(relay)
    del env["POSTROOM_RELAYHOST_USERNAME"], env["POSTROOM_RELAYHOST_PASSWORD"]
    h = await make_harness(load_settings(env))
    spooled = await h.spool(message(), "a@example.test", ["x@one.test"])
    await h.deliver(spooled)
    [delivery] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("530")
    assert relay.handler.received == []


async def test_the_password_can_come_from_a_file(
    make_harness: Any, relay: Relay, tmp_path: Path
) -> None:
    secret = tmp_path / "relay-password"
    secret.write_text(PASSWORD + "\n")
    env = relay_env(relay, POSTROOM_RELAYHOST_PASSWORD_FILE=str(secret))
    del env["POSTROOM_RELAYHOST_PASSWORD"]
    h = await make_harness(load_settings(env))
    await h.deliver(await h.spool(message(), "a@example.test", ["x@one.test"]))
    assert relay.logins == [(USER, True)]
    assert len(relay.handler.received) == 1


async def test_a_relay_without_starttls_gets_no_mail_and_no_password(make_harness: Any) -> None:
    for plain in start_sink("unused.test"):
        env = {
            "POSTROOM_RELAYHOST": f"[127.0.0.1]:{plain.port}",
            "POSTROOM_RELAYHOST_USERNAME": USER,
            "POSTROOM_RELAYHOST_PASSWORD": PASSWORD,
        }
        h = await make_harness(load_settings(env))
        spooled = await h.spool(message(), "a@example.test", ["x@one.test"])
        await h.deliver(spooled)
        [delivery] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
        assert delivery.state == "deferred"
        assert delivery.last_error == "4.7.10 the relay host offers no STARTTLS; TLS is required"
        assert plain.handler.received == []


async def test_an_untrusted_relay_certificate_defers(make_harness: Any, relay: Relay) -> None:
    env = relay_env(relay)
    del env["POSTROOM_RELAYHOST_CA_FILE"]
    h = await make_harness(load_settings(env))
    spooled = await h.spool(message(), "a@example.test", ["x@one.test"])
    await h.deliver(spooled)
    [delivery] = (await queue_store.get_queue_entry(h.conn, spooled.message.id)).deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error is not None
    assert "4.7.5 TLS with the relay host failed" in delivery.last_error
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert relay.logins == []


async def test_the_transport_map_still_wins_for_its_domains(
    make_harness: Any, relay: Relay, sink: Sink
) -> None:
    env = relay_env(relay, POSTROOM_TRANSPORT_MAP=f"remote.test=[127.0.0.1]:{sink.port}")
    h = await make_harness(load_settings(env))
    await h.deliver(await h.spool(message(), "a@example.test", ["bob@remote.test", "x@one.test"]))
    assert [r.rcpt_tos for r in sink.handler.received] == [["bob@remote.test"]]
    assert [r.rcpt_tos for r in relay.handler.received] == [["x@one.test"]]


async def test_implicit_tls_relay_named_in_dns_has_its_name_checked(
    make_harness: Any, ca: trustme.CA, ca_file: Path, dns_server: Callable[..., DnsServer]
) -> None:
    server = dns_server([Record("relay.test", "A", "127.0.0.1")])
    for relay in start_relay(ca, ca_file, name="relay.test", implicit=True):
        env = relay_env(
            relay,
            POSTROOM_RELAYHOST=f"[relay.test]:{relay.port}",
            POSTROOM_RELAYHOST_IMPLICIT_TLS="true",
            POSTROOM_DNS_RESOLVERS=server.resolvers,
        )
        h = await make_harness(load_settings(env))
        spooled = await h.spool(message(), "a@example.test", ["x@one.test"])
        await h.deliver(spooled)
        assert relay.logins == [(USER, True)]
        entry = await queue_store.get_queue_entry(h.conn, spooled.message.id)
        assert {a.host for a in entry.attempts} == {f"relay.test[127.0.0.1]:{relay.port}"}
