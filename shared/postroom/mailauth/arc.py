"""ARC chain validation (RFC 8617 §5.2) by dkimpy, keys from postroom.dns."""

from __future__ import annotations

import dkim
import dkim.util

from postroom.dns import Resolver
from postroom.mailauth.dkim import KeyReply, _key
from postroom.mailauth.replay import Answers, replay
from postroom.mailauth.results import ARCResult

# RFC 8617 §4.2.1: instance numbers run from 1 to 50.
MAX_INSTANCES = 50


class _Temporary(Exception):
    """A key could not be fetched now."""


def has_arc_sets(message: bytes) -> bool:
    """Whether the header section may hold an ARC set (an ARC-Seal field): without one the
    chain status is ``none`` (RFC 8617 §4.4) with nothing to parse or look up."""
    end = message.find(b"\r\n\r\n")
    return b"arc-seal" in message[: end if end >= 0 else len(message)].lower()


async def validate_chain(
    message: bytes, resolver: Resolver, *, in_thread: bool = False
) -> ARCResult:
    """The chain validation status: none (no ARC sets), pass, or fail with the reason."""
    if not has_arc_sets(message):
        return ARCResult("none")  # most mail: no ARC set, nothing to parse
    try:
        arc = dkim.ARC(message)
        instances, headers = arc.sorted_arc_headers()
    except dkim.DKIMException as exc:
        return ARCResult("fail", 0, str(exc))
    if instances == 0:
        return ARCResult("none")
    if instances > MAX_INSTANCES:
        # RFC 8617 §5.2 step 2: more than 50 sets, the chain fails.
        return ARCResult("fail", instances, f"more than {MAX_INSTANCES} ARC sets")
    keys = []
    for _, (name, value) in headers:
        if name.lower() in (b"arc-seal", b"arc-message-signature"):
            try:
                tags = dkim.util.parse_tag_value(value)
                keys.append((tags[b"s"] + b"._domainkey." + tags[b"d"]).lower())
            except (dkim.util.InvalidTagValueList, KeyError):
                continue  # the validation below reports the broken set

    async def fetch(name: bytes) -> KeyReply:
        return await _key(resolver, name)

    def verify(answers: Answers[bytes, KeyReply]) -> ARCResult:
        def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
            reply = answers.need(name.lower().rstrip(b"."))
            if isinstance(reply, str):
                raise _Temporary(reply)
            return reply

        try:
            cv, _sets, reason = dkim.ARC(message).verify(dnsfunc=dnsfunc)
        except _Temporary as exc:
            return ARCResult("fail", instances, f"temporary: {exc}")
        except dkim.DKIMException as exc:
            return ARCResult("fail", instances, str(exc))
        except Exception as exc:  # dkimpy on hostile input
            return ARCResult("fail", instances, f"{type(exc).__name__}: {exc}")
        if cv == dkim.CV_Pass:
            return ARCResult("pass", instances)
        return ARCResult("fail", instances, str(reason))

    return await replay(
        verify, fetch, prefetch=keys, max_runs=2 * instances + 2, in_thread=in_thread
    )
