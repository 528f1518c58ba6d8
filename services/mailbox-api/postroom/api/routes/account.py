"""The account's own settings that need its password: changing the password."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from postroom import store
from postroom.api.deps import AccountDep, ConnDep, client_ip, throttle_of
from postroom.api.problems import Problem
from postroom.errors import AuthenticationFailed
from postroom.store.sessions import delete_sessions_of

router = APIRouter(prefix="/api/v1/account", tags=["session"])
MIN_PASSWORD = 8


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChange, request: Request, account: AccountDep, conn: ConnDep
) -> Response:
    """Change the password, given the current one; every session of the account ends (this
    one too), so a stolen session does not outlive the change."""
    if body.new_password == body.current_password:
        raise Problem(422, "the new password is the current one")
    # Guessing the current password from a hijacked session counts as failed logins.
    throttle = throttle_of(request)
    ip = client_ip(request)
    await throttle.refresh(ip, account.address)
    if throttle.locked(ip, account.address):
        raise Problem(429, "too many wrong passwords; try again later")
    try:
        await store.authenticate(conn, account.address, body.current_password)
    except AuthenticationFailed:
        throttle.failure(ip, account.address)
        raise Problem(403, "the current password is wrong") from None
    await store.set_password(conn, account.address, body.new_password)
    await delete_sessions_of(conn, account.id)
    return Response(status_code=204)
