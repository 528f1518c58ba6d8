"""The rspamd spam filter over its HTTP protocol: scan a message (/checkv2), learn (controller).

The client is aiohttp's: it costs about half the CPU per request of httpx's (its HTTP parser
is compiled), and on a busy MX that CPU is taken from rspamd itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict

# rspamd's actions, mildest first.
ACTIONS = ("no action", "greylist", "add header", "rewrite subject", "soft reject", "reject")
MAX_SYMBOLS = 50  # kept with the queue entry; the strongest first
# A controller that is busy answers 5xx for a moment (with the SQLite Bayes backend,
# "database is locked" while a scanner holds the statfile): learning asks again after these
# pauses before it gives up on the message.
LEARN_RETRY_PAUSES = (0.2, 0.6, 1.5)


class RspamdError(Exception):
    """rspamd did not answer, or not with a result (down, timeout, bad reply)."""


@dataclass(frozen=True, slots=True)
class SpamResult:
    """What rspamd made of a message."""

    action: str
    score: float
    required_score: float
    symbols: dict[str, float] = field(default_factory=dict)
    message: str = ""
    """The text rspamd suggests for an SMTP rejection (``messages.smtp_message``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "score": self.score,
            "required_score": self.required_score,
            "symbols": self.symbols,
        }

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> SpamResult:
        action = reply.get("action")
        if action not in ACTIONS:
            raise RspamdError(f"rspamd answered without a known action: {action!r}")
        raw = reply.get("symbols") or {}
        scores = {
            str(name): round(float(sym.get("score", 0.0)), 3)
            for name, sym in raw.items()
            if isinstance(sym, dict)
        }
        strongest = sorted(scores.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:MAX_SYMBOLS]
        messages = reply.get("messages") or {}
        return cls(
            action=str(action),
            score=round(float(reply.get("score", 0.0)), 3),
            required_score=round(float(reply.get("required_score", 0.0)), 3),
            symbols=dict(strongest),
            message=str(messages.get("smtp_message", ""))[:200],
        )


class Rspamd:
    """A client of one rspamd: the scanner URL, and the controller's for learning."""

    def __init__(
        self,
        url: str,
        *,
        controller_url: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.controller_url = controller_url.rstrip("/") if controller_url else None
        self.password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # One pool of keep-alive connections per event loop (rspamd is a local service).
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=100)
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def check(
        self,
        message: bytes,
        *,
        client_ip: str,
        helo: str | None,
        mail_from: str,
        recipients: Sequence[str],
        hostname: str | None = None,
        queue_id: str | None = None,
    ) -> SpamResult:
        """Scan ``message`` with its envelope (rspamd's protocol headers)."""
        headers: list[tuple[str, str]] = [("IP", client_ip), ("From", mail_from or "<>")]
        if helo:
            headers.append(("Helo", helo))
        if hostname:
            headers.append(("Hostname", hostname))
        if queue_id:
            headers.append(("Queue-Id", queue_id))
        headers += [("Rcpt", r) for r in recipients]
        try:
            async with self._client().post(
                f"{self.url}/checkv2", data=message, headers=CIMultiDict(headers)
            ) as response:
                if response.status != 200:
                    raise RspamdError(f"rspamd check answered {response.status}")
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RspamdError(f"rspamd check failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(reply, dict):
            raise RspamdError("rspamd answered something other than a JSON object")
        return SpamResult.from_reply(reply)

    async def learn(self, message: bytes, *, spam: bool) -> bool:
        """Teach the Bayes classifier; False when rspamd already knew this message."""
        if self.controller_url is None:
            raise RspamdError("no rspamd controller URL to learn with")
        headers = {"Password": self.password} if self.password else {}
        path = "learnspam" if spam else "learnham"
        for pause in (*LEARN_RETRY_PAUSES, None):
            try:
                async with self._client().post(
                    f"{self.controller_url}/{path}", data=message, headers=headers
                ) as response:
                    status, text = response.status, (await response.text())[:200]
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise RspamdError(f"rspamd {path} failed: {type(exc).__name__}: {exc}") from None
            if status >= 500 and pause is not None:
                await asyncio.sleep(pause)
                continue
            break
        if status in (208, 404) and "already learned" in text:
            return False  # rspamd keeps which messages it learnt, by Message-ID
        if status != 200:
            raise RspamdError(f"rspamd {path} answered {status}: {text}")
        return True
