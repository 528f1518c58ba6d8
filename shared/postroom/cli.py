"""The ``postroom`` administration command: migrate, domains, users, aliases, the queue."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, NoReturn, TypeVar

import typer

from postroom import store
from postroom.checks import describe as describe_checks
from postroom.config import get_settings
from postroom.db import Conn, connect, migrate
from postroom.errors import PostroomError
from postroom.runtime import database_url
from postroom.store import housekeeping
from postroom.store import queue as queue_store
from postroom.store.accounts import KEEP
from postroom.store.types import Account, DeliveryState, QueueId

T = TypeVar("T")

app = typer.Typer(
    help="Administer a Postroom mail system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
domain_app = typer.Typer(
    help="Local domains (mail for them is delivered here).", no_args_is_help=True
)
user_app = typer.Typer(help="Accounts (mailboxes with a password).", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases: exact, catch-all (@domain), fan-out.", no_args_is_help=True)
queue_app = typer.Typer(help="The delivery queue (like mailq and postsuper).", no_args_is_help=True)
app.add_typer(domain_app, name="domain")
app.add_typer(user_app, name="user")
app.add_typer(alias_app, name="alias")
app.add_typer(queue_app, name="queue")


def fail(message: str) -> NoReturn:
    typer.echo(f"postroom: error: {message}", err=True)
    raise typer.Exit(1)


def run(action: Callable[[Conn], Awaitable[T]]) -> T:
    """Run one store action on a fresh connection; user errors become one line and exit 1."""

    async def main() -> T:
        conn = await connect(database_url(get_settings()), autocommit=True)
        try:
            return await action(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(main())
    except PostroomError as exc:
        fail(str(exc))


def read_password(password: str | None, password_stdin: bool) -> str:
    if password is not None and password_stdin:
        fail("give either --password or --password-stdin, not both")
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif password is not None:
        value = password
    else:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not value:
        fail("the password is empty")
    return value


@app.command("up")
def up_command(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Delivery worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Create example.test with two users.")] = False,
) -> None:
    """Run the whole stack in the foreground (embedded Postgres and Redis unless configured)."""
    from postroom.runner import up

    try:
        code = up(get_settings(), workers=workers, demo=demo)
    except PostroomError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command("migrate")
def migrate_command() -> None:
    """Create or update the database schema (idempotent; safe to run concurrently)."""
    try:
        applied = asyncio.run(migrate(database_url(get_settings())))
    except PostroomError as exc:
        fail(str(exc))
    if applied:
        for migration in applied:
            typer.echo(f"applied {migration.version:04d}_{migration.name}")
    else:
        typer.echo("schema is up to date")


@app.command("gc")
def gc_command() -> None:
    """Remove what nothing needs any more: unreferenced blobs, finished queue entries and
    expunged UIDs past their retention, expired web sessions and tokens (also run hourly by
    the delivery worker's beat)."""
    settings = get_settings()
    removed = run(
        lambda c: housekeeping.collect(
            c,
            now=datetime.now(UTC),
            queue_retention=settings.queue_retention,
            expunged_retention=settings.expunged_retention,
        )
    )
    typer.echo(
        f"removed {removed.blobs} blobs, {removed.queue_entries} finished queue entries,"
        f" {removed.expunged} expunged UIDs, {removed.sessions} expired sessions"
    )


# --- domains ------------------------------------------------------------------------------


@domain_app.command("add")
def domain_add(name: str) -> None:
    """Add a local domain."""
    domain = run(lambda c: store.create_domain(c, name))
    typer.echo(f"added domain {domain.name}")


@domain_app.command("list")
def domain_list() -> None:
    for domain in run(store.list_domains):
        typer.echo(domain.name)


@domain_app.command("remove")
def domain_remove(name: str) -> None:
    """Remove a local domain (it must have no accounts left)."""
    run(lambda c: store.delete_domain(c, name))
    typer.echo(f"removed domain {name.lower()}")


# --- users --------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    address: str,
    password: Annotated[str | None, typer.Option(help="The password (visible in ps!).")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    admin: Annotated[bool, typer.Option(help="May use the admin API.")] = False,
    quota: Annotated[int | None, typer.Option(help="Quota in bytes.")] = None,
    quota_messages: Annotated[int | None, typer.Option(help="Most messages it may hold.")] = None,
) -> None:
    """Create an account with INBOX, Sent, Drafts, Trash, Junk and Archive."""
    secret = read_password(password, password_stdin)
    account = run(
        lambda c: store.create_account(
            c, address, secret, is_admin=admin, quota_bytes=quota, quota_messages=quota_messages
        )
    )
    typer.echo(f"added user {account.address}")


def _octets(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def usage_text(account: Account) -> str:
    """``1.2 MiB of 10.0 MiB, 12 messages``: what the account holds against its quotas."""
    octets = _octets(account.used_bytes)
    if account.quota_bytes is not None:
        octets += f" of {_octets(account.quota_bytes)}"
    messages = f"{account.used_messages} message{'s' if account.used_messages != 1 else ''}"
    if account.quota_messages is not None:
        messages += f" of {account.quota_messages}"
    return f"{octets}, {messages}"


@user_app.command("list")
def user_list(domain: Annotated[str | None, typer.Argument()] = None) -> None:
    """Each account with its flags and what it holds against its quotas."""
    for account in run(lambda c: store.list_accounts(c, domain)):
        notes = [n for n, on in (("admin", account.is_admin), ("disabled", account.disabled)) if on]
        flags = f" ({', '.join(notes)})" if notes else ""
        typer.echo(f"{account.address}{flags}  {usage_text(account)}")


@user_app.command("quota")
def user_quota(
    address: str,
    bytes_: Annotated[int | None, typer.Option("--bytes", help="Quota in bytes.")] = None,
    messages: Annotated[int | None, typer.Option(help="Most messages it may hold.")] = None,
    unlimited: Annotated[bool, typer.Option(help="Remove both limits.")] = False,
) -> None:
    """Set or remove an account's quotas; prints what it holds against them."""
    if unlimited and (bytes_ is not None or messages is not None):
        fail("give either --unlimited or limits, not both")
    if not unlimited and bytes_ is None and messages is None:
        fail("give --bytes, --messages or --unlimited")
    account = run(
        lambda c: store.update_account(
            c,
            address,
            quota_bytes=None if unlimited else KEEP if bytes_ is None else bytes_,
            quota_messages=None if unlimited else KEEP if messages is None else messages,
        )
    )
    typer.echo(f"{account.address}  {usage_text(account)}")


@user_app.command("passwd")
def user_passwd(
    address: str,
    password: Annotated[str | None, typer.Option()] = None,
    password_stdin: Annotated[bool, typer.Option()] = False,
) -> None:
    """Set a new password."""
    secret = read_password(password, password_stdin)
    run(lambda c: store.set_password(c, address, secret))
    typer.echo(f"password changed for {address.lower()}")


@user_app.command("remove")
def user_remove(address: str) -> None:
    """Remove an account with all its mail."""
    run(lambda c: store.delete_account(c, address))
    typer.echo(f"removed user {address.lower()}")


@user_app.command("send-as")
def user_send_as(
    address: str,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="Let it send as this address, or *@domain for a whole domain."),
    ] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Take an entry off its list.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Print its list.")] = False,
) -> None:
    """Addresses an account may send as beyond its own and its aliases (From:, Sender:)."""
    if not allow and not remove and not list_:
        fail("give --allow ADDRESS, --remove ADDRESS or --list")
    if list_ and (allow or remove):
        fail("give either --list or changes (--allow, --remove), not both")
    if list_:
        entries = run(lambda c: store.get_send_as(c, address))
    else:
        entries = run(
            lambda c: store.change_send_as(c, address, allow=allow or (), remove=remove or ())
        )
    typer.echo(f"{address.strip().lower()} may send as: {', '.join(entries) or '(its own only)'}")


