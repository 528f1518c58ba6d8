"""Filters and out-of-office: the account's Sieve scripts, raw or built from simple rules.

The same scripts ManageSieve edits (``postroom.store.sieve``). The Filters and Out-of-office
pages work on one generated script (``postroom.sieve.rules``); the raw endpoints work on any.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from postroom.api.deps import AccountDep, ConnDep, SettingsDep
from postroom.api.problems import Problem
from postroom.config import Settings
from postroom.db import Conn
from postroom.errors import NotFound
from postroom.sieve import EXTENSIONS, SieveSyntaxError, compile_script
from postroom.sieve import rules as sieve_rules
from postroom.sieve.rules import FilterRule, FilterSet, OutOfOffice, RuleError
from postroom.store import sieve as sieve_store
from postroom.store.types import AccountId

router = APIRouter(prefix="/api/v1/sieve", tags=["filters"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SieveScriptPublic(BaseModel):
    name: str
    active: bool
    size: int = Field(description="octets of the source")
    updated_at: datetime


class SieveScriptDetail(SieveScriptPublic):
    source: str


class SieveScriptPut(_Strict):
    source: str = Field(max_length=1024 * 1024)
    active: bool = Field(default=False, description="make it the active script too")


class SieveScriptRename(_Strict):
    name: str = Field(min_length=1, max_length=sieve_store.MAX_NAME_LENGTH)


class SieveActivate(_Strict):
    name: str | None = Field(description="the script to run at delivery; null runs none")


class SieveCheck(_Strict):
    source: str = Field(max_length=1024 * 1024)


class SieveCheckResult(BaseModel):
    """As ManageSieve's CHECKSCRIPT: valid, or the first error and its line."""

    valid: bool
    line: int | None = None
    message: str | None = None


class SieveCapabilities(BaseModel):
    extensions: list[str]
    max_script_size: int
    max_scripts: int
    max_redirects: int
    generated_script: str = Field(description="the script the Filters pages write")


class FiltersPublic(BaseModel):
    rules: list[FilterRule]
    script: str = Field(description="the generated Sieve script")
    active: bool = Field(description="whether the generated script is the one that runs")
    other_active: str | None = Field(
        description="the name of another active script (made elsewhere), if any"
    )


class FiltersPut(_Strict):
    rules: list[FilterRule] = Field(max_length=200)


class OutOfOfficePublic(OutOfOffice):
    script: str = Field(description="the generated Sieve script")
    active: bool


class GeneratedPreview(BaseModel):
    script: str


def _public(script: sieve_store.SieveScript) -> SieveScriptPublic:
    return SieveScriptPublic(
        name=script.name, active=script.active, size=script.size, updated_at=script.updated_at
    )


def _syntax_problem(exc: SieveSyntaxError) -> Problem:
    return Problem(422, str(exc), line=exc.line, error=exc.message)


def _name(name: str) -> str:
    try:
        return sieve_store.check_name(name)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


# -- raw scripts ------------------------------------------------------------------------------


@router.get("/capabilities", response_model=SieveCapabilities)
async def capabilities(account: AccountDep, settings: SettingsDep) -> SieveCapabilities:
    """What scripts may use and how big they may be (ManageSieve's CAPABILITY)."""
    return SieveCapabilities(
        extensions=list(EXTENSIONS),
        max_script_size=settings.sieve_max_script_size,
        max_scripts=settings.sieve_max_scripts,
        max_redirects=settings.sieve_max_redirects,
        generated_script=sieve_rules.SCRIPT_NAME,
    )


@router.get("/scripts", response_model=list[SieveScriptPublic])
async def list_scripts(account: AccountDep, conn: ConnDep) -> list[SieveScriptPublic]:
    """The caller's scripts, by name; at most one is active."""
    return [_public(s) for s in await sieve_store.list_scripts(conn, account.id)]


@router.get("/scripts/{name}", response_model=SieveScriptDetail)
async def get_script(name: str, account: AccountDep, conn: ConnDep) -> SieveScriptDetail:
    script = await sieve_store.get_script(conn, account.id, name)
    if script is None or script.source is None:
        raise NotFound(f"no script named {name!r}")
    return SieveScriptDetail(**_public(script).model_dump(), source=script.source)


@router.put("/scripts/{name}", response_model=SieveScriptDetail)
async def put_script(
    name: str, body: SieveScriptPut, account: AccountDep, conn: ConnDep, settings: SettingsDep
) -> SieveScriptDetail:
    """Create or replace a script. One that does not compile is refused with 422 and the
    ``line`` of the first error (as ManageSieve's PUTSCRIPT)."""
    script = await _store(conn, account.id, _name(name), body.source, settings, body.active)
    return SieveScriptDetail(**_public(script).model_dump(), source=body.source)


@router.post("/scripts/{name}/rename", response_model=SieveScriptPublic)
async def rename_script(
    name: str, body: SieveScriptRename, account: AccountDep, conn: ConnDep
) -> SieveScriptPublic:
    await sieve_store.rename_script(conn, account.id, name, _name(body.name))
    script = await sieve_store.get_script(conn, account.id, body.name)
    assert script is not None
    return _public(script)


@router.delete("/scripts/{name}", status_code=204)
async def delete_script(name: str, account: AccountDep, conn: ConnDep) -> Response:
    """Delete a script; the active one cannot be deleted (409), deactivate it first."""
    try:
        await sieve_store.delete_script(conn, account.id, name)
    except sieve_store.ScriptIsActive as exc:
        raise Problem(409, str(exc)) from None
    return Response(status_code=204)


