"""Sieve grammar (RFC 5228 §8): script text to a syntax tree of commands, tests and arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

from postroom.sieve.errors import SieveSyntaxError


@dataclass(frozen=True, slots=True)
class Tag:
    name: str  # without the colon, lower case
    line: int


@dataclass(frozen=True, slots=True)
class Number:
    value: int
    line: int


@dataclass(frozen=True, slots=True)
class StringList:
    values: tuple[str, ...]
    line: int
    single: bool  # written as one string, not as a bracketed list


Argument = Tag | Number | StringList


@dataclass(frozen=True, slots=True)
class ConditionNode:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[ConditionNode, ...]
    line: int
    tests_bracketed: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class CommandNode:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[ConditionNode, ...]
    block: tuple[CommandNode, ...] | None
    line: int
    tests_bracketed: bool = field(default=False)


# RFC 5228 §8.1: identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_")
_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_ID_CHARS = _ID_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_QUANTIFIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# RFC 5228 §2.4.1: numbers are unsigned 31-bit at least; larger values are an error here.
_MAX_NUMBER = (1 << 63) - 1
_MAX_NESTING = (
    64  # RFC 5228 §4 leaves nesting to implementations; deep nesting is a stranger's tool
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "id" "tag" "num" "str" or the special character itself
    value: str | int
    line: int
    single: bool = True


def tokenize(text: str) -> list[Token]:
    """RFC 5228 §8.1 lexical tokens; white space and comments dropped. Linear in the text."""
    tokens: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise SieveSyntaxError(line, "unterminated bracket comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "[](),;{}":
            tokens.append(Token(c, c, line))
            i += 1
        elif c == ":":
            j = i + 1
            if j >= n or text[j] not in _ID_START:
                raise SieveSyntaxError(line, "':' must be followed by a tag name")
            while j < n and text[j] in _ID_CHARS:
                j += 1
            tokens.append(Token("tag", text[i + 1 : j].lower(), line))
            i = j
        elif c in _DIGITS:
            j = i
            while j < n and text[j] in _DIGITS:
                j += 1
            value = int(text[i:j])
            if j < n and text[j].lower() in _QUANTIFIERS:
                value *= _QUANTIFIERS[text[j].lower()]
                j += 1
            if value > _MAX_NUMBER:
                raise SieveSyntaxError(line, "number too large")
            if j < n and text[j] in _ID_CHARS:
                raise SieveSyntaxError(line, f"invalid number {text[i : j + 1]!r}")
            tokens.append(Token("num", value, line))
            i = j
        elif c == '"':
            start_line = line
            i, string, line = _quoted(text, i + 1, line)
            tokens.append(Token("str", string, start_line))
        elif c in _ID_START:
            j = i
            while j < n and text[j] in _ID_CHARS:
                j += 1
            word = text[i:j]
            if word.lower() == "text" and j < n and text[j] == ":":
                start_line = line
                i, string, line = _multiline(text, j + 1, line)
                tokens.append(Token("str", string, start_line))
            else:
                tokens.append(Token("id", word.lower(), line))
                i = j
        else:
            raise SieveSyntaxError(line, f"unexpected character {c!r}")
    return tokens


def _quoted(text: str, i: int, line: int) -> tuple[int, str, int]:
    # RFC 5228 §2.4.2: backslash escapes only '\' and '"'; any other "\x" stands for "x".
    parts: list[str] = []
    n = len(text)
    start = i
    while True:
        if i >= n:
            raise SieveSyntaxError(line, "unterminated quoted string")
        c = text[i]
        if c == '"':
            parts.append(text[start:i])
            return i + 1, "".join(parts).replace("\r\n", "\n").replace("\n", "\r\n"), line
        if c == "\\":
            if i + 1 >= n:
                raise SieveSyntaxError(line, "unterminated quoted string")
            parts.append(text[start:i])
            if text[i + 1] == "\n":
                line += 1
            parts.append(text[i + 1])
            i += 2
            start = i
            continue
        if c == "\n":
            line += 1
        i += 1


def _multiline(text: str, i: int, line: int) -> tuple[int, str, int]:
    # RFC 5228 §8.1: "text:" *(SP / HTAB) (hash-comment / CRLF), lines, then "." CRLF;
    # a line starting with "." has that dot removed (dot-stuffing).
    n = len(text)
    start_line = line
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "#":
        end = text.find("\n", i)
        i = n if end < 0 else end
    elif i < n and text[i] == "\r":
        i += 1
    if i >= n or text[i] != "\n":
        raise SieveSyntaxError(line, "text: must be followed by end of line")
    i += 1
    line += 1
    lines: list[str] = []
    while True:
        end = text.find("\n", i)
        if end < 0:
            raise SieveSyntaxError(start_line, "unterminated multi-line string (no '.' line)")
        raw = text[i:end]
        if raw.endswith("\r"):
            raw = raw[:-1]
        i = end + 1
        line += 1
        if raw == ".":
            break
        lines.append(raw[1:] if raw.startswith(".") else raw)
    return i, "".join(f"{entry}\r\n" for entry in lines), line


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1].line if self.tokens else 1
            raise SieveSyntaxError(last, "unexpected end of script")
        self.pos += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise SieveSyntaxError(token.line, f"expected {kind!r}, found {_show(token)}")
        return token

    def commands(self, depth: int, until: str | None) -> tuple[CommandNode, ...]:
        result: list[CommandNode] = []
        while True:
            token = self.peek()
            if token is None:
                if until is not None:
                    raise SieveSyntaxError(self.tokens[-1].line, "missing '}'")
                return tuple(result)
            if until is not None and token.kind == until:
                self.pos += 1
                return tuple(result)
            result.append(self.command(depth))

    def command(self, depth: int) -> CommandNode:
        name = self.take()
        if name.kind != "id":
            raise SieveSyntaxError(name.line, f"expected a command, found {_show(name)}")
        arguments = self.arguments()
        tests, bracketed = self.test_part(depth)
        end = self.take()
        if end.kind == ";":
            return CommandNode(str(name.value), arguments, tests, None, name.line, bracketed)
        if end.kind == "{":
            if depth >= _MAX_NESTING:
                raise SieveSyntaxError(end.line, "blocks nested too deeply")
            block = self.commands(depth + 1, "}")
            return CommandNode(str(name.value), arguments, tests, block, name.line, bracketed)
        raise SieveSyntaxError(end.line, f"expected ';' or '{{', found {_show(end)}")

    def arguments(self) -> tuple[Argument, ...]:
        result: list[Argument] = []
        while (token := self.peek()) is not None:
            if token.kind == "tag":
                self.pos += 1
                result.append(Tag(str(token.value), token.line))
            elif token.kind == "num":
                self.pos += 1
                result.append(Number(int(token.value), token.line))
            elif token.kind == "str":
                self.pos += 1
                result.append(StringList((str(token.value),), token.line, single=True))
            elif token.kind == "[":
                self.pos += 1
                values = [str(self.expect("str").value)]
                while self.peek() is not None and self.take().kind == ",":
                    values.append(str(self.expect("str").value))
                closing = self.tokens[self.pos - 1]
                if closing.kind != "]":
                    raise SieveSyntaxError(closing.line, f"expected ']', found {_show(closing)}")
                result.append(StringList(tuple(values), token.line, single=False))
            else:
                break
        return tuple(result)

    def test_part(self, depth: int) -> tuple[tuple[ConditionNode, ...], bool]:
        token = self.peek()
        if token is None:
            return (), False
        if token.kind == "id":
            return (self.test(depth),), False
        if token.kind == "(":
            return self.test_list(depth), True
        return (), False

    def test(self, depth: int) -> ConditionNode:
        if depth >= _MAX_NESTING:
            raise SieveSyntaxError(self.tokens[self.pos].line, "tests nested too deeply")
        name = self.expect("id")
        arguments = self.arguments()
        tests, bracketed = self.test_part(depth + 1)
        return ConditionNode(str(name.value), arguments, tests, name.line, bracketed)

    def test_list(self, depth: int) -> tuple[ConditionNode, ...]:
        self.expect("(")
        tests = [self.test(depth + 1)]
        while True:
            token = self.take()
            if token.kind == ")":
                return tuple(tests)
            if token.kind != ",":
                raise SieveSyntaxError(token.line, f"expected ',' or ')', found {_show(token)}")
            tests.append(self.test(depth + 1))


def _show(token: Token) -> str:
    if token.kind == "str":
        return "a string"
    if token.kind == "num":
        return f"number {token.value}"
    if token.kind == "tag":
        return f"tag :{token.value}"
    if token.kind == "id":
        return f"identifier {token.value!r}"
    return repr(token.value)


def parse(text: str) -> tuple[CommandNode, ...]:
    """Parse a whole script (RFC 5228 §8.2 ``start = commands``)."""
    return _Parser(tokenize(text)).commands(0, None)
