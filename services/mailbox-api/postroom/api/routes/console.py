"""What the admin console shows beyond the admin API: the dashboard's figures and the quota
usage of every account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from postroom import store
from postroom.api.deps import AdminDep, ConnDep
from postroom.errors import NotFound
from postroom.store import stats

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class HourPublic(BaseModel):
    start: datetime
    received: int
    submitted: int
    delivered_local: int
    delivered_remote: int
    deferred: int


class DeferralsPublic(BaseModel):
    domain: str
    deliveries: int


class SpamActionPublic(BaseModel):
    action: str
    messages: int


class DashboardPublic(BaseModel):
    hours: list[HourPublic]
    queue: dict[str, int]
    deferrals: list[DeferralsPublic]
    spam: list[SpamActionPublic]


class UsagePublic(BaseModel):
    address: str
    used_bytes: int
    quota_bytes: int | None
    messages: int


@router.get("/dashboard", response_model=DashboardPublic)
async def dashboard(
    admin: AdminDep, conn: ConnDep, hours: Annotated[int, Query(ge=1, le=stats.MAX_HOURS)] = 24
) -> DashboardPublic:
    """Messages in and out per hour, the queue's depth by state, deferrals by destination,
    and the spam filter's actions on the messages accepted in those hours."""
    now = datetime.now(UTC)
    return DashboardPublic(
        hours=[
            HourPublic(
                start=h.start,
                received=h.received,
                submitted=h.submitted,
                delivered_local=h.delivered_local,
                delivered_remote=h.delivered_remote,
                deferred=h.deferred,
            )
            for h in await stats.hourly(conn, now=now, hours=hours)
        ],
        queue=await stats.queue_depth(conn),
        deferrals=[
            DeferralsPublic(domain=d, deliveries=n)
            for d, n in await stats.deferrals_by_destination(conn)
        ],
        spam=[
            SpamActionPublic(action=a, messages=n)
            for a, n in await stats.spam_actions(conn, now=now, hours=hours)
        ],
    )


@router.get("/usage", response_model=list[UsagePublic])
async def usage(
    admin: AdminDep,
    conn: ConnDep,
    domain: Annotated[str | None, Query(max_length=255)] = None,
) -> list[UsagePublic]:
    """Each account's stored octets and message count beside its quota."""
    if domain is not None and await store.get_domain(conn, domain) is None:
        raise NotFound(f"domain {domain} does not exist")
    return [
        UsagePublic(
            address=u.address,
            used_bytes=u.used_bytes,
            quota_bytes=u.quota_bytes,
            messages=u.messages,
        )
        for u in await stats.usage(conn, domain)
    ]
