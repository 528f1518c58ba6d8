"""The DNS records a local domain needs to send and receive mail well, as zone-file lines."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from postroom.config import Settings
from postroom.dkim import DkimKey

RecordType = Literal["MX", "TXT", "SRV", "CNAME"]

# RFC 1035 §3.3.14: one character-string holds at most 255 octets; longer TXT data (an RSA
# key record) is split over several, which receivers join (RFC 6376 §3.6.2.2).
TXT_CHUNK = 255


@dataclass(frozen=True, slots=True)
class Record:
    """One record a domain should publish; ``purpose`` says what it is for (``dkim``…)."""

    purpose: str
    name: str
    type: RecordType
    value: str
    comment: str

    def zone_line(self) -> str:
        return f"{self.name}. 3600 IN {self.type} {zone_data(self.type, self.value)}"


def txt_strings(text: str) -> list[str]:
    return [text[i : i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)] or [""]


def zone_data(rtype: RecordType, value: str) -> str:
    if rtype != "TXT":
        return value
    quoted = [
        '"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in txt_strings(value)
    ]
    return quoted[0] if len(quoted) == 1 else "( " + " ".join(quoted) + " )"


def mta_sts_policy(settings: Settings) -> str:
    """RFC 8461 §3.2: the policy served at https://mta-sts.<domain>/.well-known/mta-sts.txt."""
    return (
        "version: STSv1\r\n"
        f"mode: {settings.mta_sts_mode}\r\n"
        f"mx: {settings.hostname}\r\n"
        f"max_age: {settings.mta_sts_max_age}\r\n"
    )


def mta_sts_id(settings: Settings) -> str:
    # RFC 8461 §3.1: id (1-32 alphanumerics) changes whenever the policy does: its digest.
    return hashlib.sha256(mta_sts_policy(settings).encode()).hexdigest()[:20]


def _srv(service: str, domain: str, port: int, host: str, comment: str) -> Record:
    return Record("srv", f"_{service}._tcp.{domain}", "SRV", f"0 1 {port} {host}.", comment)


def required_records(domain: str, settings: Settings, keys: Sequence[DkimKey]) -> list[Record]:
    host = settings.hostname
    records = [
        Record("mx", domain, "MX", f"10 {host}.", "mail for the domain comes here"),
        # RFC 7208: the hosts of the MX may send for the domain; -all fails every other.
        Record("spf", domain, "TXT", "v=spf1 mx -all", "SPF: who may send as the domain"),
    ]
    for key in keys:
        note = {
            "active": "signing",
            "pending": "publish now; signs after the next `postroom dkim rotate`",
            "retired": "no longer signing; keep until mail signed with it has arrived",
        }[key.state]
        records.append(
            Record(
                "dkim",
                key.record_name,
                "TXT",
                key.record,
                f"DKIM {key.algorithm} key {key.selector} ({note})",
            )
        )
    records += [
        # RFC 7489 §6.3: the policy receivers apply to mail failing SPF and DKIM alignment;
        # aggregate reports go to the postmaster (RFC 5321 §4.5.1: every domain has one).
        Record(
            "dmarc",
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
            "DMARC: what to do with mail that fails",
        ),
        # RFC 8461 §3.1: announces the policy; the policy host serves it over HTTPS.
        Record(
            "mta-sts",
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={mta_sts_id(settings)}",
            "MTA-STS: senders must use verified TLS to the MX",
        ),
        Record("mta-sts-host", f"mta-sts.{domain}", "CNAME", f"{host}.", "serves the policy"),
        # RFC 8460 §3: where senders report TLS failures.
        Record(
            "tls-rpt",
            f"_smtp._tls.{domain}",
            "TXT",
            f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
            "TLS-RPT: reports of TLS failures",
        ),
        # RFC 6186 §3 and RFC 8314 §5.1: how mail clients find the servers.
        _srv("submissions", domain, settings.submissions_port, host, "submission, implicit TLS"),
        _srv("submission", domain, settings.submission_port, host, "submission, STARTTLS"),
        _srv("imaps", domain, settings.imaps_port, host, "IMAP, implicit TLS"),
        _srv("imap", domain, settings.imap_port, host, "IMAP, STARTTLS"),
        _srv("pop3s", domain, settings.pop3s_port, host, "POP3, implicit TLS"),
        _srv("pop3", domain, settings.pop3_port, host, "POP3, STLS"),
        Record("autoconfig", f"autoconfig.{domain}", "CNAME", f"{host}.", "Thunderbird setup"),
        Record("autodiscover", f"autodiscover.{domain}", "CNAME", f"{host}.", "Outlook setup"),
    ]
    return records


def zone_text(domain: str, records: Sequence[Record]) -> str:
    lines = [f"; DNS records of {domain}"]
    for record in records:
        lines.append(f"; {record.comment}")
        lines.append(record.zone_line())
    return "\n".join(lines) + "\n"
