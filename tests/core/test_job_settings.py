"""The jobs' settings: JOB_RETRY_SECONDS (the waits before a failed job's three retries)
and WORKER_HEARTBEAT_SECONDS (how often `flask worker` says it is alive)."""

from __future__ import annotations

import pytest

from qure import create_app
from qure.core import jobs
from tests.core.test_job_status import counted


@pytest.fixture
def retry_setting(app):
    saved = app.config["JOB_RETRY_SECONDS"]
    yield lambda value: app.config.__setitem__("JOB_RETRY_SECONDS", value)
    app.config["JOB_RETRY_SECONDS"] = saved


@pytest.mark.parametrize(
    ("setting", "waits"),
    [("10,30,60", [10, 30, 60]), ("0", [0, 0, 0]), ("5, 7", [5, 7, 7]), ("", [10, 30, 60])],
)
def test_a_job_is_enqueued_with_the_retries_of_the_setting(app, retry_setting, setting, waits):
    retry_setting(setting)
    queued = jobs.queue().fetch_job(jobs.submit(counted, 1))
    assert (queued.retries_left, queued.retry_intervals) == (jobs.RETRIES, waits)
    assert jobs.enqueue(counted, 2)
    (_, plain) = jobs.queue().jobs
    assert (plain.retries_left, plain.retry_intervals) == (jobs.RETRIES, waits)


def test_the_default_waits_are_ten_thirty_and_sixty_seconds(app):
    assert app.config["JOB_RETRY_SECONDS"] == "10,30,60"
    assert app.config["WORKER_HEARTBEAT_SECONDS"] == 30


@pytest.mark.parametrize("setting", ["soon", "10,30,60,120", "-5", "10,,30"])
def test_a_bad_retry_setting_stops_the_start(app, setting):
    with pytest.raises(ValueError, match="JOB_RETRY_SECONDS must be 1 to 3 whole numbers"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": app.config["DATABASE_URL"],
                "REDIS_URL": app.config["REDIS_URL"],
                "SECRET_KEY": app.config["SECRET_KEY"],
                "JOB_RETRY_SECONDS": setting,
            }
        )


def test_the_worker_beats_as_often_as_the_setting_says(app):
    saved = app.config["WORKER_HEARTBEAT_SECONDS"]
    app.config["WORKER_HEARTBEAT_SECONDS"] = 7
    try:
        worker = jobs.make_worker()
    finally:
        app.config["WORKER_HEARTBEAT_SECONDS"] = saved
    # a run is abandoned after three beats; the maintenance and the wait for a job: one
    assert worker.get_heartbeat_ttl(None) == 21
    assert (worker.maintenance_interval, worker.dequeue_timeout) == (7, 7)
    assert worker.connection.connection_pool.connection_kwargs["socket_timeout"] > 7
    worker.connection.close()
