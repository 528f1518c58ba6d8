"""RFC 5228 §2 and §8: the lexical and grammatical rules of Sieve scripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.sieve import CompiledScript, SieveSyntaxError, compile_script
from postroom.sieve.parser import (
    CommandNode,
    ConditionNode,
    Number,
    StringList,
    Tag,
    parse,
    tokenize,
)


def test_hash_comment_runs_to_end_of_line() -> None:  # RFC 5228 §2.3
    assert parse("keep; # discard;\n") == (CommandNode("keep", (), (), None, 1),)


def test_bracket_comment_may_span_lines() -> None:  # RFC 5228 §2.3
    nodes = parse("/* one\ntwo */ keep;")
    assert nodes[0].line == 2


def test_quoted_string_escapes_only_backslash_and_quote() -> None:  # RFC 5228 §2.4.2
    (node,) = parse(r'redirect "a\"b\\c\d";')
    assert node.arguments == (StringList(('a"b\\cd',), 1, single=True),)


def test_multiline_string_removes_dot_stuffing() -> None:  # RFC 5228 §2.4.2
    (node,) = parse("reject text:\nline one\n..dotted\n.\n;")
    assert node.arguments[0] == StringList(("line one\r\n.dotted\r\n",), 1, single=True)


def test_multiline_string_allows_a_comment_after_text_colon() -> None:  # RFC 5228 §8.1
    (node,) = parse("reject text: # why\nno\n.\n;")
    assert node.arguments[0] == StringList(("no\r\n",), 1, single=True)


def test_number_quantifiers_multiply() -> None:  # RFC 5228 §2.4.1
    (node,) = parse("if size :over 2K { keep; }")
    assert node.tests == (ConditionNode("size", (Tag("over", 1), Number(2048, 1)), (), 1),)
    assert parse("if size :over 1M {}")[0].tests[0].arguments[1] == Number(1 << 20, 1)
    assert parse("if size :over 1G {}")[0].tests[0].arguments[1] == Number(1 << 30, 1)


def test_string_list_in_brackets() -> None:  # RFC 5228 §2.4.2.1
    (node,) = parse('require ["fileinto", "reject"];')
    assert node.arguments == (StringList(("fileinto", "reject"), 1, single=False),)


def test_identifiers_are_case_insensitive() -> None:  # RFC 5228 §2.4 (commands), §2.6.2 (tags)
    assert compile_script('IF HEADER :CONTAINS "subject" "x" { KEEP; }').ops[0].name == "if"


@pytest.mark.parametrize(
    ("script", "line", "message"),
    [
        ("keep", 1, "unexpected end of script"),
        ("keep;\nfrobnicate;", 2, "'frobnicate' is an unknown command, not a command"),
        ('fileinto "x";', 1, "command 'fileinto' requires the extension 'fileinto'"),
        ('keep;\nrequire "fileinto";', 2, "require must come before any other command"),
        ('require "fancy";', 1, "unsupported extension 'fancy'"),
        ("if true keep;", 1, "true takes no test"),
        ('"unterminated', 1, "unterminated quoted string"),
        ("keep;\n/* open", 2, "unterminated bracket comment"),
        ("reject text:\nno end\n", 1, "unterminated multi-line string (no '.' line)"),
        ("else { keep; }", 1, "else without a preceding if"),
        ("if true { keep; }\nelsif", 2, "unexpected end of script"),
        ('if header :contains "a" { keep; }', 1, "header takes 2 positional arguments, not 1"),
        ('if header :bogus "a" "b" {}', 1, "unknown tag :bogus for header"),
        ('if header :is :contains "a" "b" {}', 1, "tag :contains conflicts with an earlier tag"),
        ("if size 10 {}", 1, "size takes 0 positional arguments, not 1"),
        ('if size :over "x" {}', 1, "tag :over expects a number"),
        ("if not (true, false) {}", 1, "not needs exactly one test"),
        ("if anyof true {}", 1, "anyof needs a test list ( ... )"),
        ("keep { }", 1, "keep takes no block; expected ';'"),
        ('if header :comparator "i;foo" "a" "b" {}', 1, "unknown comparator 'i;foo'"),
        (
            'require "relational"; if header :value "xx" "a" "b" {}',
            1,
            "unknown relational operator 'xx'",
        ),
        ('require "index"; if header :last "a" "b" {}', 1, ":last needs :index"),
        ('require "envelope"; if envelope "bcc" "x" {}', 1, "unknown envelope part 'bcc'"),
        ('require "variables"; set "1x" "v";', 1, "invalid variable name '1x'"),
        ('if header :value "gt" "a" "b" {}', 1, "tag :value requires the extension 'relational'"),
        (
            'require "vacation"; vacation :seconds 5 "x";',
            1,
            "tag :seconds requires the extension 'vacation-seconds'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_syntax_errors_name_the_line(script: str, line: int, message: str) -> None:
    with pytest.raises(SieveSyntaxError) as caught:
        compile_script(script)
    assert (caught.value.line, caught.value.message) == (line, message)


def test_encoded_character_hex_and_unicode() -> None:  # RFC 5228 §2.4.2.4
    script = compile_script(
        'require ["encoded-character", "fileinto"]; fileinto "${hex:4D 61}${unicode:0073 00e9}";'
    )
    assert script.ops[0].args == ("Masé",)


def test_encoded_character_without_require_is_literal() -> None:  # RFC 5228 §2.4.2.4
    assert compile_script('require "fileinto"; fileinto "${hex:41}";').ops[0].args == ("${hex:41}",)


def test_malformed_encoded_character_stays_as_written() -> None:  # RFC 5228 §2.4.2.4
    script = compile_script('require ["encoded-character","fileinto"]; fileinto "${hex:zz}";')
    assert script.ops[0].args == ("${hex:zz}",)


def test_script_over_the_size_limit_is_refused() -> None:
    with pytest.raises(SieveSyntaxError, match="more than the limit of 100"):
        compile_script("keep;" * 30, max_size=100)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    script = "if true {" * 200 + "}" * 200
    with pytest.raises(SieveSyntaxError, match="nested too deeply"):
        compile_script(script)


def test_compiled_form_round_trips_through_json() -> None:
    script = compile_script(
        'require ["fileinto","imap4flags","variables"]; if header :matches "subject" "*"'
        ' { fileinto :flags ["\\\\Seen"] "${1}"; } elsif true { discard; } else { keep; }'
    )
    assert CompiledScript.from_json(script.to_json()) == script


def test_compiled_form_of_another_version_is_ignored() -> None:
    assert CompiledScript.from_json('{"format": 0}') is None


# -- property tests ---------------------------------------------------------------------------

_safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=20
)
_identifier = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _argument(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(st.sampled_from(["tag", "number", "string", "list"]))
    if kind == "tag":
        name = draw(_identifier)
        return f":{name}", ("tag", name)
    if kind == "number":
        value = draw(st.integers(0, 10**6))
        return str(value), ("num", value)
    if kind == "string":
        value = draw(_safe_text)
        return _quote(value), ("str", (value.replace("\n", "\r\n"),))
    values = draw(st.lists(_safe_text, min_size=1, max_size=3))
    text = "[" + ", ".join(_quote(v) for v in values) + "]"
    return text, ("str", tuple(v.replace("\n", "\r\n") for v in values))


def _shape(arg: object) -> object:
    if isinstance(arg, Tag):
        return ("tag", arg.name)
    if isinstance(arg, Number):
        return ("num", arg.value)
    assert isinstance(arg, StringList)
    return ("str", arg.values)


@given(st.lists(st.tuples(_identifier, st.lists(_argument(), max_size=4)), max_size=5))
def test_printed_commands_parse_back_to_the_same_arguments(
    commands: list[tuple[str, list[tuple[str, object]]]],
) -> None:
    text = "\n".join(f"{name} {' '.join(a[0] for a in args)};" for name, args in commands)
    nodes = parse(text)
    assert [(n.name, [_shape(a) for a in n.arguments]) for n in nodes] == [
        (name, [a[1] for a in args]) for name, args in commands
    ]


@given(st.text(max_size=200))
def test_any_text_compiles_or_raises_a_syntax_error(text: str) -> None:
    try:
        compile_script(text)
    except SieveSyntaxError as exc:
        line = exc.line
    else:
        line = 1
    assert line >= 1


@given(st.text(alphabet='ifheadr:contains"[](){},;# \n\\*/textkp.', max_size=120))
def test_sieve_like_text_compiles_or_raises_a_syntax_error(text: str) -> None:
    try:
        compile_script(text)
    except SieveSyntaxError as exc:
        line = exc.line
    else:
        line = 1
    assert 1 <= line <= text.count("\n") + 1


@given(st.text(max_size=50))
def test_tokenizer_counts_lines(text: str) -> None:
    try:
        tokens = tokenize(text + "\nkeep")
    except SieveSyntaxError:
        return
    assert tokens[-1].line >= 2
