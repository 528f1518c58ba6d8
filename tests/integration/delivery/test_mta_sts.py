"""MTA-STS outbound (RFC 8461): the policy fetched over HTTPS from a server with a trustme
certificate, found through the test DNS server; enforce sends only to a named MX over
verified TLS, testing only reports (a log event and a metric), DANE goes first."""

from __future__ import annotations

import hashlib
import secrets
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import REGISTRY

from postroom.config import load_settings
from postroom.store import queue as queue_store
from postroom.store import tls_reports as tls_report_store
from tests.dns_server import DnsServer, Record, start_validating_resolver
from tests.integration.delivery.harness import Sink, message, start_sink


@dataclass
class PolicyServer:
    port: int
    body: str
    content_type: str = "text/plain"
    requests: int = 0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def domain() -> str:
    return f"sts{secrets.token_hex(4)}.test"


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def policy_text(mode: str, *mx: str) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), "max_age: 86400"]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def policy_server(ca: trustme.CA, domain: str) -> Iterator[PolicyServer]:
    """HTTPS at mta-sts.<domain> (a trustme certificate) serving the policy it is given."""
    state = PolicyServer(0, "")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if self.path != "/.well-known/mta-sts.txt":
                self.send_error(404)
                return
            body = state.body.encode()
            self.send_response(200)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(f"mta-sts.{domain}").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def mx_sink(ca: trustme.CA, name: str, domain: str) -> Iterator[Sink]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    yield from start_sink(domain, context)


