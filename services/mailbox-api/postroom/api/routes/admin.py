"""Administration (admin accounts only): domains, accounts, aliases and the queue.

The same store functions as the ``postroom`` command line, so both behave alike.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from postroom import queue as queue_contract
from postroom import store
from postroom.address import canonical_identity
from postroom.api import schemas
from postroom.api.convert import account_public, queue_entry_public
from postroom.api.deps import AdminDep, ConnDep, settings_of
from postroom.api.problems import Problem
from postroom.errors import NotFound
from postroom.store import queue
from postroom.store.accounts import KEEP
from postroom.store.types import DeliveryState, QueueId

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
MAX_ID = 2**63 - 1


def _queue_id(value: int) -> QueueId:
    if not 0 < value <= MAX_ID:
        raise Problem(404, f"queue entry {value} does not exist")
    return QueueId(value)


# --- domains ------------------------------------------------------------------------------


@router.get("/domains", response_model=list[schemas.DomainPublic])
async def list_domains(admin: AdminDep, conn: ConnDep) -> list[schemas.DomainPublic]:
    return [
        schemas.DomainPublic(id=d.id, name=d.name, created_at=d.created_at)
        for d in await store.list_domains(conn)
    ]


@router.post("/domains", response_model=schemas.DomainPublic, status_code=201)
async def create_domain(
    body: schemas.DomainCreate, admin: AdminDep, conn: ConnDep
) -> schemas.DomainPublic:
    domain = await store.create_domain(conn, body.name)
    return schemas.DomainPublic(id=domain.id, name=domain.name, created_at=domain.created_at)


@router.delete("/domains/{name}", status_code=204)
async def delete_domain(name: str, admin: AdminDep, conn: ConnDep) -> Response:
    """Remove a domain (refused while it has accounts)."""
    await store.delete_domain(conn, name)
    return Response(status_code=204)


# --- accounts -----------------------------------------------------------------------------


@router.get("/accounts", response_model=list[schemas.AccountPublic])
async def list_accounts(
    admin: AdminDep,
    conn: ConnDep,
    domain: Annotated[str | None, Query(max_length=255)] = None,
) -> list[schemas.AccountPublic]:
    if domain is not None and await store.get_domain(conn, domain) is None:
        raise NotFound(f"domain {domain} does not exist")
    return [account_public(a) for a in await store.list_accounts(conn, domain)]


@router.post("/accounts", response_model=schemas.AccountPublic, status_code=201)
async def create_account(
    body: schemas.AccountCreate, admin: AdminDep, conn: ConnDep
) -> schemas.AccountPublic:
    account = await store.create_account(
        conn,
        body.address,
        body.password,
        is_admin=body.is_admin,
        quota_bytes=body.quota_bytes,
        quota_messages=body.quota_messages,
    )
    return account_public(account)


@router.get("/accounts/{address}", response_model=schemas.AccountPublic)
async def get_account(address: str, admin: AdminDep, conn: ConnDep) -> schemas.AccountPublic:
    account = await store.get_account(conn, address)
    if account is None:
        raise NotFound(f"account {address} does not exist")
    return account_public(account)


@router.patch("/accounts/{address}", response_model=schemas.AccountPublic)
async def update_account(
    address: str, body: schemas.AccountUpdate, admin: AdminDep, conn: ConnDep
) -> schemas.AccountPublic:
    """Reset the password, set or clear the quota, disable or enable, grant or revoke admin,
    replace the send-as list.

    A password reset or disabling ends the account's sessions."""
    account = await store.get_account(conn, address)
    if account is None:
        raise NotFound(f"account {address} does not exist")
    if body.clear_quota and body.quota_bytes is not None:
        raise Problem(422, "give quota_bytes or clear_quota, not both")
    if body.clear_quota_messages and body.quota_messages is not None:
        raise Problem(422, "give quota_messages or clear_quota_messages, not both")
    # Checked before anything changes, so that a bad entry leaves the account as it was.
    send_as = None if body.send_as is None else [store.normalize_send_as(e) for e in body.send_as]
    if body.password is not None:
        await store.set_password(conn, account.address, body.password)
    if send_as is not None:
        await store.set_send_as(conn, account.address, send_as)
    given = body.clear_quota or body.quota_bytes is not None
    given_messages = body.clear_quota_messages or body.quota_messages is not None
    account = await store.update_account(
        conn,
        account.address,
        disabled=body.disabled,
        is_admin=body.is_admin,
        quota_bytes=body.quota_bytes if given else KEEP,
        quota_messages=body.quota_messages if given_messages else KEEP,
    )
    # The store ends the account's sessions everywhere on a new password or when disabled.
    return account_public(account)


