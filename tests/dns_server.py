"""A real authoritative DNS server for tests: Debian's dnsmasq serving test zones on loopback.

``start_dns_server`` writes the records into a dnsmasq configuration (each as a raw resource
record, so any type works: A, AAAA, MX, TXT, TLSA, ...), starts dnsmasq authoritative for the
zones on a free loopback port and stops it at exit. Names outside the zones are answered
REFUSED, which a stub resolver reports as a server failure (SPF's temperror); ``silent_port``
gives a port where nothing ever answers, for timeouts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype

# RFC 1035 §3.3.14: one character-string of a TXT record holds at most 255 octets.
TXT_CHUNK = 255


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record in zone-file presentation, except TXT: its plain text, unquoted."""

    name: str
    rdtype: str
    value: str


@dataclass(frozen=True, slots=True)
class DnsServer:
    """A running dnsmasq: where it listens and how to name it in ``POSTROOM_DNS_RESOLVERS``."""

    address: str
    port: int
    zones: tuple[str, ...]
    ttl: int

    @property
    def resolvers(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def servers(self) -> list[tuple[str, int]]:
        return [(self.address, self.port)]


def txt(name: str, text: str) -> Record:
    return Record(name, "TXT", text)


def _rr_line(record: Record) -> str:
    rdtype = dns.rdatatype.from_text(record.rdtype)
    if rdtype == dns.rdatatype.CNAME:
        return f"cname={record.name},{record.value.rstrip('.')}"
    if rdtype == dns.rdatatype.TXT:
        # dnsmasq reads lines of at most 1024 characters: TXT as text, not as hex.
        value = record.value
        if '"' in value or "\\" in value:
            raise ValueError(f"TXT value with a quote or backslash: {value!r}")
        chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
        return f"txt-record={record.name.rstrip('.')}," + ",".join(f'"{c}"' for c in chunks)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, record.value)
    return f"dns-rr={record.name.rstrip('.')},{int(rdtype)},{rdata.to_wire().hex()}"


def free_ports(count: int) -> list[int]:
    """``count`` different ports free for UDP and TCP on 127.0.0.1 (held until all are found)."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                continue
            held.append(tcp)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for the DNS server")


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback UDP port bound and never read: every question sent there times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextmanager
def start_dns_server(
    records: Iterable[Record],
    directory: Path,
    *,
    zones: Iterable[str] = ("test",),
    ttl: int = 300,
) -> Iterator[DnsServer]:
    """dnsmasq authoritative for ``zones`` (TTL and negative TTL ``ttl``) serving ``records``."""
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(binary).exists():
        raise RuntimeError("dnsmasq is not installed (Debian package dnsmasq-base)")
    zones = tuple(z.strip(".").lower() for z in zones)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = [
        f"port={port}",
        "listen-address=127.0.0.1",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "cache-size=0",
        # Authoritative on this address: answers carry AA, and negative ones the zone's SOA,
        # whose minimum is the negative TTL (RFC 2308 §5).
        "auth-server=ns.postroom-test,127.0.0.1",
        f"auth-ttl={ttl}",
        f"auth-soa=1,hostmaster.postroom-test,1200,180,1209600,{ttl}",
        *(f"auth-zone={zone}" for zone in zones),
        *(_rr_line(r) for r in records),
    ]
    conf = directory / f"dnsmasq-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = (directory / f"dnsmasq-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--keep-in-foreground",
            f"--conf-file={conf}",
            "--pid-file=",
            "--log-facility=-",
            # As root dnsmasq would switch to the user "nobody"; stay who we are.
            *(["--user=root"] if os.geteuid() == 0 else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(process, port, zones[0] if zones else "test", conf)
        yield DnsServer("127.0.0.1", port, zones, ttl)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], port: int, zone: str, conf: Path) -> None:
    query = dns.message.make_query(f"ready.{zone}", "TXT")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = conf.with_suffix(".log").read_text(errors="replace")
            raise RuntimeError(f"dnsmasq exited with {process.returncode}: {log}")
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
        except (TimeoutError, OSError, dns.exception.Timeout):
            continue
        return
    raise RuntimeError("dnsmasq did not answer within 10 s")


@contextmanager
def start_validating_resolver(upstream: DnsServer, secure: Iterable[str]) -> Iterator[DnsServer]:
    """A stand-in for a validating recursive resolver in front of ``upstream``: every
    question is passed on as it came, and the answer comes back with AD set (RFC 4035
    §3.2.3) when the name is under one of the ``secure`` zones (those the resolver would
    have validated) and cleared otherwise. Real DNS messages over UDP; only the validation
    verdict is modelled, since dnsmasq cannot sign a zone."""
    zones = [dns.name.from_text(zone) for zone in secure]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                query = dns.message.from_wire(data)
                answer = dns.query.udp(query, upstream.address, port=upstream.port, timeout=2)
            except (dns.exception.DNSException, OSError):
                continue  # no answer: the client times out, as with a resolver that failed
            name = query.question[0].name
            if any(name.is_subdomain(zone) for zone in zones):
                answer.flags |= dns.flags.AD
            else:
                answer.flags &= ~dns.flags.AD
            sock.sendto(answer.to_wire(), peer)

    thread = threading.Thread(target=serve, name="validating-resolver", daemon=True)
    thread.start()
    try:
        yield DnsServer("127.0.0.1", int(sock.getsockname()[1]), upstream.zones, upstream.ttl)
    finally:
        stop.set()
        thread.join()
        sock.close()
