"""The IMAP session (RFC 3501 §3, §6, §7; RFC 9051 once a client enables IMAP4rev2):
parsed commands in, responses out.

The session knows the protocol, not the network: the server hands it each parsed command
and it writes responses through an injected ``send``, reading and writing mail through the
store on connections from an injected ``connection`` factory. What needs the network — a
TLS handshake, the line after an AUTHENTICATE challenge, the wait of IDLE — is returned to
the server as a `Next` step, which calls back (`auth_response`, `idle_changed`,
`idle_done`).

The selected mailbox is a `View`: the UIDs in sequence-number order as this session knows
them, the highest modseq it has seen and the UIDs expunged elsewhere that it has not yet
announced. RFC 3501 §7.4.1 decides when changes may be announced: EXPUNGE never during
FETCH, STORE or SEARCH (their UID forms excepted), EXISTS and FETCH FLAGS after any command.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field, replace

from postroom import sasl, store
from postroom.access.imap import binary, quota, sort, threads, uidcache, wire
from postroom.access.imap import fetch as f
from postroom.access.imap import parser as p
from postroom.access.imap import search as sr
from postroom.db import Conn
from postroom.errors import (
    AlreadyExists,
    HasChildren,
    InvalidInput,
    LimitExceeded,
    NotFound,
    QuotaExceeded,
    StoreError,
)
from postroom.store import mailboxes as store_mailboxes
from postroom.store import messages as store_messages
from postroom.store import search as store_search
from postroom.store import sorting as store_sorting
from postroom.store.mailboxes import DELIMITER
from postroom.store.types import (
    Account,
    BlobId,
    FlagMode,
    Mailbox,
    MailboxId,
    MailboxStatus,
    Message,
    MessageContent,
)

IMPLEMENTATION = "Postroom"
# Messages whose structure is read from the store per round trip of a FETCH.
FETCH_BATCH = 500
FLAGS_BATCH = 5000
# FETCH FLAGS of this many messages or more reads the whole mailbox's flags, kept by the
# process (uidcache.FLAGS).
FLAGS_KEPT_FROM = 1000
# Response octets gathered before they are written.
FLUSH_AT = 64 * 1024
# A body section larger than this is written in chunks as it is read.
STREAM_CHUNK = 256 * 1024

# RFC 9051 Appendix A: both revisions; a client gets IMAP4rev2 with ENABLE IMAP4rev2.
CAPABILITIES = (
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR IDLE UIDPLUS MOVE NAMESPACE ID ENABLE UNSELECT"
    " CHILDREN SPECIAL-USE"
    f" {quota.CAPABILITIES} CONDSTORE QRESYNC ESEARCH STATUS=SIZE CREATE-SPECIAL-USE"
    " LIST-EXTENDED LIST-STATUS MULTIAPPEND BINARY COMPRESS=DEFLATE"
)
# RFC 5256 SORT and THREAD, RFC 5182 SEARCHRES.
CAPABILITIES += " SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES SEARCHRES"
SYSTEM_FLAGS = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_AUTHENTICATED = _ANY | {
    "ENABLE", "NAMESPACE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
    "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
    "COMPRESS",
}  # fmt: skip
# RFC 3501 §3: which commands each state allows.
COMMANDS_BY_STATE: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | {"STARTTLS", "AUTHENTICATE", "LOGIN"},
    State.AUTHENTICATED: frozenset(_AUTHENTICATED),
    State.SELECTED: frozenset(
        _AUTHENTICATED
        | {"CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UNSELECT"}
        | {"SORT", "THREAD"}
    ),
    State.LOGOUT: frozenset(),
}
# RFC 3501 §7.4.1: no EXPUNGE response while one of these (not the UID form) is answered.
# RFC 5256 §3: SORT and THREAD are SEARCH's kin.
_NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH", "SORT", "THREAD"})
# RFC 9051 Appendix E items 17 and 19: commands IMAP4rev2 does not have, refused once it is
# enabled, saying what to use instead.
_REMOVED_IN_REV2: dict[str, str] = {
    "LSUB": "LSUB is not part of IMAP4rev2, use LIST (SUBSCRIBED)",
    "CHECK": "CHECK is not part of IMAP4rev2, use NOOP",
}
_FLAG_MODES: dict[str, FlagMode] = {"replace": "set", "add": "add", "remove": "remove"}


class Next(enum.Enum):
    """What the server does after a command."""

    READ = "read"  # read the next command
    STARTTLS = "starttls"  # handshake, then `tls_started`
    AUTH_LINE = "auth-line"  # read one raw line, then `auth_response`
    IDLE = "idle"  # wait for changes (`idle_changed`) or a line (`idle_done`)
    COMPRESS = "compress"  # both directions are DEFLATE from now on (RFC 4978)
    CLOSE = "close"  # the session is over


class LoginRefused(Exception):
    """The server's authenticator refused a login; ``text`` follows the tagged NO."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


Send = Callable[[bytes], Awaitable[None]]
Connect = Callable[[], AbstractAsyncContextManager[Conn]]
# (username, password) → the account; raises LoginRefused. Throttling lives behind it.
Authenticator = Callable[[str, str], Awaitable[Account]]


