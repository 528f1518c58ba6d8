"""ACME (RFC 8555) certificates: the account, orders validated by HTTP-01, renewal before
expiry, and the newest certificate put where this process's TLS listeners load it.

The protocol is certbot's ``acme`` library (the client Let's Encrypt itself maintains; it
signs the JWS requests, keeps the nonces and polls orders). It speaks with ``requests``, so
every exchange with the CA runs in a thread; what happens between them (storing the HTTP-01
answers that the mailbox API serves at /.well-known/acme-challenge/, storing the
certificate) is Postgres, on the event loop.

State lives in Postgres so that any process on any machine can use it: the account key and
each certificate's private key sealed like DKIM keys (postroom.keyring); the HTTP-01 answers
in plain (they are published anyway). Every TLS listener copies the newest certificate into
its data dir (mode 0600) and presents it to new connections (postroom.tls.ServerTls).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from psycopg_pool import AsyncConnectionPool

from postroom import keyring
from postroom.config import Settings
from postroom.db import Conn
from postroom.dns import DNSError, Resolver, get_resolver
from postroom.errors import ConfigError, PostroomError
from postroom.store import acme as acme_store
from postroom.store.accounts import list_domains
from postroom.store.acme import StoredCertificate

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

    from postroom.tls import ServerTls

log = structlog.get_logger("postroom.acme")

# An HTTP-01 answer is kept this long; an order is validated (or given up) well within it.
CHALLENGE_LIFETIME = dt.timedelta(hours=1)
# The longest the CA may take to validate and issue before this run gives up.
ORDER_DEADLINE = dt.timedelta(minutes=3)
NETWORK_TIMEOUT = 30
USER_AGENT = "postroom-acme"


class AcmeError(PostroomError):
    """The CA refused, or could not be reached; the certificate in force stays."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one renewal run did: ``issued`` a new certificate, or why it did not."""

    issued: StoredCertificate | None
    reason: str


def acme_dir(settings: Settings) -> Path:
    return settings.data_dir / "tls" / "acme"


def local_paths(settings: Settings) -> tuple[Path, Path]:
    """Where this process keeps the newest ACME certificate (chain, key)."""
    folder = acme_dir(settings)
    return folder / "chain.pem", folder / "key.pem"


async def wanted_names(conn: Conn, settings: Settings) -> list[str]:
    """POSTROOM_ACME_NAMES, or the hostname and each local domain's names that
    ``postroom dns show`` points at this host (mta-sts., autoconfig., autodiscover.)."""
    if settings.acme_names:
        return list(dict.fromkeys(settings.acme_names))
    names = [settings.hostname]
    for domain in await list_domains(conn):
        names += [f"{prefix}.{domain.name}" for prefix in ("mta-sts", "autoconfig", "autodiscover")]
    return list(dict.fromkeys(names))


async def resolvable(names: list[str], resolver: Resolver) -> tuple[list[str], list[str]]:
    """The names that have an address in DNS, and those that do not or whose lookup fails
    now (the CA could not reach them either, and one name it cannot validate fails the whole
    order, RFC 8555 §7.1.3; a name left out is ordered at the next check that finds it)."""
    found: list[str] = []
    missing: list[str] = []
    for name in names:
        try:
            addresses = await resolver.addresses(name)
        except DNSError:
            addresses = []
        (found if addresses else missing).append(name)
    return found, missing


def renewal_due(
    current: StoredCertificate | None,
    names: list[str],
    *,
    directory: str,
    now: dt.datetime,
    renew_before: dt.timedelta,
) -> str | None:
    """Why a new certificate is needed now, or None while the current one serves."""
    if current is None:
        return "no certificate yet"
    if current.directory != directory:
        return "the ACME directory changed"
    if set(current.names) != set(names):
        return "the names changed"
    if current.not_after - renew_before <= now:
        return f"it expires at {current.not_after.isoformat()}"
    return None


def _require(settings: Settings) -> tuple[str, str]:
    if not settings.acme_directory or not settings.acme_contact:
        raise ConfigError("ACME needs both POSTROOM_ACME_DIRECTORY and POSTROOM_ACME_CONTACT")
    return settings.acme_directory, settings.acme_contact


