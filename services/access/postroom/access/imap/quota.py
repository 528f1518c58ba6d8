"""The IMAP QUOTA extension (RFC 9208): one quota root per account, STORAGE and MESSAGE.

Every mailbox of an account shares the account's quota, so there is one quota root, named
"" as in the RFC's examples. It exists when the account has a limit; an account without
one has no quota root (GETQUOTAROOT names none, GETQUOTA "" is NO). SETQUOTA is for
administrators (``postroom user``, the admin API), so QUOTASET is not offered.
"""

from __future__ import annotations

from postroom.access.imap import wire
from postroom.store.types import Account

ROOT = ""
# RFC 9208 §3.1.1: every resource the server handles is advertised as QUOTA=RES-<name>.
CAPABILITIES = "QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"


def kibibytes(octets: int) -> int:
    """RFC 9208 §5.1: STORAGE counts in units of 1024 octets (also STATUS DELETED-STORAGE,
    §4.1.4); usage rounds up, so that a mailbox that holds anything never says 0."""
    return -(-octets // 1024)


def resources(account: Account) -> list[tuple[str, int, int]]:
    """(resource, usage, limit) for each resource the account has a limit on."""
    found: list[tuple[str, int, int]] = []
    if account.quota_bytes is not None:
        found.append(("STORAGE", kibibytes(account.used_bytes), account.quota_bytes // 1024))
    if account.quota_messages is not None:
        found.append(("MESSAGE", account.used_messages, account.quota_messages))
    return found


def has_root(account: Account, name: str) -> bool:
    return name == ROOT and bool(resources(account))


def quota_response(account: Account) -> bytes:
    """RFC 9208 §4.2.1: ``* QUOTA "" (STORAGE 10 512 MESSAGE 3 1000)``."""
    items = " ".join(f"{name} {usage} {limit}" for name, usage, limit in resources(account))
    return b"* QUOTA " + wire.quote(ROOT) + f" ({items})\r\n".encode()


def quotaroot_response(account: Account, mailbox: bytes) -> bytes:
    """RFC 9208 §4.2.2: ``* QUOTAROOT INBOX ""``, or no root for an account without limits.
    `mailbox` is the name as encoded for the session (`wire.encode_mailbox`)."""
    roots = b" " + wire.quote(ROOT) if resources(account) else b""
    return b"* QUOTAROOT " + mailbox + roots + b"\r\n"
