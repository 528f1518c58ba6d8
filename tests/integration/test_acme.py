"""ACME end to end against pebble: the certificate is ordered with HTTP-01 answered by the
mailbox API, stored sealed in Postgres, presented by IMAPS and submission without a restart,
and a renewal replaces it for new connections."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.fernet import Fernet

from postroom import certificates, keyring, store
from postroom.access import listeners as access
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.db import Conn
from postroom.smtp_in.policy import Port
from postroom.smtp_in.server import ListenerSpec, start_server
from postroom.store import acme as acme_store
from tests.dns_server import DnsServer, Record, free_ports
from tests.integration.test_cli import cli
from tests.pebble_server import Pebble, start_pebble

HOST = "mail.example.test"
NAMES = [HOST, "mta-sts.example.test"]


@dataclass
class Stack:
    settings: Settings  # of the process that orders (the CLI or the worker)
    pebble: Pebble
    imaps: int
    submissions: int
    api: str
    dns: DnsServer


@asynccontextmanager
async def _api(settings: Settings, sock: socket.socket) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, pool_size=2),
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def stack(
    database_url: str,
    redis_url: str,
    conn: Conn,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
) -> AsyncIterator[Stack]:
    await conn.execute("TRUNCATE acme_certificates, acme_challenges, acme_accounts")
    dns = dns_server([Record(name, "A", "127.0.0.1") for name in NAMES])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    imap, imaps = free_ports(2)
    secret = Fernet.generate_key().decode()
    with start_pebble(tmp_path / "pebble", http_port=sock.getsockname()[1], dns=dns) as pebble:
        base = Settings(
            database_url=database_url,
            redis_url=redis_url,
            hostname=HOST,
            acme_directory=pebble.directory,
            acme_contact="postmaster@example.test",
            acme_names=NAMES,
            acme_ca_file=pebble.ca_file,
            key_encryption_key=secret,  # type: ignore[arg-type]
            tls_reload_interval=0.05,  # type: ignore[arg-type]
            imap_port=imap,
            imaps_port=imaps,
            bind_address="127.0.0.1",
        )

        def own(name: str) -> Settings:
            # Each process has its own data dir, as in the containers: the certificate
            # reaches the listeners through Postgres.
            return base.model_copy(update={"data_dir": tmp_path / name})

        stop = asyncio.Event()
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            access.serve(
                own("access"),
                stop,
                factories=[access.start_imap],
                started=lambda _l: started.set_result(None),
            )
        )
        await asyncio.wait_for(started, 30)
        smtp = await start_server(own("smtp"), [ListenerSpec(Port.SUBMISSIONS, 0)])
        try:
            async with _api(own("api"), sock) as api:
                yield Stack(own("worker"), pebble, imaps, smtp.ports[Port.SUBMISSIONS], api, dns)
        finally:
            await smtp.stop(1)
            stop.set()
            await asyncio.wait_for(serving, 30)
            sock.close()


async def _presented(port: int, trust: str | None = None) -> x509.Certificate:
    """The certificate a new TLS connection to ``port`` is shown (verified when ``trust``)."""
    context = ssl.create_default_context(cadata=trust) if trust else ssl.create_default_context()
    if trust is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=HOST
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def _until_presented(port: int, serial: int, trust: str) -> x509.Certificate:
    """New connections show certificate ``serial`` once the listener has looked (it looks
    every 0.05 s here)."""
    for _ in range(400):
        seen = await _presented(port)
        if seen.serial_number == serial:
            return await _presented(port, trust)  # and it verifies up to pebble's root
        await asyncio.sleep(0.05)
    raise AssertionError(f"port {port} never presented certificate {serial:x}")


def _serial(chain_pem: str) -> int:
    return x509.load_pem_x509_certificate(chain_pem.encode()).serial_number


async def test_without_a_certificate_the_listeners_present_the_self_signed_one(
    stack: Stack,
) -> None:
    seen = await _presented(stack.imaps)
    assert seen.issuer == seen.subject


async def test_the_certificate_is_ordered_with_http_01_and_presented_by_imaps_and_submission(
    stack: Stack, conn: Conn
) -> None:
    outcome = await certificates.renew(conn, stack.settings)
    assert outcome.issued is not None
    assert outcome.reason == "no certificate yet"
    assert sorted(outcome.issued.names) == sorted(NAMES)
    intermediate = x509.load_pem_x509_certificate(stack.pebble.intermediate_pem().encode())
    root = stack.pebble.root_pem()
    serial = _serial(outcome.issued.chain_pem)
    for port in (stack.imaps, stack.submissions):
        seen = await _until_presented(port, serial, root)
        assert seen.issuer == intermediate.subject
        names = seen.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(NAMES)


async def test_the_answers_are_gone_once_the_order_is_done(stack: Stack, conn: Conn) -> None:
    await certificates.renew(conn, stack.settings)
    cur = await conn.execute("SELECT count(*) AS n FROM acme_challenges")
    assert await cur.fetchone() == {"n": 0}


async def test_the_keys_are_sealed_in_postgres_and_the_local_copy_is_private(
    stack: Stack, conn: Conn
) -> None:
    outcome = await certificates.renew(conn, stack.settings)
    assert outcome.issued is not None
    account = await acme_store.get_account(conn, stack.pebble.directory)
    assert account is not None
    for sealed in (outcome.issued.sealed_key, account.sealed_key):
        assert not sealed.startswith(b"-----BEGIN")
        assert keyring.unseal(stack.settings, sealed).startswith(b"-----BEGIN PRIVATE KEY-----")
    chain, key = certificates.local_paths(stack.settings)
    assert key.stat().st_mode & 0o777 == 0o600
    assert chain.read_text() == outcome.issued.chain_pem


async def test_a_valid_certificate_is_not_renewed_before_it_is_due(
    stack: Stack, conn: Conn
) -> None:
    await certificates.renew(conn, stack.settings)
    again = await certificates.renew(conn, stack.settings)
    assert again.issued is None
    assert again.reason.startswith("the certificate is valid until ")


async def test_a_renewal_is_presented_to_new_connections(stack: Stack, conn: Conn) -> None:
    first = await certificates.renew(conn, stack.settings)
    assert first.issued is not None
    root = stack.pebble.root_pem()
    await _until_presented(stack.imaps, _serial(first.issued.chain_pem), root)
    # Due once the renewal window covers the whole validity.
    due = stack.settings.model_copy(
        update={"acme_renew_before": first.issued.not_after - first.issued.not_before}
    )
    second = await certificates.renew(conn, due)
    assert second.issued is not None
    assert second.reason.startswith("it expires at ")
    serial = _serial(second.issued.chain_pem)
    assert serial != _serial(first.issued.chain_pem)
    for port in (stack.imaps, stack.submissions):
        await _until_presented(port, serial, root)
    # The key is kept (a DANE 3 1 1 record stays true across renewals).
    assert second.issued.sealed_key != first.issued.sealed_key  # sealed afresh...
    old = await _public_key(stack, first.issued)
    assert old == await _public_key(stack, second.issued)  # ...but the same key


async def _public_key(stack: Stack, issued: acme_store.StoredCertificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    leaf = x509.load_pem_x509_certificate(issued.chain_pem.encode())
    return leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


async def test_the_api_answers_a_pending_challenge_and_nothing_else(
    stack: Stack, conn: Conn
) -> None:
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(minutes=5)
    await acme_store.put_challenge(conn, "tok-EN_1", "tok-EN_1.thumbprint", expires_at=later)
    async with httpx.AsyncClient(base_url=stack.api) as client:
        known = await client.get("/.well-known/acme-challenge/tok-EN_1")
        unknown = await client.get("/.well-known/acme-challenge/other")
        bad = await client.get("/.well-known/acme-challenge/a.b")
    assert (known.status_code, known.text) == (200, "tok-EN_1.thumbprint")
    assert unknown.status_code == 404
    assert bad.status_code == 404


def _cli_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    settings = stack.settings
    assert settings.key_encryption_key is not None
    return {
        "POSTROOM_DATA_DIR": str(tmp_path / "cli"),
        "POSTROOM_HOSTNAME": HOST,
        "POSTROOM_ACME_DIRECTORY": stack.pebble.directory,
        "POSTROOM_ACME_CONTACT": "postmaster@example.test",
        "POSTROOM_ACME_NAMES": ",".join(NAMES),
        "POSTROOM_ACME_CA_FILE": str(stack.pebble.ca_file),
        "POSTROOM_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
    }


async def test_postroom_acme_renew_orders_and_status_reports(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    env = _cli_env(stack, tmp_path)
    renewed = await asyncio.to_thread(cli, "acme", "renew", database_url=database_url, env=env)
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.startswith("issued certificate ")
    assert renewed.stdout.rstrip().endswith("(no certificate yet)")
    again = await asyncio.to_thread(cli, "acme", "renew", database_url=database_url, env=env)
    assert again.stdout.startswith("not renewed: the certificate is valid until ")
    status = await asyncio.to_thread(cli, "acme", "status", database_url=database_url, env=env)
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(": ", 1) for line in status.stdout.splitlines())
    assert lines["acme"] == "on"
    assert lines["names"] == ", ".join(NAMES)
    assert lines["renewal"] == "not due"
    intermediate = x509.load_pem_x509_certificate(stack.pebble.intermediate_pem().encode())
    assert lines["issuer"] == intermediate.subject.rfc4514_string()


def test_postroom_acme_renew_without_acme_settings_says_what_to_set(
    database_url: str, tmp_path: Path
) -> None:
    result = cli(
        "acme", "renew", database_url=database_url, env={"POSTROOM_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 1
    assert result.stderr == (
        "postroom: error: set POSTROOM_ACME_DIRECTORY and POSTROOM_ACME_CONTACT to use ACME\n"
    )


async def test_default_names_without_an_address_are_left_out_of_the_order(
    stack: Stack, conn: Conn, dns_server: Callable[..., DnsServer]
) -> None:
    # The hostname and example.test's mta-sts. name resolve; its autoconfig. and
    # autodiscover. names are not published yet.
    if await store.get_domain(conn, "example.test") is None:
        await store.create_domain(conn, "example.test")
    settings = stack.settings.model_copy(
        update={"acme_names": [], "dns_resolvers": stack.dns.servers}
    )
    outcome = await certificates.renew(conn, settings)
    assert outcome.issued is not None
    assert sorted(outcome.issued.names) == sorted(NAMES)
