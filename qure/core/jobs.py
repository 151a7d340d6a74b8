"""Background jobs on RQ.

Production: `flask worker` runs an RQ worker plus a ticker that enqueues periodic jobs.
Embedded mode (`make run` with no MONGO_URL): the same worker and ticker run as threads
inside the web process, because the embedded document store lives in that process.

Jobs take ids, never ORM objects, and are safe to run twice.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, has_app_context
from redis.exceptions import RedisError
from rq import Queue, Retry, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from qure.extensions import redis_store

log = logging.getLogger(__name__)

QUEUE_NAME = "qure"
RELAY_PENDING_KEY = "qure:relay:pending"
_job_app: Flask | None = None


def register_job_app(app: Flask) -> None:
    """Jobs run inside this app (the worker's own, or the web app in embedded mode)."""
    global _job_app
    _job_app = app


def in_app(fn: Callable) -> Callable:
    """Run a job function inside an application context."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # A fresh app context per job: its own database session, removed afterwards, so a
        # job that fails (a dropped connection) cannot leave the next one a broken session.
        app = _job_app
        if app is None and has_app_context():
            app = current_app._get_current_object()
        if app is None:
            from qure import create_app

            app = create_app()
            register_job_app(app)
        with app.app_context():
            return fn(*args, **kwargs)

    return wrapper


def queue() -> Queue:
    return Queue(QUEUE_NAME, connection=redis_store.client)


def enqueue(func: Callable, *args, **kwargs) -> bool:
    """Enqueue a job; a Redis outage is logged, not raised (the sweep catches up)."""
    try:
        queue().enqueue(func, *args, retry=Retry(max=3, interval=[10, 30, 60]), **kwargs)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %s: %s", func.__name__, type(exc).__name__)
        return False


def schedule_relay() -> None:
    """After a commit that wrote outbox rows: one relay job, unless one is already waiting."""
    from qure.core.tasks import relay_outbox

    try:
        if not redis_store.client.set(RELAY_PENDING_KEY, "1", nx=True, ex=30):
            return
    except RedisError:
        return
    enqueue(relay_outbox)


class ThreadWorker(SimpleWorker):
    """An RQ worker that can run outside the main thread (no signal handlers)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def periodic_jobs() -> list[tuple[float, Callable]]:
    """(interval in seconds, job) pairs enqueued by the ticker."""
    from qure.core.tasks import relay_outbox
    from qure.queue.tasks import close_due_day

    return [
        (float(current_app.config["OUTBOX_SWEEP_SECONDS"]), relay_outbox),
        (float(current_app.config["CLOSE_DAY_CHECK_SECONDS"]), close_due_day),
    ]


def run_ticker(app: Flask, stop: threading.Event) -> None:
    """Enqueue each periodic job at its interval until `stop` is set."""
    with app.app_context():
        jobs = periodic_jobs()
    due = [0.0 for _ in jobs]
    while not stop.is_set():
        now = time.monotonic()
        for i, (interval, job) in enumerate(jobs):
            if now >= due[i]:
                with app.app_context():
                    enqueue(job)
                due[i] = now + interval
        stop.wait(1.0)


class InProcessJobs:
    """Embedded mode: the worker and the ticker as daemon threads of this process."""

    def __init__(self, app: Flask) -> None:
        register_job_app(app)
        self.app = app
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, name="qure-jobs", daemon=True),
            threading.Thread(
                target=run_ticker, args=(app, self.stop_event), name="qure-ticker", daemon=True
            ),
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while not self.stop_event.is_set():
            try:
                with self.app.app_context():
                    job_queue = queue()
                worker = ThreadWorker([job_queue], connection=redis_store.client)
                worker.work(burst=True, logging_level="WARNING")
            except Exception:  # a job's own failure is recorded by RQ; keep the loop alive
                log.exception("in-process worker loop failed")
            self.stop_event.wait(0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the current job finish and the threads end (before the embedded servers
        stop at exit, so no thread is left talking to a Redis that is gone)."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
