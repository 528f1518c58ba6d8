"""One SMTP transaction to another mail server for all recipients of a message there.

The client side of RFC 5321: try the next hops in order until one greets with 220 (§5.1: a
connection failure or a 4xx greeting moves on to the next MX), EHLO with our host name,
opportunistic STARTTLS (RFC 3207) without certificate checks as Postfix's "may" level
(verified TLS where DANE, RFC 7672, or an MTA-STS policy in enforce mode says so),
SIZE (RFC 1870), 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531, never downgraded), DSN
requests passed on where the server offers DSN (RFC 3461 §6.2), then MAIL, one RCPT per
recipient and DATA, with a result for each recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib
import structlog
from aiosmtplib.errors import SMTPRecipientRefused

from postroom.config import Settings
from postroom.delivery import dane, mta_sts, relay
from postroom.delivery.metrics import DANE_RESULTS, MTA_STS_TESTING
from postroom.delivery.mx import Hop
from postroom.delivery.retry import Result, from_reply, permanent, transient
from postroom.store.tls_reports import TlsResult

log = structlog.get_logger("postroom.delivery.remote")


def has_8bit(content: bytes) -> bool:
    """Whether the content needs 8BITMIME to pass unchanged (RFC 6152 §3)."""
    return not content.isascii()


def opportunistic_tls() -> ssl.SSLContext:
    """STARTTLS that encrypts without authenticating the server: anything beats plaintext
    (RFC 7435), and an unverifiable certificate must not stop the mail."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, slots=True)
class Transaction:
    """One message for some recipients at one destination."""

    reverse_path: str
    recipients: Sequence[str]
    content: bytes
    # RFC 3461, passed on to a server that offers DSN: RET and ENVID of the message, NOTIFY
    # and ORCPT ("type;address") of each recipient.
    ret: str | None = None
    envid: str | None = None
    notify: Mapping[str, str | None] = field(default_factory=dict)
    orcpt: Mapping[str, str | None] = field(default_factory=dict)
    # The message came with SMTPUTF8 (RFC 6531): its header may hold UTF-8.
    smtputf8: bool = False


def needs_smtputf8(transaction: Transaction) -> bool:
    """RFC 6531 §3.4: a non-ASCII address in the envelope, or an internationalized header,
    can only go to a server that offers SMTPUTF8."""
    if not transaction.reverse_path.isascii():
        return True
    if any(not r.isascii() for r in transaction.recipients):
        return True
    if transaction.smtputf8:
        content = transaction.content
        end = content.find(b"\r\n\r\n")
        return not content[: end if end >= 0 else len(content)].isascii()
    return False


def xtext(text: str) -> str:
    """RFC 3461 §4: "+" and "=", controls, space and non-ASCII as "+XX" (of the UTF-8)."""
    return "".join(
        chr(b) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else f"+{b:02X}"
        for b in text.encode("utf-8")
    )


def dsn_mail_options(transaction: Transaction) -> list[str]:
    options = []
    if transaction.ret:
        options.append(f"RET={transaction.ret}")
    if transaction.envid:
        options.append(f"ENVID={xtext(transaction.envid)}")
    return options


def dsn_rcpt_options(transaction: Transaction, recipient: str) -> list[str]:
    options = []
    if notify := transaction.notify.get(recipient):
        options.append(f"NOTIFY={notify}")
    if orcpt := transaction.orcpt.get(recipient):
        addr_type, semicolon, address = orcpt.partition(";")
        if not semicolon:  # a bare address: RFC 822 type
            addr_type, address = "rfc822", orcpt
        options.append(f"ORCPT={addr_type};{xtext(address)}")
    return options


class _NextHop(Exception):
    """This hop failed before the transaction began; try the next one."""

    def __init__(self, result: Result, tlsrpt: str | None = None) -> None:
        super().__init__(result.text)
        self.result = result
        self.tlsrpt = tlsrpt  # the RFC 8460 §4.3 result type of a failed policy check


def _sts_string(policy: mta_sts.Policy) -> str:
    """RFC 8460 §4.4 policy-string of an MTA-STS policy: its lines."""
    lines = ["version: STSv1", f"mode: {policy.mode}", *(f"mx: {mx}" for mx in policy.mx)]
    return "\n".join([*lines, f"max_age: {policy.max_age}"])


def _tlsa_string(records: dane.HostTlsa) -> str:
    return "\n".join(f"{r.usage} {r.selector} {r.mtype} {r.data.hex()}" for r in records.records)


