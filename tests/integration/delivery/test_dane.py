"""DANE outbound (RFC 7672): TLSA records served by the test DNS server, through a resolver
that sets AD for the zones it "validated"; a matching certificate is delivered to, a
mismatch defers, no TLSA or an insecure answer leaves TLS opportunistic."""

from __future__ import annotations

import email
import email.policy
import gzip
import hashlib
import json
import secrets
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import REGISTRY

from postroom.config import load_settings
from postroom.delivery import tls_reports
from postroom.store import queue as queue_store
from tests.dns_server import DnsServer, Record, start_validating_resolver
from tests.integration.delivery.harness import Sink, message, start_sink


@pytest.fixture
def domain() -> str:
    return f"dane{secrets.token_hex(4)}.test"


def spki_sha256(pem: bytes) -> str:
    certificate = x509.load_pem_x509_certificate(pem)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def sink_with(stack: ExitStack, leaf: trustme.LeafCert, domain: str) -> Sink:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)  # the leaf and its intermediates, as a server sends them
    return stack.enter_context(_sink(domain, context))


def _sink(domain: str, context: ssl.SSLContext) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def run() -> Iterator[Sink]:
        yield from start_sink(domain, context)

    return run()


def resolver_for(
    stack: ExitStack,
    dns_server: Callable[..., DnsServer],
    domain: str,
    sink: Sink,
    *,
    tlsa: list[str],
    secure: list[str],
) -> DnsServer:
    records = [
        Record(domain, "MX", f"10 mx.{domain}."),
        Record(f"mx.{domain}", "A", "127.0.0.1"),
        *(Record(f"_{sink.port}._tcp.mx.{domain}", "TLSA", value) for value in tlsa),
    ]
    upstream = dns_server(records)
    return stack.enter_context(start_validating_resolver(upstream, secure))


def dane_settings(domain: str, sink: Sink, resolver: DnsServer) -> Any:
    return load_settings(
        {
            "POSTROOM_HOSTNAME": "mx.postroom.test",
            # The domain's own MX records, on the sink's port instead of 25.
            "POSTROOM_TRANSPORT_MAP": f"{domain}={domain}:{sink.port}",
            "POSTROOM_DNS_RESOLVERS": resolver.resolvers,
        }
    )


async def deliver_one(make_harness: Any, settings: Any, domain: str) -> Any:
    h = await make_harness(settings)
    spooled = await h.spool(message(to=f"bob@{domain}"), "a@example.test", [f"bob@{domain}"])
    await h.deliver(spooled)
    return await queue_store.get_queue_entry(h.conn, spooled.message.id)


def dane_count(result: str) -> float:
    return REGISTRY.get_sample_value("postroom_delivery_dane_total", {"result": result}) or 0.0


async def test_a_dane_ee_record_matching_the_key_is_delivered_to_over_tls(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    leaf = trustme.CA().issue_cert(f"mx.{domain}")
    sink = sink_with(stack, leaf, domain)
    digest = spki_sha256(leaf.cert_chain_pems[0].bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"3 1 1 {digest}"], secure=[domain]
    )
    before = dane_count("matched")
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    [attempt] = entry.attempts
    assert attempt.tls is not None
    assert attempt.tls.endswith(" DANE-EE")
    assert sink.handler.received[0].tls
    assert dane_count("matched") == before + 1


async def test_a_dane_ta_record_matching_the_issuer_is_delivered_to(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    issuer = trustme.CA().create_child_ca()
    leaf = issuer.issue_cert(f"mx.{domain}")
    sink = sink_with(stack, leaf, domain)
    digest = cert_sha256(issuer.cert_pem.bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"2 0 1 {digest}"], secure=[domain]
    )
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    assert entry.attempts[0].tls.endswith(" DANE-TA")


async def test_a_certificate_matching_no_tlsa_record_defers_with_4_7_5(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    sink = sink_with(stack, trustme.CA().issue_cert(f"mx.{domain}"), domain)
    other = spki_sha256(trustme.CA().issue_cert(f"mx.{domain}").cert_chain_pems[0].bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"3 1 1 {other}"], secure=[domain]
    )
    before = dane_count("mismatch")
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    [delivery] = entry.deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error == (
        f"4.7.5 DANE: the certificate of mx.{domain}: no TLSA record (3 1 1) matches the"
        " certificate chain"
    )
    assert sink.handler.received == []
    assert dane_count("mismatch") == before + 1


async def test_a_dane_ta_record_for_a_certificate_of_another_name_defers(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    issuer = trustme.CA().create_child_ca()
    sink = sink_with(stack, issuer.issue_cert("elsewhere.test"), domain)
    digest = cert_sha256(issuer.cert_pem.bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"2 0 1 {digest}"], secure=[domain]
    )
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    [delivery] = entry.deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error.startswith("4.7.5 DANE: ")


