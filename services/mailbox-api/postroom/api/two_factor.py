"""TOTP two-factor login for the web (RFC 6238, with pyotp): setup, the check at login, and
one-time recovery codes."""

from __future__ import annotations

import hmac
import io
import secrets
from datetime import UTC, datetime, timedelta

import pyotp
import segno

from postroom import keyring
from postroom.api.problems import Problem
from postroom.config import Settings
from postroom.db import Conn
from postroom.store import totp as totp_store
from postroom.store.types import Account

ISSUER = "Postroom"
RECOVERY_CODES = 10
# RFC 6238 §5.2: accept the step before and after the current one (clock drift), no more.
WINDOW = 1
MAX_FAILURES = 10
LOCKOUT = timedelta(minutes=15)


def _totp(settings: Settings, sealed: bytes) -> pyotp.TOTP:
    return pyotp.TOTP(keyring.unseal(settings, sealed).decode())


def new_recovery_codes() -> list[str]:
    # Two groups of five hex digits: 40 bits each, easy to type from paper; each works once
    # and wrong guesses lock the second factor like wrong codes do.
    return [
        "-".join((secrets.token_hex(5)[:5], secrets.token_hex(5)[:5]))
        for _ in range(RECOVERY_CODES)
    ]


async def start(conn: Conn, settings: Settings, account: Account) -> tuple[str, str]:
    """A new secret for the account (not yet required): the key and its otpauth:// URI."""
    secret = pyotp.random_base32()
    await totp_store.start_totp(conn, account.id, keyring.seal(settings, secret.encode()))
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.address, issuer_name=ISSUER)
    return secret, uri


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as a QR code (ISO/IEC 18004), an SVG document drawn here: the key
    never goes to a third-party service to be drawn. Error correction M, four modules of
    quiet zone (the standard's minimum) on white, each module 4 px."""
    code = segno.make_qr(uri, error="m", boost_error=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        scale=4,
        border=4,
        light="#fff",  # a white quiet zone, also on a dark page
        xmldecl=False,
        svgclass=None,
        lineclass=None,
        title="QR code of the two-factor key",
    )
    return out.getvalue().decode("ascii")


def _step_of(totp: pyotp.TOTP, code: str, now: datetime) -> int | None:
    """The time step whose code this is, within the window; None for a wrong code."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != totp.digits:
        return None
    for offset in range(-WINDOW, WINDOW + 1):
        moment = now + timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(moment), code):
            return int(totp.timecode(moment))
    return None


async def confirm(conn: Conn, settings: Settings, account: Account, code: str) -> list[str]:
    """Turn two-factor login on with a first good code; the recovery codes, shown once."""
    state = await totp_store.get_totp(conn, account.id)
    if state is None:
        raise Problem(409, "start the setup first")
    if state.enabled:
        raise Problem(409, "two-factor login is already on")
    step = _step_of(_totp(settings, state.secret_sealed), code, datetime.now(UTC))
    if step is None or not await totp_store.use_step(conn, account.id, step, enable=True):
        raise Problem(422, "that code is not the one your app shows now")
    codes = new_recovery_codes()
    await totp_store.replace_recovery_codes(conn, account.id, codes)
    return codes


async def require(conn: Conn, settings: Settings, account: Account, otp: str | None) -> None:
    """At login, after the password: nothing when two-factor login is off; else the current
    code (each used once) or an unused recovery code, or a 401 that says a code is needed."""
    state = await totp_store.get_totp(conn, account.id)
    if state is None or not state.enabled:
        return
    now = datetime.now(UTC)
    if (
        state.failures >= MAX_FAILURES
        and state.failed_at is not None
        and now - state.failed_at < LOCKOUT
    ):
        raise Problem(429, "too many wrong codes; try again later")
    if not otp:
        raise Problem(
            401,
            "enter the code from your authenticator app",
            headers={"X-Postroom-OTP": "required"},
        )
    step = _step_of(_totp(settings, state.secret_sealed), otp, now)
    if step is not None and await totp_store.use_step(conn, account.id, step, enable=False):
        return
    if step is None and await totp_store.use_recovery_code(conn, account.id, otp, now=now):
        return
    await totp_store.record_failure(conn, account.id, now=now)
    raise Problem(401, "wrong or already used code", headers={"X-Postroom-OTP": "required"})
