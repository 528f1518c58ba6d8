"""The relay host (Postfix's relayhost): required, verified TLS and SMTP AUTH before mail goes.

A relay host sees our users' mail and our credentials, so unlike a destination MX it gets no
opportunistic fallback: implicit TLS on port 465 (RFC 8314 §3.3), STARTTLS elsewhere, the
certificate checked against the host name, then AUTH (RFC 4954: PLAIN, or LOGIN where
PLAIN is not offered). Any failure defers the mail, as Postfix's smtp_sasl_auth_soft_bounce does:
a wrong password is ours to fix, not a reason to bounce the sender's message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from functools import lru_cache
from pathlib import Path

import aiosmtplib

from postroom.config import Settings
from postroom.delivery.retry import Result
from postroom.errors import ConfigError

# RFC 8314 §3.3: submission over implicit TLS.
IMPLICIT_TLS_PORT = 465


class RelayRefused(Exception):
    """The relay host could not be used for this attempt; ``text`` is the deferral reason."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def credentials(settings: Settings) -> tuple[str, str] | None:
    """(username, password) from the settings or the password file; None: no AUTH."""
    if settings.relayhost_username is None:
        return None
    if settings.relayhost_password is not None:
        return settings.relayhost_username, settings.relayhost_password.get_secret_value()
    if settings.relayhost_password_file is not None:
        try:
            text = settings.relayhost_password_file.read_text()
        except OSError as exc:
            raise ConfigError(f"POSTROOM_RELAYHOST_PASSWORD_FILE: cannot read it: {exc}") from None
        return settings.relayhost_username, text.splitlines()[0] if text else ""
    raise ConfigError(
        "POSTROOM_RELAYHOST_USERNAME needs POSTROOM_RELAYHOST_PASSWORD or _PASSWORD_FILE"
    )


@lru_cache(maxsize=4)
def _context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificates verified and the host name checked, against the system's CAs and ours."""
    return _context(settings.relayhost_ca_file)


def implicit_tls(settings: Settings, port: int) -> bool:
    if settings.relayhost_implicit_tls is not None:
        return settings.relayhost_implicit_tls
    return port == IMPLICIT_TLS_PORT


def soften(results: dict[str, Result]) -> dict[str, Result]:
    """RFC 4954 §6: 530 (authentication required) from the relay host is our configuration's
    fault, not the message's: deferred, never bounced."""
    return {
        recipient: dataclasses.replace(result, kind="transient")
        if result.kind == "permanent" and result.code == 530
        else result
        for recipient, result in results.items()
    }


async def open_socket(address: str, port: int, seconds: float) -> socket.socket:
    """A TCP connection to ``address`` (resolved by us), for aiosmtplib to wrap in TLS."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (address, port)), seconds
        )
    except BaseException:
        sock.close()
        raise
    return sock


async def prepare(client: aiosmtplib.SMTP, server_name: str, settings: Settings) -> str | None:
    """After EHLO: STARTTLS (unless already TLS) and AUTH; the TLS version, or RelayRefused."""
    if client.transport is None or client.transport.get_extra_info("ssl_object") is None:
        if not client.supports_extension("starttls"):
            raise RelayRefused("4.7.10 the relay host offers no STARTTLS; TLS is required")
        try:
            await client.starttls(
                server_hostname=server_name, tls_context=tls_context(settings), validate_certs=True
            )
            await client.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError, TimeoutError) as exc:
            raise RelayRefused(f"4.7.5 TLS with the relay host failed: {exc}") from None
    ssl_object = client.transport.get_extra_info("ssl_object") if client.transport else None
    version = ssl_object.version() if ssl_object is not None else None
    login = credentials(settings)
    if login is not None:
        # One mechanism, PLAIN before LOGIN (RFC 4954 §4): credentials refused by one are
        # refused by the other, and each failure counts against us at the relay.
        methods = client.supported_auth_methods
        if "plain" in methods:
            authenticate = client.auth_plain
        elif "login" in methods:
            authenticate = client.auth_login
        else:
            raise RelayRefused("4.7.8 the relay host offers neither AUTH PLAIN nor AUTH LOGIN")
        try:
            await authenticate(*login)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise RelayRefused(
                f"4.7.8 the relay host refused our credentials: {exc.code} {exc.message}"
            ) from None
        except aiosmtplib.SMTPException as exc:
            raise RelayRefused(f"4.7.8 AUTH with the relay host failed: {exc}") from None
    return version
