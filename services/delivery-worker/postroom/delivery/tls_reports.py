"""TLS-RPT (RFC 8460): the daily report of each policy domain's outbound TLS sessions, built
as §4 says and mailed (§5.3) to the mailto: addresses of its ``_smtp._tls`` TXT record.

The counts come from ``remote.send`` (a session under an MTA-STS policy or DANE TLSA
records: success, or the §4.3 result type of its failure), kept per day in Postgres
(``postroom.store.tls_reports``); beat runs `send_reports` once a day for the days before
today, and what was reported is removed.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import structlog

from postroom.delivery.courier import Courier
from postroom.dns import DNSError, Resolver, get_resolver
from postroom.store import queue as queue_store
from postroom.store import tls_reports as store
from postroom.store.tls_reports import TlsCount
from postroom.store.types import Arrival, QueueId

log = structlog.get_logger("postroom.delivery.tls_reports")

# RFC 8460 §3: the record's rua lists report destinations; more than a few is abuse.
MAX_RUA = 5


def report_addresses(texts: Sequence[bytes]) -> list[str]:
    """The mailto: addresses of the TLSRPT record among ``texts`` (§3: exactly one record
    starting "v=TLSRPTv1"; https: destinations are not used here)."""
    records = [t.decode("ascii", "replace") for t in texts]
    records = [r for r in records if r.replace(" ", "").startswith("v=TLSRPTv1;")]
    if len(records) != 1:
        return []
    addresses: list[str] = []
    for field in records[0].split(";")[1:]:
        name, _, value = field.strip().partition("=")
        if name.strip() != "rua":
            continue
        for uri in value.split(","):
            uri = uri.strip()
            if uri.lower().startswith("mailto:"):
                address = uri[len("mailto:") :].split("?", 1)[0]
                if "@" in address and address.isascii() and " " not in address:
                    addresses.append(address)
    return addresses[:MAX_RUA]


def build_report(
    policy_domain: str,
    day: date,
    counts: Sequence[TlsCount],
    *,
    organization: str,
    contact: str,
    report_id: str,
) -> dict[str, Any]:
    """RFC 8460 §4.4: the report of one day for one policy domain."""
    start = datetime.combine(day, time(0, 0), UTC)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    for count in counts:
        r = count.result
        entry = policies.setdefault(
            (r.policy_type, r.policy_string),
            {
                "policy": _policy(r.policy_type, r.policy_string, policy_domain),
                "summary": {
                    "total-successful-session-count": 0,
                    "total-failure-session-count": 0,
                },
                "failure-details": [],
            },
        )
        if r.result_type == "success":
            entry["summary"]["total-successful-session-count"] += count.sessions
            continue
        entry["summary"]["total-failure-session-count"] += count.sessions
        entry["failure-details"].append(
            {
                "result-type": r.result_type,
                "receiving-mx-hostname": r.mx_host,
                "failed-session-count": count.sessions,
            }
        )
    for entry in policies.values():
        if not entry["failure-details"]:
            del entry["failure-details"]
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end-datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": list(policies.values()),
    }


def _policy(policy_type: str, policy_string: str, policy_domain: str) -> dict[str, Any]:
    lines = [line for line in policy_string.split("\n") if line]
    policy: dict[str, Any] = {
        "policy-type": policy_type,
        "policy-string": lines,
        "policy-domain": policy_domain,
    }
    if policy_type == "sts":
        # §4.4: the MX patterns of an MTA-STS policy.
        policy["mx-host"] = [line[3:].strip() for line in lines if line.startswith("mx:")]
    return policy


def report_message(
    report: dict[str, Any], *, policy_domain: str, submitter: str, sender: str, to: list[str]
) -> bytes:
    """RFC 8460 §5.3: multipart/report (report-type "tlsrpt") with the gzipped JSON."""
    start = datetime.strptime(report["date-range"]["start-datetime"], "%Y-%m-%dT%H:%M:%SZ")
    end = datetime.strptime(report["date-range"]["end-datetime"], "%Y-%m-%dT%H:%M:%SZ")
    begin_ts = int(start.replace(tzinfo=UTC).timestamp())
    end_ts = int(end.replace(tzinfo=UTC).timestamp())
    report_id = report["report-id"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=submitter)
    message["Subject"] = (
        f"Report Domain: {policy_domain} Submitter: {submitter} Report-ID: <{report_id}>"
    )
    message["TLS-Report-Domain"] = policy_domain
    message["TLS-Report-Submitter"] = submitter
    message.set_content(
        f"TLS report (RFC 8460) for {policy_domain} from {submitter}, "
        f"{report['date-range']['start-datetime']} to {report['date-range']['end-datetime']}.\n"
    )
    body = gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)
    # §5.1: sender!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz
    filename = f"{submitter}!{policy_domain}!{begin_ts}!{end_ts}!{report_id}.json.gz"
    message.add_attachment(body, maintype="application", subtype="tlsrpt+gzip", filename=filename)
    message.set_type("multipart/report")
    message.set_param("report-type", "tlsrpt")
    return bytes(message)


async def _addresses(domain: str, resolver: Resolver) -> list[str]:
    try:
        return report_addresses(await resolver.txt(f"_smtp._tls.{domain}"))
    except DNSError as exc:
        log.info("tls_report.lookup_failed", domain=domain, error=str(exc))
        return []


async def send_reports(courier: Courier) -> list[QueueId]:
    """Report every day before today; the reports queued (days without an address are
    dropped: nobody asked for them)."""
    settings = courier.settings
    now = courier.clock()
    resolver = get_resolver(settings)
    sent: list[QueueId] = []
    async with courier.pool.connection() as conn:
        pending = await store.unreported(conn, before=now.date())
        for (day, domain), counts in pending.items():
            to = await _addresses(domain, resolver)
            async with conn.transaction():
                if to:
                    report = build_report(
                        domain,
                        day,
                        counts,
                        organization=settings.hostname,
                        contact=f"postmaster@{settings.hostname}",
                        report_id=f"{day.isoformat()}.{secrets.token_hex(8)}@{settings.hostname}",
                    )
                    raw = report_message(
                        report,
                        policy_domain=domain,
                        submitter=settings.hostname,
                        sender=f"postmaster@{settings.hostname}",
                        to=to,
                    )
                    spooled = await queue_store.spool(
                        conn,
                        raw,
                        reverse_path="",
                        recipients=to,
                        arrival=Arrival(source="local"),
                        now=now,
                    )
                    sent.append(spooled.message.id)
                    log.info("tls_report.queued", domain=domain, day=day.isoformat(), to=to)
                await store.forget(conn, day, domain)
    return sent