# --- aliases ------------------------------------------------------------------------------


@alias_app.command("add")
def alias_add(source: str, destination: str) -> None:
    """Deliver mail for SOURCE (user@domain, or @domain for a catch-all) to DESTINATION."""
    alias = run(lambda c: store.add_alias(c, source, destination))
    typer.echo(f"added alias {alias.source} -> {alias.destination}")


@alias_app.command("list")
def alias_list(domain: Annotated[str | None, typer.Argument()] = None) -> None:
    for alias in run(lambda c: store.list_aliases(c, domain)):
        typer.echo(f"{alias.source} -> {alias.destination}")


@alias_app.command("remove")
def alias_remove(source: str, destination: Annotated[str | None, typer.Argument()] = None) -> None:
    """Remove an alias (one destination, or all of them)."""
    count = run(lambda c: store.remove_alias(c, source, destination))
    typer.echo(f"removed {count} alias{'es' if count != 1 else ''}")


# --- queue --------------------------------------------------------------------------------


def _age(then: datetime) -> str:
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


@queue_app.command("list")
def queue_list(
    all_states: Annotated[bool, typer.Option("--all", help="Include finished mail.")] = False,
) -> None:
    """Pending and held mail: id, age, size, sender, then each recipient with its state."""
    states: tuple[DeliveryState, ...] = queue_store.UNFINISHED
    if all_states:
        states = (*states, "delivered", "bounced")
    entries = run(lambda c: queue_store.list_queue(c, states=states))
    if not entries:
        typer.echo("queue is empty")
        return
    for entry in entries:
        m = entry.message
        typer.echo(f"{m.id:<10} {_age(m.received_at):>5} {m.size:>9}  <{m.reverse_path}>")
        for d in entry.deliveries:
            when = ""
            if d.state in ("queued", "deferred"):
                when = f" next {d.next_attempt_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
            error = f" ({d.last_error})" if d.last_error else ""
            if d.state == "held":
                error = f" ({d.last_failure}; release with: postroom queue release {m.id})"
            typer.echo(f"{'':18}{d.state:<9} <{d.recipient}>{when}{error}")
    typer.echo(f"-- {len(entries)} message{'s' if len(entries) != 1 else ''}")


