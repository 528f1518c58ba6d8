"""Fixtures for smtp-in: servers on free loopback ports, a test CA, client TLS contexts."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from postroom.config import Settings, load_settings
from tests.integration.smtp_in.transcript import ServerThread

HOSTNAME = "mx.postroom.test"


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_files(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("smtp-tls")
    issued = test_ca.issue_cert("localhost", "127.0.0.1", HOSTNAME)
    cert, key = folder / "cert.pem", folder / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture(scope="session")
def client_tls(test_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def make_settings(
    database_url: str, redis_url: str, tls_files: tuple[Path, Path], tmp_path_factory: Any
) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        env = {
            "POSTROOM_DATABASE_URL": database_url,
            "POSTROOM_REDIS_URL": redis_url,
            "POSTROOM_HOSTNAME": HOSTNAME,
            "POSTROOM_BIND_ADDRESS": "127.0.0.1",
            "POSTROOM_DATA_DIR": str(tmp_path_factory.mktemp("smtp-data")),
            "POSTROOM_TLS_CERT": str(tls_files[0]),
            "POSTROOM_TLS_KEY": str(tls_files[1]),
            "POSTROOM_MAX_MESSAGE_SIZE": "65536",
            "POSTROOM_MAX_RECIPIENTS": "5",
            "POSTROOM_LOG_LEVEL": "WARNING",
            # The tests' DNS server on loopback (tests/conftest.py), never the machine's.
            "POSTROOM_DNS_RESOLVERS": os.environ["POSTROOM_DNS_RESOLVERS"],
        }
        env.update({f"POSTROOM_{k.upper()}": v for k, v in overrides.items()})
        return load_settings(env)

    return make


@pytest.fixture(scope="session")
def smtp(make_settings: Callable[..., Settings]) -> Iterator[ServerThread]:
    """One smtp-in for the whole run (tests use tenants of their own)."""
    server = ServerThread(make_settings()).start()
    yield server
    server.stop()


@pytest.fixture
def start_smtp(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., ServerThread]]:
    """Start a server with particular settings, stopped after the test."""
    started: list[ServerThread] = []

    def start(*, kwargs: dict[str, Any] | None = None, **overrides: str) -> ServerThread:
        server = ServerThread(make_settings(**overrides), **(kwargs or {})).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
