"""The Celery app of the delivery worker: the two tasks of the queue contract, and beat."""

from __future__ import annotations

import structlog
from celery import Celery
from celery.schedules import crontab
from celery.signals import beat_init

from postroom.config import Settings
from postroom.delivery import certificates, housekeeping, learn, sweep, tls_reports
from postroom.delivery.runtime import Runtime
from postroom.queue import (
    TASK_DELIVER,
    TASK_DISPATCH_DUE,
    TASK_HOUSEKEEP,
    TASK_LEARN,
    TASK_RENEW_CERTIFICATE,
    TASK_SEND_TLS_REPORTS,
    celery_config,
)
from postroom.runtime import redis_url

log = structlog.get_logger("postroom.delivery")


def create_app(settings: Settings) -> Celery:
    app = Celery("postroom-delivery")
    app.conf.update(celery_config(redis_url(settings)))
    interval = settings.sweep_interval.total_seconds()
    app.conf.update(
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # beat keeps its schedule in memory: the sweep is a fixed interval and a missed run
        # is made up by the next one, so there is nothing worth a file.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "dispatch-due": {
                "task": TASK_DISPATCH_DUE,
                "schedule": interval,
                # A sweep that waited longer than an interval is superseded by the next one.
                "options": {"expires": max(interval, 1.0)},
            },
            "housekeep": {
                "task": TASK_HOUSEKEEP,
                "schedule": settings.housekeeping_interval.total_seconds(),
                "options": {"expires": settings.housekeeping_interval.total_seconds()},
            },
        },
    )
    check = settings.acme_check_interval.total_seconds()
    if settings.acme_enabled:
        app.conf.beat_schedule["renew-certificate"] = {
            "task": TASK_RENEW_CERTIFICATE,
            "schedule": check,
            "options": {"expires": check},
        }

        @beat_init.connect(weak=False)  # type: ignore[untyped-decorator]
        def _renew_at_start(**_kw: object) -> None:
            # A missing certificate is ordered when beat starts, not one interval later.
            app.send_task(TASK_RENEW_CERTIFICATE, expires=check)

    if settings.tls_reports:
        # RFC 8460 §5.1: a report covers one UTC day; each run sends the days before today.
        app.conf.beat_schedule["send-tls-reports"] = {
            "task": TASK_SEND_TLS_REPORTS,
            "schedule": crontab(minute=15, hour=0),
            "options": {"expires": 3600},
        }
    runtime = Runtime(settings)
    # A run's attempts end at their deadline; past it and a margin, the task gives up and
    # cancels the run (its leases are no longer renewed and run out).
    limit = (settings.delivery_deadline + 2 * settings.delivery_lease).total_seconds()

    @app.task(name=TASK_DELIVER)  # type: ignore[untyped-decorator]
    def deliver(delivery_ids: list[int]) -> None:
        runtime.run(lambda courier: courier.deliver(delivery_ids), timeout=limit)

    @app.task(name=TASK_HOUSEKEEP)  # type: ignore[untyped-decorator]
    def housekeep() -> None:
        runtime.run(housekeeping.housekeep, timeout=settings.housekeeping_interval.total_seconds())

    @app.task(name=TASK_DISPATCH_DUE)  # type: ignore[untyped-decorator]
    def dispatch_due() -> None:
        runtime.run(lambda courier: sweep.dispatch_due(courier, runtime.backlog), timeout=limit)

    @app.task(name=TASK_RENEW_CERTIFICATE)  # type: ignore[untyped-decorator]
    def renew_certificate() -> None:
        runtime.run(certificates.renew, timeout=check)

    @app.task(name=TASK_SEND_TLS_REPORTS)  # type: ignore[untyped-decorator]
    def send_tls_reports() -> None:
        runtime.run(tls_reports.send_reports, timeout=3600)

    @app.task(name=TASK_LEARN)  # type: ignore[untyped-decorator]
    def learn_task(mailbox_id: int, uids: list[int], spam: bool) -> None:
        runtime.run(
            lambda courier: learn.learn(courier, mailbox_id, uids, spam),
            timeout=settings.rspamd_timeout * learn.MAX_PER_TASK,
        )

    return app


def worker_argv(concurrency: int, loglevel: str, name: str) -> list[str]:
    """Threads, not prefork: delivery waits on Postgres and SMTP, so threads feeding one
    event loop per process give the concurrency with one connection pool; scale further by
    running more processes (on more machines)."""
    return [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--hostname={name}",
        # No broadcast chatter between workers: nothing here uses it, and it slows startup.
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
