"""The Authentication-Results field (RFC 8601): written one result per line, and removed
from incoming mail when it claims our authserv-id (§5)."""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy

from authres import (  # type: ignore[import-untyped]
    AuthenticationResultProperty,
    DKIMAuthenticationResult,
    SPFAuthenticationResult,
)
from authres.arc import ARCAuthenticationResult  # type: ignore[import-untyped]
from authres.dmarc import DMARCAuthenticationResult  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from postroom.mailauth.results import (
    ARCResult,
    AuthResults,
    DKIMResult,
    DMARCResult,
    SPFResult,
    _safe,
    authentication_results,
    authserv_id_of,
    remove_our_authentication_results,
)

OURS = "mx.postroom.test"
BODY = b"\r\nHello\r\n"


def results(**kw: object) -> AuthResults:
    base: dict[str, object] = {
        "spf_helo": None,
        "spf_mailfrom": SPFResult("none", "mailfrom", "", ""),
        "dkim": (),
        "dmarc": DMARCResult("none", ""),
        "arc": ARCResult("none"),
    }
    base.update(kw)
    return AuthResults(**base)  # type: ignore[arg-type]


def test_nothing_found_reads_none_for_every_method() -> None:
    assert authentication_results(OURS, results()) == (
        b"Authentication-Results: mx.postroom.test;\r\n"
        b"\tspf=none;\r\n\tdkim=none;\r\n\tdmarc=none;\r\n\tarc=none\r\n"
    )


def test_dmarc_fail_names_policy_and_disposition() -> None:
    header = authentication_results(
        OURS,
        results(
            spf_mailfrom=SPFResult("fail", "mailfrom", "fail.test", "bounce@fail.test"),
            dmarc=DMARCResult("fail", "reject.test", "reject", "reject"),
        ),
    )
    assert b"\tspf=fail smtp.mailfrom=bounce@fail.test;\r\n" in header
    assert b"\tdmarc=fail (p=reject dis=reject) header.from=reject.test;\r\n" in header


def test_values_from_strangers_cannot_break_the_field() -> None:
    header = authentication_results(
        OURS,
        results(
            dkim=(DKIMResult("fail", "evil.test\r\nX-Spam: no", "s (x)", "rsa-sha256", "ab;cd"),)
        ),
    )
    assert header.count(b"\r\n") == 5
    assert b'header.d="evil.test??X-Spam:?no"' in header
    assert b'header.s="s??x?"' in header


@given(
    st.sampled_from(["pass", "fail", "none", "temperror", "permerror"]),
    st.text(max_size=40),
    st.text(max_size=40),
)
def test_field_is_always_one_parsable_header(result: str, domain: str, sender: str) -> None:
    header = authentication_results(
        OURS,
        results(
            spf_mailfrom=SPFResult(result, "mailfrom", domain, sender),
            dkim=(DKIMResult(result, domain, sender, "rsa-sha256", sender[:8]),),
            dmarc=DMARCResult(result, domain, "reject", "none"),
        ),
    )
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(header + BODY)
    assert parsed.keys() == ["Authentication-Results"]
    assert authserv_id_of(header.split(b":", 1)[1]) == OURS.encode()


def test_authserv_id_after_comments_and_folding() -> None:
    assert authserv_id_of(b" (a comment (nested))\r\n\tMX.Postroom.Test.; spf=pass") == (
        b"mx.postroom.test"
    )
    assert authserv_id_of(b' "mx.postroom.test" 1; none') == b"mx.postroom.test"
    assert authserv_id_of(b"") == b""


def test_ours_are_removed_others_kept() -> None:
    message = (
        b"Received: from a by b\r\n"
        b"Authentication-Results: mx.postroom.test; dmarc=pass\r\n"
        b"Authentication-Results: other.example; spf=pass\r\n"
        b"authentication-results:\r\n MX.POSTROOM.TEST;\r\n\tdkim=pass header.d=bank.test\r\n"
        b"Subject: hi\r\n" + BODY
    )
    assert remove_our_authentication_results(message, OURS) == (
        b"Received: from a by b\r\n"
        b"Authentication-Results: other.example; spf=pass\r\n"
        b"Subject: hi\r\n" + BODY
    )


def test_body_lines_that_look_like_the_field_are_kept() -> None:
    message = b"Subject: hi\r\n\r\nAuthentication-Results: mx.postroom.test; spf=pass\r\n"
    assert remove_our_authentication_results(message, OURS) == message


