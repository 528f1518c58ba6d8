"""ManageSieve (RFC 5804) as a sans-I/O state machine: bytes in, responses and requests out.

The session never touches a socket or the store. It parses commands (``CommandReader``),
answers what it can itself (CAPABILITY, NOOP, CHECKSCRIPT: compiling is pure code) and asks
the server for the rest with request events: ``StartTls``, ``Login``, ``Operation``. The server
carries them out and reports back (``tls_started``, ``login_succeeded``/``login_failed``,
``operation_done``), then feeds the session again.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from postroom import sasl
from postroom.sieve import EXTENSIONS, SieveSyntaxError, compile_script

# Outside literals a command is short; this bounds what a stranger can make us buffer.
MAX_LINE = 8192
MAX_ARGUMENTS = 8
IMPLEMENTATION = "Postroom"


_SASL_REFUSALS: dict[sasl.SaslProblem, str] = {
    "cancelled": "Authentication cancelled.",
    "malformed": "SASL PLAIN response is malformed.",
    "authzid": "Acting as another user is not allowed.",
}


class State(enum.Enum):
    NONAUTH = "non-authenticated"
    AUTH = "authenticated"
    CLOSED = "closed"


# RFC 5804 §2: the commands of each state.
COMMANDS_BY_STATE: dict[State, frozenset[str]] = {
    State.NONAUTH: frozenset({"AUTHENTICATE", "STARTTLS", "CAPABILITY", "LOGOUT", "NOOP"}),
    State.AUTH: frozenset(
        {
            "CAPABILITY",
            "LOGOUT",
            "NOOP",
            "PUTSCRIPT",
            "CHECKSCRIPT",
            "LISTSCRIPTS",
            "SETACTIVE",
            "GETSCRIPT",
            "DELETESCRIPT",
            "RENAMESCRIPT",
            "HAVESPACE",
            "UNAUTHENTICATE",
        }
    ),
    State.CLOSED: frozenset(),
}
_ALL_COMMANDS = frozenset().union(*COMMANDS_BY_STATE.values())
# Arguments each command takes: "s" a string, "n" a number; how many may be left out at the end.
_SHAPES: dict[str, tuple[str, int]] = {
    "AUTHENTICATE": ("ss", 1),
    "STARTTLS": ("", 0),
    "CAPABILITY": ("", 0),
    "LOGOUT": ("", 0),
    "NOOP": ("s", 1),
    "PUTSCRIPT": ("ss", 0),
    "CHECKSCRIPT": ("s", 0),
    "LISTSCRIPTS": ("", 0),
    "SETACTIVE": ("s", 0),
    "GETSCRIPT": ("s", 0),
    "DELETESCRIPT": ("s", 0),
    "RENAMESCRIPT": ("ss", 0),
    "HAVESPACE": ("sn", 0),
    "UNAUTHENTICATE": ("", 0),
}


class ProtocolError(Exception):
    """The client sent something that is not ManageSieve; the text goes after NO."""


class FatalProtocolError(ProtocolError):
    """The stream cannot be followed any more (a line or literal past the limits): BYE."""


@dataclass(frozen=True, slots=True)
class Atom:
    value: str


Token = Atom | bytes  # bytes: a quoted string or a literal, not yet decoded
Line = list[Token]


class CommandReader:
    """RFC 5804 §4: splits the byte stream into commands of atoms, quoted strings and
    literals ({n+} or {n}, both taken without a continuation)."""

    def __init__(self, *, max_literal: int) -> None:
        self.buffer = bytearray()
        self.max_literal = max_literal

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_line(self) -> Line | None:
        """The next whole command, or None until more bytes arrive."""
        buf = self.buffer
        i, n = 0, len(buf)
        tokens: Line = []
        plain = 0  # octets outside literals
        while True:
            if plain > MAX_LINE:
                raise FatalProtocolError("Line too long")
            if i >= n:
                if n - sum(len(t) for t in tokens if isinstance(t, bytes)) > MAX_LINE:
                    raise FatalProtocolError("Line too long")
                return None
            c = buf[i]
            if c == 0x20:
                i += 1
                plain += 1
            elif c == 0x0D or c == 0x0A:
                end = i + 1
                if c == 0x0D:
                    if end >= n:
                        return None
                    if buf[end] != 0x0A:
                        raise self._skip(end, "Bare CR in command")
                    end += 1
                del buf[:end]
                return tokens
            elif c == 0x22:  # '"'
                j, value = i + 1, bytearray()
                while True:
                    if j >= n:
                        if j - i > MAX_LINE:
                            raise FatalProtocolError("Line too long")
                        return None
                    d = buf[j]
                    if d == 0x22:
                        break
                    if d in (0x0D, 0x0A):
                        raise self._skip(j, "Quoted strings cannot hold CR or LF")
                    if d == 0x5C:  # backslash: RFC 5804 §4 QUOTED-SPECIALS
                        if j + 1 >= n:
                            return None
                        d = buf[j + 1]
                        if d not in (0x22, 0x5C):
                            raise self._skip(j, 'Only \\" and \\\\ may be escaped')
                        j += 1
                    value.append(d)
                    j += 1
                tokens.append(bytes(value))
                plain += j + 1 - i
                i = j + 1
            elif c == 0x7B:  # '{'
                close = buf.find(b"}", i, i + 24)
                if close < 0:
                    if n - i < 24:
                        return None
                    raise self._skip(i, "Bad literal")
                spec = bytes(buf[i + 1 : close])
                if spec.endswith(b"+"):
                    spec = spec[:-1]
                if not spec.isdigit():
                    raise self._skip(i, "Bad literal")
                size = int(spec)
                if size > self.max_literal:
                    raise FatalProtocolError("Literal too large")
                start = close + 1
                if n < start + 2:
                    return None
                if buf[start : start + 2] != b"\r\n":
                    raise self._skip(start, "A literal's length must end its line")
                if n < start + 2 + size:
                    return None
                tokens.append(bytes(buf[start + 2 : start + 2 + size]))
                plain += start + 2 - i
                i = start + 2 + size
            else:
                j = i
                while j < n and buf[j] not in (0x20, 0x0D, 0x0A, 0x22, 0x7B):
                    j += 1
                if j >= n:
                    if j - i > MAX_LINE:
                        raise FatalProtocolError("Line too long")
                    return None
                try:
                    tokens.append(Atom(bytes(buf[i:j]).decode("ascii")))
                except UnicodeDecodeError:
                    raise self._skip(j, "Commands are ASCII") from None
                plain += j - i
                i = j

    def _skip(self, at: int, reason: str) -> ProtocolError:
        # Drop the bad command up to its line's end so the next one can be read.
        end = self.buffer.find(b"\n", at)
        if end < 0:
            self.buffer.clear()
        else:
            del self.buffer[: end + 1]
        return ProtocolError(reason)


# --- what the session hands to the server --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """RFC 5804 §2.2: the OK is sent; negotiate TLS now, then call ``tls_started``."""


@dataclass(frozen=True, slots=True)
class Login:
    """Check this user and password (SASL PLAIN), then report the outcome."""

    user: str
    password: str


@dataclass(frozen=True, slots=True)
class Operation:
    """Work on the logged-in account's scripts; report with ``operation_done``."""

    command: Literal[
        "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT", "RENAMESCRIPT",
        "HAVESPACE",
    ]  # fmt: skip
    args: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Unauthenticated:
    """RFC 5804 §2.14: forget the account; the session is non-authenticated again."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection after writing everything before this event."""


