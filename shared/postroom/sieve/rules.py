"""Filter rules and out-of-office from simple forms, turned into a Sieve script and read back.

The web pages edit a list of rules ("when Subject contains X, move to folder Y") and an
out-of-office reply. They are kept as an ordinary Sieve script (``SCRIPT_NAME``), so ManageSieve
clients see and may replace it; the forms' own data rides along in one comment line, from which
the pages read them back. A script edited by hand elsewhere is not parsed back into rules.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from postroom.sieve.compiler import compile_script

SCRIPT_NAME = "postroom"
_DATA_PREFIX = "# postroom-filters: "
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 §3.6.8 ftext
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\Z")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleCondition(_Model):
    """One test: a header (From, To/Cc, Subject or any named one) or the size."""

    field: Literal["from", "to", "subject", "header", "size_over"]
    op: Literal["contains", "not_contains", "is", "not_is", "matches"] = "contains"
    value: str = Field(max_length=1000)
    header: str = Field(default="", max_length=100, description="the field name for 'header'")

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if value and not _HEADER_NAME.match(value):
            raise ValueError("not a header field name")
        return value


class RuleAction(_Model):
    """What a matching rule does; ``value`` is the folder or the address."""

    type: Literal[
        "fileinto", "copy_to", "mark_read", "flag", "redirect", "forward_copy", "discard", "stop"
    ]
    value: str = Field(default="", max_length=1000)


class FilterRule(_Model):
    name: str = Field(default="", max_length=200)
    enabled: bool = True
    match: Literal["all", "any"] = "all"
    conditions: list[RuleCondition] = Field(default_factory=list, max_length=20)
    actions: list[RuleAction] = Field(min_length=1, max_length=10)


class OutOfOffice(_Model):
    """RFC 5230 vacation between two dates (inclusive, the server's time zone)."""

    enabled: bool = False
    start: date | None = None
    end: date | None = None
    subject: str = Field(default="", max_length=500)
    text: str = Field(default="", max_length=10_000)
    days: int = Field(default=7, ge=1, le=90, description="reply to one sender once per N days")


class FilterSet(_Model):
    rules: list[FilterRule] = Field(default_factory=list, max_length=200)
    out_of_office: OutOfOffice = Field(default_factory=OutOfOffice)


class RuleError(ValueError):
    """A rule that cannot be written as Sieve (a move without a folder, a bad address)."""


def quote(value: str) -> str:
    """RFC 5228 §2.4.2: a quoted string, escaping only backslash and quote; its line
    breaks as CRLF, like the script's."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _test(condition: RuleCondition, requires: set[str]) -> str:
    if condition.field == "size_over":
        if not condition.value.strip().isdigit():
            raise RuleError("size_over takes a number of kilobytes")
        return f"size :over {int(condition.value.strip())}K"
    if condition.field == "header":
        if not condition.header:
            raise RuleError("a header condition needs the header's name")
        names = quote(condition.header)
    else:
        names = {"from": '"from"', "to": '["to", "cc"]', "subject": '"subject"'}[condition.field]
    match = {"contains": ":contains", "not_contains": ":contains", "is": ":is"}.get(
        condition.op, ":matches" if condition.op == "matches" else ":is"
    )
    test = f"header {match} {names} {quote(condition.value)}"
    return f"not {test}" if condition.op.startswith("not_") else test


def _actions(rule: FilterRule, requires: set[str]) -> list[str]:
    flags = [a for a in rule.actions if a.type in ("mark_read", "flag")]
    flag_names = ["\\Seen" if a.type == "mark_read" else "\\Flagged" for a in flags]
    lines: list[str] = []
    moves = [a for a in rule.actions if a.type in ("fileinto", "copy_to")]
    if flag_names:
        requires.add("imap4flags")
        flag_list = "[" + ", ".join(quote(f) for f in flag_names) + "]"
        if not moves:
            # No folder to carry them: they go to the message wherever it is kept.
            lines.append(f"addflag {flag_list};")
    for action in rule.actions:
        if action.type in ("fileinto", "copy_to"):
            folder = action.value.strip()
            if not folder:
                raise RuleError("moving or copying needs a folder")
            requires.update({"fileinto", "mailbox"})
            parts = ["fileinto"]
            if action.type == "copy_to":
                requires.add("copy")
                parts.append(":copy")
            parts.append(":create")
            if flag_names:
                parts.append(":flags [" + ", ".join(quote(f) for f in flag_names) + "]")
            lines.append(" ".join([*parts, quote(folder)]) + ";")
        elif action.type in ("redirect", "forward_copy"):
            address = action.value.strip()
            if not _ADDRESS.match(address):
                raise RuleError(f"{address!r} is not an e-mail address")
            if action.type == "forward_copy":
                requires.add("copy")
                lines.append(f"redirect :copy {quote(address)};")
            else:
                lines.append(f"redirect {quote(address)};")
        elif action.type == "discard":
            lines.append("discard;")
    if any(a.type == "stop" for a in rule.actions):
        lines.append("stop;")
    return lines


def _vacation(ooo: OutOfOffice, requires: set[str]) -> list[str]:
    if not ooo.enabled:
        return []
    if not ooo.text.strip():
        raise RuleError("the out-of-office reply needs a text")
    if ooo.start and ooo.end and ooo.end < ooo.start:
        raise RuleError("the out-of-office period ends before it starts")
    requires.add("vacation")
    reply = f"vacation :days {ooo.days}"
    if ooo.subject:
        reply += f" :subject {quote(ooo.subject)}"
    reply += f" {quote(ooo.text)};"
    tests = []
    # RFC 5260 §5: currentdate compares today's date in the server's zone.
    if ooo.start:
        tests.append(f'currentdate :value "ge" "date" "{ooo.start.isoformat()}"')
    if ooo.end:
        tests.append(f'currentdate :value "le" "date" "{ooo.end.isoformat()}"')
    if not tests:
        return ["# Out of office", reply]
    requires.update({"date", "relational"})
    condition = tests[0] if len(tests) == 1 else f"allof ({', '.join(tests)})"
    return ["# Out of office", f"if {condition} {{", f"    {reply}", "}"]


def generate(filters: FilterSet) -> str:
    """The Sieve script of these rules and this out-of-office reply (checked to compile)."""
    requires: set[str] = set()
    body: list[str] = []
    # The reply first, so that a rule's stop cannot keep it from being sent.
    body += _vacation(filters.out_of_office, requires)
    for number, rule in enumerate(filters.rules, 1):
        if not rule.enabled:
            continue
        tests = [_test(c, requires) for c in rule.conditions]
        if not tests:
            condition = "true"
        elif len(tests) == 1:
            condition = tests[0]
        else:
            condition = f"{'allof' if rule.match == 'all' else 'anyof'} ({', '.join(tests)})"
        title = rule.name.replace("\r", " ").replace("\n", " ") or f"rule {number}"
        body.append(f"# {title}")
        body.append(f"if {condition} {{")
        body += [f"    {line}" for line in _actions(rule, requires)]
        body.append("}")
    data = json.dumps(filters.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=True)
    lines = [
        "# Written by Postroom's Filters and Out-of-office pages; edit them there.",
        _DATA_PREFIX + data,
    ]
    if requires:
        lines.append("require [" + ", ".join(quote(r) for r in sorted(requires)) + "];")
    script = "\r\n".join([*lines, *body]) + "\r\n"
    compile_script(script, max_size=1 << 20)  # a generator bug must not store a broken script
    return script


def read(source: str) -> FilterSet | None:
    """The rules and reply a generated script was made from; None for any other script."""
    for line in source.splitlines()[:3]:
        if line.startswith(_DATA_PREFIX):
            try:
                return FilterSet.model_validate(json.loads(line[len(_DATA_PREFIX) :]))
            except (ValueError, ValidationError):
                return None
    return None
