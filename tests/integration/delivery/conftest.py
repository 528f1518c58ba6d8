"""Fixtures for delivery tests (defined in harness.py, which tests also import from)."""

from tests.integration.delivery.harness import (  # noqa: F401 - fixtures
    clock,
    make_harness,
    sink,
    tls_context,
)
