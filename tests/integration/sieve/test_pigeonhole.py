"""Differential test: Postroom's Sieve and Pigeonhole's sieve-test decide the same actions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.sieve import (
    CompiledScript,
    Context,
    Envelope,
    FileInto,
    Keep,
    MessageView,
    Redirect,
    Reject,
    SieveSyntaxError,
    Vacation,
    compile_script,
    run,
)
from tests.sieve_corpus import MESSAGES, SCRIPTS, Sample

# Where the two differ, and why the RFC allows Postroom's answer. Keyed by (script, message).
_QUESTION_MARK = (
    "Pigeonhole 2.3 matches a pattern that starts with '?' and holds a '*' against any string;"
    " RFC 5228 §2.7.1: '?' is one character and the rest must match, so Postroom does not."
)
_CONTROL_IN_MAILBOX = (
    "The multi-line string leaves CRLF in the mailbox name; RFC 3501 §9 admits no CR or LF in"
    " a mailbox name, so Postroom's fileinto fails and the message is kept (RFC 5228 §2.10.6)."
)
_INCLUDE_MISSING = (
    "Pigeonhole resolves includes when it compiles and refuses the script; Postroom compiles"
    " each script alone (an included one may be uploaded later, RFC 6609 §3.2) and finds the"
    " missing script at run time, an error that keeps the message (RFC 5228 §2.10.6): the"
    " message is kept either way."
)
DIFFERENCES: dict[tuple[str, str], str] = {
    **{("include-missing", m.name): _INCLUDE_MISSING for m in MESSAGES},
    **{("header-matches-q", m): _QUESTION_MARK for m in ("list", "mime", "bounce", "big")},
    **{("syntax-multiline", m.name): _CONTROL_IN_MAILBOX for m in MESSAGES},
}

_CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = /dev/stderr
mail_location = maildir:{root}/mail
plugin {{
  sieve = file:{root}/scripts
  sieve_extensions = +vacation-seconds +ereject
  sieve_vacation_min_period = 0
}}
"""

ActionSet = frozenset[tuple[str, ...]]


@pytest.fixture(scope="module")
def pigeonhole() -> Iterator[Path]:
    if shutil.which("sieve-test") is None:
        pytest.fail("sieve-test (Debian dovecot-sieve) is not installed")
    root = Path(tempfile.mkdtemp(prefix="pigeonhole-", dir="/tmp"))
    root.chmod(0o777)
    for sub in ("run", "state", "mail", "scripts"):
        (root / sub).mkdir()
        (root / sub).chmod(0o777)
    (root / "dovecot.conf").write_text(_CONFIG.format(root=root))
    (root / "dovecot.conf").chmod(0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _pigeonhole_actions(root: Path, name: str, script: str, sample: Sample) -> ActionSet:
    script_path = root / "scripts" / f"{name}.sieve"
    if not script_path.exists():
        script_path.write_text(script)
        script_path.chmod(0o666)
    mail_path = root / f"{sample.name}.eml"
    if not mail_path.exists():
        mail_path.write_bytes(sample.raw)
        mail_path.chmod(0o644)
    command = ["sieve-test", "-c", str(root / "dovecot.conf")]
    command += ["-f", sample.sender, "-r", sample.recipient, "-a", sample.recipient]
    command += [str(script_path), str(mail_path)]
    if os.geteuid() == 0:
        # Dovecot refuses to read mail as root; run as nobody.
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(root), "PATH": os.environ["PATH"]},
    )
    output = done.stdout + done.stderr
    if "failed to compile" in output:
        return frozenset({("compile-error",)})
    if "resolved with successful implicit keep" in output:
        return frozenset({("fileinto", "INBOX", "")})
    assert done.returncode == 0, output
    actions: set[tuple[str, ...]] = set()
    current: list[str] | None = None
    flags: list[str] = []

    def close() -> None:
        if current is not None:
            actions.add((*current, " ".join(sorted(flags))))

    for line in output.splitlines():
        if line.startswith(" * "):
            close()
            current, flags = None, []
            text = line[3:]
            if text.startswith("store message in folder: "):
                current = ["fileinto", text.split(": ", 1)[1]]
            elif text.startswith("redirect message to: "):
                actions.add(("redirect", text.split(": ", 1)[1].strip("<>")))
            elif text.startswith("reject message with reason: "):
                actions.add(("reject", text.split(": ", 1)[1]))
            elif text.startswith("send vacation message"):
                actions.add(("vacation",))
            elif text == "discard":
                pass
            else:
                raise AssertionError(f"unknown sieve-test action line {line!r}")
        elif current is not None and line.strip().startswith("+ add IMAP flags: "):
            flags = line.split(": ", 1)[1].lower().split()
    close()
    return frozenset(actions)


def _postroom_actions(script: str, sample: Sample) -> ActionSet:
    try:
        compiled = compile_script(script)
    except SieveSyntaxError:
        return frozenset({("compile-error",)})
    # RFC 6609: include :personal names the other scripts of the corpus, as Pigeonhole's
    # sieve directory holds them.
    library = dict(SCRIPTS)

    def includes(location: str, name: str) -> CompiledScript | None:
        source = library.get(name) if location == "personal" else None
        return compile_script(source) if source is not None else None

    context = Context(
        MessageView(sample.raw), Envelope(sample.sender, sample.recipient), includes=includes
    )
    outcome = run(compiled, context)
    actions: set[tuple[str, ...]] = set()
    for action in outcome.actions:
        if isinstance(action, Keep):
            actions.add(("fileinto", "INBOX", " ".join(sorted(f.lower() for f in action.flags))))
        elif isinstance(action, FileInto):
            flags = " ".join(sorted(f.lower() for f in action.flags))
            actions.add(("fileinto", action.mailbox, flags))
        elif isinstance(action, Redirect):
            actions.add(("redirect", action.address))
        elif isinstance(action, Reject):
            actions.add(("reject", action.reason))
        elif isinstance(action, Vacation):
            # sieve-test lists the vacation action before the RFC 3834 checks (lists, bulk,
            # auto-submitted), which it makes only when sending; those are unit-tested.
            actions.add(("vacation",))
    return frozenset(actions)


CASES = [(name, script, sample) for name, script in SCRIPTS for sample in MESSAGES]


def test_the_corpus_is_large_enough() -> None:
    assert len(SCRIPTS) >= 60
    assert len(CASES) >= 300


@pytest.mark.parametrize(
    ("name", "script", "sample"), CASES, ids=[f"{n}-{s.name}" for n, _, s in CASES]
)
def test_actions_match_pigeonhole(pigeonhole: Path, name: str, script: str, sample: Sample) -> None:
    ours = _postroom_actions(script, sample)
    theirs = _pigeonhole_actions(pigeonhole, name, script, sample)
    if (name, sample.name) in DIFFERENCES:
        assert ours != theirs, "listed as a difference but both agree: remove it from the list"
        return
    assert ours == theirs


def test_every_listed_difference_names_a_case() -> None:
    names = {(n, s.name) for n, _, s in CASES}
    assert set(DIFFERENCES) <= names
    assert all(re.search(r"RFC \d+", why) for why in DIFFERENCES.values())
