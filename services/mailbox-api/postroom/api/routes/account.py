"""The account's own settings that need its password: changing the password."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from postroom import store
from postroom.api.deps import AccountDep, ConnDep, client_ip, login_of
from postroom.api.problems import Problem

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
    # Guessing the current password from a hijacked session counts as failed logins: the
    # one login path checks it (throttle, no connection held during argon2).
    result = await login_of(request).login(
        account.address, body.current_password, client_ip=client_ip(request), service="web"
    )
    if result.outcome == "throttled":
        raise Problem(429, "too many wrong passwords; try again later")
    if result.outcome == "unavailable":
        raise Problem(503, "the mail store is unavailable; try again later")
    if result.account is None or result.account.id != account.id:
        raise Problem(403, "the current password is wrong")
    # The store ends every session of the account, here and in every protocol.
    await store.set_password(conn, account.address, body.new_password)
    return Response(status_code=204)