@router.delete("/accounts/{address}", status_code=204)
async def delete_account(address: str, admin: AdminDep, conn: ConnDep) -> Response:
    """Remove an account with all its mail."""
    if canonical_identity(address) == admin.address:
        raise Problem(422, "you cannot delete the account you are logged in with")
    await store.delete_account(conn, address)
    return Response(status_code=204)


# --- aliases ------------------------------------------------------------------------------


@router.get("/aliases", response_model=list[schemas.AliasPublic])
async def list_aliases(
    admin: AdminDep,
    conn: ConnDep,
    domain: Annotated[str | None, Query(max_length=255)] = None,
) -> list[schemas.AliasPublic]:
    if domain is not None and await store.get_domain(conn, domain) is None:
        raise NotFound(f"domain {domain} does not exist")
    return [
        schemas.AliasPublic(id=a.id, source=a.source, destination=a.destination)
        for a in await store.list_aliases(conn, domain)
    ]


@router.post("/aliases", response_model=schemas.AliasPublic, status_code=201)
async def add_alias(
    body: schemas.AliasCreate, admin: AdminDep, conn: ConnDep
) -> schemas.AliasPublic:
    alias = await store.add_alias(conn, body.source, body.destination)
    return schemas.AliasPublic(id=alias.id, source=alias.source, destination=alias.destination)


@router.delete("/aliases", status_code=204)
async def remove_alias(
    admin: AdminDep,
    conn: ConnDep,
    source: Annotated[str, Query(min_length=2, max_length=320)],
    destination: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """Remove an alias (one destination, or all of the source's)."""
    await store.remove_alias(conn, source, destination)
    return Response(status_code=204)


# --- queue --------------------------------------------------------------------------------


@router.get("/queue", response_model=list[schemas.QueueEntryPublic])
async def list_queue(
    admin: AdminDep,
    conn: ConnDep,
    state: Annotated[
        list[Literal["queued", "deferred", "held", "delivered", "bounced"]] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[schemas.QueueEntryPublic]:
    """Queue entries with a delivery in one of ``state`` (default: queued, deferred, held)."""
    states: tuple[DeliveryState, ...] = tuple(state) if state else queue.UNFINISHED
    entries = await queue.list_queue(conn, states=states, limit=limit)
    return [queue_entry_public(e) for e in entries]


@router.get("/queue/{queue_id}", response_model=schemas.TracePublic)
async def show_queue_entry(queue_id: int, admin: AdminDep, conn: ConnDep) -> schemas.TracePublic:
    """One entry with its deliveries and every attempt (its trace)."""
    from postroom.api.routes.trace import trace_public

    entry = await queue.get_queue_entry(conn, _queue_id(queue_id))
    return trace_public(entry)


@router.post("/queue/{queue_id}/retry", response_model=schemas.RetryResult)
async def retry_queue_entry(
    queue_id: int, request: Request, admin: AdminDep, conn: ConnDep
) -> schemas.RetryResult:
    """Make the entry's pending deliveries due now and hand them to a worker."""
    qid = _queue_id(queue_id)
    count = await queue.retry_now(conn, now=datetime.now(UTC), queue_id=qid)
    entry = await queue.get_queue_entry(conn, qid, with_attempts=False)
    pending = [d.id for d in entry.deliveries if d.state in queue.PENDING]
    dispatched = await asyncio.to_thread(queue_contract.dispatch, pending, settings_of(request))
    return schemas.RetryResult(deliveries=count, dispatched=dispatched)


@router.post("/queue/{queue_id}/release", response_model=schemas.RetryResult)
async def release_queue_entry(
    queue_id: int, request: Request, admin: AdminDep, conn: ConnDep
) -> schemas.RetryResult:
    """Put the entry's held deliveries back (pending ones due now) and hand them to a worker."""
    released = await queue.release_held(conn, _queue_id(queue_id), now=datetime.now(UTC))
    dispatched = await asyncio.to_thread(queue_contract.dispatch, released, settings_of(request))
    return schemas.RetryResult(deliveries=len(released), dispatched=dispatched)


@router.delete("/queue/{queue_id}", status_code=204)
async def delete_queue_entry(queue_id: int, admin: AdminDep, conn: ConnDep) -> Response:
    """Remove the entry and its deliveries (no bounce is sent)."""
    await queue.delete_queue_entry(conn, _queue_id(queue_id))
    return Response(status_code=204)
