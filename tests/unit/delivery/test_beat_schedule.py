"""What beat runs: the ACME renewal check joins the schedule only when ACME is on."""

from __future__ import annotations

import pytest

from postroom.config import load_settings
from postroom.delivery.celery_app import create_app
from postroom.queue import TASK_RENEW_CERTIFICATE

# Each test makes its own app; Celery warns that the task names were already registered.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")

REDIS = {"POSTROOM_REDIS_URL": "redis://127.0.0.1:1/0"}  # never connected to here


def test_without_acme_beat_does_not_check_certificates() -> None:
    app = create_app(load_settings(REDIS))
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert TASK_RENEW_CERTIFICATE not in tasks


def test_with_acme_beat_checks_the_certificate_every_check_interval() -> None:
    settings = load_settings(
        {
            **REDIS,
            "POSTROOM_ACME_DIRECTORY": "https://acme.test/dir",
            "POSTROOM_ACME_CONTACT": "postmaster@mx.test",
            "POSTROOM_ACME_CHECK_INTERVAL": "30m",
        }
    )
    app = create_app(settings)
    entry = app.conf.beat_schedule["renew-certificate"]
    assert (entry["task"], entry["schedule"]) == (TASK_RENEW_CERTIFICATE, 1800.0)
    assert TASK_RENEW_CERTIFICATE in app.tasks
