"""The base subject of RFC 5256 §2.1, which SORT (SUBJECT) and THREAD compare.

Pure functions over decoded subjects (the store keeps each Subject: with its RFC 2047
encoded-words decoded, which is step (1)'s conversion to UTF-8). Comparisons use the
i;ascii-casemap collation (RFC 5256 §2.1, RFC 4790 §9.2): ASCII letters folded to upper
case, everything else compared as UTF-8 octets, which is code point order.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = ["base_subject", "casemap", "subject_key"]

# Step (1): "Convert all tabs and continuations to space. Convert all multiple spaces to a
# single space." A continuation is a line break inside an unfolded field.
_SPACES: Final = re.compile(r"[ \t\r\n]+")
# subj-blob = "[" *BLOBCHAR "]" *WSP; BLOBCHAR is any CHAR except "[" and "]".
_BLOB: Final = r"\[[^\[\]]*\][ \t]*"
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD: Final = r"(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:"
# subj-leader = (*subj-blob subj-refwd) / WSP
_LEADER: Final = re.compile(r"(?:" + _BLOB + r")*" + _REFWD + r"|[ \t]", re.IGNORECASE)
_BLOB_PREFIX: Final = re.compile(_BLOB)
_FWD_HDR: Final = "[fwd:"  # subj-fwd-hdr
_FWD_TRL: Final = "]"  # subj-fwd-trl
_FWD_TRAILER: Final = "(fwd)"  # a subj-trailer
# What a subject must begin with for steps (3), (4) or (6) to remove anything (WSP, a
# subj-blob or subj-fwd-hdr, "re", "fw"), or end with for step (2) (WSP, "(fwd)").
_MAY_LEAD: Final = frozenset(" \t[rRfF")
_MAY_TRAIL: Final = frozenset(" \t)")
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@lru_cache(maxsize=16384)
def base_subject(subject: str | None) -> tuple[str, bool]:
    """RFC 5256 §2.1: the base subject, and whether the subject marks a reply or forward.

    The second value is what THREAD=REFERENCES step (5) asks (RFC 5256 §3): whether the
    extraction removed a subj-refwd, a "(fwd)" subj-trailer, or a subj-fwd-hdr and
    subj-fwd-trl pair. A missing subject is the empty one.
    """
    text = subject or ""
    if "  " in text or "\t" in text or "\r" in text or "\n" in text:
        text = _SPACES.sub(" ", text)  # (1)
    if not text or (text[0] not in _MAY_LEAD and text[-1] not in _MAY_TRAIL):
        # Most subjects: no rule of steps (2) to (6) can apply to them.
        return text, False
    reply = False
    while True:
        # (2) Remove all trailing text matching subj-trailer = "(fwd)" / WSP, repeatedly.
        while True:
            if text.endswith((" ", "\t")):
                text = text[:-1]
            elif text[-len(_FWD_TRAILER) :].lower() == _FWD_TRAILER:
                text = text[: -len(_FWD_TRAILER)]
                reply = True
            else:
                break
        # (5) Repeat (3) and (4) until no matches remain.
        while True:
            # (3) Remove all prefix text that matches subj-leader.
            leader = _LEADER.match(text)
            if leader is not None:
                if leader[0] not in (" ", "\t"):
                    reply = True
                text = text[leader.end() :]
                continue
            # (4) A leading subj-blob goes when what is left is a non-empty subj-base.
            blob = _BLOB_PREFIX.match(text)
            if blob is not None and text[blob.end() :].strip(" \t"):
                text = text[blob.end() :]
                continue
            break
        # (6) "[fwd:" ... "]" around the whole: remove both and repeat from step (2).
        if (
            text[: len(_FWD_HDR)].lower() == _FWD_HDR
            and text.endswith(_FWD_TRL)
            and len(text) >= len(_FWD_HDR) + len(_FWD_TRL)
        ):
            text = text[len(_FWD_HDR) : -len(_FWD_TRL)]
            reply = True
            continue
        # (7) The resulting text is the base subject.
        return text, reply


def casemap(text: str) -> str:
    """The i;ascii-casemap form: ASCII letters upper-cased, nothing else changed."""
    return text.translate(_ASCII_UPPER)


@lru_cache(maxsize=16384)
def subject_key(subject: str | None) -> str:
    """What SORT (SUBJECT) and THREAD compare: the case-mapped base subject (remembered:
    the messages of a conversation share one)."""
    return casemap(base_subject(subject)[0])
