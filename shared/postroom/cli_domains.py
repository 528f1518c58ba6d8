"""The ``postroom dkim`` and ``postroom dns`` commands: signing keys and DNS records."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom import dkim, dkim_admin, dns_records
from postroom import dns_check as dns_check_module
from postroom.config import get_settings
from postroom.db import Conn
from postroom.dkim import DkimKey
from postroom.errors import NotFound
from postroom.store import dkim as dkim_store

dkim_app = typer.Typer(
    help="DKIM signing keys of the local domains (RFC 6376, RFC 8463).", no_args_is_help=True
)
dns_app = typer.Typer(help="The DNS records a local domain needs.", no_args_is_help=True)


def _publish(key: DkimKey) -> str:
    record = dns_records.Record("dkim", key.record_name, "TXT", key.record, "")
    return record.zone_line()


@dkim_app.command("generate")
def dkim_generate(
    domain: str,
    selector: Annotated[str | None, typer.Option(help="Default: rsa<YYYYMM> / ed<YYYYMM>.")] = None,
    algorithm: Annotated[str, typer.Option(help="rsa (2048 bits) or ed25519.")] = "rsa",
) -> None:
    """Make a signing key for DOMAIN (it signs at once; publish its record)."""
    from postroom.cli import fail, run

    if algorithm not in dkim.ALGORITHMS:
        fail(f"unknown algorithm {algorithm!r}: use rsa or ed25519")
    alg = dkim.check_algorithm(algorithm)
    settings = get_settings()
    key = run(lambda c: dkim_admin.generate(c, settings, domain, algorithm=alg, selector=selector))
    typer.echo(f"added DKIM key {key.selector} ({key.algorithm}) for {key.domain}; publish:")
    typer.echo(_publish(key))


@dkim_app.command("list")
def dkim_list(domain: Annotated[str | None, typer.Argument()] = None) -> None:
    """Keys: domain, selector, algorithm, state (active, pending, retired), created."""
    from postroom.cli import run

    keys = run(lambda c: dkim_store.list_keys(c, domain))
    if not keys:
        typer.echo("no DKIM keys")
    for key in keys:
        typer.echo(
            f"{key.domain:<30} {key.selector:<16} {key.algorithm:<8} {key.state:<8}"
            f" {key.created_at:%Y-%m-%d}"
        )


@dkim_app.command("remove")
def dkim_remove(domain: str, selector: str) -> None:
    """Remove a key (it stops signing; unpublish its record afterwards)."""
    from postroom.cli import run

    run(lambda c: dkim_store.remove_key(c, domain, selector.lower()))
    typer.echo(f"removed DKIM key {selector.lower()} of {domain.lower()}")


@dkim_app.command("rotate")
def dkim_rotate(domain: str) -> None:
    """Roll the keys over in two runs: new pending keys to publish, then switch to them."""
    from postroom.cli import run

    settings = get_settings()
    step, keys = run(lambda c: dkim_admin.rotate(c, settings, domain))
    if step == "pending":
        typer.echo(
            f"new DKIM keys for {domain.lower()}; publish these, then run"
            f" `postroom dkim rotate {domain.lower()}` again to sign with them:"
        )
        for key in keys:
            typer.echo(_publish(key))
    else:
        names = ", ".join(k.selector for k in keys)
        typer.echo(f"{domain.lower()} now signs with {names}; the old keys are retired")


async def _records(conn: Conn, domain: str) -> list[dns_records.Record]:
    from postroom import store

    found = await store.get_domain(conn, domain)
    if found is None:
        raise NotFound(f"domain {domain.lower()} does not exist")
    keys = await dkim_store.list_keys(conn, found.name)
    return dns_records.required_records(found.name, get_settings(), keys)


@dns_app.command("show")
def dns_show(domain: str) -> None:
    """Print, as zone-file lines, every record DOMAIN needs."""
    from postroom.cli import run

    records = run(lambda c: _records(c, domain))
    typer.echo(dns_records.zone_text(domain.lower(), records), nl=False)


@dns_app.command("check")
def dns_check(domain: str) -> None:
    """Ask DNS for every record DOMAIN needs: ok, missing or different (exit 1 on any problem)."""
    from postroom.cli import run
    from postroom.dns import get_resolver
    from postroom.dns_check import check

    settings = get_settings()

    async def action(conn: Conn) -> list[dns_check_module.Finding]:
        records = await _records(conn, domain)
        return await check(get_resolver(settings), records, settings.hostname)

    findings = run(action)
    for finding in findings:
        record = finding.record
        typer.echo(f"{finding.status:<9} {record.type:<5} {record.name}.  ({record.comment})")
        if finding.status == "ok":
            continue
        for value in finding.found:
            typer.echo(f"          found:   {value}")
        if finding.note:
            typer.echo(f"          why:     {finding.note}")
        typer.echo(f"          publish: {record.zone_line()}")
    problems = sum(1 for f in findings if f.status != "ok")
    typer.echo(f"-- {len(findings) - problems} ok, {problems} to fix")
    if problems:
        raise typer.Exit(1)
