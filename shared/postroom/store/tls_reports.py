"""TLS-RPT counts (RFC 8460): sessions per day, policy and outcome, until reported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from postroom.db import Conn


@dataclass(frozen=True, slots=True)
class TlsResult:
    """One session's outcome under a policy: ``result_type`` "success" or RFC 8460 §4.3."""

    policy_domain: str
    policy_type: str  # "sts" or "tlsa"
    policy_string: str  # the policy's lines (sts) or TLSA records (tlsa), one a line
    mx_host: str
    result_type: str


@dataclass(frozen=True, slots=True)
class TlsCount:
    result: TlsResult
    sessions: int


async def record(conn: Conn, day: date, results: Sequence[TlsResult]) -> None:
    for r in results:
        await conn.execute(
            """
            INSERT INTO tls_report_counts (day, policy_domain, policy_type, policy_string,
                                           mx_host, result_type, sessions)
            VALUES (%s, %s, %s, %s, %s, %s, 1)
            ON CONFLICT (day, policy_domain, policy_type, policy_string, mx_host, result_type)
            DO UPDATE SET sessions = tls_report_counts.sessions + 1
            """,
            (day, r.policy_domain, r.policy_type, r.policy_string, r.mx_host, r.result_type),
        )


async def unreported(conn: Conn, *, before: date) -> dict[tuple[date, str], list[TlsCount]]:
    """The counts of every day before ``before``, by (day, policy domain)."""
    cur = await conn.execute(
        """
        SELECT * FROM tls_report_counts WHERE day < %s
        ORDER BY day, policy_domain, policy_type, policy_string, mx_host, result_type
        """,
        (before,),
    )
    found: dict[tuple[date, str], list[TlsCount]] = {}
    for row in await cur.fetchall():
        result = TlsResult(
            row["policy_domain"],
            row["policy_type"],
            row["policy_string"],
            row["mx_host"],
            row["result_type"],
        )
        found.setdefault((row["day"], row["policy_domain"]), []).append(
            TlsCount(result, int(row["sessions"]))
        )
    return found


async def forget(conn: Conn, day: date, policy_domain: str) -> None:
    await conn.execute(
        "DELETE FROM tls_report_counts WHERE day = %s AND policy_domain = %s",
        (day, policy_domain),
    )