@dataclass
class View:
    """The selected mailbox as this session sees it (RFC 3501 §2.3.1.2)."""

    mailbox: Mailbox
    read_only: bool
    # The sequence-number map. Replaced, never changed in place: the list may be the one
    # kept by the process for the next SELECT (uidcache.UIDS).
    uids: list[int]
    modseq: int
    recent: list[tuple[int, int]]
    pending_expunge: set[int] = field(default_factory=set)
    # Keywords announced in FLAGS and PERMANENTFLAGS (RFC 3501 §7.2.6), in that order.
    keywords: dict[str, None] = field(default_factory=dict)
    # Flag changes this session already announced, uid → modseq, not to repeat them.
    announced: dict[int, int] = field(default_factory=dict)
    # RFC 9051 (IMAP4rev2 enabled): no \Recent, so nothing is ever recent in this view.
    no_recent: bool = False
    # RFC 5182 §2.1: the saved search result "$", UIDs; empty on every SELECT.
    saved: list[int] = field(default_factory=list)

    def saved_uids(self) -> list[int]:
        """RFC 5182 §2.4: "$" without the messages expunged since it was saved."""
        return [uid for uid in self.saved if self.seq(uid) is not None]

    def seq(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def is_recent(self, uid: int) -> bool:
        return any(low <= uid <= high for low, high in self.recent)

    def recent_count(self) -> int:
        # The claimed ranges never overlap (each claim starts where the last one ended).
        return sum(
            bisect_right(self.uids, high) - bisect_left(self.uids, low) for low, high in self.recent
        )

    def add_recent(self, low: int, high: int) -> None:
        """UIDs ``low..high-1`` were claimed as recent for this session (`claim_recent`)."""
        if high <= low or self.no_recent:
            return
        if self.recent and self.recent[-1][1] + 1 == low:
            self.recent[-1] = (self.recent[-1][0], high - 1)
        else:
            self.recent.append((low, high - 1))


class Session:
    """One IMAP connection's protocol state."""

    def __init__(
        self,
        *,
        send: Send,
        connection: Connect,
        authenticate: Authenticator,
        tls: bool = False,
        tls_available: bool = True,
        plaintext_allowed: bool = False,
        hostname: str = "localhost",
        on_transfer: Callable[[Mailbox, Mailbox, list[tuple[int, int]]], None] | None = None,
        append_limit: int | None = None,
    ) -> None:
        self.append_limit = append_limit  # RFC 7889 APPENDLIMIT, octets
        self._send = send
        # Told of each COPY/MOVE (source, target, UID pairs): Junk teaches the spam filter.
        self._on_transfer = on_transfer
        self._connection = connection
        self._authenticate = authenticate
        self.tls = tls
        self.tls_available = tls_available
        self.plaintext_allowed = plaintext_allowed
        self.hostname = hostname
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.view: View | None = None
        self._out = bytearray()
        self._pending_tag = ""
        self._idle_tag: str | None = None
        # RFC 7162 §3.1, §3.2.3: enabled by ENABLE or by a command that uses them.
        self.condstore = False
        self.qresync = False
        self.compressed = False  # RFC 4978 COMPRESS=DEFLATE is on
        self.rev2 = False  # ENABLE IMAP4rev2 (RFC 9051 §6.3.1)
        # The selected mailbox's row as a command that writes nothing read it on its way
        # (one tuple; None inside when it is gone): the poll after it needs no look of its own.
        self._looked: tuple[Mailbox | None] | None = None

    # --- output ---------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        self._out += data

    async def flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            await self._send(data)

    async def _maybe_flush(self) -> None:
        if len(self._out) >= FLUSH_AT:
            await self.flush()

    def _tagged(self, tag: str, status: str, text: str) -> None:
        if not self.rev2 and not text.isascii():
            # RFC 3501 §9: resp-text is 7-bit (TEXT-CHAR); RFC 9051 Appendix E item 24: only
            # after ENABLE IMAP4rev2 may it carry UTF-8 (a mailbox name in an error, say).
            text = text.encode("ascii", "replace").decode("ascii")
        self._emit(f"{tag} {status} {text}\r\n".encode())

    def capability(self) -> str:
        caps = CAPABILITIES
        if self.append_limit is not None:
            caps += f" APPENDLIMIT={self.append_limit}"  # RFC 7889 §3
        if not self.tls and self.tls_available and self.state is State.NOT_AUTHENTICATED:
            caps += " STARTTLS"
        if self.state is State.NOT_AUTHENTICATED:
            # RFC 3501 §6.2.3: LOGINDISABLED when passwords may not be sent yet.
            caps += " AUTH=PLAIN" if self.plaintext_allowed else " LOGINDISABLED"
        return caps

    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY {self.capability()}] {IMPLEMENTATION} ready\r\n".encode()

    # --- the command loop ------------------------------------------------------------------

    async def handle(self, command: p.Command) -> Next:
        """Answer one command; returns what the server does next."""
        if command.name not in COMMANDS_BY_STATE[self.state]:
            self._tagged(command.tag, "BAD", f"{command.name} not allowed in {self.state.value}")
            await self.flush()
            return Next.READ
        if self.rev2 and command.name in _REMOVED_IN_REV2:
            self._tagged(command.tag, "BAD", _REMOVED_IN_REV2[command.name])
            await self.flush()
            return Next.READ
        handler = getattr(self, "_cmd_" + command.name.lower())
        self._looked = None
        try:
            step: Next = await handler(command)
        except p.ImapSyntaxError as exc:
            if exc.kind is p.ErrorKind.MAILBOX_NAME:
                # A well-formed astring that names no mailbox this server can have: the
                # command is understood, so it fails with NO, as for a missing mailbox.
                self._tagged(command.tag, "NO", f"[CANNOT] {exc.message}")
            else:
                self._tagged(command.tag, "BAD", exc.message)
            step = Next.READ
        except HasChildren as exc:
            # RFC 9051 §6.3.5: a name with inferior names that cannot be deleted.
            self._tagged(command.tag, "NO", f"[HASCHILDREN] {exc}")
            step = Next.READ
        except InvalidInput as exc:
            self._tagged(command.tag, "NO", str(exc))
            step = Next.READ
        except NotFound as exc:
            self._tagged(command.tag, "NO", f"[NONEXISTENT] {exc}")
            step = Next.READ
        except AlreadyExists as exc:
            self._tagged(command.tag, "NO", f"[ALREADYEXISTS] {exc}")
            step = Next.READ
        except LimitExceeded as exc:
            # RFC 5530 §3: LIMIT, a server limit (a statement timeout, a search's size).
            self._tagged(command.tag, "NO", f"[LIMIT] {exc}")
            step = Next.READ
        except QuotaExceeded as exc:
            # RFC 9208 §4.3: OVERQUOTA, and nothing of the command was done.
            self._tagged(command.tag, "NO", f"[OVERQUOTA] {exc}")
            step = Next.READ
        except StoreError as exc:
            self._tagged(command.tag, "NO", f"[SERVERBUG] {exc}")
            step = Next.READ
        except binary.UnknownCte as exc:
            # RFC 3516 §4.3: a part whose encoding cannot be undone.
            self._tagged(
                command.tag, "NO", f"[UNKNOWN-CTE] Unknown Content-Transfer-Encoding {exc}"
            )
            step = Next.READ
        await self.flush()
        return step

    def _account(self) -> Account:
        assert self.account is not None
        return self.account

    def _view(self) -> View:
        assert self.view is not None
        return self.view

    def _name(self, raw: bytes) -> str:
        """A mailbox name as the client sent it, decoded: modified UTF-7, or UTF-8 once
        IMAP4rev2 is enabled (RFC 9051 §5.1, Appendix A.1)."""
        try:
            return wire.decode_mailbox(raw, utf8=self.rev2)
        except ValueError:
            kind = "Net-Unicode" if self.rev2 else "valid modified UTF-7"
            raise p.ImapSyntaxError(
                f"Mailbox name is not {kind}", p.ErrorKind.MAILBOX_NAME
            ) from None

    def _encode_name(self, name: str) -> bytes:
        return wire.encode_mailbox(name, utf8=self.rev2)

    async def _done(self, command: p.Command, text: str | None = None) -> Next:
        """Announce what changed (RFC 3501 §7.4.1), then the tagged OK."""
        if self.state is State.SELECTED:
            allow = command.uid or command.name not in _NO_EXPUNGE_DURING
            await self.poll(allow_expunge=allow)
        self._tagged(command.tag, "OK", text or f"{command.name} completed")
        return Next.READ

    # --- any state (§6.1) ------------------------------------------------------------------

    async def _cmd_capability(self, command: p.Command) -> Next:
        self._emit(f"* CAPABILITY {self.capability()}\r\n".encode())
        return await self._done(command)

    async def _cmd_noop(self, command: p.Command) -> Next:
        return await self._done(command)

    async def _cmd_logout(self, command: p.Command) -> Next:
        self._emit(b"* BYE Logging out\r\n")
        self._tagged(command.tag, "OK", "LOGOUT completed")
        self.state = State.LOGOUT
        self.view = None
        return Next.CLOSE

    async def _cmd_id(self, command: p.Command) -> Next:
        # RFC 2971 §3.3: the server's own identification.
        self._emit(b'* ID ("name" "' + IMPLEMENTATION.encode() + b'")\r\n')
        return await self._done(command)

    # --- not authenticated (§6.2) ----------------------------------------------------------

    async def _cmd_starttls(self, command: p.Command) -> Next:
        if self.tls or not self.tls_available:
            self._tagged(command.tag, "BAD", "TLS is already active or not available")
            return Next.READ
        self._tagged(command.tag, "OK", "Begin TLS negotiation now")
        return Next.STARTTLS

    def tls_started(self) -> None:
        """RFC 3501 §6.2.1: after the handshake the client must ask CAPABILITY again."""
        self.tls = True
        self.plaintext_allowed = True

    async def _cmd_login(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Login)
        if not self.plaintext_allowed:
            self._tagged(command.tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first")
            return Next.READ
        return await self._login(command.tag, command.args.username, command.args.password)

    async def _login(self, tag: str, username: str, password: str) -> Next:
        try:
            self.account = await self._authenticate(username, password)
        except LoginRefused as exc:
            self._tagged(tag, "NO", exc.text)
            return Next.READ
        self.state = State.AUTHENTICATED
        # RFC 3501 §7.1: the capabilities change after login; say them at once.
        self._tagged(tag, "OK", f"[CAPABILITY {self.capability()}] Logged in")
        return Next.READ

    async def _cmd_authenticate(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Authenticate)
        if command.args.mechanism != "PLAIN":
            self._tagged(command.tag, "NO", "Unsupported authentication mechanism")
            return Next.READ
        if not self.plaintext_allowed:
            self._tagged(command.tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first")
            return Next.READ
        if command.args.initial_response is not None:
            return await self._plain(command.tag, command.args.initial_response)
        self._pending_tag = command.tag
        self._emit(b"+ \r\n")
        return Next.AUTH_LINE

    async def auth_response(self, line: bytes) -> Next:
        """The client's answer to the AUTHENTICATE challenge (RFC 3501 §6.2.2)."""
        tag = self._pending_tag
        try:
            response = p.parse_auth_response(line)
        except p.ImapSyntaxError:
            self._tagged(tag, "BAD", "Invalid base64")
            await self.flush()
            return Next.READ
        if response is None:
            self._tagged(tag, "BAD", "AUTHENTICATE cancelled")
            await self.flush()
            return Next.READ
        step = await self._plain(tag, response)
        await self.flush()
        return step

    async def _plain(self, tag: str, response: bytes) -> Next:
        # RFC 4616 §2, with the one authzid rule of every protocol (postroom.sasl).
        try:
            credentials = sasl.decode_plain(response)
        except sasl.SaslError as exc:
            if exc.problem == "authzid":
                self._tagged(tag, "NO", "[AUTHORIZATIONFAILED] Cannot act as another user")
            else:
                self._tagged(tag, "BAD", "Invalid PLAIN response")
            return Next.READ
        return await self._login(tag, credentials.identity, credentials.secret)

    # --- authenticated (§6.3) --------------------------------------------------------------

    async def _cmd_enable(self, command: p.Command) -> Next:
        # RFC 5161 §3.1: ENABLED lists what this command enabled; others are ignored.
        assert isinstance(command.args, p.Enable)
        enabled = []
        for name in command.args.capabilities:
            if name == "CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(name)
            elif name == "IMAP4REV2" and not self.rev2:
                # RFC 9051 Appendix E, the part done here: no RECENT, no \Recent, SEARCH
                # answered by ESEARCH (docs/imap.md).
                self.rev2 = True
                if self.view is not None:
                    self.view.no_recent, self.view.recent = True, []
                enabled.append("IMAP4rev2")
            elif name == "QRESYNC" and not self.qresync:
                # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                self.qresync = self.condstore = True
                enabled.append(name)
        self._emit(b"* ENABLED" + "".join(" " + n for n in enabled).encode() + b"\r\n")
        return await self._done(command)

    async def _cmd_compress(self, command: p.Command) -> Next:
        # RFC 4978 §3: once per connection, after login; the OK is the last octets sent
        # uncompressed.
        assert isinstance(command.args, p.Compress)
        if self.compressed:
            self._tagged(command.tag, "NO", "[COMPRESSIONACTIVE] DEFLATE is already active")
            return Next.READ
        if command.args.mechanism != "DEFLATE":
            self._tagged(command.tag, "BAD", "Unknown compression mechanism")
            return Next.READ
        self.compressed = True
        self._tagged(command.tag, "OK", "DEFLATE active")
        return Next.COMPRESS

    async def _cmd_namespace(self, command: p.Command) -> Next:
        # RFC 2342 §5: one personal namespace, no prefix, "/" as delimiter.
        self._emit(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return await self._done(command)

    async def _cmd_select(self, command: p.Command) -> Next:
        return await self._select(command, read_only=False)

    async def _cmd_examine(self, command: p.Command) -> Next:
        return await self._select(command, read_only=True)

    async def _select(self, command: p.Command, *, read_only: bool) -> Next:
        assert isinstance(command.args, p.MailboxArgument)
        qresync = command.args.qresync
        if qresync is not None and not self.qresync:
            self._tagged(command.tag, "BAD", "QRESYNC is not enabled")  # RFC 7162 §3.2.5
            return Next.READ
        name = self._name(command.args.mailbox)
        if command.args.condstore:
            self.condstore = True
        if self.view is not None:
            # RFC 7162 §3.2.11, RFC 9051 §6.3.2: the end of the old mailbox's responses.
            self._emit(b"* OK [CLOSED] Previous mailbox closed\r\n")
        # RFC 3501 §6.3.1: a SELECT while selected deselects first, without expunging.
        self.view = None
        self.state = State.AUTHENTICATED
        key = (self._account().id, name)
        kept = uidcache.UIDS.lookup(key)
        async with self._connection() as conn:
            # One statement: the mailbox, its UIDs unless those kept are still its own, the
            # first unseen, and (SELECT) the claim of the new messages as \Recent.
            selected = await store_mailboxes.select(
                conn,
                self._account().id,
                name,
                claim=not read_only,
                known=None if kept is None else kept[0],
            )
            children = False
            if self.rev2 and selected is not None:
                children = await store_mailboxes.has_children(
                    conn, self._account().id, selected.mailbox.name
                )
        if selected is None or not selected.mailbox.selectable:
            self._tagged(command.tag, "NO", "[NONEXISTENT] No such mailbox")
            return Next.READ
        mailbox = selected.mailbox
        if selected.uids is None:
            assert kept is not None
            uids = kept[1]  # shared with the cache: replaced, never changed in place
        else:
            uids = selected.uids
            uidcache.UIDS.put(key, (mailbox.id, mailbox.uid_validity, mailbox.highest_modseq), uids)
        first_unseen = selected.first_unseen_uid
        view = View(mailbox, read_only, uids, mailbox.highest_modseq, [], no_recent=self.rev2)
        # RFC 3501 §6.3.2: EXAMINE reports \Recent as SELECT would, claiming nothing.
        uid_next = selected.uid_next
        view.add_recent(selected.recent_low, max(uid_next, uids[-1] + 1 if uids else 1))
        recent_count = view.recent_count()
        # Messages may have arrived since the UIDs were read: UIDNEXT is read after them.
        uid_next = max(uid_next, uids[-1] + 1 if uids else 1)
        self._emit_flag_lists(view)
        self._emit(b"* %d EXISTS\r\n" % len(uids))
        if self.rev2:
            # RFC 9051 Appendix E items 10 to 12: no RECENT response, no UNSEEN response code,
            # and (§6.3.2) a LIST response with the mailbox's name, its attributes accurate.
            attributes = ["\\HasChildren" if children else "\\HasNoChildren"]
            if mailbox.special_use:
                attributes.append(mailbox.special_use)  # RFC 6154 §2
            self._emit_list(b"LIST", mailbox.name, attributes)
        else:
            self._emit(b"* %d RECENT\r\n" % recent_count)
            first = None if first_unseen is None else view.seq(first_unseen)
            if first is not None:
                self._emit(b"* OK [UNSEEN %d] First unseen\r\n" % first)
        self._emit(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mailbox.uid_validity)
        self._emit(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % uid_next)
        # RFC 7162 §3.1.2.1: with every SELECT of a mailbox that keeps mod-sequences.
        self._emit(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % view.modseq)
        self.view = view
        self.state = State.SELECTED
        if qresync is not None and qresync.uid_validity == mailbox.uid_validity:
            await self._resync(view, qresync)
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        self._tagged(command.tag, "OK", f"[{mode}] {command.name} completed")
        return Next.READ

    def _enable_condstore(self) -> None:
        """RFC 7162 §3.1: the first CONDSTORE-enabling command in the selected state also
        says the mailbox's HIGHESTMODSEQ."""
        if not self.condstore and self.view is not None:
            self._emit(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % self.view.modseq)
        self.condstore = True

    async def _resync(self, view: View, known: p.Qresync) -> None:
        """RFC 7162 §3.2.5.2: what changed since the client's modseq, before the tagged OK:
        VANISHED (EARLIER) for the messages gone, FETCH for those changed."""
        async with self._connection() as conn:
            changes = await store.changes_since(conn, view.mailbox.id, known.modseq)
        gone = changes.expunged
        if known.known_uids is not None:
            largest = gone[-1] if gone else 0
            gone = tuple(u for u in gone if known.known_uids.contains(u, largest))
        if gone:
            self._emit(b"* VANISHED (EARLIER) " + sr.compact(gone).encode() + b"\r\n")
        for message in changes.changed:
            if view.seq(message.uid) is not None:
                self._emit_flags(message, with_uid=True)

    async def _cmd_create(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.MailboxArgument)
        # RFC 3501 §6.3.3: a trailing delimiter declares the intent to hold children.
        name = self._name(command.args.mailbox).rstrip(DELIMITER)
        if name.upper() == "INBOX":
            self._tagged(command.tag, "NO", "[ALREADYEXISTS] INBOX always exists")
            return Next.READ
        use = command.args.use
        special_use = None
        if use:
            # RFC 6154 §3: one special use a mailbox here; any other is USEATTR.
            known = {u.lower(): u for u in store.mailboxes.SPECIAL_USES}
            if len(use) > 1 or use[0].lower() not in known:
                self._tagged(command.tag, "NO", "[USEATTR] Unsupported special use")
                return Next.READ
            special_use = known[use[0].lower()]
        async with self._connection() as conn:
            # RFC 3501 §6.3.3 subscribes nothing: that is SUBSCRIBE's job (§6.3.6).
            await store.create_mailbox(
                conn, self._account().id, name, special_use=special_use, subscribed=False
            )
        return await self._done(command)

    async def _cmd_delete(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.MailboxArgument)
        name = self._name(command.args.mailbox)
        async with self._connection() as conn:
            await store.delete_mailbox(conn, self._account().id, name)
        return await self._done(command)

    async def _cmd_rename(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Rename)
        old, new = self._name(command.args.mailbox), self._name(command.args.new_mailbox)
        async with self._connection() as conn:
            await store.rename_mailbox(conn, self._account().id, old, new)
        return await self._done(command)

    async def _cmd_subscribe(self, command: p.Command) -> Next:
        return await self._subscribe(command, subscribed=True)

    async def _cmd_unsubscribe(self, command: p.Command) -> Next:
        return await self._subscribe(command, subscribed=False)

    async def _subscribe(self, command: p.Command, *, subscribed: bool) -> Next:
        assert isinstance(command.args, p.MailboxArgument)
        name = self._name(command.args.mailbox)
        async with self._connection() as conn:
            await store.set_subscribed(conn, self._account().id, name, subscribed)
        return await self._done(command)

    async def _cmd_list(self, command: p.Command) -> Next:
        return await self._list(command, subscribed_only=False)

    async def _cmd_lsub(self, command: p.Command) -> Next:
        return await self._list(command, subscribed_only=True)

    async def _list(self, command: p.Command, *, subscribed_only: bool) -> Next:
        assert isinstance(command.args, p.ListMailboxes)
        args = command.args
        if args.extended:
            return await self._list_extended(command, args)
        reference = self._name(args.reference) if args.reference else ""
        pattern = wire.decode_pattern(args.pattern, utf8=self.rev2)
        name = command.name.encode()
        if pattern is None:
            return await self._done(command)  # a pattern no mailbox name can match
        if not pattern:
            # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the root.
            self._emit(b"* " + name + b' (\\Noselect) "/" ""\r\n')
            return await self._done(command)
        async with self._connection() as conn:
            mailboxes = await store.list_mailboxes(conn, self._account().id)
            dangling = (
                await store.list_dangling_subscriptions(conn, self._account().id)
                if subscribed_only
                else []
            )
        matcher = list_matcher(reference + pattern)
        names = {m.name for m in mailboxes}
        parents = {parent for n in names for parent in store.mailboxes.parents_of(n)}
        # RFC 3501 §6.3.9: with "%", an unsubscribed mailbox whose children are subscribed
        # is listed as \Noselect, so that the client can find them.
        holders: set[str] = set()
        if subscribed_only and "%" in pattern:
            holders = {
                parent
                for m in mailboxes
                if m.subscribed
                for parent in store.mailboxes.parents_of(m.name)
            }
        lines: list[tuple[str, list[str]]] = []
        for mailbox in mailboxes:
            if not matcher(mailbox.name):
                continue
            holder = False
            if subscribed_only and not mailbox.subscribed:
                if mailbox.name not in holders:
                    continue
                holder = True
            attributes = []
            if not mailbox.selectable or holder:
                attributes.append("\\Noselect")
            # RFC 3348 CHILDREN.
            attributes.append("\\HasChildren" if mailbox.name in parents else "\\HasNoChildren")
            if mailbox.special_use and not subscribed_only:
                attributes.append(mailbox.special_use)  # RFC 6154 §2
            lines.append((mailbox.name, attributes))
        # RFC 3501 §6.3.6: a subscription outlives its mailbox; LSUB still names it.
        lines.extend((n, ["\\Noselect"]) for n in dangling if matcher(n) and n not in names)
        for mailbox_name, attributes in sorted(lines):
            self._emit_list(name, mailbox_name, attributes)
            await self._maybe_flush()
        return await self._done(command)

    def _emit_list(
        self, response: bytes, mailbox: str, attributes: list[str], extra: bytes = b""
    ) -> None:
        self._emit(
            b"* "
            + response
            + b" ("
            + " ".join(attributes).encode()
            + b') "/" '
            + self._encode_name(mailbox)
            + extra
            + b"\r\n"
        )

    async def _list_extended(self, command: p.Command, args: p.ListMailboxes) -> Next:
        """RFC 5258 LIST-EXTENDED, with RFC 5819 LIST-STATUS and RFC 6154 §5 SPECIAL-USE."""
        select, returns = args.select, args.returns
        decoded = (wire.decode_pattern(raw, utf8=self.rev2) for raw in args.patterns())
        patterns = tuple(pattern for pattern in decoded if pattern is not None)
        reference = self._name(args.reference) if args.reference else ""
        if patterns == ("",) and not args.more:
            # RFC 3501 §6.3.8, kept by RFC 5258 §3: the delimiter and the root.
            self._emit(b'* LIST (\\Noselect) "/" ""\r\n')
            return await self._done(command)
        by_subscription = "SUBSCRIBED" in select
        # RFC 5258 §3: SUBSCRIBED as a selection option implies it as a return option.
        show_subscribed = by_subscription or "SUBSCRIBED" in returns
        async with self._connection() as conn:
            mailboxes = await store.list_mailboxes(conn, self._account().id)
            dangling = (
                await store.list_dangling_subscriptions(conn, self._account().id)
                if by_subscription
                else []
            )
        existing = {m.name: m for m in mailboxes}
        parents = {parent for n in existing for parent in store.mailboxes.parents_of(n)}
        subscribed = {m.name for m in mailboxes if m.subscribed} | set(dangling)
        matchers = [list_matcher(reference + pattern) for pattern in patterns if pattern]

        def matches(name: str) -> bool:
            return any(match(name) for match in matchers)

        # The mailboxes that meet the selection criteria (RFC 5258 §3).
        chosen = subscribed if by_subscription else set(existing)
        if "SPECIAL-USE" in select:
            # RFC 6154 §5.3: only the mailboxes that have a special use.
            chosen = {n for n in chosen if n in existing and existing[n].special_use}
        listed = {n for n in chosen if matches(n)}
        # RFC 5258 §3.5: with RECURSIVEMATCH, a mailbox the patterns match that does not
        # meet the criteria itself, but has a descendant that does and that no pattern
        # matches, is returned with CHILDINFO naming the criteria.
        childinfo: set[str] = set()
        if "RECURSIVEMATCH" in select:
            for n in chosen - listed:
                for parent in store.mailboxes.parents_of(n):
                    if matches(parent):
                        childinfo.add(parent)
        criteria = [c for c in ("SUBSCRIBED", "SPECIAL-USE") if c in select]
        info = b' ("CHILDINFO" (' + " ".join(f'"{c}"' for c in criteria).encode() + b"))"
        async with AsyncExitStack() as stack:
            status_conn: Conn | None = None
            if args.status:
                status_conn = await stack.enter_async_context(self._connection())
            for name in sorted(listed | childinfo):
                mailbox = existing.get(name)
                attributes = []
                if mailbox is None:
                    attributes.append("\\NonExistent")  # RFC 5258 §3.4: implies \Noselect
                elif not mailbox.selectable:
                    attributes.append("\\Noselect")
                # RFC 5258 §4, RFC 3348: CHILDREN, computed whether asked or not.
                if name in parents:
                    attributes.append("\\HasChildren")
                elif mailbox is not None:
                    attributes.append("\\HasNoChildren")
                if show_subscribed and name in subscribed:
                    attributes.append("\\Subscribed")
                if mailbox is not None and mailbox.special_use:
                    attributes.append(mailbox.special_use)  # RFC 6154 §2, §5.1
                self._emit_list(b"LIST", name, attributes, info if name in childinfo else b"")
                if status_conn is not None and mailbox is not None and mailbox.selectable:
                    # RFC 5819 §2: the STATUS of each selectable mailbox, after its LIST.
                    status = await store.mailbox_status(status_conn, mailbox.id)
                    self._emit_status(mailbox, status, args.status)
                await self._maybe_flush()
        return await self._done(command)

    async def _cmd_status(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Status)
        async with self._connection() as conn:
            name = self._name(command.args.mailbox)
            mailbox = await store.get_mailbox(conn, self._account().id, name)
            if mailbox is None or not mailbox.selectable:
                self._tagged(command.tag, "NO", "[NONEXISTENT] No such mailbox")
                return Next.READ
            status = await store.mailbox_status(conn, mailbox.id)
        self._emit_status(mailbox, status, command.args.items)
        return await self._done(command)

    def _emit_status(self, mailbox: Mailbox, status: MailboxStatus, items: Sequence[str]) -> None:
        values = {
            "MESSAGES": status.messages,
            "RECENT": status.recent,
            "UIDNEXT": status.uid_next,
            "UIDVALIDITY": status.uid_validity,
            "UNSEEN": status.unseen,
            "DELETED": status.deleted,
            "DELETED-STORAGE": quota.kibibytes(status.deleted_size),
            "HIGHESTMODSEQ": status.highest_modseq,  # RFC 7162 §3.1.3
            "SIZE": status.size,  # RFC 8438 §3: the octets of the messages
            # RFC 7889 §4: the limit of this mailbox, NIL when there is none.
            "APPENDLIMIT": "NIL" if self.append_limit is None else self.append_limit,
        }
        text = " ".join(f"{item} {values[item]}" for item in items)
        self._emit(b"* STATUS " + self._encode_name(mailbox.name) + f" ({text})\r\n".encode())

    async def _cmd_append(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Append)
        args = command.args
        name = self._name(args.mailbox)
        async with self._connection() as conn:
            mailbox = await store.get_mailbox(conn, self._account().id, name)
            if mailbox is None or not mailbox.selectable:
                # RFC 3501 §6.3.11: TRYCREATE when creating the mailbox would help.
                self._tagged(command.tag, "NO", "[TRYCREATE] No such mailbox")
                return Next.READ
            messages = args.messages()
            if any(not m.size for m in messages):
                # RFC 3502 §6.3.11: a zero-length message cancels the whole command.
                self._tagged(command.tag, "NO", "APPEND cancelled by an empty message")
                return Next.READ

            async def append(m: p.AppendMessage) -> int:
                stored = await store.append_message(
                    conn,
                    mailbox.id,
                    # RFC 3516 §4.4: binary parts of a literal8 are stored as base64.
                    binary.to_seven_bit(m.content()) if m.binary else m.content(),
                    flags=m.flags,
                    internal_date=m.date_time,
                )
                return stored.uid

            if len(messages) == 1:
                # One message is one statement, atomic by itself: no BEGIN, savepoint and
                # COMMIT round trips around it.
                uids = [await append(messages[0])]
            else:
                # RFC 3502 §6.3.11: every message or none (a failure rolls back those before).
                async with conn.transaction():
                    uids = [await append(m) for m in messages]
        # RFC 4315 §3: APPENDUID uidvalidity uid-set (one UID a message, in order).
        text = f"[APPENDUID {mailbox.uid_validity} {sr.compact(uids)}] APPEND completed"
        return await self._done(command, text)

    async def _cmd_getquota(self, command: p.Command) -> Next:
        # RFC 9208 §4.1.1: the usage and limits of one quota root.
        assert isinstance(command.args, p.QuotaRoot)
        async with self._connection() as conn:
            account = await store.get_account_by_id(conn, self._account().id)
        if account is None or not quota.has_root(account, command.args.name):
            self._tagged(command.tag, "NO", "[NONEXISTENT] No such quota root")
            return Next.READ
        self._emit(quota.quota_response(account))
        return await self._done(command)

    async def _cmd_getquotaroot(self, command: p.Command) -> Next:
        # RFC 9208 §4.1.2: the quota roots of a mailbox, each with its QUOTA.
        assert isinstance(command.args, p.MailboxArgument)
        name = self._name(command.args.mailbox)
        async with self._connection() as conn:
            account = await store.get_account_by_id(conn, self._account().id)
            mailbox = await store.get_mailbox(conn, self._account().id, name)
        if account is None or mailbox is None:
            self._tagged(command.tag, "NO", "[NONEXISTENT] No such mailbox")
            return Next.READ
        self._emit(quota.quotaroot_response(account, self._encode_name(mailbox.name)))
        if quota.resources(account):
            self._emit(quota.quota_response(account))
        return await self._done(command)

    async def _cmd_idle(self, command: p.Command) -> Next:
        # RFC 2177 §3: the continuation, then updates as they happen until DONE.
        self._idle_tag = command.tag
        # The continuation comes first: a client reads untagged updates only once it knows
        # the command is in progress (imapclient stops at any other response).
        self._emit(b"+ idling\r\n")
        if self.state is State.SELECTED:
            # Written on its own, so that a client that reads the continuation line by line
            # and then waits on the socket finds the updates still to come on it.
            await self.flush()
            await self.poll(allow_expunge=True)
        return Next.IDLE

    async def idle_changed(self) -> None:
        """Something changed in the account while idling: announce it."""
        if self.state is State.SELECTED:
            await self.poll(allow_expunge=True)
        await self.flush()

    async def idle_done(self, line: bytes) -> Next:
        tag = self._idle_tag or "*"
        self._idle_tag = None
        if not p.parse_idle_done(line):
            self._tagged(tag, "BAD", "Expected DONE")
        else:
            if self.state is State.SELECTED:
                await self.poll(allow_expunge=True)
            self._tagged(tag, "OK", "IDLE terminated")
        await self.flush()
        return Next.READ

    # --- selected (§6.4) -------------------------------------------------------------------

    async def _cmd_check(self, command: p.Command) -> Next:
        return await self._done(command)

    async def _cmd_close(self, command: p.Command) -> Next:
        view = self._view()
        self.view = None
        self.state = State.AUTHENTICATED
        if not view.read_only:
            # RFC 3501 §6.4.2: expunge silently, no untagged EXPUNGE.
            async with self._connection() as conn:
                await store.expunge(conn, view.mailbox.id)
        self._tagged(command.tag, "OK", "CLOSE completed")
        return Next.READ

    async def _cmd_unselect(self, command: p.Command) -> Next:
        # RFC 3691 §2: like CLOSE without the expunge.
        self.view = None
        self.state = State.AUTHENTICATED
        self._tagged(command.tag, "OK", "UNSELECT completed")
        return Next.READ

    def _read_write(self, command: p.Command) -> bool:
        if self._view().read_only:
            self._tagged(command.tag, "NO", "[READ-ONLY] The mailbox is selected read-only")
            return False
        return True

    async def _cmd_expunge(self, command: p.Command) -> Next:
        if not self._read_write(command):
            return Next.READ
        view = self._view()
        uids: list[int] | None = None
        if isinstance(command.args, p.UidExpunge):  # RFC 4315 §2.1
            uids = self._resolve(command, command.args.sequence_set)
        async with self._connection() as conn:
            await store.expunge(conn, view.mailbox.id, uids)
        return await self._done(command)

    def _resolve(self, command: p.Command, sequence_set: p.SequenceSet) -> list[int] | None:
        """The UIDs a command's set names; None (with BAD sent) for a number beyond EXISTS."""
        view = self._view()
        if sequence_set.saved:
            return view.saved_uids()  # RFC 5182 §2.1: "$"
        if command.uid:
            return sr.uids_in(sr.uid_set_ranges(sequence_set, view.uids), view.uids)
        largest = sequence_set.largest_explicit()
        if largest is not None and largest > len(view.uids):
            self._tagged(command.tag, "BAD", "Invalid message sequence number")
            return None
        found: list[int] = []
        for span in sequence_set.resolve(len(view.uids)):
            found.extend(view.uids[span.start - 1 : span.stop - 1])
        return found

    async def _cmd_search(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Search)
        if self.rev2 and command.args.returns is None:
            # RFC 9051 §6.4.4: SEARCH without RETURN is RETURN (ALL), answered by ESEARCH.
            command = replace(command, args=replace(command.args, returns=("ALL",)))
        assert isinstance(command.args, p.Search)
        view = self._view()
        criterion = sr.criteria(command.args.criteria, view.uids, view.recent, view.saved_uids())
        with_modseq = sr.uses_modseq(command.args.criteria)
        returns = command.args.returns
        save = returns is not None and "SAVE" in returns
        if save:
            # RFC 5182 §2.1: a SEARCH that fails leaves "$" empty.
            view.saved = []
        highest = 0
        if with_modseq:
            self._enable_condstore()
        async with self._connection() as conn:
            found = await store_search.search_uids(
                conn, view.mailbox.id, criterion, messages=len(view.uids)
            )
            # Messages not yet announced are left out.
            found = [uid for uid in found if view.seq(uid) is not None]
            if with_modseq and found:
                # RFC 4731 §3.2 with RFC 7162 §3.1.5: the highest modseq of the messages
                # the response names (only the MIN and MAX ones when only those are asked).
                named = found
                if returns is not None and not {"ALL", "COUNT"} & set(returns):
                    named = [found[0]] * ("MIN" in returns) + [found[-1]] * ("MAX" in returns)
                highest = await store_messages.highest_modseq_of(conn, view.mailbox.id, named)
        numbers = found if command.uid else [view.seq(uid) or 0 for uid in found]
        if returns is not None and save:
            view.saved = sr.saved_result(found, returns)
            if returns == ("SAVE",):
                return await self._done(command)  # RFC 5182 §2.1: no ESEARCH for SAVE alone
        if returns is not None:
            self._emit_esearch(command, numbers, highest if with_modseq else None)
            return await self._done(command)
        self._emit(b"* SEARCH")
        for start in range(0, len(numbers), 10_000):
            self._emit(b"".join(b" %d" % n for n in numbers[start : start + 10_000]))
            await self._maybe_flush()
        if with_modseq and numbers:
            # RFC 7162 §3.1.5: the highest mod-sequence of the messages found.
            self._emit(b" (MODSEQ %d)" % highest)
        self._emit(b"\r\n")
        return await self._done(command)

    def _emit_esearch(self, command: p.Command, numbers: list[int], modseq: int | None) -> None:
        """RFC 4731 §3.1: ``* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set``;
        only the tag when nothing matched (MIN, MAX and ALL have nothing to say)."""
        assert isinstance(command.args, p.Search)
        assert command.args.returns is not None
        wanted = command.args.returns
        out = b'* ESEARCH (TAG "' + command.tag.encode() + b'")'
        if command.uid:
            out += b" UID"
        if numbers:
            if "MIN" in wanted:
                out += b" MIN %d" % numbers[0]
            if "MAX" in wanted:
                out += b" MAX %d" % numbers[-1]
        if "COUNT" in wanted:
            out += b" COUNT %d" % len(numbers)
        if numbers and "ALL" in wanted:
            out += b" ALL " + sr.compact(numbers).encode()
        if numbers and modseq is not None:
            out += b" MODSEQ %d" % modseq  # RFC 7162 §3.1.5
        self._emit(out + b"\r\n")

    async def _cmd_sort(self, command: p.Command) -> Next:
        # RFC 5256 §3: "* SORT" and the numbers of the matching messages, in order.
        assert isinstance(command.args, p.Sort)
        view = self._view()
        criteria = command.args.criteria
        async with self._connection() as conn:
            found = await self._sort_search(conn, command.args.search)
            in_sql = sort.sql_order(criteria)
            if in_sql is not None:
                ordered = await store_sorting.sorted_uids(conn, view.mailbox.id, found, in_sql)
            else:
                columns = sort.columns_for(criteria)
                rows = await store_sorting.sort_keys(conn, view.mailbox.id, found, columns)
                ordered = sort.order(rows, criteria, columns)
        numbers = ordered if command.uid else [view.seq(uid) or 0 for uid in ordered]
        self._emit(b"* SORT")
        for start in range(0, len(numbers), 10_000):
            self._emit(b"".join(b" %d" % n for n in numbers[start : start + 10_000]))
            await self._maybe_flush()
        self._emit(b"\r\n")
        return await self._done(command)

    async def _cmd_thread(self, command: p.Command) -> Next:
        # RFC 5256 §3: "* THREAD" and the threads of the matching messages.
        assert isinstance(command.args, p.Thread)
        view = self._view()
        references = command.args.algorithm == "REFERENCES"
        columns: list[store_sorting.Column] = ["sent", "subject"]
        if references:
            columns += ["message_id", "references", "in_reply_to"]
        async with self._connection() as conn:
            found = await self._sort_search(conn, command.args.search)
            rows = await store_sorting.sort_keys(conn, view.mailbox.id, found, columns)
        records = [
            threads.ThreadMessage(
                number=row[0] if command.uid else view.seq(row[0]) or 0,
                sent=row[1] or store_sorting.NO_DATE,
                subject=row[2],
                message_id=row[3] if references else None,
                references=tuple(row[4]) if references else (),
                in_reply_to=row[5] if references else None,
            )
            for row in rows
        ]
        tree = threads.references(records) if references else threads.ordered_subject(records)
        self._emit(b"* THREAD " + threads.format_threads(tree) if tree else b"* THREAD")
        self._emit(b"\r\n")
        return await self._done(command)

    async def _sort_search(self, conn: Conn, key: p.SearchKey) -> set[int]:
        """The UIDs of the view's messages that match SORT's or THREAD's search-criteria."""
        view = self._view()
        if isinstance(key, p.All):
            return set(view.uids)  # the store leaves out those expunged since
        criterion = sr.criteria(key, view.uids, view.recent, view.saved_uids())
        found = await store_search.search_uids(
            conn, view.mailbox.id, criterion, messages=len(view.uids)
        )
        # Messages not yet announced are left out.
        return {uid for uid in found if view.seq(uid) is not None}

    async def _cmd_fetch(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Fetch)
        uids = self._resolve(command, command.args.sequence_set)
        if uids is None:
            return Next.READ
        view = self._view()
        items = command.args.items
        changed_since = command.args.changed_since
        if command.args.vanished and not (command.uid and self.qresync):
            # RFC 7162 §3.2.6: only in UID FETCH, once QRESYNC is enabled.
            self._tagged(command.tag, "BAD", "VANISHED needs UID FETCH and QRESYNC")
            return Next.READ
        wants_modseq = any(isinstance(i, p.FetchItem) and i.name == "MODSEQ" for i in items)
        if changed_since is not None or wants_modseq:
            self._enable_condstore()  # RFC 7162 §3.1: CONDSTORE-enabling
        if changed_since is not None:
            # RFC 7162 §3.1.4.1: only messages changed after it, with their MODSEQ.
            if not wants_modseq:
                items = (*items, p.FetchItem("MODSEQ"))
            async with self._connection() as conn:
                if command.args.vanished:
                    changes = await store.changes_since(conn, view.mailbox.id, changed_since)
                    # "*" here is the largest UID the mailbox had, expunged ones included.
                    largest = max(view.uids[-1] if view.uids else 0, *changes.expunged, 0)
                    ranges = sr.uid_set_ranges(command.args.sequence_set, [largest])
                    gone = [u for u in changes.expunged if any(a <= u <= b for a, b in ranges)]
                    if gone:
                        self._emit(b"* VANISHED (EARLIER) " + sr.compact(gone).encode() + b"\r\n")
                if uids:
                    uids = await store_messages.modified_since(
                        conn, view.mailbox.id, uids, changed_since
                    )
        if f.flags_only(items):
            await self._fetch_flags(command, uids, items)
            return await self._done(command)
        if f.summary_only(items) and uids:
            await self._fetch_summaries(command, uids, items)
            return await self._done(command)
        content_needed = f.needs_content(items)
        whole_structure = f.needs_parsed(items)
        mark_seen = f.sets_seen(items) and not view.read_only
        async with self._connection() as conn:

            async def read(blob_id: BlobId, start: int, length: int) -> bytes:
                return await store.read_blob_range(conn, blob_id, start, length)

            for start in range(0, len(uids), FETCH_BATCH):
                batch = uids[start : start + FETCH_BATCH]
                seen_now: set[int] = set()
                pairs: list[tuple[Message, MessageContent | None]]
                if mark_seen:
                    seen_now = await self._mark_seen(conn, batch)
                if content_needed:
                    contents = await store.fetch_content(
                        conn, view.mailbox.id, batch, parsed=whole_structure
                    )
                    pairs = [(c.message, c) for c in contents]
                else:
                    messages = await _messages_in(conn, view.mailbox.id, batch)
                    pairs = [(m, None) for m in messages]
                for message, content in pairs:
                    seq = view.seq(message.uid)
                    if seq is None:
                        continue
                    self._announce_keywords(message.flags)
                    pieces = await f.render(
                        seq,
                        message,
                        content,
                        items,
                        read,
                        with_uid=command.uid,
                        recent=view.is_recent(message.uid),
                        with_flags=message.uid in seen_now,
                    )
                    await self._write_pieces(conn, pieces)
        return await self._done(command)

    async def _fetch_flags(
        self, command: p.Command, uids: list[int], items: Sequence[p.FetchAttribute]
    ) -> None:
        """FETCH of only FLAGS (and UID), a sync client's question about every message:
        flags as strings straight from the store, each distinct set formatted once."""
        view = self._view()
        names = [item.name for item in items if isinstance(item, p.FetchItem)]
        if command.uid or ("UID" in names and names.index("UID") < names.index("FLAGS")):
            template = b"* %d FETCH (UID %d %s)\r\n"
        elif "UID" in names:
            template = b"* %d FETCH (%s UID %d)\r\n"
        else:
            template = b"* %d FETCH (%s)\r\n"
        uid_first = template.startswith(b"* %d FETCH (UID")
        with_uid = b"UID" in template
        formatted: dict[tuple[str, bool], bytes] = {}
        plain: dict[str, bytes] = {}
        known = view.uids
        # Every message of the view, nothing recent: the whole response may be kept as sent.
        whole = not view.recent and uids == known
        texts: dict[str, None] = {}
        parts: list[bytes] = []
        version: tuple[int, int] | None = None
        async with self._connection() as conn:
            every: list[tuple[int, str]] = []
            if len(uids) >= FLAGS_KEPT_FROM:
                # A large set: the flags of the whole mailbox, kept by the process while its
                # HIGHESTMODSEQ says they have not changed (uidcache.FLAGS). The row read
                # for that also serves the poll after the command (FETCH FLAGS writes none).
                current = await store.get_mailbox_by_id(conn, view.mailbox.id)
                self._looked = (current,)
                if current is not None:
                    version = (current.uid_validity, current.highest_modseq)
                if version is not None and whole:
                    kept = uidcache.RENDERED.lookup(view.mailbox.id, version, template, known)
                    if kept is not None:
                        for text in kept[0]:
                            self._announce_keywords(text.split())
                        self._emit(kept[1])
                        return
                if version is not None:
                    every = uidcache.FLAGS.lookup(view.mailbox.id, version)
                    if not every:
                        validity, modseq, every = await store_messages.mailbox_flags(
                            conn, view.mailbox.id
                        )
                        uidcache.FLAGS.put(view.mailbox.id, (validity, modseq), every)
            for start in range(0, len(uids), FLAGS_BATCH):
                batch = uids[start : start + FLAGS_BATCH]
                wanted = set(batch) if len(batch) < batch[-1] - batch[0] + 1 else None
                if every:
                    rows = every[
                        bisect_left(every, batch[0], key=_first) : bisect_right(
                            every, batch[-1], key=_first
                        )
                    ]
                else:
                    rows = await store.list_flags(
                        conn, view.mailbox.id, uid_min=batch[0], uid_max=batch[-1]
                    )
                base = bisect_left(known, batch[0])
                if (
                    not view.recent
                    and len(rows) == len(batch)
                    and [uid for uid, _ in rows] == batch
                    and known[base : base + len(batch)] == batch
                ):
                    # The common case, a run of the view with nothing recent: the rows are
                    # the view's messages in order, so the sequence numbers count up.
                    for text in {text for _, text in rows} - plain.keys():
                        self._announce_keywords(text.split())
                        plain[text] = b"FLAGS " + f.flag_list(text.split())
                        texts[text] = None
                    if not with_uid:
                        out = [template % (base + i, plain[t]) for i, (_, t) in enumerate(rows, 1)]
                    elif uid_first:
                        out = [
                            template % (base + i, uid, plain[t])
                            for i, (uid, t) in enumerate(rows, 1)
                        ]
                    else:
                        out = [
                            template % (base + i, plain[t], uid)
                            for i, (uid, t) in enumerate(rows, 1)
                        ]
                    part = b"".join(out)
                    if whole:
                        parts.append(part)
                    self._emit(part)
                    await self._maybe_flush()
                    continue
                whole = False
                out = []
                # Rows and the view are both in UID order: walk them together.
                position, count = base, len(known)
                for uid, text in rows:
                    while position < count and known[position] < uid:
                        position += 1
                    if position == count or known[position] != uid:
                        continue  # not announced to this session yet
                    if wanted is not None and uid not in wanted:
                        continue
                    key = (text, bool(view.recent) and view.is_recent(uid))
                    flags = formatted.get(key)
                    if flags is None:
                        self._announce_keywords(text.split())
                        flags = b"FLAGS " + f.flag_list(text.split(), recent=key[1])
                        formatted[key] = flags
                    if not with_uid:
                        out.append(template % (position + 1, flags))
                    elif uid_first:
                        out.append(template % (position + 1, uid, flags))
                    else:
                        out.append(template % (position + 1, flags, uid))
                self._emit(b"".join(out))
                await self._maybe_flush()
        if whole and version is not None and every:
            uidcache.RENDERED.put(
                view.mailbox.id, version, template, known, tuple(texts), b"".join(parts)
            )

    async def _fetch_summaries(
        self, command: p.Command, uids: list[int], items: Sequence[p.FetchAttribute]
    ) -> None:
        """FETCH of what a message list shows (UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ,
        ENVELOPE, BODYSTRUCTURE): one row a message from the store, ENVELOPE and
        BODYSTRUCTURE as kept since parsing, each distinct flag set formatted once."""
        view = self._view()
        names = [item.name for item in items if isinstance(item, p.FetchItem)]
        if command.uid and "UID" not in names:
            names.insert(0, "UID")  # RFC 3501 §6.4.8
        line = f.summary_line(names)
        structure = "ENVELOPE" in names or "BODYSTRUCTURE" in names
        formatted: dict[tuple[str, bool], bytes] = {}
        known = view.uids
        async with self._connection() as conn:
            for start in range(0, len(uids), FLAGS_BATCH):
                batch = uids[start : start + FLAGS_BATCH]
                wanted = set(batch) if len(batch) < batch[-1] - batch[0] + 1 else None
                if start:
                    rows = await store.list_summaries(
                        conn, view.mailbox.id, uid_min=batch[0], uid_max=batch[-1],
                        structure=structure,
                    )  # fmt: skip
                else:
                    # The mailbox's row for the poll after the command, in the same round
                    # trip as the first rows (this FETCH writes nothing).
                    async with conn.pipeline():
                        answer = await store.ask_mailbox_by_id(conn, view.mailbox.id)
                        rows = await store.list_summaries(
                            conn, view.mailbox.id, uid_min=batch[0], uid_max=batch[-1],
                            structure=structure,
                        )  # fmt: skip
                        self._looked = (await answer(),)
                out = []
                # Rows and the view are both in UID order: walk them together.
                position, count = bisect_left(known, batch[0]), len(known)
                for row in rows:
                    uid = row[0]
                    while position < count and known[position] < uid:
                        position += 1
                    if position == count or known[position] != uid:
                        continue  # not announced to this session yet
                    if wanted is not None and uid not in wanted:
                        continue
                    key = (row[3], bool(view.recent) and view.is_recent(uid))
                    flags = formatted.get(key)
                    if flags is None:
                        self._announce_keywords(row[3].split())
                        flags = f.flag_list(row[3].split(), recent=key[1])
                        formatted[key] = flags
                    out.append(line(position + 1, row, flags))
                self._emit(b"".join(out))
                await self._maybe_flush()

    async def _mark_seen(self, conn: Conn, uids: list[int]) -> set[int]:
        view = self._view()
        changed = await store.store_flags(conn, view.mailbox.id, uids, ["\\Seen"], "add")
        for message in changed:
            view.announced[message.uid] = message.modseq
        return {message.uid for message in changed}

    async def _write_pieces(self, conn: Conn, pieces: Iterable[f.Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, bytes):
                self._emit(piece)
            elif piece.size <= STREAM_CHUNK:
                self._emit(
                    await store.read_blob_range(conn, piece.blob_id, piece.start, piece.size)
                )
            else:
                # A large section: written chunk by chunk as it is read.
                await self.flush()
                async for chunk in store.read_blob_chunks(
                    conn, piece.blob_id, piece.end, STREAM_CHUNK, piece.start
                ):
                    await self._send(chunk)
            await self._maybe_flush()

    async def _cmd_store(self, command: p.Command) -> Next:
        assert isinstance(command.args, p.Store)
        args = command.args
        uids = self._resolve(command, args.sequence_set)
        if uids is None or not self._read_write(command):
            return Next.READ
        view = self._view()
        mode = _FLAG_MODES[args.mode]
        since = args.unchanged_since
        failed: list[int] = []
        if since is not None:
            self._enable_condstore()  # RFC 7162 §3.1: CONDSTORE-enabling
        async with self._connection() as conn:
            changed = await store.store_flags(
                conn, view.mailbox.id, uids, args.flags, mode, unchanged_since=since
            )
            for message in changed:
                view.announced[message.uid] = message.modseq
            if since is not None:
                # RFC 7162 §3.1.3: the messages changed after UNCHANGEDSINCE are left alone
                # and named in MODIFIED (those changed just now are ours).
                ours = {m.uid for m in changed}
                failed = [
                    uid
                    for uid in await store_messages.modified_since(
                        conn, view.mailbox.id, uids, since
                    )
                    if uid not in ours
                ]
            if not args.silent and uids:
                # RFC 3501 §6.4.6: the new flags, as if fetched, for each message of the set.
                for start in range(0, len(uids), FETCH_BATCH):
                    batch = uids[start : start + FETCH_BATCH]
                    for message in await _messages_in(conn, view.mailbox.id, batch):
                        if message.uid not in failed:
                            self._emit_flags(message, with_uid=command.uid)
                    await self._maybe_flush()
        if failed:
            numbers = failed if command.uid else [view.seq(u) or 0 for u in failed]
            return await self._done(
                command, f"[MODIFIED {sr.compact(numbers)}] Conditional STORE failed"
            )
        return await self._done(command)

    def _emit_flags(self, message: Message, *, with_uid: bool) -> None:
        view = self._view()
        seq = view.seq(message.uid)
        if seq is None:
            return
        uid = b"UID %d " % message.uid if with_uid else b""
        self._announce_keywords(message.flags)
        flags = f.flag_list(message.flags, recent=view.is_recent(message.uid))
        # RFC 7162 §3.1.4.1: once CONDSTORE is on, every FETCH of flags carries MODSEQ.
        modseq = b" MODSEQ (%d)" % message.modseq if self.condstore else b""
        self._emit(b"* %d FETCH (%sFLAGS %s%s)\r\n" % (seq, uid, flags, modseq))

    async def _cmd_copy(self, command: p.Command) -> Next:
        return await self._copy(command, move=False)

    async def _cmd_move(self, command: p.Command) -> Next:
        return await self._copy(command, move=True)

    async def _copy(self, command: p.Command, *, move: bool) -> Next:
        assert isinstance(command.args, p.CopyMessages)
        uids = self._resolve(command, command.args.sequence_set)
        if uids is None:
            return Next.READ
        if move and not self._read_write(command):
            return Next.READ
        view = self._view()
        name = self._name(command.args.mailbox)
        async with self._connection() as conn:
            target = await store.get_mailbox(conn, self._account().id, name)
            if target is None or not target.selectable:
                # RFC 3501 §6.4.7: TRYCREATE when the target does not exist.
                self._tagged(command.tag, "NO", "[TRYCREATE] No such mailbox")
                return Next.READ
            operation = store.move_messages if move else store.copy_messages
            pairs = await operation(conn, view.mailbox.id, uids, target.id)
        if pairs and self._on_transfer is not None:
            self._on_transfer(view.mailbox, target, pairs)
        code = ""
        if pairs:
            # RFC 4315 §3: COPYUID uidvalidity source-uids destination-uids.
            code = (
                f"[COPYUID {target.uid_validity} {sr.compact([a for a, _ in pairs])} "
                f"{sr.compact([b for _, b in pairs])}] "
            )
        if move:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if code:
                self._emit(f"* OK {code.strip()} Moved\r\n".encode())
            return await self._done(command, "MOVE completed")
        return await self._done(command, f"{code}COPY completed")

    # --- announcing changes (§7.4.1) --------------------------------------------------------

    def _emit_flag_lists(self, view: View) -> None:
        """FLAGS and PERMANENTFLAGS with the keywords announced so far (RFC 3501 §7.2.6)."""
        keywords = "".join(" " + k for k in view.keywords).encode()
        self._emit(b"* FLAGS (" + SYSTEM_FLAGS + keywords + b")\r\n")
        permanent = b"()" if view.read_only else b"(" + SYSTEM_FLAGS + keywords + b" \\*)"
        self._emit(b"* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted\r\n")

    def _announce_keywords(self, flags: Iterable[str]) -> None:
        """RFC 3501 §7.2.6: a keyword the client has not seen in FLAGS is announced there
        (and in PERMANENTFLAGS) before a FETCH response shows it."""
        view = self._view()
        new = [f for f in flags if f[:1] != "\\" and f not in view.keywords]
        if new:
            view.keywords.update(dict.fromkeys(new))
            self._emit_flag_lists(view)

    async def poll(self, *, allow_expunge: bool) -> None:
        """Send what changed in the selected mailbox since this session last looked."""
        view = self._view()
        looked, self._looked = self._looked, None
        if looked is not None:
            seen = looked[0]
            if (
                seen is not None
                and seen.selectable
                and seen.highest_modseq == view.modseq
                and not (allow_expunge and view.pending_expunge)
            ):
                return  # nothing changed when the command looked: no round trip
        async with self._connection() as conn:
            current = await store.get_mailbox_by_id(conn, view.mailbox.id)
            if current is None or not current.selectable:
                self._emit(b"* BYE The selected mailbox was deleted\r\n")
                self.view = None
                self.state = State.LOGOUT
                return
            if current.highest_modseq == view.modseq and not (
                allow_expunge and view.pending_expunge
            ):
                return
            changes = await store.changes_since(conn, view.mailbox.id, view.modseq)
            view.modseq = changes.highest_modseq
            for uid in changes.expunged:
                if view.seq(uid) is not None:
                    view.pending_expunge.add(uid)
            if allow_expunge and view.pending_expunge:
                self._expunge(view)
            last = view.uids[-1] if view.uids else 0
            new = [m.uid for m in changes.changed if m.uid > last]
            if new:
                view.uids = [*view.uids, *new]  # a new list: the old may be shared
                self._emit(b"* %d EXISTS\r\n" % len(view.uids))
                if not view.read_only:
                    view.add_recent(*await store.claim_recent(conn, view.mailbox.id))
                else:
                    # Recent for whoever selects the mailbox; shown, not claimed, here.
                    view.add_recent(max(current.first_recent_uid, last + 1), new[-1] + 1)
                if not self.rev2:
                    self._emit(b"* %d RECENT\r\n" % view.recent_count())
            for message in changes.changed:
                if message.uid > last or message.uid in view.pending_expunge:
                    continue
                if view.announced.get(message.uid) == message.modseq:
                    continue
                self._emit_flags(message, with_uid=True)
            view.announced.clear()

    def _expunge(self, view: View) -> None:
        # Highest first, so that each number is right when the client reads it.
        gone = sorted(view.pending_expunge, reverse=True)
        if self.qresync:
            # RFC 7162 §3.2.10: VANISHED with UIDs instead of EXPUNGE once QRESYNC is on.
            known = [uid for uid in gone if view.seq(uid) is not None]
            if known:
                self._emit(b"* VANISHED " + sr.compact(sorted(known)).encode() + b"\r\n")
            gone = []
        for uid in gone:
            seq = view.seq(uid)
            if seq is not None:
                self._emit(b"* %d EXPUNGE\r\n" % seq)
        view.uids = [uid for uid in view.uids if uid not in view.pending_expunge]
        view.pending_expunge.clear()


def _first(row: tuple[int, str]) -> int:
    return row[0]


async def _messages_in(conn: Conn, mailbox_id: MailboxId, uids: Sequence[int]) -> list[Message]:
    """The messages with these UIDs (ascending), reading only their UID span."""
    if not uids:
        return []
    wanted = set(uids)
    messages = await store.list_messages(conn, mailbox_id, uid_min=uids[0], uid_max=uids[-1])
    return [m for m in messages if m.uid in wanted]


def list_matcher(pattern: str) -> Callable[[str], bool]:
    """RFC 3501 §6.3.8: ``*`` matches anything, ``%`` anything but the delimiter.

    INBOX matches case-insensitively as the first level. Matching takes time linear in the
    name whatever the pattern: the pattern is run as a set of positions (a bit set), one step
    per character of the name, never by backtracking (a regex of six wildcards against a long
    name once froze the event loop of every IMAP and POP3 session).
    """
    matcher = _Glob(pattern)
    head, sep, rest = pattern.partition(DELIMITER)
    folded = None
    if head.upper() == "INBOX" and head != "INBOX":
        folded = _Glob("INBOX" + sep + rest)

    def match(name: str) -> bool:
        return matcher.matches(name) or (folded is not None and folded.matches(name))

    return match


class _Glob:
    """A LIST pattern as a nondeterministic automaton over bit sets: bit i set means "the
    name so far matches the pattern up to position i"."""

    __slots__ = ("_accept", "_literal", "_percent", "_star", "_wild")

    def __init__(self, pattern: str) -> None:
        tokens: list[str] = []
        for ch in pattern:
            # Runs of wildcards are one wildcard: "*" if any of them is "*".
            if ch in "*%" and tokens and tokens[-1] in "*%":
                if ch == "*":
                    tokens[-1] = "*"
                continue
            tokens.append(ch)
        self._literal: dict[str, int] = {}
        self._star = self._percent = 0
        for i, item in enumerate(tokens):
            if item == "*":
                self._star |= 1 << i
            elif item == "%":
                self._percent |= 1 << i
            else:
                self._literal[item] = self._literal.get(item, 0) | 1 << i
        self._wild = self._star | self._percent
        self._accept = 1 << len(tokens)

    def _closure(self, states: int) -> int:
        # A wildcard may match nothing: being at it is being past it too (wildcards are never
        # adjacent, so one step closes the set).
        return states | (states & self._wild) << 1

    def matches(self, name: str) -> bool:
        states = self._closure(1)
        for ch in name:
            stay = states & self._star
            if ch != DELIMITER:
                stay |= states & self._percent
            states = self._closure(stay | (states & self._literal.get(ch, 0)) << 1)
            if not states:
                return False
        return bool(states & self._accept)
