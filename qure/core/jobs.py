"""Background jobs on RQ, and the registry every room declares its jobs in.

A room's `tasks.py` declares its jobs here: `@job` for work enqueued after a commit,
`@periodic(every=..., name=...)` for work the ticker enqueues at an interval. `create_app`
imports each blueprint package's `tasks` module, so the registry is full before `flask
worker` or `flask serve` reads it; core itself names no job of any domain.

Production: `flask worker` runs an RQ worker plus the ticker (`run_worker`). Embedded mode
(`make run` with no MONGO_URL): the same worker and ticker run as threads inside the web
process (`InProcessJobs`), because the embedded document store lives in that process.

Jobs take ids, never ORM objects, and are safe to run twice: a job whose worker died in the
middle of it (killed, out of memory, its machine lost) is run again from the start by
another worker once the dead one's heartbeat has lapsed (`Worker`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import Flask, current_app, has_app_context
from redis.exceptions import RedisError
from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from qure.core.errors import Unavailable
from qure.core.logs import frames
from qure.extensions import redis_store

log = logging.getLogger(__name__)

QUEUE_NAME = "qure"
# The ids RQ accepts: it raises ValueError for any other, which no job can have.
JOB_ID = re.compile(r"[A-Za-z0-9_-]+")


_job_app: Flask | None = None
_app_factory: Callable[[], Flask] | None = None


@dataclass(frozen=True)
class Periodic:
    """A job the ticker enqueues every `every` seconds (a number, or the name of the
    setting that holds it, read when the ticker starts)."""

    name: str
    every: float | str
    job: Callable

    def interval(self) -> float:
        every = self.every
        return float(current_app.config[every] if isinstance(every, str) else every)


_jobs: dict[str, Callable] = {}
_periodic: dict[str, Periodic] = {}


def _path(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def register_job_app(app: Flask) -> None:
    """Jobs run inside this app (the worker's own, or the web app in embedded mode)."""
    global _job_app
    _job_app = app


def set_app_factory(factory: Callable[[], Flask]) -> None:
    """How a process that has no app yet (a bare `rq worker`) builds one for its jobs."""
    global _app_factory
    _app_factory = factory


def _app() -> Flask:
    if _job_app is not None:
        return _job_app
    if has_app_context():
        return current_app._get_current_object()
    if _app_factory is None:
        raise RuntimeError("no app for jobs: run them with `flask worker` or `flask serve`")
    app = _app_factory()
    register_job_app(app)
    return app


def job(fn: Callable) -> Callable:
    """Declare `fn` a job: it runs inside an application context, and may be enqueued."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # A fresh app context per job: its own database session, removed afterwards, so a
        # job that fails (a dropped connection) cannot leave the next one a broken session.
        with _app().app_context():
            return fn(*args, **kwargs)

    _jobs[_path(wrapper)] = wrapper
    return wrapper


def periodic(every: float | str, name: str | None = None) -> Callable[[Callable], Callable]:
    """Declare a job the ticker enqueues every `every` seconds (or every `every`-named
    setting's seconds), under a `name` unique in the house (the function's by default)."""

    def register(fn: Callable) -> Callable:
        wrapped = job(fn)
        key = name or fn.__name__
        known = _periodic.get(key)
        if known is not None and _path(known.job) != _path(wrapped):
            raise ValueError(f"two periodic jobs are named {key!r}")
        _periodic[key] = Periodic(key, every, wrapped)
        return wrapped

    return register


def periodic_schedules() -> list[Periodic]:
    """Every declared periodic job, in declaration order."""
    return list(_periodic.values())


def queue() -> Queue:
    return Queue(QUEUE_NAME, connection=redis_store.client)


def enqueue(func: Callable, *args, **kwargs) -> bool:
    """Enqueue a declared job; a Redis outage is logged, not raised (the sweep catches
    up). A function not declared with `@job` is refused: it would run without an app."""
    if _jobs.get(_path(func)) is not func:
        raise ValueError(f"{_path(func)} is not declared with @job")
    try:
        queue().enqueue(func, *args, retry=retry_policy(), **kwargs)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %s: %s", func.__name__, type(exc).__name__)
        return False


RETRIES = 3
DEFAULT_RETRY_SECONDS = "10,30,60"


def retry_waits(setting: object) -> list[int]:
    """JOB_RETRY_SECONDS as the waits before each of the three retries: whole seconds,
    comma-separated, the last one repeated when fewer are given. ValueError otherwise."""
    try:
        waits = [int(part) for part in str(setting or DEFAULT_RETRY_SECONDS).split(",")]
    except ValueError:
        waits = []
    if not 1 <= len(waits) <= RETRIES or min(waits) < 0:
        raise ValueError(
            f"JOB_RETRY_SECONDS must be 1 to {RETRIES} whole numbers of seconds, separated "
            f"by commas (such as {DEFAULT_RETRY_SECONDS}); it is {setting!r}."
        )
    return waits + [waits[-1]] * (RETRIES - len(waits))


def retry_policy() -> Retry:
    """A failed job is tried again three times, after the waits JOB_RETRY_SECONDS lists
    (`retry_waits`; 0: at once). A retry that waits sits in RQ's schedule until a worker's
    scheduler enqueues it."""
    setting = current_app.config.get("JOB_RETRY_SECONDS") if has_app_context() else None
    return Retry(max=RETRIES, interval=retry_waits(setting))


RESULT_TTL = 7 * 24 * 3600  # a finished job (an import's rejected rows) is kept a week
FAILURE_TTL = 30 * 24 * 3600


FOLLOWED_TIMEOUT = 30 * 60  # seconds a followed job may run (RQ's default is 180)


class JobsUnavailable(Unavailable):
    """Redis (the jobs' queue and their progress) does not answer: 503 `jobs_unavailable`."""

    code = "jobs_unavailable"

    def __init__(
        self, message: str = "Background jobs are unavailable just now: try again in a few minutes."
    ) -> None:
        super().__init__(message)


def submit(
    func: Callable,
    *args,
    job_id: str | None = None,
    meta: dict | None = None,
    timeout: int = FOLLOWED_TIMEOUT,
    **kwargs,
) -> str:
    """Enqueue a declared job that someone will follow (an import, a bulk PDF) and return
    its id; it may run `timeout` seconds. Unlike `enqueue`, a Redis outage raises: the
    caller must tell the user. A `job_id` already queued or running is not enqueued again,
    even by two submits at the same moment (a short Redis claim on the id serialises them)."""
    if _jobs.get(_path(func)) is not func:
        raise ValueError(f"{_path(func)} is not declared with @job")
    if job_id is None:
        return _enqueue_followed(func, args, None, meta, timeout, kwargs)
    connection = redis_store.client
    claim = f"qure:submitting:{job_id}"
    if not connection.set(claim, "1", nx=True, ex=30):
        return job_id  # another submit of this id is enqueueing it at this moment
    try:
        try:
            known = Job.fetch(job_id, connection=connection)
            if known.get_status(refresh=False) in {"queued", "started", "scheduled", "deferred"}:
                return job_id
            # A finished or failed run of this id: gone before the new one is saved, or the
            # new one would inherit its progress and retry count (RQ writes over the job's
            # fields, and leaves an empty meta unwritten).
            known.delete()
        except NoSuchJobError:
            pass
        return _enqueue_followed(func, args, job_id, meta, timeout, kwargs)
    finally:
        connection.delete(claim)


def _enqueue_followed(func, args, job_id, meta, timeout, kwargs) -> str:
    found = queue().enqueue(
        func,
        *args,
        job_id=job_id,
        meta=meta or {},
        retry=retry_policy(),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        job_timeout=timeout,
        **kwargs,
    )
    return found.id


def report_progress(done: int, total: int, **extra) -> None:
    """From inside a running job: record how far it is (read by `status`)."""
    current = get_current_job()
    if current is None:
        return
    current.meta.update(done=done, total=total, **extra)
    current.save_meta()


@dataclass(frozen=True)
class JobStatus:
    id: str
    name: str
    status: str  # queued | started | finished | failed | scheduled (waiting to retry) ...
    done: int
    total: int
    result: object
    error: str | None
    meta: dict
    enqueued_at: object
    ended_at: object


def _error_of(found: Job) -> str | None:
    latest = found.latest_result()
    if latest is None or not latest.exc_string:
        return None
    # The last line names the exception; the traceback stays in RQ for operators.
    return latest.exc_string.strip().splitlines()[-1]


def _status_of(found: Job) -> JobStatus:
    state = found.get_status(refresh=False)
    status = str(getattr(state, "value", state) or "unknown")
    meta = found.meta or {}
    return JobStatus(
        id=found.id,
        name=found.func_name.rpartition(".")[2],
        status=status,
        done=int(meta.get("done", 0)),
        total=int(meta.get("total", 0)),
        result=found.return_value() if status == "finished" else None,
        error=_error_of(found) if status == "failed" else None,
        meta=meta,
        enqueued_at=found.enqueued_at,
        ended_at=found.ended_at,
    )


def status(job_id: str) -> JobStatus | None:
    """A job's status, progress, result or error; None when no such job is known (an id
    RQ would refuse, such as one typed into a URL with a quote or a space, is none)."""
    if not JOB_ID.fullmatch(job_id):
        return None
    try:
        return _status_of(Job.fetch(job_id, connection=redis_store.client))
    except NoSuchJobError:
        return None


def failed(limit: int = 200) -> list[JobStatus]:
    """Jobs that failed for good (their retries used up), newest first."""
    registry = queue().failed_job_registry
    ids = registry.get_job_ids(0, limit - 1, desc=True)
    found = Job.fetch_many(ids, connection=redis_store.client)
    return [_status_of(j) for j in found if j is not None]


def retry(job_id: str) -> bool:
    """Put a failed job back on the queue; False when it is not among the failed."""
    registry = queue().failed_job_registry
    if job_id not in registry.get_job_ids():
        return False
    registry.requeue(job_id)
    return True


BEATS_BEFORE_ABANDONED = 3
DEFAULT_HEARTBEAT_SECONDS = 30
# RQ logs each round of its maintenance at INFO: with a round every beat, two lines every
# 30 seconds would bury the worker's log. Shown only when the worker logs at DEBUG.
MAINTENANCE_LINES = (
    "Worker %s: cleaning registries for queue: %s",
    "Worker %s: cleaning group registries",
)


def _not_maintenance(record: logging.LogRecord) -> bool:
    if record.msg not in MAINTENANCE_LINES:
        return True
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# RQ's job logs a failure's text at DEBUG; the worker logs it without its message.
FAILURE_LINE = "Job %s: handling failure: %s"


def _not_failure_text(record: logging.LogRecord) -> bool:
    return record.msg != FAILURE_LINE


class Worker(SimpleWorker):
    """The RQ worker of `flask worker`: a SimpleWorker (each job runs in the worker's own
    process and app, no fork) that keeps saying it is alive while a job runs.

    RQ's SimpleWorker says nothing while it runs a job, and marks the job as running for
    its whole timeout plus a minute: had its worker been killed in the middle of an import
    (30 minutes or more), the job would have shown "started" for that long, and no worker
    would have taken it up again before then. This one renews its own, the job's and the
    run's heartbeats every `heartbeat` seconds from a thread, each good for
    BEATS_BEFORE_ABANDONED beats. A run whose heartbeat has lapsed is abandoned (its worker
    died): RQ's registry maintenance, which this worker runs every beat (RQ's default is
    ten minutes), then gives the job one of its retries (`retry_policy`), or fails it when
    none is left; the maintenance also starts the worker's scheduler again when it is not
    running (after its lock, left by a scheduler that died, lapses). Jobs are safe to run
    twice, so the retry starts the job from the beginning: an import reads on from the
    rows it had committed.
    """

    def __init__(self, *args, heartbeat: int = DEFAULT_HEARTBEAT_SECONDS, **kwargs) -> None:
        self.beat = max(1, int(heartbeat))
        kwargs.setdefault("job_monitoring_interval", self.beat)
        kwargs.setdefault("maintenance_interval", self.beat)
        # An idle RQ worker waits `worker_ttl - 15` seconds for a job between two rounds of
        # maintenance: one beat.
        kwargs.setdefault("worker_ttl", self.beat + 15)
        # RQ's job description is its call with the arguments' values: the log names the job
        # by its id alone.
        kwargs.setdefault("log_job_description", False)
        super().__init__(*args, **kwargs)
        if _not_maintenance not in self.log.filters:
            self.log.addFilter(_not_maintenance)
        job_log = logging.getLogger("rq.job")
        if _not_failure_text not in job_log.filters:
            job_log.addFilter(_not_failure_text)

    def handle_exception(self, job: Job, *exc_info) -> None:
        """RQ logs a failed job's whole exception, message and arguments included, and a
        message can hold what a patient's row said (an import's cell, a constraint's
        DETAIL): the log gets the exception's type and the frames where it was raised. The
        message stays with the failed job in Redis, where its status shows it to whoever
        started it."""
        kind, _value, tb = exc_info
        try:
            name = job.func_name
        except Exception:  # a job RQ cannot read back: its id is enough
            name = "?"
        self.log.error("job %s (%s) failed: %s\n%s", job.id, name, kind.__name__, frames(tb))
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return BEATS_BEFORE_ABANDONED * self.beat

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beats = threading.Thread(
            target=self._keep_beating, args=(job, execution, stop), name="qure-job-heartbeat"
        )
        beats.daemon = True
        beats.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beats.join()
        self.set_state(WorkerStatus.IDLE)

    def _keep_beating(self, job: Job, execution: Execution, stop: threading.Event) -> None:
        while not stop.wait(self.beat):
            try:
                self.maintain_heartbeats(job, execution)
            except RedisError as exc:  # the next beat tries again; the job goes on
                log.warning("job heartbeat not sent: %s", type(exc).__name__)


def make_worker(
    worker_class: type[Worker] = Worker, connection: redis.Redis | None = None
) -> Worker:
    """A worker on the jobs' queue, beating every WORKER_HEARTBEAT_SECONDS (in an app
    context). Unless given one, it has a Redis client of its own: it waits for a job up to
    a beat at a time, blocked in Redis, longer than the app's client lets a reply take (2
    s), and RQ would otherwise raise the timeout of the app's client for new connections
    only, while its old ones went on timing out ("could not connect to Redis instance:
    Timeout reading from socket"), each time followed by a longer pause, up to a minute,
    in which no job was taken."""
    config = current_app.config
    heartbeat = max(1, int(config.get("WORKER_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS)))
    if connection is None:
        connection = redis.Redis.from_url(
            config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=heartbeat + 30
        )
    return worker_class(
        [Queue(QUEUE_NAME, connection=connection)], connection=connection, heartbeat=heartbeat
    )


def run_worker(app: Flask) -> None:
    """`flask worker`: the ticker in a thread and the worker (with its scheduler, which
    enqueues the retries when due) in this one, until the worker is stopped (SIGTERM or
    Ctrl-C: the job in hand finishes first)."""
    register_job_app(app)
    stop = threading.Event()
    threading.Thread(target=run_ticker, args=(app, stop), name="qure-ticker", daemon=True).start()
    try:
        with app.app_context():
            worker = make_worker()
        worker.work(logging_level="INFO", with_scheduler=True)
    finally:
        stop.set()


class ThreadWorker(Worker):
    """An RQ worker that can run outside the main thread (no signal handlers), and that
    listens on no pubsub channel."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass

    def subscribe(self) -> None:
        """No channel for `rq`'s commands (shutdown, stop a job): they act through signals,
        which a thread never gets. And RQ's channel is a thread of its own reading a pooled
        connection, which the worker's teardown hands back to the pool after waiting only
        a second for that thread to end: on a loaded machine the thread then still reads
        from it and takes the reply of whoever uses the connection next (a request's
        command times out: 503 `jobs_unavailable`, or gets a reply not its own). The
        in-process worker starts a run every half second; its host's requests share the
        pool."""

    def stop_after_current_job(self) -> None:
        """From another thread: end the work loop once the job in hand (if any) is done,
        the warm shutdown RQ's SIGINT handler asks for (a thread gets no signal)."""
        self._stop_requested = True


def periodic_jobs() -> list[tuple[float, Callable]]:
    """(interval in seconds, job) pairs enqueued by the ticker (inside an app context)."""
    return [(schedule.interval(), schedule.job) for schedule in periodic_schedules()]


def run_ticker(app: Flask, stop: threading.Event) -> None:
    """Enqueue each periodic job at its interval until `stop` is set."""
    with app.app_context():
        schedule = periodic_jobs()
    due = [0.0 for _ in schedule]
    while not stop.is_set():
        now = time.monotonic()
        for i, (interval, func) in enumerate(schedule):
            if now >= due[i]:
                with app.app_context():
                    enqueue(func)
                due[i] = now + interval
        stop.wait(1.0)


class InProcessJobs:
    """Embedded mode: the worker and the ticker as daemon threads of this process."""

    def __init__(self, app: Flask) -> None:
        register_job_app(app)
        self.app = app
        self.stop_event = threading.Event()
        self._worker: ThreadWorker | None = None
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
                    # Burst mode: it never waits in Redis, the app's client does.
                    self._worker = make_worker(ThreadWorker, redis_store.client)
                if self.stop_event.is_set():  # stopped before `stop` could see this worker
                    break
                self._worker.work(burst=True, logging_level="WARNING", with_scheduler=True)
            except Exception:  # a job's own failure is recorded by RQ; keep the loop alive
                log.exception("in-process worker loop failed")
            self.stop_event.wait(0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the current job finish, take no other, and let the threads end (before the
        embedded servers stop at exit, so no thread is left talking to a Redis that is
        gone). A run goes on while the queue holds jobs: unless its worker is told to stop,
        it goes on taking them after `stop` has given up waiting for it."""
        self.stop_event.set()
        worker = self._worker
        if worker is not None:
            worker.stop_after_current_job()
        for thread in self.threads:
            thread.join(timeout)
