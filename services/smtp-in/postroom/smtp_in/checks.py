"""Checks of a complete received message before the final reply to DATA.

Sender authentication (SPF, DKIM, DMARC, ARC; ``postroom.mailauth``) and, when an rspamd is
named, spam filtering. The result is a ``Verdict``: refuse with a reply (so a forgery is
refused in the session and never bounced to a forged sender), or accept with the fields to
add (Authentication-Results, X-Spam-*), the folder to file into, and what was found, for the
trace. Mail from authenticated submission is not checked; it is signed on its way out.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from postroom.config import Settings
from postroom.dns import Resolver, get_resolver
from postroom.mailauth import (
    authenticate,
    authentication_results,
    disposition,
    remove_our_authentication_results,
)
from postroom.rspamd import Rspamd, RspamdError, SpamResult
from postroom.smtp_in.replies import Reply
from postroom.smtp_in.session import ACCEPT, Context, Envelope, Verdict

log = structlog.get_logger("postroom.smtp_in.checks")

JUNK = "\\Junk"  # RFC 6154 special use of the folder quarantined mail goes to

R550_DMARC_REJECT = Reply(550, "5.7.1", "Message refused: the sender's DMARC policy rejects it")
R451_DMARC_TEMPORARY = Reply(
    451, "4.7.1", "Sender authentication could not complete (DNS); try again later"
)
R550_SPAM = Reply(550, "5.7.1", "Message refused as spam")
R451_SPAM_LATER = Reply(451, "4.7.1", "Message deferred by the spam filter; try again later")
R451_SPAM_UNAVAILABLE = Reply(451, "4.7.1", "Spam filter unavailable; try again later")

AUTH_RESULTS = Counter(
    "postroom_smtp_auth_results",
    "Sender authentication results of received messages, by method and result",
    ["method", "result"],
)
SPAM_ACTIONS = Counter(
    "postroom_smtp_spam_actions", "rspamd's action for received messages", ["action"]
)
RSPAMD_FAILURES = Counter(
    "postroom_smtp_rspamd_failures",
    "Scans that rspamd could not give (down, timeout), by what followed",
    ["outcome"],
)
CHECK_SECONDS = Histogram(
    "postroom_smtp_check_seconds",
    "Time of the checks of one message before the final reply to DATA",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# prometheus_client finds a labelled child by its label values at every ``labels`` call;
# the few there are (methods × results) are kept here instead.
_AUTH_COUNTERS: dict[tuple[str, str], Any] = {}
_AUTH_SECONDS = CHECK_SECONDS.labels("auth")
_RSPAMD_SECONDS = CHECK_SECONDS.labels("rspamd")


class InboundChecks:
    """The checks of one smtp-in process (its resolver and rspamd client are shared)."""

    def __init__(
        self, settings: Settings, *, resolver: Resolver | None = None, rspamd: Rspamd | None = None
    ) -> None:
        self.settings = settings
        self.resolver = resolver or get_resolver(settings)
        if rspamd is None and settings.rspamd_url:
            rspamd = Rspamd(
                settings.rspamd_url,
                controller_url=settings.rspamd_controller_url,
                password=settings.rspamd_password,
                timeout=settings.rspamd_timeout,
            )
        self.rspamd = rspamd

    @property
    def enabled(self) -> bool:
        return self.settings.sender_checks or self.rspamd is not None

    async def close(self) -> None:
        if self.rspamd is not None:
            await self.rspamd.close()

    async def check(
        self,
        raw: bytes,
        *,
        client_ip: str,
        helo: str | None,
        mail_from: str,
        recipients: list[str],
    ) -> Verdict:
        """Check ``raw`` (the message as received, before our Received field). An accepted
        message gets the Authentication-Results (and X-Spam) fields on top."""
        hostname = self.settings.hostname
        # RFC 8601 §5: fields claiming our authserv-id were not written by us; drop them.
        message = remove_our_authentication_results(raw, hostname)
        checks: dict[str, Any] = {}
        target: str | None = None
        top = b""
        if self.settings.sender_checks:
            started = time.perf_counter()
            results = await authenticate(
                message,
                client_ip=client_ip,
                helo=helo or "",
                mail_from=mail_from,
                resolver=self.resolver,
                max_signatures=self.settings.dkim_max_signatures,
            )
            _AUTH_SECONDS.observe(time.perf_counter() - started)
            summary = results.summary()
            _count(summary)
            checks["auth"] = results.as_dict()
            checks["auth_summary"] = summary
            top = authentication_results(hostname, results)
            action = disposition(results, enforce=self.settings.dmarc_enforce)
            domain = results.dmarc.from_domain
            if action == "reject":
                log.info("smtp.dmarc.rejected", from_domain=domain)
                return Verdict(R550_DMARC_REJECT, checks=checks, reason="dmarc_reject")
            if action == "tempfail":
                log.info("smtp.dmarc.deferred", from_domain=domain, why=results.dmarc.reason)
                return Verdict(R451_DMARC_TEMPORARY, checks=checks, reason="dmarc_dns")
            if action == "junk":
                target = JUNK
                checks["quarantined_by"] = "dmarc"
        if self.rspamd is not None:
            started = time.perf_counter()
            try:
                spam = await self.rspamd.check(
                    top + message,
                    client_ip=client_ip,
                    helo=helo,
                    mail_from=mail_from,
                    recipients=recipients,
                )
            except RspamdError as exc:
                _RSPAMD_SECONDS.observe(time.perf_counter() - started)
                outcome = self.settings.rspamd_on_failure
                RSPAMD_FAILURES.labels(outcome).inc()
                log.warning("smtp.rspamd.failed", error=str(exc)[:200], outcome=outcome)
                checks["spam"] = {"error": str(exc)[:200]}
                if outcome == "defer":
                    return Verdict(R451_SPAM_UNAVAILABLE, checks=checks, reason="rspamd_down")
            else:
                _RSPAMD_SECONDS.observe(time.perf_counter() - started)
                SPAM_ACTIONS.labels(spam.action).inc()
                checks["spam"] = spam.as_dict()
                if spam.action == "reject":
                    return Verdict(R550_SPAM, checks=checks, reason="spam")
                if spam.action in ("soft reject", "greylist"):
                    return Verdict(R451_SPAM_LATER, checks=checks, reason="spam_later")
                if spam.action in ("add header", "rewrite subject"):
                    target = JUNK
                    checks.setdefault("quarantined_by", "rspamd")
                    top += spam_headers(spam)
        return Verdict(
            headers=top,
            content=message if message is not raw else None,
            target_special_use=target,
            checks=checks or None,
        )

    async def __call__(self, envelope: Envelope, raw: bytes) -> Verdict:
        """The message check smtp-in's sessions call (``Context.hooks.message_checks``)."""
        if envelope.account is not None or envelope.port.is_submission:
            return ACCEPT  # authenticated submission: ours to sign, not to check
        return await self.check(
            raw,
            client_ip=envelope.client_ip,
            helo=envelope.helo,
            mail_from=envelope.reverse_path,
            recipients=envelope.recipients,
        )


def install(ctx: Context) -> InboundChecks | None:
    """Add the checks to ``ctx``'s message checks when any is turned on."""
    checks = InboundChecks(ctx.settings)
    if not checks.enabled:
        return None
    ctx.hooks.message_checks.append(checks)
    return checks


def spam_headers(spam: SpamResult) -> bytes:
    """The fields that tell mail programs the filter's opinion (as rspamd's milter writes)."""
    symbols = ", ".join(spam.symbols)
    return (
        "X-Spam: Yes\r\n"
        f"X-Spam-Score: {spam.score:.2f} / {spam.required_score:.2f}\r\n"
        f"X-Spam-Action: {spam.action}\r\n"
        + (f"X-Spam-Symbols: {symbols[:900]}\r\n" if symbols else "")
    ).encode("ascii", "replace")


def _count(summary: dict[str, str]) -> None:
    for key in summary.items():
        counter = _AUTH_COUNTERS.get(key)
        if counter is None:
            counter = _AUTH_COUNTERS[key] = AUTH_RESULTS.labels(*key)
        counter.inc()
