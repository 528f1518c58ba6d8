"""``python -m postroom.access``: serve POP3 (and every other access listener) until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from postroom.access.listeners import serve
from postroom.config import get_settings
from postroom.errors import ConfigError
from postroom.log import configure_logging
from postroom.throttle import auth_throttle


async def main() -> None:
    settings = get_settings()
    configure_logging(settings, "access")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop, throttle=auth_throttle(settings))


def run() -> None:
    try:
        import uvloop
    except ImportError:  # the stock event loop serves too, a little slower
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except ConfigError as exc:
        print(f"postroom-access: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
