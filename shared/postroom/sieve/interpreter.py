"""Run a compiled Sieve script against one message and envelope; return the actions (no I/O)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from postroom.sieve.actions import Action, FileInto, Keep, Outcome, Redirect, Reject, Vacation
from postroom.sieve.compiler import CompiledScript, Op, Value
from postroom.sieve.errors import SieveRuntimeError
from postroom.sieve.mail import Envelope, MessageView, date_part, parse_zone
from postroom.sieve.match import matches_cost, test_values

INBOX = "INBOX"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\Z")
_DAY = 86400


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one run, so a script cannot make delivery slow or fan mail out."""

    max_redirects: int = 4  # RFC 5228 §4.2: implementations MAY limit redirects
    max_actions: int = 32
    max_work: int = 2_000_000  # comparisons and characters scanned, roughly
    max_variable_size: int = 4096  # RFC 5229 §6: at least 4000; longer values are truncated
    min_vacation_seconds: int = 0  # RFC 6131 §2: 0 means reply to every message
    max_vacation_seconds: int = 90 * _DAY  # RFC 5230 §4.1: sites may cap :days
    default_vacation_seconds: int = 7 * _DAY  # RFC 5230 §4.1: "the default ... is 7 days"
    subaddress_separator: str = "+"
    max_include_depth: int = 10  # RFC 6609 §3.2: implementations limit nesting
    max_includes: int = 32


@dataclass(slots=True)
class Context:
    """What a run reads: the message, its envelope, the clock, the mailboxes that exist."""

    message: MessageView
    envelope: Envelope
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    mailboxes: Collection[str] = ()
    limits: Limits = field(default_factory=Limits)
    zone: tzinfo | None = None  # RFC 5260 §4.1 the local zone; the clock's when None
    # RFC 6609: the scripts include may name, by location ("personal", "global") and name.
    includes: Callable[[str, str], CompiledScript | None] = lambda _location, _name: None


class _Stop(Exception):
    pass


class _Return(Exception):
    """RFC 6609 §3.3: return ends the current (included) script."""