@pytest.fixture
def zone(domain: str, dns_server: Callable[..., DnsServer]) -> Callable[..., DnsServer]:
    def make(*, sts: bool = True) -> DnsServer:
        records = [
            Record(domain, "MX", f"10 mx.{domain}."),
            Record(f"mx.{domain}", "A", "127.0.0.1"),
            Record(f"mta-sts.{domain}", "A", "127.0.0.1"),
        ]
        if sts:
            records.append(Record(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20261202"))
        return dns_server(records)

    return make


def sts_settings(
    domain: str, sink: Sink, dns: DnsServer, policy: PolicyServer, ca_file: Path
) -> Any:
    return load_settings(
        {
            "POSTROOM_HOSTNAME": "mx.postroom.test",
            # The domain's own MX records, on the sink's port instead of 25.
            "POSTROOM_TRANSPORT_MAP": f"{domain}={domain}:{sink.port}",
            "POSTROOM_DNS_RESOLVERS": dns.resolvers,
            "POSTROOM_OUTBOUND_CA_FILE": str(ca_file),
            "POSTROOM_MTA_STS_POLICY_PORT": str(policy.port),
        }
    )


async def deliver_one(make_harness: Any, settings: Any, domain: str) -> Any:
    h = await make_harness(settings)
    spooled = await h.spool(message(to=f"bob@{domain}"), "a@example.test", [f"bob@{domain}"])
    await h.deliver(spooled)
    return await queue_store.get_queue_entry(h.conn, spooled.message.id)


async def test_enforce_delivers_to_a_listed_mx_over_verified_tls(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("enforce", f"mx.{domain}")
    for sink in mx_sink(ca, f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]
        [attempt] = entry.attempts
        assert attempt.tls is not None
        assert attempt.tls.endswith(" MTA-STS")
        assert sink.handler.received[0].tls
    assert policy_server.requests == 1


async def test_enforce_defers_when_no_mx_is_in_the_policy(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("enforce", f"other.{domain}")
    for sink in mx_sink(ca, f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        [delivery] = entry.deliveries
        assert delivery.state == "deferred"
        assert delivery.last_error == (
            f"4.7.5 MTA-STS: no MX host is in the policy (mx: other.{domain})"
        )
        assert sink.handler.received == []


async def test_enforce_defers_when_the_mx_certificate_does_not_verify(
    make_harness: Any,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("enforce", f"mx.{domain}")
    for sink in mx_sink(trustme.CA(), f"mx.{domain}", domain):  # a CA nobody trusts
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        [delivery] = entry.deliveries
        assert delivery.state == "deferred"
        assert delivery.last_error is not None
        assert delivery.last_error.startswith(f"4.7.5 MTA-STS: TLS with mx.{domain} failed")
        assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
        assert sink.handler.received == []


async def test_testing_mode_only_reports_and_delivers(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("testing", f"other.{domain}")
    for sink in mx_sink(trustme.CA(), f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]
        [attempt] = entry.attempts
        assert attempt.tls is not None
        assert "MTA-STS" not in attempt.tls


async def test_without_a_policy_record_tls_stays_opportunistic(
    make_harness: Any,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("enforce", f"other.{domain}")
    for sink in mx_sink(trustme.CA(), f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness,
            sts_settings(domain, sink, zone(sts=False), policy_server, ca_file),
            domain,
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]
    assert policy_server.requests == 0


async def test_a_policy_not_served_as_text_plain_counts_as_none(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("enforce", f"other.{domain}")
    policy_server.content_type = "text/html"
    for sink in mx_sink(ca, f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]


def reported(kind: str) -> float:
    sample = REGISTRY.get_sample_value(
        "postroom_delivery_mta_sts_testing_failures_total", {"kind": kind}
    )
    return sample or 0.0


async def test_testing_mode_reports_a_certificate_enforce_would_refuse(
    make_harness: Any,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    # RFC 8461 §5: "testing" checks as "enforce" would, reports, and delivers.
    policy_server.body = policy_text("testing", f"mx.{domain}")
    before = reported("certificate")
    for sink in mx_sink(trustme.CA(), f"mx.{domain}", domain):  # a CA nobody trusts
        with structlog.testing.capture_logs() as logs:
            entry = await deliver_one(
                make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
            )
        assert [d.state for d in entry.deliveries] == ["delivered"]
    assert reported("certificate") == before + 1
    [event] = [e for e in logs if e["event"] == "delivery.mta_sts.testing_failure"]
    assert event["kind"] == "certificate"


async def test_testing_mode_reports_an_mx_the_policy_does_not_name(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("testing", f"other.{domain}")
    before = reported("mx")
    for sink in mx_sink(ca, f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]
    assert reported("mx") == before + 1


async def test_testing_mode_reports_nothing_when_enforce_would_pass(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    policy_server.body = policy_text("testing", f"mx.{domain}")
    before = {kind: reported(kind) for kind in ("mx", "certificate", "starttls")}
    for sink in mx_sink(ca, f"mx.{domain}", domain):
        entry = await deliver_one(
            make_harness, sts_settings(domain, sink, zone(), policy_server, ca_file), domain
        )
        assert [d.state for d in entry.deliveries] == ["delivered"]
    assert {kind: reported(kind) for kind in before} == before


async def test_dane_takes_precedence_over_an_enforced_policy(
    make_harness: Any,
    ca: trustme.CA,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    dns_server: Callable[..., DnsServer],
) -> None:
    # RFC 8461 §2: with TLSA records for the MX, DANE decides; the policy (which names
    # another MX and would defer) is not applied.
    policy_server.body = policy_text("enforce", f"other.{domain}")
    leaf = ca.issue_cert(f"mx.{domain}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    key = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for sink in start_sink(domain, context):
        upstream = dns_server(
            [
                Record(domain, "MX", f"10 mx.{domain}."),
                Record(f"mx.{domain}", "A", "127.0.0.1"),
                Record(f"mta-sts.{domain}", "A", "127.0.0.1"),
                Record(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20261202"),
                Record(
                    f"_{sink.port}._tcp.mx.{domain}",
                    "TLSA",
                    f"3 1 1 {hashlib.sha256(spki).hexdigest()}",
                ),
            ]
        )
        with start_validating_resolver(upstream, [domain]) as resolver:
            entry = await deliver_one(
                make_harness, sts_settings(domain, sink, resolver, policy_server, ca_file), domain
            )
        assert [d.state for d in entry.deliveries] == ["delivered"]
        assert entry.attempts[0].tls.endswith(" DANE-EE")
    assert policy_server.requests == 0


async def test_testing_mode_failures_are_counted_for_the_tls_report(
    make_harness: Any,
    ca_file: Path,
    domain: str,
    policy_server: PolicyServer,
    zone: Callable[..., DnsServer],
) -> None:
    # RFC 8460 §4.3: what testing mode found goes into the domain's daily report.
    policy_server.body = policy_text("testing", f"mx.{domain}")
    for sink in mx_sink(trustme.CA(), f"mx.{domain}", domain):
        h = await make_harness(sts_settings(domain, sink, zone(), policy_server, ca_file))
        spooled = await h.spool(message(to=f"bob@{domain}"), "a@example.test", [f"bob@{domain}"])
        await h.deliver(spooled)
        tomorrow = h.clock().date() + timedelta(days=1)
        counts = await tls_report_store.unreported(h.conn, before=tomorrow)
    [count] = counts[(tomorrow - timedelta(days=1), domain)]
    assert (count.result.policy_type, count.result.mx_host, count.result.result_type) == (
        "sts",
        f"mx.{domain}",
        "certificate-not-trusted",
    )
    assert count.result.policy_string.split("\n")[1] == "mode: testing"
    assert count.sessions == 1
