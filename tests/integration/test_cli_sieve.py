"""`postroom sieve list|show|put|activate|remove ADDRESS`, run as a real process."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.integration.test_cli import add_domain, cli


def _user(database_url: str) -> str:
    domain = f"sv{secrets.token_hex(4)}.test"
    address = f"alice@{domain}"
    add_domain(database_url, domain, address, password="pw-123456")
    return address


def test_put_list_show_activate_remove(database_url: str, tmp_path: Path) -> None:
    address = _user(database_url)
    script = tmp_path / "main.sieve"
    script.write_text('require "fileinto";\nfileinto "Archive";\n')
    put = cli("sieve", "put", address, "main", str(script), "--activate", database_url=database_url)
    assert (put.returncode, put.stdout) == (0, f"stored main for {address} (active)\n")
    from_stdin = cli("sieve", "put", address, "spare", stdin="keep;\n", database_url=database_url)
    assert from_stdin.returncode == 0
    listed = cli("sieve", "list", address, database_url=database_url)
    assert listed.stdout == "main  40 octets  (active)\nspare  6 octets\n"
    shown = cli("sieve", "show", address, database_url=database_url)
    assert shown.stdout == 'require "fileinto";\nfileinto "Archive";\n'
    refused = cli("sieve", "remove", address, "main", database_url=database_url)
    assert (refused.returncode, refused.stderr) == (
        1,
        "postroom: error: script 'main' is active\n",
    )
    assert cli("sieve", "activate", address, "spare", database_url=database_url).returncode == 0
    removed = cli("sieve", "remove", address, "main", database_url=database_url)
    assert (removed.returncode, removed.stdout) == (0, f"removed main of {address}\n")
    none = cli("sieve", "activate", address, database_url=database_url)
    assert none.stdout == f"{address}: no active script\n"


def test_a_script_that_does_not_compile_names_its_line(database_url: str) -> None:
    address = _user(database_url)
    put = cli("sieve", "put", address, "bad", stdin="keep;\nfrob;\n", database_url=database_url)
    assert (put.returncode, put.stderr) == (
        1,
        "postroom: error: bad: line 2: 'frob' is an unknown command, not a command\n",
    )


def test_unknown_account_is_one_line_and_exit_1(database_url: str) -> None:
    done = cli("sieve", "list", "nobody@nowhere.test", database_url=database_url)
    assert (done.returncode, done.stderr) == (
        1,
        "postroom: error: no account nobody@nowhere.test\n",
    )