async def test_without_tlsa_records_tls_stays_opportunistic(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    sink = sink_with(stack, trustme.CA().issue_cert("anything.test"), domain)
    resolver = resolver_for(stack, dns_server, domain, sink, tlsa=[], secure=[domain])
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    assert "DANE" not in entry.attempts[0].tls


async def test_tlsa_records_in_an_insecure_answer_are_ignored(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    sink = sink_with(stack, trustme.CA().issue_cert(f"mx.{domain}"), domain)
    other = spki_sha256(trustme.CA().issue_cert(f"mx.{domain}").cert_chain_pems[0].bytes())
    resolver = resolver_for(stack, dns_server, domain, sink, tlsa=[f"3 1 1 {other}"], secure=[])
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    assert "DANE" not in entry.attempts[0].tls


async def test_an_mx_host_from_an_insecure_mx_answer_gets_no_dane(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    # The host's own zone is signed, the domain's MX answer is not (RFC 7672 §2.2.1).
    sink = sink_with(stack, trustme.CA().issue_cert(f"mx.{domain}"), domain)
    other = spki_sha256(trustme.CA().issue_cert(f"mx.{domain}").cert_chain_pems[0].bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"3 1 1 {other}"], secure=[f"mx.{domain}"]
    )
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    assert "DANE" not in entry.attempts[0].tls


async def test_only_unusable_tlsa_records_still_require_tls(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    # RFC 7672 §3.1.3: PKIX-EE(1) is not for SMTP; §2.2: TLS, unauthenticated.
    sink = sink_with(stack, trustme.CA().issue_cert("anything.test"), domain)
    other = spki_sha256(trustme.CA().issue_cert(f"mx.{domain}").cert_chain_pems[0].bytes())
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"1 1 1 {other}"], secure=[domain]
    )
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    assert [d.state for d in entry.deliveries] == ["delivered"]
    assert entry.attempts[0].tls.endswith(" DANE-unusable")


async def test_a_tlsa_host_without_starttls_defers(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    sink = stack.enter_context(_plain_sink(domain))
    resolver = resolver_for(
        stack, dns_server, domain, sink, tlsa=[f"3 1 1 {'00' * 32}"], secure=[domain]
    )
    entry = await deliver_one(make_harness, dane_settings(domain, sink, resolver), domain)
    [delivery] = entry.deliveries
    assert delivery.state == "deferred"
    assert delivery.last_error == (
        f"4.7.5 DANE: mx.{domain} has TLSA records but offers no STARTTLS"
    )


def _plain_sink(domain: str) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def run() -> Iterator[Sink]:
        yield from start_sink(domain)

    return run()


async def test_sessions_are_counted_and_reported_to_the_rua_the_next_day(
    make_harness: Any, stack: ExitStack, dns_server: Callable[..., DnsServer], domain: str
) -> None:
    # RFC 8460: a DANE session that failed and one that succeeded, reported the next day.
    leaf = trustme.CA().issue_cert(f"mx.{domain}")
    sink = sink_with(stack, leaf, domain)
    good = spki_sha256(leaf.cert_chain_pems[0].bytes())
    records = [
        Record(domain, "MX", f"10 mx.{domain}."),
        Record(f"mx.{domain}", "A", "127.0.0.1"),
        Record(f"_{sink.port}._tcp.mx.{domain}", "TLSA", f"3 1 1 {'00' * 32}"),
        Record(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:tls@{domain}"),
    ]
    resolver = stack.enter_context(start_validating_resolver(dns_server(records), [domain]))
    h = await make_harness(dane_settings(domain, sink, resolver))
    spooled = await h.spool(message(to=f"bob@{domain}"), "a@example.test", [f"bob@{domain}"])
    await h.deliver(spooled)  # mismatch: deferred, counted as tlsa-invalid
    matching = [*records[:2], Record(f"_{sink.port}._tcp.mx.{domain}", "TLSA", f"3 1 1 {good}")]
    resolver2 = stack.enter_context(start_validating_resolver(dns_server(matching), [domain]))
    h2 = await make_harness(dane_settings(domain, sink, resolver2))
    again = await h2.spool(message(to=f"bob@{domain}"), "a@example.test", [f"bob@{domain}"])
    await h2.deliver(again)  # match: delivered, counted as success
    h2.clock.advance(timedelta(days=1))
    h3 = await make_harness(dane_settings(domain, sink, resolver))
    h3.clock.now = h2.clock.now
    queued = await tls_reports.send_reports(h3.courier)
    mine = []
    for queue_id in queued:
        entry = await queue_store.get_queue_entry(h3.conn, queue_id)
        if [d.recipient for d in entry.deliveries] == [f"tls@{domain}"]:
            mine.append(queue_id)
    [report_id] = mine
    raw = await queue_store.read_queued_message(h3.conn, report_id)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    [part] = [p for p in parsed.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    report = json.loads(gzip.decompress(payload))
    summaries = {
        p["policy"]["policy-string"][0]: (p["summary"], p.get("failure-details"))
        for p in report["policies"]
    }
    assert summaries == {
        f"3 1 1 {'00' * 32}": (
            {"total-successful-session-count": 0, "total-failure-session-count": 1},
            [
                {
                    "result-type": "tlsa-invalid",
                    "receiving-mx-hostname": f"mx.{domain}",
                    "failed-session-count": 1,
                }
            ],
        ),
        f"3 1 1 {good}": (
            {"total-successful-session-count": 1, "total-failure-session-count": 0},
            None,
        ),
    }
    # Reported once: the counts are gone.
    assert report_id not in await tls_reports.send_reports(h3.courier)
