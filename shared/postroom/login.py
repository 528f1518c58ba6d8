"""The one login path of every service: (identity, secret, client, service) → ok, wrong, throttled.

IMAP, POP3, SMTP AUTH, the web login (and ManageSieve) all call `LoginPath.login`, which

1. canonicalises the identity (`postroom.address.canonical_identity`: case, IDNA, trailing
   dot, surrounding ``<>``), so every spelling of an account is one account here and in the
   throttle;
2. asks the throttle (`postroom.throttle`) whether to refuse, or how long to wait, before it
   looks at the secret;
3. reads the account's login record in one short query and gives the database connection
   back *before* verifying: argon2id (64 MiB, about 150 ms of CPU) never holds a connection,
   and runs on a small thread pool of its own, so a login flood neither starves the pool nor
   grows memory past ``verify_threads`` × 64 MiB;
4. remembers a successful verification for ``cache_ttl`` seconds, keyed by an HMAC (a key of
   this process) of identity and secret together with the stored hash it matched: a client that
   reconnects often does not pay argon2 each time, and a changed password (a new hash) or a
   disabled account is seen at the next login.

The record's ``secrets`` are every hash a secret may match; an account's app passwords join
them there, and are checked by the same path.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postroom import auth, store
from postroom.address import canonical_identity
from postroom.db import Conn
from postroom.errors import StoreError
from postroom.store import app_passwords
from postroom.store.types import Account
from postroom.throttle import AuthThrottle

log = structlog.get_logger("postroom.login")

Outcome = Literal["ok", "wrong", "throttled", "unavailable"]
DB_ERRORS = (psycopg.Error, PoolTimeout, StoreError, OSError)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``ok`` (with the account), ``wrong`` (bad identity or secret, or a disabled account:
    the same answer, no oracle), ``throttled`` (refused unchecked; retry later) or
    ``unavailable`` (the store did not answer). ``app_password_id``: the app password that
    opened it (None: the account's password), so that revoking it ends this session."""

    outcome: Outcome
    account: Account | None = None
    app_password_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class _VerifiedCache:
    """Successful verifications, for a few minutes, by keyed hash. Memory is bounded."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def _digest(self, identity: str, secret: str) -> bytes:
        message = identity.encode() + b"\x00" + secret.encode("utf-8", "surrogatepass")
        return hmac.digest(self._key, message, "sha256")

    def matched(self, identity: str, secret: str, stored_hashes: tuple[str, ...]) -> str | None:
        """The stored hash this secret was found to match lately, if it is still stored."""
        digest = self._digest(identity, secret)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        matched, expires = entry
        if expires <= time.monotonic() or matched not in stored_hashes:
            del self._entries[digest]
            return None
        return matched

    def remember(self, identity: str, secret: str, matched: str) -> None:
        if self.ttl <= 0:
            return
        digest = self._digest(identity, secret)
        self._entries[digest] = (matched, time.monotonic() + self.ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class LoginPath:
    """The login path of one process, shared by every protocol it serves."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        throttle: AuthThrottle | None = None,
        *,
        cache_ttl: float = 300.0,
        cache_entries: int = 10_000,
        verify_threads: int | None = None,
        pool_timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.throttle = throttle or AuthThrottle()
        self.pool_timeout = pool_timeout
        self._cache = _VerifiedCache(cache_ttl, cache_entries)
        threads = verify_threads or max(1, min(4, os.cpu_count() or 1))
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="argon2")

    def forget(self) -> None:
        """Drop every remembered verification (a password changed in this process)."""
        self._cache.clear()

    async def login(
        self, identity: str, secret: str, *, client_ip: str | None, service: str
    ) -> LoginResult:
        """Check a login; the caller answers in its protocol's words."""
        canonical = canonical_identity(identity)
        bind = {"service": service, "client": client_ip}
        decision = await self.throttle.check(client_ip, canonical)
        if decision.blocked:
            log.warning("login.blocked", **bind)
            return LoginResult("throttled")
        if decision.delay:
            await asyncio.sleep(decision.delay)
        try:
            record = await self._record(canonical)
        except DB_ERRORS as exc:
            log.error("login.store_unavailable", error=str(exc).splitlines()[0][:200], **bind)
            return LoginResult("unavailable")
        # App passwords open IMAP, POP3 and SMTP, never the web, whose login may also ask
        # for a second factor.
        allowed = (
            None
            if record is None
            else ((record.password_hash,) if service == "web" else record.secrets)
        )
        matched = await self._verify(canonical, secret, record, allowed)
        if matched is None or record is None or record.account.disabled:
            self.throttle.failure(client_ip, canonical)
            # The identity is not logged: a mistyped one is often a password.
            log.info("login.failed", **bind)
            return LoginResult("wrong")
        self.throttle.success(client_ip, canonical)
        if auth.needs_rehash(matched) and matched == record.password_hash:
            await self._rehash(record, secret)
        app_password_id = None
        if matched != record.password_hash:
            await self._note_app_password(record, matched, client_ip)
            index = record.app_password_hashes.index(matched)
            app_password_id = record.app_password_ids[index]
        log.info("login.succeeded", account=record.account.address, **bind)
        return LoginResult("ok", record.account, app_password_id)

    async def _record(self, canonical: str | None) -> store.accounts.LoginRecord | None:
        if canonical is None:
            return None
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            return await store.login_record(conn, canonical)

    async def _verify(
        self,
        canonical: str | None,
        secret: str,
        record: store.accounts.LoginRecord | None,
        allowed: tuple[str, ...] | None = None,
    ) -> str | None:
        """The stored hash the secret matches, or None; argon2 off the event loop, with no
        database connection held. An unknown identity costs a verification too (timing)."""
        if record is None:
            await self._check(None, secret)
            return None
        assert canonical is not None
        hashes = record.secrets if allowed is None else allowed
        remembered = self._cache.matched(canonical, secret, hashes)
        if remembered is not None:
            return remembered
        for stored in hashes:
            if await self._check(stored, secret):
                self._cache.remember(canonical, secret, stored)
                return stored
        return None

    async def _check(self, stored: str | None, secret: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, auth.verify_password, stored, secret)

    async def _note_app_password(
        self, record: store.accounts.LoginRecord, matched: str, client_ip: str | None
    ) -> None:
        """The app password's "last used" (a failure to write it never fails the login)."""
        try:
            async with self.pool.connection(timeout=self.pool_timeout) as conn:
                if not conn.autocommit:
                    await conn.set_autocommit(True)
                await app_passwords.note_app_password_use(
                    conn, record.account.id, matched, now=datetime.now(UTC), client=client_ip
                )
        except DB_ERRORS as exc:
            log.warning("login.app_password_note_failed", error=str(exc)[:200])

    async def _rehash(self, record: store.accounts.LoginRecord, secret: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            new_hash = await loop.run_in_executor(self._executor, auth.hash_password, secret)
            async with self.pool.connection(timeout=self.pool_timeout) as conn:
                if not conn.autocommit:
                    await conn.set_autocommit(True)
                await store.replace_password_hash(
                    conn, record.account.id, record.password_hash, new_hash
                )
        except (*DB_ERRORS, ValueError) as exc:  # a stronger hash can wait for the next login
            log.warning("login.rehash_failed", error=str(exc)[:200])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
