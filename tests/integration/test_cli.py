"""The `postroom` admin command, run as a real process against the test database."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from postroom import store
from postroom.db import connect
from tests.conftest import ARGON2_TEST_PARAMETERS

POSTROOM = str(Path(sys.executable).with_name("postroom"))


def cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    environment["POSTROOM_ARGON2_PARAMETERS"] = ARGON2_TEST_PARAMETERS
    if database_url:
        environment["POSTROOM_DATABASE_URL"] = database_url
    environment.update(env or {})
    return subprocess.run(
        [POSTROOM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def add_domain(database_url: str, name: str, *users: str, password: str = "pw", **kw: bool) -> None:
    """Set up a domain and accounts of it (``is_admin`` as ``store.create_account``) straight
    through the store, not a process each: ``domain add`` and ``user add`` have tests here."""

    async def add() -> None:
        conn = await connect(database_url, autocommit=True)
        try:
            await store.create_domain(conn, name)
            for address in users:
                await store.create_account(conn, address, password, **kw)
        finally:
            await conn.close()

    asyncio.run(add())


@pytest.fixture
def domain() -> str:
    return f"cli{secrets.token_hex(4)}.test"


def test_migrate_on_a_migrated_database_says_up_to_date(database_url: str) -> None:
    result = cli("migrate", database_url=database_url)
    assert (result.returncode, result.stdout) == (0, "schema is up to date\n")


def test_domain_add_then_list(database_url: str, domain: str) -> None:
    assert cli("domain", "add", domain.upper(), database_url=database_url).stdout == (
        f"added domain {domain}\n"
    )
    assert domain in cli("domain", "list", database_url=database_url).stdout.split()


def test_duplicate_domain_is_one_line_on_stderr_and_exit_1(database_url: str, domain: str) -> None:
    add_domain(database_url, domain)
    result = cli("domain", "add", domain, database_url=database_url)
    assert result.returncode == 1
    assert result.stderr == f"postroom: error: domain {domain} already exists\n"


def test_user_add_with_password_from_stdin(database_url: str, domain: str) -> None:
    add_domain(database_url, domain)
    result = cli(
        "user",
        "add",
        f"alice@{domain}",
        "--password-stdin",
        stdin="s3cret\n",
        database_url=database_url,
    )
    assert (result.returncode, result.stdout) == (0, f"added user alice@{domain}\n")
    listed = cli("user", "list", domain, database_url=database_url)
    assert listed.stdout == f"alice@{domain}  0 B, 0 messages\n"


def test_user_quota_sets_limits_and_user_list_shows_usage(database_url: str, domain: str) -> None:
    add_domain(database_url, domain, f"alice@{domain}", is_admin=True)
    result = cli(
        "user", "quota", f"alice@{domain}", "--bytes", str(10 * 1024 * 1024), "--messages", "500",
        database_url=database_url,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (
        0,
        f"alice@{domain}  0 B of 10.0 MiB, 0 messages of 500\n",
    )
    listed = cli("user", "list", domain, database_url=database_url)
    assert listed.stdout == f"alice@{domain} (admin)  0 B of 10.0 MiB, 0 messages of 500\n"
    cleared = cli("user", "quota", f"alice@{domain}", "--unlimited", database_url=database_url)
    assert cleared.stdout == f"alice@{domain}  0 B, 0 messages\n"


def test_user_quota_without_a_limit_is_refused(database_url: str, domain: str) -> None:
    result = cli("user", "quota", f"alice@{domain}", database_url=database_url)
    assert (result.returncode, result.stderr) == (
        1,
        "postroom: error: give --bytes, --messages or --unlimited\n",
    )


def test_user_in_unknown_domain_is_refused(database_url: str, domain: str) -> None:
    result = cli("user", "add", f"bob@{domain}", "--password", "x", database_url=database_url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"postroom: error: domain {domain} is not a local domain")
    assert "Traceback" not in result.stderr


def test_malformed_address_is_refused(database_url: str) -> None:
    result = cli("user", "add", "not-an-address", "--password", "x", database_url=database_url)
    assert result.returncode == 1
    assert result.stderr == (
        "postroom: error: 'not-an-address' is not a mail address (expected local-part@domain)\n"
    )


def test_duplicate_user_is_refused(database_url: str, domain: str) -> None:
    add_domain(database_url, domain, f"a@{domain}", password="x")
    result = cli("user", "add", f"A@{domain}", "--password", "y", database_url=database_url)
    assert result.returncode == 1
    assert result.stderr == f"postroom: error: account a@{domain} already exists\n"


def test_empty_password_is_refused(database_url: str, domain: str) -> None:
    add_domain(database_url, domain)
    result = cli(
        "user", "add", f"a@{domain}", "--password-stdin", stdin="\n", database_url=database_url
    )
    assert (result.returncode, result.stderr) == (1, "postroom: error: the password is empty\n")


def test_passwd_and_remove(database_url: str, domain: str) -> None:
    add_domain(database_url, domain, f"a@{domain}", password="x")
    assert (
        cli(
            "user", "passwd", f"a@{domain}", "--password", "y", database_url=database_url
        ).returncode
        == 0
    )
    assert cli("user", "remove", f"a@{domain}", database_url=database_url).returncode == 0
    gone = cli("user", "remove", f"a@{domain}", database_url=database_url)
    assert (gone.returncode, gone.stderr) == (
        1,
        f"postroom: error: account a@{domain} does not exist\n",
    )


def test_alias_add_list_remove(database_url: str, domain: str) -> None:
    add_domain(database_url, domain)
    added = cli("alias", "add", f"info@{domain}", f"alice@{domain}", database_url=database_url)
    assert added.stdout == f"added alias info@{domain} -> alice@{domain}\n"
    catch_all = cli("alias", "add", f"@{domain}", f"alice@{domain}", database_url=database_url)
    assert catch_all.returncode == 0
    listed = cli("alias", "list", domain, database_url=database_url).stdout.splitlines()
    assert listed == [f"@{domain} -> alice@{domain}", f"info@{domain} -> alice@{domain}"]
    assert cli("alias", "remove", f"info@{domain}", database_url=database_url).stdout == (
        "removed 1 alias\n"
    )


def test_unreachable_database_is_a_clear_error() -> None:
    result = cli("domain", "list", database_url="postgresql://postgres@127.0.0.1:1/postroom")
    assert result.returncode == 1
    assert result.stderr.startswith("postroom: error: cannot connect to the database")
    assert "Traceback" not in result.stderr


def test_no_database_configured_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("domain", "list", env={"POSTROOM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("postroom: error: POSTROOM_DATABASE_URL is not set")


def test_bad_setting_is_a_clear_error(database_url: str) -> None:
    result = cli("domain", "list", database_url=database_url, env={"POSTROOM_SMTP_PORT": "x"})
    assert result.returncode == 1
    assert result.stderr.startswith("postroom: error: invalid configuration: POSTROOM_SMTP_PORT")


def test_queue_show_unknown_id(database_url: str) -> None:
    result = cli("queue", "show", "999999999", database_url=database_url)
    assert (result.returncode, result.stderr) == (
        1,
        "postroom: error: queue entry 999999999 does not exist\n",
    )


def test_queue_retry_needs_an_id_or_all(database_url: str) -> None:
    result = cli("queue", "retry", database_url=database_url)
    assert (result.returncode, result.stderr) == (1, "postroom: error: give a queue id or --all\n")
