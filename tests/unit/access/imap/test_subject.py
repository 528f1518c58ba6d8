"""The base subject of RFC 5256 §2.1, step by step, and what holds for any subject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.access.imap.subject import base_subject, casemap, subject_key

CASES = [
    # (1) white space: tabs and runs of spaces become one space.
    ("a\tb   c", "a b c", False),
    ("a\r\n b", "a b", False),
    # (2) trailers: "(fwd)" and white space, repeatedly, in any case.
    ("b (fwd)", "b", True),
    ("b (FWD)  (fwd) ", "b", True),
    ("b (a)", "b (a)", False),
    # (3) leaders: re, fw, fwd with an optional blob before the colon, after blobs.
    ("Re: b", "b", True),
    ("RE:b", "b", True),
    ("fw: b", "b", True),
    ("Fwd : b", "b", True),
    ("re[2]: b", "b", True),
    ("Re [x] : b", "b", True),
    ("[list] Re: b", "b", True),
    ("Re: Re: Fwd: b", "b", True),
    ("Reply: b", "Reply: b", False),
    # (4) a leading blob goes only when a subject is left after it.
    ("[list] b", "b", False),
    ("[xyz]", "[xyz]", False),
    ("[a] [b]", "[b]", False),
    ("[a] [b] c", "c", False),
    # (6) "[fwd:" ... "]" around the whole, then again from step (2).
    ("[Fwd: b]", "b", True),
    ("Re: [FWD: c]", "c", True),
    ("[fwd: Re: b (fwd)]", "b", True),
    ("[fwd: b] x", "x", False),  # a blob, not a forward: "]" does not end it
    # imaptest's sort-subject message 5: every rule at once.
    ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", True),
    # Nothing left.
    ("", "", False),
    (None, "", False),
    ("   ", "", False),
    ("Re:", "", True),
]


@pytest.mark.parametrize(("subject", "base", "reply"), CASES, ids=[repr(c[0]) for c in CASES])
def test_base_subject_follows_rfc_5256_section_2_1(
    subject: str | None, base: str, reply: bool
) -> None:
    assert base_subject(subject) == (base, reply)


def test_subjects_compare_with_ascii_casemap() -> None:
    assert subject_key("Re: hello") == subject_key("HELLO") == "HELLO"
    # Only ASCII letters fold: "é" and "É" differ.
    assert casemap("é") != casemap("É")


subjects = st.lists(
    st.sampled_from([*"reRE fwdFWD:[]()\tab", "é", "\r\n", "re:", "(fwd)", "[fwd:"]), max_size=20
).map("".join)


@given(subjects)
def test_base_subject_never_starts_or_ends_with_white_space(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base == base.strip(" \t")
    assert "  " not in base


@given(subjects)
def test_base_subject_is_its_own_base_subject(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base


@given(st.text(alphabet=st.characters(exclude_characters="rRfF[(\x00"), max_size=40))
def test_a_subject_without_reply_markers_is_no_reply(subject: str) -> None:
    assert base_subject(subject)[1] is False
