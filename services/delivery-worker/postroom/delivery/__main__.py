"""``python -m postroom.delivery worker|beat``: run a delivery worker, or the periodic sweep."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from postroom.config import get_settings
from postroom.delivery import metrics
from postroom.delivery.celery_app import create_app, worker_argv
from postroom.errors import PostroomError
from postroom.log import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postroom.delivery")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="deliver queued mail")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="deliveries at once in this process (default POSTROOM_DELIVERY_CONCURRENCY)",
    )
    commands.add_parser("beat", help="dispatch due deliveries every POSTROOM_SWEEP_INTERVAL")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        app = create_app(settings)
    except PostroomError as exc:
        print(f"postroom.delivery: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings, "delivery-worker" if args.command == "worker" else "beat")
    loglevel = settings.log_level
    if args.command == "worker":
        concurrency = args.concurrency or settings.delivery_concurrency
        if concurrency < 1:
            parser.error("--concurrency must be at least 1")
        name = f"delivery-{os.getpid()}@{socket.gethostname()}"
        if settings.metrics_port:
            metrics.serve(settings.metrics_port, settings.bind_address)
        app.worker_main(worker_argv(concurrency, loglevel, name))
    else:
        app.Beat(loglevel=loglevel, quiet=True).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
