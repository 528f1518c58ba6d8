"""Browser security: response headers (CSP and friends), CSRF tokens and the origin check."""

from __future__ import annotations

import base64
import hashlib
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.api.problems import problem_response
from postroom.spool import InflightBudget

# The app's pages: scripts and styles only from our own files (no inline script), frames only
# from ourselves (the sandboxed message body), and nobody may frame us. Remote images are
# allowed here only because a message body's frame inherits this policy; its own meta policy
# blocks them until the reader asks (and the sanitizer has already replaced them).
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The OpenAPI page loads Swagger UI from a CDN and runs a small inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

SESSION_COOKIE = "postroom_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored."""
    digest = hashlib.sha256(b"postroom-csrf\0" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        csrf_token(session_token).encode(), presented.encode("utf-8", "replace")
    )


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path in ("/docs", "/redoc") else APP_CSP

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                if b"x-frame-options" not in names:
                    headers.append((b"x-frame-options", b"DENY"))
                headers.append((b"cross-origin-opener-policy", b"same-origin"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)


# A request body is read whole (JSON) or spooled to disk (uploads) before any handler can
# look at who sent it, so its size is checked first: at most this much anywhere, and on the
# send and draft endpoints what a message of POSTROOM_MAX_MESSAGE_SIZE takes as a form
# (base64 and multipart framing add a third), plus room for the other fields.
MAX_BODY = 1024 * 1024
SEND_PATH = "/api/v1/send"
MESSAGE_PATHS = frozenset((SEND_PATH, "/api/v1/drafts"))


def send_body_limit(max_message_size: int) -> int:
    return max_message_size * 4 // 3 + MAX_BODY


class BodyLimit:
    """413 for a declared Content-Length over the limit, 411 for a body of unknown length
    (chunked); the server's HTTP parser holds a body to its declared length. A message being
    sent or saved as a draft counts against the process's budget of messages being received
    (POSTROOM_MAX_INFLIGHT_BYTES) until its response is done: 503 past it."""

    def __init__(
        self, app: ASGIApp, *, max_message_size: int, budget: InflightBudget | None = None
    ) -> None:
        self.app = app
        self.send_limit = send_body_limit(max_message_size)
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        message = scope.get("path") in MESSAGE_PATHS and scope.get("method") == "POST"
        limit = self.send_limit if message else MAX_BODY
        length = headers.get(b"content-length")
        refusal: tuple[int, str] | None = None
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                refusal = (413, f"the request body may be at most {limit} octets")
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            refusal = (411, "send the request body with a Content-Length")
        reserved = 0
        if refusal is None and self.budget is not None and message:
            reserved = int(length or 0)
            if not self.budget.reserve(reserved):
                reserved = 0
                refusal = (503, "too many messages are being received; try again shortly")
        if refusal is None:
            try:
                await self.app(scope, receive, send)
            finally:
                if self.budget is not None:
                    self.budget.release(reserved)
            return
        response = problem_response(*refusal, headers={"Connection": "close"})
        await response(scope, receive, send)
