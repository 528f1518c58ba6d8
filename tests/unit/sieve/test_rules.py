"""Rules from the Filters and Out-of-office forms become Sieve that compiles and reads back."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.sieve import (
    Context,
    Envelope,
    FileInto,
    Keep,
    MessageView,
    Redirect,
    compile_script,
    run,
)
from postroom.sieve.rules import (
    FilterRule,
    FilterSet,
    OutOfOffice,
    RuleAction,
    RuleCondition,
    RuleError,
    generate,
    read,
)

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
_folder = st.text(alphabet="abcXYZ /._-0", min_size=1, max_size=20).filter(lambda s: s.strip())
_condition = st.one_of(
    st.builds(
        RuleCondition,
        field=st.sampled_from(["from", "to", "subject"]),
        op=st.sampled_from(["contains", "not_contains", "is", "not_is", "matches"]),
        value=_text,
    ),
    st.builds(
        RuleCondition,
        field=st.just("header"),
        header=st.sampled_from(["List-Id", "X-Spam", "Reply-To"]),
        value=_text,
    ),
    st.builds(RuleCondition, field=st.just("size_over"), value=st.integers(1, 10**6).map(str)),
)
_action = st.one_of(
    st.builds(RuleAction, type=st.sampled_from(["fileinto", "copy_to"]), value=_folder),
    st.builds(RuleAction, type=st.sampled_from(["mark_read", "flag", "discard", "stop"])),
    st.builds(
        RuleAction,
        type=st.sampled_from(["redirect", "forward_copy"]),
        value=st.sampled_from(["a@example.org", "x.y+z@b.example"]),
    ),
)
_rule = st.builds(
    FilterRule,
    name=_text,
    enabled=st.booleans(),
    match=st.sampled_from(["all", "any"]),
    conditions=st.lists(_condition, max_size=4),
    actions=st.lists(_action, min_size=1, max_size=4),
)
_ooo = st.builds(
    OutOfOffice,
    enabled=st.booleans(),
    start=st.none() | st.just(date(2026, 12, 1)),
    end=st.none() | st.just(date(2026, 12, 24)),
    subject=_text,
    text=_text.filter(lambda t: t.strip()),
    days=st.integers(1, 90),
)


@given(st.builds(FilterSet, rules=st.lists(_rule, max_size=5), out_of_office=_ooo))
def test_any_rules_compile_and_read_back(filters: FilterSet) -> None:
    script = generate(filters)
    compile_script(script)
    assert read(script) == filters


MESSAGE = (
    b"From: Shop <news@shop.example>\r\nTo: alice@example.test\r\n"
    b"Subject: Your receipt\r\n\r\nThanks.\r\n"
)


def _run(filters: FilterSet) -> tuple[object, ...]:
    script = compile_script(generate(filters))
    ctx = Context(MessageView(MESSAGE), Envelope("news@shop.example", "alice@example.test"))
    return run(script, ctx).actions


def test_a_rule_files_with_flags() -> None:
    rule = FilterRule(
        conditions=[RuleCondition(field="subject", value="receipt")],
        actions=[RuleAction(type="mark_read"), RuleAction(type="fileinto", value="Receipts")],
    )
    assert _run(FilterSet(rules=[rule])) == (FileInto("Receipts", ("\\Seen",), create=True),)


def test_any_of_two_conditions() -> None:
    rule = FilterRule(
        match="any",
        conditions=[
            RuleCondition(field="from", value="nobody"),
            RuleCondition(field="to", op="is", value="alice@example.test"),
        ],
        actions=[RuleAction(type="forward_copy", value="me@example.org")],
    )
    assert _run(FilterSet(rules=[rule])) == (
        Redirect("me@example.org", copy=True),
        Keep(implicit=True),
    )


def test_a_disabled_rule_does_nothing() -> None:
    rule = FilterRule(enabled=False, actions=[RuleAction(type="discard")])
    assert _run(FilterSet(rules=[rule])) == (Keep(implicit=True),)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (RuleAction(type="fileinto", value=" "), "moving or copying needs a folder"),
        (RuleAction(type="redirect", value="x"), "'x' is not an e-mail address"),
    ],
)
def test_rules_that_cannot_be_written(action: RuleAction, reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        generate(FilterSet(rules=[FilterRule(actions=[action])]))


def test_a_script_written_by_hand_is_not_read_as_rules() -> None:
    assert read("keep;\r\n") is None