Event: TypeAlias = Send | StartTls | Login | Operation | Unauthenticated | Close


# --- what the server reports back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    text: str = "Completed."
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """NO with an RFC 5804 §1.3 response code (NONEXISTENT, ACTIVE, QUOTA/MAXSIZE, ...)."""

    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    scripts: Sequence[tuple[str, bool]]  # name, active


@dataclass(frozen=True, slots=True)
class ScriptText:
    source: str


OperationResult = Done | Refused | Listing | ScriptText
LoginFailure = Literal["auth", "locked-out", "temp"]


def string(value: str) -> bytes:
    """RFC 5804 §4: a quoted string when it can be one, else a literal."""
    data = value.encode()
    if len(data) <= 1024 and b"\r" not in data and b"\n" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def _response(kind: str, text: str, code: str | None = None) -> Send:
    code_part = f" ({code})".encode() if code else b""
    return Send(kind.encode() + code_part + b" " + string(text) + b"\r\n")


def ok(text: str, code: str | None = None) -> Send:
    return _response("OK", text, code)


def no(text: str, code: str | None = None) -> Send:
    return _response("NO", text, code)


def bye(text: str, code: str | None = None) -> Send:
    return _response("BYE", text, code)


class ManageSieveSession:
    """One ManageSieve conversation from greeting to close."""

    def __init__(
        self,
        *,
        tls_available: bool,
        tls_active: bool = False,
        plaintext_allowed_without_tls: bool = False,
        max_script_size: int,
        max_redirects: int,
    ) -> None:
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_allowed_without_tls = plaintext_allowed_without_tls
        self.max_script_size = max_script_size
        self.max_redirects = max_redirects
        self.state = State.NONAUTH
        self.user: str | None = None
        # A literal may hold a whole script and its quoting.
        self.reader = CommandReader(max_literal=max_script_size + 1024)
        self._waiting: Literal["tls", "login", "operation"] | None = None
        self._sasl_pending = False

    # --- what the server calls ----------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        return self.tls_active or self.plaintext_allowed_without_tls

    def greeting(self) -> list[Event]:
        """RFC 5804 §1.7: the capabilities, then OK."""
        return [*self._capabilities(), ok(f"{IMPLEMENTATION} ManageSieve ready.")]

    def receive(self, data: bytes) -> list[Event]:
        """Bytes from the client; handles every whole command until one needs the server."""
        self.reader.feed(data)
        events: list[Event] = []
        while self._waiting is None and self.state is not State.CLOSED:
            try:
                line = self.reader.next_line()
            except FatalProtocolError as exc:
                self.state = State.CLOSED
                return [*events, bye(str(exc)), Close()]
            except ProtocolError as exc:
                self._sasl_pending = False
                events.append(no(str(exc)))
                continue
            if line is None:
                break
            events += self._line(line)
        return events

    def tls_started(self) -> list[Event]:
        """RFC 5804 §2.2: after the handshake, the capabilities again (now without
        STARTTLS, with SASL PLAIN), then OK."""
        self._waiting = None
        self.tls_active = True
        return [*self._capabilities(), ok("TLS negotiation successful.")]

    def tls_failed(self) -> list[Event]:
        self.state = State.CLOSED
        return [Close()]

    def login_succeeded(self, user: str) -> list[Event]:
        self._waiting = None
        self.state = State.AUTH
        self.user = user
        return [ok("Logged in.")]

    def login_failed(self, reason: LoginFailure) -> list[Event]:
        self._waiting = None
        if reason == "locked-out":
            return [no("Too many failed logins, try again later.", "TRYLATER")]
        if reason == "temp":
            return [no("The service is unavailable, try again later.", "TRYLATER")]
        return [no("Authentication failed.")]

    def operation_done(self, result: OperationResult) -> list[Event]:
        self._waiting = None
        if isinstance(result, Listing):
            lines = b"".join(
                string(name) + (b" ACTIVE" if active else b"") + b"\r\n"
                for name, active in result.scripts
            )
            return [Send(lines), ok("Listscripts completed.")]
        if isinstance(result, ScriptText):
            # RFC 5804 §2.9: the script as a literal, then OK.
            data = result.source.encode()
            return [Send(b"{%d}\r\n" % len(data) + data + b"\r\n"), ok("Getscript completed.")]
        if isinstance(result, Refused):
            return [no(result.text, result.code)]
        return [ok(result.text, result.code)]

    def idle_timeout(self) -> list[Event]:
        self.state = State.CLOSED
        return [bye("Disconnected for inactivity."), Close()]

    # --- commands -----------------------------------------------------------------------

    def _capabilities(self) -> list[Event]:
        lines = [
            ("IMPLEMENTATION", IMPLEMENTATION),
            ("SIEVE", " ".join(EXTENSIONS)),
            # RFC 5804 §1.7: SASL lists what may be used now; PLAIN needs TLS (or loopback).
            ("SASL", "PLAIN" if self.plaintext_allowed else ""),
            ("MAXREDIRECTS", str(self.max_redirects)),
            ("VERSION", "1.0"),
        ]
        words = [string(k) + b" " + string(v) for k, v in lines]
        if self.tls_available and not self.tls_active and self.state is State.NONAUTH:
            words.append(string("STARTTLS"))
        if self.state is State.AUTH:
            words.append(string("UNAUTHENTICATE"))  # RFC 5804 §2.14.1
        return [Send(b"".join(w + b"\r\n" for w in words))]

    def _line(self, line: Line) -> list[Event]:
        if self._sasl_pending:
            self._sasl_pending = False
            if len(line) != 1 or not isinstance(line[0], bytes):
                return [no("Expected a SASL response string.")]
            return self._sasl_plain(line[0])
        if not line:
            return [no("Empty command.")]
        head = line[0]
        if not isinstance(head, Atom):
            return [no("A command starts with its name.")]
        name = head.value.upper()
        if name not in COMMANDS_BY_STATE[self.state]:
            if name in _ALL_COMMANDS:
                return [no(f"{name} is not allowed in the {self.state.value} state.")]
            return [no("Unknown command.")]
        try:
            args = self._arguments(name, line[1:])
        except ProtocolError as exc:
            return [no(str(exc))]
        handler = getattr(self, "_cmd_" + name.lower())
        events: list[Event] = handler(*args)
        return events

    def _arguments(self, name: str, tokens: Sequence[Token]) -> list[str | int]:
        shape, optional = _SHAPES[name]
        if not len(shape) - optional <= len(tokens) <= len(shape):
            raise ProtocolError(f"Wrong number of arguments for {name}.")
        args: list[str | int] = []
        for kind, token in zip(shape, tokens, strict=False):
            if kind == "n":
                if not isinstance(token, Atom) or not token.value.isdigit():
                    raise ProtocolError(f"{name} expects a number.")
                args.append(int(token.value))
                continue
            if not isinstance(token, bytes):
                raise ProtocolError(f"{name} expects a string.")
            try:
                args.append(token.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError("Strings must be UTF-8.") from None
        return args

    def _cmd_capability(self) -> list[Event]:
        return [*self._capabilities(), ok("Capability completed.")]

    def _cmd_noop(self, tag: str | None = None) -> list[Event]:
        if tag is not None:
            # RFC 5804 §2.11: the argument comes back in a TAG response code.
            return [Send(b"OK (TAG " + string(tag) + b') "Done"\r\n')]
        return [ok("Done.")]

    def _cmd_logout(self) -> list[Event]:
        self.state = State.CLOSED
        return [ok("Logout completed."), Close()]

    def _cmd_starttls(self) -> list[Event]:
        if not self.tls_available or self.tls_active:
            return [no("STARTTLS is not available.")]
        self._waiting = "tls"
        return [ok("Begin TLS negotiation now."), StartTls()]

    def _cmd_authenticate(self, mechanism: str, initial: str | None = None) -> list[Event]:
        if mechanism.upper() != "PLAIN":
            return [no(f"Unsupported SASL mechanism {mechanism}.")]
        if not self.plaintext_allowed:
            # RFC 5804 §1.3: ENCRYPT-NEEDED, use STARTTLS first.
            return [no("Plaintext authentication needs TLS; use STARTTLS.", "ENCRYPT-NEEDED")]
        if initial is None:
            # RFC 5804 §2.1: an empty challenge; the client answers with a string.
            self._sasl_pending = True
            return [Send(b'""\r\n')]
        return self._sasl_plain(initial.encode())

    def _sasl_plain(self, response: bytes) -> list[Event]:
        # RFC 4616 §2 with the one authzid rule of every protocol (postroom.sasl).
        try:
            credentials = sasl.decode_plain(sasl.decode_response(response))
        except sasl.SaslError as exc:
            return [no(_SASL_REFUSALS[exc.problem])]  # RFC 5804 §2.1
        self._waiting = "login"
        return [Login(credentials.identity, credentials.secret)]

    def _cmd_unauthenticate(self) -> list[Event]:
        self.state = State.NONAUTH
        self.user = None
        return [Unauthenticated(), ok("Unauthenticate completed.")]

    def _check_size(self, size: int) -> list[Event] | None:
        if size > self.max_script_size:
            return [no(f"Scripts are at most {self.max_script_size} octets.", "QUOTA/MAXSIZE")]
        return None

    def _cmd_havespace(self, name: str, size: int) -> list[Event]:
        refused = self._check_size(size)
        if refused is not None:
            return refused
        self._waiting = "operation"
        return [Operation("HAVESPACE", (name, size))]

    def _cmd_checkscript(self, source: str) -> list[Event]:
        refused = self._check_size(len(source.encode()))
        if refused is not None:
            return refused
        try:
            compile_script(source, max_size=self.max_script_size)
        except SieveSyntaxError as exc:
            return [no(str(exc))]  # RFC 5804 §2.12: the error, with the script line
        return [ok("Script is valid.")]

    def _cmd_putscript(self, name: str, source: str) -> list[Event]:
        refused = self._check_size(len(source.encode()))
        if refused is not None:
            return refused
        self._waiting = "operation"
        return [Operation("PUTSCRIPT", (name, source))]

    def _cmd_listscripts(self) -> list[Event]:
        self._waiting = "operation"
        return [Operation("LISTSCRIPTS", ())]

    def _cmd_setactive(self, name: str) -> list[Event]:
        self._waiting = "operation"
        return [Operation("SETACTIVE", (name,))]

    def _cmd_getscript(self, name: str) -> list[Event]:
        self._waiting = "operation"
        return [Operation("GETSCRIPT", (name,))]

    def _cmd_deletescript(self, name: str) -> list[Event]:
        self._waiting = "operation"
        return [Operation("DELETESCRIPT", (name,))]

    def _cmd_renamescript(self, old: str, new: str) -> list[Event]:
        self._waiting = "operation"
        return [Operation("RENAMESCRIPT", (old, new))]