@queue_app.command("show")
def queue_show(queue_id: int) -> None:
    """One queue entry: how it arrived and every delivery attempt."""
    entry = run(lambda c: queue_store.get_queue_entry(c, QueueId(queue_id)))
    m = entry.message
    typer.echo(f"queue id:    {m.id}")
    typer.echo(f"received:    {m.received_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z via {m.source}")
    client = " ".join(
        p for p in (m.client_address, f"helo={m.helo_name}" if m.helo_name else "") if p
    )
    if client:
        typer.echo(f"client:      {client}")
    typer.echo(f"protocol:    {m.protocol or '-'}  tls: {m.tls or 'no'}")
    typer.echo(f"sender:      <{m.reverse_path}>")
    typer.echo(f"message-id:  {m.message_id or '-'}")
    typer.echo(f"size:        {m.size}")
    for line in describe_checks(m.checks, m.target_special_use):
        typer.echo(f"checks:      {line}")
    by_delivery: dict[int, list[str]] = {}
    for a in entry.attempts:
        reply = " ".join(str(p) for p in (a.reply_code, a.reply_text) if p)
        by_delivery.setdefault(a.delivery_id, []).append(
            f"    {a.attempted_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z {a.outcome:<9} "
            f"{a.host or '-'}{' ' + a.tls if a.tls else ''} {reply}"
        )
    for d in entry.deliveries:
        typer.echo(f"recipient:   <{d.recipient}> {d.state}, {d.attempts} attempt(s)")
        if d.state == "held":
            typer.echo(
                f"    held after {d.failures} internal failure(s), last: {d.last_failure}"
                f" (was {d.held_state})"
            )
        for line in by_delivery.get(d.id, []):
            typer.echo(line)


@queue_app.command("retry")
def queue_retry(
    queue_id: Annotated[int | None, typer.Argument()] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Every pending delivery.")] = False,
) -> None:
    """Make pending deliveries due now."""
    if (queue_id is None) == (not all_entries):
        fail("give a queue id or --all")
    qid = QueueId(queue_id) if queue_id is not None else None
    count = run(lambda c: queue_store.retry_now(c, now=datetime.now(UTC), queue_id=qid))
    typer.echo(f"{count} deliver{'ies' if count != 1 else 'y'} due now")


@queue_app.command("release")
def queue_release(queue_id: int) -> None:
    """Put held deliveries back in the queue (pending ones due now) with a fresh count."""
    released = run(lambda c: queue_store.release_held(c, QueueId(queue_id), now=datetime.now(UTC)))
    # The worker's next sweep dispatches what is due now and sends a DSN still owed.
    typer.echo(
        f"released queue entry {queue_id}: {len(released)} pending"
        f" deliver{'ies' if len(released) != 1 else 'y'} due now"
    )


@queue_app.command("delete")
def queue_delete(
    queue_id: int,
    bounce: Annotated[
        bool, typer.Option("--bounce", help="Bounce it: the sender gets a DSN (RFC 3464).")
    ] = False,
) -> None:
    """Remove a message from the queue, silently or (--bounce) with a DSN to its sender."""
    if not bounce:
        run(lambda c: queue_store.delete_queue_entry(c, QueueId(queue_id)))
        typer.echo(f"deleted queue entry {queue_id}")
        return
    # The deliveries are bounced now; the delivery worker's next sweep sends the DSN.
    bounced = run(
        lambda c: queue_store.bounce_queue_entry(
            c, QueueId(queue_id), now=datetime.now(UTC), reason="5.0.0 deleted from the queue"
        )
    )
    typer.echo(
        f"bounced {len(bounced)} deliver{'ies' if len(bounced) != 1 else 'y'} of queue entry"
        f" {queue_id}"
    )


def main() -> None:
    try:
        app()
    except PostroomError as exc:  # settings errors raised before a command runs
        fail(str(exc))


# --- DKIM keys and DNS records (their own module) ------------------------------------------

from postroom.cli_domains import dkim_app, dns_app  # noqa: E402 - its commands use run and fail

app.add_typer(dkim_app, name="dkim")
app.add_typer(dns_app, name="dns")

from postroom.cli_sieve import sieve_app  # noqa: E402 - its commands use run and fail

app.add_typer(sieve_app, name="sieve")

from postroom.cli_acme import acme_app  # noqa: E402 - its commands use run and fail

app.add_typer(acme_app, name="acme")
