"""The DKIM key operations of the CLI and the admin API: generate, rotate, list, remove."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from postroom import dkim, keyring
from postroom.config import Settings
from postroom.db import Conn
from postroom.dkim import Algorithm, DkimKey, KeyState
from postroom.errors import AlreadyExists, InvalidInput, NotFound
from postroom.store import dkim as dkim_store
from postroom.store import get_domain


async def generate(
    conn: Conn,
    settings: Settings,
    domain: str,
    *,
    algorithm: Algorithm = "rsa",
    selector: str | None = None,
    state: KeyState = "active",
) -> DkimKey:
    """A new key for ``domain``; without a selector the first free ``rsa202612``, ``…b``."""
    chosen = dkim.check_selector(selector) if selector is not None else None
    if await get_domain(conn, domain) is None:
        raise NotFound(f"domain {domain.lower()} does not exist")
    # An RSA key takes a while to find primes: not on the event loop.
    pair = await asyncio.to_thread(dkim.generate, algorithm)
    sealed = keyring.seal(settings, pair.private)
    if chosen is not None:
        return await dkim_store.add_key(
            conn,
            domain,
            selector=chosen,
            algorithm=algorithm,
            state=state,
            sealed_key=sealed,
            public_key=pair.public,
        )
    base = dkim.default_selector(algorithm, datetime.now(UTC))
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        try:
            return await dkim_store.add_key(
                conn,
                domain,
                selector=base + suffix,
                algorithm=algorithm,
                state=state,
                sealed_key=sealed,
                public_key=pair.public,
            )
        except AlreadyExists:
            continue
    raise InvalidInput(f"no free selector {base}…; give one with --selector")


async def rotate(
    conn: Conn, settings: Settings, domain: str
) -> tuple[Literal["pending", "active"], list[DkimKey]]:
    """Key rollover in two steps, so no message goes out signed by an unpublished key.

    First call: a pending key for each algorithm now signing (published by ``dns show``,
    not yet signing); returns ("pending", new keys). Once its record is in DNS, the second
    call makes the pending keys active and retires the old ones, which stay published until
    removed; returns ("active", keys now signing).
    """
    promoted = await dkim_store.promote_pending(conn, domain)
    if promoted:
        return "active", promoted
    current = [k for k in await dkim_store.list_keys(conn, domain) if k.state == "active"]
    if not current:
        raise InvalidInput(f"domain {domain} has no active DKIM key to rotate; generate one")
    made = [
        await generate(conn, settings, domain, algorithm=algorithm, state="pending")
        for algorithm in sorted({k.algorithm for k in current})
    ]
    return "pending", made