def test_arc_authentication_results_are_not_removed() -> None:
    message = b"ARC-Authentication-Results: i=1; mx.postroom.test; spf=pass\r\n" + BODY
    assert remove_our_authentication_results(message, OURS) == message


@given(
    st.lists(
        st.sampled_from(
            [
                b"Authentication-Results: mx.postroom.test; spf=pass",
                b"Authentication-Results: other.test; spf=pass",
                b"Subject: x",
                b"\tcontinued",
                b"X-A: y",
            ]
        ),
        max_size=8,
    )
)
def test_removal_keeps_every_other_line_in_order(lines: list[bytes]) -> None:
    message = b"\r\n".join([b"From: a@b.test", *lines]) + b"\r\n" + BODY
    cleaned = remove_our_authentication_results(message, OURS)
    assert b"Authentication-Results: mx.postroom.test" not in cleaned.split(b"\r\n\r\n")[0]
    assert cleaned.endswith(BODY)
    assert cleaned.count(b"other.test") == message.count(b"other.test")


_text = st.text(max_size=20)
_spf = st.builds(SPFResult, _text, _text, _text, _text, _text)
_dkim = st.builds(DKIMResult, _text, _text, _text, _text, _text, _text)


@given(
    spf_helo=st.none() | _spf,
    spf_mailfrom=_spf,
    dkim=st.lists(_dkim, max_size=3).map(tuple),
    dmarc=st.builds(DMARCResult, _text, _text, _text, _text, _text),
    arc=st.builds(ARCResult, _text, st.integers(0, 50), _text),
)
def test_the_stored_form_is_the_dataclass_fields(**kw: object) -> None:
    found = results(**kw)
    assert found.as_dict() == dataclasses.asdict(found)


def authres_field(authserv_id: str, found: AuthResults) -> bytes:
    """The field as authres builds it from scratch (what the kept clauses must equal)."""
    clauses: list[object] = []
    if found.spf_helo is not None:
        clauses.append(
            SPFAuthenticationResult(
                result=found.spf_helo.result, smtp_helo=_safe(found.spf_helo.domain)
            )
        )
    mailfrom = found.spf_mailfrom
    clauses.append(
        SPFAuthenticationResult(result=mailfrom.result, smtp_mailfrom=_safe(mailfrom.sender))
        if mailfrom.sender
        else SPFAuthenticationResult(result=mailfrom.result)
    )
    for sig in found.dkim:
        clause = DKIMAuthenticationResult(
            result=sig.result,
            header_d=_safe(sig.domain) or "?",
            header_s=_safe(sig.selector) or "?",
            header_a=_safe(sig.algorithm) or "?",
        )
        if sig.b:
            clause.properties.append(AuthenticationResultProperty("header", "b", _safe(sig.b)))
        clauses.append(clause)
    if not found.dkim:
        clauses.append(DKIMAuthenticationResult(result="none"))
    dmarc = found.dmarc
    clauses.append(
        DMARCAuthenticationResult(
            result=dmarc.result,
            result_comment=f"p={dmarc.policy} dis={dmarc.disposition}" if dmarc.policy else None,
            header_from=_safe(dmarc.from_domain) if dmarc.from_domain else None,
        )
    )
    clauses.append(ARCAuthenticationResult(result=found.arc.result))
    text = ";\r\n\t".join([_safe(authserv_id), *(str(c) for c in clauses)])
    return b"Authentication-Results: " + text.encode("ascii") + b"\r\n"


_result = st.sampled_from(["pass", "fail", "none", "policy", "neutral", "temperror", "permerror"])
_policy = st.sampled_from(["", "none", "quarantine", "reject"])
_value = st.sampled_from(["", "a.test", "s1", "rsa-sha256", "x@y.test", "a b", 'q"t', "é"]) | _text


@given(
    spf_helo=st.none() | st.builds(SPFResult, _result, _value, _value, _value),
    spf_mailfrom=st.builds(SPFResult, _result, _value, _value, _value),
    dkim=st.lists(st.builds(DKIMResult, _result, _value, _value, _value, _value), max_size=3).map(
        tuple
    ),
    dmarc=st.builds(DMARCResult, _result, _value, _policy, _policy),
    arc=st.builds(ARCResult, _result),
    authserv_id=st.sampled_from([OURS, "a;b", "é.test"]),
)
def test_kept_clauses_give_the_field_authres_builds(authserv_id: str, **kw: object) -> None:
    found = results(**kw)
    assert authentication_results(authserv_id, found) == authres_field(authserv_id, found)
    # A second time, from the kept clauses.
    assert authentication_results(authserv_id, found) == authres_field(authserv_id, found)
