"""The account's own security settings: its password and two-factor login."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from postroom import store
from postroom.api import two_factor
from postroom.api.deps import AccountDep, ConnDep, SettingsDep, client_ip, login_of
from postroom.api.problems import Problem
from postroom.store import app_passwords
from postroom.store import totp as totp_store
from postroom.store.types import Account

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
    # Checked by the one login path: wrong guesses from a hijacked session are throttled
    # like any failed login.
    await _password_ok(request, account, body.current_password)
    # The store ends every session of the account, here and in every protocol.
    await store.set_password(conn, account.address, body.new_password)
    return Response(status_code=204)


class PasswordCheck(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class TwoFactorPublic(BaseModel):
    enabled: bool
    recovery_codes_left: int


class TwoFactorSetup(BaseModel):
    secret: str = Field(description="the key to type into an authenticator app")
    uri: str = Field(description="the same as an otpauth:// URI (what a QR code holds)")
    qr_svg: str = Field(description="the URI as a QR code: an SVG document, drawn here")


class TwoFactorCode(BaseModel):
    code: str = Field(min_length=6, max_length=12)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


async def _password_ok(request: Request, account: Account, password: str) -> None:
    result = await login_of(request).login(
        account.address, password, client_ip=client_ip(request), service="web"
    )
    if result.outcome == "throttled":
        raise Problem(429, "too many wrong passwords; try again later")
    if result.outcome == "unavailable":
        raise Problem(503, "the mail store is unavailable; try again later")
    if result.account is None or result.account.id != account.id:
        raise Problem(403, "the password is wrong")


@router.get("/two-factor", response_model=TwoFactorPublic)
async def two_factor_state(account: AccountDep, conn: ConnDep) -> TwoFactorPublic:
    state = await totp_store.get_totp(conn, account.id)
    return TwoFactorPublic(
        enabled=bool(state and state.enabled),
        recovery_codes_left=await totp_store.recovery_codes_left(conn, account.id),
    )


@router.post("/two-factor/setup", response_model=TwoFactorSetup)
async def two_factor_setup(
    body: PasswordCheck,
    request: Request,
    account: AccountDep,
    conn: ConnDep,
    settings: SettingsDep,
) -> TwoFactorSetup:
    """A new TOTP key (RFC 6238: SHA-1, 6 digits, 30 s); login needs codes once confirmed."""
    await _password_ok(request, account, body.password)
    state = await totp_store.get_totp(conn, account.id)
    if state is not None and state.enabled:
        raise Problem(409, "two-factor login is already on; turn it off first")
    secret, uri = await two_factor.start(conn, settings, account)
    return TwoFactorSetup(secret=secret, uri=uri, qr_svg=two_factor.qr_svg(uri))


@router.post("/two-factor/confirm", response_model=RecoveryCodes)
async def two_factor_confirm(
    body: TwoFactorCode, account: AccountDep, conn: ConnDep, settings: SettingsDep
) -> RecoveryCodes:
    """The first code from the app turns two-factor login on; the recovery codes are shown
    this once."""
    return RecoveryCodes(
        recovery_codes=await two_factor.confirm(conn, settings, account, body.code)
    )


@router.post("/two-factor/disable", status_code=204)
async def two_factor_disable(
    body: PasswordCheck, request: Request, account: AccountDep, conn: ConnDep
) -> Response:
    await _password_ok(request, account, body.password)
    await totp_store.remove_totp(conn, account.id)
    return Response(status_code=204)


class AppPasswordCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="the device or program")


class AppPasswordPublic(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    last_used_from: str | None


class AppPasswordCreated(AppPasswordPublic):
    password: str = Field(description="shown this once; only its hash is kept")


def _app_password(p: app_passwords.AppPassword) -> AppPasswordPublic:
    return AppPasswordPublic(
        id=p.id,
        name=p.name,
        created_at=p.created_at,
        last_used_at=p.last_used_at,
        last_used_from=p.last_used_from,
    )


@router.get("/app-passwords", response_model=list[AppPasswordPublic])
async def list_app_passwords(account: AccountDep, conn: ConnDep) -> list[AppPasswordPublic]:
    """The account's app passwords (for IMAP, POP3 and SMTP) with their last use."""
    return [_app_password(p) for p in await app_passwords.list_app_passwords(conn, account.id)]


@router.post("/app-passwords", response_model=AppPasswordCreated, status_code=201)
async def create_app_password(
    body: AppPasswordCreate, account: AccountDep, conn: ConnDep
) -> AppPasswordCreated:
    """A new app password for one device; the password is in this answer only."""
    record, secret = await app_passwords.create_app_password(conn, account.id, body.name)
    return AppPasswordCreated(**_app_password(record).model_dump(), password=secret)


@router.delete("/app-passwords/{app_password_id}", status_code=204)
async def revoke_app_password(app_password_id: int, account: AccountDep, conn: ConnDep) -> Response:
    """Revoke an app password: the next login with it fails. Sessions already open with it
    run until they end (IMAP and POP3 sessions are short-lived; a password change ends them)."""
    if not 0 < app_password_id < 2**63:
        raise Problem(404, f"app password {app_password_id} does not exist")
    await app_passwords.revoke_app_password(conn, account.id, app_password_id)
    return Response(status_code=204)
