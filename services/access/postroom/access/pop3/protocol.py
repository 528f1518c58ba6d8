"""POP3 (RFC 1939, 2449, 2595, 5034) as a sans-I/O state machine: lines in, replies out.

The session never touches a socket or the store. It answers what it can from what it knows
(the maildrop listing it was handed at login) and asks the server for the rest with request
events: ``StartTls``, ``Login``, ``SendMessage``, ``Update``. The server carries them out and
reports back (``tls_started``, ``login_succeeded``/``login_failed``, ``update_done``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from postroom import sasl

# RFC 2449 §4 limits commands to 255 octets, but long passwords and SASL responses
# (RFC 5034 §4) need more; this bounds what a stranger can make us buffer.
MAX_LINE = 4096
# RFC 1939 §3: a message number is a decimal number; no maildrop holds 10**10 messages.
_MAX_NUMBER_DIGITS = 10
IMPLEMENTATION = "Postroom"


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"  # QUIT given; the server is applying the changes, then closes
    CLOSED = "CLOSED"


# Which commands each state knows (RFC 1939 §4-7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
COMMANDS_BY_STATE: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset({"USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT", "APOP"}),
    State.TRANSACTION: frozenset(
        {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "QUIT"}
    ),
    State.UPDATE: frozenset(),
    State.CLOSED: frozenset(),
}
_ALL_COMMANDS = frozenset().union(*COMMANDS_BY_STATE.values())

LoginFailure = Literal["auth", "locked-out", "in-use", "temp"]

_LOGIN_FAILURES: dict[LoginFailure, bytes] = {
    # RFC 3206 / RFC 5034 §4: [AUTH] says the credentials were wrong.
    "auth": b"-ERR [AUTH] Authentication failed\r\n",
    "locked-out": b"-ERR [AUTH] Too many failed logins, try again later\r\n",
    # RFC 2449 §8.1.1: [IN-USE] says another session holds the maildrop.
    "in-use": b"-ERR [IN-USE] The maildrop is in use by another session\r\n",
    # RFC 3206 §4: [SYS/TEMP] is a passing problem of the server.
    "temp": b"-ERR [SYS/TEMP] The mail store is unavailable, try again later\r\n",
}

R_PLAINTEXT_DISALLOWED = (
    b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS\r\n"
)
R_LINE_TOO_LONG = b"-ERR Line too long\r\n"
R_AUTOLOGOUT = b"-ERR Disconnected for inactivity\r\n"


class CommandError(Exception):
    """A line that is not a POP3 command; the text is the reason given after -ERR."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # upper case
    args: tuple[str, ...]
    rest: str  # everything after the keyword and its space (PASS takes it whole)


