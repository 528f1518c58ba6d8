"""Settings of every Postroom process: environment variables with the prefix ``POSTROOM_``."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from postroom import auth
from postroom.errors import ConfigError

Port = Annotated[int, Field(ge=1, le=65535)]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NextHop:
    """One entry of the transport map: where mail for a domain goes instead of its MX."""

    __slots__ = ("host", "mx_lookup", "port")

    def __init__(self, host: str, port: int, *, mx_lookup: bool) -> None:
        self.host = host
        self.port = port
        self.mx_lookup = mx_lookup

    def __repr__(self) -> str:
        host = self.host if self.mx_lookup else f"[{self.host}]"
        return f"{host}:{self.port}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NextHop) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def parse_transport_map(text: str) -> dict[str, NextHop]:
    """Parse ``domain=nexthop`` pairs separated by commas, Postfix transport_maps style.

    ``[host]:port`` means that host exactly (no MX lookup); ``host:port`` means look up
    the MX records of ``host``. The port defaults to 25.
    """
    result: dict[str, NextHop] = {}
    for raw_entry in text.replace("\n", ",").split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        domain, sep, hop = entry.partition("=")
        domain = domain.strip().lower().rstrip(".")
        hop = hop.strip()
        if not sep or not domain or not hop:
            raise ValueError(f"transport map entry {entry!r} is not of the form domain=host[:port]")
        port = 25
        if hop.startswith("["):
            host, close, rest = hop[1:].partition("]")
            if not close or not host:
                raise ValueError(f"transport map entry {entry!r}: unbalanced [ ]")
            mx_lookup = False
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"transport map entry {entry!r}: junk after ]")
                port = _parse_port(rest[1:], entry)
        else:
            mx_lookup = True
            host, colon, port_text = hop.rpartition(":")
            if not colon:
                host = hop
            else:
                port = _parse_port(port_text, entry)
        result[domain] = NextHop(host, port, mx_lookup=mx_lookup)
    return result


def parse_resolvers(text: str) -> list[tuple[str, int]]:
    """Parse ``host[:port]`` entries separated by commas; IPv6 as ``[::1]:53`` or bare ``::1``."""
    servers: list[tuple[str, int]] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        port = 53
        if entry.startswith("["):
            host, close, rest = entry[1:].partition("]")
            if not close:
                raise ValueError(f"resolver {entry!r}: unbalanced [ ]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"resolver {entry!r}: junk after ]")
                port = _parse_port(rest[1:], entry)
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            port = _parse_port(port_text, entry)
        else:
            host = entry
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"resolver {entry!r} is not an IP address") from None
        servers.append((host, port))
    return servers


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: bad port {text!r}")
    return int(text)


class Settings(BaseSettings):
    """All settings; each field is read from ``POSTROOM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="POSTROOM_", extra="ignore")

    hostname: str = Field(default_factory=socket.getfqdn, min_length=1)
    data_dir: Path = Path(".postroom")
    database_url: str | None = None
    redis_url: str | None = None
    # argon2id cost of password hashes, ``t=..,m=..,p=..`` (read by ``postroom.auth``, which
    # hashes where no Settings object is at hand; checked here at start-up).
    argon2_parameters: str = ""

    # Listeners (the contract's defaults; containers set the standard ports).
    bind_address: str = "0.0.0.0"  # noqa: S104 - a mail server listens on all interfaces
    smtp_port: Port = 2525
    submission_port: Port = 2587
    submissions_port: Port = 2465
    pop3_port: Port = 2110
    pop3s_port: Port = 2995
    imap_port: Port = 2143
    imaps_port: Port = 2993
    http_port: Port = 8080
    metrics_port: Port | None = None

    tls_cert: Path | None = None
    tls_key: Path | None = None
    # How often each TLS listener looks for a new certificate (a renewed ACME one, or a
    # changed POSTROOM_TLS_CERT file) and, when there is one, presents it to new connections.
    tls_reload_interval: timedelta = Field(default=timedelta(seconds=60))
    # ACME (RFC 8555): set the directory URL and a contact address to have certificates
    # issued and renewed (postroom.certificates). Names: the hostname and, for every local
    # domain, its mta-sts., autoconfig. and autodiscover. names, unless listed here.
    acme_directory: str | None = None
    acme_contact: str | None = None
    acme_names: Annotated[list[str], NoDecode] = Field(default_factory=list)
    acme_renew_before: timedelta = Field(default=timedelta(days=30))
    acme_check_interval: timedelta = Field(default=timedelta(hours=1))
    # CA certificates that verify the ACME server's HTTPS besides the system's (a private CA).
    acme_ca_file: Path | None = None
    allow_plaintext_auth: bool = False
    # Load balancers whose PROXY protocol header (SMTP, POP3, IMAP) or X-Forwarded-For (HTTP)
    # is believed: addresses or networks, comma-separated. Nobody else may claim an address.
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)

    # Limits.
    max_message_size: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(default=100, ge=1)
    # Octets of messages being received at once by one process (SMTP DATA, kept in files
    # under the data dir as they arrive); past it: 452 4.3.1.
    max_inflight_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)
    smtp_timeout: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=500, ge=1)
    max_connections_per_ip: int = Field(default=20, ge=1)
    # Every protocol: the whole time a client may take to log in (submission, POP3, IMAP),
    # and the slowest it may send a message or literal once it has begun (octets a second,
    # after the first 30 seconds), so that a drip cannot hold a connection for ever.
    login_deadline: float = Field(default=60.0, gt=0)
    min_data_rate: int = Field(default=1024, ge=1)
    # SIGTERM: idle sessions are closed at once, busy ones get this long to finish.
    shutdown_grace: float = Field(default=10.0, ge=0)
    # RFC 1939 §3: an autologout timer of at least 10 minutes.
    pop3_idle_timeout: float = Field(default=600.0, gt=0)
    # RFC 3501 §5.4: an IMAP autologout timer of at least 30 minutes (IDLE included).
    imap_idle_timeout: float = Field(default=1800.0, gt=0)
    imap_max_sessions_per_account: int = Field(default=20, ge=1)
    # Postgres connections of the access process; a POP3 session holds one while logged in
    # (its maildrop lock lives on it), so this also caps concurrent POP3 sessions.
    access_db_pool_size: int = Field(default=50, ge=2)
    # Longest a statement of a connection that serves users (smtp-in, IMAP, POP3, the API)
    # may run before Postgres cancels it: a costly SEARCH ends instead of running on after
    # its client has left. 0 turns it off.
    statement_timeout: timedelta = Field(default=timedelta(seconds=30))

    # Queue.
    retry_interval: timedelta = Field(default=timedelta(seconds=1800))
    retry_backoff: Annotated[list[timedelta], NoDecode] = Field(default_factory=list)
    max_queue_lifetime: timedelta = Field(default=timedelta(days=5))
    delay_warning: timedelta = Field(default=timedelta(hours=4))
    transport_map: Annotated[dict[str, NextHop], NoDecode] = Field(default_factory=dict)
    destination_concurrency: int = Field(default=20, ge=1)
    # Delivery worker: tasks run at once per process, how long a claimed delivery stays
    # leased without being renewed (a dead worker's deliveries are due again after it),
    # how often beat sweeps the queue,
    # and the outbound connect timeout (Postfix's smtp_connect_timeout).
    delivery_concurrency: int = Field(default=8, ge=1, le=256)
    delivery_lease: timedelta = Field(default=timedelta(seconds=30))
    # The longest one attempt at a destination may take, all commands together (a tarpit
    # next hop cannot hold a worker longer); the lease is renewed while the attempt runs.
    delivery_deadline: timedelta = Field(default=timedelta(minutes=10))
    sweep_interval: timedelta = Field(default=timedelta(seconds=5))
    smtp_connect_timeout: float = Field(default=30.0, gt=0)
    # Internal failures (exceptions, a worker lost while holding it) after which a delivery
    # is held for an administrator instead of being tried again.
    max_internal_failures: int = Field(default=5, ge=1)
    # Deliver to loopback, link-local and private addresses found in DNS (or address
    # literals); off, only a transport map entry or the relay host can point there.
    allow_internal_destinations: bool = False
    # Mail with more Received: fields than this is refused 554 5.4.6 (RFC 5321 §6.3: a loop).
    max_hops: int = Field(default=50, ge=1)
    # The DSN kinds (RFC 3461 NOTIFY) honoured for senders who did not authenticate; their
    # DSNs return headers only. See docs/delivery.md, "DSN policy".
    unauthenticated_notify: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["FAILURE"]
    )
    # Housekeeping (beat, and `postroom gc`): how often, and how long finished queue entries
    # (with their attempts log) and expunged UIDs are kept.
    housekeeping_interval: timedelta = Field(default=timedelta(hours=1))
    queue_retention: timedelta = Field(default=timedelta(days=30))
    expunged_retention: timedelta = Field(default=timedelta(days=30))

    # DNS: the servers every lookup goes to (empty: the system's, /etc/resolv.conf), the time
    # one question may take, and how many answers the cache keeps.
    dns_resolvers: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    dns_timeout: float = Field(default=5.0, gt=0, le=60)
    dns_cache_size: int = Field(default=10_000, ge=1)
    # Private keys kept in Postgres (DKIM) are sealed under this Fernet key; unset, a key
    # file made once in the data dir (postroom.keyring).
    key_encryption_key: SecretStr | None = None
    # SRS (postroom.srs): the secret of the envelope senders of forwarded mail; unset, a key
    # file made once in the data dir. A bounce address is honoured for srs_max_age_days.
    srs_secret: SecretStr | None = None
    srs_max_age_days: int = Field(default=21, ge=1, le=1000)
    # RFC 8461 §5: the MTA-STS policy published for the local domains; "testing" until the
    # certificate is one that senders can verify (ACME or your own), then "enforce".
    mta_sts_mode: str = Field(default="testing", pattern="^(enforce|testing|none)$")
    mta_sts_max_age: int = Field(default=604800, ge=86400, le=31557600)
    # Relay host (Postfix's relayhost): all mail for non-local domains goes there, except
    # domains in the transport map; TLS is required and the certificate verified (against
    # the system's CAs and POSTROOM_RELAYHOST_CA_FILE), then AUTH with these credentials.
    relayhost: Annotated[NextHop | None, NoDecode] = None
    relayhost_username: str | None = None
    relayhost_password: SecretStr | None = None
    relayhost_password_file: Path | None = None
    relayhost_ca_file: Path | None = None
    # Implicit TLS (RFC 8314) instead of STARTTLS; unset: on port 465.
    relayhost_implicit_tls: bool | None = None
    # Verified TLS outbound (MTA-STS): CA certificates trusted besides the system's, and the
    # port of the policy host (443 per RFC 8461 §3.3; another only for tests).
    outbound_ca_file: Path | None = None
    mta_sts_policy_port: Port = 443
    # DANE (RFC 7672) outbound: TLSA records of MX hosts found through DNSSEC-validated
    # answers (the AD bit) require TLS with a matching certificate. The resolvers must be
    # validating ones we trust (on this host, or over a trusted network).
    dane: bool = True
    # TLS-RPT (RFC 8460): count sessions to destinations with an MTA-STS policy or DANE, and
    # mail each policy domain a daily report at the mailto: of its _smtp._tls record.
    tls_reports: bool = True

    # Sieve (RFC 5228) filters: the ManageSieve listener (RFC 5804), limits on each account's
    # scripts and on what one run may do, and a site-wide script run before each user's.
    managesieve_port: Port = 4190
    sieve_max_script_size: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    sieve_max_scripts: int = Field(default=16, ge=1, le=1000)
    sieve_max_redirects: int = Field(default=4, ge=0, le=32)
    sieve_global_script: Path | None = None
    # A local mailbox over its quota: defer (4.2.2) until the queue lifetime ends, then
    # bounce (5.2.2); true bounces at once.
    over_quota_bounce: bool = False

    # Checks of received mail (smtp-in): sender authentication and the spam filter.
    sender_checks: bool = True
    dmarc_enforce: bool = True
    dkim_max_signatures: int = Field(default=5, ge=1, le=50)
    rspamd_url: str | None = None
    rspamd_controller_url: str | None = None
    rspamd_password: str | None = None
    rspamd_timeout: float = Field(default=10.0, gt=0, le=300)
    rspamd_on_failure: str = Field(default="accept", pattern="^(accept|defer)$")

    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator(
        "retry_interval",
        "max_queue_lifetime",
        "delay_warning",
        "delivery_lease",
        "delivery_deadline",
        "sweep_interval",
        "housekeeping_interval",
        "queue_retention",
        "expunged_retention",
        "statement_timeout",
        "tls_reload_interval",
        "acme_renew_before",
        "acme_check_interval",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        return _duration(value)

    @field_validator("retry_backoff", mode="before")
    @classmethod
    def _backoff(cls, value: object) -> object:
        if isinstance(value, str):
            return [_duration(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @field_validator("relayhost", mode="before")
    @classmethod
    def _relayhost(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return parse_transport_map(f"relayhost={value}")["relayhost"]
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a next hop: [host]:port, or host:port for its MX"
                ) from None
        return value

    @field_validator("unauthenticated_notify", mode="before")
    @classmethod
    def _notify(cls, value: object) -> object:
        if isinstance(value, str):
            words = [w.strip().upper() for w in value.split(",") if w.strip()]
            bad = [w for w in words if w not in ("SUCCESS", "FAILURE", "DELAY")]
            if bad:
                raise ValueError(f"{', '.join(bad)}: expected SUCCESS, FAILURE or DELAY")
            return words
        return value

    @field_validator("transport_map", mode="before")
    @classmethod
    def _transport_map(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_transport_map(value)
        return value

    @field_validator("argon2_parameters")
    @classmethod
    def _argon2_parameters(cls, value: str) -> str:
        auth.parameters(value)
        return value

    @field_validator("dns_resolvers", mode="before")
    @classmethod
    def _dns_resolvers(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_resolvers(value)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return [
                    ipaddress.ip_network(part.strip(), strict=False)
                    for part in value.split(",")
                    if part.strip()
                ]
            except ValueError as exc:
                raise ValueError(f"not an address or network: {exc}") from None
        return value

    @field_validator("acme_names", mode="before")
    @classmethod
    def _acme_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            names = [str(v).strip().rstrip(".").lower() for v in value]
            bad = [n for n in names if not _HOST_NAME.fullmatch(n)]
            if bad:
                raise ValueError(f"not a host name: {', '.join(bad)}")
            return names
        return value

    @field_validator("acme_contact")
    @classmethod
    def _acme_contact(cls, value: str | None) -> str | None:
        # RFC 8555 §7.3: the contact is a mailto: URL; an address alone is taken as one.
        if value is None or not value.strip():
            return None
        address = value.strip().removeprefix("mailto:")
        if "@" not in address or any(c.isspace() or c in "<>,;" for c in address):
            raise ValueError("must be an e-mail address such as postmaster@example.org")
        return address

    @field_validator("sieve_global_script")
    @classmethod
    def _sieve_global_script(cls, value: Path | None) -> Path | None:
        # A site-wide script that does not compile must stop the process at start, not every
        # delivery later.
        if value is None:
            return None
        from postroom.sieve import SieveSyntaxError, compile_script

        try:
            compile_script(value.read_text(), max_size=1024 * 1024)
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        except (SieveSyntaxError, UnicodeDecodeError) as exc:
            raise ValueError(f"{value}: {exc}") from None
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        value = value.strip().rstrip(".").lower()
        if not value or any(c.isspace() or c in "<>@[]" for c in value):
            raise ValueError("must be a host name such as mail.example.org")
        return value

    @property
    def acme_enabled(self) -> bool:
        """ACME issues the certificate: both POSTROOM_ACME_DIRECTORY and _CONTACT are set."""
        return bool(self.acme_directory and self.acme_contact)

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait before attempt ``attempts + 1``, after ``attempts`` failed attempts."""
        if self.retry_backoff:
            return self.retry_backoff[min(attempts, len(self.retry_backoff)) - 1]
        return self.retry_interval


_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """Accept seconds as a number, or a number with a unit: ``90``, ``30m``, ``4h``, ``5d``."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        number = text[:-1] if unit else text
        try:
            return timedelta(seconds=float(number) * (unit or 1))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a duration (seconds, or a number with s/m/h/d)"
            ) from None
    return value


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings, or raise ConfigError naming the bad variable."""
    saved = None
    if env is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "POSTROOM_" + "_".join(str(p) for p in error["loc"][:1]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
