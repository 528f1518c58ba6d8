"""Prometheus metrics of smtp-in: messages accepted, rejections by reason, bytes.

Connections (opened, open now, refused, closed by a clock) are counted by the shared
connection layer, `postroom.listener`, the same way for every protocol."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

ACCEPTED = Counter(
    "postroom_smtp_messages_accepted", "Messages spooled and acknowledged", ["listener"]
)
ACCEPTED_BYTES = Counter(
    "postroom_smtp_accepted_bytes", "Octets of accepted messages", ["listener"]
)
REJECTED = Counter(
    "postroom_smtp_rejections", "Commands or messages refused, by reason", ["listener", "reason"]
)
AUTH_FAILURES = Counter("postroom_smtp_auth_failures", "Failed AUTH attempts", ["listener"])


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from outside
    """Expose /metrics on ``port`` (a daemon thread of prometheus_client)."""
    start_http_server(port, addr=address)
