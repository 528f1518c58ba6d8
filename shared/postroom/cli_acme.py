"""The ``postroom acme`` commands: the ACME certificate's state, and renewing it now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from postroom import certificates
from postroom.config import get_settings
from postroom.db import Conn
from postroom.log import configure_logging
from postroom.store import acme as acme_store

acme_app = typer.Typer(
    help="TLS certificates from an ACME CA (RFC 8555), such as Let's Encrypt.",
    no_args_is_help=True,
)


@acme_app.command("status")
def acme_status() -> None:
    """The certificate in force: names, issuer, expiry, and whether renewal is due."""
    from postroom.cli import run

    settings = get_settings()

    async def action(conn: Conn) -> tuple[acme_store.StoredCertificate | None, list[str]]:
        return await acme_store.newest_certificate(conn), await certificates.wanted_names(
            conn, settings
        )

    current, names = run(action)
    now = datetime.now(UTC)
    typer.echo(f"acme: {'on' if settings.acme_enabled else 'off'}")
    if settings.acme_directory:
        typer.echo(f"directory: {settings.acme_directory}")
    typer.echo(f"wanted names: {', '.join(names)}")
    if current is None:
        typer.echo("certificate: none issued")
        return
    for key, value in certificates.describe(current, now=now).items():
        typer.echo(f"{key}: {value}")
    if settings.acme_directory:
        due = certificates.renewal_due(
            current,
            names,
            directory=settings.acme_directory,
            now=now,
            renew_before=settings.acme_renew_before,
        )
        typer.echo(f"renewal: {'due, ' + due if due else 'not due'}")


@acme_app.command("renew")
def acme_renew(
    force: Annotated[bool, typer.Option(help="Order a new certificate even if not due.")] = False,
    new_key: Annotated[
        bool, typer.Option(help="A new private key (else the current one is kept).")
    ] = False,
) -> None:
    """Order a certificate now if none serves the wanted names or it expires soon."""
    from postroom.cli import fail, run

    settings = get_settings()
    if not settings.acme_enabled:
        fail("set POSTROOM_ACME_DIRECTORY and POSTROOM_ACME_CONTACT to use ACME")
    # What the order does is logged on stderr; stdout says how it ended.
    configure_logging(settings, "cli")

    async def action(conn: Conn) -> certificates.Outcome:
        return await certificates.renew(conn, settings, force=force, new_key=new_key)

    outcome = run(action)
    if outcome.issued is None:
        typer.echo(f"not renewed: {outcome.reason}")
        return
    issued = outcome.issued
    typer.echo(
        f"issued certificate {issued.id} for {', '.join(issued.names)}, valid until "
        f"{issued.not_after.isoformat()} ({outcome.reason})"
    )