@router.put("/active", status_code=204)
async def set_active(body: SieveActivate, account: AccountDep, conn: ConnDep) -> Response:
    """Choose the script that runs at delivery (null: none)."""
    await sieve_store.set_active(conn, account.id, body.name)
    return Response(status_code=204)


@router.post("/check", response_model=SieveCheckResult)
async def check_script(
    body: SieveCheck, account: AccountDep, settings: SettingsDep
) -> SieveCheckResult:
    """Compile without storing (as ManageSieve's CHECKSCRIPT)."""
    try:
        compile_script(body.source, max_size=settings.sieve_max_script_size)
    except SieveSyntaxError as exc:
        return SieveCheckResult(valid=False, line=exc.line, message=exc.message)
    return SieveCheckResult(valid=True)


# -- rules and out-of-office --------------------------------------------------------------------


async def _store(
    conn: Conn, account_id: AccountId, name: str, source: str, settings: Settings, activate: bool
) -> sieve_store.SieveScript:
    try:
        return await sieve_store.put_script(
            conn,
            account_id,
            name,
            source,
            max_size=settings.sieve_max_script_size,
            max_scripts=settings.sieve_max_scripts,
            activate=activate,
            now=datetime.now(UTC),
        )
    except SieveSyntaxError as exc:
        raise _syntax_problem(exc) from None


async def _current(conn: Conn, account_id: AccountId) -> tuple[FilterSet, str, bool, str | None]:
    script = await sieve_store.get_script(conn, account_id, sieve_rules.SCRIPT_NAME)
    filters = sieve_rules.read(script.source or "") if script is not None else None
    filters = filters or FilterSet()
    active = [s.name for s in await sieve_store.list_scripts(conn, account_id) if s.active]
    other = active[0] if active and active[0] != sieve_rules.SCRIPT_NAME else None
    source = script.source if script is not None and script.source else _generate(filters)
    return filters, source, bool(script and script.active), other


def _generate(filters: FilterSet) -> str:
    try:
        return sieve_rules.generate(filters)
    except RuleError as exc:
        raise Problem(422, str(exc)) from None


async def _save(
    conn: Conn, account_id: AccountId, filters: FilterSet, settings: Settings
) -> tuple[str, bool, str | None]:
    source = _generate(filters)
    existing = await sieve_store.get_script(conn, account_id, sieve_rules.SCRIPT_NAME)
    if existing is not None and sieve_rules.read(existing.source or "") is None:
        # Written by hand (ManageSieve, the raw editor) under the pages' name: never overwrite.
        raise Problem(
            409,
            f"a script named {sieve_rules.SCRIPT_NAME!r} exists that these pages did not write;"
            " rename or delete it first",
        )
    await _store(conn, account_id, sieve_rules.SCRIPT_NAME, source, settings, activate=True)
    return source, True, None


@router.get("/rules", response_model=FiltersPublic)
async def get_rules(account: AccountDep, conn: ConnDep) -> FiltersPublic:
    """The Filters page: its rules in order, and the Sieve they make."""
    filters, source, active, other = await _current(conn, account.id)
    return FiltersPublic(rules=filters.rules, script=source, active=active, other_active=other)


@router.put("/rules", response_model=FiltersPublic)
async def put_rules(
    body: FiltersPut, account: AccountDep, conn: ConnDep, settings: SettingsDep
) -> FiltersPublic:
    """Save the rules (the out-of-office reply stays as it is) and make their script the
    active one."""
    async with conn.transaction():  # the reply and the rules share one script
        await sieve_store.lock_scripts(conn, account.id)
        filters, _source, _active, _other = await _current(conn, account.id)
        updated = FilterSet(rules=body.rules, out_of_office=filters.out_of_office)
        source, active, other = await _save(conn, account.id, updated, settings)
    return FiltersPublic(rules=updated.rules, script=source, active=active, other_active=other)


@router.post("/rules/preview", response_model=GeneratedPreview)
async def preview_rules(body: FiltersPut, account: AccountDep, conn: ConnDep) -> GeneratedPreview:
    """The Sieve these rules would make, without saving them."""
    filters, _source, _active, _other = await _current(conn, account.id)
    updated = FilterSet(rules=body.rules, out_of_office=filters.out_of_office)
    return GeneratedPreview(script=_generate(updated))


@router.get("/vacation", response_model=OutOfOfficePublic)
async def get_vacation(account: AccountDep, conn: ConnDep) -> OutOfOfficePublic:
    """The Out-of-office page: dates, subject, text, once per N days."""
    filters, source, active, _other = await _current(conn, account.id)
    return OutOfOfficePublic(**filters.out_of_office.model_dump(), script=source, active=active)


@router.put("/vacation", response_model=OutOfOfficePublic)
async def put_vacation(
    body: OutOfOffice, account: AccountDep, conn: ConnDep, settings: SettingsDep
) -> OutOfOfficePublic:
    """Save the out-of-office reply (the rules stay) and make the script the active one."""
    async with conn.transaction():  # the reply and the rules share one script
        await sieve_store.lock_scripts(conn, account.id)
        filters, _source, _active, _other = await _current(conn, account.id)
        updated = FilterSet(rules=filters.rules, out_of_office=body)
        source, active, _other = await _save(conn, account.id, updated, settings)
    return OutOfOfficePublic(**body.model_dump(), script=source, active=active)
