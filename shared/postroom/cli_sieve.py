"""The ``postroom sieve`` commands: an account's Sieve scripts, as ManageSieve sees them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from postroom import store
from postroom.config import get_settings
from postroom.db import Conn
from postroom.errors import NotFound
from postroom.sieve import SieveSyntaxError
from postroom.store import sieve as sieve_store
from postroom.store.types import Account

sieve_app = typer.Typer(
    help="Sieve filter scripts of an account (RFC 5228); one of them runs at delivery.",
    no_args_is_help=True,
)


async def _account(conn: Conn, address: str) -> Account:
    account = await store.get_account(conn, address)
    if account is None:
        raise NotFound(f"no account {address.lower()}")
    return account


@sieve_app.command("list")
def sieve_list(address: str) -> None:
    """List ADDRESS's scripts; the active one is marked."""
    from postroom.cli import run

    async def action(conn: Conn) -> list[sieve_store.SieveScript]:
        return await sieve_store.list_scripts(conn, (await _account(conn, address)).id)

    for script in run(action):
        mark = "  (active)" if script.active else ""
        typer.echo(f"{script.name}  {script.size} octets{mark}")


@sieve_app.command("show")
def sieve_show(
    address: str,
    name: Annotated[str | None, typer.Argument(help="Default: the active script.")] = None,
) -> None:
    """Print one of ADDRESS's scripts."""
    from postroom.cli import fail, run

    async def action(conn: Conn) -> str | None:
        account = await _account(conn, address)
        wanted = name
        if wanted is None:
            active = [s.name for s in await sieve_store.list_scripts(conn, account.id) if s.active]
            if not active:
                raise NotFound(f"{account.address} has no active script")
            wanted = active[0]
        script = await sieve_store.get_script(conn, account.id, wanted)
        if script is None:
            raise NotFound(f"{account.address} has no script named {wanted!r}")
        return script.source

    source = run(action)
    if source is None:
        fail("the script has no source")
    sys.stdout.write(source if source.endswith("\n") else source + "\n")


@sieve_app.command("put")
def sieve_put(
    address: str,
    name: str,
    file: Annotated[Path | None, typer.Argument(help="The script file; - or none: stdin.")] = None,
    activate: Annotated[bool, typer.Option(help="Make it the active script.")] = False,
) -> None:
    """Store script NAME for ADDRESS (compiled first: an error names its line)."""
    from postroom.cli import fail, run

    if file is None or str(file) == "-":
        source = sys.stdin.read()
    else:
        try:
            source = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {file}: {exc}")
    settings = get_settings()

    async def action(conn: Conn) -> sieve_store.SieveScript:
        account = await _account(conn, address)
        return await sieve_store.put_script(
            conn,
            account.id,
            name,
            source,
            max_size=settings.sieve_max_script_size,
            max_scripts=settings.sieve_max_scripts,
            activate=activate,
            now=datetime.now(UTC),
        )

    try:
        script = run(action)
    except SieveSyntaxError as exc:
        fail(f"{name}: {exc}")
    except ValueError as exc:
        fail(str(exc))
    state = " (active)" if script.active else ""
    typer.echo(f"stored {script.name} for {address.lower()}{state}")


@sieve_app.command("activate")
def sieve_activate(
    address: str,
    name: Annotated[str | None, typer.Argument(help="None: no script runs.")] = None,
) -> None:
    """Make NAME the script that runs at ADDRESS's deliveries (no NAME: none)."""
    from postroom.cli import run

    async def action(conn: Conn) -> None:
        await sieve_store.set_active(conn, (await _account(conn, address)).id, name)

    run(action)
    typer.echo(f"{address.lower()}: {'active script ' + name if name else 'no active script'}")


@sieve_app.command("remove")
def sieve_remove(address: str, name: str) -> None:
    """Delete script NAME of ADDRESS (not the active one: deactivate it first)."""
    from postroom.cli import run

    async def action(conn: Conn) -> None:
        await sieve_store.delete_script(conn, (await _account(conn, address)).id, name)

    run(action)
    typer.echo(f"removed {name} of {address.lower()}")
