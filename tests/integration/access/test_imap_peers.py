"""Real IMAP clients against the server: mbsync (isync) two-way sync and mutt in batch mode."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest

from postroom import store
from postroom.db import Conn
from postroom.store.types import Account, Mailbox
from tests.integration.access.imap_support import ImapEndpoint, message
from tests.integration.access.pop3_support import in_thread
from tests.support import Tenant


@pytest.fixture
async def alice(tenant: Tenant) -> Account:
    return await tenant.account("alice", "pw-1")


async def mailbox(conn: Conn, account: Account, name: str) -> Mailbox:
    found = await store.get_mailbox(conn, account.id, name)
    assert found is not None
    return found


# --- mbsync -----------------------------------------------------------------------------


def mbsync_config(endpoint: ImapEndpoint, account: Account, folder: Path) -> Path:
    config = folder / "mbsyncrc"
    (folder / "mail").mkdir(exist_ok=True)
    config.write_text(
        f"""IMAPAccount postroom
Host {endpoint.host}
Port {endpoint.port}
User {account.address}
Pass pw-1
SSLType STARTTLS
CertificateFile {endpoint.ca_file}
AuthMechs PLAIN

IMAPStore remote
Account postroom

MaildirStore local
Path {folder}/mail/
Inbox {folder}/mail/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive Work*
Create Both
Expunge Both
SyncState *
"""
    )
    return config


def mbsync(config: Path) -> None:
    done = subprocess.run(
        ["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def maildir_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("cur/*"), *folder.glob("new/*")])


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian package isync) missing")
async def test_mbsync_syncs_folders_both_ways(
    imap: ImapEndpoint, conn: Conn, alice: Account, tmp_path: Path
) -> None:
    inbox, archive = await mailbox(conn, alice, "INBOX"), await mailbox(conn, alice, "Archive")
    work = await store.create_mailbox(conn, alice.id, "Work/Reports")
    await store.append_message(conn, inbox.id, message("one"))
    await store.append_message(conn, inbox.id, message("two"), flags=["\\Seen"])
    await store.append_message(conn, archive.id, message("old"))
    await store.append_message(conn, work.id, message("report"))
    config = mbsync_config(imap, alice, tmp_path)

    await in_thread(mbsync, config)
    mail = tmp_path / "mail"
    assert len(maildir_files(mail / "INBOX")) == 2
    assert len(maildir_files(mail / "Archive")) == 1
    assert len(maildir_files(mail / "Work" / "Reports")) == 1

    # Locally: flag "one", move "two" to Archive, write a new message in Work/Reports.
    for path in maildir_files(mail / "INBOX"):
        text = path.read_bytes()
        if b"Subject: one" in text:
            path.rename(path.with_name(path.name.split(":2,")[0] + ":2,F"))
        else:
            base = path.name.split(",U=")[0]
            path.rename(mail / "Archive" / "cur" / f"{base}:2,S")
    (mail / "Work" / "Reports" / "new" / "1700000000.local.host").write_bytes(message("draft"))

    await in_thread(mbsync, config)
    [one] = await store.list_messages(conn, inbox.id)
    assert one.flags == {"\\Flagged"}
    archived = await store.fetch_content(conn, archive.id, await store.list_uids(conn, archive.id))
    assert sorted(c.parsed["subject"] for c in archived) == ["old", "two"]
    moved = next(c for c in archived if c.parsed["subject"] == "two")
    assert "\\Seen" in moved.message.flags
    assert len(await store.list_uids(conn, work.id)) == 2


# --- mutt -------------------------------------------------------------------------------


def run_mutt(muttrc: Path, pushed: str, home: Path) -> str:
    """mutt in a pseudo-terminal (it needs one), driven by pushed keys; returns its screen."""
    env = {**os.environ, "HOME": str(home), "TERM": "vt100", "LINES": "40", "COLUMNS": "160"}
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            ["mutt", "-n", "-F", str(muttrc), "-e", f"push '{pushed}'"],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=env,
            close_fds=True,
        )
        os.close(secondary)
        screen = bytearray()
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        assert process.wait(timeout=60) == 0
        return screen.decode("utf-8", "replace")
    finally:
        os.close(primary)


@pytest.mark.skipif(shutil.which("mutt") is None, reason="mutt missing")
async def test_mutt_reads_mail_in_two_folders(
    imap: ImapEndpoint, conn: Conn, alice: Account, tmp_path: Path
) -> None:
    inbox = await mailbox(conn, alice, "INBOX")
    await store.append_message(conn, inbox.id, message("first", "Body of the first.\r\n"))
    await store.append_message(conn, inbox.id, message("second", "Body of the second.\r\n"))
    archive = await mailbox(conn, alice, "Archive")
    await store.append_message(conn, archive.id, message("kept", "An archived body.\r\n"))
    out = tmp_path / "piped.txt"
    user = alice.address.replace("@", "%40")
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(
        f"""set folder="imap://{user}@{imap.host}:{imap.port}/"
set spoolfile="+INBOX"
set imap_pass="pw-1"
set ssl_starttls=yes
set ssl_force_tls=yes
set certificate_file="{tmp_path}/certificates"
set imap_check_subscribed=yes
set quit=yes
set confirmappend=no
set wait_key=no
set pipe_split=yes
set index_format="%s"
"""
    )
    (tmp_path / "certificates").write_text(imap.ca_file.read_text())
    pipe_all = f"<tag-pattern>~A<enter><tag-prefix><pipe-message>cat >> {out}<enter>"
    # Read INBOX, then change to another folder and read it too.
    keys = f"{pipe_all}<change-folder>=Archive<enter>{pipe_all}<quit>"
    await in_thread(run_mutt, muttrc, keys, tmp_path)
    piped = out.read_text()
    assert "Subject: first" in piped
    assert "Body of the second." in piped
    assert "An archived body." in piped
