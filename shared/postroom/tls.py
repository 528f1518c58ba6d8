"""TLS for every listener: the configured certificate, the ACME one, or a self-signed one
made once; a new certificate is presented to new connections without a restart."""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from pathlib import Path

import structlog

from postroom.config import Settings
from postroom.errors import ConfigError

log = structlog.get_logger("postroom.tls")


def certificate_paths(settings: Settings, *, quiet: bool = False) -> tuple[Path, Path]:
    """POSTROOM_TLS_CERT/KEY, else the ACME certificate in the data dir once there is one,
    else a self-signed pair in the data dir (made if missing). ``quiet``: no warning (a
    reload looks again every minute)."""
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ConfigError("set both POSTROOM_TLS_CERT and POSTROOM_TLS_KEY, or neither")
        for name, path in (("CERT", settings.tls_cert), ("KEY", settings.tls_key)):
            if not path.is_file():
                raise ConfigError(f"POSTROOM_TLS_{name}: {path} is not a readable file")
        return settings.tls_cert, settings.tls_key
    folder = settings.data_dir / "tls"
    if settings.acme_enabled:
        chain, chain_key = folder / "acme" / "chain.pem", folder / "acme" / "key.pem"
        if chain.is_file() and chain_key.is_file():
            return chain, chain_key
    cert, key = folder / "cert.pem", folder / "key.pem"
    if quiet:
        pass
    elif settings.acme_enabled:
        log.warning(
            "tls.self_signed",
            warning="no ACME certificate issued yet: using a self-signed one until "
            "`postroom acme renew` (or the worker's beat) obtains it",
            cert=str(cert),
        )
    else:
        # No certificate configured: say so loudly, since clients and MTA-STS senders refuse it.
        log.warning(
            "tls.self_signed",
            warning="NO TLS CERTIFICATE CONFIGURED: using a self-signed one that mail clients "
            "and verifying senders will refuse; set POSTROOM_ACME_DIRECTORY and "
            "POSTROOM_ACME_CONTACT, or POSTROOM_TLS_CERT and POSTROOM_TLS_KEY",
            cert=str(cert),
        )
    if not (cert.is_file() and key.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        # Several services start at once on one data dir: one of them makes the pair.
        with (folder / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (cert.is_file() and key.is_file()):
                make_self_signed(settings.hostname, cert, key)
    return cert, key


def make_self_signed(hostname: str, cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    tmp_key.replace(key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp_cert.replace(cert_path)


def load_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 and newer) presenting this certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert}: {exc}") from None
    return context


def server_context(settings: Settings) -> ssl.SSLContext:
    """A server-side TLS context with the certificate in force now (it never changes)."""
    return load_context(*certificate_paths(settings))


def _stamp(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    stats = [path.stat() for path in paths]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


class ServerTls:
    """The certificate every TLS listener of a process presents, replaced without a restart.

    Listeners get ``context``, which never changes; its SNI callback (called in every
    handshake, with or without SNI) hands the handshake to the context loaded last, so a
    new certificate applies to new connections while those open keep theirs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = certificate_paths(settings)
        self._stamp = _stamp(*self.paths)
        self.context = load_context(*self.paths)
        self.context.sni_callback = self._select
        self._current = self.context

    def _select(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, _name: str | None, context: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not context:
            ssl_object.context = current

    def reload(self) -> bool:
        """Load the certificate in force if it is another one, or its files changed since
        the last load; True when new connections get a new certificate from now on."""
        paths = certificate_paths(self.settings, quiet=True)
        try:
            stamp = _stamp(*paths)
            if paths == self.paths and stamp == self._stamp:
                return False
            context = load_context(*paths)
        except (OSError, ConfigError) as exc:
            log.warning("tls.reload_failed", cert=str(paths[0]), error=str(exc)[:300])
            return False
        self._current, self.paths, self._stamp = context, paths, stamp
        log.info("tls.reloaded", cert=str(paths[0]))
        return True


def describe(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """'TLSv1.3 TLS_AES_256_GCM_SHA384' for Received: headers and the trace, None without TLS."""
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    version = ssl_object.version() or "TLS"
    return f"{version} {cipher[0]}" if cipher else version