def parse_command(line: bytes) -> Command:
    """Parse one command line (with or without its CRLF).

    RFC 1939 §3: a case-insensitive keyword of three or four characters, then arguments
    separated by single spaces. Tolerated: a bare LF, several spaces between arguments.
    """
    if len(line) > MAX_LINE:
        raise CommandError("Line too long")
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("Command is not valid UTF-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise CommandError("Control characters in command")
    keyword, _, rest = text.partition(" ")
    if not keyword:
        raise CommandError("Empty command" if not rest else "Command must not start with a space")
    if not (3 <= len(keyword) <= 4 and keyword.isascii() and keyword.isalpha()):
        raise CommandError("Unknown command")
    # Only the ASCII space separates (RFC 1939 §3); other white space belongs to the argument.
    return Command(keyword.upper(), tuple(arg for arg in rest.split(" ") if arg), rest)


# --- events the session hands to the server ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """RFC 2595 §4: the +OK is sent; negotiate TLS now, then call ``tls_started``."""


@dataclass(frozen=True, slots=True)
class Login:
    """Check this user name and password, lock the maildrop, then report the outcome."""

    user: str
    password: str = ""


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Write ``header``, then the message dot-stuffed (only the header and ``body_lines``
    lines of the body when given: TOP), then the terminator."""

    number: int
    uid: int
    size: int
    header: bytes
    body_lines: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """RFC 1939 §6: remove these messages, mark these \\Seen, then call ``update_done``."""

    delete_uids: tuple[int, ...]
    seen_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (after writing everything before this event)."""


Event: TypeAlias = Send | StartTls | Login | SendMessage | Update | Close


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the maildrop as the session sees it: number = index + 1."""

    uid: int
    size: int


def _ok(text: str) -> Send:
    return Send(f"+OK {text}\r\n".encode())


def _err(text: str) -> Send:
    return Send(f"-ERR {text}\r\n".encode())


def _multiline(first: str, lines: Sequence[str]) -> Send:
    # None of these lines starts with ".", so none needs stuffing.
    body = "".join(f"{line}\r\n" for line in lines)
    return Send(f"+OK {first}\r\n{body}.\r\n".encode())


class Pop3Session:
    """One POP3 conversation from greeting to close."""

    def __init__(
        self,
        *,
        hostname: str,
        tls_available: bool,
        tls_active: bool = False,
        plaintext_allowed_without_tls: bool = False,
    ) -> None:
        self.hostname = hostname
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_allowed_without_tls = plaintext_allowed_without_tls
        self.state = State.AUTHORIZATION
        self.user: str | None = None
        self.uid_validity = 0
        self.entries: tuple[Entry, ...] = ()
        self.deleted: set[int] = set()  # message numbers
        self.retrieved: set[int] = set()
        self._sasl_pending = False
        self._waiting: Literal["tls", "login", "update"] | None = None

    # --- what the server calls ----------------------------------------------------------

    def greeting(self) -> bytes:
        return f"+OK {self.hostname} POP3 server ready\r\n".encode()

    @property
    def plaintext_allowed(self) -> bool:
        return self.tls_active or self.plaintext_allowed_without_tls

    def receive_line(self, line: bytes) -> list[Event]:
        """One line from the client (a command, or a SASL response during AUTH)."""
        if self.state in (State.UPDATE, State.CLOSED) or self._waiting is not None:
            return [_err("Busy with the previous command")]
        if self._sasl_pending:
            self._sasl_pending = False
            return self._sasl_response(line)
        try:
            command = parse_command(line)
        except CommandError as exc:
            return [_err(str(exc))]
        if command.name not in COMMANDS_BY_STATE[self.state]:
            if command.name in _ALL_COMMANDS:
                return [_err(f"{command.name} is not valid in the {self.state.value} state")]
            return [_err("Unknown command")]
        handler = getattr(self, "_cmd_" + command.name.lower())
        events: list[Event] = handler(command)
        return events

    def line_too_long(self) -> list[Event]:
        """The client sent a line longer than MAX_LINE (the server discarded it)."""
        self._sasl_pending = False
        return [Send(R_LINE_TOO_LONG)]

    def idle_timeout(self) -> list[Event]:
        """RFC 1939 §3: the autologout timer expired; close without entering UPDATE."""
        self.state = State.CLOSED
        return [Send(R_AUTOLOGOUT), Close()]

    def tls_started(self) -> None:
        self._waiting = None
        self.tls_active = True
        # RFC 2595 §4: forget what the client said before TLS.
        self.user = None

    def tls_failed(self) -> list[Event]:
        self.state = State.CLOSED
        return [Close()]

    def login_succeeded(self, entries: Sequence[Entry], uid_validity: int) -> list[Event]:
        """The maildrop is locked and listed: RFC 1939 §4, enter TRANSACTION."""
        self._waiting = None
        self.state = State.TRANSACTION
        self.entries = tuple(entries)
        self.uid_validity = uid_validity
        count, size = self._stat()
        return [_ok(f"Logged in, maildrop has {count} messages ({size} octets)")]

    def login_failed(self, reason: LoginFailure) -> list[Event]:
        # RFC 1939 §7 (PASS): after a failure the session stays in AUTHORIZATION, and a new
        # USER is needed.
        self._waiting = None
        self.user = None
        return [Send(_LOGIN_FAILURES[reason])]

    def update_done(self, ok: bool) -> list[Event]:
        """RFC 1939 §6: the outcome of removing the messages marked deleted."""
        self._waiting = None
        self.state = State.CLOSED
        if not ok:
            return [
                Send(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n"),
                Close(),
            ]
        left = len(self.entries) - len(self.deleted)
        return [_ok(f"{self.hostname} POP3 server signing off ({left} messages left)"), Close()]

    # --- AUTHORIZATION --------------------------------------------------------------------

    def _cmd_capa(self, command: Command) -> list[Event]:
        # RFC 2449 §5-6.
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.plaintext_allowed:
            caps += ["USER", "SASL PLAIN"]
        # RFC 2595 §4: STLS only where it can be used: before TLS, before login.
        if self.tls_available and not self.tls_active and self.state is State.AUTHORIZATION:
            caps.append("STLS")
        caps.append(f"IMPLEMENTATION {IMPLEMENTATION}")
        return [_multiline("Capability list follows", caps)]

    def _cmd_quit(self, command: Command) -> list[Event]:
        if self.state is State.AUTHORIZATION:
            # RFC 1939 §4: QUIT before login ends the session, no UPDATE state.
            self.state = State.CLOSED
            return [_ok(f"{self.hostname} POP3 server signing off"), Close()]
        # RFC 1939 §6: QUIT from TRANSACTION enters UPDATE.
        self.state = State.UPDATE
        delete = tuple(self.entries[n - 1].uid for n in sorted(self.deleted))
        seen = tuple(self.entries[n - 1].uid for n in sorted(self.retrieved - self.deleted))
        if not delete and not seen:
            return self.update_done(True)
        self._waiting = "update"
        return [Update(delete, seen)]

    def _cmd_stls(self, command: Command) -> list[Event]:
        if command.args:
            return [_err("STLS takes no argument")]
        if self.tls_active:
            return [_err("TLS is already active")]
        if not self.tls_available:
            return [_err("TLS is not available")]
        self._waiting = "tls"
        return [_ok("Begin TLS negotiation"), StartTls()]

    def _cmd_user(self, command: Command) -> list[Event]:
        if not self.plaintext_allowed:
            return [Send(R_PLAINTEXT_DISALLOWED)]
        if len(command.args) != 1:
            return [_err("USER takes exactly one argument, the mailbox name")]
        self.user = command.args[0]
        # The same answer for every name: no telling which mailboxes exist.
        return [_ok("Send PASS")]

    def _cmd_pass(self, command: Command) -> list[Event]:
        if not self.plaintext_allowed:
            return [Send(R_PLAINTEXT_DISALLOWED)]
        if self.user is None:
            return [_err("Send USER first")]
        # RFC 1939 §7: PASS has one argument, which may contain spaces.
        if not command.rest:
            return [_err("PASS takes the password as its argument")]
        user, self.user = self.user, None
        self._waiting = "login"
        return [Login(user, command.rest)]

    def _cmd_apop(self, command: Command) -> list[Event]:
        return [_err("APOP is not supported, use USER/PASS or AUTH PLAIN")]

    def _cmd_auth(self, command: Command) -> list[Event]:
        if not command.args:
            # Not in RFC 5034, but clients (fetchmail, Outlook) list mechanisms this way.
            mechanisms = ["PLAIN"] if self.plaintext_allowed else []
            return [_multiline("Mechanisms follow", mechanisms)]
        if len(command.args) > 2:
            return [_err("AUTH takes a mechanism and an optional initial response")]
        if command.args[0].upper() != "PLAIN":
            return [_err("Unsupported authentication mechanism")]
        if not self.plaintext_allowed:
            return [Send(R_PLAINTEXT_DISALLOWED)]
        if len(command.args) == 2:
            return self._sasl_response(command.args[1].encode())
        # RFC 5034 §4: an empty challenge.
        self._sasl_pending = True
        return [Send(b"+ \r\n")]

    def _sasl_response(self, line: bytes) -> list[Event]:
        # RFC 5034 §4 and RFC 4616 §2, decoded by the one SASL module of every protocol.
        try:
            decoded = sasl.decode_response(line.rstrip(b"\r\n"))
        except sasl.SaslError as exc:
            if exc.problem == "cancelled":
                return [_err("Authentication cancelled")]
            return [_err("Invalid base64 in the SASL response")]
        try:
            credentials = sasl.decode_plain(decoded)
        except sasl.SaslError:
            # Acting as another user (a different authzid) is not offered.
            return [Send(_LOGIN_FAILURES["auth"])]
        self._waiting = "login"
        return [Login(credentials.identity, credentials.secret)]

    # --- TRANSACTION ----------------------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        live = [e for n, e in enumerate(self.entries, 1) if n not in self.deleted]
        return len(live), sum(e.size for e in live)

    def _message(self, text: str) -> int | Send:
        """The number of a live message, or the -ERR that says why it isn't one."""
        if not (text.isascii() and text.isdigit()) or len(text) > _MAX_NUMBER_DIGITS:
            return _err(f"Invalid message number {text[:20]!r}")
        number = int(text)
        if not 1 <= number <= len(self.entries):
            return _err(f"No such message, only {len(self.entries)} messages in maildrop")
        if number in self.deleted:
            # RFC 1939 §5: a message marked deleted may not be referred to.
            return _err(f"Message {number} already deleted")
        return number

    def _one_message(self, command: Command) -> int | Send:
        if len(command.args) != 1:
            return _err(f"{command.name} takes one argument, a message number")
        return self._message(command.args[0])

    def _cmd_stat(self, command: Command) -> list[Event]:
        if command.args:
            return [_err("STAT takes no argument")]
        count, size = self._stat()
        # RFC 1939 §5: exactly "+OK nn mm".
        return [_ok(f"{count} {size}")]

    def _cmd_list(self, command: Command) -> list[Event]:
        if len(command.args) > 1:
            return [_err("LIST takes at most one argument")]
        if command.args:
            number = self._message(command.args[0])
            if isinstance(number, Send):
                return [number]
            return [_ok(f"{number} {self.entries[number - 1].size}")]
        count, size = self._stat()
        lines = [f"{n} {e.size}" for n, e in enumerate(self.entries, 1) if n not in self.deleted]
        return [_multiline(f"{count} messages ({size} octets)", lines)]

    def _cmd_uidl(self, command: Command) -> list[Event]:
        if len(command.args) > 1:
            return [_err("UIDL takes at most one argument")]
        if command.args:
            number = self._message(command.args[0])
            if isinstance(number, Send):
                return [number]
            return [_ok(f"{number} {self.unique_id(self.entries[number - 1])}")]
        lines = [
            f"{n} {self.unique_id(e)}"
            for n, e in enumerate(self.entries, 1)
            if n not in self.deleted
        ]
        return [_multiline("Unique-ID listing follows", lines)]

    def unique_id(self, entry: Entry) -> str:
        """RFC 1939 §7: the same message has the same id in every session, and no id is ever
        used twice. A UID is never reused under one UIDVALIDITY, and a mailbox that could
        reuse UIDs gets a new UIDVALIDITY (RFC 3501 §2.3.1.1), so the pair is such an id."""
        return f"{self.uid_validity}.{entry.uid}"

    def _cmd_retr(self, command: Command) -> list[Event]:
        number = self._one_message(command)
        if isinstance(number, Send):
            return [number]
        entry = self.entries[number - 1]
        self.retrieved.add(number)
        # RFC 1939 §5 (RETR) / §11: the octet count is the size LIST gives.
        header = f"+OK {entry.size} octets\r\n".encode()
        return [SendMessage(number, entry.uid, entry.size, header)]

    def _cmd_top(self, command: Command) -> list[Event]:
        if len(command.args) != 2:
            return [_err("TOP takes two arguments, a message number and a line count")]
        number = self._message(command.args[0])
        if isinstance(number, Send):
            return [number]
        lines = command.args[1]
        if not (lines.isascii() and lines.isdigit()) or len(lines) > _MAX_NUMBER_DIGITS:
            return [_err(f"Invalid line count {lines[:20]!r}")]
        entry = self.entries[number - 1]
        header = b"+OK Top of message follows\r\n"
        return [SendMessage(number, entry.uid, entry.size, header, body_lines=int(lines))]

    def _cmd_dele(self, command: Command) -> list[Event]:
        number = self._one_message(command)
        if isinstance(number, Send):
            return [number]
        self.deleted.add(number)
        return [_ok(f"Message {number} deleted")]

    def _cmd_noop(self, command: Command) -> list[Event]:
        if command.args:
            return [_err("NOOP takes no argument")]
        return [Send(b"+OK\r\n")]

    def _cmd_rset(self, command: Command) -> list[Event]:
        if command.args:
            return [_err("RSET takes no argument")]
        # RFC 1939 §5: unmark every deleted message. The \Seen marks RETR would set at QUIT
        # are dropped too (as Dovecot does): RSET undoes the whole session.
        self.deleted.clear()
        self.retrieved.clear()
        count, size = self._stat()
        return [_ok(f"Maildrop has {count} messages ({size} octets)")]


# --- message transmission (RFC 1939 §3) ----------------------------------------------------


# A line that starts with a dot, after the first. The regular expression engine finds it
# about four times faster than bytes.replace (CPython 3.11's substring search is slow for
# this two-octet pattern in text with many dots and n's), with or without dots in the text.
_LF_DOT = re.compile(rb"\n\.")


class DotStuffer:
    """Byte-stuff a message for a multi-line response, chunk by chunk.

    RFC 1939 §3: a line that starts with "." gets another "." in front; the response ends
    with CRLF "." CRLF. Lines are split at every LF, so that a message with bare LFs cannot
    end the response early in a client that splits lines at LF. A message that does not end
    with CRLF gets one before the terminator; that CRLF is framing, not counted in the size.
    """

    def __init__(self) -> None:
        self._at_line_start = True
        self._tail = b""  # the last two bytes sent

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        out = _LF_DOT.sub(b"\n..", chunk)
        if self._at_line_start and out.startswith(b"."):
            out = b"." + out
        self._at_line_start = chunk.endswith(b"\n")
        self._tail = (self._tail + chunk[-2:])[-2:]
        return out

    def end(self) -> bytes:
        if self._tail == b"\r\n" or (self._tail == b"" and self._at_line_start):
            return b".\r\n"
        return b"\r\n.\r\n"


class TopFilter:
    """RFC 1939 §7 (TOP): pass the header, the blank line and ``lines`` lines of the body."""

    def __init__(self, lines: int) -> None:
        self.remaining = lines
        self.in_header = True
        self.done = False
        self._partial = b""  # the start of the current line, enough to tell if it is empty

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        pos = 0
        while pos < len(chunk):
            if not self.in_header and self.remaining <= 0:
                self.done = True
                return chunk[:pos]
            newline = chunk.find(b"\n", pos)
            if newline < 0:
                self._partial = (self._partial + chunk[pos:])[:2]
                return chunk
            line_start = self._partial + chunk[pos:newline]
            self._partial = b""
            if self.in_header:
                if line_start in (b"", b"\r"):
                    self.in_header = False
            else:
                self.remaining -= 1
            pos = newline + 1
        if not self.in_header and self.remaining <= 0:
            self.done = True
        return chunk