class _Run:
    def __init__(self, script: CompiledScript, ctx: Context) -> None:
        self.script = script
        self.ctx = ctx
        self.expand_variables = script.variables
        self.variables: dict[str, str] = {}
        self.match_variables: list[str] = []
        self.flags: list[str] = []
        self.named_flags: dict[str, list[str]] = {}
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.work = 0
        # RFC 6609 §3.4: variables declared global are shared by every script of the run.
        self.global_names: set[str] = set()
        self.global_values: dict[str, str] = {}
        self.include_stack: list[tuple[str, str]] = []
        self.included: set[tuple[str, str]] = set()
        self.include_count = 0

    # -- strings -------------------------------------------------------------------------
    def expand(self, text: str) -> str:
        # RFC 5229 §3: ${name} and ${digit} are substituted in every string argument.
        if not self.expand_variables or "${" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.isdigit():
                index = int(name)
                return self.match_variables[index] if index < len(self.match_variables) else ""
            return self.get_value(name)

        return _VARIABLE.sub(replace, text)

    def get_value(self, name: str) -> str:
        name = name.lower()
        if name in self.global_names:
            return self.global_values.get(name, "")
        return self.variables.get(name, "")

    def string(self, value: Value) -> str:
        assert isinstance(value, str)
        return self.expand(value)

    def strings(self, value: Value) -> list[str]:
        assert isinstance(value, tuple)
        return [self.expand(v) for v in value]

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > self.ctx.limits.max_work:
            raise SieveRuntimeError("script ran past its time limit")

    # -- commands ------------------------------------------------------------------------
    def block(self, ops: Sequence[Op]) -> None:
        for op in ops:
            self.charge(1)
            self.command(op)

    def command(self, op: Op) -> None:
        name = op.name
        if name == "if":
            if self.test(op.tests[0]):
                self.block(op.block)
            else:
                self.block(op.orelse)
        elif name == "require":
            pass
        elif name == "stop":
            raise _Stop
        elif name == "keep":
            self.add(Keep(self.action_flags(op)))
            self.implicit_keep = False
        elif name == "discard":
            self.implicit_keep = False  # RFC 5228 §4.5: discard only cancels the implicit keep
        elif name == "redirect":
            self.redirect(op)
        elif name == "fileinto":
            mailbox = self.string(op.args[0])
            # RFC 3501 §9: a mailbox name holds no control characters (no CR, LF or NUL).
            if not mailbox or any(ord(c) < 32 or c == "\x7f" for c in mailbox):
                raise SieveRuntimeError(f"line {op.line}: invalid mailbox name {mailbox!r}")
            self.add(FileInto(mailbox, self.action_flags(op), bool(op.tags.get("create"))))
            if not op.tags.get("copy"):
                self.implicit_keep = False
        elif name in ("reject", "ereject"):
            self.add(Reject(self.string(op.args[0]), extended=name == "ereject"))
            self.implicit_keep = False  # RFC 5429 §2.1, §2.2: reject cancels the implicit keep
        elif name in ("setflag", "addflag", "removeflag"):
            self.change_flags(op)
        elif name == "vacation":
            self.vacation(op)
        elif name == "set":
            self.set_variable(op)
        elif name == "include":
            self.include(op)
        elif name == "return":
            raise _Return
        elif name == "global":
            names = op.args[0]
            assert isinstance(names, tuple)
            self.global_names.update(n.lower() for n in names)
        else:  # pragma: no cover - the compiler admits no other command
            raise SieveRuntimeError(f"line {op.line}: unknown command {name}")

    def add(self, action: Action) -> None:
        if len(self.actions) >= self.ctx.limits.max_actions:
            raise SieveRuntimeError(f"more than {self.ctx.limits.max_actions} actions")
        self.actions.append(action)

    def redirect(self, op: Op) -> None:
        address = self.string(op.args[0]).strip()
        if address.startswith("<") and address.endswith(">"):
            address = address[1:-1]
        # RFC 5228 §4.2: the argument must be a valid address; checked at run time when the
        # script builds it from variables.
        if not _ADDRESS.match(address):
            raise SieveRuntimeError(f"line {op.line}: invalid redirect address {address!r}")
        targets = {a.address.lower() for a in self.actions if isinstance(a, Redirect)}
        if address.lower() not in targets and len(targets) >= self.ctx.limits.max_redirects:
            raise SieveRuntimeError(f"more than {self.ctx.limits.max_redirects} redirects")
        self.add(Redirect(address, copy=bool(op.tags.get("copy"))))
        if not op.tags.get("copy"):
            self.implicit_keep = False

    def action_flags(self, op: Op) -> tuple[str, ...]:
        # RFC 5232 §5: :flags replaces the internal variable for this action only.
        if "flags" in op.tags:
            return tuple(_flag_set(self.strings(op.tags["flags"])))
        return tuple(self.flags)

    def flag_target(self, name: str) -> list[str]:
        if name == "":
            return self.flags
        return _flag_set(self.get_value(name).split())

    def change_flags(self, op: Op) -> None:
        # RFC 5232 §3: setflag replaces, addflag adds, removeflag removes (case-insensitively).
        target_name = self.string(op.args[0])
        new = _flag_set(self.strings(op.args[1]))
        current = self.flag_target(target_name)
        if op.name == "setflag":
            result = new
        elif op.name == "addflag":
            result = _flag_set([*current, *new])
        else:
            gone = {f.lower() for f in new}
            result = [f for f in current if f.lower() not in gone]
        if target_name == "":
            self.flags = result
        else:
            self.set_value(target_name, " ".join(result))

    def vacation(self, op: Op) -> None:
        limits = self.ctx.limits
        if any(isinstance(a, Vacation) for a in self.actions):
            # RFC 5230 §4.7: a second vacation in one run is an error.
            raise SieveRuntimeError(f"line {op.line}: more than one vacation action")
        period = op.tags.get("period")
        if period is None:
            seconds = limits.default_vacation_seconds
        else:
            assert isinstance(period, int)
            seconds = period * (_DAY if op.tags.get("period_unit") == "days" else 1)
        # RFC 5230 §4.1 / RFC 6131 §2: out-of-range periods are silently brought into range.
        seconds = max(limits.min_vacation_seconds, min(limits.max_vacation_seconds, seconds))
        if op.tags.get("period_unit") == "days" and period == 0:
            seconds = max(seconds, _DAY)  # RFC 5230 §4.1: :days 0 is not allowed; treat as 1
        subject = self.string(op.tags["subject"]) if "subject" in op.tags else None
        from_address = self.string(op.tags["from"]) if "from" in op.tags else None
        addresses = tuple(self.strings(op.tags["addresses"])) if "addresses" in op.tags else ()
        reason = self.string(op.args[0])
        handle = self.string(op.tags["handle"]) if "handle" in op.tags else ""
        self.add(
            Vacation(
                reason,
                seconds,
                subject,
                from_address,
                addresses,
                mime=bool(op.tags.get("mime")),
                handle=handle,
            )
        )

    def include(self, op: Op) -> None:
        # RFC 6609 §3.2.
        limits = self.ctx.limits
        location = str(op.tags.get("location", "personal"))
        name = op.args[0]
        assert isinstance(name, str)
        key = (location, name)
        if op.tags.get("once") and key in self.included:
            return
        if key in self.include_stack:
            raise SieveRuntimeError(f"line {op.line}: script {name!r} includes itself")
        if len(self.include_stack) >= limits.max_include_depth:
            raise SieveRuntimeError(f"line {op.line}: includes nested too deeply")
        self.include_count += 1
        if self.include_count > limits.max_includes:
            raise SieveRuntimeError(f"line {op.line}: more than {limits.max_includes} includes")
        script = self.ctx.includes(location, name)
        if script is None:
            if op.tags.get("optional"):
                return
            raise SieveRuntimeError(f"line {op.line}: no {location} script named {name!r}")
        self.included.add(key)
        saved = (self.variables, self.global_names, self.expand_variables, self.match_variables)
        # Each script has its own variables; only those both declare global are shared.
        self.variables, self.global_names = {}, set()
        self.expand_variables, self.match_variables = script.variables, []
        self.include_stack.append(key)
        try:
            self.block(script.ops)
        except _Return:
            pass
        finally:
            self.include_stack.pop()
            (self.variables, self.global_names, self.expand_variables, self.match_variables) = saved

    def set_variable(self, op: Op) -> None:
        name = self.string(op.args[0])
        value = self.string(op.args[1])
        tags = op.tags
        # RFC 5229 §4.1: modifiers apply from the highest precedence down.
        if "modifier_lower" in tags:
            value = value.lower()
        if "modifier_upper" in tags:
            value = value.upper()
        if "modifier_lowerfirst" in tags:
            value = value[:1].lower() + value[1:]
        if "modifier_upperfirst" in tags:
            value = value[:1].upper() + value[1:]
        if "modifier_quotewildcard" in tags:
            value = re.sub(r"([*?\\])", r"\\\1", value)
        if "modifier_length" in tags:
            value = str(len(value))
        self.set_value(name, value)

    def set_value(self, name: str, value: str) -> None:
        self.charge(len(value) // 64 + 1)
        name = name.lower()
        target = self.global_values if name in self.global_names else self.variables
        target[name] = value[: self.ctx.limits.max_variable_size]

    # -- tests ---------------------------------------------------------------------------
    def test(self, op: Op) -> bool:
        self.charge(1)
        name = op.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(op.tests[0])
        if name == "allof":
            return all(self.test(t) for t in op.tests)
        if name == "anyof":
            return any(self.test(t) for t in op.tests)
        if name == "exists":
            return all(self.ctx.message.raw_values(h) for h in self.strings(op.args[0]))
        if name == "size":
            limit = op.tags["limit"]
            assert isinstance(limit, int)
            size = self.ctx.message.size
            return size > limit if op.tags["relation"] == "over" else size < limit
        if name == "header":
            index, last = self.index(op)
            values = [
                v
                for h in self.strings(op.args[0])
                for v in self.ctx.message.header_values(h, index, last)
            ]
            return self.compare(op, values, op.args[1])
        if name == "address":
            index, last = self.index(op)
            part = str(op.tags.get("part", "all"))
            values = []
            for header in self.strings(op.args[0]):
                for address in self.ctx.message.addresses(header, index, last):
                    extracted = self.address_part(address, part)
                    if extracted is not None:
                        values.append(extracted)
            return self.compare(op, values, op.args[1])
        if name == "envelope":
            return self.envelope(op)
        if name == "body":
            transform = str(op.tags.get("transform", "text"))
            types = self.strings(op.tags.get("content_types", ()))
            texts = self.ctx.message.body_texts(transform, tuple(types))
            self.charge(sum(len(t) for t in texts) // 16)
            return self.compare(op, texts, op.args[0])
        if name == "string":
            return self.compare(op, self.strings(op.args[0]), op.args[1])
        if name == "hasflag":
            if op.args[0] == "":
                flags = list(self.flags)
            else:
                flags = [f for v in self.strings(op.args[0]) for f in self.flag_target(v)]
            return self.compare(op, flags, op.args[1])
        if name == "date":
            return self.date(op)
        if name == "currentdate":
            now = self.ctx.now.astimezone(self.zone_for(op))
            current = date_part(now, self.string(op.args[0]))
            return current is not None and self.compare(op, [current], op.args[1])
        if name == "mailboxexists":
            wanted = self.strings(op.args[0])
            existing = set(self.ctx.mailboxes)
            return all(m in existing or m.upper() == INBOX for m in wanted)
        raise SieveRuntimeError(f"line {op.line}: unknown test {name}")  # pragma: no cover

    def index(self, op: Op) -> tuple[int | None, bool]:
        index = op.tags.get("index")
        return (index if isinstance(index, int) else None), bool(op.tags.get("last"))

    def address_part(self, address: str, part: str) -> str | None:
        # RFC 5228 §2.7.4, RFC 5233 §4.
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if part == "all":
            return address
        if part == "localpart":
            return local
        if part == "domain":
            return domain if at else None
        separator = self.ctx.limits.subaddress_separator
        user, sep, detail = local.partition(separator)
        if part == "user":
            return user
        return detail if sep else None  # RFC 5233 §4: no detail part, nothing to match

    def envelope(self, op: Op) -> bool:
        part = str(op.tags.get("part", "all"))
        values: list[str] = []
        for name in self.strings(op.args[0]):
            wanted = name.lower()
            if wanted == "from":
                sender = self.ctx.envelope.sender
                # RFC 5228 §5.4: the null reverse-path compares as the empty string.
                value = self.address_part(sender, part) if sender else ""
            elif wanted == "to":
                value = self.address_part(self.ctx.envelope.recipient, part)
            else:
                raise SieveRuntimeError(f"line {op.line}: unknown envelope part {name!r}")
            if value is not None:
                values.append(value)
        return self.compare(op, values, op.args[1])

    def zone_for(self, op: Op) -> tzinfo:
        if op.tags.get("zone_kind") == "zone":
            zone = parse_zone(self.string(op.tags["zone"]))
            if zone is not None:
                return zone
        return self.ctx.zone or self.ctx.now.tzinfo or UTC

    def date(self, op: Op) -> bool:
        index, last = self.index(op)
        header = self.string(op.args[0])
        part = self.string(op.args[1])
        values: list[str] = []
        for value in self.ctx.message.date_values(header, index, last):
            if op.tags.get("zone_kind") != "original":
                value = value.astimezone(self.zone_for(op))
            extracted = date_part(value, part)
            if extracted is not None:
                values.append(extracted)
        return self.compare(op, values, op.args[2])

    def compare(self, op: Op, values: list[str], keys_value: Value) -> bool:
        keys = self.strings(keys_value)
        match = str(op.tags.get("match", "is"))
        comparator = self.string(op.tags.get("comparator", "i;ascii-casemap"))
        if comparator not in ("i;octet", "i;ascii-casemap", "i;ascii-numeric"):
            raise SieveRuntimeError(f"line {op.line}: unknown comparator {comparator!r}")
        relation = op.tags.get("relation")
        relation_text = self.string(relation) if isinstance(relation, str) else None
        # The work a run may do is bounded (Limits.max_work): count it before doing it.
        per_char = sum(matches_cost(k) for k in keys) if match == "matches" else len(keys)
        self.charge(len(values) * len(keys) + sum(len(v) for v in values) * max(1, per_char) // 8)
        result, captured = test_values(
            values, keys, match=match, comparator=comparator, relation=relation_text
        )
        if result and captured is not None and self.expand_variables:
            # RFC 5229 §3.2: a successful :matches sets ${0}..${9}.
            self.match_variables = captured[:10]
        return result

    # -- the end -------------------------------------------------------------------------
    def outcome(self) -> tuple[Action, ...]:
        merged: list[Action] = []
        for action in self.actions:
            _merge(merged, action)
        if self.implicit_keep:
            # RFC 5232 §3: the implicit keep takes the internal flags as they stand at the end.
            _merge(merged, Keep(tuple(self.flags), implicit=True))
        rejects = [a for a in merged if isinstance(a, Reject)]
        if rejects:
            # RFC 5429 §2.1: reject cannot go with keep or fileinto (the message would be both
            # delivered and refused), nor with vacation (two answers to one message).
            conflicting = [a for a in merged if isinstance(a, Keep | FileInto | Vacation)]
            if conflicting or len(rejects) > 1:
                raise SieveRuntimeError("reject cannot be combined with other actions")
        return tuple(merged)


def _flag_set(items: Sequence[str]) -> list[str]:
    # RFC 5232 §3: the argument is a space-separated list; duplicates (any case) collapse.
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        for flag in item.split():
            if flag.lower() not in seen:
                seen.add(flag.lower())
                result.append(flag)
    return result


def _same_mailbox(a: str, b: str) -> bool:
    # RFC 3501 §5.1: INBOX is case-insensitive, other names are not.
    return a == b or (a.upper() == INBOX and b.upper() == INBOX)


def _merge(merged: list[Action], action: Action) -> None:
    # RFC 5228 §2.10.3: a message is filed into one mailbox once and redirected to one address
    # once; keep is fileinto the INBOX. Flags of the duplicates are merged (RFC 5232 §5).
    target = INBOX if isinstance(action, Keep) else getattr(action, "mailbox", None)
    for i, existing in enumerate(merged):
        if target is not None and isinstance(existing, Keep | FileInto):
            existing_target = INBOX if isinstance(existing, Keep) else existing.mailbox
            if _same_mailbox(existing_target, target):
                flags = tuple(_flag_set([*existing.flags, *action.flags]))  # type: ignore[union-attr]
                if isinstance(existing, Keep) and isinstance(action, Keep):
                    merged[i] = Keep(flags, implicit=existing.implicit and action.implicit)
                elif isinstance(existing, FileInto):
                    create = existing.create or (isinstance(action, FileInto) and action.create)
                    merged[i] = FileInto(existing.mailbox, flags, create)
                else:
                    merged[i] = Keep(flags, implicit=False)
                return
        if (
            isinstance(action, Redirect)
            and isinstance(existing, Redirect)
            and existing.address.lower() == action.address.lower()
        ):
            return
    merged.append(action)


def run(script: CompiledScript, ctx: Context) -> Outcome:
    """Run ``script``; a run-time error yields the implicit keep and the error
    (RFC 5228 §2.10.6), never a lost message."""
    state = _Run(script, ctx)
    try:
        with contextlib.suppress(_Stop, _Return):
            state.block(script.ops)
        return Outcome(state.outcome())
    except SieveRuntimeError as exc:
        return Outcome((Keep(implicit=True),), error=str(exc))
    except RecursionError:
        return Outcome((Keep(implicit=True),), error="script nested too deeply")
