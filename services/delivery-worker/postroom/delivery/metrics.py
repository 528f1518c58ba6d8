"""Prometheus metrics of the delivery worker: internal failures, held deliveries, housekeeping."""

from __future__ import annotations

import structlog
from prometheus_client import Counter, start_http_server

log = structlog.get_logger("postroom.delivery.metrics")

# Exceptions caught while handling one queue entry or one sweep stage (the rest went on).
FAILURES = Counter(
    "postroom_delivery_internal_failures",
    "Exceptions caught in delivery, by stage (attempt, dsn, delay_warning, sweep stages)",
    ["stage"],
)
HELD = Counter(
    "postroom_delivery_held", "Deliveries held after too many internal failures", ["stage"]
)

REMOVED = Counter(
    "postroom_housekeeping_removed",
    "Rows removed by housekeeping (blobs, queue_entries, expunged, sessions)",
    ["kind"],
)

# RFC 7672: outbound connections to MX hosts with TLSA records, by outcome (matched,
# mismatch, unauthenticated, no_starttls, tls_failed, lookup_failed).
DANE_RESULTS = Counter(
    "postroom_delivery_dane", "Outbound connections under DANE, by result", ["result"]
)
# RFC 8461 §5: what an MTA-STS policy in testing mode would have refused (mx, certificate,
# starttls); the mail went anyway.
MTA_STS_TESTING = Counter(
    "postroom_delivery_mta_sts_testing_failures",
    "Failures an MTA-STS policy in testing mode reported without refusing, by kind",
    ["kind"],
)


def serve(port: int, address: str) -> None:
    """Expose /metrics on ``port``; a second worker process on the same host cannot bind it
    and goes on without (say so once)."""
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        log.warning("delivery.metrics.unavailable", port=port, error=str(exc))
