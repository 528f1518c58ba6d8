"""Filters end to end: upload and activate over ManageSieve, then SMTP mail lands where they say."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from pathlib import Path
from typing import Any

import managesieve  # type: ignore[import-untyped]

from postroom import store
from tests.e2e.conftest import Stack, wait_until
from tests.e2e.test_mail_path import PASSWORD, _with_conn, add_users, message, run


def folder_count(url: str, address: str, name: str) -> int:
    async def action(conn: Any) -> int:
        account = await store.get_account(conn, address)
        assert account is not None
        box = await store.get_mailbox(conn, account.id, name)
        return 0 if box is None else (await store.mailbox_status(conn, box.id)).messages

    return int(run(_with_conn(url, action)))


def send(stack: Stack, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", stack.port("smtp"), timeout=30) as smtp:
        smtp.sendmail(
            "someone@elsewhere.test", [to], message("someone@elsewhere.test", to, subject)
        )


RECEIPTS = (
    'require ["fileinto", "mailbox"];\r\n'
    'if header :contains "subject" "receipt" {\r\n  fileinto :create "Receipts";\r\n}\r\n'
)


def test_managesieve_client_uploads_activates_and_mail_is_filed(
    stack: Stack,
) -> None:
    _domain, [alice] = add_users(stack.database_url, "alice")
    sieve = managesieve.MANAGESIEVE(
        "127.0.0.1", stack.port("managesieve"), use_tls=True, tls_verify=False
    )
    try:
        assert sieve.login("", alice, PASSWORD) == "OK"
        assert sieve.havespace("filters", len(RECEIPTS)) == "OK"
        assert sieve.putscript("filters", RECEIPTS) == "OK"
        assert sieve.setactive("filters") == "OK"
        assert sieve.listscripts() == ("OK", [("filters", True)])
        assert sieve.getscript("filters") == ("OK", RECEIPTS)
        bad = sieve.putscript("broken", "keep;\r\nfrob;\r\n")
        assert bad == "NO"
        assert "line 2" in (sieve.response_text or "")
        assert sieve.deletescript("filters") == "NO"  # RFC 5804 §2.10: it is active
        assert sieve.response_code == "ACTIVE"
    finally:
        sieve.logout()
    send(stack, alice, "Your receipt for order 42")
    send(stack, alice, "Lunch")
    wait_until(lambda: folder_count(stack.database_url, alice, "Receipts") == 1, 30, "Receipts")
    wait_until(lambda: folder_count(stack.database_url, alice, "INBOX") == 1, 30, "the INBOX")


def test_sieve_connect_uploads_activates_and_mail_is_filed(stack: Stack, tmp_path: Path) -> None:
    assert shutil.which("sieve-connect"), "sieve-connect (Debian) is not installed"
    _domain, [bob] = add_users(stack.database_url, "bob")
    script = tmp_path / "lists.sieve"
    script.write_text(
        'require ["fileinto", "mailbox"];\nif header :contains "subject" "[dev]" {\n'
        '  fileinto :create "Lists";\n}\n'
    )
    base = [
        "sieve-connect", "--server", "127.0.0.1", "--port", str(stack.port("managesieve")),
        "--user", bob, "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN",
    ]  # fmt: skip

    def connect(*args: str) -> str:
        done = subprocess.run(
            [*base, *args], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    connect("--upload", "--localsieve", str(script), "--remotesieve", "lists")
    connect("--activate", "--remotesieve", "lists")
    listing = connect("--list")
    assert "lists" in listing
    assert "<- active" in listing or "ACTIVE" in listing.upper()
    send(stack, bob, "[dev] release 1.2")
    wait_until(lambda: folder_count(stack.database_url, bob, "Lists") == 1, 30, "Lists")
