"""``python -m postroom.smtp_in``: run the three listeners until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import structlog

from postroom.config import get_settings
from postroom.errors import ConfigError
from postroom.log import configure_logging
from postroom.smtp_in import metrics
from postroom.smtp_in.server import start_server
from postroom.throttle import auth_throttle

log = structlog.get_logger("postroom.smtp_in")


async def serve() -> None:
    settings = get_settings()
    server = await start_server(settings, throttle=auth_throttle(settings))
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.bind_address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("smtp.started", ports={k.value: v for k, v in server.ports.items()})
    await stop.wait()
    log.info("smtp.stopping")
    await server.stop(settings.shutdown_grace)
    log.info("smtp.stopped")


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"postroom smtp-in: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings, "smtp-in")
    runner: contextlib.AbstractContextManager[asyncio.Runner]
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner as r:
            r.run(serve())
    except ConfigError as exc:
        log.error("smtp.config_error", error=str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