async def renew(
    conn: Conn,
    settings: Settings,
    *,
    force: bool = False,
    new_key: bool = False,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Outcome:
    """Order a certificate if none serves the wanted names or it expires within
    POSTROOM_ACME_RENEW_BEFORE (``force``: in any case). One process at a time orders;
    another finds the lock taken and leaves it to that one."""
    directory, _contact = _require(settings)
    if not await acme_store.try_issue_lock(conn):
        return Outcome(None, "another process is ordering a certificate")
    try:
        names = await wanted_names(conn, settings)
        if not settings.acme_names:
            # The default names of a domain whose records are not published yet are left
            # out until they are (the hostname always stays).
            others = [n for n in names if n != settings.hostname]
            found, missing = await resolvable(others, get_resolver(settings))
            names = [settings.hostname, *found]
            if missing:
                log.warning("acme.names_skipped", names=missing, why="no address in DNS")
        current = await acme_store.newest_certificate(conn)
        reason = renewal_due(
            current, names, directory=directory, now=now(), renew_before=settings.acme_renew_before
        )
        if reason is None and not force:
            assert current is not None
            return Outcome(None, f"the certificate is valid until {current.not_after.isoformat()}")
        reason = reason or "renewal asked for"
        log.info("acme.ordering", names=names, reason=reason)
        key_pem = None if new_key or current is None else _unseal_key(settings, current)
        issued = await _order(conn, settings, names, key_pem, now)
    finally:
        await acme_store.release_issue_lock(conn)
    log.info(
        "acme.issued",
        certificate_id=issued.id,
        names=list(issued.names),
        not_after=issued.not_after.isoformat(),
    )
    await install_newest(conn, settings)
    return Outcome(issued, reason)


def _unseal_key(settings: Settings, certificate: StoredCertificate) -> bytes:
    return keyring.unseal(settings, certificate.sealed_key)


def _new_certificate_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def _order(
    conn: Conn,
    settings: Settings,
    names: list[str],
    key_pem: bytes | None,
    now: Callable[[], dt.datetime],
) -> StoredCertificate:
    directory, contact = _require(settings)
    account = await acme_store.get_account(conn, directory)
    session = await asyncio.to_thread(_Session.open, settings, directory, contact, account)
    if account is None or account.uri != session.account_uri:
        # RFC 8555 §7.3: the account is made once per directory and its URL kept (kid).
        await acme_store.save_account(
            conn,
            acme_store.AcmeAccount(
                directory, session.account_uri, contact, keyring.seal(settings, session.key_pem)
            ),
        )
    if key_pem is None:
        key_pem = _new_certificate_key()
    order, answers = await asyncio.to_thread(session.new_order, key_pem, names)
    tokens = list(answers)
    try:
        # RFC 8555 §8.3: the answers must be served before the CA is told to look.
        for token, key_authorization in answers.items():
            await acme_store.put_challenge(
                conn, token, key_authorization, expires_at=now() + CHALLENGE_LIFETIME
            )
        chain_pem = await asyncio.to_thread(session.finish, order)
    finally:
        await acme_store.remove_challenges(conn, tokens, now=now())
    leaf = x509.load_pem_x509_certificate(chain_pem.encode())
    return await acme_store.add_certificate(
        conn,
        directory=directory,
        names=names,
        chain_pem=chain_pem,
        sealed_key=keyring.seal(settings, key_pem),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


class _Session:
    """One run's conversation with the CA (blocking: call its methods in a thread)."""

    def __init__(self, client: acme_client.ClientV2, key_pem: bytes, account_uri: str) -> None:
        self.client = client
        self.key_pem = key_pem
        self.account_uri = account_uri

    @classmethod
    def open(
        cls,
        settings: Settings,
        directory: str,
        contact: str,
        account: acme_store.AcmeAccount | None,
    ) -> _Session:
        from acme import client as acme_client
        from acme import errors, messages
        from josepy.jwa import RS256
        from josepy.jwk import JWKRSA

        if account is not None:
            key_pem = keyring.unseal(settings, account.sealed_key)
        else:
            key_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        private = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        verify: Any = str(settings.acme_ca_file) if settings.acme_ca_file else True
        net = acme_client.ClientNetwork(
            JWKRSA(key=private),
            alg=RS256,
            verify_ssl=verify,
            user_agent=USER_AGENT,
            timeout=NETWORK_TIMEOUT,
        )
        try:
            client = acme_client.ClientV2(acme_client.ClientV2.get_directory(directory, net), net)
            if account is not None:
                net.account = messages.RegistrationResource(
                    uri=account.uri, body=messages.Registration()
                )
                return cls(client, key_pem, account.uri)
            registration = messages.NewRegistration.from_data(
                email=contact, terms_of_service_agreed=True
            )
            try:
                regr = client.new_account(registration)
                uri = regr.uri
            except errors.ConflictError as exc:  # RFC 8555 §7.3.1: the key has an account
                uri = exc.location
                net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        except (errors.Error, OSError, ValueError) as exc:
            raise AcmeError(f"ACME account at {directory}: {exc}") from exc
        except Exception as exc:  # requests' and josepy's own errors
            raise AcmeError(f"ACME account at {directory}: {exc}") from exc
        return cls(client, key_pem, str(uri))

    def new_order(
        self, key_pem: bytes, names: list[str]
    ) -> tuple[messages.OrderResource, dict[str, str]]:
        """RFC 8555 §7.4: the order, and the HTTP-01 answer of each pending authorization."""
        from acme import challenges, crypto_util

        try:
            order = self.client.new_order(crypto_util.make_csr(key_pem, names))
        except Exception as exc:
            raise AcmeError(f"ACME order for {', '.join(names)}: {exc}") from exc
        answers: dict[str, str] = {}
        self._responses: list[tuple[Any, Any]] = []
        for authorization in order.authorizations:
            if authorization.body.status.name == "valid":
                continue  # §7.1.4: validated earlier (authorization reuse)
            for challenge in authorization.body.challenges:
                if isinstance(challenge.chall, challenges.HTTP01):
                    response, validation = challenge.response_and_validation(self.client.net.key)
                    answers[challenge.chall.encode("token")] = validation
                    self._responses.append((challenge, response))
                    break
            else:
                name = authorization.body.identifier.value
                raise AcmeError(f"the CA offers no HTTP-01 challenge for {name}")
        return order, answers

    def finish(self, order: messages.OrderResource) -> str:
        """§7.5.1: ask the CA to validate, then §7.4: finalize and download the chain."""
        try:
            for challenge, response in self._responses:
                self.client.answer_challenge(challenge, response)
            deadline = dt.datetime.now() + ORDER_DEADLINE  # the library compares naive times
            done = self.client.poll_and_finalize(order, deadline)
        except Exception as exc:
            raise AcmeError(f"ACME validation or issuance failed: {exc}") from exc
        if not done.fullchain_pem:
            raise AcmeError("the CA finalized the order without a certificate")
        return str(done.fullchain_pem)


# --- putting the newest certificate where the listeners load it ---------------------------


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _installed_id(settings: Settings) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((acme_dir(settings) / "id").read_text().strip())
    return None


def _write_files(settings: Settings, certificate: StoredCertificate) -> None:
    chain, key = local_paths(settings)
    # The key first: a listener that looks between the two renames finds the old chain with
    # the new key, fails to load that pair, and tries again at its next look.
    _write_private(key, keyring.unseal(settings, certificate.sealed_key))
    _write_private(chain, certificate.chain_pem.encode())
    _write_private(acme_dir(settings) / "id", f"{certificate.id}\n".encode())


async def install_newest(conn: Conn, settings: Settings) -> bool:
    """Copy the newest certificate into this process's data dir if it is not there yet;
    True when a new one was written."""
    newest_id = await acme_store.newest_certificate_id(conn)
    if newest_id is None or newest_id == _installed_id(settings):
        return False
    certificate = await acme_store.newest_certificate(conn)
    if certificate is None:
        return False
    await asyncio.to_thread(_write_files, settings, certificate)
    log.info("acme.installed", certificate_id=certificate.id, directory=str(acme_dir(settings)))
    return True


async def watch(
    server_tls: ServerTls,
    settings: Settings,
    pool: AsyncConnectionPool[Conn] | None,
    *,
    interval: float | None = None,
    looked: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run for ever: every POSTROOM_TLS_RELOAD_INTERVAL, fetch a newer ACME certificate (with
    ``pool``) and have the listeners present whatever certificate is now in force."""
    seconds = interval if interval is not None else settings.tls_reload_interval.total_seconds()
    while True:
        try:
            if pool is not None and settings.acme_enabled:
                async with pool.connection() as conn:
                    await install_newest(conn, settings)
            await asyncio.to_thread(server_tls.reload)
        except Exception as exc:  # a database hiccup: the certificate in force stays
            log.warning("tls.reload_failed", error=str(exc)[:300])
        if looked is not None:
            await looked()
        await asyncio.sleep(seconds)


def describe(certificate: StoredCertificate, *, now: dt.datetime) -> dict[str, str]:
    """What ``postroom acme status`` prints about a certificate."""
    leaf = x509.load_pem_x509_certificate(certificate.chain_pem.encode())
    days = (certificate.not_after - now).total_seconds() / 86400
    return {
        "id": str(certificate.id),
        "names": ", ".join(certificate.names),
        "issuer": leaf.issuer.rfc4514_string(),
        "serial": format(leaf.serial_number, "x"),
        "not_before": certificate.not_before.isoformat(),
        "not_after": certificate.not_after.isoformat(),
        "days_left": f"{days:.1f}",
        "directory": certificate.directory,
    }
