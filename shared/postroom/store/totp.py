"""Two-factor state of accounts: the sealed TOTP secret, the last time step used, failed
attempts, and one-time recovery codes (hashes only). The codes themselves are checked by
the caller (``postroom.api.two_factor``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from postroom.db import Conn
from postroom.store.types import AccountId


@dataclass(frozen=True, slots=True)
class TotpState:
    secret_sealed: bytes
    enabled: bool
    last_step: int
    failures: int
    failed_at: datetime | None


def code_hash(code: str) -> bytes:
    return hashlib.sha256("".join(code.split()).lower().encode()).digest()


async def get_totp(conn: Conn, account_id: AccountId) -> TotpState | None:
    cur = await conn.execute(
        """SELECT secret_sealed, enabled, last_step, failures, failed_at
           FROM account_totp WHERE account_id = %s""",
        (account_id,),
    )
    r = await cur.fetchone()
    if r is None:
        return None
    return TotpState(
        bytes(r["secret_sealed"]), r["enabled"], r["last_step"], r["failures"], r["failed_at"]
    )


async def start_totp(conn: Conn, account_id: AccountId, secret_sealed: bytes) -> None:
    """A new secret, not yet enabled (a pending setup is replaced; an enabled one is not)."""
    await conn.execute(
        """INSERT INTO account_totp (account_id, secret_sealed) VALUES (%s, %s)
           ON CONFLICT (account_id) DO UPDATE SET secret_sealed = excluded.secret_sealed,
               last_step = 0, failures = 0, failed_at = NULL
           WHERE NOT account_totp.enabled""",
        (account_id, secret_sealed),
    )


async def use_step(conn: Conn, account_id: AccountId, step: int, *, enable: bool) -> bool:
    """Record a code's time step as used (and enable two-factor login on the first one);
    False when that step or a later one was used already (a replayed code)."""
    cur = await conn.execute(
        """UPDATE account_totp SET last_step = %s, failures = 0, failed_at = NULL,
                  enabled = enabled OR %s
           WHERE account_id = %s AND last_step < %s RETURNING account_id""",
        (step, enable, account_id, step),
    )
    return await cur.fetchone() is not None


async def record_failure(conn: Conn, account_id: AccountId, *, now: datetime) -> None:
    await conn.execute(
        "UPDATE account_totp SET failures = failures + 1, failed_at = %s WHERE account_id = %s",
        (now, account_id),
    )


async def replace_recovery_codes(conn: Conn, account_id: AccountId, codes: list[str]) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM totp_recovery_codes WHERE account_id = %s", (account_id,))
        for code in codes:
            await conn.execute(
                "INSERT INTO totp_recovery_codes (account_id, code_hash) VALUES (%s, %s)",
                (account_id, code_hash(code)),
            )


async def use_recovery_code(conn: Conn, account_id: AccountId, code: str, *, now: datetime) -> bool:
    """Spend one recovery code; False when it is unknown or spent."""
    cur = await conn.execute(
        """UPDATE totp_recovery_codes SET used_at = %s
           WHERE account_id = %s AND code_hash = %s AND used_at IS NULL RETURNING account_id""",
        (now, account_id, code_hash(code)),
    )
    return await cur.fetchone() is not None


async def recovery_codes_left(conn: Conn, account_id: AccountId) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM totp_recovery_codes WHERE account_id = %s AND used_at IS NULL",
        (account_id,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def remove_totp(conn: Conn, account_id: AccountId) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM account_totp WHERE account_id = %s", (account_id,))
        await conn.execute("DELETE FROM totp_recovery_codes WHERE account_id = %s", (account_id,))
