"""The certificate task (beat, every POSTROOM_ACME_CHECK_INTERVAL): order one when due."""

from __future__ import annotations

import structlog

from postroom import certificates
from postroom.delivery.courier import Courier

log = structlog.get_logger("postroom.delivery.certificates")


async def renew(courier: Courier) -> certificates.Outcome | None:
    settings = courier.settings
    if not settings.acme_enabled:
        return None
    async with courier.pool.connection() as conn:
        try:
            outcome = await certificates.renew(conn, settings, now=courier.clock)
        except certificates.AcmeError as exc:
            # The certificate in force stays; the next check tries again.
            log.error("acme.renewal_failed", error=str(exc)[:500])
            return None
    if outcome.issued is None:
        log.info("acme.not_due", reason=outcome.reason)
    return outcome
