"""Check a Sieve syntax tree against the known commands and extensions; build the compiled form."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from postroom.sieve.errors import SieveSyntaxError
from postroom.sieve.parser import (
    Argument,
    CommandNode,
    ConditionNode,
    Number,
    StringList,
    Tag,
    parse,
)

# The extensions this implementation offers (ManageSieve SIEVE capability, RFC 5804 §1.7).
EXTENSIONS: tuple[str, ...] = (
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "imap4flags",
    "vacation",
    "vacation-seconds",
    "body",
    "variables",
    "relational",
    "subaddress",
    "copy",
    "date",
    "index",
    "mailbox",
    "include",
)
_KNOWN = frozenset(EXTENSIONS)
# RFC 5228 §2.7.3: i;octet and i;ascii-casemap are always available.
_COMPARATORS = {
    "i;octet": None,
    "i;ascii-casemap": None,
    "i;ascii-numeric": "comparator-i;ascii-numeric",
}
_RELATIONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})  # RFC 5231 §5
_DATE_PARTS = frozenset(
    {
        "year", "month", "day", "date", "julian", "hour", "minute", "second",
        "time", "iso8601", "std11", "zone", "weekday",
    }
)  # fmt: skip
_SET_MODIFIERS = {  # RFC 5229 §4: precedence, higher applied first
    "lower": 40,
    "upper": 40,
    "lowerfirst": 30,
    "upperfirst": 30,
    "quotewildcard": 20,
    "length": 10,
}
# RFC 5228 §5.1: the address test is restricted to fields that hold addresses (at least From,
# To, Cc, Bcc, Sender, Resent-From, Resent-To); the same set as Pigeonhole.
ADDRESS_HEADERS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
        "resent-to", "resent-cc", "resent-bcc", "resent-reply-to", "delivered-to",
        "x-original-to", "mail-followup-to", "mail-reply-to", "errors-to", "x-beenthere",
        "apparently-to",
    }
)  # fmt: skip
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
COMPILED_FORMAT = 1  # bump when the JSON form of CompiledScript changes

ArgKind = Literal["string", "strings", "number"]
Value = str | int | bool | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TagSpec:
    key: str  # where the tag lands in Op.tags; tags sharing a key exclude each other
    const: str | bool = True  # what is stored under key
    value: ArgKind | None = None  # the argument that follows the tag
    value_key: str | None = None  # where that argument is stored (default: key)
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    kind: Literal["command", "test"]
    positional: tuple[ArgKind, ...] = ()
    optional_leading: int = 0
    tags: Mapping[str, TagSpec] = field(default_factory=dict)
    extension: str | None = None
    tests: Literal[0, 1, "list"] = 0
    block: bool = False


_COMPARATOR = {"comparator": TagSpec("comparator", value="string")}
_MATCH = {
    "is": TagSpec("match", "is"),
    "contains": TagSpec("match", "contains"),
    "matches": TagSpec("match", "matches"),
    "value": TagSpec("match", "value", "string", "relation", "relational"),
    "count": TagSpec("match", "count", "string", "relation", "relational"),
}
_ADDRESS_PART = {
    "all": TagSpec("part", "all"),
    "localpart": TagSpec("part", "localpart"),
    "domain": TagSpec("part", "domain"),
    "user": TagSpec("part", "user", extension="subaddress"),
    "detail": TagSpec("part", "detail", extension="subaddress"),
}
_INDEX = {
    "index": TagSpec("index", value="number", extension="index"),
    "last": TagSpec("last", extension="index"),
}
_MATCHING = {**_COMPARATOR, **_MATCH}

SPECS: dict[str, Spec] = {
    # RFC 5228 §3 control commands
    "require": Spec("command", ("strings",)),
    "if": Spec("command", tests=1, block=True),
    "elsif": Spec("command", tests=1, block=True),
    "else": Spec("command", block=True),
    "stop": Spec("command"),
    # RFC 5228 §4 actions, RFC 5232 §5 :flags, RFC 3894 :copy, RFC 5490 §3.2 :create
    "keep": Spec(
        "command", tags={"flags": TagSpec("flags", value="strings", extension="imap4flags")}
    ),
    "discard": Spec("command"),
    "redirect": Spec("command", ("string",), tags={"copy": TagSpec("copy", extension="copy")}),
    "fileinto": Spec(
        "command",
        ("string",),
        extension="fileinto",
        tags={
            "copy": TagSpec("copy", extension="copy"),
            "create": TagSpec("create", extension="mailbox"),
            "flags": TagSpec("flags", value="strings", extension="imap4flags"),
        },
    ),
    "reject": Spec("command", ("string",), extension="reject"),  # RFC 5429 §2.2
    "ereject": Spec("command", ("string",), extension="ereject"),  # RFC 5429 §2.1
    # RFC 5232 §3: [<variablename>] <list-of-flags>
    "setflag": Spec("command", ("string", "strings"), 1, extension="imap4flags"),
    "addflag": Spec("command", ("string", "strings"), 1, extension="imap4flags"),
    "removeflag": Spec("command", ("string", "strings"), 1, extension="imap4flags"),
    # RFC 5230 §4, RFC 6131 §2
    "vacation": Spec(
        "command",
        ("string",),
        extension="vacation",
        tags={
            "days": TagSpec("period_unit", "days", "number", "period"),
            "seconds": TagSpec("period_unit", "seconds", "number", "period", "vacation-seconds"),
            "subject": TagSpec("subject", value="string"),
            "from": TagSpec("from", value="string"),
            "addresses": TagSpec("addresses", value="strings"),
            "mime": TagSpec("mime"),
            "handle": TagSpec("handle", value="string"),
        },
    ),
    # RFC 5229 §4
    "set": Spec(
        "command",
        ("string", "string"),
        extension="variables",
        tags={name: TagSpec(f"modifier_{name}") for name in _SET_MODIFIERS},
    ),
    # RFC 6609 §3
    "include": Spec(
        "command",
        ("string",),
        extension="include",
        tags={
            "personal": TagSpec("location", "personal"),
            "global": TagSpec("location", "global"),
            "once": TagSpec("once"),
            "optional": TagSpec("optional"),
        },
    ),
    "return": Spec("command", extension="include"),
    "global": Spec("command", ("strings",), extension="include"),
    # RFC 5228 §5 tests
    "address": Spec("test", ("strings", "strings"), tags={**_MATCHING, **_ADDRESS_PART, **_INDEX}),
    "envelope": Spec(
        "test", ("strings", "strings"), extension="envelope", tags={**_MATCHING, **_ADDRESS_PART}
    ),
    "header": Spec("test", ("strings", "strings"), tags={**_MATCHING, **_INDEX}),
    "exists": Spec("test", ("strings",)),
    "size": Spec(
        "test",
        tags={
            "over": TagSpec("relation", "over", "number", "limit"),
            "under": TagSpec("relation", "under", "number", "limit"),
        },
    ),
    "allof": Spec("test", tests="list"),
    "anyof": Spec("test", tests="list"),
    "not": Spec("test", tests=1),
    "true": Spec("test"),
    "false": Spec("test"),
    # RFC 5173 §5
    "body": Spec(
        "test",
        ("strings",),
        extension="body",
        tags={
            **_MATCHING,
            "raw": TagSpec("transform", "raw"),
            "content": TagSpec("transform", "content", "strings", "content_types"),
            "text": TagSpec("transform", "text"),
        },
    ),
    # RFC 5229 §5
    "string": Spec("test", ("strings", "strings"), extension="variables", tags=_MATCHING),
    # RFC 5232 §4
    "hasflag": Spec("test", ("strings", "strings"), 1, extension="imap4flags", tags=_MATCHING),
    # RFC 5260 §4, §5
    "date": Spec(
        "test",
        ("string", "string", "strings"),
        extension="date",
        tags={
            **_MATCHING,
            **_INDEX,
            "zone": TagSpec("zone_kind", "zone", "string", "zone"),
            "originalzone": TagSpec("zone_kind", "original"),
        },
    ),
    "currentdate": Spec(
        "test",
        ("string", "strings"),
        extension="date",
        tags={**_MATCHING, "zone": TagSpec("zone_kind", "zone", "string", "zone")},
    ),
    # RFC 5490 §3.1
    "mailboxexists": Spec("test", ("strings",), extension="mailbox"),
}


@dataclass(frozen=True, slots=True)
class Op:
    """One compiled command or test: tags by key, positional arguments, children."""

    name: str
    line: int
    tags: Mapping[str, Value] = field(default_factory=dict)
    args: tuple[Value, ...] = ()
    tests: tuple[Op, ...] = ()
    block: tuple[Op, ...] = ()
    orelse: tuple[Op, ...] = ()  # if: the elsif (as a nested if) or else block


@dataclass(frozen=True, slots=True)
class CompiledScript:
    requires: frozenset[str]
    ops: tuple[Op, ...]
    size: int  # octets of the source

    @property
    def variables(self) -> bool:
        return "variables" in self.requires

    def uses(self, name: str) -> bool:
        """Whether any command or test of this name occurs (delivery skips what none needs)."""
        pending = list(self.ops)
        while pending:
            op = pending.pop()
            if op.name == name:
                return True
            pending += [*op.tests, *op.block, *op.orelse]
        return False

    def to_json(self) -> str:
        return json.dumps(
            {"format": COMPILED_FORMAT, "requires": sorted(self.requires), "size": self.size,
             "ops": [_op_to_json(op) for op in self.ops]},
            separators=(",", ":"),
        )  # fmt: skip

    @staticmethod
    def from_json(text: str) -> CompiledScript | None:
        """The compiled form, or None when it was written by another format version."""
        data = json.loads(text)
        if data.get("format") != COMPILED_FORMAT:
            return None
        return CompiledScript(
            frozenset(data["requires"]), tuple(_op_from_json(o) for o in data["ops"]), data["size"]
        )


def _value_to_json(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _value_from_json(value: Any) -> Value:
    return tuple(value) if isinstance(value, list) else value


def _op_to_json(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"n": op.name, "l": op.line}
    if op.tags:
        out["t"] = {k: _value_to_json(v) for k, v in op.tags.items()}
    if op.args:
        out["a"] = [_value_to_json(v) for v in op.args]
    for key, children in (("c", op.tests), ("b", op.block), ("e", op.orelse)):
        if children:
            out[key] = [_op_to_json(child) for child in children]
    return out


def _op_from_json(data: dict[str, Any]) -> Op:
    return Op(
        data["n"],
        data["l"],
        {k: _value_from_json(v) for k, v in data.get("t", {}).items()},
        tuple(_value_from_json(v) for v in data.get("a", [])),
        tuple(_op_from_json(c) for c in data.get("c", [])),
        tuple(_op_from_json(c) for c in data.get("b", [])),
        tuple(_op_from_json(c) for c in data.get("e", [])),
    )


def script_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def compile_script(source: str, *, max_size: int = 64 * 1024) -> CompiledScript:
    """Parse and check a script; raise SieveSyntaxError with the line of the first problem."""
    size = len(source.encode())
    if size > max_size:
        raise SieveSyntaxError(1, f"script is {size} octets, more than the limit of {max_size}")
    nodes = parse(source)
    return _Compiler().script(nodes, size)


class _Compiler:
    def __init__(self) -> None:
        self.requires: set[str] = set()

    def need(self, extension: str | None, line: int, what: str) -> None:
        if extension is not None and extension not in self.requires:
            raise SieveSyntaxError(line, f"{what} requires the extension {extension!r}")

    def script(self, nodes: tuple[CommandNode, ...], size: int) -> CompiledScript:
        start = 0
        # RFC 5228 §3.2: require must come before any other command.
        while start < len(nodes) and nodes[start].name == "require":
            node = nodes[start]
            op = self.command(node)
            assert isinstance(op.args[0], tuple)
            for name in op.args[0]:
                if name not in _KNOWN:
                    raise SieveSyntaxError(node.line, f"unsupported extension {name!r}")
                self.requires.add(name)
            start += 1
        # RFC 5229 §3, RFC 5228 §2.4.2.4: encoded-character is decoded at compile time, so
        # strings of require itself are literal.
        ops = self.block(nodes[start:])
        return CompiledScript(frozenset(self.requires), ops, size)

    def block(self, nodes: tuple[CommandNode, ...]) -> tuple[Op, ...]:
        result: list[Op] = []
        i = 0
        while i < len(nodes):
            node = nodes[i]
            if node.name == "require":
                raise SieveSyntaxError(node.line, "require must come before any other command")
            if node.name in ("elsif", "else"):
                raise SieveSyntaxError(node.line, f"{node.name} without a preceding if")
            if node.name == "if":
                # Fold if/elsif/else into nested ifs, the elsif chain in orelse.
                chain = [node]
                while i + 1 < len(nodes) and nodes[i + 1].name in ("elsif", "else"):
                    i += 1
                    chain.append(nodes[i])
                    if nodes[i].name == "else":
                        break
                result.append(self.if_chain(chain))
            else:
                result.append(self.command(node))
            i += 1
        return tuple(result)

    def if_chain(self, chain: list[CommandNode]) -> Op:
        head, rest = chain[0], chain[1:]
        checked = self.command(head)
        orelse: tuple[Op, ...] = ()
        if rest:
            if rest[0].name == "else":
                else_op = self.command(rest[0])
                orelse = else_op.block
            else:
                orelse = (self.if_chain(rest),)
        return Op("if", head.line, checked.tags, checked.args, checked.tests, checked.block, orelse)

    def command(self, node: CommandNode) -> Op:
        spec = SPECS.get(node.name)
        if spec is None or spec.kind != "command":
            what = "a test" if spec is not None else "an unknown command"
            raise SieveSyntaxError(node.line, f"{node.name!r} is {what}, not a command")
        self.need(spec.extension, node.line, f"command {node.name!r}")
        tags, args = self.arguments(node.name, spec, node.arguments, node.line)
        tests = self.children(node.name, spec, node.tests, node.line, node.tests_bracketed)
        if spec.block and node.block is None:
            raise SieveSyntaxError(node.line, f"{node.name} needs a block {{ ... }}")
        if not spec.block and node.block is not None:
            raise SieveSyntaxError(node.line, f"{node.name} takes no block; expected ';'")
        block = self.block(node.block) if node.block is not None else ()
        op = Op(node.name, node.line, tags, args, tests, block)
        self.check_command(op)
        return op

    def test(self, node: ConditionNode) -> Op:
        spec = SPECS.get(node.name)
        if spec is None or spec.kind != "test":
            what = "a command" if spec is not None else "an unknown test"
            raise SieveSyntaxError(node.line, f"{node.name!r} is {what}, not a test")
        self.need(spec.extension, node.line, f"test {node.name!r}")
        tags, args = self.arguments(node.name, spec, node.arguments, node.line)
        tests = self.children(node.name, spec, node.tests, node.line, node.tests_bracketed)
        op = Op(node.name, node.line, tags, args, tests)
        self.check_test(op)
        return op

    def children(
        self, name: str, spec: Spec, tests: tuple[ConditionNode, ...], line: int, bracketed: bool
    ) -> tuple[Op, ...]:
        if spec.tests == 0:
            if tests:
                raise SieveSyntaxError(line, f"{name} takes no test")
            return ()
        if spec.tests == 1 and len(tests) != 1:
            raise SieveSyntaxError(line, f"{name} needs exactly one test")
        if spec.tests == "list" and not (tests and bracketed):
            raise SieveSyntaxError(line, f"{name} needs a test list ( ... )")
        return tuple(self.test(t) for t in tests)

    def arguments(
        self, name: str, spec: Spec, arguments: tuple[Argument, ...], line: int
    ) -> tuple[dict[str, Value], tuple[Value, ...]]:
        tags: dict[str, Value] = {}
        positional: list[Value] = []
        i = 0
        # RFC 5228 §2.6.2: tagged arguments precede positional ones.
        while i < len(arguments):
            arg = arguments[i]
            if not isinstance(arg, Tag):
                break
            tag_spec = spec.tags.get(arg.name)
            if tag_spec is None:
                raise SieveSyntaxError(arg.line, f"unknown tag :{arg.name} for {name}")
            self.need(tag_spec.extension, arg.line, f"tag :{arg.name}")
            if tag_spec.key in tags:
                raise SieveSyntaxError(arg.line, f"tag :{arg.name} conflicts with an earlier tag")
            tags[tag_spec.key] = tag_spec.const
            if tag_spec.value is not None:
                i += 1
                if i >= len(arguments):
                    raise SieveSyntaxError(arg.line, f"tag :{arg.name} needs an argument")
                value = self.value(arguments[i], tag_spec.value, f"tag :{arg.name}")
                tags[tag_spec.value_key or tag_spec.key] = value
            i += 1
        for arg in arguments[i:]:
            if isinstance(arg, Tag):
                raise SieveSyntaxError(arg.line, f"tag :{arg.name} after positional arguments")
        rest = arguments[i:]
        expected = spec.positional
        if len(rest) == len(expected) - spec.optional_leading:
            expected = expected[spec.optional_leading :]
        if len(rest) != len(expected):
            raise SieveSyntaxError(
                line, f"{name} takes {len(spec.positional)} positional arguments, not {len(rest)}"
            )
        for arg, kind in zip(rest, expected, strict=True):
            positional.append(self.value(arg, kind, name))
        if len(expected) < len(spec.positional):
            positional.insert(0, "")  # the omitted variable name: the internal flags
        return tags, tuple(positional)

    def value(self, arg: Argument, kind: ArgKind, what: str) -> Value:
        if kind == "number":
            if not isinstance(arg, Number):
                raise SieveSyntaxError(arg.line, f"{what} expects a number")
            return arg.value
        if not isinstance(arg, StringList):
            raise SieveSyntaxError(arg.line, f"{what} expects a string")
        values = tuple(self.decode(v, arg.line) for v in arg.values)
        if kind == "string":
            if not arg.single and len(values) != 1:
                raise SieveSyntaxError(arg.line, f"{what} expects a single string, not a list")
            return values[0]
        return values

    def decode(self, value: str, line: int) -> str:
        if "encoded-character" not in self.requires or "${" not in value:
            return value
        return _decode_encoded(value, line)

    def check_command(self, op: Op) -> None:
        if op.name == "vacation":
            period = op.tags.get("period")
            if isinstance(period, int) and period < 0:
                raise SieveSyntaxError(op.line, "vacation period must not be negative")
        if op.name == "set":
            name = op.args[0]
            assert isinstance(name, str)
            if not _VARIABLE_NAME.match(name):
                raise SieveSyntaxError(op.line, f"invalid variable name {name!r}")
            ranks = [_SET_MODIFIERS[k[9:]] for k in op.tags if k.startswith("modifier_")]
            if len(ranks) != len(set(ranks)):
                raise SieveSyntaxError(op.line, "two modifiers of the same precedence")
        if op.name == "include":
            name = op.args[0]
            assert isinstance(name, str)
            # RFC 6609 §3.2: the script name is a constant, never built from variables.
            if "${" in name or not name or "/" in name:
                raise SieveSyntaxError(op.line, f"invalid script name {name!r} for include")
        if op.name == "global":
            self.need("variables", op.line, "global")
            names = op.args[0]
            assert isinstance(names, tuple)
            for variable in names:
                if not _VARIABLE_NAME.match(variable):
                    raise SieveSyntaxError(op.line, f"invalid variable name {variable!r}")
        if op.name in ("setflag", "addflag", "removeflag") and op.args[0] != "":
            self.need("variables", op.line, f"{op.name} with a variable name")

    def check_test(self, op: Op) -> None:
        comparator = op.tags.get("comparator", "i;ascii-casemap")
        if isinstance(comparator, str):
            if comparator not in _COMPARATORS:
                raise SieveSyntaxError(op.line, f"unknown comparator {comparator!r}")
            self.need(_COMPARATORS[comparator], op.line, f"comparator {comparator!r}")
            # RFC 4790 §9.1: i;ascii-numeric offers equality and ordering, no substring match.
            if comparator == "i;ascii-numeric" and op.tags.get("match") in ("contains", "matches"):
                raise SieveSyntaxError(op.line, "i;ascii-numeric cannot do :contains or :matches")
        relation = op.tags.get("relation")
        if op.tags.get("match") in ("value", "count") and relation not in _RELATIONS:
            raise SieveSyntaxError(op.line, f"unknown relational operator {relation!r}")
        if "last" in op.tags and "index" not in op.tags:
            raise SieveSyntaxError(op.line, ":last needs :index")
        if op.name == "size" and "relation" not in op.tags:
            raise SieveSyntaxError(op.line, "size needs :over or :under")
        if op.name == "address":
            headers = op.args[0]
            assert isinstance(headers, tuple)
            for header in headers:
                if header.lower() not in ADDRESS_HEADERS and "${" not in header:
                    raise SieveSyntaxError(
                        op.line, f"header {header!r} is not known to contain addresses"
                    )
        if op.name == "envelope":
            parts = op.args[0]
            assert isinstance(parts, tuple)
            for part in parts:
                if part.lower() not in ("from", "to") and "${" not in part:
                    raise SieveSyntaxError(op.line, f"unknown envelope part {part!r}")
        if op.name in ("date", "currentdate"):
            date_part = op.args[-2]
            assert isinstance(date_part, str)
            if date_part.lower() not in _DATE_PARTS and "${" not in date_part:
                raise SieveSyntaxError(op.line, f"unknown date part {date_part!r}")
        if op.name == "date" and op.tags.get("zone_kind") == "zone":
            zone = op.tags["zone"]
            assert isinstance(zone, str)
            if not _ZONE.match(zone) and "${" not in zone:
                raise SieveSyntaxError(op.line, f"invalid time zone {zone!r}")


_ZONE = re.compile(r"[+-]\d{4}\Z")
_ENCODED = re.compile(r"\$\{(hex|unicode):([^}]*)\}", re.IGNORECASE)


def _decode_encoded(value: str, line: int) -> str:
    # RFC 5228 §2.4.2.4: ${hex:41 42} and ${unicode:1F600}; a malformed one stays as written,
    # a well-formed unicode one naming a surrogate or a value past 10FFFF is an error.
    def replace(match: re.Match[str]) -> str:
        kind, body = match.group(1).lower(), match.group(2)
        items = body.split()
        if not items or any(not re.fullmatch(r"[0-9A-Fa-f]+", item) for item in items):
            return match.group(0)
        if kind == "hex":
            if any(len(item) > 2 for item in items):  # hex-pair = 1*2HEXDIG
                return match.group(0)
            try:
                return bytes(int(item, 16) for item in items).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise SieveSyntaxError(line, "encoded-character is not valid UTF-8") from None
        chars = []
        for item in items:
            code = int(item, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise SieveSyntaxError(line, f"invalid unicode character {item}")
            chars.append(chr(code))
        return "".join(chars)

    return _ENCODED.sub(replace, value)