def _verify_failure(exc: BaseException) -> str:
    """The §4.3 result type of a failed verified handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH (62) and _CERT_HAS_EXPIRED (10).
        return {62: "certificate-host-mismatch", 10: "certificate-expired"}.get(
            exc.verify_code, "certificate-not-trusted"
        )
    return "validation-failure"


async def send(
    hops: Sequence[Hop],
    transaction: Transaction,
    settings: Settings,
    policy: mta_sts.Policy | None = None,
    tlsa: Mapping[str, dane.HostTlsa] | None = None,
    domain: str | None = None,
    report: list[TlsResult] | None = None,
) -> dict[str, Result]:
    """Deliver to the first hop that takes the transaction; a result for every recipient.

    An MX host with TLSA records (``tlsa``, by "name:port", from `dane.lookup`) gets
    STARTTLS and a certificate that matches them (RFC 7672 §2.2), or is not used; then the
    destination's MTA-STS policy is not applied (RFC 8461 §2: DANE takes precedence).
    Under an MTA-STS policy (RFC 8461 §5) in enforce mode only the MX hosts it names are
    tried, each with STARTTLS and a certificate valid for its name; in testing mode a host it
    does not name, or a certificate that would fail, is reported and mail goes as without a
    policy (§5: "testing" never refuses).

    ``report`` collects each session under a policy for TLS-RPT (RFC 8460): success, or the
    §4.3 result type of what failed.
    """

    def note(hop_name: str, policy_type: str, policy_string: str, result_type: str) -> None:
        if report is not None and domain:
            report.append(TlsResult(domain, policy_type, policy_string, hop_name, result_type))

    last = transient("4.4.1 no next hop to try")
    tlsa = tlsa or {}
    if tlsa and policy is not None and policy.mode != "none":
        log.info("delivery.dane.precedes_mta_sts", domain=domain, mode=policy.mode)
        policy = None
    enforce = policy is not None and policy.mode == "enforce"
    testing = policy if policy is not None and policy.mode == "testing" else None
    if policy is not None and policy.mode != "none":
        allowed = [hop for hop in hops if policy.allows(hop.name)]
        if len(allowed) < len(hops):
            if testing is not None:
                MTA_STS_TESTING.labels("mx").inc()
            for name in sorted({hop.name for hop in hops if hop not in allowed}):
                note(name, "sts", _sts_string(policy), "validation-failure")
            log.info(
                "delivery.mta_sts.mx_mismatch",
                mode=policy.mode,
                hosts=sorted({hop.name for hop in hops if hop not in allowed}),
            )
        if enforce:
            if not allowed:
                text = f"4.7.5 MTA-STS: no MX host is in the policy (mx: {', '.join(policy.mx)})"
                return dict.fromkeys(transaction.recipients, transient(text))
            hops = allowed
    for hop in hops:
        records = tlsa.get(f"{hop.name}:{hop.port}")
        under: tuple[str, str] | None = None  # the policy of this session, for TLS-RPT
        if records is not None:
            under = ("tlsa", _tlsa_string(records))
        elif policy is not None and policy.mode != "none":
            under = ("sts", _sts_string(policy))
        notes: list[str] = []
        try:
            if records is not None and records.failed:
                DANE_RESULTS.labels("lookup_failed").inc()
                raise _NextHop(
                    transient(f"4.7.5 DANE: {records.failed}", host=str(hop)), "dnssec-invalid"
                )
            names = [hop.name, *([domain] if domain else [])]
            results = await _send_to(
                hop,
                transaction,
                settings,
                tls=True,
                verified=enforce,
                tlsa=records,
                names=names,
                testing=testing is not None and testing.allows(hop.name),
                notes=notes,
            )
            if under is not None:
                for result_type in notes or ["success"]:
                    note(hop.name, *under, result_type)
            return results
        except _NextHop as exc:
            last = exc.result
            if under is not None and exc.tlsrpt is not None:
                note(hop.name, *under, exc.tlsrpt)
            log.info("delivery.remote.next_hop", hop=str(hop), error=exc.result.text)
    return dict.fromkeys(transaction.recipients, last)


async def _connect(hop: Hop, settings: Settings) -> aiosmtplib.SMTP:
    wrapped = hop.relay and relay.implicit_tls(settings, hop.port)
    try:
        if wrapped:
            # Implicit TLS to the relay host: connected to the address we resolved, the
            # certificate checked against its name.
            sock = await relay.open_socket(hop.address, hop.port, settings.smtp_connect_timeout)
            client = aiosmtplib.SMTP(
                hostname=hop.name,
                sock=sock,
                local_hostname=settings.hostname,
                timeout=settings.smtp_timeout,
                use_tls=True,
                tls_context=relay.tls_context(settings),
            )
        else:
            client = aiosmtplib.SMTP(
                hostname=hop.address,
                port=hop.port,
                local_hostname=settings.hostname,
                timeout=settings.smtp_timeout,
                start_tls=False,
                validate_certs=False,
            )
        await client.connect(timeout=settings.smtp_connect_timeout)
    except aiosmtplib.SMTPConnectResponseError as exc:
        # RFC 5321 §5.1 and §3.1: a 4xx (and, as Postfix does, a 5xx) greeting sends us on
        # to the next MX; the message is not at fault.
        raise _NextHop(transient(f"greeting: {exc.code} {exc.message}", host=str(hop))) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise _NextHop(transient(f"4.4.1 cannot connect: {exc}", host=str(hop))) from None
    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        try:
            await client.helo()  # RFC 5321 §3.2: fall back to HELO for an old server
        except aiosmtplib.SMTPException as exc:
            client.close()
            raise _NextHop(transient(f"4.4.2 HELO refused: {exc}", host=str(hop))) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        client.close()
        raise _NextHop(
            transient(f"4.4.2 lost the connection at EHLO: {exc}", host=str(hop))
        ) from None
    except asyncio.CancelledError:  # the attempt's deadline
        client.close()
        raise
    return client


async def _verified_starttls(client: aiosmtplib.SMTP, hop: Hop, settings: Settings) -> str:
    """RFC 8461 §4.2: STARTTLS with a certificate valid for the MX name, or not this MX."""
    host = str(hop)
    if not client.supports_extension("starttls"):
        raise _NextHop(
            transient(f"4.7.5 MTA-STS: {hop.name} offers no STARTTLS", host=host),
            "starttls-not-supported",
        )
    try:
        await client.starttls(
            server_hostname=hop.name,
            tls_context=mta_sts.verified_context(settings),
            validate_certs=True,
        )
        await client.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise _NextHop(
            transient(f"4.7.5 MTA-STS: TLS with {hop.name} failed: {exc}", host=host),
            _verify_failure(exc),
        ) from None
    ssl_object = client.transport.get_extra_info("ssl_object") if client.transport else None
    version = ssl_object.version() if ssl_object is not None else "TLS"
    return f"{version} MTA-STS"


async def _dane_starttls(
    client: aiosmtplib.SMTP, hop: Hop, records: dane.HostTlsa, names: Sequence[str]
) -> str:
    """RFC 7672 §2.2: TLS is required with a host that has TLSA records; with usable ones
    the certificate must match them (§3), else the host is not used (4.7.5, deferred)."""
    host = str(hop)
    if not client.supports_extension("starttls"):
        DANE_RESULTS.labels("no_starttls").inc()
        raise _NextHop(
            transient(f"4.7.5 DANE: {hop.name} has TLSA records but offers no STARTTLS", host=host),
            "starttls-not-supported",
        )
    try:
        # §8.1: SNI names the TLSA base domain, the MX host.
        await client.starttls(
            server_hostname=hop.name, tls_context=opportunistic_tls(), validate_certs=False
        )
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        DANE_RESULTS.labels("tls_failed").inc()
        raise _NextHop(
            transient(f"4.7.5 DANE: TLS with {hop.name} failed: {exc}", host=host),
            "validation-failure",
        ) from None
    ssl_object = client.transport.get_extra_info("ssl_object") if client.transport else None
    version = ssl_object.version() if ssl_object is not None else "TLS"
    usable = records.usable
    if not usable:
        # §2.2: TLSA records, none usable: TLS without authentication, but TLS.
        DANE_RESULTS.labels("unauthenticated").inc()
        how = "DANE-unusable"
    else:
        chain = dane.peer_chain(ssl_object) if ssl_object is not None else []
        verdict = dane.verify(usable, chain, names, now=datetime.now(UTC))
        if not verdict.matched:
            DANE_RESULTS.labels("mismatch").inc()
            log.warning("delivery.dane.mismatch", hop=host, why=verdict.how)
            # RFC 8460 §4.3.2: none of the TLSA records was found valid for the chain.
            raise _NextHop(
                transient(f"4.7.5 DANE: the certificate of {hop.name}: {verdict.how}", host=host),
                "tlsa-invalid",
            )
        DANE_RESULTS.labels("matched").inc()
        how = verdict.how
    await client.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
    return f"{version} {how}"


def _report_testing(
    hop: Hop, ssl_object: ssl.SSLObject | None, settings: Settings, notes: list[str]
) -> None:
    """RFC 8461 §5 "testing": check the certificate as enforce would, and only report."""
    chain = dane.peer_chain(ssl_object) if ssl_object is not None else []
    problem = mta_sts.certificate_problem(chain, hop.name, settings)
    if problem is not None:
        MTA_STS_TESTING.labels("certificate").inc()
        notes.append("certificate-not-trusted")
        log.info("delivery.mta_sts.testing_failure", hop=str(hop), kind="certificate", why=problem)


async def _send_to(
    hop: Hop,
    transaction: Transaction,
    settings: Settings,
    *,
    tls: bool,
    verified: bool = False,
    tlsa: dane.HostTlsa | None = None,
    names: Sequence[str] = (),
    testing: bool = False,
    notes: list[str] | None = None,
) -> dict[str, Result]:
    notes = notes if notes is not None else []
    host = str(hop)
    client = await _connect(hop, settings)
    tls_version: str | None = None
    try:
        if hop.relay:
            tls_version = await relay.prepare(client, hop.name, settings)
        elif tlsa is not None:
            tls_version = await _dane_starttls(client, hop, tlsa, names)
        elif verified:
            tls_version = await _verified_starttls(client, hop, settings)
        elif tls and client.supports_extension("starttls"):
            try:
                await client.starttls(tls_context=opportunistic_tls(), validate_certs=False)
                await client.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
                # Opportunistic TLS: a failed handshake falls back to plaintext, on a new
                # connection since the old one is in an unknown state.
                log.info("delivery.remote.starttls_failed", hop=host, error=str(exc))
                if testing:
                    MTA_STS_TESTING.labels("starttls").inc()
                    notes.append("validation-failure")
                client.close()
                return await _send_to(hop, transaction, settings, tls=False)
            ssl_object = client.transport.get_extra_info("ssl_object") if client.transport else None
            tls_version = ssl_object.version() if ssl_object is not None else None
            if testing:
                _report_testing(hop, ssl_object, settings, notes)
        elif testing:
            MTA_STS_TESTING.labels("starttls").inc()
            notes.append("starttls-not-supported")
            log.info("delivery.mta_sts.testing_failure", hop=host, kind="starttls")
        results = await _transaction(client, host, tls_version, transaction)
        return relay.soften(results) if hop.relay else results
    except relay.RelayRefused as exc:
        return dict.fromkeys(transaction.recipients, transient(exc.text, host=host))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        text = f"4.4.2 lost the connection: {exc}"
        return dict.fromkeys(transaction.recipients, transient(text, host=host))
    except asyncio.CancelledError:
        # The attempt's deadline: drop the connection, no QUIT (a tarpit would not answer).
        client.close()
        raise
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


async def _transaction(
    client: aiosmtplib.SMTP, host: str, tls: str | None, transaction: Transaction
) -> dict[str, Result]:
    content = transaction.content
    recipients = list(transaction.recipients)
    options: list[str] = []
    if client.supports_extension("size"):
        limit = client.esmtp_extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < len(content):
            # RFC 1870 §6.3: the server has told us; do not waste the transfer.
            text = f"5.3.4 message size {len(content)} exceeds the limit {limit} of {host}"
            return dict.fromkeys(recipients, permanent(text, host=host))
        options.append(f"SIZE={len(content)}")
    if has_8bit(content):
        if not client.supports_extension("8bitmime"):
            # RFC 6152 §3: 8-bit data needs the server's 8BITMIME; we do not downgrade.
            text = f"5.6.3 the message has 8-bit content and {host} does not offer 8BITMIME"
            return dict.fromkeys(recipients, permanent(text, host=host))
        options.append("BODY=8BITMIME")
    encoding = "ascii"
    if needs_smtputf8(transaction):
        if not client.supports_extension("smtputf8"):
            # RFC 6531 §3.4: no downgrade; the message cannot go this way.
            text = f"5.6.7 the message needs SMTPUTF8 (RFC 6531) and {host} does not offer it"
            return dict.fromkeys(recipients, permanent(text, host=host))
        options.append("SMTPUTF8")
        encoding = "utf-8"
    dsn = client.supports_extension("dsn")
    if dsn:
        options += dsn_mail_options(transaction)
    try:
        await client.mail(transaction.reverse_path, options=options, encoding=encoding)
    except aiosmtplib.SMTPResponseException as exc:
        result = from_reply(exc.code, exc.message, host, tls)
        return dict.fromkeys(recipients, result)
    results: dict[str, Result] = {}
    accepted: list[str] = []
    for recipient in recipients:
        try:
            await client.rcpt(
                recipient,
                options=dsn_rcpt_options(transaction, recipient) if dsn else None,
                encoding=encoding,
            )
        except SMTPRecipientRefused as exc:
            results[recipient] = from_reply(exc.code, exc.message, host, tls)
        else:
            accepted.append(recipient)
    if not accepted:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.rset()
        return results
    try:
        response = await client.data(content)
    except aiosmtplib.SMTPResponseException as exc:
        reply = from_reply(exc.code, exc.message, host, tls)
    else:
        reply = from_reply(response.code, response.message, host, tls)
    if dsn and reply.kind == "delivered":
        reply = dataclasses.replace(reply, dsn_passed=True)
    for recipient in accepted:
        results[recipient] = reply
    return results
