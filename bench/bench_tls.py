"""TLS: server handshakes per second with a fixed context and with `ServerTls` after a
reload (the SNI callback hands each handshake to the new context), and DANE checks per
second of a server's chain (DANE-EE 3 1 1, DANE-TA 2 0 1 with the chain verified)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import tempfile
import time
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from postroom.config import load_settings
from postroom.delivery.dane import Tlsa, verify
from postroom.tls import ServerTls, load_context

try:
    from bench.common import table
except ModuleNotFoundError:  # run as a script from bench/
    from common import table  # type: ignore[no-redef]

HANDSHAKES = 300
CHECKS = 2000


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname="mx.bench.test")
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done: set[int] = set()
    while len(done) < 2:
        for n, side in enumerate((client, server)):
            try:
                side.do_handshake()
                done.add(n)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())


def _rate(action: object, count: int) -> str:
    start = time.perf_counter()
    for _ in range(count):
        action()  # type: ignore[operator]
    return f"{count / (time.perf_counter() - start):,.0f}"


def main() -> None:
    ca = trustme.CA()
    issuer = ca.create_child_ca()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "c.pem", Path(folder) / "k.pem"
        first = issuer.issue_cert("mx.bench.test")
        first.cert_chain_pems[0].write_to_path(str(cert))
        first.private_key_pem.write_to_path(str(key))
        for pem in first.cert_chain_pems[1:]:
            pem.write_to_path(str(cert), append=True)
        fixed = load_context(cert, key)
        settings = load_settings({"POSTROOM_TLS_CERT": str(cert), "POSTROOM_TLS_KEY": str(key)})
        reloading = ServerTls(settings)
        renewed = issuer.issue_cert("mx.bench.test")
        renewed.private_key_pem.write_to_path(str(key))
        renewed.cert_chain_pems[0].write_to_path(str(cert))
        for pem in renewed.cert_chain_pems[1:]:
            pem.write_to_path(str(cert), append=True)
        assert reloading.reload()
        rows: list[list[object]] = [
            [
                "handshake, fixed context",
                _rate(lambda: _handshake(fixed, client_context), HANDSHAKES),
            ],
            [
                "handshake, ServerTls after a reload",
                _rate(lambda: _handshake(reloading.context, client_context), HANDSHAKES),
            ],
        ]
    chain = [
        x509.load_pem_x509_certificate(p.bytes()).public_bytes(Encoding.DER)
        for p in renewed.cert_chain_pems
    ]
    leaf = x509.load_der_x509_certificate(chain[0])
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ee = [Tlsa(3, 1, 1, hashlib.sha256(spki).digest())]
    ta = [Tlsa(2, 0, 1, hashlib.sha256(chain[1]).digest())]
    now = dt.datetime.now(dt.UTC)
    names = ["mx.bench.test"]
    rows.append(["DANE-EE 3 1 1 check", _rate(lambda: verify(ee, chain, names, now=now), CHECKS)])
    rows.append(["DANE-TA 2 0 1 check", _rate(lambda: verify(ta, chain, names, now=now), CHECKS)])
    print(table("TLS (one process, memory BIOs)", ["what", "per second"], rows))


if __name__ == "__main__":
    main()
