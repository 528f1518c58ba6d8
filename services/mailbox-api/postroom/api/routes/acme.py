"""ACME HTTP-01 (RFC 8555 §8.3): the key authorization for a token of a pending order."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from postroom.api.deps import ConnDep
from postroom.api.problems import Problem
from postroom.store import acme as acme_store

router = APIRouter()


@router.get("/.well-known/acme-challenge/{token}", include_in_schema=False)
async def acme_challenge(token: str, conn: ConnDep) -> Response:
    """Any replica answers: the answers are in Postgres, put there by whichever process
    orders the certificate. §8.3: the body is the key authorization, nothing else."""
    answer = await acme_store.get_challenge(conn, token, now=datetime.now(UTC))
    if answer is None:
        raise Problem(404, "no ACME challenge with that token is pending")
    return Response(answer, media_type="application/octet-stream")
