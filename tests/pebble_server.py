"""A real ACME CA for tests: Debian's pebble (Let's Encrypt's test CA) on loopback.

``start_pebble`` writes pebble's own HTTPS certificate (from a trustme CA whose certificate
is ``ca_file``), a configuration whose HTTP-01 port is the one the mailbox API listens on,
and starts pebble with ``-dnsserver`` pointing at the test DNS server, so that it resolves
the names it validates to loopback. Validation is immediate (PEBBLE_VA_NOSLEEP) and no good
nonce is refused (PEBBLE_WFE_NONCEREJECT=0), so a test is quick and deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trustme

from tests.dns_server import DnsServer, free_ports


@dataclass(frozen=True, slots=True)
class Pebble:
    directory: str  # the ACME directory URL
    management: str  # https://…: /roots/0, /intermediates/0
    ca_file: Path  # verifies pebble's HTTPS (both ports)

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _get(self, path: str) -> str:
        reply = httpx.get(self.management + path, verify=self.trust(), timeout=10)
        reply.raise_for_status()
        return reply.text

    def root_pem(self) -> str:
        """The root CA pebble made at start (certificates chain up to it)."""
        return self._get("/roots/0")

    def intermediate_pem(self) -> str:
        """The intermediate CA that signs the certificates pebble issues."""
        return self._get("/intermediates/0")


@contextmanager
def start_pebble(directory: Path, *, http_port: int, dns: DnsServer) -> Iterator[Pebble]:
    binary = shutil.which("pebble") or "/usr/bin/pebble"
    if not Path(binary).exists():
        raise RuntimeError("pebble is not installed (Debian package pebble)")
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    served = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    served.cert_chain_pems[0].write_to_path(str(cert))
    served.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    acme_port, management_port, tls_port = free_ports(3)
    config = directory / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{management_port}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        # Every order validates afresh: a renewal answers HTTP-01 again.
        "PEBBLE_AUTHZREUSE": "0",
    }
    log = (directory / "pebble.log").open("wb")
    process = subprocess.Popen(
        [binary, "-config", str(config), "-dnsserver", dns.resolvers],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=directory,
    )
    pebble = Pebble(
        f"https://127.0.0.1:{acme_port}/dir", f"https://127.0.0.1:{management_port}", ca_file
    )
    try:
        _wait_ready(process, pebble, directory / "pebble.log")
        yield pebble
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], pebble: Pebble, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pebble exited with {process.returncode}: {log.read_text()}")
        try:
            httpx.get(pebble.directory, verify=pebble.trust(), timeout=1).raise_for_status()
            pebble.root_pem()
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        return
    raise RuntimeError(f"pebble did not answer within 20 s: {log.read_text()}")
