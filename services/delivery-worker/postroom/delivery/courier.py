"""One delivery run: claim the deliveries, deliver them locally or remotely, record outcomes.

Every step is idempotent or guarded by the lease, so a run that dies anywhere is simply
repeated by the next one: local appends carry a delivery key, outcomes and the DSNs they owe
are recorded in one transaction, and a delivery that is no longer pending records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from postroom import store
from postroom.config import Settings
from postroom.db import Conn
from postroom.delivery import bounce, dane, local, mta_sts, mx, remote, signing
from postroom.delivery.dsn import is_smtputf8
from postroom.delivery.limits import DestinationSlots
from postroom.delivery.metrics import FAILURES, HELD
from postroom.delivery.retry import Result, decide, internal_failure, permanent, transient
from postroom.dns import get_resolver
from postroom.store import queue as queue_store
from postroom.store import tls_reports as tls_report_store
from postroom.store.tls_reports import TlsResult
from postroom.store.types import ClaimedDelivery, DeliveryId, QueuedMessage, QueueId

log = structlog.get_logger("postroom.delivery")

Clock = Callable[[], datetime]
Dispatch = Callable[[Sequence[int]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def no_dispatch(ids: Sequence[int]) -> None:
    """For callers that run the queue themselves (tests, benchmarks)."""


def create_pool(url: str, *, max_size: int) -> AsyncConnectionPool[Any]:
    """Autocommit connections with dict rows, as the store expects (not yet opened)."""
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
        check=AsyncConnectionPool.check_connection,
    )


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Courier:
    """What a delivery run needs: settings, a connection pool, the clock and the dispatcher."""

    settings: Settings
    pool: AsyncConnectionPool[Any]
    clock: Clock = utc_now
    dispatch: Dispatch = no_dispatch
    slots: DestinationSlots = field(
        default_factory=lambda: DestinationSlots(None, limit=1, hold_seconds=1)
    )
    owner: str = field(default_factory=default_owner)
    next_hops: Callable[[str, Settings], Awaitable[list[mx.Hop]]] = mx.next_hops
    signer: signing.Signer = field(default_factory=signing.Signer)
    sts_policies: mta_sts.PolicyCache = field(default_factory=mta_sts.PolicyCache)

    async def deliver(self, ids: Sequence[int]) -> int:
        """Deliver these deliveries if they are still due; returns how many were attempted."""
        wanted = [DeliveryId(int(i)) for i in ids]
        if not wanted:
            return 0
        async with self.pool.connection() as conn:
            claimed = await queue_store.claim(
                conn,
                owner=self.owner,
                lease=self.settings.delivery_lease,
                now=self.clock(),
                ids=wanted,
                limit=len(wanted),
                max_failures=self.settings.max_internal_failures,
            )
        if not claimed:
            return 0
        renewal = asyncio.create_task(self._renew([c.delivery.id for c in claimed]))
        try:
            await self._run(claimed)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        return len(claimed)

    async def _renew(self, ids: list[DeliveryId]) -> None:
        """Renew the run's leases every third of a lease until cancelled, so they last while
        this worker lives and run out soon after it dies."""
        lease = self.settings.delivery_lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                async with self.pool.connection() as conn:
                    await queue_store.renew_lease(
                        conn, ids, owner=self.owner, until=self.clock() + lease
                    )
            except Exception:  # the database away: the attempt goes on, the lease may run out
                log.warning("delivery.lease.renew_failed", deliveries=len(ids), exc_info=True)

    async def _run(self, claimed: list[ClaimedDelivery]) -> None:
        async with self.pool.connection() as conn:
            to_dispatch: list[DeliveryId] = []
            remote_groups: dict[tuple[QueueId, str], list[ClaimedDelivery]] = {}
            for item in claimed:
                try:
                    resolution = await store.resolve(conn, item.delivery.recipient)
                except Exception as exc:  # one bad delivery must not stop the others
                    log.exception(
                        "delivery.resolve.error",
                        queue_id=item.message.id,
                        delivery_id=item.delivery.id,
                    )
                    FAILURES.labels("resolve").inc()
                    await self._record(conn, item, internal_failure(exc, "resolve"), self.clock())
                    continue
                if resolution is None:
                    domain = item.delivery.recipient.rpartition("@")[2].lower()
                    remote_groups.setdefault((item.message.id, domain), []).append(item)
                    continue
                to_dispatch += await self._deliver_local(conn, item, resolution)
        if remote_groups:
            await asyncio.gather(
                *(
                    self._deliver_remote(domain, group)
                    for (_, domain), group in remote_groups.items()
                )
            )
        async with self.pool.connection() as conn:
            owing = sorted({c.message.id for c in claimed})
            to_dispatch += await bounce.send_failure_dsns(
                conn, owing, settings=self.settings, now=self.clock()
            )
        if to_dispatch:
            await self.dispatch(to_dispatch)

    async def _deliver_local(
        self, conn: Conn, item: ClaimedDelivery, resolution: store.Resolution
    ) -> list[DeliveryId]:
        now = self.clock()
        try:
            async with conn.transaction():
                outcome = await local.deliver(
                    conn, item, resolution, now=now, settings=self.settings
                )
                await self._record(conn, item, outcome.result, now)
            return list(outcome.forwarded)
        except Exception as exc:  # one bad delivery must not stop the others
            log.exception(
                "delivery.local.error", queue_id=item.message.id, delivery_id=item.delivery.id
            )
            FAILURES.labels("local").inc()
            await self._record(conn, item, internal_failure(exc, "local delivery"), now)
            return []

    async def _deliver_remote(self, domain: str, group: list[ClaimedDelivery]) -> None:
        """One destination's attempt; whatever it raises becomes a deferral of its own
        recipients (counted as an internal failure), never an unrecorded claim."""
        deadline = self.settings.delivery_deadline.total_seconds()
        try:
            async with asyncio.timeout(deadline) as limit:
                results = await self._attempt_remote(domain, group)
        except TimeoutError:
            if not limit.expired():
                raise
            # A tarpit (or a very slow link): the attempt stops here and counts as one.
            log.warning(
                "delivery.remote.deadline", queue_id=group[0].message.id, destination=domain
            )
            results = dict.fromkeys(
                (c.delivery.recipient for c in group),
                transient(f"4.4.2 the attempt at {domain} took longer than {deadline:g} s"),
            )
        except Exception as exc:
            log.exception("delivery.remote.error", queue_id=group[0].message.id, destination=domain)
            FAILURES.labels("remote").inc()
            results = dict.fromkeys(
                (c.delivery.recipient for c in group), internal_failure(exc, "remote delivery")
            )
        if results is None:
            return
        async with self.pool.connection() as conn:
            now = self.clock()
            for item in group:
                async with conn.transaction():
                    await self._record(conn, item, results[item.delivery.recipient], now)

    async def _attempt_remote(
        self, domain: str, group: list[ClaimedDelivery]
    ) -> dict[str, Result] | None:
        """The results per recipient, or None when the leases were given back (busy)."""
        message = group[0].message
        recipients = [c.delivery.recipient for c in group]
        results: dict[str, Result]
        try:
            hops = await self.next_hops(domain, self.settings)
        except mx.DestinationError as exc:
            result = permanent(exc.text) if exc.permanent else transient(exc.text)
            results = dict.fromkeys(recipients, result)
        else:
            async with self.slots.hold(domain) as got:
                if not got:
                    # Every connection to the destination is in use: leave the deliveries
                    # for a later sweep, without counting an attempt.
                    async with self.pool.connection() as conn:
                        await queue_store.release(
                            conn, [c.delivery.id for c in group], owner=self.owner
                        )
                    log.info("delivery.remote.busy", destination=domain, recipients=len(group))
                    return None
                async with self.pool.connection() as conn:
                    content = await queue_store.read_queued_message(conn, message.id)
                    content = await self.signer.sign(
                        conn, self.settings, content, message.reverse_path
                    )
                transaction = remote.Transaction(
                    message.reverse_path,
                    recipients,
                    content,
                    ret=message.dsn_ret,
                    envid=message.env_id,
                    notify={c.delivery.recipient: c.delivery.notify for c in group},
                    orcpt={c.delivery.recipient: c.delivery.original_recipient for c in group},
                    smtputf8=is_smtputf8(message),
                )
                tlsa: dict[str, dane.HostTlsa] = {}
                if self.settings.dane:
                    tlsa = await dane.lookup(hops, get_resolver(self.settings))
                policy = None
                # RFC 8461 §2: where DANE applies, the MTA-STS policy is not needed.
                if not tlsa and mta_sts.applies(domain, self.settings):
                    policy = await self.sts_policies.policy_for(domain, self.settings)
                sessions: list[TlsResult] = []
                results = await remote.send(
                    hops,
                    transaction,
                    self.settings,
                    policy,
                    tlsa=tlsa,
                    domain=domain,
                    report=sessions if self.settings.tls_reports else None,
                )
                if sessions:
                    # RFC 8460: counted for the daily report (postroom.delivery.tls_reports).
                    async with self.pool.connection() as conn:
                        await tls_report_store.record(conn, self.clock().date(), sessions)
        return results

    async def _record(
        self, conn: Conn, item: ClaimedDelivery, result: Result, now: datetime
    ) -> None:
        """Record one attempt's outcome; a bounce owes its DSN in the same transaction."""
        delivery = item.delivery
        decision = decide(
            result,
            attempts=delivery.attempts,
            received_at=item.message.received_at,
            now=now,
            settings=self.settings,
        )
        async with conn.transaction():
            done = await queue_store.record_outcome(
                conn,
                delivery.id,
                decision.outcome,
                now=now,
                host=result.host,
                reply_code=result.code,
                reply_text=decision.text,
                next_attempt_at=decision.next_attempt_at,
                tls=result.tls,
                owner=self.owner,
                internal_failure=result.internal,
                max_failures=self.settings.max_internal_failures,
            )
            if done is None:
                # Finished by someone else, or our lease ran out and another worker may be
                # at it: its outcome counts, not ours.
                log.warning(
                    "delivery.outcome.ignored",
                    queue_id=item.message.id,
                    delivery_id=delivery.id,
                    outcome=decision.outcome,
                )
                return
            if done.state == "held":
                HELD.labels("attempt").inc()
                log.error(
                    "delivery.held",
                    queue_id=item.message.id,
                    delivery_id=delivery.id,
                    failures=done.failures,
                    error=done.last_failure,
                )
                return
            if decision.outcome == "bounced" or (
                decision.outcome == "delivered"
                and "SUCCESS" in (done.notify or "").upper()
                and not result.dsn_passed  # the next hop will report
            ):
                await queue_store.request_dsn(conn, [delivery.id])
        _log_outcome(
            item.message, delivery.id, delivery.recipient, decision.outcome, result, decision.text
        )


def _log_outcome(
    message: QueuedMessage,
    delivery_id: DeliveryId,
    recipient: str,
    outcome: str,
    result: Result,
    text: str | None,
) -> None:
    fields = {
        "queue_id": message.id,
        "delivery_id": delivery_id,
        "recipient": recipient,
        "host": result.host,
        "code": result.code,
        "reply": text,
    }
    if result.tls:
        fields["tls"] = result.tls
    if outcome == "delivered":
        log.info("delivery.delivered", **fields)
    else:
        log.info(f"delivery.{outcome}", **fields)
